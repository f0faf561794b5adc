"""SLO reads for the console and `llmdeck status`: statuses, chart series, change markers.

Everything reads the rollups, never `spans`, so the cost does not grow with span
count. `slo_statuses` runs every second in the UI: SLOs sharing a filter share
one scan, and the nested windows (5m ... 3d and each SLO window, all ending
now) are read as disjoint rings, so every rollup row is read once, in a single
query for all SLOs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

import duckdb

from console.cache.queries import rings, window_end, window_parts
from console.cache.rollups import GAMMA
from console.cache.scope_sql import (
    METRIC_COLUMNS,
    HourMemo,
    Totals,
    add_sums,
    filter_sql,
    group_dims,
    hist_columns,
    is_coarse,
    rollup_sums,
    rollup_tables,
    union_parts,
)
from console.config import ScopeFilter, SloSpec
from console.slo import (
    REQUIRED_WINDOWS,
    SloKind,
    WindowCounts,
    burn_rate,
    counts_for,
    evaluate_windows,
)
from console.snapshots import ChangeMarker, Point, Series, SloDetail, SloStatus
from console.timeutil import ceil_to, naive_utc

MARKER_LOOKBACK = timedelta(days=7)
"""A prompt version or model is new when it was not seen in this long before the chart."""
_HOUR = timedelta(hours=1)
_MINUTE = timedelta(minutes=1)


def bucket_upper_bound(b: int) -> float:
    """The upper bound in ms of histogram bucket b: it holds (GAMMA**(b-1), GAMMA**b]."""
    return float(GAMMA**b)


def _hists_for(kind: str) -> tuple[str, ...]:
    return {"latency": ("latency_hist",), "ttft": ("ttft_hist",)}.get(kind, ())


def window_counts(spec: SloSpec, totals: Totals) -> WindowCounts:
    """Good/total requests of `totals` for the SLO's kind (latency: buckets under the threshold)."""
    return counts_for(SloKind(spec.kind), totals.counts(), spec.threshold_ms, bucket_upper_bound)


def slo_statuses(
    cur: duckdb.DuckDBPyConnection, specs: Sequence[SloSpec], at: datetime,
    memo: HourMemo | None = None,
) -> tuple[SloStatus, ...]:
    """Every SLO at `at`: compliance, budget, burn rates over REQUIRED_WINDOWS, alert level.

    With a `memo`, the whole hours of every window are read once per data version.
    """
    if not specs:
        return ()
    end = window_end(naive_utc(at))
    filters = list(dict.fromkeys(spec.filter for spec in specs))
    widths = sorted(set(REQUIRED_WINDOWS) | {timedelta(days=s.window_days) for s in specs})
    # disjoint rings between the nested windows, all read in one pass for every filter
    parts = rings(widths, end)
    hists = {h for s in specs for h in _hists_for(s.kind)}
    keys = group_dims(filters)

    def read(tables: Literal["both", "hour", "minute"]) -> dict[tuple[object, ...], Totals]:
        source, params = union_parts(parts, ScopeFilter(), keys=keys, hists=hists, tables=tables)
        return rollup_sums(cur, source, params, ("win",), hists, groups=filters) if source else {}

    if memo is None:
        sums = read("both")
    else:
        memo.sync(cur)
        hour_ranges = tuple((label, window_parts(a, b)[0]) for label, a, b in parts)
        key = ("slo", hour_ranges, tuple(filters), tuple(sorted(hists)))
        sums = add_sums(memo.get(key, lambda: read("hour")), read("minute"))

    # each filter's nested windows, summed once however many SLOs share the filter
    cumulative: list[dict[timedelta, Totals]] = []
    for gid in range(len(filters)):
        running, windows = Totals(), {}
        for ring, width in enumerate(widths):
            running = running + sums.get((gid, ring), Totals())
            windows[width] = running
        cumulative.append(windows)
    return tuple(_status(spec, cumulative[filters.index(spec.filter)]) for spec in specs)


def _status(spec: SloSpec, cumulative: dict[timedelta, Totals]) -> SloStatus:
    window = timedelta(days=spec.window_days)
    counts = {w: window_counts(spec, cumulative[w]) for w in (*REQUIRED_WINDOWS, window)}
    ev = evaluate_windows(counts, spec.objective, window)
    return SloStatus(
        name=spec.name,
        kind=spec.kind,
        objective=spec.objective,
        window=window,
        filter=spec.filter,
        threshold_ms=spec.threshold_ms,
        requests=cumulative[window].requests,
        compliance=ev.compliance,
        budget_remaining=ev.budget_remaining,
        time_to_exhaustion=ev.time_to_exhaustion,
        burn_rates=ev.burn_rates,
        level=ev.level,
        reason=ev.reason,
    )


# ---------------------------------------------------------------------------
# Chart series
# ---------------------------------------------------------------------------


