"""Budgets on basis "billed": what the providers billed, the hours after their last figure estimated.

A provider's bills count for the UTC days its figures cover completely
(`coverage`): every billing source of that provider has synced the day, the day had
ended when it was fetched (a figure fetched while its day was under way is partial),
and it is before `at`'s day (today is still moving). For those days the day's bills
(exact `Decimal` sums of `billing`, USD lines only) replace the trace estimates of that
provider; every other hour of the period (after the last figure, or before the figures
begin, and every provider without bills) counts the trace estimates (traces x price
table, the rollups' `cost_usd`), so a budget's spend is one combined series.

Providers and models are matched by reconciliation's own `console.reconcile.match_key`
(`pricing.normalise_provider` / `normalise_model`) on both sides (a model budget for
`gpt-4o-mini` counts the bills of `gpt-4o-mini-2024-07-18`); bill lines with no model count
for global and provider budgets only (a model budget cannot know its share of them). Bills
carry no tenant: config validation refuses a billed budget scoped by tenant
(`console.config.BudgetSpec`).

The burn rates the forecast and the time to exhaustion use are read from the same
combined series: a billed day counts evenly over its 24 hours (a bill has no hourly
shape), the estimated hours as traced.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from console.budgets import basis_label, basis_note, budget_status, period_bounds
from console.cache import billing_store
from console.cache.queries import window_end, window_parts
from console.cache.scope_sql import HourMemo, union_parts
from console.config import ScopeFilter
from console.pricing import normalise_provider
from console.reconcile import match_key
from console.snapshots import BilledBasis, BudgetStatus
from console.timeutil import naive_utc

if TYPE_CHECKING:
    import duckdb

    from console.config import BudgetSpec

__all__ = ["BURN_WINDOWS", "billed_statuses", "coverage"]

BURN_WINDOWS: tuple[tuple[str, timedelta], ...] = (
    ("1h", timedelta(hours=1)), ("6h", timedelta(hours=6)), ("24h", timedelta(hours=24)),
)
"""The same windows as `console.cache.cost_queries.BURN_WINDOWS`."""
NO_PROVIDER = "(no provider)"
"""How spans with no provider are named among the estimated-only providers."""
_DAY = timedelta(days=1)
_ZERO = Decimal(0)

Group = tuple[str, str]
"""(normalised provider, normalised model)."""
Spend = tuple[float, int, int]
"""(estimated cost USD, requests, unpriced requests)."""


def _midnight(d: date) -> datetime:
    return datetime.combine(d, time())


def _sync_rows(cur: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    """Per source: provider, source, first day, end of its complete days, syncs, last fetch."""
    return cur.execute(
        "SELECT provider, source, min(start_day), max(least(end_day, fetched_at::DATE)), count(*),"
        " max(fetched_at) FROM billing_syncs GROUP BY provider, source ORDER BY provider, source"
    ).fetchall()


def _coverage_of(rows: Iterable[tuple[Any, ...]], today: date) -> dict[str, tuple[date, date]]:
    found: dict[str, tuple[date, date]] = {}
    for provider, _source, first, end, *_ in rows:
        p = normalise_provider(provider) or str(provider)
        end = min(end, today)
        a, b = found.get(p, (first, end))
        found[p] = (max(a, first), min(b, end))
    return {p: (a, b) for p, (a, b) in found.items() if a < b}


def coverage(cur: duckdb.DuckDBPyConnection, at: datetime) -> dict[str, tuple[date, date]]:
    """Per provider (normalised): the UTC days [first, end) its bills count for at `at`.

    Every source of the provider must have synced a day for it to count (two organisations'
    bills are only whole where both have figures); a day counts once it had ended when a sync
    fetched it, and only before `at`'s day. Providers with no such day are left out.
    """
    if not billing_store.has_billing(cur):
        return {}
    return _coverage_of(_sync_rows(cur), naive_utc(at).date())


def _bills(cur: duckdb.DuckDBPyConnection, start: date, end: date) -> list[tuple[str, str, date, Decimal]]:
    """USD billed per (normalised provider, normalised model, day) in [start, end), every source."""
    rows = cur.execute(
        "SELECT provider, model, day, sum(amount) FROM billing WHERE day >= ? AND day < ?"
        " AND upper(currency) = 'USD' GROUP BY ALL", [start, end]).fetchall()
    return [(*match_key(p, m), d, Decimal(a)) for p, m, d, a in rows]


@dataclass(frozen=True)
class _Read:
    segments: list[tuple[datetime, datetime]]
    estimates: dict[int, dict[Group, Spend]]
    bills: dict[tuple[str, str, date], Decimal]
    covered: dict[str, tuple[date, date]]

    def billed_day(self, provider: str, day: date) -> bool:
        span = self.covered.get(provider)
        return span is not None and span[0] <= day < span[1]


def _estimates(cur: duckdb.DuckDBPyConnection, segments: Sequence[tuple[datetime, datetime]],
               tables: Literal["both", "hour", "minute"] = "both") -> dict[int, dict[Group, Spend]]:
    """Per segment: the estimated spend per (normalised provider, normalised model)."""
    source, params = union_parts([(i, a, b) for i, (a, b) in enumerate(segments)], ScopeFilter(),
                                 keys=("provider", "model"), hists=(), tables=tables)
    if not source:
        return {}
    rows = cur.execute(
        f"WITH src AS ({source}) SELECT win, provider, model, sum(cost_usd)::DOUBLE,"
        " sum(requests)::BIGINT, sum(unpriced)::BIGINT FROM src GROUP BY ALL", params).fetchall()
    out: dict[int, dict[Group, Spend]] = {}
    for win, provider, model, cost, req, unpriced in rows:
        group = out.setdefault(int(win), {})
        k = match_key(provider, model)
        c, r, u = group.get(k, (0.0, 0, 0))
        group[k] = (c + float(cost or 0.0), r + int(req), u + int(unpriced))
    return out


def _estimates_read(cur: duckdb.DuckDBPyConnection, segments: Sequence[tuple[datetime, datetime]],
                    memo: HourMemo | None) -> dict[int, dict[Group, Spend]]:
    """`_estimates`, with the segments' whole hours read once per data version (`memo` synced)."""
    if memo is None:
        return _estimates(cur, segments)
    key = ("billed-basis", tuple(window_parts(a, b)[0] for a, b in segments))
    hours = memo.get(key, lambda: _estimates(cur, segments, "hour"))
    minutes = _estimates(cur, segments, "minute")
    out: dict[int, dict[Group, Spend]] = {}
    for part in (hours, minutes):
        for seg, groups in part.items():
            dest = out.setdefault(seg, {})
            for k, (c, r, u) in groups.items():
                c0, r0, u0 = dest.get(k, (0.0, 0, 0))
                dest[k] = (c0 + c, r0 + r, u0 + u)
    return out


