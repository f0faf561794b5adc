"""The action matrix: every entry path x every guard, counted at a recording LiteLLM server.

Issue 12's "done means": whatever starts an action (the CLI, a suggestion calling the desk,
an automatic revert, an undo, a key / the palette / a `:` command in the console, markup
injected through untrusted text) and whatever guard holds (read-only three ways, dry-run,
a cancelled or wrong confirmation, a role too low), ZERO mutating requests reach the
server and each refused attempt is one audit event; the allowed path sends exactly one
request per planned request, with `Idempotency-Key` and `LiteLLM-Changed-By`. The server
(tests/faults/litellm_admin_server.py) records every request before answering, so the count
is what left the process, whatever it was told. The CLI runs as a real subprocess against a
real config file; the desk paths use the production `litellm.*` adapters. RELIABILITY.md
§4 R4.3 says why: the bugs of trusted runbook tools came from side paths past the guard.

Here: the desk called directly (a suggestion), undo and time-box reverts; the CLI's apply,
undo, reverts and verify as subprocesses; kill -9 between intent and outcome (of an apply
and of a revert) and what `audit show` / `runbook verify` say after it; never twice across
processes (two `reverts --run`, a retry while an outcome is unknown, a second operator);
every built-in LiteLLM action, the http.request and shell.exec examples and `silence
create`; no secret in any output or state file. The console's rows (key, palette, `:`
command, undo from the timeline, automatic reverts, injected markup) are in
tests/tui/test_action_matrix_console.py; the shared world is tests/integration/action_world.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from console.action_types import Confirmation
from console.operator import user_name
from console.runbooks import ActionDesk
from console.timeutil import utc_now
from tests.faults.fault_server import Answer, FaultServer, Reply
from tests.faults.fault_server import RecordedRequest as FaultRequest
from tests.faults.http_action_server import HttpActionServer
from tests.faults.litellm_admin_server import MASTER_KEY, LiteLLMAdminServer
from tests.integration.action_world import (
    TEAM,
    TEAM_RPM,
    TEAM_TPM,
    THROTTLE,
    ActionWorld,
    Run,
    kill_9,
    killed_mid_apply,
    wait_for,
)

BLOCK = "mx-block-team"


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ActionWorld]:
    with LiteLLMAdminServer() as server:
        server.admin.add_team(TEAM, tpm_limit=TEAM_TPM, rpm_limit=TEAM_RPM)
        server.admin.add_team("team-b", tpm_limit=TEAM_TPM)
        yield ActionWorld(tmp_path, server, monkeypatch)


class Clock:
    """The desk's clock, moved by the test (time boxes come due without waiting)."""

    def __init__(self) -> None:
        self.now = utc_now()

    def __call__(self) -> Any:
        return self.now


async def _no_sleep(_: float) -> None:
    return None


@pytest.fixture
async def desks(world: ActionWorld) -> AsyncIterator[Callable[..., ActionDesk]]:
    """desk(**ActionDesk kwargs): desks over the world's config file, as a process would build them."""
    made: list[ActionDesk] = []

    def make(**kwargs: Any) -> ActionDesk:
        kwargs.setdefault("environ", {})
        kwargs.setdefault("sleep", _no_sleep)
        desk = ActionDesk(world.config(), **kwargs)
        made.append(desk)
        return desk

    yield make
    for desk in made:
        await desk.aclose()


# The guards: how each is switched on (config, desk kwargs / CLI args and env) and what the
# desk must answer. Each must send nothing and leave one audit event.
GUARDS: dict[str, dict[str, Any]] = {
    "LLMDECK_READONLY=1": {"env": {"LLMDECK_READONLY": "1"}, "status": "refused"},
    "--read-only": {"desk": {"read_only": True}, "flags": ["--read-only"], "status": "refused"},
    "prod without --write": {"prod": True, "status": "refused"},
    "--dry-run": {"desk": {"dry_run": True}, "args": ["--dry-run"], "status": "dry_run"},
    "wrong target typed": {"confirm": "team-b", "status": "cancelled"},
    "empty confirmation": {"confirm": "", "status": "cancelled"},
    "viewer role": {"role": None, "status": "refused"},
}
CONTROL = {"status": "applied"}
"""The same world with no guard: the allowed path, to show each guard is what stopped it."""


def _events(world: ActionWorld) -> list[tuple[str, str]]:
    return [(r.kind, r.status) for r in world.audit()]


def assert_nothing_sent(world: ActionWorld, status: str, *, origin: str, action: str = THROTTLE) -> None:
    """Zero mutating requests, the gateway untouched, exactly one audit event and no intent."""
    assert world.mutating() == [], [(r.method, r.path) for r in world.mutating()]
    assert (world.team()["tpm_limit"], world.team()["blocked"]) == (TEAM_TPM, False)
    records = world.audit()
    assert [(r.kind, r.status) for r in records] == [("event", status)], _events(world)
    [event] = records
    assert (event.action, event.get("origin"), event.get("target")) == (action, origin, TEAM)
    assert "nothing sent" in event.get("detail")


