"""connectors/scrape.py: parsing real prometheus_client output and reading /metrics through SourceClient."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from connectors.http import HttpPolicy, SourceClient, SourceError
from connectors.scrape import MetricsReader, parse_exposition

VLLM_SAMPLE_HEAD = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 12.0
# HELP vllm:request_success_total Count of successfully processed requests.
# TYPE vllm:request_success_total counter
vllm:request_success_total{engine="0",finished_reason="stop",model_name="m"} 1510.0
# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_bucket{engine="0",le="0.3",model_name="m"} 0.0
vllm:e2e_request_latency_seconds_bucket{engine="0",le="+Inf",model_name="m"} 6.0
vllm:e2e_request_latency_seconds_count{engine="0",model_name="m"} 6.0
vllm:e2e_request_latency_seconds_sum{engine="0",model_name="m"} 22.8
"""
TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"


def _registry_text(openmetrics: bool = False) -> str:
    registry = CollectorRegistry()
    counter = Counter("litellm_spend_metric", "spend", ["requested_model"], registry=registry)
    counter.labels("gpt").inc(0.25)
    histogram = Histogram("vllm:e2e_request_latency_seconds", "e2e", ["model_name"], buckets=(0.5, 1.0),
                          registry=registry)
    histogram.labels("m").observe(0.7)
    Gauge("job_created", "a gauge whose own name ends in _created", registry=registry).set(3)
    return (generate_openmetrics if openmetrics else generate_latest)(registry).decode()


def test_samples_keep_their_exposed_names_sorted_labels_and_float_values() -> None:
    samples = parse_exposition(VLLM_SAMPLE_HEAD, "vllm-a")
    by_name = {s.name for s in samples}
    assert "vllm:request_success_total" in by_name  # the family drops _total; samples keep it
    assert {"vllm:e2e_request_latency_seconds_bucket", "vllm:e2e_request_latency_seconds_count",
            "vllm:e2e_request_latency_seconds_sum"} <= by_name
    success = next(s for s in samples if s.name == "vllm:request_success_total")
    assert success.labels == (("engine", "0"), ("finished_reason", "stop"), ("model_name", "m"))
    assert success.value == 1510.0 and success.label("finished_reason") == "stop"
    inf = [s for s in samples if s.name.endswith("_bucket") and s.label("le") == "+Inf"]
    assert [s.value for s in inf] == [6.0]


def test_created_timestamps_beside_counters_and_histograms_are_dropped_but_a_plain_gauge_stays() -> None:
    text = _registry_text()
    assert "litellm_spend_metric_created" in text and "vllm:e2e_request_latency_seconds_created" in text
    names = {s.name for s in parse_exposition(text, "gw")}
    assert "litellm_spend_metric_total" in names and "vllm:e2e_request_latency_seconds_bucket" in names
    assert not {"litellm_spend_metric_created", "vllm:e2e_request_latency_seconds_created"} & names
    assert "job_created" in names


def test_openmetrics_content_type_uses_the_openmetrics_parser() -> None:
    text = _registry_text(openmetrics=True)
    samples = parse_exposition(text, "gw", "application/openmetrics-text; version=1.0.0; charset=utf-8")
    spend = [s for s in samples if s.name == "litellm_spend_metric_total"]
    assert [s.value for s in spend] == [0.25]


def test_a_malformed_line_is_a_decode_error_naming_the_source_and_line() -> None:
    text = "# TYPE up gauge\nup 1\nbroken{a=b} 1\n"
    with pytest.raises(SourceError) as caught:
        parse_exposition(text, "vllm-a")
    assert caught.value.kind == "decode"
    assert str(caught.value).startswith("vllm-a: decode: ") and "line 3" in str(caught.value)


def test_a_bad_value_names_its_line() -> None:
    with pytest.raises(SourceError, match="line 2: .*float"):
        parse_exposition("up 1\nup{job=\"x\"} lots\n", "s")


def test_an_html_page_is_a_content_type_error_not_an_empty_scrape() -> None:
    with pytest.raises(SourceError) as caught:
        parse_exposition("<!DOCTYPE html><title>Sign in</title>", "s", "text/html; charset=utf-8")
    assert caught.value.kind == "content_type"


def _client(handler: httpx.MockTransport, secret: str = "") -> SourceClient:
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    return SourceClient("gw", "http://127.0.0.1:9", secret_headers=headers,
                        policy=HttpPolicy(max_attempts=1), transport=handler)


async def test_reader_fetches_through_the_source_client_with_its_headers_and_stamps_the_time() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text=VLLM_SAMPLE_HEAD, headers={"content-type": TEXT_FORMAT})

    at = datetime(2026, 1, 2, 3, 4, 5)
    client = _client(httpx.MockTransport(answer), secret="sk-test")
    reader = MetricsReader(client, "/metrics", clock=lambda: at)
    scrape = await reader.read()
    assert scrape.source == "gw" and scrape.at == at and len(scrape.samples) == 6
    assert seen[0].url.path == "/metrics" and seen[0].headers["authorization"] == "Bearer sk-test"
    await reader.client.aclose()


async def test_a_trailing_slash_redirect_is_followed_once_and_remembered() -> None:
    paths: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        if request.url.path == "/metrics":
            return httpx.Response(307, headers={"location": "http://127.0.0.1:9/metrics/"})
        return httpx.Response(200, text="up 1\n")

    reader = MetricsReader(_client(httpx.MockTransport(answer)))
    await reader.read()
    await reader.read()
    assert paths == ["/metrics", "/metrics/", "/metrics/"]
    await reader.client.aclose()


async def test_a_redirect_elsewhere_is_an_error() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"location": "https://login.example/"})

    reader = MetricsReader(_client(httpx.MockTransport(answer)))
    with pytest.raises(SourceError) as caught:
        await reader.read()
    assert caught.value.status == 302 and "redirect" in caught.value.reason
    await reader.client.aclose()


def test_an_oversized_body_is_refused_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("connectors.scrape.MAX_CHARS", 2 * 1_048_576)
    with pytest.raises(SourceError, match="3 MiB is over the 2 MiB limit"):
        parse_exposition("up 1\n" * (3 * 1_048_576 // 5 + 1), "s")
