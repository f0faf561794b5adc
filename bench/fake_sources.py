"""Six fake outside sources on loopback for the source benchmarks, each HTTP answer sent after a delay.

Two Prometheus APIs (PromQL instant queries answered per query, `/api/v1/alerts`),
two Alertmanagers (`/api/v2/alerts`, `/api/v2/silences`, as recorded from
Alertmanager 0.25), a vLLM `/metrics` (the reference sample,
/work/shared/reference/examples/vllm_metrics_sample.txt) and a LiteLLM `/metrics`
(LiteLLM's metric names, written by prometheus_client). Each source is its own
`tests/faults/fault_server.FaultServer` (its own port, as separate hosts are); a source
named in `hung` accepts, reads the request and never answers.

The servers run in a child process (`serving(...)`), so their threads never compete
for the measured process's GIL:

    python bench/fake_sources.py --delay 0.2 [--hung am-b]   # prints {"name": url}; serves until stdin closes

`sources_config(config, urls)` adds the six sources and three PromQL SLOs to a config.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

if TYPE_CHECKING:  # imported where serving: a console child that only builds the config loads none of it
    from tests.faults.fault_server import Answer, FaultServer, RecordedRequest, Reply

REPO = Path(__file__).resolve().parent.parent
VLLM_SAMPLE = Path("/work/shared/reference/examples/vllm_metrics_sample.txt")
SOURCES: dict[str, str] = {
    "prom-a": "prometheus", "prom-b": "prometheus",
    "am-a": "alertmanager", "am-b": "alertmanager",
    "vllm": "scrape", "litellm": "scrape",
}
"""Source name -> kind, in config order."""
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
LE_VALUES = ("0.1", "0.25", "0.5", "1", "2.5", "+Inf")


# ---------------------------------------------------------------------------
# What each source answers
# ---------------------------------------------------------------------------


def _vector(*series: tuple[dict[str, str], float]) -> dict[str, Any]:
    now = time.time()
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": labels, "value": [now, repr(value)]} for labels, value in series]}}


def _promql_series(expr: str) -> list[tuple[dict[str, str], float]]:
    """One expression's series: the histogram's buckets for the `le` lookup, else one value
    (good events a little under the total, so each SLO has a compliance below 1)."""
    if expr.startswith("count by (le)"):
        return [({"le": le}, 1.0) for le in LE_VALUES]
    good = 'code="200"' in expr or "le=" in expr
    return [({}, 99_950.0 if good else 100_000.0)]


def promql_answer(request: RecordedRequest) -> Reply:
    """An instant query's answer (GET, or POSTed as a form); a batched one
    (console/promql_batch.py: parts labelled `llmdeck_q` and joined with `or`) answers
    every part with its label."""
    from tests.faults.fault_server import Reply

    form = dict(parse_qsl(request.body.decode())) if request.method == "POST" else {}
    expr = {**dict(request.query), **form}.get("query", "")
    try:
        from console.promql_batch import KEY_LABEL, split_query
    except ImportError:  # before batching: one expression per query
        return Reply(200, _vector(*_promql_series(expr)))
    parts = split_query(expr)
    if not parts:
        return Reply(200, _vector(*_promql_series(expr)))
    return Reply(200, _vector(*(({**labels, KEY_LABEL: key}, value)
                                for key, part in parts for labels, value in _promql_series(part))))


def prometheus_alerts(count: int = 12) -> dict[str, Any]:
    alerts = [{"labels": {"alertname": f"VLLMHighTTFT{i}", "model_name": "meta-llama/Llama-3.1-8B-Instruct",
                          "severity": "page" if i % 3 == 0 else "ticket"},
               "annotations": {"summary": "p95 TTFT above 2s"}, "state": "firing" if i % 2 else "pending",
               "activeAt": "2025-01-01T00:00:12.60602144Z", "value": "2.4375e+00"} for i in range(count)]
    return {"status": "success", "data": {"alerts": alerts}}


def alertmanager_alerts(count: int = 12) -> list[dict[str, Any]]:
    """Alerts shaped as prometheus-alertmanager 0.25 sends them (tests/unit/test_alertmanager_payloads.py)."""
    return [{"annotations": {"summary": "always firing for tests"}, "endsAt": "2026-12-04T16:35:58.320Z",
             "fingerprint": f"1919ce7f22443{i:03x}", "receivers": [{"name": "null"}],
             "startsAt": "2026-12-04T16:34:34.320Z",
             "status": {"inhibitedBy": [], "state": "active" if i % 4 else "suppressed",
                        "silencedBy": [] if i % 4 else ["5b6e5d56-e3a4-4de4-a0df-211b891fd351"]},
             "updatedAt": "2026-12-04T16:35:54.325Z", "generatorURL": "http://vm:19090/graph?g0.expr=vector%281%29",
             "labels": {"alertname": f"AlwaysFiring{i}", "severity": "page", "team": "llm"}}
            for i in range(count)]


def alertmanager_silences() -> list[dict[str, Any]]:
    return [{"id": "5b6e5d56-e3a4-4de4-a0df-211b891fd351", "status": {"state": "active"},
             "updatedAt": "2026-12-04T16:34:50.294Z", "comment": "bench", "createdBy": "me",
             "endsAt": "2099-12-04T18:34:49.826Z",
             "matchers": [{"isEqual": True, "isRegex": False, "name": "alertname", "value": "AlwaysFiring0"}],
             "startsAt": "2026-12-04T16:34:50.294Z"}]


def litellm_metrics_text() -> str:
    """A LiteLLM proxy's /metrics (API_SHAPES.md §4 names and labels): 4 models, 8 deployments."""
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

    r = CollectorRegistry()
    deploy = ["litellm_model_name", "model_id", "api_base", "api_provider"]
    requests = Counter("litellm_proxy_total_requests_metric", "", ["requested_model", "route", "status_code"],
                       registry=r)
    failed = Counter("litellm_proxy_failed_requests_metric", "",
                     ["requested_model", "route", "exception_status"], registry=r)
    spend = Counter("litellm_spend_metric", "", ["requested_model", "model", "hashed_api_key"], registry=r)
    tokens_in = Counter("litellm_input_tokens_metric", "", ["requested_model", "model"], registry=r)
    tokens_out = Counter("litellm_output_tokens_metric", "", ["requested_model", "model"], registry=r)
    state = Gauge("litellm_deployment_state", "", deploy, registry=r)
    ok = Counter("litellm_deployment_success_responses", "", [*deploy, "model_group"], registry=r)
    bad = Counter("litellm_deployment_failure_responses", "", [*deploy, "model_group"], registry=r)
    left = Gauge("litellm_remaining_requests_metric", "",
                 ["model_group", "litellm_model_name", "model_id", "hashed_api_key"], registry=r)
    latency = Histogram("litellm_request_total_latency_metric", "", ["requested_model", "model"], registry=r)
    for m, model in enumerate(("gpt-4o", "gpt-4o-mini", "claude-sonnet", "llama-70b")):
        requests.labels(model, "/chat/completions", "200").inc(1000 * (m + 1))
        requests.labels(model, "/chat/completions", "429").inc(7 * m)
        failed.labels(model, "/chat/completions", "429").inc(7 * m)
        spend.labels(model, model, "hash-1").inc(12.5 * (m + 1))
        tokens_in.labels(model, model).inc(210_000 * (m + 1))
        tokens_out.labels(model, model).inc(40_000 * (m + 1))
        latency.labels(model, model).observe(0.7 + m / 10)
        for d in range(2):
            labels = (model, f"id-{m}-{d}", f"http://10.0.0.{m}:{8000 + d}/v1", "openai")
            state.labels(*labels).set(d)
            ok.labels(*labels, model).inc(500 * (m + 1))
            bad.labels(*labels, model).inc(3 * d)
            left.labels(model, model, f"id-{m}-{d}", "hash-1").set(900 - 10 * m)
    return generate_latest(r).decode()


