"""The one choke point for every mutating action: plan -> confirm -> apply -> verify -> audit.

Whatever starts an action (a key, the palette, a `:` command, the CLI, a suggestion, an
automatic revert, an undo) it goes through `ActionDesk.apply`, and every guard is checked
there, at the moment of sending, not in the UI: the plan must be one this desk made, not
older than 10 minutes and never applied before (its idempotency key is claimed in SQLite
across processes); read-only (LLMDECK_READONLY, --read-only, a prod environment without
--write), dry-run, the operator's role and the typed confirmation each send nothing and are
audited as events. Past them, the audit intent is fsynced, the action is claimed "sent",
each planned request is handed to its adapter once (the desk never retries; an adapter
retries only a request idempotent by nature, e.g. the silence DELETE), the state is read
back and compared, and the outcome goes to the journal, the store and the incident's
timeline; a time-boxed action — or the part of one that took before a request failed —
leaves a persisted revert that `run_due_reverts` performs, after a restart too.
(Lessons from RELIABILITY.md §4: the bugs of trusted runbook tools came from side paths.)
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from console import adapters
from console.action_checks import (
    ActionMode,
    Timeline,
    confirmed,
    diff_lines,
    failure_text,
    gateway_for,
    matches,
    mismatch,
    plan_notes,
    read_mode,
    request_key,
    secret_values,
    with_real_headers,
)
from console.action_store import ActionRecord, ActionStore, AlreadySent, PendingRevert
from console.action_types import (
    ROLE_ORDER,
    ActionError,
    Adapter,
    Confirmation,
    Origin,
    Outcome,
    OutcomeStatus,
    Plan,
    SendError,
    jsonable,
)
from console.audit import AuditJournal, AuditRecord
from console.operator import user_groups, user_name
from console.runbook_files import ActionSpec, format_duration, load_catalog, user_runbook_dir
from console.state_db import StateError
from console.timeutil import utc_now

if TYPE_CHECKING:
    import httpx

    from console.config import Config

PLAN_TTL = timedelta(minutes=10)
VERIFY_TRIES = 5
VERIFY_PAUSE_SECONDS = 0.3
ANSWER_SHOWN = 500
"""Characters of each request's answer (adapters redact and cap it) kept in the outcome detail."""
__all__ = ["ActionDesk", "ActionMode", "PendingRevert", "PLAN_TTL"]


@dataclass(frozen=True)
class _Planned:
    """What the desk keeps of a plan it made: the real (unmasked) values and the adapter."""

    plan: Plan
    spec: ActionSpec
    values: dict[str, Any]
    adapter: Adapter


