"""How views are answered: one reader per view type, on a worker thread, over the cache.

`Backend.fetch(view)` runs on a worker thread with that thread's own cache
cursor and returns an immutable `Fetched` (the types live in `console/views.py`);
the UI thread only renders it. No Textual here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import duckdb

from console import source_readers
from console.action_store import ActionStore
from console.alerts import ActiveAlert, alert_level
from console.billing_reader import billing_section
from console.cache.cost_queries import cost_snapshot
from console.cache.faults import (
    CacheCorruptError,
    CacheError,
    CacheFullError,
    CacheUnwritableError,
    classify,
    first_line,
)
from console.cache.scope_sql import HourMemo
from console.cache.slo_queries import change_markers, series, slo_detail, slo_statuses
from console.cache.store import Cache
from console.cache.trace_queries import breakdown, trace_tree, worst_requests
from console.config import Config, ScopeFilter
from console.incident_views import (
    IncidentsView,
    IncidentView,
    action_markers,
    read_incident,
    read_incidents,
)
from console.incidents import IncidentStore
from console.pricing import PriceTable
from console.slo import AlertLevel
from console.snapshots import (
    Alert,
    Breakdown,
    BudgetLevel,
    ChangeMarker,
    CostSnapshot,
    OverviewSnapshot,
    SloStatus,
    TraceTree,
    budgets_worst_first,
    worst_first,
)
from console.source_views import AlertsView, ServingView, SourcesView
from console.sources import SourceProbe, SourceStatus
from console.timeutil import utc_now
from console.views import (
    BreakdownView,
    Clock,
    CostPage,
    CostView,
    Fetched,
    OverviewView,
    RequestsPage,
    RequestsView,
    SloPage,
    SloView,
    Snapshot,
    TraceView,
    View,
)

if TYPE_CHECKING:
    from console.source_hub import SourceHub


INVALIDATED = "database has been invalidated"
"""DuckDB's words once a fatal error (a failed checkpoint, say) made every query of it fail."""


@dataclass(frozen=True)
class Fault:
    """A fault of the cache file as the console says it: a few words for every status line,
    the whole message (where, what to do) for the panel and a toast."""

    line: str
    message: str


def fault_of(exc: BaseException, path: Path | str | None = None) -> Fault | None:
    """The console's words for a `CacheError` (None for anything else); `path`: the file it is
    in when the fault does not name one (`classify` names the cache, or a demo spool file)."""
    if not isinstance(exc, CacheError):
        return None
    if isinstance(exc, CacheCorruptError):
        return Fault("cache corrupt: run `llmdeck cache reset`", str(exc))
    path = exc.path or path
    where = f" holding {path}" if path is not None else ""
    if isinstance(exc, CacheFullError):
        line, what = "disk full", f"no space left on the device{where}"
    elif isinstance(exc, CacheUnwritableError):
        line, what = "not writable", f"the place{where} is not writable"
    else:
        return Fault("cache error", str(exc))
    return Fault(f"cache write failed: {line}; showing what is stored",
                 f"cache write failed: {what}; the console keeps showing what is stored. Free"
                 " some space (or make it writable), then start it again: it resumes where it"
                 f" stopped. ({first_line(exc.__cause__ or exc)})")


@runtime_checkable
class CacheUser(Protocol):
    """A source that uses the backend's cache itself (the demo simulator writes it)."""

    def release_cache(self, fault: CacheError) -> None:
        """Stop using the cache, which is closed next under `fault`: return once no call of
        yours uses it, and make none later."""

    def adopt_cache(self, cache: Cache) -> None:
        """The cache opened again (read-only) in place of the one released."""


