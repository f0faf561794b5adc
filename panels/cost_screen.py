"""Spend today / this week / month to date, budgets, billed vs estimated, top movers and the
unpriced warning."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.events import Resize
from textual.widgets import DataTable, Static

from console.billing_view import BilledRow, BillingSection
from console.config import ScopeFilter
from console.formatting import duration, pct, usd
from console.snapshots import MISSING_LABEL, BudgetStatus, CostSnapshot, Dimension, budgets_worst_first
from console.views import BreakdownView, CostPage, CostView, Fetched, View
from panels import cost_billing
from panels.base import DeckScreen
from panels.messages import Navigate
from panels.overview import state_cell
from panels.tables import DeckTable, selected_key, sync_rows
from panels.text import safe_cell

PERIODS = ("today", "week", "month")
SPEND_DIMENSIONS: tuple[Dimension, ...] = ("provider", "model", "tenant", "prompt_version")
_SCOPE_DIM: dict[str, Dimension] = {"provider": "provider", "model": "model", "tenant": "tenant"}


BASIS_CHARS = 40
"""Widest basis cell ("billed to 12-03, est. after"; the full note is in `llmdeck status`)."""


def basis_cell(b: BudgetStatus) -> Text:
    """"estimated", or a billed budget's label: which days are bills and which estimates."""
    if b.billed is None:
        return Text("estimated", style="dim")
    return safe_cell(b.billed.label or b.billed.note, BASIS_CHARS)