def assert_sent_once(world: ActionWorld, *, origin: str, path: str = "/team/update") -> str:
    """One mutating request, with both headers, matching the journal's intent; the action id."""
    [sent] = world.mutating()
    assert sent.path == path
    key = sent.headers.get("idempotency-key", "")
    assert key, "no Idempotency-Key header"
    assert sent.headers.get("litellm-changed-by") == user_name()
    intents = [r for r in world.audit() if r.kind == "intent"]
    outcomes = [r for r in world.audit() if r.kind == "outcome"]
    assert len(intents) == 1 and len(outcomes) == 1, _events(world)
    assert intents[0].get("idempotency_key") == key and intents[0].get("origin") == origin
    assert outcomes[0].status == "applied" and outcomes[0].action_id == intents[0].action_id
    return intents[0].action_id


# ---- the desk, called directly (a suggestion from similar incidents) --------------------------


@pytest.mark.parametrize("guard", [*GUARDS, "control"])
async def test_desk_suggestion_path(guard: str, world: ActionWorld,
                                    desks: Callable[..., ActionDesk]) -> None:
    spec = GUARDS.get(guard, CONTROL)
    world.write_config(role=spec.get("role", "admin"), prod=spec.get("prod", False))
    desk = desks(environ=dict(spec.get("env", {})), **spec.get("desk", {}))
    plan = await desk.plan(THROTTLE, {"team_id": TEAM, "tpm_limit": 5}, origin="suggestion")
    assert world.mutating() == [] and len(plan.requests) == 1  # planning only reads

    outcome = await desk.apply(plan, Confirmation(spec.get("confirm", TEAM)))

    assert outcome.status == spec["status"], outcome.detail
    if guard == "control":
        assert outcome.sent == 1
        assert_sent_once(world, origin="suggestion")
        assert world.team()["tpm_limit"] == 5
    else:
        assert outcome.sent == 0
        assert_nothing_sent(world, spec["status"], origin="suggestion")


@pytest.mark.parametrize("typed", ["yes", "", "TEAM-A", " team-a-", None])
async def test_desk_dangerous_action_takes_only_the_typed_target(
        typed: str | None, world: ActionWorld, desks: Callable[..., ActionDesk]) -> None:
    desk = desks()
    plan = await desk.plan(BLOCK, {"team_id": TEAM}, origin="suggestion")
    assert plan.dangerous
    outcome = await desk.apply(plan, None if typed is None else Confirmation(typed))
    assert outcome.status == "cancelled", outcome.detail
    assert_nothing_sent(world, "cancelled", origin="suggestion", action=BLOCK)
    done = await desk.apply(plan, Confirmation(TEAM))
    assert done.status == "applied" and world.team()["blocked"] is True
    assert len(world.mutating()) == 1


async def test_desk_same_plan_applied_twice_at_once_is_sent_once(
        world: ActionWorld, desks: Callable[..., ActionDesk]) -> None:
    """A double Enter, or two workers racing on one plan: the idempotency key is claimed once."""
    desk = desks()
    plan = await desk.plan(THROTTLE, {"team_id": TEAM, "tpm_limit": 5}, origin="key")
    outcomes = await asyncio.gather(*(desk.apply(plan, Confirmation(TEAM)) for _ in range(4)))
    assert sorted(o.status for o in outcomes) == ["applied", "refused", "refused", "refused"]
    assert len(world.mutating()) == 1
    assert sum(o.sent for o in outcomes) == 1


async def test_desk_read_only_switched_on_after_planning(world: ActionWorld,
                                                         desks: Callable[..., ActionDesk]) -> None:
    environ: dict[str, str] = {}
    desk = desks(environ=environ)
    plan = await desk.plan(THROTTLE, {"team_id": TEAM, "tpm_limit": 5}, origin="suggestion")
    environ["LLMDECK_READONLY"] = "1"
    outcome = await desk.apply(plan, Confirmation(TEAM))
    assert outcome.status == "refused"
    assert_nothing_sent(world, "refused", origin="suggestion")


# ---- undo and the automatic revert, through the desk -----------------------------------------


async def _applied_throttle(desk: ActionDesk, **params: Any) -> str:
    plan = await desk.plan(THROTTLE, {"team_id": TEAM, "tpm_limit": 5, **params}, origin="cli")
    outcome = await desk.apply(plan, Confirmation(TEAM))
    assert outcome.status == "applied", outcome.detail
    return outcome.action_id


@pytest.mark.parametrize("guard", [*GUARDS, "control"])
async def test_desk_undo_path(guard: str, world: ActionWorld, desks: Callable[..., ActionDesk]) -> None:
    action_id = await _applied_throttle(desks())
    sent_before, audit_before = len(world.mutating()), len(world.audit())
    spec = GUARDS.get(guard, CONTROL)
    world.write_config(role=spec.get("role", "admin"), prod=spec.get("prod", False))
    desk = desks(environ=dict(spec.get("env", {})), **spec.get("desk", {}))

    plan = await desk.undo(action_id)
    outcome = await desk.apply(plan, Confirmation(spec.get("confirm", TEAM)))

    assert outcome.status == spec["status"], outcome.detail
    new_requests = world.mutating()[sent_before:]
    new_records = world.audit()[audit_before:]
    if guard == "control":
        [sent] = new_requests
        assert sent.headers.get("idempotency-key") == plan.idempotency_key
        assert sent.headers.get("litellm-changed-by") == user_name()
        assert world.team()["tpm_limit"] == TEAM_TPM
    else:
        assert new_requests == [] and world.team()["tpm_limit"] == 5
        assert [(r.kind, r.status, r.get("origin")) for r in new_records] == \
            [("event", spec["status"], "undo")]


