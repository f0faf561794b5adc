"""The choke point (`ActionDesk.apply`) against a recording LiteLLM admin server on loopback.

Every refusal (read-only three ways, dry-run, cancelled, wrong target typed, role too low)
must leave the server with ZERO mutating requests and one audit event; the allowed path
sends exactly one request per planned request, with Idempotency-Key and LiteLLM-Changed-By;
a plan is never sent twice; time-box reverts survive a restart, and one that cannot run
stays pending with its reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from console.action_types import ActionError, Confirmation
from console.audit import AuditJournal
from console.config import Config
from console.config_actions import ActionsSettings, LiteLLMGateway
from console.incidents import IncidentStore
from console.operator import user_name
from console.runbooks import ActionDesk
from tests.faults.litellm_admin_server import MASTER_KEY, LiteLLMAdminServer
from tests.unit import runbook_fixtures

T0 = datetime(2026, 12, 5, 3, 0, 0)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def server() -> Iterator[LiteLLMAdminServer]:
    with LiteLLMAdminServer() as srv:
        srv.admin.add_team("team-a", tpm_limit=1000, rpm_limit=10)
        yield srv


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_config(server: LiteLLMAdminServer, *, role: str = "responder", prod: bool = False) -> Config:
    return Config(actions=ActionsSettings(
        environment="test", prod=prod, default_role="viewer", roles={user_name(): role},  # type: ignore[dict-item]
        litellm=[LiteLLMGateway(name="gw", url=server.url, admin_key_ref="env:TEST_LITELLM_ADMIN")]))


async def _no_sleep(_: float) -> None:
    return None


@pytest.fixture
async def desk_factory(server: LiteLLMAdminServer, clock: Clock, tmp_path: Path,
                       monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Callable[..., ActionDesk]]:
    """make(role=, prod=, **ActionDesk kwargs): desks over the same state dir and server."""
    monkeypatch.setenv("TEST_LITELLM_ADMIN", MASTER_KEY)
    made: list[ActionDesk] = []
    catalog = runbook_fixtures.catalog(tmp_path)

    def make(*, role: str = "responder", prod: bool = False, **kwargs: Any) -> ActionDesk:
        kwargs.setdefault("environ", {})
        desk = ActionDesk(make_config(server, role=role, prod=prod), clock=clock, catalog=catalog,
                          sleep=_no_sleep, **kwargs)
        made.append(desk)
        return desk

    yield make
    for desk in made:
        await desk.aclose()


def events(status: str) -> list[Any]:
    return [r for r in AuditJournal().records() if r.get("kind") == "event" and r.status == status]


async def test_allowed_path_sends_one_request_with_headers_verifies_and_audits(
        server: LiteLLMAdminServer, desk_factory: Callable[..., ActionDesk]) -> None:
    desk = desk_factory()
    plan = await desk.plan("throttle-team", {"team_id": "team-a", "tpm_limit": "100"}, origin="cli")
    assert server.mutating() == []  # planning reads only
    assert [(d.field, d.before, d.after) for d in plan.diff] == [("tpm_limit", "1000", "100")]
    assert plan.before == {"tpm_limit": 1000, "rpm_limit": 10}

    outcome = await desk.apply(plan, Confirmation("team-a"))

    assert (outcome.status, outcome.sent) == ("applied", 1), outcome.detail
    assert "(HTTP 200)" in outcome.detail  # what the server said is kept
    [sent] = server.mutating()
    assert sent.path == "/team/update" and sent.json() == {"team_id": "team-a", "tpm_limit": 100}
    assert sent.headers["idempotency-key"] == plan.idempotency_key
    assert sent.headers["litellm-changed-by"] == user_name()
    assert server.admin.team("team-a")["tpm_limit"] == 100
    kinds = [(r.get("kind"), r.status) for r in AuditJournal().records()]
    assert kinds == [("intent", ""), ("outcome", "applied")]
    assert AuditJournal().verify().ok
    record = desk.store.get(outcome.action_id)
    assert record is not None and record.status == "applied" and record.before == plan.before


@pytest.mark.parametrize("case", ["env", "flag", "prod", "dry_run", "no_confirm", "wrong_target",
                                  "empty", "viewer"])
async def test_every_refusal_sends_zero_mutating_requests_and_is_audited(
        case: str, server: LiteLLMAdminServer, desk_factory: Callable[..., ActionDesk]) -> None:
    kwargs: dict[str, Any] = {
        "env": {"environ": {"LLMDECK_READONLY": "1"}}, "flag": {"read_only": True},
        "prod": {"prod": True}, "dry_run": {"dry_run": True}, "viewer": {"role": "viewer"},
    }.get(case, {})
    desk = desk_factory(**kwargs)
    plan = await desk.plan("throttle-team", {"team_id": "team-a", "tpm_limit": 5}, origin="key")
    typed = {"no_confirm": None, "wrong_target": Confirmation("team-b"), "empty": Confirmation("  ")}
    confirmation = typed.get(case, Confirmation("team-a"))

    outcome = await desk.apply(plan, confirmation)

    assert server.mutating() == []
    assert outcome.sent == 0 and outcome.action_id == ""
    want = {"dry_run": "dry_run", "no_confirm": "cancelled", "wrong_target": "cancelled",
            "empty": "cancelled"}.get(case, "refused")
    assert outcome.status == want, outcome.detail
    assert "nothing sent" in outcome.detail
    [event] = events(want)
    assert event.get("target") == "team-a" and event.get("origin") == "key"
    assert not [r for r in AuditJournal().records() if r.get("kind") == "intent"]
    assert server.admin.team("team-a")["tpm_limit"] == 1000


async def test_reasons_name_the_guard(desk_factory: Callable[..., ActionDesk]) -> None:
    prod = desk_factory(prod=True)
    plan = await prod.plan("throttle-team", {"team_id": "team-a", "tpm_limit": 5}, origin="cli")
    assert prod.mode.read_only and "--write" in prod.mode.reason
    assert any("read-only" in n for n in plan.notes)
    viewer = desk_factory(role="viewer", write=True, prod=True)
    assert not viewer.mode.read_only
    outcome = await viewer.apply(await viewer.plan("throttle-team", {"team_id": "team-a", "tpm_limit": 5},
                                                   origin="cli"), Confirmation("team-a"))
    assert "has role viewer" in outcome.detail and "needs responder" in outcome.detail


async def test_read_only_switched_on_while_the_plan_is_shown_is_checked_at_apply(
        server: LiteLLMAdminServer, desk_factory: Callable[..., ActionDesk]) -> None:
    environ: dict[str, str] = {}
    desk = desk_factory(environ=environ)
    plan = await desk.plan("throttle-team", {"team_id": "team-a", "tpm_limit": 5}, origin="palette")
    assert not desk.mode.read_only
    environ["LLMDECK_READONLY"] = "1"
    outcome = await desk.apply(plan, Confirmation("team-a"))
    assert outcome.status == "refused" and server.mutating() == []


async def test_dangerous_action_needs_the_typed_target_not_yes(
        server: LiteLLMAdminServer, desk_factory: Callable[..., ActionDesk]) -> None:
    desk = desk_factory(role="admin")
    plan = await desk.plan("cut-team", {"team_id": "team-a"}, origin="key")
    assert plan.dangerous and plan.desired == {"tpm_limit": 0}
    assert (await desk.apply(plan, Confirmation("yes"))).status == "cancelled"
    assert server.mutating() == []
    assert (await desk.apply(plan, Confirmation("team-a"))).status == "applied"
    assert len(server.mutating()) == 1


async def test_a_plan_is_never_sent_twice(server: LiteLLMAdminServer,
                                          desk_factory: Callable[..., ActionDesk]) -> None:
    desk = desk_factory()
    plan = await desk.plan("throttle-team", {"team_id": "team-a", "tpm_limit": 7}, origin="cli")
    first = await desk.apply(plan, Confirmation("team-a"))
    again = await desk.apply(plan, Confirmation("team-a"))
    assert first.status == "applied"
    assert again.status == "refused" and first.action_id in again.detail and again.sent == 0
    assert len(server.mutating()) == 1
    other = desk_factory()  # another desk (another process) cannot apply this desk's plan
    assert (await other.apply(plan, Confirmation("team-a"))).status == "refused"
    assert len(server.mutating()) == 1


async def test_expired_and_forged_plans_are_refused(server: LiteLLMAdminServer, clock: Clock,
                                                    desk_factory: Callable[..., ActionDesk]) -> None:
    import dataclasses

    desk = desk_factory()
    plan = await desk.plan("throttle-team", {"team_id": "team-a", "tpm_limit": 7}, origin="cli")
    forged = dataclasses.replace(plan, requests=())
    assert (await desk.apply(forged, Confirmation("team-a"))).status == "refused"
    clock.now += timedelta(minutes=11)
    outcome = await desk.apply(plan, Confirmation("team-a"))
    assert outcome.status == "refused" and "older than" in outcome.detail
    assert server.mutating() == []


async def test_failed_and_unknown_outcomes(server: LiteLLMAdminServer,
                                           desk_factory: Callable[..., ActionDesk]) -> None:
    desk = desk_factory()
    server.fail_next(500, {"error": {"message": "No DB Connected", "type": "x", "code": "500"}})
    plan = await desk.plan("throttle-team", {"team_id": "team-a", "tpm_limit": 7}, origin="cli")
    failed = await desk.apply(plan, Confirmation("team-a"))
    assert (failed.status, failed.sent) == ("failed", 1) and "HTTP 500" in failed.detail

    server.drop_next()
    plan = await desk.plan("throttle-team", {"team_id": "team-a", "tpm_limit": 8}, origin="cli")
    unknown = await desk.apply(plan, Confirmation("team-a"))
    assert unknown.status == "unknown" and "runbook verify" in unknown.detail
    assert [r.action_id for r in desk.unknown_outcomes()] == [unknown.action_id]
    assert len(server.mutating()) == 2  # the dropped request was not retried

    retry = await desk.plan("throttle-team", {"team_id": "team-a", "tpm_limit": 8}, origin="cli")
    assert any(unknown.action_id in n for n in retry.notes)
    refused = await desk.apply(retry, Confirmation("team-a"))  # it may still land: verify first
    assert refused.status == "refused" and f"runbook verify {unknown.action_id}" in refused.detail
    assert len(server.mutating()) == 2

    resolved = await desk.resolve_unknown(unknown.action_id)
    assert resolved.status == "applied" and "it took" in resolved.detail
    assert desk.unknown_outcomes() == []
    assert not AuditJournal().unknown_outcomes()


async def test_undo_restores_the_captured_state(server: LiteLLMAdminServer,
                                                desk_factory: Callable[..., ActionDesk]) -> None:
    desk = desk_factory()
    before = dict(server.admin.team("team-a"))
    plan = await desk.plan("throttle-team", {"team_id": "team-a", "tpm_limit": 1, "rpm_limit": 2},
                           origin="cli")
    done = await desk.apply(plan, Confirmation("team-a"))
    undo = await desk.undo(done.action_id)
    assert undo.revert_of == done.action_id and undo.desired == {"tpm_limit": 1000, "rpm_limit": 10}
    assert (await desk.apply(undo, Confirmation("team-a"))).status == "applied"
    after = server.admin.team("team-a")
    assert {k: after[k] for k in ("tpm_limit", "rpm_limit")} == {"tpm_limit": 1000, "rpm_limit": 10}
    assert {k: v for k, v in after.items() if k not in ("updated_at", "updated_by")} == \
        {k: v for k, v in before.items() if k not in ("updated_at", "updated_by")}


async def test_time_box_revert_runs_after_a_restart(server: LiteLLMAdminServer, clock: Clock,
                                                    desk_factory: Callable[..., ActionDesk]) -> None:
    store = IncidentStore()
    incident, _ = store.open("team-a floods the gateway", severity="sev2")
    desk = desk_factory()
    plan = await desk.plan("throttle-team", {"team_id": "team-a", "tpm_limit": 50, "for": "15m"},
                           origin="key", incident_id=incident.id)
    done = await desk.apply(plan, Confirmation("team-a"))
    assert done.revert_due == T0 + timedelta(minutes=15)
    await desk.aclose()

    restarted = desk_factory()  # a new desk over the same state directory
    assert [p.action_id for p in restarted.pending_reverts()] == [done.action_id]
    assert await restarted.run_due_reverts() == []  # not due yet
    clock.now += timedelta(minutes=16)
    [reverted] = await restarted.run_due_reverts()
    assert reverted.status == "applied" and reverted.plan.origin == "revert"
    assert server.admin.team("team-a")["tpm_limit"] == 1000
    assert restarted.pending_reverts() == []
    assert len(server.mutating()) == 2
    kinds = [e.kind for e in store.timeline(incident.id)]
    assert kinds.count("action_intent") == 1 and "action_outcome" in kinds and "revert" in kinds


async def test_a_revert_that_cannot_run_stays_pending_with_its_reason(
        server: LiteLLMAdminServer, clock: Clock, desk_factory: Callable[..., ActionDesk]) -> None:
    desk = desk_factory()
    done = await desk.apply(await desk.plan("throttle-team", {"team_id": "team-a", "tpm_limit": 50,
                                                               "for": "10m"}, origin="cli"),
                            Confirmation("team-a"))
    clock.now += timedelta(minutes=11)
    locked = desk_factory(environ={"LLMDECK_READONLY": "1"})
    [refused] = await locked.run_due_reverts()
    assert refused.status == "refused" and refused.sent == 0
    [pending] = locked.pending_reverts()
    assert pending.action_id == done.action_id and "read-only" in pending.reason and pending.attempts == 1
    assert server.admin.team("team-a")["tpm_limit"] == 50
    reads, events_before = len(server.requests), len(events("refused"))
    assert await locked.run_due_reverts() == []  # the console checks again: same guard, no GET, no event
    assert len(server.requests) == reads and len(events("refused")) == events_before

    server.fail_next(503, {"detail": "upstream down"})
    [failed] = await desk_factory().run_due_reverts()
    assert failed.status == "failed"
    [pending] = desk.pending_reverts()
    assert "HTTP 503" in pending.reason and pending.attempts == 2

    [ok] = await desk_factory().run_due_reverts()
    assert ok.status == "applied" and desk.pending_reverts() == []
    assert server.admin.team("team-a")["tpm_limit"] == 1000


async def test_a_revert_with_an_unknown_outcome_is_verified_not_sent_again(
        server: LiteLLMAdminServer, clock: Clock, desk_factory: Callable[..., ActionDesk]) -> None:
    desk = desk_factory()
    done = await desk.apply(await desk.plan("throttle-team", {"team_id": "team-a", "tpm_limit": 50,
                                                               "for": "10m"}, origin="cli"),
                            Confirmation("team-a"))
    clock.now += timedelta(minutes=11)
    server.drop_next()  # the revert is applied, its answer lost
    [lost] = await desk.run_due_reverts()
    assert lost.status == "unknown"
    assert await desk_factory().run_due_reverts() == []  # another process: not sent again blind
    assert len(server.mutating()) == 2
    [pending] = desk.pending_reverts()
    assert pending.action_id == done.action_id and f"runbook verify {lost.action_id}" in pending.reason

    settled = await desk.resolve_unknown(lost.action_id)
    assert settled.status == "applied" and desk.pending_reverts() == []


async def test_a_revert_taken_by_one_process_is_not_taken_by_another(
        clock: Clock, desk_factory: Callable[..., ActionDesk]) -> None:
    desk = desk_factory()
    done = await desk.apply(await desk.plan("throttle-team", {"team_id": "team-a", "tpm_limit": 50,
                                                               "for": "10m"}, origin="cli"),
                            Confirmation("team-a"))
    clock.now += timedelta(minutes=11)
    assert desk.store.claim_revert(done.action_id, clock.now, timedelta(minutes=15)) == (True, "")
    assert await desk_factory().run_due_reverts() == []  # running elsewhere
    clock.now += timedelta(minutes=16)  # that process died without sending: taken again
    [ok] = await desk_factory().run_due_reverts()
    assert ok.status == "applied"


async def test_an_intent_that_never_reached_the_store_is_settled_as_not_sent(
        server: LiteLLMAdminServer, desk_factory: Callable[..., ActionDesk]) -> None:
    # What a kill between the fsynced intent and the claim leaves on disk: the intent only.
    action_id = AuditJournal().intent(action="throttle-team", target="team-a", params={"tpm_limit": 5},
                                      pre_state_hash="0" * 64, idempotency_key="k-1", origin="cli",
                                      gateway="gw", action_id="abcdef012345")
    desk = desk_factory()
    assert [r.action_id for r in desk.unclaimed_intents()] == [action_id]
    settled = await desk.resolve_unknown(action_id)
    assert settled.status == "failed" and "never sent" in settled.detail
    assert desk.unclaimed_intents() == [] and not AuditJournal().unknown_outcomes()
    assert server.mutating() == []


def test_silence_actions_made_by_silences_apply_are_known_but_not_offered() -> None:
    from console.config import AlertmanagerSource, SourcesSettings

    am = AlertmanagerSource(name="am", url="http://127.0.0.1:9")
    config = Config(sources=SourcesSettings(alertmanager=[am]))
    desk = ActionDesk(config, environ={})
    assert desk.spec("silence.create").adapter == "alertmanager.silence"  # verify / undo can find it
    assert "silence.create" not in [a.name for a in desk.actions()]
    assert "silence-alert" in [a.name for a in desk.actions()]  # the runbook action is what is offered
    assert "silence.create" not in ActionDesk(Config(), environ={}).actions_by_name()


SPLIT = runbook_fixtures.RUNBOOK.replace(
    'adapter = "test.team_limits"\ngateway = "gw"\nrole = "responder"\n',
    'adapter = "test.team_limits"\ngateway = "gw"\nrole = "responder"\noptions = { split = true }\n', 1)


class _FailSecondPost(httpx.AsyncHTTPTransport):
    """Arms the real server's fault just before the second POST, so request 2 of 2 fails."""

    def __init__(self, server: LiteLLMAdminServer) -> None:
        super().__init__()
        self.server, self.posts = server, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            self.posts += 1
            if self.posts == 2:
                self.server.fail_next(500, {"detail": "boom"})
        return await super().handle_async_request(request)


