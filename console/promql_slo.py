"""SLOs whose SLI comes from a Prometheus-compatible store, evaluated with PromQL.

Each SLO is read with instant queries at `at`, good and total (or errors and total)
for each window (5m ... 3d for the burn-rate rules, and the SLO window), and turned
into the same `SloStatus` as a cache SLO by `console.slo.evaluate_windows`;
`console.promql_eval` sends them, batched. The PromQL, with W each window as a PromQL
duration (`5m`, `28d`):

- ratio: `sum(increase(GOOD[W]))` and `sum(increase(TOTAL[W]))` for counter
  selectors, or the user's expression with `$window` replaced by W; with `errors`
  instead of `good`, good = total - errors.
- histogram, method bucket: good = `sum(increase(H_bucket{le="B",SEL}[W]))`, total =
  `sum(increase(H_count{SEL}[W]))`. B is looked up, not spelled: the `le` values of
  `count by (le) (last_over_time(H_bucket{SEL}[SLO window]))` whose number equals the
  threshold ("0.5", "0.50", "5e-01" all match 500 ms; several spellings become
  `le=~"0\\.5|0\\.50"`); none equal is an error naming the buckets there are.
- histogram, method quantile: time slices. Q = `histogram_quantile(q, sum by (le)
  (rate(H_bucket{SEL}[2m])))`; good = `count_over_time((Q <= T)[W:1m])`, total =
  `count_over_time((Q >= 0)[W:1m])`: minutes whose quantile met the threshold out of
  minutes with traffic (a minute without traffic has a NaN quantile, which neither
  comparison keeps). Requests are `sum(increase(H_count{SEL}[SLO window]))`.

Thresholds are in the histogram's unit: milliseconds when its name ends in
`_milliseconds` or `_ms`, else seconds. A query with no series means no traffic
(None compliance), not zero; an absent good or errors series counts 0.
`increase` extrapolates, so counts may be fractional; good is clamped to [0, total].
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from connectors.prometheus import PromSeries, QueryResult, duration
from console.config import PromqlSli, SloSpec
from console.slo import WindowCounts
from console.snapshots import SloStatus

if TYPE_CHECKING:
    pass

SLICE = timedelta(minutes=1)
"""Time-slice length of the quantile method."""
SLICE_RATE = "2m"
"""Rate window of each slice's quantile (two scrapes at a 1 m scrape interval)."""


class PromqlError(ValueError):
    """An SLO's PromQL answer cannot be used (several series, no bucket at the threshold...)."""


class QueryApi(Protocol):
    """What the evaluation needs of a Prometheus client."""

    name: str

    async def query(self, expr: str, at: datetime) -> QueryResult: ...

    async def query_range(self, expr: str, start: datetime, end: datetime,
                          step: timedelta | None = None) -> QueryResult: ...


def selector(metric: str, matchers: str = "", *extra: str) -> str:
    """`metric{extra...,matchers}`, without braces when there are no matchers."""
    inner = ",".join(m for m in (*extra, matchers.strip().strip(",")) if m)
    return f"{metric}{{{inner}}}" if inner else metric


def counter_expr(query: str, window: timedelta) -> str:
    """`sum(increase(SELECTOR[W]))`, or the user's expression with `$window` replaced by W."""
    if "$window" in query:
        return query.replace("$window", duration(window))
    return f"sum(increase({query.strip()}[{duration(window)}]))"


def threshold_in_unit(histogram: str, threshold_ms: float) -> float:
    """The threshold in the histogram's unit: ms for `*_milliseconds` / `*_ms`, else seconds."""
    return threshold_ms if histogram.endswith(("_milliseconds", "_ms")) else threshold_ms / 1000.0


def matching_le(values: Iterable[str], threshold: float) -> tuple[str, ...]:
    """The `le` label values whose number equals `threshold` ("0.5", "0.50", "5e-01"...), sorted."""
    found = set()
    for value in values:
        try:
            bound = float(value)
        except ValueError:
            continue
        if math.isclose(bound, threshold, rel_tol=1e-9, abs_tol=0.0):
            found.add(value)
    return tuple(sorted(found))


