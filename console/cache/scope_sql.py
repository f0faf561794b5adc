"""Scope filters and time windows as SQL over the rollups, shared by the panel queries.

A `ScopeFilter` becomes `AND dim = ?` clauses (values always bound as
parameters); it reads the coarse `*_svc` rollups when every dimension it needs
is one of theirs. `union_parts` turns labelled windows into one UNION ALL over
hour rollups (whole hours) and minute rollups (ragged edges), and
`rollup_sums` folds such a source into per-key `Totals` with merged latency and
TTFT histograms in a single query.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import duckdb

from console.cache.queries import window_parts
from console.cache.rollups import quantile
from console.cache.schema import COARSE_DIMS, ROLLUP_DIMS
from console.config import ScopeFilter
from console.slo import RollupCounts

Hist = tuple[tuple[int, int], ...]
HIST_TYPE = "STRUCT(b SMALLINT, n INTEGER)[]"
HIST_COLUMNS = ("latency_hist", "ttft_hist")
METRIC_COLUMNS = "requests, errors, rate_limited, fallbacks, cost_usd, unpriced"


def naive_utc(t: datetime) -> datetime:
    """`t` as naive UTC (aware times are converted, naive ones are taken as UTC)."""
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo is not None else t


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
) -> tuple[str, list[object]]:
    """One UNION ALL reading each labelled window [start, end) of `flt` from hour + minute rollups.

    `windows` must not be empty.

    Columns: `win` (the integer label), `keys`, the summed metrics and both histogram
    columns (NULL for those not in `hists`, so unnesting them costs nothing).
    """
    for k in keys:
        if k not in ROLLUP_DIMS:
            raise ValueError(f"unknown dimension {k!r}")
    if coarse is None:
        coarse = is_coarse(flt, *keys)
    hour_table, minute_table = rollup_tables(coarse)
    hist_cols = hist_columns(hists)
    key_cols = "".join(f"{k}, " for k in keys)
    where, where_params = filter_sql(flt)
    selects: list[str] = []
    params: list[object] = []
    for label, start, end in windows:
        hours, minutes = window_parts(start, end)
        ranges = ([(hour_table, *hours)] if hours else []) + [(minute_table, a, b) for a, b in minutes]
        for table, a, b in ranges:
            selects.append(
                f"SELECT {int(label)} AS win, {key_cols}{METRIC_COLUMNS}, {hist_cols}"
                f" FROM {table} WHERE ts >= ? AND ts < ?{where}"
            )
            params += [a, b, *where_params]
    return " UNION ALL ".join(selects), params


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
    total: Counter[int] = Counter()
    for h in nonempty:
        for b, n in h:
            total[b] += n
    return tuple(sorted(total.items()))


def rollup_sums(
    cur: duckdb.DuckDBPyConnection,
    source_sql: str,
    params: Sequence[object],
    keys: Sequence[str],
    hists: Iterable[str] = HIST_COLUMNS,
) -> dict[tuple[object, ...], Totals]:
    """Sum `source_sql` (a `union_parts`-shaped source) per `keys` in one query."""
    wanted = [c for c in HIST_COLUMNS if c in set(hists)]
    key_cols = "".join(f"{k}, " for k in keys)
    selects = [
        f"SELECT {key_cols}-1 AS m, NULL::SMALLINT AS b, sum(requests), sum(errors),"
        " sum(rate_limited), sum(fallbacks), sum(cost_usd)::DOUBLE, sum(unpriced)"
        " FROM src GROUP BY ALL"
    ]
    for col in wanted:
        selects.append(
            f"SELECT {key_cols}{HIST_COLUMNS.index(col)} AS m, u.b, sum(u.n), 0, 0, 0, 0.0, 0"
            f" FROM (SELECT {key_cols}unnest({col}) AS u FROM src) GROUP BY ALL"
        )
    sql = f"WITH src AS MATERIALIZED ({source_sql}) " + " UNION ALL ".join(selects)
    rows = cur.execute(sql, list(params)).fetchall()
    nk = len(keys)
    base: dict[tuple[object, ...], tuple[int, int, int, int, float, int]] = {}
    buckets: dict[tuple[tuple[object, ...], int], list[tuple[int, int]]] = {}
    for row in rows:
        key, m, b = tuple(row[:nk]), int(row[nk]), row[nk + 1]
        req, err, rl, fb, cost, unpriced = row[nk + 2:]
        if m < 0:
            base[key] = (int(req), int(err), int(rl), int(fb), float(cost or 0.0), int(unpriced))
        else:
            buckets.setdefault((key, m), []).append((int(b), int(req)))
    out: dict[tuple[object, ...], Totals] = {}
    for key, (req, err, rl, fb, cost, unpriced) in base.items():
        lat = tuple(sorted(buckets.get((key, 0), ())))
        ttft = tuple(sorted(buckets.get((key, 1), ())))
        out[key] = Totals(req, err, rl, fb, cost, unpriced, lat, ttft)
    return out


def hour_ceil(t: datetime) -> datetime:
    """The first hour boundary at or after `t`."""
    floor = t.replace(minute=0, second=0, microsecond=0)
    return floor if floor == t else floor + timedelta(hours=1)