class Backend:
    """Answers views from the cache; handed to the app when it is built."""

    def __init__(
        self,
        cache: Cache,
        config: Config,
        clock: Clock,
        sources: Sequence[SourceProbe] = (),
        readers: Mapping[type[Any], Reader] = MappingProxyType({}),
        hub: SourceHub | None = None,
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
        self.readers: dict[type[Any], Reader] = {**READERS, **readers}
        """How each view type is answered: `READERS`, plus any handed in."""
        self.hub = hub
        """The outside sources (Prometheus, Alertmanager, scrapes), polled on their own thread."""
        self.promql_charts: source_readers.ChartMemo = {}
        """PromQL SLO charts, drawn again only after their source is read again."""
        self.cache_slos = [s for s in config.slos if s.promql is None]
        """The SLOs read from the cache (PromQL ones come from the hub)."""
        self.read_fault: CacheError | None = None
        """Corruption met by a query: the file stays damaged, so every status line keeps saying so."""
        self.reopened = False
        """Whether the cache was opened again read-only after DuckDB invalidated it."""
        self._prices: PriceTable | None = None
        self._incidents: IncidentStore | None = None
        self._actions: ActionStore | None = None

    def incident_store(self) -> IncidentStore:
        """The incident store in the state directory (SQLite; it opens lazily, per thread, so
        making it here does no I/O). Tests hand in their own with `use_incident_store`."""
        if self._incidents is None:
            self._incidents = IncidentStore()
        return self._incidents

    def action_store(self) -> ActionStore:
        """The runbook actions' store in the same state file (unknown outcomes, pending reverts
        shown on `:incidents`); opens lazily, per thread."""
        if self._actions is None:
            self._actions = ActionStore()
        return self._actions

    def use_incident_store(self, store: IncidentStore) -> None:
        """Answer the incident views from `store` (a test's, or one at another path)."""
        self._incidents = store

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
        """Freshness of every source, in a stable order: the cache or demo, then the hub's."""
        own = tuple(probe.source_status() for probe in self.sources)
        return own + (self.hub.statuses() if self.hub is not None else ())

    def slo_statuses(self, at: datetime) -> tuple[SloStatus, ...]:
        """Every SLO in config order: cache SLOs read now, PromQL SLOs from the hub's last poll."""
        cached = slo_statuses(self.cache.cursor(), self.cache_slos, at, self.memo)
        if len(self.cache_slos) == len(self.config.slos):
            return cached
        promql = source_readers.promql_statuses(self.hub, self.config)
        return source_readers.merge_slos(self.config, cached, promql)

    def fetch(self, view: View) -> Fetched:
        """Query the cache for `view` (call from a worker thread, never the UI thread).

        A fault of the cache file (a corrupt block met by this query, say) is raised as its
        `CacheError`, which says where and what to do; any other error as it is.
        """
        pending, self._prefetched = self._prefetched, None
        try:
            if pending is not None and pending[0] == view:
                return pending[1].result()
            return self._fetch(view)
        except (duckdb.Error, OSError) as exc:
            if self._reopened(exc):
                return self._fetch(view)
            fault = classify(exc, self.cache.path)
            if fault is None:
                raise
            if isinstance(fault, CacheCorruptError):
                self.read_fault = fault
            raise fault from exc

    def _reopened(self, exc: Exception) -> bool:
        """After DuckDB invalidated the database (a checkpoint that failed on a full disk: every
        query fails until it is opened again), open the file again read-only, so the panels keep
        answering from what is stored. The sources using the cache (the demo simulator) stop
        first, so none is inside a call of it when it closes; they keep saying the fault.
        Whether it was reopened; polls never overlap, so no other fetch runs meanwhile."""
        if INVALIDATED not in str(exc):
            return False
        broken, path = self.cache, self.cache.path
        fault = classify(exc, path) or CacheError(f"{path}: {first_line(exc)}")
        users = [source for source in self.sources if isinstance(source, CacheUser)]
        for user in users:
            user.release_cache(fault)
        broken.abandon()  # no checkpoint (it cannot run); closes every thread's cursor too
        self.cache = Cache.open(path, read_only=True, create=False)
        self.reopened = True
        self.memo = HourMemo()
        for user in users:
            user.adopt_cache(self.cache)
        return True

    def fault(self) -> Fault | None:
        """The cache fault every status line shows: a failed write of a source, else corruption
        a query met (a cheap read: the UI thread calls it every second)."""
        for probe in self.sources:
            written = getattr(probe, "cache_fault", None)  # the demo simulator's writes
            if isinstance(written, CacheError):
                return fault_of(written, self.cache.path)  # the spool file's path, if it said one
        return fault_of(self.read_fault) if self.read_fault is not None else None

    def _fetch(self, view: View) -> Fetched:
        started = time.perf_counter()
        at = self.clock()
        snapshot = self.readers[type(view)](self, view, at)
        return Fetched(view, at, snapshot, self.source_statuses(), time.perf_counter() - started)

    def price_table(self) -> PriceTable:
        """The price table with the config's overrides, loaded once (reconciliation prices with it)."""
        if self._prices is None:
            self._prices = PriceTable.load(self.config.pricing.overrides)
        return self._prices

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
        slos = self.slo_statuses(at)
        cost = cost_snapshot(cur, self.config.budgets, at, self.memo)
        everything = ScopeFilter()
        error_rate, latency = series(cur, everything, at, chart_span, 72)
        markers = change_markers(cur, everything, at - chart_span, at) + self.action_markers(
            at - chart_span, at)
        return OverviewSnapshot(
            at=at,
            slos=slos,
            budgets=cost.budgets,
            spend=cost.totals,
            unpriced_requests=cost.unpriced_requests,
            alerts=alerts_from(slos, cost, source_readers.firing_alerts(self.hub)),
            error_rate=error_rate,
            latency_p95=latency,
            markers=markers,
        )

    def slo_page(self, at: datetime, view: SloView) -> SloPage:
        statuses = self.slo_statuses(at)
        slos = self.config.slos
        detail = None
        if slos:  # the selected SLO, else the first; slo_statuses answers in config order
            i = next((i for i, s in enumerate(slos) if s.name == view.selected), 0)
            if slos[i].promql is None:
                detail = slo_detail(self.cache.cursor(), slos[i], at, view.chart_span,
                                    status=statuses[i])
            else:
                detail = source_readers.promql_detail(self.hub, slos[i], at, statuses[i],
                                                      view.chart_span, self.promql_charts)
        if detail is not None:
            added = self.action_markers(at - view.chart_span, at)
            if added:
                detail = replace(detail, markers=tuple(sorted((*detail.markers, *added),
                                                              key=lambda m: m.ts)))
        return SloPage(statuses, detail)

    def action_markers(self, start: datetime, end: datetime) -> tuple[ChangeMarker, ...]:
        """The runbook actions sent in [start, end) of the data clock, for the charts."""
        return action_markers(self.action_store(), start, end, self.clock() - utc_now())


Reader = Callable[[Backend, Any, datetime], Snapshot]
"""Answers one view type: (backend, view, data time) -> snapshot, on a worker thread."""


def _read_cost(backend: Backend, view: CostView, at: datetime) -> CostPage:
    """Spend and budgets, plus billed vs estimated (reconciliation) and billing freshness."""
    cur = backend.cache.cursor()
    snap = cost_snapshot(cur, backend.config.budgets, at, backend.memo)
    billing = billing_section(cur, backend.config, at, backend.price_table(), memo=backend.memo)
    return CostPage(**{f.name: getattr(snap, f.name) for f in fields(CostSnapshot)}, billing=billing)


def _read_breakdown(backend: Backend, view: BreakdownView, at: datetime) -> Breakdown:
    return breakdown(backend.cache.cursor(), view.filter, at - view.window, at, view.dimension)


def _read_requests(backend: Backend, view: RequestsView, at: datetime) -> RequestsPage:
    rows = worst_requests(backend.cache.cursor(), view.filter, at - view.window, at, view.order)
    return RequestsPage(view, rows)


READERS: Mapping[type[Any], Reader] = MappingProxyType({
    OverviewView: lambda backend, view, at: backend.overview(at, view.chart_span),
    SloView: lambda backend, view, at: backend.slo_page(at, view),
    CostView: _read_cost,
    BreakdownView: _read_breakdown,
    RequestsView: _read_requests,
    TraceView: lambda backend, view, at: backend.trace(view.trace_id),
    SourcesView: lambda backend, view, at: source_readers.read_sources(backend.source_statuses()),
    AlertsView: lambda backend, view, at: source_readers.read_alerts(backend.hub),
    ServingView: lambda backend, view, at: source_readers.read_serving(backend.hub),
    IncidentsView: lambda backend, view, at: read_incidents(backend.incident_store(), view,
                                                            backend.action_store(), utc_now()),
    IncidentView: lambda backend, view, at: read_incident(backend.incident_store(), view),
})
"""The reader of every view type (the routing table `panels/routes.py` is keyed by the same types)."""


def alerts_from(slos: Sequence[SloStatus], cost: CostSnapshot,
                outside: Sequence[ActiveAlert] = ()) -> tuple[Alert, ...]:
    """Firing SLOs, budgets and outside alerts, most severe first; within a level SLOs before
    budgets before outside alerts, each in the order their tables list them, so the first alert
    names the top row. An SLO whose source is down has no level to fire on."""
    burning = worst_first(s for s in slos if s.level > AlertLevel.OK and s.freshness != "down")
    alerts = [Alert(int(s.level), "slo", s.name, s.reason) for s in burning]
    over = budgets_worst_first(b for b in cost.budgets if b.level > BudgetLevel.OK)
    alerts += [Alert(int(b.level), "budget", b.name, b.reason) for b in over]
    alerts += [Alert(alert_level(a), "alert", a.name, a.summary or a.source) for a in outside]
    alerts.sort(key=lambda a: -a.level)  # stable: keeps that order within a level
    return tuple(alerts)


def worst_level(fetched: OverviewSnapshot) -> int:
    """2 if anything pages or is critical, 1 for a ticket or warning, else 0."""
    return max((a.level for a in fetched.alerts), default=0)