class ActionDesk:
    """Plans actions and is the only caller of `Adapter.send`."""

    def __init__(self, config: Config, *, write: bool = False, read_only: bool = False,
                 dry_run: bool = False, audit: AuditJournal | None = None,
                 store: ActionStore | None = None, incidents: Timeline | None = None,
                 environ: Mapping[str, str] | None = None, clock: Callable[[], datetime] = utc_now,
                 transport: httpx.AsyncBaseTransport | None = None,
                 catalog: Mapping[str, ActionSpec] | None = None,
                 secret: Callable[[str], str] | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.config = config
        self.dry_run = dry_run
        self._write, self._read_only, self._environ = write, read_only, environ
        self.audit = audit or AuditJournal()
        self.store = store or ActionStore()
        self._incidents = incidents
        self.clock, self._sleep, self._transport = clock, sleep, transport
        if secret is None:
            from console.secrets import header_secret

            secret = header_secret
        self._secret = secret
        self._catalog = dict(load_catalog(user_runbook_dir(config.actions.runbook_dir))
                             if catalog is None else catalog)
        # Actions made elsewhere through a desk (silences.apply's silence.create/expire): not
        # offered, but known, so `runbook verify` and `runbook undo` can settle and undo them.
        self._hidden: dict[str, ActionSpec] = {}
        if config.sources.alertmanager:
            from console.silence_desk import silence_catalog

            self._hidden = {k: v for k, v in silence_catalog("").items() if k not in self._catalog}
        self._user, self._groups = user_name(), user_groups()
        self._plans: dict[str, _Planned] = {}
        self._adapters: dict[tuple[str, str, str], Adapter] = {}

    # ---- what the desk offers -----------------------------------------------------------

    @property
    def mode(self) -> ActionMode:
        """Read-only (and why), dry-run, the operator's role; read again at every apply."""
        return read_mode(self.config.actions, self._user, self._groups, write=self._write,
                         read_only=self._read_only, dry_run=self.dry_run, environ=self._environ)

    def actions(self) -> list[ActionSpec]:
        return list(self._catalog.values())

    def actions_by_name(self) -> dict[str, ActionSpec]:
        """Every action the desk knows, offered or not (see `_hidden`)."""
        return {**self._hidden, **self._catalog}

    def spec(self, action: str) -> ActionSpec:
        found = self._catalog.get(action) or self._hidden.get(action)
        if found is None:
            raise ActionError(f"unknown action {action!r} (known: {', '.join(self._catalog) or 'none'})")
        return found

    def pending_reverts(self) -> list[PendingRevert]:
        return self.store.pending_reverts()

    def unknown_outcomes(self) -> list[ActionRecord]:
        """Actions sent with no known outcome (see also `unclaimed_intents`); not those a live
        process is still sending (`in_flight`)."""
        from console.runbook_reverts import in_flight

        return [r for r in self.store.unknown() if not in_flight(self, r)]

    def unclaimed_intents(self) -> list[AuditRecord]:
        """Journal intents of runbook actions that never reached the store: surely not sent."""
        from console.runbook_reverts import unclaimed_intents

        return unclaimed_intents(self)

    # ---- plan -----------------------------------------------------------------------------

    async def plan(self, action: str, params: Mapping[str, Any], *, origin: Origin,
                   incident_id: str | None = None) -> Plan:
        """Read the current state (GETs only) and say exactly what would be sent."""
        spec = self.spec(action)
        values = spec.validate(params)
        if incident_id is not None:
            incident_id = self._incident(incident_id)
        gateway = gateway_for(self.config.actions, spec)
        adapter = self.adapter_for(spec, gateway)
        from console.runbook_reverts import rollback_values

        values, revert_of, title = rollback_values(self, spec, adapter, gateway, values)
        return await self.build_plan(spec, values, adapter, gateway, origin=origin, incident_id=incident_id,
                                     revert_of=revert_of, title=title, time_box=spec.time_box_for(values))

    async def undo(self, action_id: str, *, origin: Origin = "undo") -> Plan:
        """A plan that puts back the state captured before action `action_id` (same adapter)."""
        from console.runbook_reverts import undo_plan

        return await undo_plan(self, action_id, origin)

    async def build_plan(self, spec: ActionSpec, values: dict[str, Any], adapter: Adapter, gateway: str, *,
                         origin: Origin, incident_id: str | None, revert_of: str, title: str,
                         time_box: timedelta | None) -> Plan:
        """Read (GETs only), compute the desired state and the exact requests; remember the plan."""
        target = self.target_of(spec, adapter, values)
        current = await self.read_state(spec, adapter, values, target, gateway) if adapter.readable else {}
        desired = adapter.desired(values, current)
        now, mode, key = self.clock(), self.mode, str(uuid.uuid4())
        requests = with_real_headers(adapter.requests(values, current, desired), key, mode.user)
        notes = plan_notes(spec, mode, now, target=target, readable=adapter.readable,
                           unchanged=adapter.readable and matches(current, desired), time_box=time_box,
                           revert_of=revert_of, unsure=self.store.unknown_on(spec.adapter, gateway, target))
        hidden = secret_values(spec, values)
        before_json = jsonable(current)
        diff = () if adapter.readable and matches(current, desired) else \
            diff_lines(current if adapter.readable else None, desired, hidden)
        plan = Plan(
            plan_id=uuid.uuid4().hex, action=spec.name, title=title, adapter=spec.adapter,
            params_json=jsonable(spec.masked(values)), target=target, gateway=gateway,
            dangerous=spec.dangerous, role=spec.role, time_box=time_box, origin=origin,
            incident_id=incident_id, diff=diff, requests=requests, before_json=before_json,
            desired_json=jsonable(desired),
            pre_state_hash=hashlib.sha256(before_json.encode()).hexdigest(),
            idempotency_key=key, created_at=now, notes=notes, revert_of=revert_of)
        self._plans = {k: v for k, v in self._plans.items() if now - v.plan.created_at <= PLAN_TTL}
        self._plans[plan.plan_id] = _Planned(plan, spec, values, adapter)
        return plan

    # ---- apply ----------------------------------------------------------------------------

    async def apply(self, plan: Plan, confirmation: Confirmation | None) -> Outcome:
        """Send `plan` if, and only if, every guard passes now; see the module docstring."""
        entry = self._plans.get(plan.plan_id)
        if entry is None or entry.plan != plan:
            return self._not_sent(plan, "refused", "not a plan this desk made: plan it again")
        if self.clock() - plan.created_at > PLAN_TTL:
            return self._not_sent(plan, "refused", f"the plan is older than {format_duration(PLAN_TTL)}:"
                                  " plan it again to read the current state")
        try:
            used = self.store.used_key(plan.idempotency_key)
            unsure = self.store.unknown_on(plan.adapter, plan.gateway, plan.target)
        except StateError as exc:
            return self._not_sent(plan, "failed", f"cannot check whether it was sent before: {exc}")
        if used is not None:
            return self._not_sent(plan, "refused", f"already applied as action {used.action_id}"
                                  f" ({used.status}): not sent twice")
        if unsure is not None:  # a retry of a request that may still land would send it twice
            return self._not_sent(plan, "refused", f"action {unsure.action_id} on {plan.target} has an"
                                  f" unknown outcome: run `llmdeck runbook verify {unsure.action_id}` first")
        if entry.adapter.readable and not plan.diff:
            return self._not_sent(plan, "refused", "changes nothing: the state already is what it sets")
        mode = self.mode
        if mode.read_only:
            return self._not_sent(plan, "refused", f"read-only: {mode.reason}")
        if self.dry_run:
            return self._not_sent(plan, "dry_run", "dry run")
        if ROLE_ORDER[mode.role] < ROLE_ORDER[plan.role]:
            return self._not_sent(plan, "refused", f"{mode.user} has role {mode.role};"
                                  f" {plan.action} needs {plan.role}")
        if not confirmed(plan, confirmation):
            want = plan.target if plan.dangerous else f"{plan.target} or yes"
            return self._not_sent(plan, "cancelled", f"not confirmed (type {want})")
        mode = self.mode  # switched to read-only while the operator was reading the plan?
        if mode.read_only:
            return self._not_sent(plan, "refused", f"read-only: {mode.reason}")
        return await self._send(entry, mode.user)

    async def _send(self, entry: _Planned, user: str) -> Outcome:
        plan, now = entry.plan, self.clock()
        secret = [p.name for p in entry.spec.params if p.secret]
        try:
            action_id = self.audit.intent(
                action=plan.action, target=plan.target, params=plan.params,
                pre_state_hash=plan.pre_state_hash, idempotency_key=plan.idempotency_key,
                origin=plan.origin, gateway=plan.gateway, incident_id=plan.incident_id,
                action_id=uuid.uuid4().hex[:12], secret_names=secret)
        except OSError as exc:
            return Outcome(plan, "failed", 0, f"cannot write the audit journal ({exc}): nothing sent")
        record = ActionRecord(
            action_id, plan.idempotency_key, plan.plan_id, plan.action, plan.adapter, plan.gateway,
            plan.target, plan.params_json, plan.before_json, plan.desired_json,
            plan.origin, plan.incident_id, plan.revert_of, user, "sent", "", plan.time_box, now, now)
        try:
            self.store.claim(record)
        except (AlreadySent, StateError) as exc:
            status: OutcomeStatus = "refused" if isinstance(exc, AlreadySent) else "failed"
            return self._finish(entry, action_id, status, 0, f"{exc}: nothing sent", record=False)
        self.note(plan, "revert" if plan.origin == "revert" else "action_intent",
                  f"{plan.title}: sending {len(plan.requests)} request(s) to {plan.gateway or 'local'}"
                  f" (action {action_id})", user, action_id)
        sent, answers = 0, []
        for i, request in enumerate(plan.requests):
            key = request_key(plan.idempotency_key, i, len(plan.requests))
            try:
                answers.append(await entry.adapter.send(request, idempotency_key=key, changed_by=user))
                sent += 1
            except SendError as err:
                sent += 1 if (err.status is not None or err.unsure) else 0
                status = "unknown" if err.unsure else "failed"
                return self._finish(entry, action_id, status, sent, failure_text(plan, i, request, err),
                                    took=i)
            except Exception as exc:  # noqa: BLE001 - an adapter bug after sending began: may have taken
                detail = failure_text(plan, i, request, SendError(f"{type(exc).__name__}: {exc}"))
                return self._finish(entry, action_id, "unknown", sent + 1, detail, took=i)
        status, detail = await self._verify(entry)
        said = "; ".join(a[:ANSWER_SHOWN] for a in answers if a)  # what the server or command said
        return self._finish(entry, action_id, status, sent, f"{detail} ({said})" if said else detail)

    async def _verify(self, entry: _Planned) -> tuple[OutcomeStatus, str]:
        if not entry.adapter.readable:
            return "unverified", "sent; this action has no read-back, so it cannot be verified"
        problem = ""
        for attempt in range(VERIFY_TRIES):
            if attempt:
                await self._sleep(VERIFY_PAUSE_SECONDS)
            try:
                current = await entry.adapter.read(entry.values)
            except Exception as exc:  # noqa: BLE001 - a failed read-back is reported, not raised
                problem = f"could not read it back: {exc}"
                continue
            problem = mismatch(current, entry.plan.desired)
            if not problem:
                return "applied", f"applied and read back on {entry.plan.gateway or 'this host'}"
        return "unverified", f"sent, but not verified: {problem}"

    def _finish(self, entry: _Planned, action_id: str, status: OutcomeStatus, sent: int, detail: str, *,
                record: bool = True, took: int = 0) -> Outcome:
        """Record the outcome. `took`: requests answered OK before one failed — a failed action
        with some that took keeps its pending revert (time box) and says how to undo them."""
        plan, now = entry.plan, self.clock()
        problems: list[str] = []
        partial = status == "failed" and took > 0 and not plan.revert_of
        if partial:
            detail += f"; `llmdeck runbook undo {action_id}` puts back what took"
        try:
            self.audit.outcome(action_id, action=plan.action, status=status, detail=detail)
        except OSError as exc:
            problems.append(f"the outcome could not be written to the audit journal ({exc})")
        due = None
        if record:
            try:
                self.store.finish(action_id, status, detail, now)
                took_some = status in ("applied", "unverified") or partial
                if took_some and plan.revert_of and not partial:
                    self.store.revert_done(plan.revert_of, action_id, now, f"{plan.origin} {action_id}")
                elif took_some and plan.time_box is not None and entry.spec.revert == "restore":
                    due = now + plan.time_box
                    self.store.add_revert(action_id, due)
            except StateError as exc:
                problems.append(f"it could not be recorded in the state file ({exc})")
        kind = "revert" if plan.origin == "revert" else "action_outcome"
        problems += self.note(plan, kind, f"{plan.title}: {status}: {detail}", self.mode.user, action_id,
                              status=status)
        if due is not None:
            detail += f"; reverts at {due:%Y-%m-%d %H:%M}Z"
        return Outcome(plan, status, sent, "; ".join([detail, *problems]), action_id=action_id,
                       revert_due=due)

    def _not_sent(self, plan: Plan, status: OutcomeStatus, reason: str) -> Outcome:
        """An attempt that sent nothing: one audit event (and the timeline, for an incident)."""
        detail = f"{reason}: nothing sent"
        try:
            self.audit.event(plan.action, status=status, detail=detail, origin=plan.origin,
                             target=plan.target, params=plan.params, gateway=plan.gateway,
                             incident_id=plan.incident_id)
        except OSError as exc:
            detail += f" (and the audit journal could not record it: {exc})"
        if plan.incident_id and status != "dry_run":
            self.note(plan, "action_outcome", f"{plan.title}: {status}: {detail}", self.mode.user, "",
                      status=status)
        return Outcome(plan, status, 0, detail)

    # ---- reverts and unknown outcomes ------------------------------------------------------

    async def run_due_reverts(self) -> list[Outcome]:
        """Perform every revert whose time box has ended (origin "revert", through `apply`, so
        read-only and roles hold). One that cannot run stays pending with its reason."""
        from console.runbook_reverts import run_due_reverts

        return await run_due_reverts(self)

    async def resolve_unknown(self, action_id: str) -> Outcome:
        """Read the state back for an action whose outcome is unknown, and settle it."""
        from console.runbook_reverts import resolve_unknown

        return await resolve_unknown(self, action_id)

    async def aclose(self) -> None:
        adapters_, self._adapters = list(self._adapters.values()), {}
        for adapter in adapters_:
            await adapter.aclose()

    # ---- helpers ----------------------------------------------------------------------------

    def readable(self, plan: Plan) -> bool:
        """Whether the adapter behind a plan this desk made can read its state back."""
        entry = self._plans.get(plan.plan_id)
        return entry is not None and entry.adapter.readable

    def record(self, action_id: str) -> ActionRecord:
        record = self.store.get(action_id.strip())
        if record is None:
            raise ActionError(f"no action {action_id!r} in {self.store.path}")
        return record

    def adapter_for(self, spec: ActionSpec, gateway: str) -> Adapter:
        key = (spec.adapter, gateway, spec.options_json)
        if key not in self._adapters:
            secret_params = frozenset(p.name for p in spec.params if p.secret)
            context = adapters.AdapterContext(config=self.config, gateway=gateway, options=spec.options,
                                              secret=self._secret, transport=self._transport,
                                              secret_params=secret_params)
            self._adapters[key] = adapters.build(spec.adapter, context)
        return self._adapters[key]

    @staticmethod
    def target_of(spec: ActionSpec, adapter: Adapter, values: Mapping[str, Any]) -> str:
        if spec.target and values.get(spec.target) is not None:
            return str(values[spec.target])
        return adapter.target(values)

    async def read_state(self, spec: ActionSpec, adapter: Adapter, values: Mapping[str, Any], target: str,
                         gateway: str) -> dict[str, Any]:
        """The adapter's read (GET only); a transport failure as an ActionError naming where."""
        from connectors.http import SourceError

        try:
            return await adapter.read(values)
        except SourceError as exc:
            where = gateway or "this host"
            raise ActionError(f"{spec.name}: cannot read {target} from {where}: {exc}") from None

    def _incident(self, incident_id: str) -> str:
        try:
            return str(self._timeline_store().get(incident_id).id)
        except ActionError:
            raise
        except Exception as exc:  # noqa: BLE001 - IncidentError / StateError: the id is unusable
            raise ActionError(f"incident {incident_id!r}: {exc}") from None

    def _timeline_store(self) -> Timeline:
        if self._incidents is None:
            from console.incidents import IncidentStore

            self._incidents = IncidentStore(self.store.path)
        return self._incidents

    def note(self, plan: Plan, kind: str, text: str, user: str, action_id: str,
             status: str = "") -> list[str]:
        """Write one timeline entry for the plan's incident; the problem text if it could not."""
        if not plan.incident_id:
            return []
        data = {"action_id": action_id, "action": plan.action, "target": plan.target, "status": status,
                "origin": plan.origin, "revert_of": plan.revert_of}
        try:
            self._timeline_store().add_entry(plan.incident_id, kind, text, author=user, data=data)
        except Exception as exc:  # noqa: BLE001 - the action stands; the operator is told
            return [f"the incident timeline could not be written ({exc})"]
        return []
