"""PromQL SLOs: the queries issued, `le` matching, empty answers as no traffic, failures, the poller."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from connectors.http import SourceError
from connectors.prometheus import PromSeries, QueryResult
from console.config import Config, PrometheusSource, PromqlSli, SloSpec
from console.prometheus_poll import PrometheusPoller, make_poller
from console.promql_batch import KEY_LABEL, split_query
from console.promql_eval import evaluate, evaluate_many
from console.promql_slo import (
    PromqlError,
    SliQueries,
    counter_expr,
    le_matcher,
    matching_le,
    threshold_in_unit,
)
from console.slo import AlertLevel

AT = datetime(2026, 3, 4, 10, 0)


def vector(*values: float, warnings: tuple[str, ...] = ()) -> QueryResult:
    series = tuple(PromSeries((("i", str(i)),), ((0.0, v),)) for i, v in enumerate(values))
    return QueryResult("vector", series, warnings)


def le_vector(*les: str) -> QueryResult:
    return QueryResult("vector", tuple(PromSeries((("le", le),), ((0.0, 1.0),)) for le in les))


class FakeApi:
    """Answers each part of a batched instant query with `answer(expr)`, like Prometheus: one
    failing part fails the whole query; records the parts and counts the requests."""

    name = "prom"

    def __init__(self, answer: Callable[[str], QueryResult]) -> None:
        self.answer = answer
        self.exprs: list[str] = []
        self.requests = 0

    async def query(self, expr: str, at: datetime) -> QueryResult:
        self.requests += 1
        parts = split_query(expr) or [("", expr)]
        self.exprs += [e for _, e in parts]
        series, warnings = [], []
        for key, part in parts:
            result = self.answer(part)
            series += [PromSeries((*s.labels, (KEY_LABEL, key)) if key else s.labels, s.points)
                       for s in result.series]
            warnings += result.warnings
        return QueryResult("vector", tuple(series), tuple(dict.fromkeys(warnings)))

    async def query_range(self, expr: str, start: datetime, end: datetime,
                          step: timedelta | None = None) -> QueryResult:
        raise AssertionError("not used")


def spec(**promql: Any) -> SloSpec:
    extra = {k: promql.pop(k) for k in ("kind", "threshold_ms", "objective") if k in promql}
    return SloSpec.model_validate({"name": "s", "kind": extra.get("kind", "availability"),
                                   "objective": extra.get("objective", 0.99), "window_days": 28,
                                   "threshold_ms": extra.get("threshold_ms"),
                                   "promql": {"source": "prom", **promql}})


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# ---------------------------------------------------------------------------
# The PromQL
# ---------------------------------------------------------------------------


def test_counter_selectors_are_wrapped_in_sum_increase_and_window_expressions_substituted() -> None:
    assert counter_expr('llm_requests_total{job="gw"}', timedelta(minutes=5)) == (
        'sum(increase(llm_requests_total{job="gw"}[5m]))')
    assert counter_expr("sum(rate(x[$window])) * 60", timedelta(days=28)) == "sum(rate(x[28d])) * 60"


def test_bucket_method_queries_the_threshold_bucket_and_the_count() -> None:
    sli = PromqlSli(source="p", histogram="lat_seconds", selector='job="gw"')
    q = SliQueries(sli, 0.5, 'le="0.5"')
    assert q.good(timedelta(hours=1)) == 'sum(increase(lat_seconds_bucket{le="0.5",job="gw"}[1h]))'
    assert q.total(timedelta(hours=1)) == 'sum(increase(lat_seconds_count{job="gw"}[1h]))'


def test_quantile_method_counts_one_minute_slices() -> None:
    sli = PromqlSli(source="p", histogram="lat_seconds", method="quantile", quantile=0.99)
    q = SliQueries(sli, 0.5)
    quantile = "histogram_quantile(0.99, sum by (le) (rate(lat_seconds_bucket[2m])))"
    assert q.good(timedelta(minutes=30)) == f"count_over_time(({quantile} <= 0.5)[30m:1m])"
    assert q.total(timedelta(minutes=30)) == f"count_over_time(({quantile} >= 0)[30m:1m])"
    assert q.requests(timedelta(days=28)) == "sum(increase(lat_seconds_count[28d]))"


def test_thresholds_follow_the_histogram_unit() -> None:
    assert threshold_in_unit("lat_seconds", 250) == 0.25
    assert threshold_in_unit("lat_milliseconds", 250) == 250
    assert threshold_in_unit("lat_ms", 250) == 250


@pytest.mark.parametrize("values, threshold, found", [
    (["0.1", "0.5", "1", "+Inf"], 0.5, ("0.5",)),
    (["0.50", "5e-01", "0.5", "0.25"], 0.5, ("0.5", "0.50", "5e-01")),
    (["0.1", "0.25", "+Inf", "junk"], 0.5, ()),
    (["0.1"], 100 / 1000, ("0.1",)),
])
def test_le_values_match_the_threshold_by_number_not_spelling(values: list[str], threshold: float,
                                                              found: tuple[str, ...]) -> None:
    assert matching_le(values, threshold) == found


def test_several_spellings_of_one_bound_become_an_escaped_regex() -> None:
    assert le_matcher(["0.5"]) == 'le="0.5"'
    assert le_matcher(["0.5", "0.50"]) == 'le=~"0\\\\.5|0\\\\.50"'


# ---------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------


def test_no_series_is_no_traffic_not_zero_compliance() -> None:
    api = FakeApi(lambda expr: vector())
    status, _ = run(evaluate(api, spec(good="g_total", total="t_total"), AT))
    assert status.compliance is None and status.budget_remaining == 1.0 and status.requests == 0
    assert status.level is AlertLevel.OK and all(b is None for _, b in status.burn_rates)
    assert len(api.exprs) == 2 * 8  # good and total for 5m ... 3d and the 28d window
    assert api.requests == 1  # in one batched query


def test_a_missing_good_series_with_traffic_counts_zero_good() -> None:
    api = FakeApi(lambda expr: vector() if "g_total" in expr else vector(100))
    status, _ = run(evaluate(api, spec(good="g_total", total="t_total"), AT))
    assert status.compliance == 0.0 and status.level is AlertLevel.PAGE


def test_errors_sli_counts_good_as_total_minus_errors_and_no_errors_series_as_none() -> None:
    answers = {"e_total": vector(), "t_total": vector(1000)}
    api = FakeApi(lambda expr: next(v for k, v in answers.items() if k in expr))
    status, _ = run(evaluate(api, spec(errors="e_total", total="t_total"), AT))
    assert status.compliance == 1.0 and status.requests == 1000
    answers["e_total"] = vector(5)
    status, _ = run(evaluate(api, spec(errors="e_total", total="t_total"), AT))
    assert status.compliance == 0.995 and dict(status.burn_rates)["1h"] == pytest.approx(0.5)


def test_extrapolated_good_above_total_is_clamped() -> None:
    api = FakeApi(lambda expr: vector(100.4) if "g_total" in expr else vector(100.0))
    status, _ = run(evaluate(api, spec(good="g_total", total="t_total"), AT))
    assert status.compliance == 1.0


def test_an_expression_returning_several_series_is_an_error_saying_to_aggregate() -> None:
    api = FakeApi(lambda expr: vector(1, 2))
    with pytest.raises(PromqlError, match="returned 2 series; aggregate it"):
        run(evaluate(api, spec(good="sum by (x) (increase(g[$window]))", total="t"), AT))


def test_bucket_method_looks_up_the_le_spelling_and_uses_it() -> None:
    def answer(expr: str) -> QueryResult:
        if expr.startswith("count by (le)"):
            return le_vector("0.1", "0.50", "1", "+Inf")
        return vector(90) if "_bucket" in expr else vector(100)

    api = FakeApi(answer)
    cache: dict[tuple[str, str, float], str] = {}
    slo = spec(kind="latency", threshold_ms=500, histogram="lat_seconds", selector='job="gw"')
    status, _ = run(evaluate(api, slo, AT, cache))
    assert api.exprs[0] == 'count by (le) (last_over_time(lat_seconds_bucket{job="gw"}[28d]))'
    assert 'sum(increase(lat_seconds_bucket{le="0.50",job="gw"}[5m]))' in api.exprs
    assert status.compliance == 0.9 and cache == {("lat_seconds", 'job="gw"', 0.5): 'le="0.50"'}
    api.exprs.clear()
    run(evaluate(api, slo, AT, cache))
    assert not any(e.startswith("count by (le)") for e in api.exprs)  # looked up once


def test_bucket_method_without_a_bucket_at_the_threshold_says_which_buckets_exist() -> None:
    api = FakeApi(lambda expr: le_vector("+Inf", "0.25", "1"))
    slo = spec(kind="latency", threshold_ms=500, histogram="lat_seconds")
    with pytest.raises(PromqlError) as info:
        run(evaluate(api, slo, AT))
    assert str(info.value).startswith("lat_seconds_bucket has no bucket le=0.5 (buckets: 0.25, 1, +Inf)")


def test_warnings_come_back_once_each() -> None:
    api = FakeApi(lambda expr: vector(10, warnings=("metric might not be a counter",)))
    _, warnings = run(evaluate(api, spec(good="g", total="t"), AT))
    assert warnings == ("metric might not be a counter",)


def test_one_failing_slo_does_not_hide_the_others() -> None:
    def answer(expr: str) -> QueryResult:
        if "broken" in expr:
            raise SourceError("prom", "http", "bad_data: parse error", status=400)
        return vector(10)

    good, bad = run(evaluate_many(FakeApi(answer), [spec(good="g", total="t"),
                                                   spec(good="broken", total="t")], AT))
    assert good.status is not None and good.status.compliance == 1.0 and good.source == "prometheus:prom"
    assert bad.status is None and bad.error == "prom: HTTP 400: bad_data: parse error"
    assert bad.error_kind == "http"


# ---------------------------------------------------------------------------
# The poller
# ---------------------------------------------------------------------------


class FakeClient(FakeApi):
    def __init__(self, answer: Callable[[str], QueryResult], alerts: Any = ()) -> None:
        super().__init__(answer)
        self._alerts = alerts
        self.closed = False

    async def alerts(self) -> Any:
        if isinstance(self._alerts, Exception):
            raise self._alerts
        return self._alerts

    async def aclose(self) -> None:
        self.closed = True


def poller(client: FakeClient, *specs: SloSpec, alerts: bool = True) -> PrometheusPoller:
    source = PrometheusSource(name="prom", url="http://127.0.0.1:1", alerts=alerts)
    return PrometheusPoller(source, specs, client, clock=lambda: AT)  # type: ignore[arg-type]


def test_a_reading_carries_statuses_per_slo_errors_and_warnings() -> None:
    def answer(expr: str) -> QueryResult:
        if "broken" in expr:
            raise SourceError("prom", "http", "execution: too many samples", status=422)
        return vector(10, warnings=("careful",))

    ok, broken = spec(good="g", total="t"), spec(good="broken", total="t").model_copy(update={"name": "b"})
    reading = run(poller(FakeClient(answer), ok, broken).poll())
    assert [s.name for s in reading.slos] == ["s"] and reading.at == AT
    assert reading.errors == (("b", "prom: HTTP 422: execution: too many samples"),)
    assert reading.warnings == ("s: careful",)
    assert reading.problems == ("SLO b: prom: HTTP 422: execution: too many samples", "s: careful")
    assert reading.summary() == "0 alerts (0 firing), 1 PromQL SLOs, 1 failed"


def test_an_unreachable_source_fails_the_poll_instead_of_every_slo() -> None:
    def answer(expr: str) -> QueryResult:
        raise SourceError("prom", "connect", "cannot connect to 127.0.0.1:1: connection refused")

    with pytest.raises(SourceError) as info:
        run(poller(FakeClient(answer), spec(good="g", total="t"), alerts=False).poll())
    assert str(info.value) == "prom: connect: cannot connect to 127.0.0.1:1: connection refused"
    refused = SourceError("prom", "connect", "connection refused")
    with pytest.raises(SourceError, match="connection refused"):
        run(poller(FakeClient(answer, alerts=refused), spec(good="g", total="t")).poll())


def test_alerts_that_fail_beside_working_slo_queries_are_a_problem_not_a_failed_poll() -> None:
    missing = SourceError("vm", "http", "404 page not found", status=404)
    reading = run(poller(FakeClient(lambda e: vector(1), alerts=missing), spec(good="g", total="t")).poll())
    assert reading.alerts == () and [s.name for s in reading.slos] == ["s"]
    assert reading.problems == ("alerts: vm: HTTP 404: 404 page not found",)


def test_make_poller_takes_the_slos_that_name_the_source() -> None:
    config = Config.model_validate({
        "sources": {"prometheus": [{"name": "prom", "url": "http://127.0.0.1:9090", "refresh_seconds": 30},
                                   {"name": "other", "url": "http://127.0.0.1:9091"}]},
        "slos": [{"name": "a", "kind": "availability", "objective": 0.99,
                  "promql": {"source": "prom", "good": "g", "total": "t"}},
                 {"name": "b", "kind": "availability", "objective": 0.99,
                  "promql": {"source": "other", "good": "g", "total": "t"}},
                 {"name": "c", "kind": "availability", "objective": 0.99}]})
    made = make_poller(config.sources.prometheus[0], config, {})
    assert [s.name for s in made.specs] == ["a"] and made.interval == 30 and made.kind == "prometheus"
    run(made.aclose())


# ---------------------------------------------------------------------------
# llmdeck status
# ---------------------------------------------------------------------------


def test_status_report_lists_promql_slos_with_source_warnings_and_errors(tmp_path: Any) -> None:
    import io

    from console import status_report
    from console.cache.store import Cache
    from console.promql_slo import PromqlSloResult

    config = Config.model_validate({
        "sources": {"prometheus": [{"name": "prom", "url": "http://127.0.0.1:9090"}]},
        "slos": [{"name": "cached", "kind": "availability", "objective": 0.99},
                 {"name": "fine", "kind": "availability", "objective": 0.99,
                  "promql": {"source": "prom", "good": "g", "total": "t"}},
                 {"name": "failed", "kind": "availability", "objective": 0.99,
                  "promql": {"source": "prom", "good": "g", "total": "t"}}]})
    fine, _ = run(evaluate(FakeApi(lambda e: vector(10)), config.slos[1], AT))
    promql = {"fine": PromqlSloResult("fine", "prometheus:prom", fine, warnings=("\x1b[31mred\x1b[0m",)),
              "failed": PromqlSloResult("failed", "prometheus:prom", None, "prom: HTTP 422: execution: x",
                                        "http")}
    with Cache.open(tmp_path / "cache.duckdb") as cache:
        report = status_report.gather(cache.cursor(), config, AT, promql)
    doc = status_report.as_json(report)
    cached, ok, failed = doc["slos"]  # type: ignore[misc]
    assert [cached["source"], ok["source"], failed["source"]] == ["cache", *["prometheus:prom"] * 2]
    assert ok["state"] == "ok" and ok["error"] is None and ok["warnings"] == ["\x1b[31mred\x1b[0m"]
    assert failed["state"] == "unknown" and failed["error"] == "prom: HTTP 422: execution: x"
    assert report.exit_code == 1
    out = io.StringIO()
    status_report.write_text(report, out)
    text = out.getvalue()
    assert "fine: availability 99% over 28d, PromQL [prometheus:prom]" in text
    assert "cached: availability 99% over 28d, all traffic [cache]" in text
    assert "warning: \\x1b[31mred\\x1b[0m" in text and "\x1b" not in text
    assert "? unknown failed: availability from prometheus:prom\n            error: prom: HTTP 422" in text
