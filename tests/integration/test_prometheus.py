"""PromQL SLOs, alerts and API errors against a real Prometheus and a real VictoriaMetrics.

History is written as samples every 5 minutes over 4 days and 1 hour before AT (the
last whole hour a day ago), loaded into Prometheus with `promtool tsdb
create-blocks-from openmetrics` and into VictoriaMetrics with `/api/v1/import/prometheus`.
Every window (5m ... 4d) starts and ends on a sample, so `increase()` is exactly
last - first in both stores: Prometheus 2.x ranges include their start sample, so it
does not extrapolate (durations to both ends are 0); VictoriaMetrics takes the sample
at the start as its base and never extrapolates. The expected figures are summed by
hand from the same per-interval increments.

The quantile (time-slice) SLO reads a separate 15 s histogram, fast for 9 minutes, a
5-minute gap, then slow for 15 minutes up to AT (a minute-slice quantile needs two
samples in its 2m rate window, which the gap and the data edges decide exactly);
it is checked on Prometheus only, whose subquery and range boundaries it relies on.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from connectors.http import SourceError
from connectors.prometheus import PrometheusClient
from console.config import Config
from console.prometheus_poll import evaluate_configured, make_poller
from console.promql_charts import promql_series
from console.promql_eval import evaluate
from console.slo import AlertLevel
from console.timeutil import floor_to, to_unix, utc_now
from tests.integration.servers import ServerProcess, free_port, http_ok, require_binary

STEP = timedelta(minutes=5)
AT = floor_to(utc_now(), timedelta(hours=1)) - timedelta(days=1)
INTERVALS = 4 * 288 + 12  # 4 days and 1 hour of 5-minute intervals before AT
BUCKETS = ("0.1", "0.25", "0.5", "1", "+Inf")
WINDOWS = {"5m": 1, "30m": 6, "1h": 12, "2h": 24, "6h": 72, "24h": 288, "3d": 864, "4d": 1152}
"""Window label -> how many 5-minute intervals it holds."""


def total_inc(k: int) -> int:
    """Requests in the interval ending k intervals before AT."""
    return 100 + k % 7


def errors_inc(k: int) -> int:
    if k == 0:
        return 12
    if k < 6:
        return 4
    if k < 24:
        return 2 if k < 12 else 1
    if k < 72:
        return int(k % 4 == 0)
    return int(k % 12 == 0) if k < 288 else int(k % 24 == 0)


def slow_inc(k: int) -> int:
    """Requests over 0.5 s in the interval."""
    if k < 6:
        return 3
    if k < 24:
        return 1
    return int(k % 6 == 0) if k < 288 else int(k % 20 == 0)


def bucket_incs(k: int) -> dict[str, int]:
    """Cumulative bucket increments: half the fast requests under 0.1 s, half the slow ones under 1 s."""
    n, slow = total_inc(k), slow_inc(k)
    fast = n - slow
    return {"0.1": fast // 2, "0.25": fast, "0.5": fast, "1": fast + slow // 2, "+Inf": n}


def samples() -> Iterator[tuple[str, float, datetime]]:
    """(series, value, time) of the 5-minute history, oldest first, counters from 1000."""
    counters: dict[str, float] = {}
    for k in range(INTERVALS, -1, -1):  # sample at AT - k*STEP closes interval k
        t = AT - k * STEP
        incs = {} if k == INTERVALS else {
            'llm_requests_total{job="gw"}': total_inc(k),
            'llm_request_errors_total{job="gw"}': errors_inc(k),
            'llm_requests_good_total{job="gw"}': total_inc(k) - errors_inc(k),
            'llm_request_duration_seconds_count{job="gw"}': total_inc(k),
            'llm_request_duration_seconds_sum{job="gw"}': 0.25 * total_inc(k),
            **{f'llm_request_duration_seconds_bucket{{job="gw",le="{le}"}}': v
               for le, v in bucket_incs(k).items()},
        }
        if k == INTERVALS:
            incs = dict.fromkeys(_series_names(), 0)
        for name, inc in incs.items():
            counters[name] = counters.get(name, 1000.0) + inc
            yield name, counters[name], t


def _series_names() -> list[str]:
    return ['llm_requests_total{job="gw"}', 'llm_request_errors_total{job="gw"}',
            'llm_requests_good_total{job="gw"}', 'llm_request_duration_seconds_count{job="gw"}',
            'llm_request_duration_seconds_sum{job="gw"}',
            *(f'llm_request_duration_seconds_bucket{{job="gw",le="{le}"}}' for le in BUCKETS)]


TTFT_START = AT - timedelta(minutes=28)
"""First sample of the 15 s TTFT histogram (fast until +8m, nothing until +13m, slow until AT)."""


def ttft_samples() -> Iterator[tuple[str, float, datetime]]:
    """A base sample a day before AT, then 20 observations per 15 s: fast (0.1-0.25 s) or slow (0.5-1 s)."""
    counts = dict.fromkeys(("0.1", "0.25", "0.5", "1", "+Inf"), 10_000.0)
    times = [AT - timedelta(days=1)]
    times += [TTFT_START + timedelta(seconds=15 * i) for i in range(33)]  # +0 .. +8m
    times += [TTFT_START + timedelta(minutes=13, seconds=15 * i) for i in range(61)]  # +13m .. +28m = AT
    previous = None
    for t in times:
        if previous is not None and t - previous == timedelta(seconds=15):
            slow = t > TTFT_START + timedelta(minutes=10)
            for le in ("1", "+Inf") if slow else ("0.25", "0.5", "1", "+Inf"):
                counts[le] += 20
        previous = t
        for le, v in counts.items():
            yield f'llm_ttft_seconds_bucket{{job="gw",le="{le}"}}', v, t
        yield 'llm_ttft_seconds_count{job="gw"}', counts["+Inf"], t


TTFT_REQUESTS = 20 * (32 + 60)


def openmetrics(rows: list[tuple[str, float, datetime]]) -> str:
    """The samples as an OpenMetrics file for promtool (families contiguous, series in time order)."""
    families: dict[str, list[str]] = {}
    for name, value, t in rows:
        metric = name.split("{")[0]
        family, kind = _family(metric)
        families.setdefault(f"# TYPE {family} {kind}", []).append(f"{name} {value:.17g} {to_unix(t):.0f}")
    lines = []
    for header, body in families.items():
        lines.append(header)
        body.sort(key=lambda line: (line.rsplit(" ", 2)[0], float(line.rsplit(" ", 1)[1])))
        lines += body
    return "\n".join(lines) + "\n# EOF\n"


def _family(metric: str) -> tuple[str, str]:
    for suffix in ("_bucket", "_count", "_sum"):
        if metric.endswith(suffix) and metric.startswith(("llm_request_duration", "llm_ttft")):
            return metric.removesuffix(suffix), "histogram"
    return metric.removesuffix("_total"), "counter"


# ---------------------------------------------------------------------------
# Hand-computed figures
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    compliance: float
    burn: dict[str, float]
    budget_remaining: float
    requests: int


def expected(bad_inc: object, objective: float, window: str = "4d") -> Expected:
    """Good/total summed over each window's intervals, then the SLO formulas written out by hand."""
    bad = {w: sum(bad_inc(k) for k in range(n)) for w, n in WINDOWS.items()}  # type: ignore[operator]
    total = {w: sum(total_inc(k) for k in range(n)) for w, n in WINDOWS.items()}
    budget = 1 - objective
    burn = {w: (bad[w] / total[w]) / budget for w in WINDOWS if w != "4d"}
    slo_burn = (bad[window] / total[window]) / budget
    return Expected((total[window] - bad[window]) / total[window], burn, 1 - slo_burn, total[window])


