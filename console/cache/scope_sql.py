"""Scope filters and time windows as SQL over the rollups, shared by the panel queries.

A `ScopeFilter` becomes `AND dim = ?` clauses (values always bound as
parameters); it reads the coarse `*_svc` rollups when every dimension it needs
is one of theirs. `union_parts` reads labelled windows from the hour rollups
(whole hours) and the minute rollups (ragged edges), one scan per table with a
CASE labelling the rows, and `rollup_sums` folds such a source into per-key
`Totals` with merged latency and TTFT histograms (two queries: sums, buckets).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, TypeVar, cast

import duckdb

from console.cache.queries import labelled_source
from console.cache.rollups import quantile
from console.cache.schema import COARSE_DIMS, ROLLUP_DIMS
from console.config import ScopeFilter
from console.slo import RollupCounts

Hist = tuple[tuple[int, int], ...]
HIST_TYPE = "STRUCT(b SMALLINT, n INTEGER)[]"
HIST_COLUMNS = ("latency_hist", "ttft_hist")
METRIC_COLUMNS = "requests, errors, rate_limited, fallbacks, cost_usd, unpriced"


def is_coarse(flt: ScopeFilter, *dims: str) -> bool:
    """True when the filter and the extra dimensions all exist in the coarse rollups."""
    return all(d in COARSE_DIMS for d in (*dims, *(k for k, _ in flt.items())))


def rollup_tables(coarse: bool) -> tuple[str, str]:
    """(hour table, minute table) of the full or the coarse rollups."""
    return ("rollup_hour_svc", "rollup_minute_svc") if coarse else ("rollup_hour", "rollup_minute")


def filter_sql(flt: ScopeFilter) -> tuple[str, list[object]]:
    """` AND dim = ?` for every set field of `flt` (rollup columns), with its parameters."""
    clauses: list[str] = []
    params: list[object] = []
    for dim, value in flt.items():
        if dim not in ROLLUP_DIMS:  # never reached with ScopeFilter's fixed fields
            raise ValueError(f"unknown dimension {dim!r}")
        clauses.append(f" AND {dim} = ?")
        params.append(value)
    return "".join(clauses), params


def hist_columns(wanted: Iterable[str]) -> str:
    """Both histogram columns for a SELECT; those not wanted as typed NULLs."""
    keep = set(wanted)
    return ", ".join(c if c in keep else f"NULL::{HIST_TYPE} AS {c}" for c in HIST_COLUMNS)


def union_parts(
    windows: Sequence[tuple[int, datetime, datetime]],
    flt: ScopeFilter,
    keys: Sequence[str] = (),
    hists: Iterable[str] = HIST_COLUMNS,
    coarse: bool | None = None,
    tables: Literal["both", "hour", "minute"] = "both",
) -> tuple[str, list[object]]:
    """Read each labelled window [start, end) of `flt` from the hour + minute rollups.

    `windows` must not be empty and must not overlap (nested windows: pass the
    rings between them and add up). Whole hours come from the hour rollup, ragged
    edges from the minute rollup, and each table is scanned once: a CASE on `ts`
    labels the rows (a UNION ALL of one scan per window costs ~1 ms per part).

    Columns: `win` (the integer label), `keys`, the summed metrics and both histogram
    columns (NULL for those not in `hists`, so unnesting them costs nothing).
    """
    for k in keys:
        if k not in ROLLUP_DIMS:
            raise ValueError(f"unknown dimension {k!r}")
    if coarse is None:
        coarse = is_coarse(flt, *keys)
    columns = f"{''.join(f'{k}, ' for k in keys)}{METRIC_COLUMNS}, {hist_columns(hists)}"
    where, where_params = filter_sql(flt)
    return labelled_source(windows, *rollup_tables(coarse), columns, where, where_params, tables)


T = TypeVar("T")


class HourMemo:
    """Sums read from the hour rollups, kept while the cache's data version stays the same.

    Whole hours before the current one change only when an ingest stores spans in them,
    so a console polling every second re-reads only the minute rollups (the current
    hour and the ragged window edges). Keys must name exactly what was read (the hour
    ranges, the filters, the histograms); `sync` (called by each user before its reads)
    drops everything when the data changed.
    Used from the poller's one thread at a time (polls never overlap); the lock only keeps
    the dict itself consistent, not a read racing a `sync`.
    """

    MAX_ENTRIES = 64

    def __init__(self) -> None:
        self._version: tuple[object, ...] | None = None
        self._entries: dict[Hashable, object] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def sync(self, cur: duckdb.DuckDBPyConnection) -> None:
        """Forget every entry if anything was ingested, pruned or compacted since the last sync."""
        version = data_version(cur)
        with self._lock:
            if version != self._version:
                self._entries.clear()
                self._version = version

    def get(self, key: Hashable, read: Callable[[], T]) -> T:
        """The value kept under `key`, or `read()` kept under it (never mutate either)."""
        with self._lock:
            found = self._entries.get(key)
        if found is not None:
            self.hits += 1
            return cast(T, found)
        self.misses += 1
        value = read()
        with self._lock:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = value
        return value


def data_version(cur: duckdb.DuckDBPyConnection) -> tuple[object, ...]:
    """Changes whenever an ingest batch commits (each one records its file offset), or the
    hour rollups gain or lose rows (compaction, retention)."""
    rows = cur.execute(
        "SELECT (SELECT count(*) FROM rollup_hour), (SELECT count(*) FROM rollup_hour_svc),"
        " (SELECT max(updated) FROM ingest_files), (SELECT sum(byte_offset) FROM ingest_files),"
        " (SELECT count(*) FROM ingest_files)"
    ).fetchall()
    return tuple(rows[0])


def add_sums(
    *parts: dict[tuple[object, ...], Totals],
) -> dict[tuple[object, ...], Totals]:
    """Key-wise sum of `rollup_sums` results."""
    out: dict[tuple[object, ...], Totals] = {}
    for part in parts:
        for key, totals in part.items():
            out[key] = out[key] + totals if key in out else totals
    return out


def group_dims(groups: Sequence[ScopeFilter]) -> tuple[str, ...]:
    """Every dimension any of `groups` filters on, in rollup order."""
    used = {d for flt in groups for d, _ in flt.items()}
    return tuple(d for d in ROLLUP_DIMS if d in used)


@dataclass(frozen=True)
class Totals:
    """Rollup sums of one key: counts, cost and merged histograms (sorted by bucket)."""

    requests: int = 0
    errors: int = 0
    rate_limited: int = 0
    fallbacks: int = 0
    cost_usd: float = 0.0
    unpriced: int = 0
    latency_hist: Hist = ()
    ttft_hist: Hist = ()

    def __add__(self, other: Totals) -> Totals:
        return Totals(
            self.requests + other.requests,
            self.errors + other.errors,
            self.rate_limited + other.rate_limited,
            self.fallbacks + other.fallbacks,
            self.cost_usd + other.cost_usd,
            self.unpriced + other.unpriced,
            merge_hists(self.latency_hist, other.latency_hist),
            merge_hists(self.ttft_hist, other.ttft_hist),
        )

    @property
    def error_rate(self) -> float | None:
        """Errors per request; None without traffic."""
        return self.errors / self.requests if self.requests else None

    def latency_quantile(self, q: float) -> float | None:
        """A latency quantile in ms from the histogram; None when empty."""
        return quantile(self.latency_hist, q)

    def counts(self) -> RollupCounts:
        """The inputs `console.slo.counts_for` takes."""
        return RollupCounts(self.requests, self.errors, self.rate_limited, self.fallbacks,
                            self.latency_hist, self.ttft_hist)


def merge_hists(*hists: Hist) -> Hist:
    """Sum (bucket, count) histograms."""
    nonempty = [h for h in hists if h]
    if len(nonempty) <= 1:
        return nonempty[0] if nonempty else ()
    total = dict(nonempty[0])
    for h in nonempty[1:]:
        for b, n in h:
            total[b] = total.get(b, 0) + n
    return tuple(sorted(total.items()))


def rollup_sums(
    cur: duckdb.DuckDBPyConnection,
    source_sql: str,
    params: Sequence[object],
    keys: Sequence[str],
    hists: Iterable[str] = HIST_COLUMNS,
    groups: Sequence[ScopeFilter] = (),
) -> dict[tuple[object, ...], Totals]:
    """Sum `source_sql` (a `union_parts`-shaped source) per `keys`.

    Two queries, each materialising the source on its own: the counters and the histogram
    buckets (see the comment below for why not one).

    With `groups`, the source is read once for all of them: it must carry the
    `group_dims(groups)` columns, each row counts towards every group whose filter
    it matches, and the result is keyed by (group index, *keys).
    """
    wanted = [c for c in HIST_COLUMNS if c in set(hists)]
    dims = group_dims(groups) if groups else ()
    inner = "".join(f"{k}, " for k in (*keys, *dims))
    # Two result sets, each with only its own columns: the histogram rows outnumber the
    # others ~100:1, and converting padding columns (or HUGEINT sums) to Python costs
    # more than the query (measured: 20k rows, 8 columns 19 ms, 3 BIGINT columns 4 ms).
    metrics = (
        f"SELECT {inner}sum(requests)::BIGINT AS c0, sum(errors)::BIGINT AS c1,"
        " sum(rate_limited)::BIGINT AS c2, sum(fallbacks)::BIGINT AS c3,"
        " sum(cost_usd)::DOUBLE AS c4, sum(unpriced)::BIGINT AS c5 FROM src GROUP BY ALL"
    )
    buckets_sql = " UNION ALL ".join(
        f"SELECT {inner}{HIST_COLUMNS.index(col)}::TINYINT AS m, u.b, sum(u.n)::BIGINT AS n"
        f" FROM (SELECT {inner}unnest({col}) AS u FROM src) GROUP BY ALL"
        for col in wanted
    )
    prelude = f"WITH src AS MATERIALIZED ({source_sql}) "
    params = list(params)
    if groups:
        # sum per (key, dims) first, then fold those few rows into each matching group
        values = ", ".join(
            "(" + ", ".join(["?::INTEGER", *("?::VARCHAR" for _ in dims)]) + ")" for _ in groups
        )
        group_params: list[object] = []
        for i, flt in enumerate(groups):
            chosen = dict(flt.items())
            group_params += [i, *(chosen.get(d) for d in dims)]
        match = " AND ".join(f"(g.{d} IS NULL OR g.{d} = p.{d})" for d in dims) or "TRUE"
        outer = "".join(f"p.{k}, " for k in keys)
        folded = f"g(gid{''.join(f', {d}' for d in dims)}) AS (VALUES {values})"

        def fold(summed: str, columns: str) -> str:
            return (f"{prelude}, p AS MATERIALIZED ({summed}), {folded} SELECT g.gid, {outer}"
                    f"{columns} FROM p JOIN g ON {match} GROUP BY ALL")

        metrics = fold(metrics, "sum(c0)::BIGINT, sum(c1)::BIGINT, sum(c2)::BIGINT,"
                                " sum(c3)::BIGINT, sum(c4), sum(c5)::BIGINT")
        buckets_sql = fold(buckets_sql, "p.m, p.b, sum(p.n)::BIGINT") if wanted else ""
        params += group_params
        keys = ("gid", *keys)
    else:
        metrics = prelude + metrics
        buckets_sql = prelude + buckets_sql if wanted else ""
    nk = len(keys)
    hist_rows: dict[tuple[tuple[object, ...], int], list[tuple[int, int]]] = {}
    if buckets_sql:
        for row in cur.execute(buckets_sql, params).fetchall():
            hist_rows.setdefault((tuple(row[:nk]), row[nk]), []).append((row[nk + 1], row[nk + 2]))
    out: dict[tuple[object, ...], Totals] = {}
    for row in cur.execute(metrics, params).fetchall():
        key = tuple(row[:nk])
        req, err, rl, fb, cost, unpriced = row[nk:]
        out[key] = Totals(req, err, rl, fb, float(cost or 0.0), unpriced,
                          tuple(sorted(hist_rows.get((key, 0), ()))),
                          tuple(sorted(hist_rows.get((key, 1), ()))))
    return out


