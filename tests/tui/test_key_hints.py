"""The key-hint line (panels/key_hints.py) that replaced Textual's Footer.

It must say what the Footer said (every shown binding of the focused screen, the
remapped key after a keymap change, the palette key on wide terminals only) and a
click on a hint must press its key, as with the Footer.
"""

from __future__ import annotations

import pytest

from panels.help_screen import HelpScreen
from panels.key_hints import KeyHints
from panels.traces_screen import TracesScreen
from tests.tui.screen_text import screen_text


def hint_line(app) -> str:
    hints = app.screen.query_one("#footer", KeyHints)
    return screen_text(app).splitlines()[hints.region.y]


@pytest.mark.parametrize("size", [(80, 24), (160, 50)])
async def test_hints_list_the_screens_keys_and_the_palette_only_when_wide(make_app, size):
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        line = hint_line(app)
        for hint in ("/ Filter", "esc Back", ": :cmd", "? Help", "q Quit"):
            assert hint in line
        assert ("^p palette" in line) == (size[0] >= KeyHints.NARROW)
        await pilot.press("4")
        await pilot.pause()
        assert isinstance(app.screen, TracesScreen)
        line = hint_line(app)
        assert "d Group by" in line and line.rstrip().endswith(
            "q Quit" if size[0] < KeyHints.NARROW else "^p palette")


async def test_hints_follow_focus_into_the_filter_bar_and_back(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("slash")
        await pilot.pause()
        assert "Keep filter" in hint_line(app) and "Clear filter" in hint_line(app)
        await pilot.press("escape")
        await pilot.pause()
        assert "Keep filter" not in hint_line(app) and "? Help" in hint_line(app)


async def test_clicking_a_hint_presses_its_key(make_app):
    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        hints = app.screen.query_one("#footer", KeyHints)
        line = hint_line(app)
        x = line.index("? Help") + 1
        assert await pilot.click("#footer", offset=(x - hints.region.x, 0))
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
