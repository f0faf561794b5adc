"""Spend reads for the cost panel and `llmdeck status`: totals, breakdowns, budgets, movers.

One query over the full rollups answers everything: the periods (today, ISO
week, month to date) and the recent windows (1h, 6h, 24h and the hour before
the last) are cut into disjoint segments, each summed per provider, model,
tenant, prompt version and status with GROUPING SETS; periods and windows are
then sums of segments. A missing key (no tenant, say) is the empty string, as
in the rollups. Budgets on basis "billed" are answered by `console.cache.billed_budgets`
(bills up to each provider's last figure, these estimates after).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Literal

import duckdb

from console.budgets import BudgetPeriod, budget_status, period_bounds
from console.cache.billed_budgets import billed_statuses
from console.cache.queries import window_end, window_parts
from console.cache.scope_sql import HourMemo, union_parts
from console.config import BudgetSpec, ScopeFilter
from console.snapshots import CostSnapshot, Dimension, Mover, SpendRow, SpendTable
from console.timeutil import naive_utc

PeriodName = Literal["today", "week", "month"]
PERIODS: tuple[tuple[PeriodName, BudgetPeriod], ...] = (
    ("today", "day"), ("week", "week"), ("month", "month"),
)
"""(spend-table period, budget period) pairs."""
SPEND_DIMENSIONS: tuple[Dimension, ...] = ("provider", "model", "tenant", "prompt_version")
BURN_WINDOWS: tuple[tuple[str, timedelta], ...] = (
    ("1h", timedelta(hours=1)), ("6h", timedelta(hours=6)), ("24h", timedelta(hours=24)),
)
MOVER_WINDOW = timedelta(hours=1)
MOVER_DIMENSIONS: tuple[Dimension, ...] = ("tenant", "model")
TOP_MOVERS = 5
MOVER_MIN_USD_PER_HOUR = 0.01
MOVER_MIN_SHARE = 0.02
"""A mover must spend at least this share of its dimension's current USD/hour."""
MAX_TABLE_ROWS = 50

_KEYS = ("provider", "model", "tenant", "prompt_version", "status")
_TOTAL = ("", "")
_BUDGET_KEYS = {"global": None, "provider": "provider", "model": "model", "tenant": "tenant"}

Key = tuple[str, str]
"""(dimension, value); ("", "") is the total."""
Spend = tuple[float, int, int]
"""(cost USD, requests, unpriced requests)."""


def _segments(cuts: Iterable[datetime], end: datetime) -> list[tuple[datetime, datetime]]:
    edges = sorted(set(cuts))
    return list(zip(edges, [*edges[1:], end], strict=True))


def _sum(per_segment: dict[int, dict[Key, Spend]], segments: Iterable[int]) -> dict[Key, Spend]:
    out: dict[Key, Spend] = {}
    for seg in segments:
        for key, (cost, req, unpriced) in per_segment.get(seg, {}).items():
            c, r, u = out.get(key, (0.0, 0, 0))
            out[key] = (c + cost, r + req, u + unpriced)
    return out


def _spend_by_segment(
    cur: duckdb.DuckDBPyConnection, segments: Sequence[tuple[datetime, datetime]],
    tables: Literal["both", "hour", "minute"] = "both",
) -> dict[int, dict[Key, Spend]]:
    """Per segment: spend per (dimension, value) for every dimension in _KEYS, and the total."""
    source, params = union_parts(
        [(i, a, b) for i, (a, b) in enumerate(segments)], ScopeFilter(), keys=_KEYS, hists=(),
        coarse=False, tables=tables,
    )
    if not source:  # no whole hours (or no ragged edges) in any segment
        return {}
    sets = ", ".join(["(win)", *(f"(win, {k})" for k in _KEYS)])
    rows = cur.execute(
        f"WITH src AS ({source}) SELECT win, {', '.join(_KEYS)}, sum(cost_usd)::DOUBLE,"
        f" sum(requests)::BIGINT, sum(unpriced)::BIGINT FROM src GROUP BY GROUPING SETS ({sets})",
        params,
    ).fetchall()
    out: dict[int, dict[Key, Spend]] = {}
    for win, *values, cost, req, unpriced in rows:
        # rollup dimensions are NOT NULL, so the one non-NULL key is the grouped one
        key = next(((d, v) for d, v in zip(_KEYS, values, strict=True) if v is not None), _TOTAL)
        out.setdefault(int(win), {})[key] = (float(cost or 0.0), int(req), int(unpriced))
    return out