@pytest.mark.parametrize("guard", ["LLMDECK_READONLY=1", "--read-only", "prod without --write",
                                   "viewer role"])
async def test_desk_time_box_revert_under_a_guard_sends_nothing_and_stays_pending(
        guard: str, world: ActionWorld, desks: Callable[..., ActionDesk]) -> None:
    clock = Clock()
    action_id = await _applied_throttle(desks(clock=clock), **{"for": "15m"})
    sent_before = len(world.mutating())
    spec = GUARDS[guard]
    world.write_config(role=spec.get("role", "admin"), prod=spec.get("prod", False))
    clock.now += timedelta(minutes=16)
    desk = desks(clock=clock, environ=dict(spec.get("env", {})), **spec.get("desk", {}))

    outcomes = await desk.run_due_reverts()

    assert [o.sent for o in outcomes] == [0]
    assert world.mutating()[sent_before:] == [] and world.team()["tpm_limit"] == 5
    [pending] = desk.pending_reverts()
    assert pending.action_id == action_id and pending.reason and pending.attempts == 1
    reason = {"viewer role": "role viewer"}.get(guard, "read-only")
    assert reason in pending.reason, pending.reason
    assert world.audit()[-1].get("origin") == "revert" and world.audit()[-1].status == "refused"


async def test_desk_dry_run_revert_sends_nothing_and_stays_pending(
        world: ActionWorld, desks: Callable[..., ActionDesk]) -> None:
    clock = Clock()
    await _applied_throttle(desks(clock=clock), **{"for": "15m"})
    clock.now += timedelta(minutes=16)
    desk = desks(clock=clock, dry_run=True)
    await desk.run_due_reverts()
    assert len(world.mutating()) == 1 and world.team()["tpm_limit"] == 5
    assert len(desk.pending_reverts()) == 1


# ---- never twice: the same revert from two processes ---------------------------------------


async def test_desk_a_due_revert_is_sent_once_when_two_consoles_run_it(
        world: ActionWorld, desks: Callable[..., ActionDesk]) -> None:
    """Two processes (a console on its refresh, `runbook reverts --run` in a shell) find the
    same due revert. The first one's request is on the wire (the server holds it); the second
    must not send the same revert again under a fresh idempotency key."""
    clock = Clock()
    await _applied_throttle(desks(clock=clock), **{"for": "15m"})
    clock.now += timedelta(minutes=16)
    world.server.hang_next(path="/team/update")
    first = asyncio.create_task(desks(clock=clock).run_due_reverts())
    while len(world.mutating()) < 2:  # the first console's revert reached the server
        await asyncio.sleep(0.01)

    second = await desks(clock=clock).run_due_reverts()

    first.cancel()
    keys = [r.headers.get("idempotency-key") for r in world.mutating()]
    assert len(keys) == 2, (f"the revert was sent again by a second process (keys {keys});"
                            f" the second run said {[(o.status, o.detail) for o in second]}")


async def test_desk_a_revert_whose_outcome_is_unknown_is_not_sent_again_by_itself(
        world: ActionWorld, desks: Callable[..., ActionDesk]) -> None:
    """The revert's request got no answer (it may still land): the next automatic run must not
    send it again under a new key; it stays pending as "outcome unknown" until a verify."""
    world.write_config(timeout_seconds=0.5)
    clock = Clock()
    await _applied_throttle(desks(clock=clock), **{"for": "15m"})
    clock.now += timedelta(minutes=16)
    world.server.hang_next(path="/team/update")
    [unknown] = await desks(clock=clock).run_due_reverts()
    assert unknown.status == "unknown" and len(world.mutating()) == 2, unknown.detail

    clock.now += timedelta(minutes=1)
    desk = desks(clock=clock)
    again = await desk.run_due_reverts()

    keys = [r.headers.get("idempotency-key") for r in world.mutating()]
    assert len(keys) == 2, (f"an unknown revert was re-sent automatically (keys {keys});"
                            f" the next run said {[(o.status, o.detail) for o in again]}")
    assert [u.action_id for u in desk.unknown_outcomes()] == [unknown.action_id]


# ---- the CLI, as a real subprocess -----------------------------------------------------------

CLI_GUARDS: dict[str, dict[str, Any]] = {**GUARDS, "no --confirm": {"confirm": None, "status": "cancelled"},
                                         "global --dry-run": {"flags": ["--dry-run"], "status": "dry_run"}}


def _cli_for(world: ActionWorld, guard: str) -> tuple[dict[str, Any], list[str], dict[str, str]]:
    """Set the world up for `guard`; the spec, the global flags and the environment to run with."""
    spec = CLI_GUARDS.get(guard, CONTROL)
    world.write_config(role=spec.get("role", "admin"), prod=spec.get("prod", guard == "prod with --write"))
    flags = [*spec.get("flags", []), *(["--write"] if guard == "prod with --write" else [])]
    return spec, flags, dict(spec.get("env", {}))


def _confirm(spec: dict[str, Any]) -> list[str]:
    typed = spec.get("confirm", TEAM)
    return [] if typed is None else ["--confirm", typed]


def _json(run: Run) -> dict[str, Any]:
    try:
        doc = json.loads(run.out)
    except ValueError:
        pytest.fail(f"not one JSON object:\n{run.said()}")
    assert isinstance(doc, dict)
    return doc


