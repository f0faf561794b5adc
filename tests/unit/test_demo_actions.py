"""The demo closes the loop: runbook actions through the real desk change the simulated world.

The demo's endpoints run on loopback with the demo's config (its `[actions]`: the demo
gateway, environment "demo", everyone admin, the demo's switch-provider override). The
actions go through `console.runbooks.ActionDesk` (plan, typed confirmation, apply,
verify, audit) with the production LiteLLM adapters over HTTP. What the simulator would
generate next is then drawn from the endpoints' plan, exactly as the live steps, the
`/metrics` and the Alertmanager API draw it.
"""

from __future__ import annotations

import asyncio
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

from console.action_types import Confirmation
from console.cache.store import Cache
from console.config import Config
from console.demo import generate
from console.demo.clock import SimClock
from console.demo.config import DEMO_GATEWAY, demo_config
from console.demo.endpoints import DemoEndpoints
from console.demo.gateway_world import ENV_MASTER_KEY
from console.demo.incident import to_ns
from console.demo.simulator import Simulator
from console.demo.traffic import Incident
from console.paths import state_dir
from console.runbooks import ActionDesk
from console.status_report import gather
from console.writers import ReceiverHost

START = datetime(2026, 3, 4, 15, 0, 0)  # the afternoon peak
INCIDENT_START = START + timedelta(minutes=10)
INCIDENT_END = START + timedelta(hours=3)
CHUNKS = 180  # half an hour of simulated traffic


class Clock:
    def __init__(self) -> None:
        self.now = INCIDENT_START + timedelta(minutes=5)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def demo(tmp_path: Path, clock: Clock) -> Iterator[tuple[DemoEndpoints, Config]]:
    incident = Incident("anthropic", to_ns(INCIDENT_START), to_ns(INCIDENT_END), 0.8, 3.0, 0.5)
    endpoints = DemoEndpoints(generate.TrafficPlan(seed=7, rate=2.0, incident=incident), START, clock)
    urls = endpoints.start()
    yield endpoints, demo_config(tmp_path / "demo.duckdb", urls)
    endpoints.close()


def spans(endpoints: DemoEndpoints, t: datetime, *, levers: bool = True) -> list[dict[str, Any]]:
    """What the simulator generates in the CHUNKS from `t` (`levers=False`: had nothing changed)."""
    plan = endpoints.plan if levers else dataclasses.replace(endpoints.plan, levers=None)
    model = plan.model()
    first = generate.chunk_of(to_ns(t))
    out = []
    for index in range(first, first + CHUNKS):
        for _, span in generate.chunk_spans(plan, model, index):
            out.append({kv["key"]: next(iter(kv["value"].values())) for kv in span["attributes"]})
    return out


def anthropic_error_share(found: list[dict[str, Any]]) -> float:
    bad = sum(1 for a in found if a.get("gen_ai.provider.name", a.get("gen_ai.system")) == "anthropic"
              and "error.type" in a)
    return bad / len(found)


def tenant_requests(found: list[dict[str, Any]], tenant: str) -> int:
    return sum(1 for a in found if a["llmdeck.tenant"] == tenant and "http.request.resend_count" not in a)


def test_the_demo_desk_acts_on_the_demo_gateway(demo: tuple[DemoEndpoints, Config]) -> None:
    _, config = demo
    desk = ActionDesk(config)
    try:
        mode = desk.mode
        assert not mode.read_only and not mode.dry_run
        assert mode.role == "admin" and mode.environment == "demo"
        spec = desk.spec("switch-provider")
        assert spec.target == "provider" and spec.dangerous and not spec.builtin  # the demo's own
        assert {s.name for s in desk.actions()} >= {"switch-provider", "throttle-team", "rollback-model"}
        assert config.actions.litellm[0].name == DEMO_GATEWAY
    finally:
        asyncio.run(desk.aclose())