def chart_steps(at: datetime, span: timedelta, points: int) -> tuple[datetime, timedelta]:
    """(start, step) of `points` steps ending at the current minute (hour, for steps >= 1h)."""
    if points < 1:
        raise ValueError(f"points must be >= 1, got {points}")
    at = naive_utc(at)
    raw = span / points
    if raw >= _HOUR:
        step = _HOUR * max(1, round(raw / _HOUR))
        end = ceil_to(at, _HOUR)
    else:
        step = _MINUTE * max(1, round(raw / _MINUTE))
        end = window_end(at)
    return end - step * points, step


def _stepped(
    cur: duckdb.DuckDBPyConnection, flt: ScopeFilter, start: datetime, step: timedelta,
    points: int, hists: tuple[str, ...],
) -> list[Totals]:
    """Rollup sums of each step [start + i*step, start + (i+1)*step)."""
    hour_table, minute_table = rollup_tables(is_coarse(flt))
    table = hour_table if step >= _HOUR else minute_table
    where, where_params = filter_sql(flt)
    seconds = int(step.total_seconds())
    source = (
        f"SELECT CAST(date_diff('second', ?::TIMESTAMP, ts) // {seconds} AS INTEGER) AS win,"
        f" {METRIC_COLUMNS}, {hist_columns(hists)}"
        f" FROM {table} WHERE ts >= ? AND ts < ?{where}"
    )
    params: list[object] = [start, start, start + step * points, *where_params]
    sums = rollup_sums(cur, source, params, ("win",), hists)
    return [sums.get((i,), Totals()) for i in range(points)]


def _series(name: str, unit: str, start: datetime, step: timedelta,
            values: Sequence[float | None]) -> Series:
    return Series(name, unit, tuple(Point(start + i * step, v) for i, v in enumerate(values)))


def series(
    cur: duckdb.DuckDBPyConnection, flt: ScopeFilter, at: datetime, span: timedelta, points: int
) -> tuple[Series, Series]:
    """Error rate (fraction) and p95 latency (ms) per step over the `span` ending at `at`."""
    start, step = chart_steps(at, span, points)
    steps = _stepped(cur, flt, start, step, points, ("latency_hist",))
    return (
        _series("error_rate", "fraction", start, step, [t.error_rate for t in steps]),
        _series("latency_p95", "ms", start, step, [t.latency_quantile(0.95) for t in steps]),
    )


def slo_detail(
    cur: duckdb.DuckDBPyConnection,
    spec: SloSpec,
    at: datetime,
    span: timedelta = timedelta(hours=6),
    points: int = 72,
    status: SloStatus | None = None,
) -> SloDetail:
    """One SLO's status with its error rate, p95 latency and burn rate charts and change markers.

    Pass `status` when the caller already evaluated this SLO at `at` (saves a query).
    """
    if status is None:
        status = slo_statuses(cur, [spec], at)[0]
    start, step = chart_steps(at, span, points)
    hists = tuple(dict.fromkeys(("latency_hist", *_hists_for(spec.kind))))
    steps = _stepped(cur, spec.filter, start, step, points, hists)
    burns = [burn_rate(window_counts(spec, t), spec.objective) for t in steps]
    return SloDetail(
        status=status,
        error_rate=_series("error_rate", "fraction", start, step, [t.error_rate for t in steps]),
        latency_p95=_series("latency_p95", "ms", start, step,
                            [t.latency_quantile(0.95) for t in steps]),
        burn_rate=_series("burn_rate", "x", start, step, burns),
        markers=change_markers(cur, spec.filter, start, start + step * points),
    )


# ---------------------------------------------------------------------------
# Change markers
# ---------------------------------------------------------------------------

_MARKER_LABELS = {"prompt_version": "prompt", "model": "model"}


def change_markers(
    cur: duckdb.DuckDBPyConnection, flt: ScopeFilter, start: datetime, end: datetime
) -> tuple[ChangeMarker, ...]:
    """Prompt versions and models in scope first seen in [start, end), unseen the 7 days before.

    Without any traffic in scope in those 7 days there is no baseline to tell new
    from old, so there are no markers.
    """
    start, end = naive_utc(start), naive_utc(end)
    before, before_params = union_parts(
        [(0, start - MARKER_LOOKBACK, start)], flt, keys=("model", "prompt_version"), hists=(),
        coarse=False,
    )
    where, where_params = filter_sql(flt)
    selects = [
        f"SELECT '{dim}' AS kind, {dim} AS value, min(ts) AS first FROM now"
        f" WHERE {dim} <> '' AND {dim} NOT IN (SELECT {dim} FROM before)"
        " AND EXISTS (SELECT 1 FROM before) GROUP BY ALL"
        for dim in _MARKER_LABELS
    ]
    rows = cur.execute(
        f"WITH before AS MATERIALIZED (SELECT DISTINCT model, prompt_version FROM ({before})),"
        " now AS MATERIALIZED (SELECT ts, model, prompt_version FROM rollup_minute"
        f" WHERE ts >= ? AND ts < ?{where}) "
        + " UNION ALL ".join(selects) + " ORDER BY first, kind, value",
        [*before_params, start, end, *where_params],
    ).fetchall()
    return tuple(
        ChangeMarker(ts=first, kind=kind, label=f"{_MARKER_LABELS[kind]} {value}")
        for kind, value, first in rows
    )
