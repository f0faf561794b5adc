"""What an on-call engineer can read at 80x24: the `/` filter line, unpriced traffic in a
breakdown, tables wider than the terminal, and which of several tables the keys act on.

Every test drives the real app over the session's frozen demo incident and reads the composited
screen (text, and the style each cell reaches the terminal with), as a person would see it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from rich.color import Color
from textual.widgets import DataTable

from console.backend import Backend
from console.config import Config, ScopeFilter
from console.formatting import usd
from console.snapshots import Breakdown
from console.views import BreakdownView
from panels.base import FilterBar
from panels.tables import EMPTY_KEY
from tests.tui.conftest import DemoData, settle
from tests.tui.conftest import press_settled as keys
from tests.tui.screen_text import screen_lines, screen_text, style_at

SIZE = (80, 24)


@pytest.fixture
def make_app(make_app: Callable[..., Any], demo_data: DemoData) -> Callable[..., Any]:
    """The conftest factory, polling every 30 s (navigation fetches at once anyway)."""

    def make(config: Config | None = None, **kwargs: Any) -> Any:
        config = config or demo_data.config
        ui = config.ui.model_copy(update={"refresh_seconds": 30})
        return make_app(config=config.model_copy(update={"ui": ui}), **kwargs)

    return make


# ---- the `/` filter line ----------------------------------------------------------------------


async def test_filter_line_shows_the_typed_text_and_match_count_on_its_own_row_above_the_footer(
        make_app: Callable[..., Any]) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await keys(pilot, "4", "f")  # the failed requests: a table taller than the terminal
        table = app.screen.query_one("#requests-table", DataTable)
        footer = app.screen.query_one("#footer")
        assert table.region.bottom == footer.region.y == SIZE[1] - 1

        await pilot.press("slash", *"haiku")
        await pilot.pause()
        bar = app.screen.query_one(FilterBar)
        lines = screen_lines(app)
        matches = sum(1 for key in table.rows if key.value != EMPTY_KEY)
        assert 0 < matches < 50
        assert bar.region.y == footer.region.y - 1
        assert table.region.bottom == bar.region.y  # the filter line hides no row of the table
        assert "/ haiku" in lines[bar.region.y]
        assert f"{matches} rows match" in lines[bar.region.y]
        assert "⏎ Keep filter" in lines[footer.region.y]  # and how to leave it
        assert "esc Clear filter" in lines[footer.region.y]

        await pilot.press(*"zzz")
        await pilot.pause()
        assert "no rows match" in screen_lines(app)[bar.region.y]

        await pilot.press("escape")
        await pilot.pause()
        assert not bar.has_class("-active")
        assert "match" not in screen_text(app)
        assert table.region.bottom == footer.region.y  # the table has its row back


async def test_a_kept_filter_stays_on_screen_and_esc_clears_it_before_leaving_the_screen(
        make_app: Callable[..., Any]) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await keys(pilot, "3")
        screen = app.screen
        budgets = screen.query_one("#cost-budgets", DataTable)
        await pilot.press("slash", *"acme", "enter")  # Enter keeps the filter, back to the table
        await pilot.pause()
        assert app.focused is budgets
        bar = screen.query_one(FilterBar)
        lines = screen_lines(app)
        assert "/ acme" in lines[bar.region.y] and "1 row matches" in lines[bar.region.y]
        assert [str(k.value) for k in budgets.rows] == ["acme-corp daily"]

        await pilot.press("escape")  # clears the kept filter; the screen and focus stay
        await pilot.pause()
        assert app.screen is screen and app.focused is budgets
        assert not bar.has_class("-active") and screen.filter_text == ""
        assert len(budgets.rows) == 4
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is not screen


# ---- unpriced traffic in the breakdown --------------------------------------------------------


async def test_breakdown_rows_show_their_unpriced_requests_beside_the_cost_never_a_bare_zero(
        make_app: Callable[..., Any], demo_data: DemoData) -> None:
    backend = Backend(demo_data.cache, demo_data.config, lambda: demo_data.at)
    snap = backend.fetch(BreakdownView(ScopeFilter(), "model", timedelta(hours=1))).snapshot
    assert isinstance(snap, Breakdown)
    per_model = demo_data.cache.cursor().execute(
        "SELECT coalesce(request_model, response_model, ''), count(*) FILTER (WHERE unpriced)"
        " FROM spans WHERE start_time >= ? AND start_time < ? GROUP BY 1",
        [snap.start, snap.end]).fetchall()
    assert {r.key: r.unpriced for r in snap.rows} == dict(per_model)
    unpriced = [r for r in snap.rows if r.unpriced]
    assert unpriced, "the demo has a model without a price"
    no_price = [r for r in unpriced if r.unpriced == r.requests]
    assert no_price and all(r.cost_usd == 0 for r in no_price)

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await keys(pilot, "4", "d")  # traces, then group by model
        table = app.screen.query_one("#traces-table", DataTable)
        cost = {str(k.value)[2:]: table.get_row(k)[-1].plain for k in table.rows}
        for row in snap.rows:
            expected = usd(row.cost_usd)
            if row.unpriced:
                expected += f" +{row.unpriced:,} unpriced"
            assert cost[row.key] == expected
        text = screen_text(app)
        for row in no_price:  # visible at 80 columns without scrolling
            line = next(ln for ln in text.splitlines() if ln.lstrip().startswith(row.key))
            assert line.rstrip().endswith(f"$0.00 +{row.unpriced:,} unpriced")


# ---- wide tables at 80 columns ----------------------------------------------------------------


@pytest.mark.parametrize(("path", "table_id", "pinned", "last_column"), [
    pytest.param(("2",), "#slo-table", ("SLO", "state"), "source", id="slo"),
    pytest.param(("3",), "#cost-budgets", ("budget", "state"), "period", id="cost"),
    pytest.param(("4", "f"), "#requests-table", ("time", "trace"), "cost", id="requests"),
])
async def test_wide_tables_scroll_sideways_with_the_arrow_keys_keeping_the_name_columns(
        make_app: Callable[..., Any], path: tuple[str, ...], table_id: str,
        pinned: tuple[str, ...], last_column: str) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await keys(pilot, *path)
        table = app.screen.query_one(table_id, DataTable)
        assert app.focused is table
        header_y, row_y = table.region.y, table.region.y + 1
        first_cells = [c.plain for c in table.get_row_at(0)[:len(pinned)]]

        def header() -> list[str]:
            return screen_lines(app)[header_y].split()

        assert header()[:len(pinned)] == list(pinned)  # the names come first
        assert last_column not in header(), "the table is wider than 80 columns"

        for _ in range(30):
            await pilot.press("right")
            if table.scroll_x >= table.max_scroll_x:
                break
        await pilot.pause()
        assert table.scroll_x == table.max_scroll_x > 0
        assert header()[:len(pinned)] == list(pinned)  # still there after scrolling
        assert header()[-1] == last_column
        row = screen_lines(app)[row_y]
        assert all(cell in row for cell in first_cells)

        for _ in range(30):
            await pilot.press("left")
            if table.scroll_x == 0:
                break
        await pilot.pause()
        assert table.scroll_x == 0


# ---- which table has the cursor ---------------------------------------------------------------


def _row_style(app: Any, table: DataTable[Any], row: int) -> Any:
    """The style of a table row's first cell, as the terminal gets it."""
    return style_at(app, table.region.x + 2, table.region.y + 1 + row - int(table.scroll_y))