def test_switch_provider_stops_the_anthropic_errors_and_undo_brings_them_back(
        demo: tuple[DemoEndpoints, Config], clock: Clock) -> None:
    endpoints, config = demo
    before = spans(endpoints, clock.now)
    assert anthropic_error_share(before) > 0.15  # the scripted outage: 80% of anthropic calls fail

    async def act() -> str:
        desk = ActionDesk(config)
        try:
            plan = await desk.plan("switch-provider", {"provider": "anthropic"}, origin="key")
            assert plan.target == "anthropic" and plan.gateway == DEMO_GATEWAY
            assert len(plan.requests) == 2  # one POST /fallback per anthropic model group
            nothing = await desk.apply(plan, Confirmation(typed=""))  # Enter on an empty input
            assert nothing.sent == 0
            assert spans(endpoints, clock.now) == before  # refused: the world is untouched
            plan = await desk.plan("switch-provider", {"provider": "anthropic"}, origin="key")
            outcome = await desk.apply(plan, Confirmation(typed="anthropic"))
            assert outcome.status == "applied", outcome.detail
            assert outcome.sent == 2
            return outcome.action_id
        finally:
            await desk.aclose()

    action_id = asyncio.run(act())
    after = spans(endpoints, clock.now)
    assert anthropic_error_share(after) == 0.0  # newly generated traffic: no 429/529 from anthropic
    assert len(after) > len(before) * 0.6  # served by gpt-4o instead, not dropped
    assert Counter(a["gen_ai.request.model"] for a in after)["gpt-4o"] > \
        Counter(a["gen_ai.request.model"] for a in before)["gpt-4o"]

    clock.now += timedelta(minutes=20)

    async def undo() -> None:
        desk = ActionDesk(config)
        try:
            plan = await desk.undo(action_id)
            outcome = await desk.apply(plan, Confirmation(typed=plan.target))
            assert outcome.status == "applied", outcome.detail
        finally:
            await desk.aclose()

    asyncio.run(undo())
    key = os.environ[ENV_MASTER_KEY]
    stored = [p for p in state_dir().rglob("*") if p.is_file()]
    assert any(p.name == "audit.jsonl" for p in stored)
    assert not [p for p in stored if key.encode() in p.read_bytes()]  # not in the journal, not in SQLite
    assert endpoints.world.levers.current().idle
    assert spans(endpoints, clock.now) == spans(endpoints, clock.now, levers=False)
    assert anthropic_error_share(spans(endpoints, clock.now)) > 0.15  # still failing: errors are back


def test_throttle_team_cuts_the_tenants_rate_and_restore_puts_it_back(
        demo: tuple[DemoEndpoints, Config], clock: Clock) -> None:
    endpoints, config = demo
    usual = tenant_requests(spans(endpoints, clock.now), "acme-corp")
    assert usual > 300

    async def throttle() -> str:
        desk = ActionDesk(config)
        try:
            plan = await desk.plan("throttle-team", {"team_id": "acme-corp", "rpm_limit": 5},
                                   origin="palette")
            assert plan.target == "acme-corp"
            outcome = await desk.apply(plan, Confirmation(typed="yes" if not plan.dangerous else plan.target))
            assert outcome.status == "applied", outcome.detail
            return outcome.action_id
        finally:
            await desk.aclose()

    action_id = asyncio.run(throttle())
    cut = spans(endpoints, clock.now)
    # acme-corp usually sends ~40 requests a minute here: rpm_limit 5 lets about 1 in 8 through
    assert tenant_requests(cut, "acme-corp") < usual * 0.25
    assert tenant_requests(cut, "globex") > tenant_requests(spans(endpoints, clock.now, levers=False),
                                                            "globex") * 0.8
    clock.now += timedelta(minutes=10)

    async def restore() -> None:
        desk = ActionDesk(config)
        try:
            plan = await desk.undo(action_id)
            outcome = await desk.apply(plan, Confirmation(typed="yes" if not plan.dangerous else plan.target))
            assert outcome.status == "applied", outcome.detail
        finally:
            await desk.aclose()

    asyncio.run(restore())
    back = spans(endpoints, clock.now)
    assert back == spans(endpoints, clock.now, levers=False)
    assert tenant_requests(back, "acme-corp") > usual * 0.8


def test_rollback_model_restores_the_previous_latency(demo: tuple[DemoEndpoints, Config],
                                                      clock: Clock) -> None:
    endpoints, config = demo
    clock.now = START  # before the outage: latency is the deployment's own

    def sonnet_seconds(levers: bool = True) -> float:
        plan = endpoints.plan if levers else dataclasses.replace(endpoints.plan, levers=None)
        model = plan.model()
        first = generate.chunk_of(to_ns(clock.now))
        return statistics.median(
            (int(span["endTimeUnixNano"]) - int(span["startTimeUnixNano"])) / 1e9
            for index in range(first, first + CHUNKS)
            for _, span in generate.chunk_spans(plan, model, index)
            if span["name"] == "chat claude-sonnet-4-5" and not span["status"])

    usual = sonnet_seconds()

    async def apply(params: dict[str, Any]) -> str:
        desk = ActionDesk(config)
        try:
            plan = await desk.plan("rollback-model", params, origin="command")
            outcome = await desk.apply(plan, Confirmation(typed=plan.target))
            assert outcome.status == "applied", outcome.detail
            return plan.target
        finally:
            await desk.aclose()

    # a deployment change (given parameters: a slower upstream), then the rollback without
    # parameters: the desk takes those before llmdeck's own last change to the deployment
    slower = {"model": "anthropic/claude-opus-4-1-20250805"}
    target = asyncio.run(apply({"model_id": "demo-claude-sonnet-4-5", "litellm_params": slower}))
    assert target == "demo-claude-sonnet-4-5"
    assert sonnet_seconds() > usual * 1.8
    clock.now += timedelta(minutes=5)
    asyncio.run(apply({"model_id": "demo-claude-sonnet-4-5"}))
    assert endpoints.world.levers.current().idle
    assert sonnet_seconds() == sonnet_seconds(levers=False)  # the deployment's own latency again
    assert spans(endpoints, clock.now) == spans(endpoints, clock.now, levers=False)