@pytest.mark.parametrize("guard", [*CLI_GUARDS, "control", "prod with --write"])
def test_cli_apply(guard: str, world: ActionWorld) -> None:
    spec, flags, env = _cli_for(world, guard)

    run = world.cli(*flags, "runbook", "apply", THROTTLE, "--param", f"team_id={TEAM}",
                    "--param", "tpm_limit=5", *spec.get("args", []), *_confirm(spec), "--json", env=env)

    doc = _json(run)
    assert doc["outcome"]["status"] == spec["status"], run.said()
    assert run.code == (0 if spec["status"] in ("applied", "dry_run") else 1), run.said()
    if spec["status"] == "applied":
        action_id = assert_sent_once(world, origin="cli")
        assert doc["outcome"]["action_id"] == action_id and world.team()["tpm_limit"] == 5
    else:
        assert doc["outcome"]["sent"] == 0
        assert_nothing_sent(world, spec["status"], origin="cli")


def test_cli_plan_and_list_send_nothing(world: ActionWorld) -> None:
    assert world.cli("runbook", "list").code == 0
    run = world.cli("runbook", "plan", THROTTLE, "--param", f"team_id={TEAM}", "--param", "tpm_limit=5")
    assert run.code == 0 and "tpm_limit" in run.out, run.said()
    assert world.mutating() == [] and world.audit() == []


def _cli_applied(world: ActionWorld, *params: str) -> str:
    run = world.cli("runbook", "apply", THROTTLE, "--param", f"team_id={TEAM}", "--param", "tpm_limit=5",
                    *params, "--confirm", TEAM, "--json")
    assert run.code == 0, run.said()
    return str(_json(run)["outcome"]["action_id"])


@pytest.mark.parametrize("guard", [*CLI_GUARDS, "control"])
def test_cli_undo(guard: str, world: ActionWorld) -> None:
    action_id = _cli_applied(world)
    sent_before, audit_before = len(world.mutating()), len(world.audit())
    spec, flags, env = _cli_for(world, guard)

    run = world.cli(*flags, "runbook", "undo", action_id, *spec.get("args", []), *_confirm(spec), "--json",
                    env=env)

    assert _json(run)["outcome"]["status"] == spec["status"], run.said()
    new_requests, new_records = world.mutating()[sent_before:], world.audit()[audit_before:]
    if guard == "control":
        [sent] = new_requests
        assert sent.headers.get("idempotency-key") and sent.headers.get("litellm-changed-by") == user_name()
        assert world.team()["tpm_limit"] == TEAM_TPM
        assert [(r.kind, r.get("origin")) for r in new_records] == [("intent", "undo"), ("outcome", "")]
    else:
        assert new_requests == [] and world.team()["tpm_limit"] == 5, run.said()
        assert [(r.kind, r.status, r.get("origin")) for r in new_records] == \
            [("event", spec["status"], "undo")]


def _due_revert(world: ActionWorld) -> str:
    """A throttle applied an hour ago with a 15-minute box: its revert is due now."""
    async def apply() -> str:
        clock = Clock()
        clock.now -= timedelta(hours=1)
        desk = ActionDesk(world.config(), clock=clock, environ={}, sleep=_no_sleep)
        try:
            return await _applied_throttle(desk, **{"for": "15m"})
        finally:
            await desk.aclose()

    return asyncio.run(apply())


@pytest.mark.parametrize("guard", ["LLMDECK_READONLY=1", "--read-only", "prod without --write",
                                   "viewer role", "--dry-run"])
def test_cli_due_revert_under_a_guard_sends_nothing_stays_pending_and_is_shown(
        guard: str, world: ActionWorld) -> None:
    action_id = _due_revert(world)
    spec, flags, env = _cli_for(world, guard)
    if guard == "--dry-run":
        flags, env = [], {"LLMDECK_READONLY": "1"}  # `reverts` has no --dry-run; read-only stands in

    ran = world.cli(*flags, "runbook", "reverts", "--run", env=env)

    assert len(world.mutating()) == 1 and world.team()["tpm_limit"] == 5, ran.said()
    shown = world.cli(*flags, "runbook", "reverts", env=env)
    assert shown.code == 1 and "REVERT NOT DONE" in shown.out and action_id in shown.out, shown.said()
    reason = "role viewer" if guard == "viewer role" else "read-only"
    assert reason in shown.out, shown.said()
    doc = _json(world.cli(*flags, "runbook", "reverts", "--json", env=env))
    [pending] = doc["pending"]
    assert pending["action_id"] == action_id and pending["due"] and reason in pending["reason"]

    world.write_config()
    done = world.cli("runbook", "reverts", "--run")
    assert done.code == 0 and "no pending reverts" in done.out, done.said()
    assert len(world.mutating()) == 2 and world.team()["tpm_limit"] == TEAM_TPM
    revert = world.mutating()[1]
    assert revert.headers.get("idempotency-key") and revert.headers.get("litellm-changed-by") == user_name()


# ---- kill -9 between intent and outcome --------------------------------------------------------


