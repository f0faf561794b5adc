"""LiteLLM /metrics -> ServingSnapshot, from text written by a real prometheus_client registry."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from connectors.scrape import Scrape, parse_exposition
from console.serving_derive import derive_snapshot, detect_kind

T0 = datetime(2026, 3, 1, 12, 0, 0)
DEPLOY = ("litellm_model_name", "model_id", "api_base", "api_provider")
GOOD = ("gpt-4o-mini", "id-good", "http://127.0.0.1:1/v1", "openai")
BAD = ("flaky-upstream", "id-bad", "http://127.0.0.1:2/v1", "openai")


class FakeLiteLLM:
    """A registry with LiteLLM's metric names and labels (API_SHAPES.md §4), trimmed to what is read."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("litellm_proxy_total_requests_metric", "", ["requested_model", "route",
                                                                            "status_code"], registry=r)
        self.failed = Counter("litellm_proxy_failed_requests_metric", "", ["requested_model", "route",
                                                                           "exception_status"], registry=r)
        self.spend = Counter("litellm_spend_metric", "", ["requested_model", "model", "hashed_api_key"],
                             registry=r)
        by_model = ["requested_model", "model"]
        self.tokens_in = Counter("litellm_input_tokens_metric", "", by_model, registry=r)
        self.tokens_out = Counter("litellm_output_tokens_metric", "", by_model, registry=r)
        self.fallback_ok = Counter("litellm_deployment_successful_fallbacks", "",
                                   ["requested_model", "fallback_model"], registry=r)
        self.fallback_failed = Counter("litellm_deployment_failed_fallbacks", "",
                                       ["requested_model", "fallback_model"], registry=r)
        self.state = Gauge("litellm_deployment_state", "", list(DEPLOY), registry=r)
        self.ok = Counter("litellm_deployment_success_responses", "", [*DEPLOY, "model_group"], registry=r)
        self.bad = Counter("litellm_deployment_failure_responses", "", [*DEPLOY, "model_group"], registry=r)
        limits = ["model_group", "litellm_model_name", "model_id", "hashed_api_key"]
        self.left_requests = Gauge("litellm_remaining_requests_metric", "", limits, registry=r)
        self.left_tokens = Gauge("litellm_remaining_tokens_metric", "", limits, registry=r)
        self.team_left = Gauge("litellm_remaining_team_budget_metric", "", ["team", "team_alias"], registry=r)
        self.team_max = Gauge("litellm_team_max_budget_metric", "", ["team", "team_alias"], registry=r)
        self.team_hours = Gauge("litellm_team_budget_remaining_hours_metric", "", ["team", "team_alias"],
                                registry=r)
        self.key_left = Gauge("litellm_remaining_api_key_budget_metric", "",
                              ["hashed_api_key", "api_key_alias"], registry=r)
        self.latency = Histogram("litellm_request_total_latency_metric", "", ["requested_model", "model"],
                                 buckets=(0.5, 1.0, 5.0), registry=r)

    def chat(self, model: str, upstream: tuple[str, ...], *, fail: bool = False, fallback: str = "",
             latency: float = 0.7) -> None:
        """What the proxy records for one chat request."""
        served = fallback or model
        if fail:
            self.failed.labels(model, "/chat/completions", "500").inc()
            self.requests.labels(model, "/chat/completions", "500").inc()
            self.bad.labels(*upstream, model).inc()
            return
        if fallback:
            self.fallback_ok.labels(model, fallback).inc()
            self.bad.labels(*upstream, model).inc()
            upstream = GOOD
        self.requests.labels(served, "/chat/completions", "200").inc()
        self.spend.labels(served, upstream[0], "hash-1").inc(0.025)
        self.tokens_in.labels(served, upstream[0]).inc(11)
        self.tokens_out.labels(served, upstream[0]).inc(7)
        self.ok.labels(*upstream, served).inc()
        self.latency.labels(served, upstream[0]).observe(latency)

    def scrape(self, seconds: float) -> Scrape:
        self.requests.labels("", "/metrics", "None").inc()  # the proxy counts its own /metrics route
        text = generate_latest(self.registry).decode()
        return Scrape("gw", T0 + timedelta(seconds=seconds), parse_exposition(text, "gw"))


@pytest.fixture
def proxy() -> FakeLiteLLM:
    p = FakeLiteLLM()
    p.state.labels(*GOOD).set(0)
    p.state.labels(*BAD).set(0)
    p.team_left.labels("t-1", "research").set(40.0)
    p.team_max.labels("t-1", "research").set(100.0)
    p.team_hours.labels("t-1", "research").set(72.5)
    p.team_left.labels("t-2", "None").set(5.0)
    p.key_left.labels("hash-1", "").set(math.inf)
    p.left_requests.labels("gpt", "gpt-4o-mini", "id-good", "hash-1").set(4990)
    p.left_requests.labels("gpt", "gpt-4o-mini", "id-good", "hash-2").set(4000)
    p.left_tokens.labels("gpt", "gpt-4o-mini", "id-good", "hash-1").set(9.223372036854776e18)
    p.chat("gpt", GOOD)
    return p


