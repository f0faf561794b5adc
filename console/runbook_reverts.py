"""Time-box reverts and unknown outcomes: the desk's work that outlives one process.

Split from `console.runbooks` (the choke point itself). A revert is planned like an undo
and sent through `ActionDesk.apply` with origin "revert", so read-only mode and roles hold
for it exactly as for a key press; one that cannot run keeps its pending row and the
reason, shown by `ActionDesk.pending_reverts`, and an audit event says so. An unknown
outcome (crash or timeout after sending) is settled only by reading the state back.
"""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from console.action_checks import mismatch
from console.action_store import UNKNOWN_STATUSES, ActionRecord, PendingRevert
from console.action_types import (
    ROLE_ORDER,
    ActionError,
    Adapter,
    Confirmation,
    Origin,
    Outcome,
    OutcomeStatus,
    Plan,
    jsonable,
)
from console.runbook_files import MASK, ActionSpec

if TYPE_CHECKING:
    from console.audit import AuditRecord
    from console.runbooks import ActionDesk

STALE_CLAIM = timedelta(minutes=15)
"""A revert another process took this long ago and never finished (it died) may be taken again;
if that process sent it, its action row is "sent" and the claim refuses (verify first)."""


async def run_due_reverts(desk: ActionDesk) -> list[Outcome]:
    """Every due revert, each through `apply`; failures stay pending with their reason."""
    outcomes = []
    for pending in desk.store.pending_reverts(due_by=desk.clock()):
        if _still_blocked(desk, pending):
            continue  # refused (and audited) before for the same reason: no GETs, no event every check
        claimed, _ = desk.store.claim_revert(pending.action_id, desk.clock(), STALE_CLAIM)
        if not claimed:  # done meanwhile, another process runs it, or an earlier try is unknown
            continue
        try:
            plan = await desk.undo(pending.action_id, origin="revert")
        except Exception as exc:  # noqa: BLE001 - kept, with why, for the operator to see
            _failed(desk, pending, f"cannot plan the revert: {exc}")
            continue
        if not plan.diff and desk.readable(plan):
            desk.store.revert_done(pending.action_id, "", desk.clock(),
                                   "already back to the state before: nothing sent")
            outcomes.append(Outcome(plan, "refused", 0, "nothing to revert: already as before"))
            continue
        try:
            outcome = await desk.apply(plan, Confirmation(plan.target))
        except BaseException as exc:
            _failed(desk, pending, f"the revert stopped: {exc or type(exc).__name__}")
            raise
        if outcome.status not in ("applied", "unverified"):
            _failed(desk, pending, f"{outcome.status}: {outcome.detail}", audited=True)
        outcomes.append(outcome)
    return outcomes


def _still_blocked(desk: ActionDesk, pending: PendingRevert) -> bool:
    """Whether the last try was refused by the same guard that would refuse it now."""
    if not pending.reason:
        return False
    mode, spec = desk.mode, desk.actions_by_name().get(pending.action)
    if mode.read_only:
        return f"read-only: {mode.reason}" in pending.reason
    if mode.dry_run:
        return pending.reason.startswith("dry_run:")
    if spec is not None and ROLE_ORDER[mode.role] < ROLE_ORDER[spec.role]:
        return f"has role {mode.role}; {spec.name} needs {spec.role}" in pending.reason
    return False


def _failed(desk: ActionDesk, pending: PendingRevert, reason: str, *, audited: bool = False) -> None:
    desk.store.revert_failed(pending.action_id, reason, desk.clock())
    if audited:
        return
    try:
        desk.audit.event(pending.action, status="failed", detail=f"revert of {pending.action_id}: {reason}",
                         origin="revert", target=pending.target, gateway=pending.gateway)
    except OSError:
        pass  # the reason stays on the pending revert, shown by pending_reverts()


def unclaimed_intents(desk: ActionDesk) -> list[AuditRecord]:
    """Runbook intents in the journal with no outcome and no action row: the process stopped
    after the intent and before the claim, so nothing was sent (requests leave only after it)."""
    known = set(desk.actions_by_name())
    return [r for r in desk.audit.unknown_outcomes()
            if r.action in known and desk.store.get(r.action_id) is None]


