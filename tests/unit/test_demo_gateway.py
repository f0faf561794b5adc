"""The demo gateway's admin API on the demo endpoints, and what its changes do to the traffic.

Requests go over HTTP to the running demo LiteLLM server (console/demo/endpoints.py) with
the master key the demo put in its environment; the traffic is then drawn from the
endpoints' own plan (the one its telemetry and billing read) before and after the change.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from console.demo import generate
from console.demo.config import DEMO_GATEWAY, demo_config
from console.demo.endpoints import DemoEndpoints
from console.demo.gateway_world import ENV_MASTER_KEY, deployment_id, key_alias
from console.demo.incident import to_ns
from console.demo.traffic import TENANTS, Incident

START = datetime(2026, 3, 4, 15, 0, 0)
INCIDENT_START = START + timedelta(minutes=10)
INCIDENT_END = START + timedelta(hours=3)
HOUR_CHUNKS = 360


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def gateway(clock: Clock) -> Iterator[tuple[DemoEndpoints, httpx.Client]]:
    incident = Incident("anthropic", to_ns(INCIDENT_START), to_ns(INCIDENT_END), 0.8, 3.0, 0.5)
    endpoints = DemoEndpoints(generate.TrafficPlan(seed=7, rate=2.0, incident=incident), START, clock)
    urls = endpoints.start()
    key = os.environ[ENV_MASTER_KEY]
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=urls.litellm, timeout=10, headers=auth) as client:
        yield endpoints, client
    endpoints.close()


def attrs(span: dict[str, Any]) -> dict[str, Any]:
    return {kv["key"]: next(iter(kv["value"].values())) for kv in span["attributes"]}


def spans_after(endpoints: DemoEndpoints, t: datetime, chunks: int = HOUR_CHUNKS, *,
                levers: bool = True) -> list[dict[str, Any]]:
    """The traffic of `chunks` chunks from `t`, as every reader of the endpoints' plan draws it
    (or, `levers=False`, as the simulator's world would be had nothing been changed)."""
    plan = endpoints.plan if levers else dataclasses.replace(endpoints.plan, levers=None)
    model = plan.model()
    first = generate.chunk_of(to_ns(t))
    return [attrs(span) | {"_s": (int(span["endTimeUnixNano"]) - int(span["startTimeUnixNano"])) / 1e9}
            for index in range(first, first + chunks)
            for _, span in generate.chunk_spans(plan, model, index)]


def anthropic_errors(spans: list[dict[str, Any]]) -> float:
    bad = sum(1 for a in spans if a.get("gen_ai.provider.name", a.get("gen_ai.system")) == "anthropic"
              and "error.type" in a)
    return bad / len(spans)


def test_the_admin_api_is_seeded_with_the_simulators_world(
        gateway: tuple[DemoEndpoints, httpx.Client]) -> None:
    _, client = gateway
    team = client.get("/team/info", params={"team_id": "acme-corp"})
    assert team.status_code == 200, team.text
    for tenant, _ in TENANTS:
        listed = client.get("/key/list",
                            params={"key_alias": key_alias(tenant), "return_full_object": "true"})
        assert listed.status_code == 200 and tenant in listed.text
    models = client.get("/model/info").json()["data"]
    by_id = {m["model_info"]["id"]: m for m in models}
    assert by_id[deployment_id("claude-sonnet-4-5")]["litellm_params"]["model"] == \
        "anthropic/claude-sonnet-4-5-20250929"
    assert client.get("/fallback/claude-sonnet-4-5").status_code == 404  # the app falls back, not the gateway


def test_the_master_key_is_per_run_and_required(gateway: tuple[DemoEndpoints, httpx.Client],
                                                tmp_path: Path) -> None:
    endpoints, client = gateway
    assert endpoints.urls is not None
    key = os.environ[ENV_MASTER_KEY]
    assert key.startswith("sk-demo-") and len(key) > 30
    anonymous = httpx.get(endpoints.urls.litellm + "/team/info", params={"team_id": "acme-corp"})
    assert anonymous.status_code == 401 and key not in anonymous.text
    wrong = httpx.post(endpoints.urls.litellm + "/team/block", json={"team_id": "acme-corp"},
                       headers={"Authorization": "Bearer sk-wrong"})
    assert wrong.status_code == 401
    assert endpoints.world.levers.history() == []  # refused: nothing moved
    config = demo_config(tmp_path / "demo.duckdb", endpoints.urls)
    assert config.actions.runbook_dir == str(tmp_path / "runbooks")  # the demo's own, beside its cache
    assert (tmp_path / "runbooks" / "demo-routing.toml").is_file()
    (gw,) = config.actions.litellm
    assert gw.name == DEMO_GATEWAY and gw.url == endpoints.urls.litellm
    assert gw.admin_key_ref == f"env:{ENV_MASTER_KEY}" and key not in repr(config)
    assert config.actions.environment == "demo" and not config.actions.prod
    assert config.actions.default_role == "admin"


def test_fallbacks_move_the_failing_groups_off_anthropic_and_deleting_them_brings_it_back(
        gateway: tuple[DemoEndpoints, httpx.Client], clock: Clock) -> None:
    endpoints, client = gateway
    clock.now = INCIDENT_START + timedelta(minutes=5)
    before = spans_after(endpoints, clock.now)
    assert anthropic_errors(before) > 0.15
    for model, to in (("claude-sonnet-4-5", "gpt-4o"), ("claude-haiku-4-5", "gpt-4o-mini")):
        reply = client.post("/fallback", json={"model": model, "fallback_models": [to]},
                            headers={"LiteLLM-Changed-By": "oncall"})
        assert reply.status_code == 200, reply.text
    after = spans_after(endpoints, clock.now)
    assert anthropic_errors(after) == 0
    assert len(after) > len(before) * 0.6  # the requests are served elsewhere, not dropped
    clock.now += timedelta(hours=1)
    for model in ("claude-sonnet-4-5", "claude-haiku-4-5"):
        assert client.delete(f"/fallback/{model}").status_code == 200
    assert anthropic_errors(spans_after(endpoints, clock.now)) > 0.15


def test_a_team_limit_cuts_the_tenants_rate_and_clearing_it_restores_it(
        gateway: tuple[DemoEndpoints, httpx.Client], clock: Clock) -> None:
    endpoints, client = gateway
    base = Counter(a["llmdeck.tenant"] for a in spans_after(endpoints, clock.now))
    reply = client.post("/team/update", json={"team_id": "acme-corp", "rpm_limit": 5})
    assert reply.status_code == 200, reply.text
    cut = Counter(a["llmdeck.tenant"] for a in spans_after(endpoints, clock.now))
    # acme-corp's usual rate here is ~2.0/s x 1.5 x 22% ≈ 40 requests a minute: 5 lets ~1/8 through
    assert cut["acme-corp"] < base["acme-corp"] * 0.25
    assert cut["globex"] > base["globex"] * 0.8
    clock.now += timedelta(minutes=30)
    assert client.post("/team/update", json={"team_id": "acme-corp", "rpm_limit": None}).status_code == 200
    assert endpoints.world.levers.current().idle
    # restored: from here on, exactly the traffic of a world nobody changed
    assert spans_after(endpoints, clock.now) == spans_after(endpoints, clock.now, levers=False)
    # a blocked team sends nothing at all
    assert client.post("/team/block", json={"team_id": "globex"}).status_code == 200
    assert not [a for a in spans_after(endpoints, clock.now) if a["llmdeck.tenant"] == "globex"]


def test_a_deployment_update_sets_the_latency_and_the_rollback_restores_it(
        gateway: tuple[DemoEndpoints, httpx.Client], clock: Clock) -> None:
    endpoints, client = gateway
    path = f"/model/{deployment_id('claude-sonnet-4-5')}/update"

    def sonnet(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [a for a in spans
                if a["gen_ai.request.model"] == "claude-sonnet-4-5" and "error.type" not in a]

    own = statistics.median(a["_s"] for a in sonnet(spans_after(endpoints, clock.now)))
    reply = client.patch(path, json={"litellm_params": {"model": "anthropic/claude-opus-4-1-20250805"}})
    assert reply.status_code == 200, reply.text
    slow = sonnet(spans_after(endpoints, clock.now))
    assert {a["gen_ai.response.model"] for a in slow} == {"claude-opus-4-1-20250805"}
    assert statistics.median(a["_s"] for a in slow) > own * 1.8
    clock.now += timedelta(minutes=5)
    back = client.post("/model/update", json={
        "model_info": {"id": deployment_id("claude-sonnet-4-5")},
        "litellm_params": {"model": "anthropic/claude-sonnet-4-5-20250929"}})
    assert back.status_code == 200, back.text
    assert endpoints.world.levers.current().idle
    assert spans_after(endpoints, clock.now) == spans_after(endpoints, clock.now, levers=False)


def test_a_blocked_key_or_a_token_limit_cuts_its_tenant_too(
        gateway: tuple[DemoEndpoints, httpx.Client], clock: Clock) -> None:
    endpoints, client = gateway
    listed = client.get("/key/list", params={"key_alias": key_alias("globex"), "return_full_object": "true"})
    (row,) = [k for k in listed.json()["keys"] if isinstance(k, dict)]
    assert client.post("/key/block", json={"key": row["token"]}).status_code == 200
    assert not [a for a in spans_after(endpoints, clock.now) if a["llmdeck.tenant"] == "globex"]
    clock.now += timedelta(minutes=10)
    assert client.post("/key/unblock", json={"key": row["token"]}).status_code == 200
    assert spans_after(endpoints, clock.now) == spans_after(endpoints, clock.now, levers=False)
    # tokens a minute: initech's usual ~1,550 tokens a request x ~20 requests a minute here
    usual = Counter(a["llmdeck.tenant"] for a in spans_after(endpoints, clock.now))["initech"]
    assert client.post("/team/update", json={"team_id": "initech", "tpm_limit": 3_000}).status_code == 200
    cut = Counter(a["llmdeck.tenant"] for a in spans_after(endpoints, clock.now))["initech"]
    assert 0 < cut < usual * 0.3