def config(url: str, with_quantile: bool = True) -> Config:
    slos = [
        {"name": "availability good/total", "kind": "availability", "objective": 0.999, "window_days": 4,
         "promql": {"source": "prom", "good": 'llm_requests_good_total{job="gw"}',
                    "total": 'llm_requests_total{job="gw"}'}},
        {"name": "availability errors", "kind": "availability", "objective": 0.999, "window_days": 4,
         "promql": {"source": "prom", "errors": 'sum(increase(llm_request_errors_total{job="gw"}[$window]))',
                    "total": 'llm_requests_total{job="gw"}'}},
        {"name": "latency bucket", "kind": "latency", "objective": 0.99, "window_days": 4,
         "threshold_ms": 500,
         "promql": {"source": "prom", "histogram": "llm_request_duration_seconds", "selector": 'job="gw"'}},
    ]
    if with_quantile:
        slos.append(
            {"name": "ttft p95 minutes", "kind": "ttft", "objective": 0.9, "window_days": 1,
             "threshold_ms": 500,
             "promql": {"source": "prom", "histogram": "llm_ttft_seconds", "selector": 'job="gw"',
                        "method": "quantile", "quantile": 0.95}})
    return Config.model_validate({"sources": {"prometheus": [{"name": "prom", "url": url}]}, "slos": slos})