def _settle_unclaimed(desk: ActionDesk, action_id: str) -> Outcome | None:
    found = [r for r in unclaimed_intents(desk) if r.action_id.startswith(action_id)]
    if len(found) != 1:
        return None
    intent, user, now = found[0], desk.mode.user, desk.clock()
    detail = ("never sent: the process stopped after the audit intent and before claiming the action"
              " (requests are sent only after the claim)")
    desk.audit.outcome(intent.action_id, action=intent.action, status="failed", detail=detail,
                       resolved_by=user)
    spec = desk.spec(intent.action)
    plan = Plan(uuid.uuid4().hex, intent.action, f"verify {intent.action_id}", spec.adapter,
                jsonable(intent.params), intent.get("target"), intent.get("gateway"), spec.dangerous,
                spec.role, None, "verify", intent.get("incident_id") or None, (), (), "{}", "{}",
                intent.get("pre_state_hash"), intent.get("idempotency_key"), now)
    return Outcome(plan, "failed", 0, detail, action_id=intent.action_id)


IN_FLIGHT_MARGIN_SECONDS = 30.0
"""Added to the gateway's timeout: the read-backs and the outcome's writes after the send."""


def _send_timeout(desk: ActionDesk, record: ActionRecord) -> float:
    settings = desk.config.actions
    timeouts = {g.name: g.timeout_seconds for g in settings.litellm}
    timeouts.update({g.name: g.timeout_seconds for g in settings.http})
    if record.gateway in timeouts:
        return float(timeouts[record.gateway])
    return float(settings.shell.timeout_seconds) if not record.gateway else 10.0


def in_flight(desk: ActionDesk, record: ActionRecord) -> str:
    """Why a "sent" row may still be on the wire (its sender alive, younger than its gateway
    timeout + margin), or "" when its outcome is truly unknown. Reading it back now could
    record "failed" before the request lands, and the sender would then write a second outcome."""
    if record.status != "sent":
        return ""
    sender = desk.store.sender(record.action_id)
    if sender is None:
        return ""
    pid, host, started = sender
    left = _send_timeout(desk, record) + IN_FLIGHT_MARGIN_SECONDS \
        - (desk.clock() - started).total_seconds()
    if left <= 0:
        return ""
    if host == socket.gethostname():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return ""  # the sender died: the outcome is unknown
        except PermissionError:
            pass  # alive, another user's
    return f"still being sent by pid {pid} on {host}; try again in {left:.0f}s"


async def resolve_unknown(desk: ActionDesk, action_id: str) -> Outcome:
    """Read the state back for an action whose outcome is unknown, and record what it shows."""
    if desk.store.get(action_id.strip()) is None:
        settled = _settle_unclaimed(desk, action_id.strip())
        if settled is not None:
            return settled
    record = desk.record(action_id)
    if record.status not in UNKNOWN_STATUSES:
        raise ActionError(f"action {record.action_id} is not unknown: it was {record.status}")
    busy = in_flight(desk, record)
    if busy:
        raise ActionError(f"action {record.action_id} is {busy}")
    spec = desk.spec(record.action)
    adapter = desk.adapter_for(spec, record.gateway)
    if not adapter.readable:
        raise ActionError(f"{spec.name} has no read-back: check {record.target} by hand")
    if any(v == MASK for v in record.params.values()):
        raise ActionError(f"action {record.action_id}: reading it back needs a secret param llmdeck"
                          " never stores")
    current = await desk.read_state(spec, adapter, record.params, record.target, record.gateway)
    problem = mismatch(current, record.desired)
    status: OutcomeStatus = "failed" if problem else "applied"
    detail = "verified by reading back: " + (f"it did not take ({problem})" if problem else "it took")
    user = desk.mode.user
    desk.audit.outcome(record.action_id, action=record.action, status=status, detail=detail,
                       resolved_by=user)
    now = desk.clock()
    desk.store.finish(record.action_id, status, detail, now)
    due = None
    if status == "applied" and record.time_box is not None and not record.revert_of:
        due = record.created_at + record.time_box
        desk.store.add_revert(record.action_id, due)
    if record.revert_of:  # a revert or undo: if it took, the time box's revert is done
        if status == "applied":
            desk.store.revert_done(record.revert_of, record.action_id, now, f"verified {record.action_id}")
        else:
            desk.store.revert_failed(record.revert_of, f"revert {record.action_id} did not take", now)
    plan = Plan(uuid.uuid4().hex, record.action, f"verify {record.action_id}", record.adapter,
                record.params_json, record.target, record.gateway, spec.dangerous, spec.role,
                record.time_box, "verify", record.incident_id, (), (), record.before_json,
                record.desired_json, hashlib.sha256(record.before_json.encode()).hexdigest(),
                record.idempotency_key, now)
    desk.note(plan, "action_outcome", f"{record.action} ({record.action_id}): {detail}", user,
              record.action_id, status=status)
    return Outcome(plan, status, 0, detail, action_id=record.action_id, revert_due=due)