async def test_a_partial_failure_keeps_its_revert_and_undo_puts_back_what_took(
        server: LiteLLMAdminServer, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_LITELLM_ADMIN", MASTER_KEY)
    catalog = runbook_fixtures.catalog(tmp_path, SPLIT)
    desk = ActionDesk(make_config(server), clock=clock, catalog=catalog, sleep=_no_sleep, environ={},
                      transport=_FailSecondPost(server))
    try:
        plan = await desk.plan("throttle-team", {"team_id": "team-a", "tpm_limit": 5, "rpm_limit": 1,
                                                 "for": "10m"}, origin="cli")
        assert len(plan.requests) == 2
        failed = await desk.apply(plan, Confirmation("team-a"))
        assert (failed.status, failed.sent) == ("failed", 2)
        assert "request(s) 1 (POST /team/update) took" in failed.detail
        assert f"runbook undo {failed.action_id}" in failed.detail
        assert failed.revert_due == T0 + timedelta(minutes=10)
        assert [p.action_id for p in desk.pending_reverts()] == [failed.action_id]
        assert server.admin.team("team-a")["tpm_limit"] == 5  # the part that took
        undo = await desk.undo(failed.action_id)
        assert (await desk.apply(undo, Confirmation("team-a"))).status == "applied"
        team = server.admin.team("team-a")
        assert (team["tpm_limit"], team["rpm_limit"]) == (1000, 10)
        assert desk.pending_reverts() == []
    finally:
        await desk.aclose()


async def test_an_action_still_on_the_wire_is_not_an_unknown_outcome(
        server: LiteLLMAdminServer, desk_factory: Callable[..., ActionDesk]) -> None:
    desk = desk_factory()
    server.hang_next()
    plan = await desk.plan("throttle-team", {"team_id": "team-a", "tpm_limit": 9}, origin="cli")
    sending = asyncio.ensure_future(desk.apply(plan, Confirmation("team-a")))
    for _ in range(2000):  # until the request reached the server (it never answers)
        if server.mutating():
            break
        await asyncio.sleep(0.005)
    try:
        (row,) = desk.store.unknown()  # the "sent" row this process claimed
        assert desk.unknown_outcomes() == []  # shown as in flight, not as an unknown outcome
        busy = rf"still being sent by pid {os.getpid()} on .*; try again in \d+s"
        with pytest.raises(ActionError, match=busy):
            await desk.resolve_unknown(row.action_id)
        assert desk.store.get(row.action_id).status == "sent"  # nothing settled behind the sender
    finally:
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sending