# ---------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------


class Exporter:
    """A /metrics endpoint the test serves for Prometheus to scrape (a queue deep enough to alert)."""

    def __init__(self) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                body = b"# TYPE llmdeck_test_queue_depth gauge\nllmdeck_test_queue_depth 9\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


RULES = """groups:
- name: llmdeck-test
  rules:
  - alert: QueueTooDeep
    expr: llmdeck_test_queue_depth > 5
    for: 0s
    labels: {severity: page}
    annotations: {summary: "queue depth over 5"}
"""


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    prom = require_binary("prometheus")
    promtool = require_binary("promtool")
    d = tmp_path_factory.mktemp("prometheus")
    (d / "data.om").write_text(openmetrics([*samples(), *ttft_samples()]))
    import subprocess

    done = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(d / "data.om"),
                           str(d / "tsdb")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    exporter = Exporter()
    (d / "rules.yml").write_text(RULES)
    (d / "prom.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{d / 'rules.yml'}]\n"
        "scrape_configs:\n- job_name: exporter\n"
        f"  static_configs: [{{targets: ['127.0.0.1:{exporter.port}']}}]\n")
    port = free_port()
    server = ServerProcess([prom, f"--config.file={d / 'prom.yml'}", f"--storage.tsdb.path={d / 'tsdb'}",
                            f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=3650d"],
                           d / "prometheus.log")
    try:
        server.wait_ready(http_ok(f"http://127.0.0.1:{port}/-/ready"), 60, "prometheus /-/ready")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        exporter.stop()


@pytest.fixture(scope="module")
def victoria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    vm = require_binary("victoria-metrics")
    d = tmp_path_factory.mktemp("victoria")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = ServerProcess([vm, f"-storageDataPath={d / 'data'}", f"-httpListenAddr=127.0.0.1:{port}",
                            "-search.disableCache", "-retentionPeriod=100y"], d / "vm.log")
    try:
        server.wait_ready(http_ok(f"{url}/health"), 60, "victoria-metrics /health")
        lines = [f"{name} {value:.17g} {round(to_unix(t) * 1000)}" for name, value, t in samples()]
        httpx.post(f"{url}/api/v1/import/prometheus", content="\n".join(lines) + "\n",
                   timeout=30).raise_for_status()
        httpx.get(f"{url}/internal/force_flush", timeout=30).raise_for_status()  # searchable now
        last = 'llm_requests_total{job="gw"}'
        want = next(v for n, v, t in reversed(list(samples())) if n == last and t == AT)

        def loaded() -> bool:
            body = httpx.get(f"{url}/api/v1/query", params={"query": f"max({last})",
                                                            "time": f"{to_unix(AT):.0f}"}).json()
            result = body["data"]["result"]
            return bool(result) and float(result[0]["value"][1]) == want

        server.wait_ready(loaded, 60, "victoria-metrics to serve the imported samples")
        yield url
    finally:
        server.stop()


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def _evaluate_all(url: str, with_quantile: bool = True) -> dict[str, object]:
    cfg = config(url, with_quantile)
    client = PrometheusClient.for_source(cfg.sources.prometheus[0], {})
    try:
        return {s.name: (await evaluate(client, s, AT))[0] for s in cfg.slos}
    finally:
        await client.aclose()


def assert_figures(status: object, want: Expected) -> None:
    assert status.compliance == pytest.approx(want.compliance, rel=1e-12)  # type: ignore[attr-defined]
    burns = dict(status.burn_rates)  # type: ignore[attr-defined]
    assert list(burns) == list(want.burn)
    for label, value in want.burn.items():
        assert burns[label] == pytest.approx(value, rel=1e-12), label
    assert status.budget_remaining == pytest.approx(want.budget_remaining, rel=1e-12)  # type: ignore[attr-defined]
    assert status.requests == want.requests  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


def test_ratio_and_errors_slos_equal_hand_computed_figures_on_prometheus(prometheus: str) -> None:
    got = run(_evaluate_all(prometheus))
    want = expected(errors_inc, 0.999)
    for name in ("availability good/total", "availability errors"):
        assert_figures(got[name], want)  # type: ignore[index]
        # 1h burn 44 errors of 1,231 / 0.001 = 35.7 and 5m burn 12 of 100 / 0.001 = 120: page
        assert got[name].level is AlertLevel.PAGE  # type: ignore[index,attr-defined]
        assert got[name].reason == "page: 1h burn 35.7 and 5m burn 120.0 > 14.4"  # type: ignore[index,attr-defined]
    assert want.burn["5m"] == pytest.approx(120.0) and want.burn["1h"] == (44 / 1231) / (1 - 0.999)


def test_histogram_bucket_slo_equals_hand_computed_figures_on_prometheus(prometheus: str) -> None:
    status = run(_evaluate_all(prometheus))["latency bucket"]  # type: ignore[index]
    want = expected(slow_inc, 0.99)
    assert_figures(status, want)
    assert status.level is AlertLevel.OK and want.burn["5m"] == pytest.approx(3.0)  # type: ignore[attr-defined]


def test_quantile_slo_counts_minutes_that_met_the_threshold_on_prometheus(prometheus: str) -> None:
    status = run(_evaluate_all(prometheus))["ttft p95 minutes"]  # type: ignore[index]
    # minutes with a p95: 9 fast (start+1m .. +9m) and 15 slow (+14m .. +28m); the last 5m all slow
    assert status.compliance == 9 / 24
    burns = dict(status.burn_rates)
    assert burns["5m"] == pytest.approx(1 / 0.1, rel=1e-12)
    for label in ("30m", "1h", "2h", "6h", "24h", "3d"):
        assert burns[label] == pytest.approx((15 / 24) / 0.1, rel=1e-12), label
    assert status.budget_remaining == pytest.approx(1 - 6.25, rel=1e-12)
    assert status.requests == TTFT_REQUESTS
    assert status.level is AlertLevel.PAGE
    burn = f"{(15 / 24) / (1 - 0.9):.1f}"  # 1 - 0.9 is 0.0999...98: 6.250000000000001 -> "6.3"
    assert status.reason == f"page: 6h burn {burn} and 30m burn {burn} > 6"
    assert status.time_to_exhaustion == timedelta(0)


def test_same_slo_figures_from_victoriametrics(victoria: str) -> None:
    got = run(_evaluate_all(victoria, with_quantile=False))
    for name in ("availability good/total", "availability errors"):
        assert_figures(got[name], expected(errors_inc, 0.999))  # type: ignore[index]
    assert_figures(got["latency bucket"], expected(slow_inc, 0.99))  # type: ignore[index]


def test_bad_promql_on_victoriametrics_carries_its_error_type_too(victoria: str) -> None:
    async def bad() -> None:
        client = PrometheusClient.for_source(config(victoria).sources.prometheus[0], {})
        try:
            await client.query("sum(rate((x[5m])", AT)
        finally:
            await client.aclose()

    with pytest.raises(SourceError) as info:
        run(bad())
    assert info.value.status == 422 and info.value.reason.startswith("422: error when executing query")


def test_alerts_from_a_rule_on_a_scraped_exporter(prometheus: str) -> None:
    async def firing() -> tuple[object, ...]:
        client = PrometheusClient.for_source(config(prometheus).sources.prometheus[0], {})
        try:
            for _ in range(300):
                alerts = await client.alerts()
                if alerts and alerts[0].state == "firing":
                    return alerts
                await asyncio.sleep(0.1)
            return alerts
        finally:
            await client.aclose()

    (alert,) = run(firing())  # type: ignore[misc]
    assert (alert.name, alert.state, alert.severity, alert.summary) == (
        "QueueTooDeep", "firing", "page", "queue depth over 5")
    assert alert.value == "9e+00" and alert.origin == "prometheus" and alert.source == "prom"
    assert ("job", "exporter") in alert.labels and len(alert.fingerprint) == 16
    assert alert.started is not None and abs(alert.started - utc_now()) < timedelta(minutes=5)


def test_bad_promql_is_a_source_error_with_the_api_error_type(prometheus: str) -> None:
    async def bad() -> None:
        client = PrometheusClient.for_source(config(prometheus).sources.prometheus[0], {})
        try:
            await client.query("sum(rate(llm_requests_total[5m]", AT)
        finally:
            await client.aclose()

    with pytest.raises(SourceError) as info:
        run(bad())
    assert info.value.status == 400 and info.value.reason.startswith("bad_data: ")
    assert str(info.value).startswith("prom: HTTP 400: bad_data: ")


def test_poller_reads_alerts_and_slos_and_a_bad_slo_does_not_hide_the_others(prometheus: str) -> None:
    cfg = config(prometheus)
    broken = cfg.slos[0].model_copy(update={
        "name": "broken", "promql": cfg.slos[0].promql.model_copy(update={"good": "rate(("})})  # type: ignore[union-attr]
    cfg = cfg.model_copy(update={"slos": [*cfg.slos, broken]})
    poller = make_poller(cfg.sources.prometheus[0], cfg, {})
    poller.clock = lambda: AT

    async def poll() -> object:
        try:
            return await poller.poll()
        finally:
            await poller.aclose()

    reading = run(poll())
    assert [s.name for s in reading.slos] == [s.name for s in cfg.slos[:4]]  # type: ignore[attr-defined]
    ((name, error),) = reading.errors  # type: ignore[attr-defined]
    assert name == "broken" and "HTTP 400: bad_data: " in error
    assert reading.problems and "broken" in reading.problems[0]  # type: ignore[attr-defined]
    assert reading.at == AT and reading.source == "prom"  # type: ignore[attr-defined]


def test_status_evaluates_promql_slos_live(prometheus: str) -> None:
    results = evaluate_configured(config(prometheus), AT)
    assert set(results) == {"availability good/total", "availability errors", "latency bucket",
                            "ttft p95 minutes"}
    assert all(r.status is not None and r.source == "prometheus:prom" for r in results.values())
    assert_figures(results["latency bucket"].status, expected(slow_inc, 0.99))


def test_chart_series_come_from_range_queries(prometheus: str) -> None:
    cfg = config(prometheus)

    transport = CountingTransport()

    async def charts() -> object:
        client = PrometheusClient.for_source(cfg.sources.prometheus[0], {}, transport=transport)
        try:
            return await promql_series(client, cfg.slos[2], AT, timedelta(hours=1), 12,
                                       {("llm_request_duration_seconds", 'job="gw"', 0.5): 'le="0.5"'})
        finally:
            await client.aclose()

    error_rate, p95, burn = run(charts())  # type: ignore[misc]
    assert transport.sent == [("GET", "/api/v1/query_range")]  # good, total and p95 in one range query
    assert len(error_rate.points) == 12 and error_rate.points[-1].ts == AT - STEP
    # the last 5-minute step: 3 slow of 100 (k = 0) -> error rate 0.03, burn 3
    assert error_rate.points[-1].value == pytest.approx(slow_inc(0) / total_inc(0), rel=1e-12)
    assert burn.points[-1].value == pytest.approx(3.0, rel=1e-12)
    assert p95.unit == "ms" and p95.points[-1].value is not None and not math.isnan(p95.points[-1].value)


STATUS_CONFIG = """
[[sources.prometheus]]
name = "prom"
url = "{url}"

[[sources.prometheus]]
name = "gone"
url = "http://127.0.0.1:{dead}"
timeout_seconds = 1

[[slos]]
name = "cache availability"
kind = "availability"
objective = 0.99

[[slos]]
name = "latency bucket"
kind = "latency"
objective = 0.99
window_days = 4
threshold_ms = 500
promql = {{ source = "prom", histogram = "llm_request_duration_seconds", selector = 'job="gw"' }}

[[slos]]
name = "from a dead source"
kind = "availability"
objective = 0.99
promql = {{ source = "gone", errors = 'x_errors_total', total = 'x_total' }}
"""


def test_status_json_lists_cache_and_promql_slos_with_their_source(
        prometheus: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from console.cache.store import Cache
    from console.cli import main

    with Cache.open(tmp_path / "cache.duckdb"):
        pass
    (tmp_path / "config.toml").write_text(STATUS_CONFIG.format(url=prometheus, dead=free_port()))
    argv = ["--config", str(tmp_path / "config.toml"), "--cache", str(tmp_path / "cache.duckdb"),
            "status", "--at", AT.isoformat()]
    code = main([*argv, "--json"])
    slos = {s["name"]: s for s in json.loads(capsys.readouterr().out)["slos"]}
    assert list(slos) == ["cache availability", "latency bucket", "from a dead source"]
    cached = slos["cache availability"]
    assert cached["source"] == "cache" and cached["compliance"] is None
    bucket = slos["latency bucket"]
    want = expected(slow_inc, 0.99)
    assert bucket["source"] == "prometheus:prom" and bucket["error"] is None and bucket["state"] == "ok"
    assert bucket["compliance"] == round(want.compliance, 6) and bucket["requests"] == want.requests
    assert bucket["burn_rates"] == {k: round(v, 4) for k, v in want.burn.items()}
    dead = slos["from a dead source"]
    assert dead["source"] == "prometheus:gone" and dead["state"] == "unknown"
    assert dead["error"].startswith("gone: connect: cannot connect to")
    assert code == 1  # nothing pages, but one SLO is unknown

    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "[prometheus:prom]" in out and "[cache]" in out
    assert "? unknown from a dead source: availability from prometheus:gone" in out


def test_quantile_chart_series_and_detail_for_the_slow_minutes(prometheus: str) -> None:
    from console.promql_charts import promql_detail

    cfg = config(prometheus)
    ttft = cfg.slos[3]

    async def detail() -> object:
        client = PrometheusClient.for_source(cfg.sources.prometheus[0], {})
        try:
            status, _ = await evaluate(client, ttft, AT)
            return await promql_detail(client, ttft, AT, status, timedelta(minutes=30), 6)
        finally:
            await client.aclose()

    d = run(detail())
    assert d.markers == () and d.status.name == "ttft p95 minutes"  # type: ignore[attr-defined]
    last_rate = d.error_rate.points[-1]  # type: ignore[attr-defined]
    assert last_rate.ts == AT - STEP and last_rate.value == 1.0  # every minute of the last 5 was slow
    assert d.burn_rate.points[-1].value == pytest.approx(1 / 0.1)  # type: ignore[attr-defined]
    # all of the last 5 minutes' observations in (0.5, 1]: p95 = 0.5 + 0.5 * 0.95 s
    assert d.latency_p95.points[-1].value == pytest.approx(975.0)  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------
# Batching: how many requests one poll sends, and the same figures
# ---------------------------------------------------------------------------


class CountingTransport(httpx.AsyncBaseTransport):
    """The real transport, with every request's method and path recorded."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.sent: list[tuple[str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((request.method, request.url.path))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def queries(self) -> list[str]:
        """The methods of the instant queries sent since the last call."""
        sent = [m for m, path in self.sent if path == "/api/v1/query"]
        self.sent.clear()
        return sent


def _poll_twice(url: str, cfg: Config) -> tuple[list[object], list[list[str]]]:
    transport = CountingTransport()
    poller = make_poller(cfg.sources.prometheus[0], cfg, {}, transport=transport)
    poller.clock = lambda: AT

    async def polls() -> tuple[list[object], list[list[str]]]:
        try:
            readings, sent = [], []
            for _ in range(2):
                readings.append(await poller.poll())
                sent.append(transport.queries())
            return readings, sent
        finally:
            await poller.aclose()

    return run(polls())  # type: ignore[return-value]


def test_one_poll_of_four_slos_sends_two_queries_with_the_same_figures_on_prometheus(prometheus: str) -> None:
    readings, sent = _poll_twice(prometheus, config(prometheus))
    # poll 1: the le lookup (GET), the 3 counter/bucket SLOs in one query (POSTed: too long for a URL),
    # the quantile SLO's subqueries in one of their own; poll 2: the le matcher is cached.
    # Unbatched it was 16 + 16 + 16 + 15 queries and the lookup.
    assert sent == [["GET", "POST", "GET"], ["POST", "GET"]]
    for reading in readings:
        got = {s.name: s for s in reading.slos}  # type: ignore[attr-defined]
        assert reading.errors == () and reading.problems == ()  # type: ignore[attr-defined]
        for name in ("availability good/total", "availability errors"):
            assert_figures(got[name], expected(errors_inc, 0.999))
        assert_figures(got["latency bucket"], expected(slow_inc, 0.99))
        ttft = got["ttft p95 minutes"]
        assert ttft.compliance == 9 / 24 and ttft.requests == TTFT_REQUESTS


def test_one_poll_of_three_slos_is_one_query_with_the_same_figures_on_victoriametrics(victoria: str) -> None:
    cfg = config(victoria, with_quantile=False)
    cfg = cfg.model_copy(update={"sources": cfg.sources.model_copy(update={"prometheus": [
        cfg.sources.prometheus[0].model_copy(update={"alerts": False})]})})
    readings, sent = _poll_twice(victoria, cfg)
    assert sent == [["GET", "POST"], ["POST"]]
    for reading in readings:
        got = {s.name: s for s in reading.slos}  # type: ignore[attr-defined]
        assert reading.problems == ()  # type: ignore[attr-defined]
        for name in ("availability good/total", "availability errors"):
            assert_figures(got[name], expected(errors_inc, 0.999))
        assert_figures(got["latency bucket"], expected(slow_inc, 0.99))


def _many(url: str, copies: int) -> Config:
    base = config(url, with_quantile=False)
    slos = [s.model_copy(update={"name": f"{s.name} #{i}"}) for i in range(copies) for s in base.slos]
    return base.model_copy(update={"slos": slos})


@pytest.mark.parametrize("store", ["prometheus", "victoria"])
def test_many_slos_split_into_queries_under_the_length_limit_keep_exact_figures(
        store: str, request: pytest.FixtureRequest) -> None:
    from console.promql_batch import MAX_QUERY_CHARS

    url = request.getfixturevalue(store)
    cfg = _many(url, 5)  # 15 SLOs, about 27,000 characters of PromQL
    cfg = cfg.model_copy(update={"sources": cfg.sources.model_copy(update={"prometheus": [
        cfg.sources.prometheus[0].model_copy(update={"alerts": False})]})})
    readings, sent = _poll_twice(url, cfg)
    assert len(sent[1]) == 3 and len(sent[0]) == 1 + 3  # 27,000 / MAX_QUERY_CHARS, and the le lookup
    assert MAX_QUERY_CHARS == 12_000
    got = {s.name: s for s in readings[1].slos}  # type: ignore[attr-defined]
    assert len(got) == 15
    for name, status in got.items():
        assert_figures(status, expected(slow_inc, 0.99) if name.startswith("latency")
                       else expected(errors_inc, 0.999))


@pytest.mark.parametrize("store, refusal", [("prometheus", "HTTP 400: bad_data: "),
                                             ("victoria", "HTTP 422: 422: error when executing query")])
def test_a_bad_slo_in_the_shared_query_fails_alone_then_is_asked_alone(
        store: str, refusal: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(store)
    cfg = config(url, with_quantile=False)
    broken = cfg.slos[0].model_copy(update={
        "name": "broken", "promql": cfg.slos[0].promql.model_copy(update={"good": "rate(("})})  # type: ignore[union-attr]
    cfg = cfg.model_copy(update={"slos": [*cfg.slos, broken], "sources": cfg.sources.model_copy(update={
        "prometheus": [cfg.sources.prometheus[0].model_copy(update={"alerts": store == "prometheus"})]})})
    readings, sent = _poll_twice(url, cfg)
    # poll 1: le lookup, the shared query refused, then each of the 4 SLOs alone;
    # poll 2: the 3 good SLOs together, the broken one alone
    assert len(sent[0]) == 1 + 1 + 4 and len(sent[1]) == 2
    for reading in readings:
        ((name, error),) = reading.errors  # type: ignore[attr-defined]
        assert name == "broken" and refusal in error
        got = {s.name: s for s in reading.slos}  # type: ignore[attr-defined]
        assert_figures(got["availability good/total"], expected(errors_inc, 0.999))
        assert_figures(got["availability errors"], expected(errors_inc, 0.999))
        assert_figures(got["latency bucket"], expected(slow_inc, 0.99))


PROMQL_ONLY_CONFIG = """
[[sources.prometheus]]
name = "prom"
url = "{url}"

[[slos]]
name = "latency bucket"
kind = "latency"
objective = 0.99
window_days = 4
threshold_ms = 500
promql = {{ source = "prom", histogram = "llm_request_duration_seconds", selector = 'job="gw"' }}
"""

PAGING_SLO = """
[[slos]]
name = "availability errors"
kind = "availability"
objective = 0.999
window_days = 4

[slos.promql]
source = "prom"
errors = 'sum(increase(llm_request_errors_total{{job="gw"}}[$window]))'
total = 'llm_requests_total{{job="gw"}}'
"""


def test_status_without_a_trace_cache_shows_the_promql_slos_and_exits_by_their_state(
        prometheus: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from console.cli import main

    missing = tmp_path / "never-ingested" / "cache.duckdb"
    (tmp_path / "config.toml").write_text(PROMQL_ONLY_CONFIG.format(url=prometheus))
    argv = ["--config", str(tmp_path / "config.toml"), "--cache", str(missing),
            "status", "--at", AT.isoformat()]
    assert main(argv) == 0  # the bucket SLO is ok
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if "trace cache" in line] == [
        f"trace cache missing ({missing}): no traffic figures; run `llmdeck ingest` to fill it"]
    assert "latency bucket: latency under 500ms 99% over 4d, PromQL [prometheus:prom]" in out
    assert not missing.exists()

    (tmp_path / "config.toml").write_text((PROMQL_ONLY_CONFIG + PAGING_SLO).format(url=prometheus))
    assert main([*argv, "--json"]) == 2  # the errors SLO pages
    doc = json.loads(capsys.readouterr().out)
    assert doc["trace_cache"] == {"state": "missing", "path": str(missing)}
    assert [(s["name"], s["state"]) for s in doc["slos"]] == [("latency bucket", "ok"),
                                                               ("availability errors", "page")]


@pytest.mark.parametrize("store", ["prometheus", "victoria"])
def test_in_a_batch_a_part_without_series_stays_no_traffic_not_zero(
        store: str, request: pytest.FixtureRequest) -> None:
    from console.promql_eval import evaluate_many

    url = request.getfixturevalue(store)
    cfg = config(url, with_quantile=False)
    sli = cfg.slos[0].promql
    assert sli is not None
    silent = cfg.slos[0].model_copy(update={"name": "silent", "promql": sli.model_copy(
        update={"good": 'nothing_good_total{job="gw"}', "total": 'nothing_total{job="gw"}'})})
    no_errors = cfg.slos[1].model_copy(update={"name": "no errors", "promql": sli.model_copy(
        update={"good": None, "errors": 'nothing_errors_total{job="gw"}'})})

    async def both() -> tuple[object, ...]:
        client = PrometheusClient.for_source(cfg.sources.prometheus[0], {})
        try:
            return await evaluate_many(client, [cfg.slos[0], silent, no_errors], AT)
        finally:
            await client.aclose()

    ok, quiet, clean = run(both())  # type: ignore[misc]
    assert_figures(ok.status, expected(errors_inc, 0.999))
    assert quiet.status.compliance is None and quiet.status.requests == 0  # no series: no traffic
    assert clean.status.compliance == 1.0 and clean.status.requests == expected(errors_inc, 0.999).requests