ROLLBACK_PARAM = {"litellm.model_params": "litellm_params"}
"""Adapters whose named param, when not given, comes from llmdeck's own last change to the
target (rollback-model: the previous litellm_params, captured before that change)."""


def rollback_values(desk: ActionDesk, spec: ActionSpec, adapter: Adapter, gateway: str,
                    values: dict[str, Any]) -> tuple[dict[str, Any], str, str]:
    """(values, revert_of, title): for a rollback action given no target values, the params that put
    back the state before llmdeck's own last change to the target; else `values` unchanged."""
    rollback = ROLLBACK_PARAM.get(spec.adapter)
    if not rollback or spec.param(rollback) is None or values.get(rollback) is not None:
        return values, "", spec.title
    target = desk.target_of(spec, adapter, values)
    last = desk.store.last_change(spec.adapter, gateway, target)
    restore = None if last is None else adapter.restore_params(last.params, last.before)
    if last is None or restore is None:
        raise ActionError(f"{spec.name}: no {rollback} given and llmdeck has no change of its own"
                          f" to {target} on {gateway} to roll back; give --param {rollback}=...")
    when = f"{last.created_at:%Y-%m-%d %H:%M}Z"
    return restore, last.action_id, f"{spec.title} (to before {last.action_id}, {when})"


async def undo_plan(desk: ActionDesk, action_id: str, origin: Origin) -> Plan:
    """A plan that puts back the state captured before action `action_id`, through the same adapter."""
    record = desk.record(action_id)
    if record.status in UNKNOWN_STATUSES:
        raise ActionError(f"action {record.action_id}: outcome unknown; run `llmdeck runbook verify"
                          f" {record.action_id}` first")
    if record.status not in ("applied", "unverified", "failed"):
        raise ActionError(f"action {record.action_id} was {record.status}: nothing to undo")
    spec = desk.spec(record.action)
    if spec.revert == "none":
        raise ActionError(f"{spec.name} cannot be undone (revert = \"none\" at {spec.where})")
    adapter = desk.adapter_for(spec, record.gateway)
    restore = adapter.restore_params(record.params, record.before)
    if restore is None:
        raise ActionError(f"{spec.name}: its adapter {spec.adapter} cannot revert it")
    hidden = sorted(k for k, v in restore.items() if v == MASK)
    if hidden:
        raise ActionError(f"action {record.action_id}: undoing needs {', '.join(hidden)}, a secret"
                          " llmdeck never stores; run the action again with it")
    verb = "Revert" if origin == "revert" else "Undo"
    return await desk.build_plan(spec, restore, adapter, record.gateway, origin=origin,
                                 incident_id=record.incident_id, revert_of=record.action_id,
                                 title=f"{verb} {record.action} on {record.target} ({record.action_id})",
                                 time_box=None)
