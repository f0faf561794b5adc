"""The demo traffic's levers (console/demo/levers.py): what the gateway's admin actions change.

Each test draws real chunks of demo traffic (console/demo/generate.py) with and without a
lever moved and compares the spans: the throttled tenant's requests thin out, a routed
group's calls move off the failing provider, a deployment's upstream sets the latency.
"""

from __future__ import annotations

import pickle
import statistics
import threading
from collections import Counter
from typing import Any

import pytest

from console.demo import generate
from console.demo.levers import IDLE, Levers, LeverState
from console.demo.traffic import MODELS, Incident, litellm_model, upstream_for

T0 = 1_772_600_000 * 10**9  # a Wednesday, early afternoon UTC
FIRST = generate.chunk_of(T0)
CHUNKS = 360  # an hour of simulated time
INCIDENT = Incident("anthropic", T0 - 3_600 * 10**9, T0 + 7_200 * 10**9, 0.8, 3.0, 0.5)


def attrs(span: dict[str, Any]) -> dict[str, Any]:
    return {kv["key"]: next(iter(kv["value"].values())) for kv in span["attributes"]}


def draw(plan: generate.TrafficPlan, first: int = FIRST, chunks: int = CHUNKS) -> list[dict[str, Any]]:
    model = plan.model()
    return [attrs(span) | {"_ms": (int(span["endTimeUnixNano"]) - int(span["startTimeUnixNano"])) / 1e6}
            for index in range(first, first + chunks)
            for _, span in generate.chunk_spans(plan, model, index)]


def plan_with(levers: Levers | None, incident: Incident | None = INCIDENT) -> generate.TrafficPlan:
    return generate.TrafficPlan(seed=7, rate=2.0, incident=incident, levers=levers)


def provider_errors(spans: list[dict[str, Any]], provider: str) -> int:
    return sum(1 for a in spans if a.get("gen_ai.provider.name", a.get("gen_ai.system")) == provider
               and "error.type" in a)


def test_no_lever_moved_draws_the_same_spans_as_no_levers() -> None:
    # the history on disk (spool files) and every reader must agree with or without levers
    assert draw(plan_with(Levers()), chunks=30) == draw(plan_with(None), chunks=30)
    levers = Levers()
    levers.change(generate.chunk_start_ns(FIRST + 30), IDLE.with_share("acme-corp", 0.0))
    assert draw(plan_with(levers), chunks=30) == draw(plan_with(None), chunks=30)  # before it holds


def test_a_tenant_cut_thins_that_tenant_only() -> None:
    base = draw(plan_with(None))
    levers = Levers()
    levers.change(T0, IDLE.with_share("acme-corp", 0.25))
    cut = draw(plan_with(levers))
    before = Counter(a["llmdeck.tenant"] for a in base)
    after = Counter(a["llmdeck.tenant"] for a in cut)
    assert before["acme-corp"] > 400
    assert after["acme-corp"] < before["acme-corp"] * 0.4
    # the others keep their usual rates (their draws shift, not their expected counts)
    assert after["globex"] > before["globex"] * 0.8
    levers2 = Levers()
    levers2.change(T0, IDLE.with_share("acme-corp", 0.0))
    assert not [a for a in draw(plan_with(levers2)) if a["llmdeck.tenant"] == "acme-corp"]


def test_a_route_moves_the_failing_groups_off_their_provider() -> None:
    base = draw(plan_with(None))
    assert provider_errors(base, "anthropic") > 500
    state = IDLE.with_route("claude-sonnet-4-5", "gpt-4o").with_route("claude-haiku-4-5", "gpt-4o-mini")
    levers = Levers()
    levers.change(T0, state)
    routed = draw(plan_with(levers))
    assert provider_errors(routed, "anthropic") == 0
    assert not [a for a in routed if a.get("gen_ai.provider.name") == "anthropic"]
    errors = sum(1 for a in routed if "error.type" in a) / len(routed)
    assert errors < 0.01  # the background's share, nothing more
    # the traffic still happens: served by the route's targets
    assert len(routed) > len(base) * 0.5
    models = Counter(a["gen_ai.request.model"] for a in routed)
    assert models["gpt-4o"] > Counter(a["gen_ai.request.model"] for a in base)["gpt-4o"]