def routes(kind: str, delay: float) -> dict[str, Reply | Answer]:
    """The paths a source of `kind` serves, every answer after `delay` seconds."""
    from tests.faults.fault_server import Answer, Reply

    if kind == "prometheus":
        return {"/api/v1/query": Answer(promql_answer, delay),
                "/api/v1/alerts": Reply(200, prometheus_alerts(), delay=delay)}
    if kind == "alertmanager":
        return {"/api/v2/alerts": Reply(200, alertmanager_alerts(), delay=delay),
                "/api/v2/silences": Reply(200, alertmanager_silences(), delay=delay)}
    return {}


def serve_all(delay: float, hung: tuple[str, ...] = ()) -> dict[str, FaultServer]:
    """One started server per source (`hung` ones never answer)."""
    from tests.faults.fault_server import FaultServer, Hang, Reply

    servers = {}
    for name, kind in SOURCES.items():
        server = FaultServer()
        if name in hung:
            for path in ("/api/v1/query", "/api/v1/alerts", "/api/v2/alerts", "/api/v2/silences", "/metrics"):
                server.route(path, Hang())
        elif kind == "scrape":
            text = VLLM_SAMPLE.read_text() if name == "vllm" else litellm_metrics_text()
            server.route("/metrics", Reply(200, text, content_type=PROMETHEUS_TEXT, delay=delay))
        else:
            for path, behaviour in routes(kind, delay).items():
                server.route(path, behaviour)
        servers[name] = server.start()
    return servers


