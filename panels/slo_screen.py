"""Every SLO: compliance, budget, burn rates per window, alert state and its charts."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import DataTable, Static

from console.formatting import burn, duration, pct
from console.snapshots import DIMENSIONS, SloStatus, worst_first
from console.views import BreakdownView, Fetched, SloPage, SloView, View
from panels.base import DeckScreen
from panels.charts import SeriesChart
from panels.messages import Navigate
from panels.overview import slo_state_cell
from panels.tables import DeckTable, selected_key, sync_rows
from panels.text import safe_cell

BURN_WINDOWS = ("5m", "1h", "30m", "6h", "2h", "24h", "3d")
"""Paired as the alert rules read them: 5m/1h and 30m/6h page, 2h/24h and 6h/3d ticket."""


class SloScreen(DeckScreen):
    """SLO table (one row per SLO, worst first) and the selected SLO's charts."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "drill", "Drill down", id="slo.drill"),
    ]
    screen_title = "SLOs"
    view_id = "slo"

    def __init__(self, view: View | None = None) -> None:
        super().__init__()
        self.selected = view.selected if isinstance(view, SloView) else None
        self.statuses: tuple[SloStatus, ...] = ()
        self._cursor_placed = False
        """The first rows put the cursor on the SLO this screen was opened for (overview Enter)."""

    def compose(self) -> ComposeResult:
        yield from self.compose_status()
        table: DataTable[Text | str] = DeckTable(id="slo-table", cursor_type="row",
                                                 fixed_columns=2)
        table.add_columns("SLO", "state", "SLI", "budget", "exhaust",
                          *(f"burn{w}" for w in BURN_WINDOWS), "target", "kind", "source")
        yield table
        yield Static("", id="slo-reason", classes="note")
        with Horizontal(id="slo-charts"):
            yield SeriesChart("burn rate", id="slo-burn-chart", classes="chart")
            yield SeriesChart("error rate", id="slo-error-chart", classes="chart")
            yield SeriesChart("p95 latency", id="slo-latency-chart", classes="chart")
        yield from self.compose_footer()

    def view(self) -> View:
        return SloView(selected=self.selected)

    def show(self, fetched: Fetched) -> None:
        page = fetched.snapshot
        if not isinstance(page, SloPage):
            return
        self.statuses = page.statuses
        table = self.query_one("#slo-table", DataTable)
        rows = [
            (s.name, [
                safe_cell(s.name, 30),
                slo_state_cell(s),
                pct(s.compliance, 3),
                pct(s.budget_remaining, 1),
                duration(s.time_to_exhaustion),
                *(burn(s.burn(w)) for w in BURN_WINDOWS),
                pct(s.objective, 2),
                s.kind + (f"<{s.threshold_ms:g}ms" if s.threshold_ms else ""),
                safe_cell(s.source, 30),
            ])
            for s in worst_first(page.statuses)
        ]
        with self.app.batch_update():
            sync_rows(table, rows, self.filter_text,
                      empty="no SLOs configured: add [[slos]] to the config")
            if rows:
                if not self._cursor_placed and table.row_count:
                    self._cursor_placed = True
                    keys = [str(k.value) for k in table.rows]
                    if self.selected in keys:
                        table.move_cursor(row=keys.index(self.selected))
            if self.selected is None and rows:
                self.selected = selected_key(table)
                self.request_refresh()
            detail = page.detail
            reason = self.query_one("#slo-reason", Static)
            if detail is None:
                reason.update(Text("Select an SLO to see its charts."))
                return
            s = detail.status
            text = Text()
            text.append_text(safe_cell(s.name, 40))
            if s.source == "cache":
                text.append(f" — {s.level.symbol} {s.reason}. Scope: ")
                text.append_text(safe_cell(s.filter.describe(), 80))
                text.append(f"; {s.requests:,} requests in {duration(s.window)}. Enter: drill down.")
            else:  # the reason of a PromQL SLO may carry the source's error text
                mark = "?" if s.freshness == "down" else s.level.symbol
                text.append(f" — {mark} ")
                text.append_text(safe_cell(s.reason, 160))
                text.append(". From ")
                text.append_text(safe_cell(s.source, 40))
                stale = f" ({s.freshness})" if s.freshness != "live" else ""
                text.append(f"{stale}; {s.requests:,} requests in {duration(s.window)}.")
            reason.update(text)
            self.query_one("#slo-burn-chart", SeriesChart).show(detail.burn_rate, detail.markers)
            self.query_one("#slo-error-chart", SeriesChart).show(
                detail.error_rate, detail.markers, percent=True)
            self.query_one("#slo-latency-chart", SeriesChart).show(detail.latency_p95, detail.markers)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        # the row under the cursor now: the event the first rows posted for row 0 is stale
        # once the cursor was placed on the SLO the screen was opened for
        key = selected_key(event.data_table)
        if key is not None and key != self.selected:
            self.selected = key
            self.request_refresh()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_drill()

    def action_drill(self) -> None:
        status = next((s for s in self.statuses if s.name == self.selected), None)
        if status is None:
            return
        if status.source != "cache":
            self.notify("a PromQL SLO has no traces in the cache to drill into", markup=False)
            return
        filtered = {d for d, _ in status.filter.items()}
        dimension = next(d for d in (*DIMENSIONS[1:], DIMENSIONS[0]) if d not in filtered) \
            if len(filtered) < len(DIMENSIONS) else "tenant"
        self.post_message(Navigate("traces", BreakdownView(status.filter, dimension)))