def test_auto_kind_is_litellm_from_the_metric_names(proxy: FakeLiteLLM) -> None:
    assert detect_kind(proxy.scrape(0).samples) == "litellm"


def test_first_read_shows_totals_states_and_budgets_but_no_rates(proxy: FakeLiteLLM) -> None:
    snap = derive_snapshot("gw", None, proxy.scrape(0))
    assert snap.kind == "litellm" and snap.window_s is None
    assert [m.model for m in snap.models] == ["gpt"]  # the empty requested_model of /metrics is left out
    (gpt,) = snap.models
    assert gpt.spend_total == pytest.approx(0.025)
    assert gpt.requests_per_s is None and gpt.spend_per_hour is None and gpt.fallbacks_ok_per_s is None
    assert {d.model_id: d.state_text for d in snap.deployments} == {"id-good": "healthy", "id-bad": "healthy"}


def test_second_read_gives_request_failure_spend_token_and_fallback_rates(proxy: FakeLiteLLM) -> None:
    first = proxy.scrape(0)
    for _ in range(4):
        proxy.chat("gpt", GOOD, latency=0.2)
    for _ in range(2):
        proxy.chat("flaky", BAD, fallback="gpt", latency=0.2)
    proxy.chat("broken", BAD, fail=True)
    proxy.state.labels(*BAD).set(2)
    snap = derive_snapshot("gw", first, proxy.scrape(60))
    rows = {m.model: m for m in snap.models}
    assert set(rows) == {"gpt", "flaky", "broken"}
    gpt, flaky, broken = rows["gpt"], rows["flaky"], rows["broken"]
    assert gpt.requests_per_s == pytest.approx(6 / 60) and gpt.errors_per_s == 0.0
    assert broken.requests_per_s == pytest.approx(1 / 60) and broken.error_ratio == pytest.approx(1.0)
    assert gpt.spend_per_hour == pytest.approx(6 * 0.025 * 60) and gpt.spend_total == pytest.approx(7 * 0.025)
    assert gpt.input_tokens_per_s == pytest.approx(66 / 60)
    assert gpt.output_tokens_per_s == pytest.approx(42 / 60)
    assert flaky.fallbacks_ok_per_s == pytest.approx(2 / 60) and flaky.fallbacks_failed_per_s == 0.0
    assert gpt.e2e_p95_s is not None and gpt.e2e_p95_s <= 0.5  # the window's fast requests only
    assert broken.spend_total == 0.0


def test_deployments_carry_state_traffic_and_the_providers_remaining_limits(proxy: FakeLiteLLM) -> None:
    first = proxy.scrape(0)
    proxy.chat("broken", BAD, fail=True)
    proxy.state.labels(*BAD).set(2)
    snap = derive_snapshot("gw", first, proxy.scrape(10))
    deployments = {d.model_id: d for d in snap.deployments}
    good, bad = deployments["id-good"], deployments["id-bad"]
    assert (bad.state, bad.state_text) == (2, "complete outage")
    assert (bad.model, bad.provider) == ("flaky-upstream", "openai")
    assert bad.failures_per_s == pytest.approx(0.1) and bad.successes_per_s == 0.0
    assert good.state == 0 and good.model_group == "gpt" and good.api_base == "http://127.0.0.1:1/v1"
    assert good.remaining_requests == 4000  # the lowest over keys
    assert good.remaining_tokens == math.inf  # LiteLLM's 2**63-1 'no limit'


def test_budgets_by_alias_or_id_with_max_and_hours_to_reset(proxy: FakeLiteLLM) -> None:
    snap = derive_snapshot("gw", None, proxy.scrape(0))
    budgets = {(b.scope, b.name): b for b in snap.budgets}
    research = budgets[("team", "research")]
    assert (research.remaining, research.max_budget, research.hours_to_reset) == (40.0, 100.0, 72.5)
    assert research.used_ratio == pytest.approx(0.6)
    assert budgets[("team", "t-2")].remaining == 5.0 and budgets[("team", "t-2")].max_budget is None
    assert budgets[("key", "hash-1")].remaining == math.inf


def test_a_vllm_source_that_serves_litellm_metrics_says_so(proxy: FakeLiteLLM) -> None:
    snap = derive_snapshot("gw", None, proxy.scrape(0), kind="vllm")
    assert snap.kind == "vllm" and snap.models == ()
    assert any("no vLLM" in note for note in snap.notes)


def test_an_endpoint_with_neither_kind_of_metric_is_unknown_and_explains() -> None:
    scrape = Scrape("gw", T0, parse_exposition("process_cpu_seconds_total 1.5\nup 1\n", "gw"))
    snap = derive_snapshot("gw", None, scrape)
    assert snap.kind == "unknown" and snap.models == () and snap.series == 2
    assert any('callbacks: ["prometheus"]' in note for note in snap.notes)