@contextlib.contextmanager
def serving(delay: float, hung: tuple[str, ...] = ()) -> Iterator[dict[str, str]]:
    """The six sources served by a child process: name -> base URL. Stops it on exit."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--delay", str(delay)]
    for name in hung:
        argv += ["--hung", name]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise SystemExit("bench: the fake sources did not start")
        yield json.loads(line)
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------------
# The config that names them
# ---------------------------------------------------------------------------


def sources_config(config: Any, urls: dict[str, str], refresh_seconds: float = 15,
                   timeout_seconds: float = 5, slos: bool = True, drop: tuple[str, ...] = ()) -> Any:
    """`config` with the six sources and three PromQL SLOs added: two ratio SLOs on prom-a
    (16 queries each: good and total over 8 windows), one latency histogram SLO (method
    bucket: an `le` lookup on the first poll, then 16 queries) on prom-b, whose alerts
    are off (as on VictoriaMetrics without vmalert).

    `slos=False`: no PromQL SLOs and alerts on for both Prometheus sources, so every
    source's poll is one round of requests (one answer's delay). `drop`: sources left out
    (with their SLOs)."""
    from console.config import (
        AlertmanagerSource,
        PrometheusSource,
        PromqlSli,
        ScrapeSource,
        SloSpec,
        SourcesSettings,
    )

    common = {"refresh_seconds": refresh_seconds, "timeout_seconds": timeout_seconds}
    sources = SourcesSettings(
        prometheus=[PrometheusSource(name="prom-a", url=urls["prom-a"], **common),
                    PrometheusSource(name="prom-b", url=urls["prom-b"], alerts=not slos, **common)],
        alertmanager=[AlertmanagerSource(name=n, url=urls[n], **common) for n in ("am-a", "am-b")],
        scrape=[ScrapeSource(name="vllm", url=urls["vllm"], kind="vllm", **common),
                ScrapeSource(name="litellm", url=urls["litellm"], kind="litellm", **common)],
    )
    promql = [
        SloSpec(name="gw availability", kind="availability", objective=0.999,
                promql=PromqlSli(source="prom-a", good='llm_requests_total{code="200"}',
                                 total="llm_requests_total")),
        SloSpec(name="gw rate limits", kind="rate_limit", objective=0.99,
                promql=PromqlSli(source="prom-a", good='llm_requests_total{code="200"}',
                                 total='llm_requests_total{code=~"200|429"}')),
        SloSpec(name="vllm latency", kind="latency", objective=0.95, threshold_ms=500,
                promql=PromqlSli(source="prom-b", histogram="vllm:e2e_request_latency_seconds")),
    ]
    sources = SourcesSettings(**{kind: [s for s in getattr(sources, kind) if s.name not in drop]
                                 for kind in ("prometheus", "alertmanager", "scrape")})
    promql = [s for s in promql if slos and s.promql is not None and s.promql.source not in drop]
    return config.model_copy(update={"sources": sources, "slos": [*config.slos, *promql]})


def loopback_only() -> None:
    """No proxy for the benchmark's loopback traffic (httpx reads the proxy variables)."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        os.environ.pop(var, None)
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--delay", type=float, default=0.2, help="seconds before every answer (default 0.2)")
    ap.add_argument("--hung", action="append", default=[], choices=list(SOURCES),
                    help="a source that accepts and never answers (repeatable)")
    args = ap.parse_args()
    servers = serve_all(args.delay, tuple(args.hung))
    print(json.dumps({name: s.url for name, s in servers.items()}), flush=True)
    try:
        sys.stdin.read()  # until the parent closes our stdin (or dies)
    finally:
        for server in servers.values():
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