def _read(cur: duckdb.DuckDBPyConnection, starts: Iterable[datetime], at: datetime,
          memo: HourMemo | None) -> _Read:
    """Segments, their estimates, the bills of covered days and the coverage, for every budget.

    With a `memo`: whole hours of the estimates once per data version, and the bills once per
    state of the billing syncs (every stored fetch adds one)."""
    end = window_end(at)
    if memo is not None:
        memo.sync(cur)
    has = billing_store.has_billing(cur) if memo is None else memo.get(
        ("billing-tables",), lambda: billing_store.has_billing(cur))
    syncs = _sync_rows(cur) if has else []
    covered = _coverage_of(syncs, at.date())
    edges = {*starts, *(end - w for _, w in BURN_WINDOWS)}
    first = min(edges)
    # cut at every provider's first and last billed day too: each segment is then wholly billed
    # or wholly estimated for each provider
    edges |= {_midnight(d) for span in covered.values() for d in span if first < _midnight(d) < end}
    cuts = sorted(edges)
    segments = list(zip(cuts, [*cuts[1:], end], strict=True))
    days = (first.date(), end.date() + _DAY)
    if not has:
        raw: list[tuple[str, str, date, Decimal]] = []
    elif memo is None:
        raw = _bills(cur, *days)
    else:
        version = tuple((r[0], r[1], r[4], r[5]) for r in syncs)
        raw = memo.get(("bills", days, version), lambda: _bills(cur, *days))
    bills: dict[tuple[str, str, date], Decimal] = {}
    for p, m, d, amount in raw:
        span = covered.get(p)
        if span is not None and span[0] <= d < span[1]:
            bills[(p, m, d)] = bills.get((p, m, d), _ZERO) + amount
    return _Read(segments, _estimates_read(cur, segments, memo), bills, covered)


