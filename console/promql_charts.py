"""Chart series of a PromQL SLO from range queries: the same shapes as a cache SLO's detail view.

For a step S (from `choose_step`, at most 11,000 points) and W = max(S, 1m), each
point is computed from the SLO's own good/total PromQL over W (see
`console.promql_slo`), so error rate and burn rate mean what the SLO means; p95 is
`histogram_quantile(0.95, sum by (le) (rate(H_bucket{SEL}[W])))` in ms (histogram
SLIs only; None otherwise). The expressions go as one batched range query
(`console.promql_batch`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from connectors.prometheus import PromSeries, QueryResult, choose_step, duration
from console.config import SloSpec
from console.promql_batch import Part, ask
from console.promql_slo import PromqlError, QueryApi, selector, sli_queries, window_counts
from console.slo import burn_rate
from console.snapshots import Point, Series, SloDetail, SloStatus
from console.timeutil import floor_to, naive_utc, to_unix

_MINUTE = timedelta(minutes=1)


def _by_time(series: Sequence[PromSeries]) -> dict[float, float]:
    if not series:
        return {}
    if len(series) > 1:
        raise PromqlError(f"a chart query returned {len(series)} series; aggregate it")
    return {round(ts, 3): v for ts, v in series[0].points if not math.isnan(v)}


@dataclass(frozen=True)
class _RangeApi:
    """Batched queries asked as range queries over one span and step."""

    client: QueryApi
    start: datetime
    end: datetime
    step: timedelta

    async def query(self, expr: str, at: datetime) -> QueryResult:
        return await self.client.query_range(expr, self.start, self.end, self.step)


async def promql_series(client: QueryApi, spec: SloSpec, at: datetime,
                        span: timedelta = timedelta(hours=6), points: int = 72,
                        le_cache: dict[tuple[str, str, float], str] | None = None
                        ) -> tuple[Series, Series, Series]:
    """Error rate (fraction), p95 latency (ms, histogram SLIs only) and burn rate per step over `span`.

    Points are labelled with the start of their step, like the cache's charts; a step
    without traffic is None. The step is `choose_step(at - span, at, points)`.
    """
    at = naive_utc(at)
    step = choose_step(at - span, at, points)
    end = floor_to(at, step)
    count = max(1, math.ceil(span / step))
    start = end - step * (count - 1)
    window = max(step, _MINUTE)
    q = await sli_queries(client, spec, at, le_cache)
    exprs = {"good": q.good(window) if q.counts_good else None, "errors": q.errors(window),
             "total": q.total(window)}
    if q.sli.histogram is not None:
        rate = f"rate({selector(q.sli.histogram + '_bucket', q.sli.selector)}[{duration(window)}])"
        scale = 1.0 if q.sli.histogram.endswith(("_milliseconds", "_ms")) else 1000.0
        exprs["p95"] = f"histogram_quantile(0.95, sum by (le) ({rate})) * {scale:g}"
    parts = [Part(0, key, expr) for key, expr in exprs.items() if expr is not None]
    answer = (await ask(_RangeApi(client, start, end, step), [{0: parts}], at))[0]
    if isinstance(answer, Exception):
        raise answer
    good, errors, total, p95 = (_by_time(answer.of(key)) for key in ("good", "errors", "total", "p95"))
    rates: list[float | None] = []
    burns: list[float | None] = []
    latency: list[float | None] = []
    for i in range(count):
        ts = _unix(start + step * i)
        c = window_counts(q.good_value(good.get(ts)), errors.get(ts), total.get(ts))
        rates.append(c.bad / c.total if c.total else None)
        burns.append(burn_rate(c, spec.objective))
        latency.append(p95.get(ts))
    first = start - step
    return (_series("error_rate", "fraction", first, step, rates),
            _series("latency_p95", "ms", first, step, latency),
            _series("burn_rate", "x", first, step, burns))


def _unix(t: datetime) -> float:
    return round(to_unix(t), 3)


def _series(name: str, unit: str, start: datetime, step: timedelta,
            values: Sequence[float | None]) -> Series:
    return Series(name, unit, tuple(Point(start + i * step, v) for i, v in enumerate(values)))


async def promql_detail(client: QueryApi, spec: SloSpec, at: datetime, status: SloStatus,
                        span: timedelta = timedelta(hours=6), points: int = 72,
                        le_cache: dict[tuple[str, str, float], str] | None = None) -> SloDetail:
    """The SLO detail view's data for a PromQL SLO (no change markers: PromQL has no prompt versions)."""
    error_rate, latency, burn = await promql_series(client, spec, at, span, points, le_cache)
    return SloDetail(status=status, error_rate=error_rate, latency_p95=latency, burn_rate=burn, markers=())


