"""The one way a silence is created or expired: plan -> confirm -> send -> verify -> record.

`plan_create` / `plan_expire` only read (GETs): they build a `SilencePlan` holding the
exact request (secret headers masked) and the alerts it will silence or release.
`apply` hands the plan to the one choke point, `console.runbooks.ActionDesk.apply`, as
the built-in action `silence.create` or `silence.expire` (adapter `alertmanager.silence`
over the caller's own client): the desk refuses in read-only mode (`LLMDECK_READONLY=1`,
read at call time, the caller's flag, a prod environment without `--write`), in a dry
run, or unless `confirm(plan)` returns True; it writes the audit intent (synced) before
the request, the outcome after it, one event for an attempt that sent nothing, and keeps
the action in the state file (so `llmdeck runbook undo` can expire a silence it made).
The desk re-plans at apply with the shown plan's own start time and sends only if its
request is the one shown (same method, path and body), so what the operator read is what
goes out. Read-only is decided in one place, the desk (`send_mode` only asks it, for the
prompt and the dialog's badge).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from connectors.alertmanager import SILENCES_PATH, AlertmanagerClient, silence_body, silence_path
from connectors.http import SourceError
from console.action_types import Origin
from console.alerts import ActiveAlert, SilenceMatcher
from console.operator import user_name

if TYPE_CHECKING:
    from console.action_checks import ActionMode
    from console.action_types import Plan
    from console.audit import AuditJournal
    from console.config import Config
from console.timeutil import utc_now

SilenceAction = Literal["create", "expire"]
SilenceStatus = Literal["applied", "unverified", "failed", "dry_run", "refused", "cancelled"]
"""The desk's `action_types.OutcomeStatus` without "unknown": a silence whose answer was lost is
"failed" with `UNSURE_HINT` (the CLI's exit code and the dialog's wording predate the desk)."""
UNSURE_HINT = "; it may or may not have been applied: check `llmdeck silences`"


class PlanError(Exception):
    """A silence action that cannot be planned (no such silence, already expired...)."""


def send_mode(config: Config | None = None, *, read_only: bool = False, write: bool = False,
              environ: Mapping[str, str] | None = None) -> ActionMode:
    """Whether the desk would refuse to send now, and why (`LLMDECK_READONLY`, `--read-only`, a
    prod environment without `--write`), by the desk's own rule (`action_checks.read_mode`), so
    the CLI's prompt and the dialog's badge say what the desk will do. Display only: the desk
    decides again at apply."""
    from console.action_checks import read_mode
    from console.operator import user_groups

    if config is None:
        from console.config import Config

        config = Config()
    return read_mode(config.actions, user_name(), user_groups(), write=write, read_only=read_only,
                     dry_run=False, environ=environ)


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

    def params(self) -> dict[str, object]:
        """The plan's parameters as plain data (no headers, so no secrets)."""
        ends = self.ends.isoformat(timespec="milliseconds") + "Z"
        return {"matchers": [str(m) for m in self.matchers], "ends": ends,
                "comment": self.comment, "created_by": self.created_by, "silence_id": self.silence_id,
                "affects": len(self.affects)}