def test_a_route_does_nothing_while_its_provider_is_healthy() -> None:
    # a general fallback serves a group only while the group's deployment fails (cooled down)
    levers = Levers()
    levers.change(T0, IDLE.with_route("claude-sonnet-4-5", "gpt-4o"))
    assert draw(plan_with(levers, None), chunks=60) == draw(plan_with(None, None), chunks=60)


def test_a_deployment_upstream_sets_the_latency_and_restoring_it_restores_it() -> None:
    def sonnet_ms(spans: list[dict[str, Any]]) -> float:
        return statistics.median(a["_ms"] for a in spans if a["gen_ai.request.model"] == "claude-sonnet-4-5"
                                 and "error.type" not in a)

    slow = upstream_for("anthropic/claude-opus-4-1-20250805")
    assert slow is not None
    own = upstream_for(litellm_model(3))
    assert own is not None and MODELS[3][1] == "claude-sonnet-4-5" and own.median_s == MODELS[3][3]
    levers = Levers()
    half = generate.chunk_start_ns(FIRST + CHUNKS)
    levers.change(T0, IDLE.with_upstream("claude-sonnet-4-5", slow))
    levers.change(half, levers.current().with_upstream("claude-sonnet-4-5", None))  # rolled back
    first = draw(plan_with(levers, None))
    base = draw(plan_with(None, None))
    assert sonnet_ms(first) > sonnet_ms(base) * 1.8
    changed = [a for a in first if a["gen_ai.request.model"] == "claude-sonnet-4-5"]
    assert {a.get("gen_ai.response.model") for a in changed} - {None} == {"claude-opus-4-1-20250805"}
    # after the rollback the spans are the traffic model's own again, chunk for chunk
    assert draw(plan_with(levers, None), FIRST + CHUNKS) == draw(plan_with(None, None), FIRST + CHUNKS)


def test_the_schedule_never_rewrites_a_past_change() -> None:
    levers = Levers()
    assert levers.at(T0) is IDLE
    a = IDLE.with_share("globex", 0.5)
    b = a.with_share("globex", 1.0)
    assert levers.change(T0, a) == T0
    assert levers.change(T0 - 10, b) == T0  # a change dated earlier starts at the newest start
    assert levers.at(T0 - 1) is IDLE and levers.at(T0) == b
    assert b.idle and b.share("globex") == 1.0
    with pytest.raises(ValueError, match="globex"):
        a.with_share("globex", 1.5)


def test_levers_pickle_as_a_snapshot_for_the_backfill_workers() -> None:
    levers = Levers()
    levers.change(T0, IDLE.with_share("acme-corp", 0.1).with_route("claude-sonnet-4-5", "gpt-4o"))
    plan = plan_with(levers)
    copy = pickle.loads(pickle.dumps(plan))
    assert copy.levers is not None and copy.levers.history() == levers.history()
    assert copy == plan  # the levers do not take part in the plan's identity


def test_readers_on_threads_see_whole_states() -> None:
    # a writer moving levers while readers ask: every answer is one of the states written
    levers = Levers()
    states = [LeverState().with_share("acme-corp", i / 100) for i in range(100)]
    seen: list[LeverState] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.append(levers.at(T0 + 10**12))

    readers = [threading.Thread(target=read) for _ in range(3)]
    for r in readers:
        r.start()
    for i, state in enumerate(states):
        levers.change(T0 + i, state)
    stop.set()
    for r in readers:
        r.join()
    assert levers.at(T0 + 10**12) == states[-1]
    assert all(s is IDLE or s in states for s in seen)


def test_an_upstream_the_demo_has_no_profile_for_keeps_the_groups_latency() -> None:
    unknown = upstream_for("openai/gpt-5-2025-08-07", 2.8)
    assert unknown is not None and (unknown.provider, unknown.response_model, unknown.median_s) == (
        "openai", "gpt-5-2025-08-07", 2.8)
    assert upstream_for("acme/thing", 2.8) is None and upstream_for("openai/gpt-5") is None
    # a group moved to another provider's model is out of that provider's outage
    levers = Levers()
    levers.change(T0, IDLE.with_upstream("claude-sonnet-4-5", unknown))
    moved = [a for a in draw(plan_with(levers)) if a["gen_ai.request.model"] == "claude-sonnet-4-5"]
    assert moved and {a["gen_ai.provider.name"] for a in moved if "gen_ai.provider.name" in a} == {"openai"}
    assert sum(1 for a in moved if "error.type" in a) / len(moved) < 0.02  # the background's errors only