def test_kill_9_between_intent_and_outcome_then_verify_says_it_did_not_take(world: ActionWorld) -> None:
    action_id = killed_mid_apply(world)

    shown = world.cli("audit", "show")
    assert "outcome unknown" in shown.out.lower() and action_id in shown.out, shown.said()
    unknown = world.cli("runbook", "verify")
    assert unknown.code == 1 and "OUTCOME UNKNOWN" in unknown.out and action_id in unknown.out, unknown.said()
    undo = world.cli("runbook", "undo", action_id, "--confirm", TEAM)
    assert undo.code == 1 and "unknown" in undo.err and "verify" in undo.err, undo.said()
    assert len(world.mutating()) == 1

    verified = world.cli("runbook", "verify", action_id, "--json")

    assert verified.code == 0, verified.said()
    outcome = _json(verified)["outcome"]
    assert outcome["status"] == "failed" and "did not take" in outcome["detail"], verified.said()
    assert len(world.mutating()) == 1  # verify reads only
    assert "outcome unknown" not in world.cli("audit", "show").out.lower()
    assert world.cli("audit", "show", "--unknown", "--json").code == 0
    assert world.cli("runbook", "verify").code == 0
    assert world.cli("audit", "verify").code == 0
    resolved = [r for r in world.audit() if r.kind == "outcome"]
    assert [(r.action_id, r.status, r.get("resolved_by")) for r in resolved] == \
        [(action_id, "failed", user_name())]


def test_kill_9_after_the_change_took_then_verify_settles_it_and_arms_the_time_box(
        world: ActionWorld) -> None:
    action_id = killed_mid_apply(world, "--param", "for=15m")
    # the held request did reach the gateway's state before the process died: apply it there
    status, _ = world.server.admin.handle("POST", "/team/update", {},
                                          {"authorization": f"Bearer {MASTER_KEY}"},
                                          {"team_id": TEAM, "tpm_limit": 5})
    assert status == 200

    verified = world.cli("runbook", "verify", action_id, "--json")

    outcome = _json(verified)["outcome"]
    assert (verified.code, outcome["status"]) == (0, "applied"), verified.said()
    assert outcome["revert_due"], "an applied time-boxed action must leave its revert pending"
    pending = _json(world.cli("runbook", "reverts", "--json"))["pending"]
    assert [p["action_id"] for p in pending] == [action_id]
    assert len(world.mutating()) == 1


# ---- never twice, across processes ----------------------------------------------------------


def test_cli_running_the_same_apply_again_sends_nothing(world: ActionWorld) -> None:
    _cli_applied(world)
    again = world.cli("runbook", "apply", THROTTLE, "--param", f"team_id={TEAM}", "--param", "tpm_limit=5",
                      "--confirm", TEAM, "--json")
    assert again.code == 1 and _json(again)["outcome"]["status"] == "refused", again.said()
    assert len(world.mutating()) == 1


def test_cli_two_processes_running_due_reverts_send_the_revert_once(world: ActionWorld) -> None:
    """A console (or a cron'd `reverts --run`) and an operator's `reverts --run` at the same time."""
    _due_revert(world)
    world.server.hang_next(path="/team/update")
    first = world.start("runbook", "reverts", "--run")
    wait_for(lambda: len(world.mutating()) == 2, "the first process's revert at the server", first)

    second = world.cli("runbook", "reverts", "--run")

    kill_9(first)
    keys = [r.headers.get("idempotency-key") for r in world.mutating()]
    assert len(keys) == 2, f"the revert was sent again by a second process (keys {keys})\n{second.said()}"


def test_cli_retrying_an_apply_whose_outcome_is_unknown_is_not_sent_before_a_verify(
        world: ActionWorld) -> None:
    """The operator's first apply died with its request on the wire (it may still land). Running
    the same command again must not send a second, unkeyed-to-the-first request: verify first."""
    action_id = killed_mid_apply(world)

    again = world.cli("runbook", "apply", THROTTLE, "--param", f"team_id={TEAM}", "--param", "tpm_limit=5",
                      "--confirm", TEAM)

    assert len(world.mutating()) == 1, (f"sent again while {action_id}'s outcome is unknown:\n"
                                        f"{again.said()}")
    assert again.code == 1 and action_id in again.out + again.err, again.said()


def test_kill_9_after_the_intent_before_the_claim_can_still_be_settled(world: ActionWorld) -> None:
    """The desk writes the audit intent (fsync), then claims the key in SQLite, then sends. A
    kill between the first two leaves an intent with no action row: nothing was sent (the claim
    comes before any request), yet `audit show` says "outcome unknown" for it, and `runbook
    verify ID` must be able to settle it. The journal is left exactly as such a kill leaves it."""
    from console.audit import AuditJournal

    action_id = AuditJournal(world.audit_path).intent(
        action=THROTTLE, target=TEAM, params={"team_id": TEAM, "tpm_limit": 5}, pre_state_hash="0" * 64,
        idempotency_key="matrix-key-1", origin="cli", gateway="gw")
    assert "outcome unknown" in world.cli("audit", "show").out.lower()

    verified = world.cli("runbook", "verify", action_id)

    assert verified.code == 0, verified.said()
    assert "outcome unknown" not in world.cli("audit", "show").out.lower(), verified.said()
    assert world.mutating() == []