def page_levels(cache: Cache, config: Config, at: datetime) -> dict[str, int]:
    """Each SLO's alert level as the console computes it from the cache (2 = page)."""
    return {line.spec.name: line.level for line in gather(cache.cursor(), config, at).slos}


def test_the_running_simulator_sends_no_anthropic_errors_after_the_switch(tmp_path: Path) -> None:
    # the whole demo path: simulator -> OTLP/HTTP -> receiver -> cache, the endpoints' figures
    # and alerts, the desk acting on the demo gateway in between
    cache_path = tmp_path / "demo.duckdb"
    with Cache.open(cache_path) as cache:
        clock = SimClock(START, 10.0)
        clock.set(START)
        sim = Simulator(cache, demo_config(cache_path), tmp_path / "spool", clock=clock, rate=1.0,
                        backfill=timedelta(hours=1), incident_delay=timedelta(minutes=2))
        endpoints = DemoEndpoints.for_simulator(sim)
        assert endpoints.plan.levers is sim.levers  # the gateway moves the simulator's own levers
        config = demo_config(cache_path, endpoints.start())
        receiver = ReceiverHost(cache, config, sim.writing, host="127.0.0.1", port=0)
        receiver.start()
        sim.send_live_to(receiver.url)
        try:
            sim.backfill()
            switched = START + timedelta(minutes=9)
            clock.set(switched)
            sim.step()
            assert endpoints.urls is not None
            firing = {a["labels"]["alertname"] for a in
                      httpx.get(endpoints.urls.alertmanager + "/api/v2/alerts").json()}
            assert "AnthropicErrorBudgetBurn" in firing
            assert page_levels(cache, config, switched)["anthropic availability"] == 2

            async def switch() -> None:
                desk = ActionDesk(config)
                try:
                    plan = await desk.plan("switch-provider", {"provider": "anthropic"}, origin="key")
                    outcome = await desk.apply(plan, Confirmation(typed="anthropic"))
                    assert outcome.status == "applied", outcome.detail
                finally:
                    await desk.aclose()

            asyncio.run(switch())
            clock.set(switched + timedelta(minutes=8))
            report = sim.step()
            assert report is not None and report.spans_sent > 500
            # by user request (trace): one that started before the switch may still be retrying
            rows = dict(cache.cursor().execute(
                "WITH t AS (SELECT trace_id, min(start_time) AS began FROM spans GROUP BY ALL)"
                " SELECT t.began >= ?::TIMESTAMP AS after, count(*) FILTER (WHERE provider = 'anthropic'"
                " AND coalesce(http_status, 200) IN (429, 529)) FROM spans JOIN t USING (trace_id)"
                " WHERE t.began >= ?::TIMESTAMP GROUP BY ALL",
                [switched, START + timedelta(minutes=3)]).fetchall())
            assert rows[False] > 50  # the outage, before the switch
            assert rows[True] == 0  # requests made since: no 429/529 from anthropic at all
            firing = {a["labels"]["alertname"] for a in
                      httpx.get(endpoints.urls.alertmanager + "/api/v2/alerts").json()}
            assert "AnthropicErrorBudgetBurn" not in firing  # the page resolved by itself
            # the console's SLOs: the 5m/1h page rule stops at once; the 30m/6h one once the
            # outage has left the 30-minute window (3 wall minutes at the demo's 10x)
            assert page_levels(cache, config, clock.now())["anthropic availability"] == 2
            clock.set(switched + timedelta(minutes=31))
            sim.step()
            levels = page_levels(cache, config, clock.now())
            assert max(levels.values()) < 2, levels
        finally:
            receiver.close()
            sim.close()
            endpoints.close()
