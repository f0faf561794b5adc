"""Pilot tests of getting around llmdeck: `:` commands, digits, Esc, `?`, `/`, drill-down, themes, keymap.

Every test drives the real app (poller, backend) over the session's frozen demo incident at
80x24, and reads what a person would see: the active screen, its status line and tables.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from rich.console import Console
from textual.command import CommandPalette
from textual.widgets import DataTable, Static

from console.config import Config, ScopeFilter
from console.views import BreakdownView, RequestsView, SloView, TraceView
from panels.base import DeckScreen, FilterBar
from panels.cost_screen import CostScreen
from panels.help_screen import HelpScreen
from panels.overview import OverviewScreen
from panels.slo_screen import SloScreen
from panels.span_tree import SpanTree
from panels.status_line import StatusLine
from panels.traces_screen import RequestsScreen, TraceScreen, TracesScreen
from tests.tui.conftest import DemoData, settle
from tests.tui.conftest import press_settled as press
from tests.tui.screen_text import screen_text, terminal_bytes
from themes import THEME_NAMES

SIZE = (80, 24)


@pytest.fixture
def make_app(make_app: Callable[..., Any], demo_data: DemoData) -> Callable[..., Any]:
    """The conftest factory, polling every 30 s instead of every second.

    Navigation fetches at once anyway; the 1 s background polls would only keep the CPU busy,
    and Pilot waits for an idle process after every key.
    """

    def make(config: Config | None = None, **kwargs: Any) -> Any:
        config = config or demo_data.config
        ui = config.ui.model_copy(update={"refresh_seconds": 30})
        return make_app(config=config.model_copy(update={"ui": ui}), **kwargs)

    return make


def status(app: Any) -> str:
    return str(app.screen.query_one(StatusLine).render())


def keys_of(table: DataTable[Any]) -> list[str]:
    return [str(k.value) for k in table.rows]


def cursor_key(table: DataTable[Any]) -> str:
    return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)


def slo_table(app: Any) -> DataTable[Any]:
    return app.screen.query_one("#slo-table", DataTable)


async def command(pilot: Any, text: str) -> None:
    """Type `:text` Enter, then wait for the screen's data when a deck screen is on top."""
    await pilot.press("colon", *text, "enter")
    await pilot.pause()
    if isinstance(pilot.app.screen, DeckScreen):
        await settle(pilot)


async def test_colon_commands_open_slo_cost_traces_and_overview(make_app: Callable[..., Any]) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for text, screen, title in (("slo", SloScreen, "SLOs"), ("cost", CostScreen, "cost"),
                                    ("traces", TracesScreen, "traces"),
                                    ("overview", OverviewScreen, "overview")):
            await command(pilot, text)
            assert type(app.screen) is screen, text
            assert status(app).startswith(f"llmdeck › {title} · data 12:20:00Z")
            # k9s-style: every :view sits directly on the overview, never on the previous view
            assert len(app.screen_stack) == (1 if screen is OverviewScreen else 2)


async def test_colon_aliases_and_unknown_commands(make_app: Callable[..., Any]) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await command(pilot, "slos")
        assert isinstance(app.screen, SloScreen)
        await command(pilot, "o")
        assert isinstance(app.screen, OverviewScreen)
        await command(pilot, "nope")
        assert isinstance(app.screen, OverviewScreen)
        assert any("unknown command 'nope'" in n.message for n in app._notifications)


async def test_digits_1_to_4_jump_to_overview_slo_cost_traces(make_app: Callable[..., Any]) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for key, screen in (("2", SloScreen), ("3", CostScreen), ("4", TracesScreen),
                            ("1", OverviewScreen), ("4", TracesScreen)):
            await press(pilot, key)
            assert type(app.screen) is screen, key
            assert len(app.screen_stack) == (1 if screen is OverviewScreen else 2)


