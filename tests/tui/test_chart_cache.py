"""Charts reuse a figure built for the same data, size and theme, and never show a stale one."""

from __future__ import annotations

from datetime import datetime, timedelta

from textual.app import App, ComposeResult

from console.snapshots import Point, Series
from panels.charts import SeriesChart
from tests.tui.screen_text import screen_text

T = datetime(2026, 3, 4, 10, 0)


def series(values: list[float]) -> Series:
    return Series("error_rate", "fraction",
                  tuple(Point(T + timedelta(minutes=i), v) for i, v in enumerate(values)))


class Charts(App[None]):
    def compose(self) -> ComposeResult:
        yield SeriesChart("errors", id="a")
        yield SeriesChart("errors", id="b")


async def test_same_figure_is_reused_and_new_data_is_drawn_anew():
    app = Charts()
    async with app.run_test(size=(60, 24)) as pilot:
        a, b = app.query_one("#a", SeriesChart), app.query_one("#b", SeriesChart)
        a.show(series([0.1, 0.2, 0.3]))
        b.show(series([0.1, 0.2, 0.3]))
        await pilot.pause()
        assert a.render() is b.render()  # same data, size and theme: built once
        b.show(series([0.5, 0.9, 0.1]))
        await pilot.pause()
        assert b.render() is not a.render()
        assert "errors (%)" not in screen_text(app)  # percent=False: the unit is the fraction
        b.show(series([0.1, 0.2, 0.3]), percent=True)
        await pilot.pause()
        assert "errors (%)" in screen_text(app)
        before = a.render()
        assert a.render() is before  # nothing changed: reused
        app.theme = "textual-light"
        await pilot.pause()
        assert a.render() is not before  # a new theme draws anew, though a's data is unchanged
