"""Minute and hour rollups, maintained incrementally as spans are stored.

Each rollup row holds counts, tokens, cost and two histograms (latency and
time to first token) over fixed log-spaced buckets: bucket `b` covers
(GAMMA**(b-1), GAMMA**b] milliseconds, and reads back as the value whose
relative error to anything in the bucket is at most ALPHA (about 1%). Ingest
appends partial rows per batch; `compact` merges partials in a time range so
readers scan one row per key.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from datetime import datetime, timedelta

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from console.cache.schema import COARSE_DIMS, ROLLUP_DIMS
from console.timeutil import EPOCH

GAMMA = 1.02
ALPHA = (GAMMA - 1) / (GAMMA + 1)
MIN_MS = 0.001
# Full-dimension rollups (drill-down by tenant, route, prompt version) ...
GRAINS = {"rollup_minute": "minute", "rollup_hour": "hour"}
# ... and coarse ones for the overview and `status`, whose size stays bounded by
# the number of (service, provider, model) however dense the traffic.
COARSE_GRAINS = {"rollup_minute_svc": "minute", "rollup_hour_svc": "hour"}


def all_tables() -> list[tuple[str, str, tuple[str, ...]]]:
    """Every rollup table with its time grain and key dimensions."""
    return [(t, g, ROLLUP_DIMS) for t, g in GRAINS.items()] + [
        (t, g, COARSE_DIMS) for t, g in COARSE_GRAINS.items()
    ]

_LN_GAMMA = math.log(GAMMA)


def bucket_sql(expr: str) -> str:
    """SQL for the bucket index of a millisecond value (NULL stays NULL)."""
    # greatest() ignores NULL, so the NULL case must be explicit.
    return (
        f"CASE WHEN {expr} IS NULL THEN NULL"
        f" ELSE CAST(ceil(ln(greatest({expr}, {MIN_MS})) / {_LN_GAMMA!r}) AS SMALLINT) END"
    )


_GRAIN_NS = {"minute": 60_000_000_000, "hour": 3_600_000_000_000}


def truncate_sql(grain: str, expr: str) -> str:
    """Start of the minute/hour of a TIMESTAMP_NS, in integer nanoseconds (date_trunc rounds to µs first)."""
    step = _GRAIN_NS[grain]
    return f"make_timestamp(epoch_ns({expr}) // {step} * {step // 1000})"


def bucket_of(ms: float) -> int:
    return math.ceil(math.log(max(ms, MIN_MS)) / _LN_GAMMA)


def bucket_value(b: int) -> float:
    """The representative value of bucket b (within ALPHA of anything in it)."""
    return 2 * GAMMA**b / (GAMMA + 1)


def quantile(hist: Iterable[tuple[int, int]], q: float) -> float | None:
    """Nearest-rank quantile from (bucket, count) pairs; None when empty."""
    pairs = sorted(hist)
    total = sum(n for _, n in pairs)
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for b, n in pairs:
        seen += n
        if seen >= rank:
            return bucket_value(b)
    return bucket_value(pairs[-1][0])


def _dims_select() -> str:
    return ", ".join(f"coalesce({d}, '') AS {d}" for d in ROLLUP_DIMS)


def _hist_sql(buckets: str) -> str:
    """A list of bucket indexes (NULLs ignored) as the histogram column's (bucket, count) list."""
    return (
        f"coalesce(list_transform(map_entries(list_aggregate({buckets}, 'histogram')),"
        " lambda e: {'b': e.key, 'n': e.value::INTEGER}), [])"
    )