async def test_escape_goes_back_one_screen_and_stops_at_the_overview(
        make_app: Callable[..., Any]) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await press(pilot, "4")
        await press(pilot, "enter")  # narrow to the worst provider
        await press(pilot, "f")
        assert [type(s) for s in app.screen_stack[1:]] == [TracesScreen, TracesScreen, RequestsScreen]
        await press(pilot, "escape")
        assert isinstance(app.screen, TracesScreen)
        assert app.screen.view().filter == ScopeFilter(provider="anthropic")
        await press(pilot, "escape")
        assert app.screen.view() == BreakdownView()
        await press(pilot, "escape")
        assert isinstance(app.screen, OverviewScreen)
        await press(pilot, "escape")
        assert isinstance(app.screen, OverviewScreen) and len(app.screen_stack) == 1
        assert app.return_code is None


def help_text(app: Any) -> str:
    """The whole help table as text (also the rows scrolled out of view)."""
    console = Console(width=160, file=io.StringIO(), record=True)
    console.print(app.screen.query_one("#help-keys", Static).content)
    return console.export_text()


async def test_help_lists_every_binding_id_of_the_screen_and_the_app_and_escape_closes_it(
        make_app: Callable[..., Any]) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await press(pilot, "2")
        slo = app.screen
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = help_text(app)
        ids = {b.id for node in (slo, app) for bs in node._bindings.key_to_bindings.values()
               for b in bs if b.id}
        assert {"app.quit", "app.command", "app.help", "app.theme", "screen.filter",
                "screen.back", "slo.drill"} <= ids
        missing = [i for i in sorted(ids) if i not in text]
        assert not missing, f"help does not list {missing}"
        for command_name in (":slo", ":cost", ":traces", ":theme", ":quit"):
            assert command_name in text
        visible = screen_text(app)
        assert "remap by id under [ui.keymap]" in visible
        assert "app.quit" in visible  # llmdeck's own keys come first, above the fold at 80x24
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is slo


async def test_slash_filter_narrows_the_slo_table_and_escape_clears_it(
        make_app: Callable[..., Any]) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await press(pilot, "2")
        everything = keys_of(slo_table(app))
        assert len(everything) == 9
        await pilot.press("slash", *"anthropic")
        await pilot.pause()
        assert app.screen.query_one(FilterBar).has_class("-active")
        assert keys_of(slo_table(app)) == ["anthropic availability", "anthropic rate limits"]
        await pilot.press("escape")  # clears the filter, not the screen
        await pilot.pause()
        assert isinstance(app.screen, SloScreen)
        assert keys_of(slo_table(app)) == everything
        assert not app.screen.query_one(FilterBar).has_class("-active")
        assert app.focused is slo_table(app)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, OverviewScreen)


async def test_enter_drills_from_the_burning_slo_to_a_failed_anthropic_trace_in_five_keys(
        make_app: Callable[..., Any]) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        slos = app.screen.query_one("#overview-slos", DataTable)
        assert app.focused is slos and cursor_key(slos) == "anthropic availability"
        await press(pilot, "enter")
        assert isinstance(app.screen, SloScreen)
        assert app.screen.view() == SloView(selected="anthropic availability")
        assert cursor_key(slo_table(app)) == "anthropic availability"
        await press(pilot, "enter")  # to the traffic in the SLO's scope
        assert isinstance(app.screen, TracesScreen)
        anthropic = ScopeFilter(provider="anthropic")
        assert app.screen.view() == BreakdownView(anthropic, "model")
        models = app.screen.query_one("#traces-table", DataTable)
        assert keys_of(models)[0] == "k:claude-sonnet-4-5"  # the worst model first
        await press(pilot, "enter")
        narrowed = ScopeFilter(provider="anthropic", model="claude-sonnet-4-5")
        assert app.screen.view() == BreakdownView(narrowed, "tenant")
        await press(pilot, "f")
        assert isinstance(app.screen, RequestsScreen)
        assert app.screen.view() == RequestsView(narrowed, order="failed")
        rows = list(app.screen.rows.values())
        assert rows and all(r.status == "error" and r.http_status in (429, 529) for r in rows)
        first = app.screen.selected_row()
        assert first is not None
        await press(pilot, "enter")
        assert isinstance(app.screen, TraceScreen)
        assert app.screen.view() == TraceView(first.trace_id)
        tree = app.screen.query_one(SpanTree)
        assert tree.selected_span is not None and tree.selected_span.status == "error"
        text = screen_text(app)
        assert f"trace {first.trace_id}" in text and "✖ error" in text