def _distance(a: Color | None, b: Color | None) -> int:
    assert a is not None and b is not None
    return sum(abs(x - y) for x, y in zip(a.get_truecolor(), b.get_truecolor(), strict=True))


async def test_only_the_focused_table_shows_a_strong_cursor_the_others_a_dim_one(
        make_app: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        slos = app.screen.query_one("#overview-slos", DataTable)
        budgets = app.screen.query_one("#overview-budgets", DataTable)

        def contrast(table: DataTable[Any]) -> int:
            """How far the cursor row's background is from the row below it."""
            return _distance(_row_style(app, table, table.cursor_row).bgcolor,
                             _row_style(app, table, table.cursor_row + 1).bgcolor)

        for focused, other in ((slos, budgets), (budgets, slos)):
            focused.focus()
            await pilot.pause()
            strong, dim = contrast(focused), contrast(other)
            assert dim > 0, "the unfocused table still shows where its cursor is"
            assert strong > 2 * dim
            assert _row_style(app, focused, focused.cursor_row).bold
            assert not _row_style(app, other, other.cursor_row).bold


async def test_without_colour_the_focused_cursor_is_reversed_and_the_others_underlined(
        make_app: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await keys(pilot, "3")  # three tables: budgets (focused), spend, movers
        budgets, spend, movers = (app.screen.query_one(f"#cost-{name}", DataTable)
                                  for name in ("budgets", "spend", "movers"))
        assert app.focused is budgets
        cursor = _row_style(app, budgets, budgets.cursor_row)
        assert cursor.reverse and not cursor.underline
        for table in (spend, movers):
            cursor = _row_style(app, table, table.cursor_row)
            assert cursor.underline and not cursor.reverse
            below = _row_style(app, table, table.cursor_row + 1)
            assert not below.underline and not below.reverse