@dataclass(frozen=True)
class SilenceOutcome:
    """What `apply` did: whether anything was sent, and what the server shows afterwards."""

    plan: SilencePlan
    status: SilenceStatus
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
    # Keys sorted as the desk's adapter sends them (PlannedRequest.body_json), so the text shown
    # is the body sent, key for key.
    body = json.loads(json.dumps(silence_body(matchers, starts, ends, author, comment), sort_keys=True))
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
                dry_run: bool, read_only: bool = False, write: bool = False, config: Config | None = None,
                audit: AuditJournal | None = None, origin: Origin = "cli",
                environ: Mapping[str, str] | None = None,
                sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> SilenceOutcome:
    """Hand the plan to the action desk (the one choke point), then say what the server shows.

    `confirm` is asked only when the desk would send (not read-only, not a dry run, the plan
    changes something: an identical active silence is refused as "changes nothing"); its yes
    is the desk's confirmation. `config` supplies [actions] (prod, roles); `write` is `--write`."""
    from console.action_types import ActionError, Confirmation
    from console.silence_desk import silence_desk

    if plan.source != client.name:
        raise PlanError(f"plan is for source {plan.source!r}, client is {client.name!r}")
    starts, ends = _times(plan)
    desk = silence_desk(client, config, read_only=read_only, write=write, dry_run=dry_run, audit=audit,
                        environ=environ, sleep=sleep, created_by=plan.created_by, starts=starts)
    params = ({"matchers": [str(m) for m in plan.matchers],
               "duration": int((ends - starts).total_seconds()), "comment": plan.comment}
              if plan.action == "create" else {"silence_id": plan.silence_id})
    try:
        desk_plan = await desk.plan(f"silence.{plan.action}", params, origin=origin)
    except (ActionError, SourceError) as exc:
        await desk.aclose()
        return SilenceOutcome(plan, "failed", sent=False, detail=f"cannot plan it: {exc}: nothing sent")
    if desk_plan.requests and not _as_shown(plan, desk_plan):
        try:  # the desk journals the abandoned plan as a cancel; nothing is sent
            await desk.apply(desk_plan, None)
        finally:
            await desk.aclose()
        return SilenceOutcome(plan, "failed", sent=False, detail="the request the desk would send is not"
                              " the one shown (the silence changed since it was planned): plan again:"
                              " nothing sent")
    mode = desk.mode
    asked = not (mode.read_only or desk.dry_run or desk_plan.changes_nothing) and confirm(plan)
    try:
        outcome = await desk.apply(desk_plan, Confirmation("yes") if asked else None)
    finally:
        await desk.aclose()
    if outcome.status == "dry_run":
        return SilenceOutcome(plan, "dry_run", sent=False, detail="dry run: nothing sent")
    if not outcome.sent:
        status: SilenceStatus = ("refused" if outcome.status == "refused" else
                                 "cancelled" if outcome.status == "cancelled" else "failed")
        return SilenceOutcome(plan, status, sent=False, detail=outcome.detail)
    before = desk_plan.before.get("silences", []) if isinstance(desk_plan.before, dict) else []
    return await _settled(plan, client, outcome.status, outcome.detail, list(before))


def _times(plan: SilencePlan) -> tuple[datetime, datetime]:
    """The shown body's startsAt / endsAt (an expire: the plan's time twice)."""
    from console.timeutil import naive_utc

    body = json.loads(plan.body) if plan.body else {}
    if not body.get("startsAt") or not body.get("endsAt"):
        return plan.ends, plan.ends
    starts, ends = (naive_utc(datetime.fromisoformat(str(body[k]).replace("Z", "+00:00")))
                    for k in ("startsAt", "endsAt"))
    return starts, ends


def _as_shown(plan: SilencePlan, desk_plan: Plan) -> bool:
    """The desk's requests are the one the operator was shown: method, path and body."""
    sent = [(r.method, r.path, r.body) for r in desk_plan.requests]
    if plan.action == "create":
        return sent == [("POST", SILENCES_PATH, json.loads(plan.body))]
    return sent == [("DELETE", silence_path(plan.silence_id), None)]


async def _settled(plan: SilencePlan, client: AlertmanagerClient, status: str, detail: str,
                   before: list[str]) -> SilenceOutcome:
    """After a send: which silence it made (create) and what the server shows now."""
    silence_id = plan.silence_id
    if status == "failed":  # refused by the server: nothing was made
        return SilenceOutcome(plan, "failed", sent=True, silence_id=silence_id, detail=detail)
    try:
        if plan.action == "create":
            mine = sorted(map(str, plan.matchers))
            new = [s.id for s in await client.silences() if s.state == "active" and s.id not in before
                   and sorted(map(str, s.matchers)) == mine]
            silence_id = new[0] if new else ""
        alerts = await client.alerts(plan.matchers) if plan.action == "create" and silence_id else ()
    except SourceError as exc:
        alerts, detail = (), f"{detail}; could not read it back: {exc}"
    suppressed = tuple(a.fingerprint for a in alerts if silence_id in a.silenced_by)
    if status == "unknown":
        return SilenceOutcome(plan, "failed", sent=True, silence_id=silence_id, detail=detail + UNSURE_HINT)
    if status == "unverified":
        loud = sum(1 for a in alerts if silence_id not in a.silenced_by)
        why = f"{loud} matching alert(s) not yet silenced by it" if loud else detail
        return SilenceOutcome(plan, "unverified", sent=True, silence_id=silence_id, suppressed=suppressed,
                              detail=f"sent, but not verified: {why}")
    done = (f"created and active, {len(suppressed)} matching alert(s) suppressed"
            if plan.action == "create" else "expired")
    return SilenceOutcome(plan, "applied", sent=True, silence_id=silence_id, suppressed=suppressed,
                          detail=f"silence {silence_id} {done}")