async def test_enter_on_the_second_slo_opens_that_slo_and_its_anthropic_row_narrows(
        make_app: Callable[..., Any]) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("down")
        await press(pilot, "enter")
        assert app.screen.view() == SloView(selected="support-chatbot availability")
        assert cursor_key(slo_table(app)) == "support-chatbot availability"
        assert "support-chatbot availability — ✖ page" in screen_text(app)
        await press(pilot, "enter")
        chatbot = ScopeFilter(service="support-chatbot")
        assert app.screen.view() == BreakdownView(chatbot, "provider")
        providers = app.screen.query_one("#traces-table", DataTable)
        assert cursor_key(providers) == "k:anthropic"  # the failing provider is the top row
        await press(pilot, "enter")
        assert app.screen.view() == BreakdownView(
            ScopeFilter(service="support-chatbot", provider="anthropic"), "model")
        await press(pilot, "f")
        rows = list(app.screen.rows.values())
        assert rows and {(r.service, r.provider) for r in rows} == {("support-chatbot", "anthropic")}
        await press(pilot, "enter")
        assert isinstance(app.screen, TraceScreen)
        assert "✖ error" in screen_text(app)


async def test_theme_command_switches_theme_and_recolours_the_screen(
        make_app: Callable[..., Any]) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.theme == "llmdeck-dark"
        dark = terminal_bytes(app)
        await command(pilot, "theme light")
        assert app.theme == "llmdeck-light"
        assert app.screen.styles.background == app.current_theme.to_color_system().background
        assert app.screen.styles.background.brightness > 0.9
        assert terminal_bytes(app) != dark
        await command(pilot, "theme purple")
        assert app.theme == "llmdeck-light"
        assert any("themes: llmdeck-dark" in n.message for n in app._notifications)


async def test_ctrl_t_cycles_through_the_themes(make_app: Callable[..., Any]) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        seen = []
        for _ in THEME_NAMES:
            before = terminal_bytes(app)
            await pilot.press("ctrl+t")
            await pilot.pause()
            seen.append(app.theme)
            assert terminal_bytes(app) != before
        assert seen == [*THEME_NAMES[1:], THEME_NAMES[0]]


async def test_command_palette_switches_theme(make_app: Callable[..., Any]) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"theme llmdeck-high")
        for _ in range(100):  # the palette searches asynchronously
            if app.screen.query_one("CommandList").option_count:
                break
            await pilot.pause(0.02)
        await pilot.press("enter")
        await pilot.pause()
        assert app.theme == "llmdeck-high-contrast"
        assert isinstance(app.screen, OverviewScreen)
        assert str(app.screen.styles.background.hex) == "#000000"


def with_keymap(demo_data: DemoData, keymap: dict[str, str]) -> Config:
    ui = demo_data.config.ui.model_copy(update={"keymap": keymap})
    return demo_data.config.model_copy(update={"ui": ui})


async def test_keymap_from_config_remaps_quit_to_x_and_frees_q(
        make_app: Callable[..., Any], demo_data: DemoData) -> None:
    app = make_app(config=with_keymap(demo_data, {"app.quit": "x", "app.slo": "s"}))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "x Quit" in screen_text(app)  # the footer shows the new key
        await pilot.press("q")
        await pilot.pause()
        assert app.return_code is None and isinstance(app.screen, OverviewScreen)
        await press(pilot, "s")
        assert isinstance(app.screen, SloScreen)
        await pilot.press("2")  # the old key of app.slo does nothing now
        await pilot.pause()
        assert isinstance(app.screen, SloScreen)
        await pilot.press("x")
        await pilot.pause()
        assert app.return_code == 0


@pytest.mark.parametrize("via", ["q", ":q"])
async def test_q_and_colon_q_quit(make_app: Callable[..., Any], via: str) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await press(pilot, "2")
        if via == "q":
            await pilot.press("q")
        else:
            await pilot.press("colon", "q", "enter")
        await pilot.pause()
        assert app.return_code == 0