def test_no_secret_leaves_through_plan_text_audit_or_state(world: ActionWorld) -> None:
    """The gateway's admin key (sent as Authorization) appears in no CLI output, journal line or
    state file, whatever the path: plan, apply, refusals, undo, reverts, verify."""
    action_id = _cli_applied(world, "--param", "for=15m")
    runs = [
        world.cli("runbook", "plan", THROTTLE, "--param", f"team_id={TEAM}", "--param", "tpm_limit=7"),
        world.cli("runbook", "plan", THROTTLE, "--param", f"team_id={TEAM}", "--param", "tpm_limit=7",
                  "--json"),
        world.cli("runbook", "apply", THROTTLE, "--param", f"team_id={TEAM}", "--param", "tpm_limit=7",
                  "--confirm", "nope"),
        world.cli("--read-only", "runbook", "undo", action_id, "--confirm", TEAM, "--json"),
        world.cli("runbook", "reverts", "--json"),
        world.cli("runbook", "verify"),
        world.cli("audit", "show", "--json"),
        world.cli("audit", "export", "--since", "1h", "--format", "csv"),
    ]
    assert world.mutating()[0].headers.get("authorization") == f"Bearer {MASTER_KEY}"
    for run in runs:
        assert MASTER_KEY not in run.out + run.err, run.said()
    for path in (world.state_home / "llmdeck").rglob("*"):
        if path.is_file():
            assert MASTER_KEY.encode() not in path.read_bytes(), path


# ---- silences: `llmdeck silence create` reaches the same desk ------------------------------


class SilenceWorld:
    """A stateful Alertmanager /api/v2 on the fault server: one firing alert, silences kept."""

    def __init__(self, server: FaultServer) -> None:
        self.server = server
        self.silences: list[dict[str, Any]] = []
        server.route("/api/v2/alerts", Answer(self._alerts))
        server.route("/api/v2/silences", Answer(self._silences))

    def _alerts(self, request: FaultRequest) -> Reply:
        by = [s["id"] for s in self.silences]
        return Reply(200, [{"labels": {"alertname": "HighErrorRate", "severity": "page"}, "annotations": {},
                            "fingerprint": "f1", "startsAt": "2026-12-05T01:00:00Z",
                            "status": {"state": "suppressed" if by else "active", "silencedBy": by,
                                       "inhibitedBy": []}}])

    def _silences(self, request: FaultRequest) -> Reply:
        if request.method == "POST":
            silence = dict(request.json(), id=f"sil-{len(self.silences) + 1}", status={"state": "active"})
            self.silences.append(silence)
            return Reply(200, {"silenceID": silence["id"]})
        return Reply(200, self.silences)

    def posts(self) -> list[FaultRequest]:
        return [r for r in self.server.requests if r.method not in ("GET", "HEAD")]


SILENCE_GUARDS: dict[str, dict[str, Any]] = {
    "LLMDECK_READONLY=1": {"env": {"LLMDECK_READONLY": "1"}, "status": "refused"},
    "--read-only": {"flags": ["--read-only"], "status": "refused"},
    "silence --read-only": {"args": ["--read-only"], "status": "refused"},
    "prod without --write": {"prod": True, "status": "refused"},
    "--dry-run": {"args": ["--dry-run"], "status": "dry_run"},
    "no --yes (not a terminal)": {"yes": False, "status": "cancelled"},
}


@pytest.mark.parametrize("guard", [*SILENCE_GUARDS, "control", "prod with --write"])
def test_cli_silence_create(guard: str, world: ActionWorld) -> None:
    spec = SILENCE_GUARDS.get(guard, {"status": "applied"})
    with FaultServer() as server:
        alertmanager = SilenceWorld(server)
        prod = "true" if "prod" in guard else "false"
        world.config_file.write_text(f'[[sources.alertmanager]]\nname = "am"\nurl = "{server.url}"\n\n'
                                     f'[actions]\nenvironment = "matrix"\nprod = {prod}\n')
        flags = [*spec.get("flags", []), *(["--write"] if guard == "prod with --write" else [])]
        run = world.cli(*flags, "silence", "create", "--matcher", "alertname=HighErrorRate", "--for", "1h",
                        "--comment", "matrix", *spec.get("args", []),
                        *(["--yes"] if spec.get("yes", True) else []), env=spec.get("env"))
        posts = alertmanager.posts()
    records = [(r.kind, r.status) for r in world.audit()]
    if spec["status"] == "applied":
        assert run.code == 0 and len(posts) == 1 and posts[0].path == "/api/v2/silences", run.said()
        assert [k for k, _ in records] == ["intent", "outcome"], records
        return
    assert posts == [], run.said()
    assert run.code != 0 or spec["status"] == "dry_run", run.said()
    assert records == [("event", spec["status"])], f"{records}\n{run.said()}"


# ---- every built-in LiteLLM action, through the CLI ------------------------------------------

BUILTINS: dict[str, tuple[list[str], str]] = {
    "throttle-key": (["key_alias=team-a-key", "tpm_limit=5"], "team-a-key"),
    "throttle-team": ([f"team_id={TEAM}", "rpm_limit=1"], TEAM),
    "block-key": (["key_alias=team-a-key"], "team-a-key"),
    "unblock-key": (["key_alias=blocked-key"], "blocked-key"),
    "block-team": ([f"team_id={TEAM}"], TEAM),
    "unblock-team": (["team_id=team-blocked"], "team-blocked"),
    "switch-provider": (["model=claude-sonnet-4-5", "fallback_models=gpt-4o"], "claude-sonnet-4-5"),
    "rollback-model": (["model_name=gpt-4o", 'litellm_params={"model": "openai/gpt-4o-2024-08-06"}'],
                       "gpt-4o"),
}


