"""The demo's loopback servers: vLLM and LiteLLM `/metrics`, an Alertmanager API, all from the traffic."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from console.cache.store import Cache
from console.config import Config
from console.demo import generate
from console.demo.clock import SimClock
from console.demo.config import demo_config
from console.demo.endpoints import DemoEndpoints, EndpointUrls
from console.demo.simulator import Simulator, to_ns
from console.demo.traffic import Incident
from console.writers import ReceiverHost

START = datetime(2026, 3, 4, 15, 0, 0)  # the afternoon peak: plenty of calls per minute
INCIDENT_START = START + timedelta(minutes=10)
INCIDENT_END = START + timedelta(minutes=40)
WALL = datetime(2026, 12, 4, 12, 0, 0)


class Clocks:
    """The simulated clock the traffic follows and the wall clock the Alertmanager API uses."""

    def __init__(self) -> None:
        self.sim = START
        self.wall = WALL

    def at(self, t: datetime) -> None:
        self.wall += t - self.sim if t > self.sim else timedelta(0)
        self.sim = t


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


@pytest.fixture
def served(clocks: Clocks) -> Iterator[tuple[DemoEndpoints, httpx.Client]]:
    incident = Incident("anthropic", to_ns(INCIDENT_START), to_ns(INCIDENT_END), 0.8, 3.0, 0.5)
    plan = generate.TrafficPlan(seed=7, rate=0.2, incident=incident)
    endpoints = DemoEndpoints(plan, START, lambda: clocks.sim, wall=lambda: clocks.wall)
    endpoints.start()
    with httpx.Client(timeout=10) as client:
        yield endpoints, client
    endpoints.close()


def urls(endpoints: DemoEndpoints) -> EndpointUrls:
    assert endpoints.urls is not None
    return endpoints.urls


def families(client: httpx.Client, url: str) -> dict[str, Any]:
    response = client.get(url + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {f.name: f for f in text_string_to_metric_families(response.text)}


def value(fams: dict[str, Any], family: str, sample: str, **labels: str) -> float:
    """The sum of `sample` in `family` over the series whose labels include `labels`."""
    return sum(s.value for s in fams[family].samples
               if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()))


def alerts(client: httpx.Client, endpoints: DemoEndpoints, **params: str) -> list[dict[str, Any]]:
    response = client.get(urls(endpoints).alertmanager + "/api/v2/alerts", params=params)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    return response.json()


def silence_body(clocks: Clocks, **overrides: Any) -> dict[str, Any]:
    body = {"matchers": [{"name": "alertname", "value": "AnthropicErrorBudgetBurn", "isRegex": False,
                          "isEqual": True}],
            "startsAt": f"{clocks.wall:%Y-%m-%dT%H:%M:%S}Z",
            "endsAt": f"{clocks.wall + timedelta(hours=2):%Y-%m-%dT%H:%M:%S}Z",
            "createdBy": "oncall", "comment": "known anthropic incident"}
    return {**body, **overrides}


# ---------------------------------------------------------------------------
# servers
# ---------------------------------------------------------------------------


def test_the_servers_listen_on_loopback_ports_they_pick_and_stop_at_close(clocks: Clocks) -> None:
    endpoints = DemoEndpoints(generate.TrafficPlan(seed=7, rate=0.2), START, lambda: clocks.sim)
    found = endpoints.start()
    parts = [urlsplit(u) for u in (found.vllm, found.litellm, found.alertmanager)]
    assert {p.hostname for p in parts} == {"127.0.0.1"} and {p.scheme for p in parts} == {"http"}
    assert len({p.port for p in parts}) == 3 and all(p.port for p in parts)
    with httpx.Client() as client:
        assert client.get(found.alertmanager + "/-/ready").text == "OK"
        assert client.get(found.vllm + "/health").status_code == 200
        assert client.get(found.litellm + "/health/liveliness").status_code == 200
        assert client.get(found.vllm + "/api/v2/alerts").status_code == 404
    endpoints.close()
    for p in parts:
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", p.port or 0), timeout=2):
            pass


def test_vllm_metrics_parse_with_the_current_names_and_labels(
    served: tuple[DemoEndpoints, httpx.Client], clocks: Clocks,
) -> None:
    endpoints, client = served
    clocks.at(START + timedelta(minutes=5))
    fams = families(client, urls(endpoints).vllm)
    kinds = {name: f.type for name, f in fams.items()}
    assert kinds == {
        "vllm:num_requests_running": "gauge", "vllm:num_requests_waiting": "gauge",
        "vllm:kv_cache_usage_perc": "gauge", "vllm:prompt_tokens": "counter",
        "vllm:generation_tokens": "counter", "vllm:request_success": "counter",
        "vllm:time_to_first_token_seconds": "histogram", "vllm:e2e_request_latency_seconds": "histogram",
        "vllm:request_queue_time_seconds": "histogram",
    }
    models = {s.labels["model_name"] for s in fams["vllm:num_requests_running"].samples}
    assert {"gpt-4o-mini", "claude-sonnet-4-5", "claude-haiku-4-5"} <= models
    for fam in fams.values():
        for s in fam.samples:
            assert s.labels["engine"] == "0" and s.labels["model_name"] in models
    reasons = {s.labels["finished_reason"] for s in fams["vllm:request_success"].samples}
    assert reasons == {"stop", "abort", "error"}
    assert all(s.name == "vllm:request_success_total" for s in fams["vllm:request_success"].samples)
    # histograms: cumulative buckets ending in +Inf == _count
    e2e = fams["vllm:e2e_request_latency_seconds"]
    for model in models:
        buckets = [s.value for s in e2e.samples
                   if s.name.endswith("_bucket") and s.labels["model_name"] == model]
        count = value(fams, "vllm:e2e_request_latency_seconds", "vllm:e2e_request_latency_seconds_count",
                      model_name=model)
        assert buckets == sorted(buckets) and buckets[-1] == count > 0
    assert 0 <= min(s.value for s in fams["vllm:kv_cache_usage_perc"].samples)
    assert max(s.value for s in fams["vllm:kv_cache_usage_perc"].samples) <= 1


def test_litellm_metrics_parse_with_the_litellm_names(
    served: tuple[DemoEndpoints, httpx.Client], clocks: Clocks,
) -> None:
    endpoints, client = served
    clocks.at(START + timedelta(minutes=5))
    fams = families(client, urls(endpoints).litellm)
    for name in ("litellm_proxy_total_requests_metric", "litellm_proxy_failed_requests_metric",
                 "litellm_spend_metric", "litellm_input_tokens_metric", "litellm_output_tokens_metric",
                 "litellm_deployment_success_responses", "litellm_deployment_failure_responses",
                 "litellm_deployment_total_requests", "litellm_deployment_successful_fallbacks",
                 "litellm_deployment_failed_fallbacks"):
        assert fams[name].type == "counter", name
        assert all(s.name == name + "_total" for s in fams[name].samples), name
    for name in ("litellm_deployment_state", "litellm_remaining_requests_metric",
                 "litellm_remaining_tokens_metric", "litellm_remaining_team_budget_metric",
                 "litellm_team_max_budget_metric", "litellm_remaining_api_key_budget_metric"):
        assert fams[name].type == "gauge", name
    for name in ("litellm_request_total_latency_metric", "litellm_llm_api_latency_metric",
                 "litellm_llm_api_time_to_first_token_metric"):
        assert fams[name].type == "histogram", name
    total = fams["litellm_proxy_total_requests_metric"].samples
    assert {"requested_model", "status_code", "team", "team_alias", "hashed_api_key",
            "api_provider"} <= set(total[0].labels)
    assert sum(s.value for s in total) > 100  # an hour of warm-up traffic and five minutes more
    assert value(fams, "litellm_spend_metric", "litellm_spend_metric_total", api_provider="openai") > 0
    states = {s.labels["litellm_model_name"]: s.value for s in fams["litellm_deployment_state"].samples}
    assert "anthropic/claude-sonnet-4-5" in states and set(states.values()) == {0.0}
    teams = {s.labels["team_alias"] for s in fams["litellm_remaining_team_budget_metric"].samples}
    assert "acme-corp" in teams


# ---------------------------------------------------------------------------
# the incident
# ---------------------------------------------------------------------------


def test_the_incident_shows_in_the_scraped_figures(
    served: tuple[DemoEndpoints, httpx.Client], clocks: Clocks,
) -> None:
    endpoints, client = served

    def read(t: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
        clocks.at(t)
        return families(client, urls(endpoints).vllm), families(client, urls(endpoints).litellm)

    def waiting(fams: dict[str, Any]) -> float:
        return sum(s.value for s in fams["vllm:num_requests_waiting"].samples
                   if s.labels["model_name"].startswith("claude"))

    def failed(fams: dict[str, Any]) -> float:
        return value(fams, "litellm_deployment_failure_responses",
                     "litellm_deployment_failure_responses_total", api_provider="anthropic")

    v_early, _ = read(START)
    v0, l0 = read(INCIDENT_START - timedelta(minutes=1))
    before_waiting = sum(waiting(read(INCIDENT_START - timedelta(minutes=m))[0]) for m in range(1, 9))
    v1, l1 = read(INCIDENT_START + timedelta(minutes=10))
    during_waiting = sum(waiting(read(INCIDENT_START + timedelta(minutes=m, seconds=30))[0])
                         for m in range(10, 18))
    assert during_waiting > before_waiting + 2
    # errors: the anthropic deployments' failures and the vLLM error reasons jump
    assert failed(l1) - failed(l0) > 50
    errors = [value(f, "vllm:request_success", "vllm:request_success_total", model_name="claude-haiku-4-5",
                    finished_reason="error") for f in (v0, v1)]
    assert errors[1] - errors[0] > 20
    # latency: the anthropic calls of the last ten minutes are ~3x slower
    def mean_e2e(fams_a: dict[str, Any], fams_b: dict[str, Any]) -> float:
        stem = "vllm:e2e_request_latency_seconds"
        total = value(fams_b, stem, stem + "_sum", model_name="claude-sonnet-4-5") - value(
            fams_a, stem, stem + "_sum", model_name="claude-sonnet-4-5")
        count = value(fams_b, stem, stem + "_count", model_name="claude-sonnet-4-5") - value(
            fams_a, stem, stem + "_count", model_name="claude-sonnet-4-5")
        return total / count

    assert mean_e2e(v1, read(INCIDENT_START + timedelta(minutes=20))[0]) > 2 * mean_e2e(v_early, v0)
    # the gateway: anthropic deployments in outage, fallbacks counted, the others healthy
    _, l2 = read(INCIDENT_START + timedelta(minutes=21))
    states = {s.labels["litellm_model_name"]: s.value for s in l2["litellm_deployment_state"].samples}
    assert states["anthropic/claude-sonnet-4-5"] == 2 and states["anthropic/claude-haiku-4-5"] == 2
    assert {v for k, v in states.items() if not k.startswith("anthropic/")} == {0.0}
    fallbacks = [value(f, "litellm_deployment_successful_fallbacks",
                       "litellm_deployment_successful_fallbacks_total", requested_model="claude-haiku-4-5")
                 for f in (l0, l2)]
    assert fallbacks[1] - fallbacks[0] > 10
    # and after the incident, the deployments recover
    _, l3 = read(INCIDENT_END + timedelta(minutes=3))
    assert {s.value for s in l3["litellm_deployment_state"].samples} == {0.0}


def test_the_incident_fires_a_page_alert_that_resolves(
    served: tuple[DemoEndpoints, httpx.Client], clocks: Clocks,
) -> None:
    endpoints, client = served
    clocks.at(INCIDENT_START - timedelta(minutes=1))
    assert alerts(client, endpoints) == []
    clocks.at(INCIDENT_START + timedelta(minutes=5))
    firing = {a["labels"]["alertname"]: a for a in alerts(client, endpoints)}
    page = firing["AnthropicErrorBudgetBurn"]
    assert page["labels"] == {"alertname": "AnthropicErrorBudgetBurn", "severity": "page",
                              "provider": "anthropic", "service": "llm-gateway",
                              "slo": "anthropic availability"}
    assert page["status"] == {"state": "active", "silencedBy": [], "inhibitedBy": []}
    assert "error budget" in page["annotations"]["summary"]
    assert len(page["fingerprint"]) == 16 and page["receivers"] == [{"name": "oncall-pager"}]
    assert page["startsAt"] == f"{clocks.wall:%Y-%m-%dT%H:%M:%S}.000Z"
    assert page["endsAt"] > page["startsAt"]
    # the ticket-level latency alert is inhibited by the page on the same provider
    ticket = firing["AnthropicLatencyHigh"]
    assert ticket["status"] == {"state": "suppressed", "silencedBy": [],
                                "inhibitedBy": [page["fingerprint"]]}
    assert [a["labels"]["alertname"] for a in alerts(client, endpoints, inhibited="false")] == [
        "AnthropicErrorBudgetBurn"]
    assert [a["labels"]["alertname"] for a in alerts(
        client, endpoints, filter='severity=~"page|ticket"')] == [
        "AnthropicErrorBudgetBurn", "AnthropicLatencyHigh"]
    started = page["startsAt"]
    clocks.at(INCIDENT_START + timedelta(minutes=15))
    again = {a["labels"]["alertname"]: a for a in alerts(client, endpoints)}
    assert again["AnthropicErrorBudgetBurn"]["startsAt"] == started  # still the same firing
    clocks.at(INCIDENT_END + timedelta(minutes=6))
    assert alerts(client, endpoints) == []  # resolved: gone from the list, as in Alertmanager


def test_a_silence_suppresses_matching_alerts_until_deleted(
    served: tuple[DemoEndpoints, httpx.Client], clocks: Clocks,
) -> None:
    endpoints, client = served
    base = urls(endpoints).alertmanager
    clocks.at(INCIDENT_START + timedelta(minutes=5))
    created = client.post(base + "/api/v2/silences", json=silence_body(clocks))
    assert created.status_code == 200
    silence_id = created.json()["silenceID"]
    page = {a["labels"]["alertname"]: a for a in alerts(client, endpoints)}["AnthropicErrorBudgetBurn"]
    assert page["status"] == {"state": "suppressed", "silencedBy": [silence_id], "inhibitedBy": []}
    assert "AnthropicErrorBudgetBurn" not in [
        a["labels"]["alertname"] for a in alerts(client, endpoints, silenced="false")]
    (listed,) = client.get(base + "/api/v2/silences").json()
    assert listed["id"] == silence_id and listed["status"] == {"state": "active"}
    assert listed["matchers"] == silence_body(clocks)["matchers"]
    assert (listed["createdBy"], listed["comment"]) == ("oncall", "known anthropic incident")
    assert client.get(base + f"/api/v2/silence/{silence_id}").json()["id"] == silence_id

    deleted = client.delete(base + f"/api/v2/silence/{silence_id}")
    assert deleted.status_code == 200
    assert client.get(base + f"/api/v2/silence/{silence_id}").json()["status"] == {"state": "expired"}
    assert client.delete(base + f"/api/v2/silence/{silence_id}").status_code == 200  # idempotent
    page = {a["labels"]["alertname"]: a for a in alerts(client, endpoints)}["AnthropicErrorBudgetBurn"]
    assert page["status"]["state"] == "active" and page["status"]["silencedBy"] == []

    # a regex matcher silences every anthropic alert
    regex = silence_body(clocks, matchers=[{"name": "provider", "value": "anth.*", "isRegex": True,
                                            "isEqual": True}])
    regex_id = client.post(base + "/api/v2/silences", json=regex).json()["silenceID"]
    states = {a["labels"]["alertname"]: a["status"]["silencedBy"] for a in alerts(client, endpoints)}
    assert states == {"AnthropicErrorBudgetBurn": [regex_id], "AnthropicLatencyHigh": [regex_id]}


def test_bad_silences_are_refused_as_alertmanager_refuses_them(
    served: tuple[DemoEndpoints, httpx.Client], clocks: Clocks,
) -> None:
    endpoints, client = served
    base = urls(endpoints).alertmanager
    for body in (silence_body(clocks, matchers=[]),
                 silence_body(clocks, endsAt=f"{clocks.wall - timedelta(hours=1):%Y-%m-%dT%H:%M:%S}Z"),
                 silence_body(clocks, matchers=[{"name": "x", "value": "(", "isRegex": True}]),
                 {"matchers": silence_body(clocks)["matchers"]}):
        response = client.post(base + "/api/v2/silences", json=body)
        assert response.status_code == 400, body
        assert isinstance(response.json(), str)
    assert client.post(base + "/api/v2/silences", content=b"{not json").status_code == 400
    assert client.get(base + "/api/v2/silence/nope").status_code == 404
    assert client.delete(base + "/api/v2/silence/nope").status_code == 404
    assert client.get(base + "/api/v2/alerts", params={"active": "maybe"}).status_code == 400
    assert client.get(base + "/api/v2/silences").json() == []


# ---------------------------------------------------------------------------
# the simulator's traffic, the demo config
# ---------------------------------------------------------------------------


def test_the_figures_count_the_spans_the_simulator_ingests(tmp_path: Any) -> None:
    config = demo_config(tmp_path / "c.duckdb")
    with Cache.open(tmp_path / "c.duckdb") as cache:
        clock = SimClock(START, 10.0, wall=lambda: 0.0)
        sim = Simulator(cache, config, tmp_path / "spool", clock=clock, backfill=timedelta(hours=1),
                        incident_delay=timedelta(minutes=3))
        receiver = ReceiverHost(cache, config, sim.writing, host="127.0.0.1", port=0)
        receiver.start()
        sim.send_live_to(receiver.url)  # the live minutes go over OTLP/HTTP, as in the demo
        try:
            sim.backfill()  # the hour the servers count as warm-up
            at = START + timedelta(minutes=8)
            sim.step(at)
            endpoints = DemoEndpoints.for_simulator(sim)
            endpoints.telemetry.catch_up(at)
            counted: dict[tuple[str, int], int] = {}
            for (provider, _, _, status, _), n in endpoints.telemetry.calls.items():
                counted[(provider, status)] = counted.get((provider, status), 0) + n
            # a server counts a call once it has ended
            rows = cache.cursor().execute(
                "SELECT provider, coalesce(http_status, 200), count(*) FROM spans"
                " WHERE epoch_us(start_time) + duration_ms * 1000 <= epoch_us(?::TIMESTAMP)"
                " GROUP BY ALL", [at]).fetchall()
            assert counted == {(p, s): n for p, s, n in rows}
            assert counted[("anthropic", 429)] > 10  # the incident is in both
        finally:
            receiver.close()
            sim.close()


def test_the_demo_config_lists_the_servers_as_sources(tmp_path: Any) -> None:
    found = EndpointUrls("http://127.0.0.1:40001", "http://127.0.0.1:40002", "http://127.0.0.1:40003")
    config = demo_config(tmp_path / "demo.duckdb", found)
    scrape = {s.name: s for s in config.sources.scrape}
    assert set(scrape) == {"demo-vllm", "demo-litellm"}
    assert (scrape["demo-vllm"].kind, str(scrape["demo-vllm"].url).rstrip("/")) == ("vllm", found.vllm)
    assert (scrape["demo-litellm"].kind, str(scrape["demo-litellm"].url).rstrip("/")) == (
        "litellm", found.litellm)
    (am,) = config.sources.alertmanager
    assert (am.name, str(am.url).rstrip("/")) == ("demo-alertmanager", found.alertmanager)
    assert all(s.refresh_seconds >= 1 and s.metrics_path == "/metrics" for s in config.sources.scrape)
    assert Config.model_validate(config.model_dump()) == config
    assert demo_config(tmp_path / "demo.duckdb").sources.scrape == []  # without servers: no sources