class CostScreen(DeckScreen):
    """Where the money goes and whether a budget will run out."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "next_period", "Period", id="cost.period"),
        Binding("d", "next_dimension", "Breakdown", id="cost.dimension"),
        Binding("enter", "drill", "Drill down", id="cost.drill"),
    ]
    DEFAULT_CSS = """
    #cost-billing-sources, #cost-billing-detail {
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """
    screen_title = "cost"
    view_id = "cost"

    def __init__(self) -> None:
        super().__init__()
        self.period = "today"
        self.dimension: Dimension = "provider"
        self.budgets: tuple[BudgetStatus, ...] = ()
        self.billing: BillingSection | None = None
        self.billing_narrow: bool | None = None
        """Which column set the billing table has (None: none yet)."""

    def compose(self) -> ComposeResult:
        yield from self.compose_status()
        yield Static("", id="cost-totals", classes="note")
        yield Static("", id="cost-unpriced", classes="warning-line")
        yield Static("Budgets", classes="section-title")
        budgets: DataTable[Text | str] = DeckTable(id="cost-budgets", cursor_type="row",
                                                   fixed_columns=2)
        budgets.add_columns("budget", "state", "used", "spent", "basis", "limit", "forecast", "exhaust",
                            "$/h 1h", "$/h 6h", "$/h 24h", "period")
        yield budgets
        yield Static("Billed vs estimated", id="cost-billing-title", classes="section-title")
        yield Static("", id="cost-billing-sources", classes="note")
        yield DeckTable(id="cost-billing", cursor_type="row", fixed_columns=1)
        yield Static("", id="cost-billing-detail", classes="note")
        with Horizontal(id="cost-lower"):
            with Vertical():
                yield Static("", id="cost-spend-title", classes="section-title")
                spend: DataTable[Text | str] = DeckTable(id="cost-spend", cursor_type="row")
                spend.add_columns("key", "spend", "share", "requests", "unpriced")
                yield spend
            with Vertical():
                yield Static("Top movers (last hour vs the hour before)", classes="section-title")
                movers: DataTable[Text | str] = DeckTable(id="cost-movers", cursor_type="row")
                movers.add_columns("what", "key", "$/h before", "$/h now", "change")
                yield movers
        yield from self.compose_footer()

    def view(self) -> View:
        return CostView()

    def on_resize(self, event: Resize) -> None:
        self.set_class(event.size.width < 120, "-narrow")
        if self.billing_narrow is not None \
                and (event.size.width < cost_billing.NARROW_BELOW) != self.billing_narrow:
            self._show_billing(self.billing)

    def show(self, fetched: Fetched) -> None:
        snap = fetched.snapshot
        if not isinstance(snap, CostSnapshot):
            return
        self.budgets = snap.budgets
        with self.app.batch_update():
            totals = dict(snap.totals)
            line = Text(
                f"Spend today {usd(totals.get('today'))} · week {usd(totals.get('week'))} · month"
                f" {usd(totals.get('month'))} · failed/retry today {usd(snap.retry_spend_usd)}"
            )
            self.query_one("#cost-totals", Static).update(line)
            unpriced = self.query_one("#cost-unpriced", Static)
            if snap.unpriced_requests:
                share = snap.unpriced_requests / snap.requests if snap.requests else 0.0
                unpriced.update(Text(
                    f"▲ {snap.unpriced_requests:,} requests ({pct(share, 1)}) this month have no"
                    " price: cost unknown, not $0"
                ))
            else:
                unpriced.update("")
            self._show_budgets(snap)
            self._show_billing(snap.billing if isinstance(snap, CostPage) else None)
            self._show_spend(snap)
            self._show_movers(snap)

    def _show_budgets(self, snap: CostSnapshot) -> None:
        table = self.query_one("#cost-budgets", DataTable)
        rows = []
        for b in budgets_worst_first(snap.budgets):
            rates = dict(b.burn_usd_per_hour)
            rows.append((b.name, [
                safe_cell(b.name, 28),
                state_cell(b.level),
                pct(b.used, 0),
                usd(b.spent_usd),
                basis_cell(b),
                usd(b.limit_usd, cents=False),
                usd(b.forecast_usd, cents=False),
                duration(b.time_to_exhaustion),
                usd(rates.get("1h")), usd(rates.get("6h")), usd(rates.get("24h")),
                b.period,
            ]))
        sync_rows(table, rows, self.filter_text, empty="no budgets configured: add [[budgets]]")

    def _show_billing(self, section: BillingSection | None) -> None:
        """Billed vs estimated: the sources' freshness (or how to set one up), then the rows."""
        self.billing = section
        width = self.size.width or 80
        narrow = width < cost_billing.NARROW_BELOW
        self.query_one("#cost-billing-title", Static).update(Text(cost_billing.title(section)))
        self.query_one("#cost-billing-sources", Static).update(cost_billing.sources_text(section, narrow))
        table = self.query_one("#cost-billing", DataTable)
        synced = section is not None and section.synced
        table.display = synced
        table.styles.max_height = 12 if narrow else 22  # 160x50: the rows the lower tables leave
        if narrow != self.billing_narrow:
            table.clear(columns=True)
            table.add_columns(*(cost_billing.NARROW_COLUMNS if narrow else cost_billing.WIDE_COLUMNS))
            self.billing_narrow = narrow
        rows = section.rows if section is not None else ()
        sync_rows(table, [(r.key, cost_billing.cells(r, narrow)) for r in rows], self.filter_text,
                  empty=f"no traced or billed spend in the last {section.days} days" if section else None)
        self._show_billing_detail()

    def _billing_row(self) -> BilledRow | None:
        if self.billing is None or not self.billing.rows:
            return None
        key = selected_key(self.query_one("#cost-billing", DataTable))
        return next((r for r in self.billing.rows if r.key == key), self.billing.rows[0])

    def _show_billing_detail(self) -> None:
        width = self.size.width or 80
        narrow = width < cost_billing.NARROW_BELOW
        row = self._billing_row() if self.billing is not None and self.billing.synced else None
        detail = self.query_one("#cost-billing-detail", Static)
        detail.display = row is not None and narrow
        detail.update(cost_billing.detail_text(row, narrow))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "cost-billing":
            self._show_billing_detail()

    def _show_spend(self, snap: CostSnapshot) -> None:
        title = self.query_one("#cost-spend-title", Static)
        title.update(Text(f"Spend {self.period} by {self.dimension} (p period, d breakdown)"))
        table = self.query_one("#cost-spend", DataTable)
        spend = snap.table(self.period, self.dimension)
        rows = spend.rows if spend else ()
        total = sum(r.cost_usd for r in rows) or 1.0
        sync_rows(table, [
            (r.key, [safe_cell(r.label, 32), usd(r.cost_usd), pct(r.cost_usd / total, 1),
                     f"{r.requests:,}", f"{r.unpriced:,}"])
            for r in rows
        ], self.filter_text)

    def _show_movers(self, snap: CostSnapshot) -> None:
        table = self.query_one("#cost-movers", DataTable)
        rows = []
        for m in snap.movers:
            change = m.change
            rows.append((f"{m.dimension}:{m.key}", [
                m.dimension, safe_cell(m.key or MISSING_LABEL, 24),
                usd(m.previous_usd_per_hour), usd(m.current_usd_per_hour),
                "new" if change is None else f"×{change:.1f}",
            ]))
        sync_rows(table, rows, self.filter_text, empty="no movers")

    def action_next_period(self) -> None:
        self.period = PERIODS[(PERIODS.index(self.period) + 1) % len(PERIODS)]
        self.refilter()

    def action_next_dimension(self) -> None:
        i = SPEND_DIMENSIONS.index(self.dimension)
        self.dimension = SPEND_DIMENSIONS[(i + 1) % len(SPEND_DIMENSIONS)]
        self.refilter()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_drill()

    def action_drill(self) -> None:
        """From a budget, spend row or mover to the traffic breakdown behind it."""
        focused = self.focused
        if not isinstance(focused, DataTable):
            return
        key = selected_key(focused)
        if key is None:
            return
        flt = ScopeFilter()
        if focused.id == "cost-budgets":
            budget = next((b for b in self.budgets if b.name == key), None)
            if budget is None:
                return
            if budget.scope in _SCOPE_DIM and budget.match:
                flt = flt.model_copy(update={_SCOPE_DIM[budget.scope]: budget.match})
        elif focused.id == "cost-billing":
            row = self._billing_row()
            if row is None:
                return
            flt = flt.model_copy(update={"provider": row.provider, "model": row.model})
        elif focused.id == "cost-spend":
            flt = flt.model_copy(update={self.dimension: key})
        else:
            dimension, _, value = key.partition(":")
            flt = flt.model_copy(update={dimension: value})
        used = {d for d, _ in flt.items()}
        nxt: Dimension = next(d for d in ("tenant", "model", "provider", "prompt_version", "route")
                              if d not in used)
        self.post_message(Navigate("traces", BreakdownView(flt, nxt)))
