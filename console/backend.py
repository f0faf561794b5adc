"""What the console asks for and how it is fetched: views in, snapshots out.

A view is a frozen description of what a screen shows (the overview, one SLO,
a breakdown with its filter...). `Backend.fetch(view)` runs on a worker thread
with that thread's own cache cursor and returns an immutable `Fetched`; the UI
thread only renders it. No Textual here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, Protocol

from console.cache.cost_queries import cost_snapshot
from console.cache.scope_sql import HourMemo
from console.cache.slo_queries import change_markers, series, slo_detail, slo_statuses
from console.cache.store import Cache
from console.cache.trace_queries import breakdown, trace_tree, worst_requests
from console.config import Config, ScopeFilter
from console.slo import AlertLevel
from console.snapshots import (
    Alert,
    Breakdown,
    BudgetLevel,
    CostSnapshot,
    Dimension,
    OverviewSnapshot,
    RequestRow,
    SloDetail,
    SloStatus,
    SourceStatus,
    TraceTree,
    budgets_worst_first,
    worst_first,
)

Clock = Callable[[], datetime]
"""Returns naive-UTC "now": the wall clock, or the demo's simulated clock."""


@dataclass(frozen=True)
class OverviewView:
    """The overview: SLO and budget states, spend, alerts, sources, charts."""

    chart_span: timedelta = timedelta(hours=6)


@dataclass(frozen=True)
class SloView:
    """Every SLO, and the charts of the selected one."""

    selected: str | None = None
    chart_span: timedelta = timedelta(hours=6)


@dataclass(frozen=True)
class CostView:
    """Spend, budgets and movers."""


@dataclass(frozen=True)
class BreakdownView:
    """Traffic in scope over the last `window`, grouped by `dimension`."""

    filter: ScopeFilter = field(default_factory=ScopeFilter)
    dimension: Dimension = "provider"
    window: timedelta = timedelta(hours=1)


@dataclass(frozen=True)
class RequestsView:
    """The worst requests in scope over the last `window`."""

    filter: ScopeFilter = field(default_factory=ScopeFilter)
    window: timedelta = timedelta(hours=1)
    order: Literal["slowest", "failed"] = "failed"


@dataclass(frozen=True)
class TraceView:
    """One trace's span tree."""

    trace_id: str


View = OverviewView | SloView | CostView | BreakdownView | RequestsView | TraceView


@dataclass(frozen=True)
class SloPage:
    """What the SLO screen shows."""

    statuses: tuple[SloStatus, ...]
    detail: SloDetail | None


@dataclass(frozen=True)
class RequestsPage:
    """What the requests screen shows."""

    view: RequestsView
    rows: tuple[RequestRow, ...]


Snapshot = OverviewSnapshot | SloPage | CostSnapshot | Breakdown | RequestsPage | TraceTree | None


@dataclass(frozen=True)
class Fetched:
    """A view's snapshot, when it was taken and how long it took, plus source freshness."""

    view: View
    at: datetime
    """The data time ("now" on the backend's clock)."""
    snapshot: Snapshot
    sources: tuple[SourceStatus, ...]
    seconds: float


class SourceProbe(Protocol):
    """Anything that can say how fresh its data is."""

    def source_status(self) -> SourceStatus: ...