@pytest.mark.parametrize("guard", ["LLMDECK_READONLY=1", "--dry-run", "wrong target typed", "control"])
@pytest.mark.parametrize("action", sorted(BUILTINS))
def test_cli_builtin_action(action: str, guard: str, world: ActionWorld) -> None:
    """No built-in action has a path of its own: each is refused by every guard at the desk and,
    allowed, sends exactly the requests its plan listed, each with both headers."""
    admin = world.server.admin
    admin.add_key("sk-matrix-team-a-0001", key_alias="team-a-key", team_id=TEAM, tpm_limit=1000)
    admin.add_key("sk-matrix-blocked-0002", key_alias="blocked-key", blocked=True)
    admin.add_team("team-blocked", blocked=True)
    admin.add_deployment("claude-sonnet-4-5", {"model": "anthropic/claude-sonnet-4-5"}, model_id="d-sonnet")
    admin.add_deployment("gpt-4o", {"model": "openai/gpt-4o"}, model_id="d-gpt-4o")
    params, target = BUILTINS[action]
    spec = GUARDS.get(guard, CONTROL)
    confirm = spec.get("confirm", target)
    before = admin.snapshot()

    run = world.cli("runbook", "apply", action, *[a for p in params for a in ("--param", p)],
                    *spec.get("args", []), "--confirm", confirm, "--json", env=spec.get("env"))

    doc = _json(run)
    assert doc["outcome"]["status"] == spec["status"], run.said()
    sent = world.mutating()
    if guard == "control":
        assert len(sent) == len(doc["plan"]["requests"]) >= 1, run.said()
        assert len({r.headers.get("idempotency-key") for r in sent}) == len(sent)
        assert all(r.headers.get("idempotency-key") and r.headers.get("litellm-changed-by") == user_name()
                   for r in sent)
        assert admin.snapshot() != before
    else:
        assert sent == [] and admin.snapshot() == before, run.said()
        assert [(r.kind, r.status) for r in world.audit()] == [("event", spec["status"])]


def test_kill_9_mid_revert_then_nothing_is_resent_until_verify(world: ActionWorld) -> None:
    """`runbook reverts --run` killed with the revert's request on the wire. Later runs must not
    send the revert again (it may still land); `runbook verify` lists it, and verifying that it
    did not take puts the time box's revert back, which the next run sends exactly once."""
    _due_revert(world)
    world.server.hang_next(path="/team/update")
    process = world.start("runbook", "reverts", "--run")
    wait_for(lambda: len(world.mutating()) == 2, "the revert's request at the server", process)
    kill_9(process)

    again = world.cli("runbook", "reverts", "--run")
    assert len(world.mutating()) == 2, f"the revert was sent again after the kill:\n{again.said()}"
    listed = _json(world.cli("runbook", "verify", "--json"))
    [unknown] = listed["unknown"]
    assert "outcome unknown" in world.cli("audit", "show").out.lower()

    settled = world.cli("runbook", "verify", unknown["action_id"], "--json")
    assert _json(settled)["outcome"]["status"] == "failed", settled.said()  # the held request never landed
    done = world.cli("runbook", "reverts", "--run")
    assert len(world.mutating()) == 3 and world.team()["tpm_limit"] == TEAM_TPM, done.said()
    assert world.cli("runbook", "verify").code == 0
    assert _json(world.cli("runbook", "reverts", "--json"))["pending"] == []


def test_cli_a_second_operator_applying_while_the_first_is_in_flight_sends_nothing(
        world: ActionWorld) -> None:
    """Two terminals, the same throttle: the first one's request is on the wire (no answer yet).
    The second plans from the old state and would send its own request under its own key; the
    desk must refuse it while an action on the same target has no known outcome."""
    world.server.hang_next(path="/team/update")
    first = world.start("runbook", "apply", THROTTLE, "--param", f"team_id={TEAM}", "--param",
                        "tpm_limit=5", "--confirm", TEAM)
    wait_for(lambda: len(world.mutating()) == 1, "the first request at the server", first)

    second = world.cli("runbook", "apply", THROTTLE, "--param", f"team_id={TEAM}", "--param",
                       "tpm_limit=5", "--confirm", TEAM, "--json")

    kill_9(first)
    assert len(world.mutating()) == 1, second.said()
    assert _json(second)["outcome"]["status"] == "refused" and second.code == 1


@pytest.mark.parametrize("mapping", ["own group responder", "other group admin"])
def test_cli_roles_from_groups_are_checked_at_the_desk(mapping: str, world: ActionWorld) -> None:
    from console.operator import user_groups

    groups = user_groups()
    if not groups:
        pytest.skip("this user has no groups")
    group = groups[0] if mapping == "own group responder" else "llmdeck-matrix-nobody"
    role = "responder" if mapping == "own group responder" else "admin"
    world.write_config(role=None)
    roles = f'[actions.roles]\n"group:{group}" = "{role}"\n'
    text = world.config_file.read_text().replace("[[actions.litellm]]", f"{roles}\n[[actions.litellm]]")
    world.config_file.write_text(text)

    run = world.cli("runbook", "apply", THROTTLE, "--param", f"team_id={TEAM}", "--param", "tpm_limit=5",
                    "--confirm", TEAM, "--json")

    if mapping == "own group responder":
        assert _json(run)["outcome"]["status"] == "applied", run.said()
        assert_sent_once(world, origin="cli")
    else:
        assert _json(run)["outcome"]["status"] == "refused", run.said()
        assert_nothing_sent(world, "refused", origin="cli")


