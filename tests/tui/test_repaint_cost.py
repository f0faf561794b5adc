"""What keeps a key press to one cheap repaint (bench/responsiveness.py measures the time).

- A `/` keystroke narrows the tables inside its own key handling, so the first repaint after
  the key already shows the filtered rows (on Input.Changed it took a second repaint, one
  60 Hz frame later).
- Table cells are rendered again only when what they show changes, not on every table update.
- Full garbage collections run between key presses (console/idle_gc.py), not during them.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual.app import App, ComposeResult
from textual.screen import Screen
from textual.widgets import DataTable

from console.idle_gc import NEVER
from panels.base import FilterBar
from panels.tables import DeckTable, sync_rows
from tests.tui.conftest import settle
from tests.tui.screen_text import screen_text

SIZE = (80, 24)


def keys_of(table: DataTable[Any]) -> list[str]:
    return [str(k.value) for k in table.rows]


async def test_the_first_repaint_after_a_filter_keystroke_shows_the_filtered_tables(
        make_app: Callable[..., Any]) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        slos = screen.query_one("#overview-slos", DataTable)
        everything = keys_of(slos)
        await pilot.press("slash")
        await pilot.pause()
        bar = screen.query_one(FilterBar)
        painted: list[tuple[str, list[str]]] = []
        original = Screen._compositor_refresh

        def spy(self: Screen[Any]) -> None:
            if self is screen:
                painted.append((bar.value, keys_of(slos)))
            original(self)

        Screen._compositor_refresh = spy  # type: ignore[method-assign]
        try:
            await pilot.press(*"anthropic")
            await pilot.pause()
        finally:
            Screen._compositor_refresh = original  # type: ignore[method-assign]
        narrowed = keys_of(slos)
        assert narrowed == ["anthropic availability", "anthropic rate limits"]
        assert len(everything) > len(narrowed)
        # no repaint ever showed typed text over tables not yet narrowed to it
        assert painted
        for typed, shown in painted:
            assert shown == [k for k in everything if typed in k.casefold()], typed
        # and setting the value in code narrows at once, with no message round trip
        bar.value = "rate limits"
        assert screen.filter_text == "rate limits"
        assert all("rate limits" in k for k in keys_of(slos)) and keys_of(slos)
        await pilot.press("escape")
        await pilot.pause()
        assert keys_of(slos) == everything and screen.filter_text == ""


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        table: DeckTable = DeckTable(id="t", cursor_type="row")
        table.add_columns("name", "value")
        yield table


def rows(values: dict[str, str]) -> list[tuple[str, list[object]]]:
    return [(k, [Text(k), Text(v)]) for k, v in values.items()]


async def test_cells_render_again_only_when_what_they_show_changes(monkeypatch: Any) -> None:
    rendered: list[tuple[int, int]] = []
    base = DataTable._render_cell

    def counting(self: DataTable[Any], row: int, column: int, *args: Any, **kw: Any) -> Any:
        if row >= 0:
            rendered.append((row, column))
        return base(self, row, column, *args, **kw)

    monkeypatch.setattr(DataTable, "_render_cell", counting)
    data = {f"row-{i}": f"{i * 1.5:.1f}" for i in range(10)}
    app = TableApp()
    async with app.run_test(size=(40, 14)) as pilot:
        table = app.query_one(DeckTable)
        sync_rows(table, rows(data))
        await pilot.pause()
        assert len(rendered) == 20  # every visible cell once
        rendered.clear()
        sync_rows(table, rows(data), filter_text="row-0")  # filter: clear() + add_row
        await pilot.pause()
        assert keys_of(table) == ["row-0"]
        sync_rows(table, rows(data))  # and back: same cells in the same places
        await pilot.pause()
        assert rendered == []  # (Textual's own cache rendered the visible cells again each time)
        data["row-3"] = "99.9"  # one cell changes in a refresh
        sync_rows(table, rows(data))
        await pilot.pause()
        assert rendered == [(3, 1)]
        assert "99.9" in screen_text(app) and "4.5" not in screen_text(app)


async def test_the_console_hands_full_collections_to_its_idle_collector_while_it_runs(
        make_app: Callable[..., Any]) -> None:
    saved = gc.get_threshold()
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.idle_gc.active and gc.get_threshold()[2] == NEVER
        before = app.idle_gc._last_input
        await pilot.press("down")
        assert app.idle_gc._last_input > before  # key presses count as input
    assert not app.idle_gc.active and gc.get_threshold() == saved