def _promql_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def le_matcher(values: Sequence[str]) -> str:
    """`le="0.5"` for one spelling, `le=~"0\\\\.5|0\\\\.50"` for several."""
    if len(values) == 1:
        return f"le={_promql_string(values[0])}"
    return f"le=~{_promql_string('|'.join(re.escape(v) for v in values))}"


def _quantile(sli: PromqlSli, histogram: str) -> str:
    rate = f"rate({selector(histogram + '_bucket', sli.selector)}[{SLICE_RATE}])"
    return f"histogram_quantile({sli.quantile:g}, sum by (le) ({rate}))"


def _slices(condition: str, window: str) -> str:
    """How many one-minute slices of `window` satisfy `condition` (a filtering comparison)."""
    return f"count_over_time(({condition})[{window}:{duration(SLICE)}])"


@dataclass(frozen=True)
class SliQueries:
    """The PromQL of one SLO for any window."""

    sli: PromqlSli
    threshold: float | None
    """Threshold in the histogram's unit (histogram SLIs)."""
    le: str | None = None
    """The bucket matcher (method bucket), from the `le` lookup."""

    @property
    def counts_good(self) -> bool:
        """False when good is total - errors (an errors SLI) or 0 (a bucket SLI without bucket series)."""
        sli = self.sli
        if sli.histogram is None:
            return sli.good is not None
        return sli.method == "quantile" or self.le is not None

    def good_value(self, value: float | None) -> float | None:
        """The good count from the good query's value: no series is 0 good, None for an errors SLI."""
        if self.sli.histogram is None and self.sli.good is None:
            return None
        return value or 0.0

    def good(self, window: timedelta) -> str:
        """Good events (quantile method: minutes that met the threshold) over `window`."""
        sli, w = self.sli, duration(window)
        if sli.histogram is None:
            assert sli.good is not None
            return counter_expr(sli.good, window)
        if sli.method == "quantile":
            return _slices(f"{_quantile(sli, sli.histogram)} <= {self.threshold!r}", w)
        assert self.le is not None
        return f"sum(increase({selector(sli.histogram + '_bucket', sli.selector, self.le)}[{w}]))"

    def errors(self, window: timedelta) -> str | None:
        """Bad events over `window` when the SLI counts errors."""
        return None if self.sli.errors is None else counter_expr(self.sli.errors, window)

    def total(self, window: timedelta) -> str:
        """All events (quantile method: minutes with traffic) over `window`."""
        sli, w = self.sli, duration(window)
        if sli.histogram is None:
            assert sli.total is not None  # config validation guarantees it
            return counter_expr(sli.total, window)
        if sli.method == "quantile":
            return _slices(f"{_quantile(sli, sli.histogram)} >= 0", w)
        return self.requests(window)

    def requests(self, window: timedelta) -> str:
        """Requests over `window` (differs from total only for the quantile method)."""
        if self.sli.histogram is None:
            return self.total(window)
        count = selector(self.sli.histogram + "_count", self.sli.selector)
        return f"sum(increase({count}[{duration(window)}]))"


def single_value(series: Sequence[PromSeries], expr: str) -> float | None:
    """The one value of an expression's series; None when there is none (no traffic) or it is NaN."""
    if not series:
        return None
    if len(series) > 1:
        raise PromqlError(f"{expr} returned {len(series)} series; aggregate it, e.g. sum(...)")
    value = series[0].value
    if math.isnan(value):
        return None
    if math.isinf(value):
        raise PromqlError(f"{expr} returned {value}")
    return value


def window_counts(good: float | None, errors: float | None, total: float | None) -> WindowCounts:
    """Counts from query values: no total is no traffic; good None means total - errors (none: 0)."""
    if total is None or total <= 0:
        return WindowCounts(0, 0)
    if good is None:
        good = total - (errors or 0.0)
    return WindowCounts(min(max(good, 0.0), total), total)


