"""Immutable snapshots: what workers hand to panels.

Workers query the cache (and later the connectors) off the UI thread and post
one of these; panels only render them. Every class is frozen and holds only
tuples, strings, numbers and datetimes, so a snapshot can cross threads safely.
Strings in here that came from outside (tenant, model, route, attribute values,
error messages) are raw: panels must render them through `console.safe_text`.
Times are naive UTC.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import IntEnum
from typing import Literal

from console.config import ScopeFilter
from console.slo import AlertLevel, SeverityMarks
from console.sources import SourceState as SourceState
from console.sources import SourceStatus as SourceStatus

Dimension = Literal["service", "provider", "model", "tenant", "route", "prompt_version"]
DIMENSIONS: tuple[Dimension, ...] = ("service", "provider", "model", "tenant", "route", "prompt_version")
MISSING_LABEL = "(none)"
"""How a missing dimension value ('' in rollups and breakdowns) is shown."""


class BudgetLevel(SeverityMarks, IntEnum):
    """Budget severity, ordered OK < WARNING < CRITICAL, with colour-free renderings."""

    OK = 0
    WARNING = 1
    CRITICAL = 2



@dataclass(frozen=True)
class SloStatus:
    """One SLO evaluated at a point in time."""

    name: str
    kind: str
    objective: float
    window: timedelta
    filter: ScopeFilter
    threshold_ms: float | None
    requests: int
    """Requests in the SLO window."""
    compliance: float | None
    """Good share over the SLO window; None without traffic."""
    budget_remaining: float
    """Fraction of the window's error budget left (1 untouched, below 0 overspent)."""
    time_to_exhaustion: timedelta | None
    """At the 1h burn rate; None when not burning."""
    burn_rates: tuple[tuple[str, float | None], ...]
    """(window label, burn rate) for 5m, 30m, 1h, 2h, 6h, 24h, 3d."""
    level: AlertLevel
    reason: str
    """Why the level, e.g. "page: 1h burn 16.2 and 5m burn 20.1 > 14.4"."""
    source: str = "cache"
    """Where the SLI comes from: `cache` or `prometheus:<source name>`."""
    freshness: SourceState = "live"
    """The state of that source: figures of a stale source are its last ones, of a down source
    none (compliance None, reason says why)."""

    def burn(self, label: str) -> float | None:
        """The burn rate of one window label, None if absent or without traffic."""
        return dict(self.burn_rates).get(label)


def worst_first(slos: Iterable[SloStatus]) -> list[SloStatus]:
    """SLOs ordered as every view lists them: highest alert level, then least budget left
    (an SLO without figures, its source down, after those of its level)."""
    return sorted(slos, key=lambda s: (-int(s.level), s.freshness == "down",
                                       0.0 if math.isnan(s.budget_remaining) else s.budget_remaining))


def budgets_worst_first(budgets: Iterable[BudgetStatus]) -> list[BudgetStatus]:
    """Budgets ordered as every view lists them: highest level, then most of the limit used."""
    return sorted(budgets, key=lambda b: (-int(b.level), -b.used))


@dataclass(frozen=True)
class BudgetStatus:
    """One budget over its current period."""

    name: str
    scope: str
    match: str | None
    period: str
    period_start: datetime
    period_end: datetime
    limit_usd: float
    spent_usd: float
    remaining_usd: float
    used: float
    """spent / limit."""
    burn_usd_per_hour: tuple[tuple[str, float], ...]
    """(window label, USD per hour) for 1h, 6h, 24h."""
    forecast_usd: float
    """Spent plus the 6h burn rate extrapolated to the period end."""
    time_to_exhaustion: timedelta | None
    """At the 1h burn rate; 0 when already over; None when not spending."""
    level: BudgetLevel
    reason: str
    unpriced_requests: int
    """Requests in scope this period with no price (their cost is unknown, not $0)."""
    basis: Literal["estimated", "billed"] = "estimated"
    billed: BilledBasis | None = None
    """For basis "billed": what came from the bills and what from estimates."""


@dataclass(frozen=True)
class BilledBasis:
    """A billed budget's spend this period: bills per UTC day up to each provider's last complete
    figure, trace estimates for every other hour (after it, or before its figures begin)."""

    billed_usd: Decimal
    """The bills counted, exact (every day of `days`)."""
    estimated_usd: float
    """The trace estimates counted (the hours no bill covers)."""
    days: tuple[tuple[str, date, date], ...]
    """(provider, first day, last day) billed in this period, inclusive, by provider."""
    estimated_only: tuple[str, ...]
    """Providers in scope with spend this period and no bill for any of its days."""
    note: str
    """In words: "billed to 12-03, estimated after" (provider names are raw: render safely)."""
    label: str = ""
    """`note` short enough for a table cell: "billed to 12-03, est. after"."""


@dataclass(frozen=True)
class SpendRow:
    """Spend of one key (a provider, model, tenant or prompt version) in one period."""

    key: str
    """'' when the spans carried no value for the dimension."""
    cost_usd: float
    requests: int
    unpriced: int

    @property
    def label(self) -> str:
        """The key for display: "(none)" for a missing value."""
        return self.key or MISSING_LABEL


