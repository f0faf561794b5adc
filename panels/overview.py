"""The overview: SLO states, budgets, spend, firing alerts and source freshness in 80x24.

On a roomy terminal (at least 120x40) it adds error-rate and p95-latency charts.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.events import Resize
from textual.widgets import DataTable, Static

from console.formatting import burn, duration, pct, usd
from console.slo import SeverityMarks
from console.snapshots import OverviewSnapshot, SloStatus, budgets_worst_first, worst_first
from console.views import Fetched, OverviewView, SloView, View
from panels.base import DeckScreen
from panels.charts import SeriesChart
from panels.messages import Navigate
from panels.tables import DeckTable, selected_key, sync_rows
from panels.text import safe_cell

ROOMY = (120, 40)


def state_cell(level: SeverityMarks) -> Text:
    """A state as symbol + word, emphasised by severity (never by colour alone)."""
    style = ("", "bold", "bold reverse")[level.value]
    return Text(f"{level.symbol} {level.word}", style=style, no_wrap=True)


def slo_state_cell(slo: SloStatus) -> Text:
    """An SLO's state; one whose source is down has none ("? no data"), a stale one says so."""
    if slo.freshness == "down" or (slo.freshness == "stale" and slo.compliance is None):
        return Text("? no data", style="dim", no_wrap=True)
    cell = state_cell(slo.level)
    if slo.freshness == "stale":
        cell.append(" stale", style="dim")
    return cell


class OverviewScreen(DeckScreen):
    """Is anything burning? SLOs, budgets, spend, alerts, sources — one screen."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open", id="overview.open"),
    ]
    screen_title = "overview"
    view_id = "overview"

    def compose(self) -> ComposeResult:
        yield from self.compose_status()
        with Vertical(id="overview-body"):
            yield Static("SLOs", classes="section-title")
            slos: DataTable[Text | str] = DeckTable(id="overview-slos", cursor_type="row")
            slos.add_columns("SLO", "state", "SLI", "budget", "burn1h", "burn5m", "exhaust")
            yield slos
            yield Static("Budgets", classes="section-title")
            budgets: DataTable[Text | str] = DeckTable(id="overview-budgets", cursor_type="row")
            budgets.add_columns("budget", "state", "spent", "of limit", "forecast", "exhaust")
            yield budgets
            yield Static("", id="overview-spend", classes="note")
            yield Static("", id="overview-alerts", classes="note")
            with Horizontal(id="overview-charts"):
                yield SeriesChart("error rate (all traffic)", id="overview-error-chart",
                                  classes="chart")
                yield SeriesChart("p95 latency", id="overview-latency-chart", classes="chart")
        yield from self.compose_footer()

    def view(self) -> View:
        return OverviewView()

    def on_resize(self, event: Resize) -> None:
        roomy = event.size.width >= ROOMY[0] and event.size.height >= ROOMY[1]
        self.set_class(roomy, "-roomy")

    def show(self, fetched: Fetched) -> None:
        snap = fetched.snapshot
        if not isinstance(snap, OverviewSnapshot):
            return
        with self.app.batch_update():
            self._show_slos(snap)
            self._show_budgets(snap)
            self._show_spend(snap)
            self._show_alerts(snap)
            if self.has_class("-roomy"):
                self.query_one("#overview-error-chart", SeriesChart).show(
                    snap.error_rate, snap.markers, percent=True)
                self.query_one("#overview-latency-chart", SeriesChart).show(
                    snap.latency_p95, snap.markers)

    def _show_slos(self, snap: OverviewSnapshot) -> None:
        table = self.query_one("#overview-slos", DataTable)
        rows = [
            (s.name, [
                safe_cell(s.name, 28),
                slo_state_cell(s),
                pct(s.compliance, 2),
                pct(s.budget_remaining, 1),
                burn(s.burn("1h")),
                burn(s.burn("5m")),
                duration(s.time_to_exhaustion),
            ])
            for s in worst_first(snap.slos)
        ]
        sync_rows(table, rows, self.filter_text,
                  empty="no SLOs configured: add [[slos]] to the config")

    def _show_budgets(self, snap: OverviewSnapshot) -> None:
        table = self.query_one("#overview-budgets", DataTable)
        rows = [
            (b.name, [
                safe_cell(b.name, 22),
                state_cell(b.level),
                usd(b.spent_usd, cents=False),
                f"{pct(b.used, 0)} of {usd(b.limit_usd, cents=False)}",
                usd(b.forecast_usd, cents=False),
                duration(b.time_to_exhaustion),
            ])
            for b in budgets_worst_first(snap.budgets)
        ]
        sync_rows(table, rows, self.filter_text, empty="no budgets configured: add [[budgets]]")

    def _show_spend(self, snap: OverviewSnapshot) -> None:
        totals = dict(snap.spend)
        line = (f"Spend today {usd(totals.get('today'))} · week {usd(totals.get('week'))}"
                f" · month {usd(totals.get('month'))}")
        if snap.unpriced_requests:
            line += f" · ▲ {snap.unpriced_requests:,} unpriced"
        self.query_one("#overview-spend", Static).update(Text(line))

    def _show_alerts(self, snap: OverviewSnapshot) -> None:
        """One line: how many page/ticket, and the worst one by name (details on :slo / :cost)."""
        widget = self.query_one("#overview-alerts", Static)
        if not snap.alerts:
            widget.update(Text("Firing: nothing ✔ all SLOs and budgets ok"))
            return
        severe = sum(1 for a in snap.alerts if a.level >= 2)
        line = Text(f"Firing: ✖ {severe} page · ▲ {len(snap.alerts) - severe} ticket · worst: ")
        line.append_text(safe_cell(snap.alerts[0].name, 40))
        widget.update(line)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        focused = self.focused
        if isinstance(focused, DataTable) and focused.id == "overview-budgets":
            self.post_message(Navigate("cost"))
        elif isinstance(focused, DataTable):
            self.post_message(Navigate("slo", SloView(selected=selected_key(focused))))