# ---- the templated HTTP request and the allowlisted command, through the CLI ---------------


@pytest.mark.parametrize("guard", [*CLI_GUARDS, "control"])
def test_cli_http_request_action(guard: str, world: ActionWorld) -> None:
    """The built-in feature-flag example (http.request) against H's recording document store."""
    with HttpActionServer() as flags:
        flags.docs["/flags/new-checkout"] = {"enabled": False}
        spec = CLI_GUARDS.get(guard, CONTROL)
        world.write_config(role=spec.get("role", "admin"), prod=spec.get("prod", False),
                           extra=f'\n[[actions.http]]\nname = "flags"\nurl = "{flags.url}"\n')
        typed = spec.get("confirm", TEAM)
        confirm = [] if typed is None else ["--confirm", "new-checkout" if typed == TEAM else typed]
        run = world.cli(*spec.get("flags", []), "runbook", "apply", "feature-flag", "--param",
                        "flag=new-checkout", "--param", "enabled=true", *spec.get("args", []), *confirm,
                        "--json", env=spec.get("env"))
        sent = flags.mutating()
        doc_after = flags.docs["/flags/new-checkout"]
    assert _json(run)["outcome"]["status"] == spec["status"], run.said()
    records = [(r.kind, r.status) for r in world.audit()]
    if guard == "control":
        [put] = sent
        assert put.method == "PUT" and put.headers.get("idempotency-key"), put
        assert doc_after == {"enabled": True}
        assert records == [("intent", ""), ("outcome", "applied")], records
    else:
        assert sent == [] and doc_after == {"enabled": False}, run.said()
        assert records == [("event", spec["status"])], records


def fake_kubectl(directory: Path) -> Path:
    """A `kubectl` on PATH that appends its argument list to a log: what ran, and how often."""
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "kubectl.log"
    script = directory / "kubectl"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log}"\necho "deployment.apps/web rolled back"\n')
    script.chmod(0o755)
    return log


@pytest.mark.parametrize("guard", [*CLI_GUARDS, "shell off", "control"])
def test_cli_shell_action(guard: str, world: ActionWorld, tmp_path: Path) -> None:
    """The built-in rollout-undo example (shell.exec, dangerous, admin) with a recording kubectl."""
    log = fake_kubectl(tmp_path / "bin")
    spec = CLI_GUARDS.get(guard, CONTROL)
    enabled = "false" if guard == "shell off" else "true"
    shell = f'\n[actions.shell]\nenabled = {enabled}\nallow = [["kubectl", "rollout", "undo"]]\n'
    world.write_config(role=spec.get("role", "admin"), prod=spec.get("prod", False), extra=shell)
    typed = spec.get("confirm", TEAM)
    confirm = [] if typed is None else ["--confirm", "web" if typed == TEAM else typed]
    env = {**spec.get("env", {}), "PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"}

    run = world.cli(*spec.get("flags", []), "runbook", "apply", "rollout-undo", "--param", "deployment=web",
                    *spec.get("args", []), *confirm, "--json", env=env)

    ran = log.read_text().splitlines() if log.exists() else []
    records = [(r.kind, r.status) for r in world.audit()]
    if guard == "control":
        assert ran == ["rollout undo deployment/web --namespace default"], run.said()
        assert _json(run)["outcome"]["sent"] == 1
        assert [k for k, _ in records] == ["intent", "outcome"], records
    elif guard == "shell off":
        assert ran == [] and run.code == 1 and "shell" in run.err, run.said()
    else:
        assert ran == [], run.said()
        assert _json(run)["outcome"]["status"] == spec["status"], run.said()
        assert records == [("event", spec["status"])], records


def test_cli_unknown_outcome_on_a_hex_model_id_can_be_settled(world: ActionWorld) -> None:
    """Real LiteLLM deployment ids are 64-hex sha256 strings, which the journal's redaction takes
    for secrets. An unknown outcome on such a deployment (the answer lost after it took) must
    still be settled by `runbook verify`, or the target stays locked for every later action."""
    model_id = "9f2c" * 16
    world.server.admin.add_deployment("gpt-4o", {"model": "openai/gpt-4o"}, model_id=model_id)
    params = ["--param", f"model_id={model_id}", "--param", 'litellm_params={"model": "openai/gpt-4o-mini"}']
    world.server.drop_next()
    lost = world.cli("runbook", "apply", "rollback-model", *params, "--confirm", model_id, "--json")
    assert _json(lost)["outcome"]["status"] == "unknown", lost.said()
    action_id = _json(lost)["outcome"]["action_id"]

    verified = world.cli("runbook", "verify", action_id, "--json")

    assert verified.code == 0 and _json(verified)["outcome"]["status"] == "applied", verified.said()
    assert world.cli("runbook", "verify").code == 0
    again = world.cli("runbook", "plan", "rollback-model", *params[:2], "--param",
                      'litellm_params={"model": "openai/gpt-4o"}')
    assert again.code == 0 and "unknown outcome" not in again.out, again.said()
    assert len(world.mutating()) == 1