def le_lookup(sli: PromqlSli, window: timedelta) -> str:
    """The `le` values a histogram had over `window`: `count by (le) (last_over_time(H_bucket{SEL}[W]))`."""
    assert sli.histogram is not None
    bucket = selector(sli.histogram + "_bucket", sli.selector)
    return f"count by (le) (last_over_time({bucket}[{duration(window)}]))"


def le_from(values: Sequence[str], sli: PromqlSli, threshold: float) -> str | None:
    """The `le` matcher of the bucket at `threshold` among `values`; None when there are none."""
    assert sli.histogram is not None
    if not values:
        return None
    found = matching_le(values, threshold)
    if not found:
        bucket = selector(sli.histogram + "_bucket", sli.selector)
        have = ", ".join(sorted(set(values), key=lambda v: float(v) if _number(v) else math.inf))
        raise PromqlError(f"{bucket} has no bucket le={threshold:g} (buckets: {have});"
                          " use a threshold_ms equal to a bucket bound or method = \"quantile\"")
    return le_matcher(found)


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class PromqlSloResult:
    """One PromQL SLO's evaluation: a status, or why there is none."""

    name: str
    source: str
    """`prometheus:<source name>`."""
    status: SloStatus | None
    error: str | None = None
    error_kind: str | None = None
    """The SourceError kind (connect, timeout, http...) or `promql`."""
    warnings: tuple[str, ...] = ()


LeCache = dict[tuple[str, str, float], str]
"""`le` matchers found, by (histogram, selector, threshold in the histogram's unit)."""


def le_key(spec: SloSpec) -> tuple[str, str, float] | None:
    """The `le` cache key of a bucket-method SLO; None for the other methods."""
    sli = spec.promql
    assert sli is not None
    if sli.histogram is None or sli.method != "bucket":
        return None
    assert spec.threshold_ms is not None  # config validation guarantees it
    return sli.histogram, sli.selector, threshold_in_unit(sli.histogram, spec.threshold_ms)


def known_queries(spec: SloSpec, le_cache: LeCache | None) -> SliQueries | None:
    """The SLO's queries without I/O; None when its bucket must be looked up first."""
    sli = spec.promql
    assert sli is not None
    if sli.histogram is None:
        return SliQueries(sli, None)
    assert spec.threshold_ms is not None  # config validation guarantees it
    threshold = threshold_in_unit(sli.histogram, spec.threshold_ms)
    key = le_key(spec)
    if key is None:
        return SliQueries(sli, threshold)
    le = None if le_cache is None else le_cache.get(key)
    return None if le is None else SliQueries(sli, threshold, le)


def with_bucket(spec: SloSpec, values: Sequence[str], le_cache: LeCache | None) -> SliQueries:
    """A bucket-method SLO's queries from the `le` values its lookup found (cached when found)."""
    key = le_key(spec)
    assert spec.promql is not None and key is not None
    le = le_from(values, spec.promql, key[2])
    if le is not None and le_cache is not None:
        le_cache[key] = le
    return SliQueries(spec.promql, key[2], le)


async def sli_queries(client: QueryApi, spec: SloSpec, at: datetime,
                      le_cache: LeCache | None) -> SliQueries:
    """The SLO's queries, its bucket looked up unless `le_cache` has it (one query)."""
    known = known_queries(spec, le_cache)
    if known is not None:
        return known
    assert spec.promql is not None
    result = await client.query(le_lookup(spec.promql, timedelta(days=spec.window_days)), at)
    return with_bucket(spec, [s.label("le") for s in result.series], le_cache)


def specs_by_source(specs: Iterable[SloSpec]) -> Mapping[str, list[SloSpec]]:
    """PromQL SLOs grouped by the name of their Prometheus source, in config order."""
    grouped: dict[str, list[SloSpec]] = {}
    for spec in specs:
        if spec.promql is not None:
            grouped.setdefault(spec.promql.source, []).append(spec)
    return grouped