def append_partials(cur: duckdb.DuckDBPyConnection, source: str) -> None:
    """Aggregate the spans in `source` (a table, or a query in parentheses) into partial rollup rows."""
    cur.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _rollup_base AS
        SELECT start_time, {_dims_select()},
               rate_limited, fallback, input_tokens, output_tokens, cache_read_tokens,
               cost_usd, unpriced, duration_ms,
               {bucket_sql("duration_ms")} AS lb, {bucket_sql("ttft_ms")} AS tb
        FROM (SELECT *, coalesce(request_model, response_model) AS model FROM {source})
        """
    )
    for table, grain, dims in all_tables():
        keys = ", ".join(dims)
        # One GROUP BY per table: the bucket indexes are gathered as plain lists and
        # counted per row afterwards (cheaper than grouping by bucket, then listing structs).
        cur.execute(
            f"""
            INSERT INTO {table}
            SELECT ts, {keys}, requests, errors, rate_limited, fallbacks, input_tokens,
                   output_tokens, cache_read_tokens, cost_usd, unpriced, latency_sum_ms,
                   {_hist_sql("lbs")}, {_hist_sql("tbs")}
            FROM (
                SELECT {truncate_sql(grain, "start_time")} AS ts, {keys},
                       count(*) AS requests,
                       count(*) FILTER (WHERE status = 'error') AS errors,
                       count(*) FILTER (WHERE rate_limited) AS rate_limited,
                       count(*) FILTER (WHERE fallback) AS fallbacks,
                       coalesce(sum(input_tokens), 0) AS input_tokens,
                       coalesce(sum(output_tokens), 0) AS output_tokens,
                       coalesce(sum(cache_read_tokens), 0) AS cache_read_tokens,
                       coalesce(sum(cost_usd), 0) AS cost_usd,
                       count(*) FILTER (WHERE unpriced) AS unpriced,
                       coalesce(sum(duration_ms), 0) AS latency_sum_ms,
                       list(lb) FILTER (WHERE lb IS NOT NULL) AS lbs,
                       list(tb) FILTER (WHERE tb IS NOT NULL) AS tbs
                FROM _rollup_base GROUP BY ts, {keys}
            )
            """
        )
    cur.execute("DROP TABLE _rollup_base")


def _merge_hist_sql(table: str, column: str, where: str, keys: str) -> str:
    return f"""
        SELECT ts, {keys}, list({{'b': b, 'n': n}}) AS h FROM (
            SELECT ts, {keys}, u.b AS b, sum(u.n)::INTEGER AS n FROM (
                SELECT ts, {keys}, unnest({column}) AS u FROM {table} WHERE {where}
            ) GROUP BY ts, {keys}, u.b
        ) GROUP BY ts, {keys}
    """


def compact(cur: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> None:
    """Merge partial rollup rows with ts in [start, end] into one row per key.

    Only keys that actually have more than one row are rewritten. Runs inside
    the caller's transaction.
    """
    sums = ", ".join(f"sum({m}) AS {m}" for m in _SUMMED)
    for table, grain, dims in all_tables():
        keys = ", ".join(dims)
        where = (
            f"ts >= date_trunc('{grain}', TIMESTAMP '{start:%Y-%m-%d %H:%M:%S}')"
            f" AND ts <= TIMESTAMP '{end:%Y-%m-%d %H:%M:%S}'"
        )
        cur.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE _partial AS
            SELECT * FROM {table} WHERE {where} AND (ts, {keys}) IN (
                SELECT (ts, {keys}) FROM {table} WHERE {where}
                GROUP BY ts, {keys} HAVING count(*) > 1
            )
            """
        )
        if not cur.execute("SELECT count(*) FROM _partial").fetchall()[0][0]:
            cur.execute("DROP TABLE _partial")
            continue
        cur.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE _compacted AS
            WITH agg AS (SELECT ts, {keys}, {sums} FROM _partial GROUP BY ts, {keys}),
            lat AS ({_merge_hist_sql("_partial", "latency_hist", "true", keys)}),
            ttft AS ({_merge_hist_sql("_partial", "ttft_hist", "true", keys)})
            SELECT agg.*, coalesce(lat.h, []), coalesce(ttft.h, [])
            FROM agg LEFT JOIN lat USING (ts, {keys}) LEFT JOIN ttft USING (ts, {keys})
            """
        )
        cur.execute(
            f"""
            DELETE FROM {table} WHERE {where} AND (ts, {keys}) IN (
                SELECT (ts, {keys}) FROM _compacted
            )
            """
        )
        cur.execute(f"INSERT INTO {table} SELECT * FROM _compacted")
        cur.execute("DROP TABLE _compacted")
        cur.execute("DROP TABLE _partial")


MAX_COMPACT_RANGES = 8
"""Hours touched by an ingest are compacted in at most this many runs (the nearest merged)."""
_HOUR_NS = 3_600_000_000_000
_MAX_NS = 2**63 - 1


def hours_of(cur: duckdb.DuckDBPyConnection, source: str) -> set[int]:
    """The hours (unix ns // 1 h) the spans of `source` start in: what their partial rows touched."""
    rows = cur.execute(
        f"SELECT DISTINCT epoch_ns(start_time) // {_HOUR_NS} FROM {source}"
    ).fetchall()
    return {int(h) for (h,) in rows}


def hours_of_table(table: pa.Table) -> set[int]:
    """`hours_of` for an Arrow table of spans, without a query (the same integer division)."""
    start = table["start_time"]
    if start.type.unit != "ns":  # the spans table's TIMESTAMP_NS: nanoseconds whatever the unit
        start = pc.cast(start, pa.timestamp("ns", start.type.tz))
    ns = pc.cast(start, pa.int64())
    return {int(h) for h in pc.unique(pc.divide(ns, _HOUR_NS)).to_pylist() if h is not None}


def hour_runs(hours: Iterable[int], most: int = MAX_COMPACT_RANGES) -> list[tuple[int, int]]:
    """Runs [first, last] of consecutive hours covering `hours`, at most `most` of them.

    Beyond `most`, the runs with the smallest gap between them are merged: a batch of
    recent traffic plus one span from 1970 stays two short runs, never the 56 years between.
    A merge leaves the other gaps as they are, so the runs are split at the `most - 1`
    largest gaps (the later one of equal gaps): O(n log n) for n hours.
    """
    runs: list[list[int]] = []
    for h in sorted(set(hours)):
        if runs and h == runs[-1][1] + 1:
            runs[-1][1] = h
        else:
            runs.append([h, h])
    keep = max(1, most)
    if len(runs) <= keep:
        return [(a, b) for a, b in runs]
    splits = heapq.nlargest(keep - 1, range(len(runs) - 1),
                            key=lambda i: (runs[i + 1][0] - runs[i][1], i))
    out, first = [], 0
    for i in sorted(splits):  # split between run i and run i + 1
        out.append((runs[first][0], runs[i][1]))
        first = i + 1
    out.append((runs[first][0], runs[-1][1]))
    return out


def hours_where(column: str, hours: Iterable[int]) -> tuple[str, dict[str, int]]:
    """SQL true when `column` is inside the runs of `hours` (see `hour_runs`), with its parameters.

    A test DuckDB can skip row groups with: a batch of recent spans plus one from 1970 reads
    the recent hours and one hour of 1970, not every span stored in between.
    """
    clauses, params = [], {}
    for i, (first, last) in enumerate(hour_runs(hours)):
        clauses.append(f"{column} BETWEEN make_timestamp_ns($h{i}a) AND make_timestamp_ns($h{i}b)")
        params[f"h{i}a"] = first * _HOUR_NS
        params[f"h{i}b"] = min((last + 1) * _HOUR_NS - 1, _MAX_NS)
    return "(" + " OR ".join(clauses or ["false"]) + ")", params


def compact_hours(cur: duckdb.DuckDBPyConnection, hours: Iterable[int]) -> None:
    """`compact` the rows of the given hours (see `hours_of`), run by run."""
    for first, last in hour_runs(hours):
        start = EPOCH + timedelta(hours=first)
        compact(cur, start, EPOCH + timedelta(hours=last + 1) - timedelta(seconds=1))


_SUMMED = (
    "requests", "errors", "rate_limited", "fallbacks", "input_tokens", "output_tokens",
    "cache_read_tokens", "cost_usd", "unpriced", "latency_sum_ms",
)
