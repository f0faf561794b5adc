"""SLOs whose SLI comes from a Prometheus-compatible store, evaluated with PromQL.

Each SLO is read with instant queries at `at`, one good and one total per window
(5m ... 3d for the burn-rate rules, and the SLO window), issued together with
`asyncio.gather` (the HTTP policy sends at most one at a time per endpoint), and
turned into the same `SloStatus` as a cache SLO by `console.slo.evaluate_windows`.
The PromQL, with W each window as a PromQL duration (`5m`, `28d`):

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

import asyncio
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from connectors.prometheus import QueryResult, duration
from console.config import Config, PrometheusSource, PromqlSli, ScopeFilter, SloSpec
from console.slo import REQUIRED_WINDOWS, WindowCounts, evaluate_windows
from console.snapshots import SloStatus
from console.timeutil import naive_utc

if TYPE_CHECKING:
    from console.prometheus_poll import PrometheusPoller

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
    """The bucket matcher (method bucket), from `bucket_matcher`."""

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


def single_value(result: QueryResult, expr: str) -> float | None:
    """The one value of an answer; None when there is no series (no traffic) or it is NaN."""
    if not result.series:
        return None
    if len(result.series) > 1:
        raise PromqlError(f"{expr} returned {len(result.series)} series; aggregate it, e.g. sum(...)")
    value = result.series[0].value
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


async def bucket_matcher(client: QueryApi, sli: PromqlSli, threshold: float, at: datetime,
                         window: timedelta) -> str | None:
    """The `le` matcher of the bucket at `threshold`; None when the histogram has no series."""
    assert sli.histogram is not None
    bucket = selector(sli.histogram + "_bucket", sli.selector)
    expr = f"count by (le) (last_over_time({bucket}[{duration(window)}]))"
    values = [s.label("le") for s in (await client.query(expr, at)).series]
    if not values:
        return None
    found = matching_le(values, threshold)
    if not found:
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


async def sli_queries(client: QueryApi, spec: SloSpec, at: datetime,
                   le_cache: dict[tuple[str, str, float], str] | None) -> SliQueries:
    sli = spec.promql
    assert sli is not None
    if sli.histogram is None:
        return SliQueries(sli, None)
    assert spec.threshold_ms is not None  # config validation guarantees it
    threshold = threshold_in_unit(sli.histogram, spec.threshold_ms)
    if sli.method == "quantile":
        return SliQueries(sli, threshold)
    key = (sli.histogram, sli.selector, threshold)
    le = None if le_cache is None else le_cache.get(key)
    if le is None:
        le = await bucket_matcher(client, sli, threshold, at, timedelta(days=spec.window_days))
        if le is not None and le_cache is not None:
            le_cache[key] = le
    return SliQueries(sli, threshold, le)


async def evaluate(client: QueryApi, spec: SloSpec, at: datetime,
                   le_cache: dict[tuple[str, str, float], str] | None = None
                   ) -> tuple[SloStatus, tuple[str, ...]]:
    """One PromQL SLO at `at`: its status and the API's warnings; raises SourceError or PromqlError."""
    at = naive_utc(at)
    slo_window = timedelta(days=spec.window_days)
    q = await sli_queries(client, spec, at, le_cache)
    windows = list(dict.fromkeys((*REQUIRED_WINDOWS, slo_window)))
    exprs: list[str | None] = []
    for w in windows:
        exprs += [q.good(w) if q.counts_good else None, q.errors(w), q.total(w)]
    quantile = q.sli.histogram is not None and q.sli.method == "quantile"
    if quantile:
        exprs.append(q.requests(slo_window))
    results = await asyncio.gather(*(_maybe(client, e, at) for e in exprs))
    values = [None if r is None else single_value(r, e or "") for r, e in zip(results, exprs, strict=True)]
    counts = {w: window_counts(q.good_value(values[3 * i]), values[3 * i + 1], values[3 * i + 2])
              for i, w in enumerate(windows)}
    histogram = q.sli.histogram
    if histogram is not None and not q.counts_good and counts[slo_window].total:
        raise PromqlError(f"{selector(histogram + '_bucket', q.sli.selector)} has no series"
                          f" but {histogram}_count has: is it a histogram?")
    requests = values[-1] if quantile else counts[slo_window].total
    ev = evaluate_windows(counts, spec.objective, slo_window)
    warnings = tuple(dict.fromkeys(w for r in results if r is not None for w in r.warnings))
    status = SloStatus(
        name=spec.name, kind=spec.kind, objective=spec.objective, window=slo_window,
        filter=ScopeFilter(), threshold_ms=spec.threshold_ms, requests=round(requests or 0),
        compliance=ev.compliance, budget_remaining=ev.budget_remaining,
        time_to_exhaustion=ev.time_to_exhaustion, burn_rates=ev.burn_rates,
        level=ev.level, reason=ev.reason,
    )
    return status, warnings


async def _maybe(client: QueryApi, expr: str | None, at: datetime) -> QueryResult | None:
    return None if expr is None else await client.query(expr, at)


async def evaluate_many(client: QueryApi, specs: Sequence[SloSpec], at: datetime,
                        le_cache: dict[tuple[str, str, float], str] | None = None
                        ) -> tuple[PromqlSloResult, ...]:
    """Every SLO at `at`, concurrently; one failing SLO gets its error text, the others their status."""
    async def one(spec: SloSpec) -> PromqlSloResult:
        try:
            status, warnings = await evaluate(client, spec, at, le_cache)
        except PromqlError as exc:
            return PromqlSloResult(spec.name, spec.source, None, str(exc)[:500], "promql")
        except Exception as exc:  # noqa: BLE001 - one SLO's failure must not hide the others
            kind = getattr(exc, "kind", None)
            text = str(exc) if kind is not None else f"{type(exc).__name__}: {exc}"
            return PromqlSloResult(spec.name, spec.source, None, text[:500], kind or "internal")
        return PromqlSloResult(spec.name, spec.source, status, warnings=warnings)

    return tuple(await asyncio.gather(*(one(s) for s in specs)))


def specs_by_source(specs: Iterable[SloSpec]) -> Mapping[str, list[SloSpec]]:
    """PromQL SLOs grouped by the name of their Prometheus source, in config order."""
    grouped: dict[str, list[SloSpec]] = {}
    for spec in specs:
        if spec.promql is not None:
            grouped.setdefault(spec.promql.source, []).append(spec)
    return grouped


def make_poller(source: PrometheusSource, config: Config, secret_headers: Mapping[str, str],
                **client_kw: Any) -> PrometheusPoller:
    """The poller of one `[[sources.prometheus]]` (it lives in `console.prometheus_poll`)."""
    from console.prometheus_poll import make_poller as make

    return make(source, config, secret_headers, **client_kw)
