"""The one way a silence is created or expired: plan -> confirm -> send -> verify -> record.

`plan_create` / `plan_expire` only read (GETs): they build a `SilencePlan` holding the
exact request (secret headers masked) and the alerts it will silence or release.
`apply` is the choke point every entry path (CLI, console, a later runbook) goes
through; it sends nothing in read-only mode (`LLMDECK_READONLY=1`, read at call time,
or the caller's flag), in a dry run, or unless `confirm(plan)` returns True. Each attempt
lands in the audit journal (`console.audit`): an intent synced before the request, an
outcome after it, one event for an attempt that sent nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from connectors.alertmanager import AlertmanagerClient, silence_body
from connectors.http import SourceError
from console.action_types import Origin
from console.alerts import ActiveAlert, Silence, SilenceMatcher
from console.audit import AuditError, AuditJournal
from console.operator import user_name
from console.timeutil import utc_now

READONLY_ENV = "LLMDECK_READONLY"
_FALSE = frozenset({"", "0", "false", "no", "off"})

SilenceAction = Literal["create", "expire"]
OutcomeStatus = Literal["applied", "unverified", "failed", "dry_run", "refused", "cancelled"]


class PlanError(Exception):
    """A silence action that cannot be planned (no such silence, already expired...)."""


def read_only_mode(flag: bool = False, environ: Mapping[str, str] | None = None) -> bool:
    """True when the caller asks for it or `LLMDECK_READONLY` is set to anything but 0/false/no/off."""
    env = os.environ if environ is None else environ
    return flag or env.get(READONLY_ENV, "").strip().lower() not in _FALSE


@dataclass(frozen=True)
class SilencePlan:
    """What one silence action will do, shown to the operator before anything is sent."""

    source: str
    action: SilenceAction
    request: str
    """The exact HTTP request as text (method, URL, headers with secrets masked, body)."""
    affects: tuple[ActiveAlert, ...]
    """create: the alerts it will silence now; expire: the alerts it silences now."""
    ends: datetime
    """create: when the silence ends; expire: now (it ends when sent)."""
    matchers: tuple[SilenceMatcher, ...]
    comment: str
    created_by: str
    silence_id: str = ""
    """expire: the silence to expire."""
    body: str = ""
    """create: the JSON body, as text so the plan stays immutable."""

    @property
    def target(self) -> str:
        """What the action is about: the matchers (create) or the silence id (expire)."""
        if self.action == "expire":
            return self.silence_id
        return " ".join(str(m) for m in self.matchers)

    def pre_state_hash(self) -> str:
        """sha256 of what the plan read: the silence and the alerts it affects now."""
        seen = {"silence_id": self.silence_id, "matchers": [str(m) for m in self.matchers],
                "affects": sorted(a.fingerprint for a in self.affects)}
        return hashlib.sha256(json.dumps(seen, sort_keys=True).encode()).hexdigest()

    def params(self) -> dict[str, object]:
        """What the audit journal keeps (no headers, so no secrets; redacted again there)."""
        ends = self.ends.isoformat(timespec="milliseconds") + "Z"
        return {"matchers": [str(m) for m in self.matchers], "ends": ends,
                "comment": self.comment, "created_by": self.created_by, "silence_id": self.silence_id,
                "affects": len(self.affects)}


@dataclass(frozen=True)
class SilenceOutcome:
    """What `apply` did: whether anything was sent, and what the server shows afterwards."""

    plan: SilencePlan
    status: OutcomeStatus
    sent: bool
    detail: str
    silence_id: str = ""
    suppressed: tuple[str, ...] = ()
    """Fingerprints of matching alerts seen suppressed by the silence after a create."""

    @property
    def ok(self) -> bool:
        return self.status in ("applied", "dry_run")


async def plan_create(client: AlertmanagerClient, matchers: Sequence[SilenceMatcher], length: timedelta,
                      comment: str, *, created_by: str | None = None,
                      now: datetime | None = None) -> SilencePlan:
    """A plan to silence `matchers` for `length` from now; reads the alerts they match."""
    starts = now or utc_now()
    ends = starts + length
    author = created_by or user_name()
    body = silence_body(matchers, starts, ends, author, comment)
    affects = await client.alerts(matchers)
    return SilencePlan(source=client.name, action="create", request=client.describe_create(body),
                       affects=affects, ends=ends, matchers=tuple(matchers), comment=comment,
                       created_by=author, body=json.dumps(body))


async def plan_expire(client: AlertmanagerClient, silence_id: str, *,
                      now: datetime | None = None) -> SilencePlan:
    """A plan to expire silence `silence_id`; reads it and the alerts it silences now."""
    try:
        current = await client.silence(silence_id)
    except SourceError as err:
        if err.status == 404:
            raise PlanError(f"{client.name}: no silence with id {silence_id!r}") from None
        raise
    if current.state == "expired":
        ended = f"{current.ends:%Y-%m-%d %H:%M}Z"
        raise PlanError(f"{client.name}: silence {silence_id} already expired at {ended}")
    affects = tuple(a for a in await client.alerts() if silence_id in a.silenced_by)
    return SilencePlan(source=client.name, action="expire", request=client.describe_expire(silence_id),
                       affects=affects, ends=now or utc_now(), matchers=current.matchers,
                       comment=current.comment, created_by=current.created_by, silence_id=silence_id)


async def apply(plan: SilencePlan, client: AlertmanagerClient, *, confirm: Callable[[SilencePlan], bool],
                dry_run: bool, read_only: bool = False, audit: AuditJournal | None = None,
                origin: Origin = "cli", environ: Mapping[str, str] | None = None,
                sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> SilenceOutcome:
    """Send the plan's one mutating request if allowed and confirmed, verify it, audit it.

    The intent is in the journal (synced) before the request leaves; if it cannot be written
    nothing is sent. `origin` says which entry path asked (cli, key...)."""
    if plan.source != client.name:
        raise PlanError(f"plan is for source {plan.source!r}, client is {client.name!r}")
    audit = audit or AuditJournal()
    action = f"silence.{plan.action}"
    refused = f"read-only mode ({READONLY_ENV}=1 or --read-only)"
    if read_only_mode(read_only, environ):
        return _not_sent(plan, audit, action, origin, "refused", refused)
    if dry_run:
        return _not_sent(plan, audit, action, origin, "dry_run", "dry run")
    if not confirm(plan):
        return _not_sent(plan, audit, action, origin, "cancelled", "not confirmed")
    if read_only_mode(read_only, environ):  # switched on while the operator was reading the plan
        return _not_sent(plan, audit, action, origin, "refused", refused)
    try:
        action_id = audit.intent(action=action, target=plan.target, params=plan.params(),
                                 pre_state_hash=plan.pre_state_hash(), idempotency_key="",
                                 origin=origin, gateway=plan.source)
    except AuditError as exc:
        return SilenceOutcome(plan, "failed", sent=False, detail=f"{exc}: nothing sent")
    outcome = await _send_and_verify(plan, client, sleep)
    try:
        audit.outcome(action_id, action=action, status=outcome.status, detail=outcome.detail,
                      extra={"silence_id": outcome.silence_id, "sent": outcome.sent})
    except AuditError as exc:
        return SilenceOutcome(plan, outcome.status, outcome.sent, silence_id=outcome.silence_id,
                              suppressed=outcome.suppressed,
                              detail=f"{outcome.detail}; the outcome could not be recorded ({exc})")
    return outcome


def _not_sent(plan: SilencePlan, audit: AuditJournal, action: str, origin: Origin,
              status: OutcomeStatus, detail: str) -> SilenceOutcome:
    """An attempt that sent nothing, recorded as an audit event (said if it cannot be)."""
    said = "dry run: nothing sent" if status == "dry_run" else f"{detail}: nothing sent"
    try:
        audit.event(action, status=status, detail=detail, origin=origin, target=plan.target,
                    params=plan.params(), gateway=plan.source)
    except AuditError as exc:
        said += f" (and the attempt could not be recorded: {exc})"
    return SilenceOutcome(plan, status, sent=False, detail=said)


async def _send_and_verify(plan: SilencePlan, client: AlertmanagerClient,
                           sleep: Callable[[float], Awaitable[None]]) -> SilenceOutcome:
    silence_id = plan.silence_id
    try:
        if plan.action == "create":
            silence_id = await client.create_silence(json.loads(plan.body))
        else:
            await client.expire_silence(silence_id)
    except SourceError as err:
        unsure = err.kind in ("timeout", "connect") and err.status is None
        hint = "; it may or may not have been applied: check `llmdeck silences`" if unsure else ""
        return SilenceOutcome(plan, "failed", sent=True, detail=f"{err}{hint}", silence_id=silence_id)
    try:
        problem, suppressed = await _verify(plan, client, silence_id, sleep)
    except SourceError as err:
        problem, suppressed = f"could not read it back: {err}", ()
    if problem:
        return SilenceOutcome(plan, "unverified", sent=True, silence_id=silence_id, suppressed=suppressed,
                              detail=f"sent, but not verified: {problem}")
    if plan.action == "create":
        done = f"created and active, {len(suppressed)} matching alert(s) suppressed"
    else:
        done = "expired"
    return SilenceOutcome(plan, "applied", sent=True, silence_id=silence_id, suppressed=suppressed,
                          detail=f"silence {silence_id} {done}")


async def _verify(plan: SilencePlan, client: AlertmanagerClient, silence_id: str,
                  sleep: Callable[[float], Awaitable[None]], attempts: int = 10,
                  pause: float = 0.2) -> tuple[str, tuple[str, ...]]:
    """('', suppressed fingerprints) when the server shows the change, else (what is wrong, ...)."""
    problem, suppressed = "", tuple[str, ...]()
    for attempt in range(attempts):
        if attempt:
            await sleep(pause)
        silence: Silence = await client.silence(silence_id)
        want = "active" if plan.action == "create" else "expired"
        if silence.state != want:
            problem = f"silence {silence_id} is {silence.state}, expected {want}"
            continue
        if plan.action == "create":
            alerts = await client.alerts(plan.matchers)
            suppressed = tuple(a.fingerprint for a in alerts if silence_id in a.silenced_by)
            loud = [a for a in alerts if silence_id not in a.silenced_by]
            problem = f"{len(loud)} matching alert(s) not yet silenced by it" if loud else ""
        else:
            before = {a.fingerprint for a in plan.affects}
            now = await client.alerts()
            still = [a for a in now if a.fingerprint in before and silence_id in a.silenced_by]
            problem = f"{len(still)} alert(s) still silenced by it" if still else ""
        if not problem:
            return "", suppressed
    return problem, suppressed