def _in_scope(spec: BudgetSpec) -> tuple[str | None, str | None]:
    """(provider, model) the budget is limited to, normalised (None: any)."""
    if spec.scope == "provider":
        return normalise_provider(spec.match) or "", None
    if spec.scope == "model":
        return None, match_key(None, spec.match)[1]
    return None, None


def _status(spec: BudgetSpec, at: datetime, data: _Read) -> BudgetStatus:
    start, _ = period_bounds(spec.period, at)
    end = window_end(at)
    want_p, want_m = _in_scope(spec)

    def wanted(p: str, m: str) -> bool:
        return (want_p is None or p == want_p) and (want_m is None or m == want_m)

    billed = _ZERO
    estimated = 0.0
    unpriced = 0
    involved: set[str] = set()
    day_bills: dict[date, Decimal] = {}
    """Bills in scope per day (every covered day since the earliest window start)."""
    for (p, m, d), amount in data.bills.items():
        if wanted(p, m):
            day_bills[d] = day_bills.get(d, _ZERO) + amount
            if d >= start.date():
                billed += amount
                involved.add(p)
    rates = dict.fromkeys((label for label, _ in BURN_WINDOWS), 0.0)
    for i, (a, _) in enumerate(data.segments):
        for (p, m), (cost, req, unp) in data.estimates.get(i, {}).items():
            if not wanted(p, m) or data.billed_day(p, a.date()):
                continue
            if a >= start:
                estimated += cost
                unpriced += unp
                if req:
                    involved.add(p)
            for label, w in BURN_WINDOWS:
                if a >= end - w:
                    rates[label] += cost
    # a billed day counts evenly over its 24 hours in the burn windows
    for d, amount in day_bills.items():
        for label, w in BURN_WINDOWS:
            lo, hi = max(_midnight(d), end - w), min(_midnight(d) + _DAY, end)
            if hi > lo:
                rates[label] += float(amount) * ((hi - lo) / _DAY)
    rates = {label: rates[label] / (w / timedelta(hours=1)) for label, w in BURN_WINDOWS}
    if want_p is not None:
        involved.add(want_p)
    elif want_m is None:
        involved |= {p for p, (_, last) in data.covered.items() if last > start.date()}
    days: dict[str, tuple[date, date]] = {}
    for p in sorted(involved):
        span = data.covered.get(p)
        if span is not None and span[1] > start.date():
            days[p] = (max(span[0], start.date()), span[1] - _DAY)
    rest = tuple(p or NO_PROVIDER for p in sorted(involved) if p not in days)
    basis = BilledBasis(billed, estimated, tuple((p, a, b) for p, (a, b) in days.items()), rest,
                        basis_note(start.date(), days, rest), basis_label(start.date(), days, rest))
    return budget_status(spec, at, float(billed) + estimated, rates, unpriced, billed=basis)


def billed_statuses(cur: duckdb.DuckDBPyConnection, specs: Sequence[BudgetSpec], at: datetime,
                    memo: HourMemo | None = None) -> list[BudgetStatus]:
    """The status of each billed budget in `specs` at `at` (one read for all of them)."""
    if not specs:
        return []
    at = naive_utc(at)
    data = _read(cur, [period_bounds(s.period, at)[0] for s in specs], at, memo)
    return [_status(spec, at, data) for spec in specs]