def _spend_read(
    cur: duckdb.DuckDBPyConnection, segments: Sequence[tuple[datetime, datetime]],
    memo: HourMemo | None,
) -> dict[int, dict[Key, Spend]]:
    """`_spend_by_segment`, with the segments' whole hours read once per data version."""
    if memo is None:
        return _spend_by_segment(cur, segments)
    memo.sync(cur)
    key = ("cost", tuple(window_parts(a, b)[0] for a, b in segments))
    hours = memo.get(key, lambda: _spend_by_segment(cur, segments, "hour"))
    minutes = _spend_by_segment(cur, segments, "minute")
    return {seg: _sum({0: hours.get(seg, {}), 1: minutes.get(seg, {})}, (0, 1))
            for seg in hours.keys() | minutes.keys()}


def cost_snapshot(
    cur: duckdb.DuckDBPyConnection, budgets: Sequence[BudgetSpec], at: datetime,
    memo: HourMemo | None = None,
) -> CostSnapshot:
    """Spend to date per period and dimension, budget states and spend-rate movers at `at`.

    With a `memo`, the whole hours of every segment are read once per data version.
    """
    at = naive_utc(at)
    end = window_end(at)
    starts = {name: period_bounds(period, at)[0] for name, period in PERIODS}
    recent_edges = [end - w for _, w in BURN_WINDOWS] + [end - 2 * MOVER_WINDOW, end - MOVER_WINDOW]
    # one set of disjoint segments cut at every edge; each window is a run of them
    segments = _segments([*starts.values(), *recent_edges], end)
    per_segment = _spend_read(cur, segments, memo)

    def since(start: datetime, until: datetime = end) -> dict[Key, Spend]:
        return _sum(per_segment, (i for i, (a, b) in enumerate(segments) if a >= start and b <= until))

    periods = {name: since(start) for name, start in starts.items()}
    burns = {label: since(end - w) for label, w in BURN_WINDOWS}
    previous = since(end - 2 * MOVER_WINDOW, end - MOVER_WINDOW)
    current = since(end - MOVER_WINDOW)

    billed = iter(billed_statuses(cur, [s for s in budgets if s.basis == "billed"], at, memo))
    statuses = []
    for spec in budgets:
        if spec.basis == "billed":
            statuses.append(next(billed))
            continue
        dim = _BUDGET_KEYS[spec.scope]
        key = _TOTAL if dim is None else (dim, spec.match or "")
        period_name = next(name for name, period in PERIODS if period == spec.period)
        spent, _, unpriced = periods[period_name].get(key, (0.0, 0, 0))
        rates = {label: burns[label].get(key, (0.0, 0, 0))[0] / (w / timedelta(hours=1))
                 for label, w in BURN_WINDOWS}
        statuses.append(budget_status(spec, at, spent, rates, unpriced))

    month = periods["month"].get(_TOTAL, (0.0, 0, 0))
    return CostSnapshot(
        at=at,
        totals=tuple((name, periods[name].get(_TOTAL, (0.0, 0, 0))[0]) for name, _ in PERIODS),
        tables=tuple(
            SpendTable(name, dim, _rows(periods[name], dim))
            for name, _ in PERIODS for dim in SPEND_DIMENSIONS
        ),
        budgets=tuple(statuses),
        movers=_movers(previous, current),
        mover_window=MOVER_WINDOW,
        retry_spend_usd=periods["today"].get(("status", "error"), (0.0, 0, 0))[0],
        unpriced_requests=month[2],
        requests=month[1],
    )


def _rows(spend: dict[Key, Spend], dim: str) -> tuple[SpendRow, ...]:
    rows = [SpendRow(value, cost, req, unpriced)
            for (d, value), (cost, req, unpriced) in spend.items() if d == dim]
    rows.sort(key=lambda r: (-r.cost_usd, -r.requests, r.key))
    return tuple(rows[:MAX_TABLE_ROWS])


def _movers(previous: dict[Key, Spend], current: dict[Key, Spend]) -> tuple[Mover, ...]:
    """Tenants and models whose USD/hour rose most against the window before, if it matters."""
    hours = MOVER_WINDOW / timedelta(hours=1)
    found: list[Mover] = []
    for dim in MOVER_DIMENSIONS:
        now = {v: cost / hours for (d, v), (cost, _, _) in current.items() if d == dim}
        floor = max(MOVER_MIN_USD_PER_HOUR, MOVER_MIN_SHARE * sum(now.values()))
        for value, rate in now.items():
            before = previous.get((dim, value), (0.0, 0, 0))[0] / hours
            if rate >= floor and rate > before:
                found.append(Mover(dim, value, before, rate))
    found.sort(key=lambda m: (-(m.current_usd_per_hour - m.previous_usd_per_hour), m.dimension, m.key))
    return tuple(found[:TOP_MOVERS])