@dataclass(frozen=True)
class SpendTable:
    """Spend in one period broken down by one dimension, largest first."""

    period: Literal["today", "week", "month"]
    dimension: Dimension
    rows: tuple[SpendRow, ...]


@dataclass(frozen=True)
class Mover:
    """A key whose spend rate changed most against the previous window."""

    dimension: Dimension
    key: str
    previous_usd_per_hour: float
    current_usd_per_hour: float

    @property
    def change(self) -> float | None:
        """current / previous; None when there was no previous spend."""
        if self.previous_usd_per_hour <= 0:
            return None
        return self.current_usd_per_hour / self.previous_usd_per_hour


@dataclass(frozen=True)
class CostSnapshot:
    """Spend totals, breakdowns, budgets and movers at `at`."""

    at: datetime
    totals: tuple[tuple[str, float], ...]
    """("today" | "week" | "month", USD)."""
    tables: tuple[SpendTable, ...]
    budgets: tuple[BudgetStatus, ...]
    movers: tuple[Mover, ...]
    mover_window: timedelta
    """Current window (1h) compared with the window before it."""
    retry_spend_usd: float
    """Spend today on requests that failed (retries cost money too)."""
    unpriced_requests: int
    """Requests this month without a price."""
    requests: int
    """Requests this month."""

    def table(self, period: str, dimension: str) -> SpendTable | None:
        """One breakdown, if computed."""
        for t in self.tables:
            if t.period == period and t.dimension == dimension:
                return t
        return None


@dataclass(frozen=True)
class Point:
    """One chart point; value None where there was no traffic."""

    ts: datetime
    value: float | None


@dataclass(frozen=True)
class Series:
    """One line on a chart."""

    name: str
    unit: str
    points: tuple[Point, ...]


@dataclass(frozen=True)
class ChangeMarker:
    """Something changed at `ts`: a new prompt or model version first seen in traces."""

    ts: datetime
    kind: Literal["prompt_version", "model", "action"]
    label: str


@dataclass(frozen=True)
class SloDetail:
    """An SLO with its charts: error rate, p95 latency and burn rate over time."""

    status: SloStatus
    error_rate: Series
    latency_p95: Series
    burn_rate: Series
    markers: tuple[ChangeMarker, ...]


@dataclass(frozen=True)
class BreakdownRow:
    """One key of a drill-down breakdown."""

    key: str
    """'' when the spans carried no value for the dimension."""
    requests: int
    errors: int
    error_rate: float | None
    rate_limited: int
    latency_p95_ms: float | None
    cost_usd: float
    """Cost of the priced requests only."""
    unpriced: int
    """Requests with no price: their cost is unknown (not in cost_usd), never $0."""

    @property
    def label(self) -> str:
        """The key for display: "(none)" for a missing value."""
        return self.key or MISSING_LABEL


@dataclass(frozen=True)
class Breakdown:
    """Traffic in scope over [start, end) grouped by one dimension, worst first."""

    filter: ScopeFilter
    start: datetime
    end: datetime
    dimension: Dimension
    rows: tuple[BreakdownRow, ...]


@dataclass(frozen=True)
class RequestRow:
    """One request (span) from the worst-requests list."""

    trace_id: str
    span_id: str
    start_time: datetime
    service: str | None
    provider: str | None
    model: str | None
    tenant: str | None
    route: str | None
    prompt_version: str | None
    status: str
    error_type: str | None
    http_status: int | None
    duration_ms: float | None
    ttft_ms: float | None
    cost_usd: float | None


@dataclass(frozen=True)
class TraceSpan:
    """One span of a trace, with its redacted attributes."""

    span_id: str
    parent_span_id: str | None
    name: str | None
    service: str | None
    start_time: datetime
    duration_ms: float | None
    status: str
    status_message: str | None
    attributes: tuple[tuple[str, str], ...]
    """Every stored column and attribute as (key, value text), already redacted at ingest."""


@dataclass(frozen=True)
class TraceTree:
    """All spans of one trace, parents before children (depth-first, by start time)."""

    trace_id: str
    spans: tuple[TraceSpan, ...]
    depths: tuple[int, ...] = field(default=())


@dataclass(frozen=True)
class Alert:
    """A firing SLO or budget, as listed on the overview."""

    level: int
    """AlertLevel / BudgetLevel value: 2 page/critical, 1 ticket/warning."""
    source: Literal["slo", "budget", "alert"]
    name: str
    reason: str


@dataclass(frozen=True)
class OverviewSnapshot:
    """Everything the overview shows, computed in one worker pass."""

    at: datetime
    slos: tuple[SloStatus, ...]
    budgets: tuple[BudgetStatus, ...]
    spend: tuple[tuple[str, float], ...]
    unpriced_requests: int
    alerts: tuple[Alert, ...]
    error_rate: Series
    latency_p95: Series
    markers: tuple[ChangeMarker, ...]