class Backend:
    """Answers views from the cache; handed to the app when it is built."""

    def __init__(
        self, cache: Cache, config: Config, clock: Clock, sources: Sequence[SourceProbe] = ()
    ) -> None:
        self.cache = cache
        self.config = config
        self.clock = clock
        self.sources = list(sources)
        self._trace_seen: dict[str, datetime] = {}
        """A start time seen in each opened trace: refreshes read only that stretch of spans."""
        self._prefetched: tuple[View, Future[Fetched]] | None = None
        self.memo = HourMemo()
        """Closed hours' rollup sums, reused across polls until the data changes."""

    def prefetch(self, view: View) -> None:
        """Start fetching `view` on a thread now; the next `fetch` of an equal view takes its result.

        Start-up calls this before importing Textual, so the first overview query
        (DuckDB releases the GIL) runs while the UI is imported and mounted.
        """
        future: Future[Fetched] = Future()

        def run() -> None:
            try:
                future.set_result(self._fetch(view))
            except BaseException as exc:  # handed to whoever takes the result
                future.set_exception(exc)

        self._prefetched = (view, future)
        threading.Thread(target=run, name="llmdeck-prefetch", daemon=True).start()

    def source_statuses(self) -> tuple[SourceStatus, ...]:
        """Freshness of every source, in a stable order."""
        return tuple(probe.source_status() for probe in self.sources)

    def fetch(self, view: View) -> Fetched:
        """Query the cache for `view` (call from a worker thread, never the UI thread)."""
        pending, self._prefetched = self._prefetched, None
        if pending is not None and pending[0] == view:
            return pending[1].result()
        return self._fetch(view)

    def _fetch(self, view: View) -> Fetched:
        started = time.perf_counter()
        at = self.clock()
        cur = self.cache.cursor()
        snapshot: Snapshot
        if isinstance(view, OverviewView):
            snapshot = self.overview(at, view.chart_span)
        elif isinstance(view, SloView):
            snapshot = self.slo_page(at, view)
        elif isinstance(view, CostView):
            snapshot = cost_snapshot(cur, self.config.budgets, at, self.memo)
        elif isinstance(view, BreakdownView):
            snapshot = breakdown(cur, view.filter, at - view.window, at, view.dimension)
        elif isinstance(view, RequestsView):
            rows = worst_requests(cur, view.filter, at - view.window, at, view.order)
            snapshot = RequestsPage(view, rows)
        else:
            snapshot = self.trace(view.trace_id)
        return Fetched(view, at, snapshot, self.source_statuses(), time.perf_counter() - started)

    def trace(self, trace_id: str) -> TraceTree | None:
        """One trace; the first fetch finds it anywhere, refreshes look only near it."""
        tree = trace_tree(self.cache.cursor(), trace_id, self._trace_seen.get(trace_id))
        if tree is not None and tree.spans:
            if len(self._trace_seen) >= 256:
                self._trace_seen.clear()
            self._trace_seen[trace_id] = tree.spans[0].start_time
        return tree

    def overview(self, at: datetime, chart_span: timedelta) -> OverviewSnapshot:
        cur = self.cache.cursor()
        slos = slo_statuses(cur, self.config.slos, at, self.memo)
        cost = cost_snapshot(cur, self.config.budgets, at, self.memo)
        everything = ScopeFilter()
        error_rate, latency = series(cur, everything, at, chart_span, 72)
        markers = change_markers(cur, everything, at - chart_span, at)
        return OverviewSnapshot(
            at=at,
            slos=slos,
            budgets=cost.budgets,
            spend=cost.totals,
            unpriced_requests=cost.unpriced_requests,
            alerts=alerts_from(slos, cost),
            error_rate=error_rate,
            latency_p95=latency,
            markers=markers,
        )

    def slo_page(self, at: datetime, view: SloView) -> SloPage:
        cur = self.cache.cursor()
        statuses = slo_statuses(cur, self.config.slos, at, self.memo)
        slos = self.config.slos
        detail = None
        if slos:  # the selected SLO, else the first; slo_statuses answers in config order
            i = next((i for i, s in enumerate(slos) if s.name == view.selected), 0)
            detail = slo_detail(cur, slos[i], at, view.chart_span, status=statuses[i])
        return SloPage(statuses, detail)


def alerts_from(slos: Sequence[SloStatus], cost: CostSnapshot) -> tuple[Alert, ...]:
    """Firing SLOs and budgets, most severe first; within a level SLOs before budgets, each in
    the order their tables list them, so the first alert names the top row."""
    burning = worst_first(s for s in slos if s.level > AlertLevel.OK)
    alerts = [Alert(int(s.level), "slo", s.name, s.reason) for s in burning]
    over = budgets_worst_first(b for b in cost.budgets if b.level > BudgetLevel.OK)
    alerts += [Alert(int(b.level), "budget", b.name, b.reason) for b in over]
    alerts.sort(key=lambda a: -a.level)  # stable: keeps that order within a level
    return tuple(alerts)


def worst_level(fetched: OverviewSnapshot) -> int:
    """2 if anything pages or is critical, 1 for a ticket or warning, else 0."""
    return max((a.level for a in fetched.alerts), default=0)
