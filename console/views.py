"""What a screen asks for (views) and what it is handed back (snapshots); no DuckDB behind them.

A view is a frozen description of what a screen shows (the overview, one SLO,
a breakdown with its filter...). The backend answers a view on a worker thread
with an immutable `Fetched`; the UI thread only renders it. Panels import these
types from here, so importing a panel loads neither DuckDB nor the cache.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from console.billing_view import BillingSection
from console.config import ScopeFilter
from console.incident_views import IncidentPage, IncidentsPage, IncidentsView, IncidentView
from console.snapshots import (
    Breakdown,
    CostSnapshot,
    Dimension,
    OverviewSnapshot,
    RequestRow,
    SloDetail,
    SloStatus,
    TraceTree,
)
from console.source_views import (
    AlertsPage,
    AlertsView,
    ServingPage,
    ServingView,
    SourcesPage,
    SourcesView,
)
from console.sources import SourceStatus

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
    """Spend, budgets, movers, and billed vs estimated."""


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


View = (OverviewView | SloView | CostView | BreakdownView | RequestsView | TraceView | SourcesView
        | AlertsView | ServingView | IncidentsView | IncidentView)


@dataclass(frozen=True)
class SloPage:
    """What the SLO screen shows."""

    statuses: tuple[SloStatus, ...]
    detail: SloDetail | None


@dataclass(frozen=True)
class CostPage(CostSnapshot):
    """What the cost screen shows: the spend snapshot plus billed vs estimated."""

    billing: BillingSection | None = None
    """None when the cache could not say (a cache made before billing existed reads as empty)."""


@dataclass(frozen=True)
class RequestsPage:
    """What the requests screen shows."""

    view: RequestsView
    rows: tuple[RequestRow, ...]


Snapshot = (OverviewSnapshot | SloPage | CostSnapshot | Breakdown | RequestsPage | TraceTree
            | SourcesPage | AlertsPage | ServingPage | IncidentsPage | IncidentPage | None)


@dataclass(frozen=True)
class Fetched:
    """A view's snapshot, when it was taken and how long it took, plus source freshness."""

    view: View
    at: datetime
    """The data time ("now" on the backend's clock)."""
    snapshot: Snapshot
    sources: tuple[SourceStatus, ...]
    seconds: float
