"""The console's side of runbook actions: a blocking bridge to the desk on its own loop thread.

`ActionDesk` (console/runbooks.py) is the one choke point: it plans (GETs only) and applies
(read-only, dry-run, role and confirmation checked inside it). Its adapters hold async HTTP
clients bound to one event loop, so the desk lives on a loop thread of its own, and the
app's thread workers call `plan` / `apply` here, which block until the desk answers. A plan
is kept here under a key and used once: the dialog only ever holds its text and the key, so
nothing a screen holds can be sent. Prefilling parameters from an incident's causes is here
too (pure). No Textual here.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any, TypeVar

from console.action_checks import ActionMode
from console.action_preview import YES, ActionAsk, ActionConfirmed, ActionPreview, ActionResult
from console.action_types import ActionError, Confirmation, Outcome, Plan
from console.incident_views import cause_scope
from console.safe_text import cell

if TYPE_CHECKING:
    from console.config import Config
    from console.incidents import Incident, IncidentStore, TimelineEntry
    from console.runbook_files import ActionSpec
    from console.runbooks import ActionDesk

T = TypeVar("T")

KEPT_PLANS = 8
"""Plans kept for confirmation at once (one dialog is open at a time; re-plans replace)."""

SCOPE_PARAMS: Mapping[str, tuple[str, ...]] = {
    "tenant": ("team_id", "team", "tenant"),
    "model": ("model", "model_name", "model_group"),
    "provider": ("provider", "from_provider"),
    "fallback": ("fallback_models", "fallback_model", "to_model"),
}
"""Which action parameters an incident's scope (an SLO's or budget's provider/model/tenant) fills."""


def incident_scope(incident: Incident, config: Config) -> dict[str, str]:
    """provider / model / tenant named by the SLOs and budgets that opened or joined `incident`
    (the first cause naming each wins: the cause that opened it comes first)."""
    scope: dict[str, str] = {}
    slos = {s.name: s for s in config.slos}
    budgets = {b.name: b for b in config.budgets}
    for cause in incident.causes:
        kind, name = cause_scope(cause)
        found: list[tuple[str, str]] = []
        if kind == "slo" and name in slos:
            found = [(k, v) for k, v in slos[name].filter.items() if k in SCOPE_PARAMS]
        elif kind == "budget" and name in budgets and budgets[name].scope != "global":
            budget = budgets[name]
            found = [(budget.scope, budget.match or "")]
        for key, value in found:
            if value:
                scope.setdefault(key, value)
    return scope


LABEL_SCOPE: Mapping[str, str] = {
    "provider": "provider", "model": "model", "model_group": "model", "tenant": "tenant",
    "team": "tenant", "team_id": "tenant",
}
"""Outside alerts' labels that name a scope (Prometheus/Alertmanager rules label them so)."""


def alert_scope(timeline: Sequence[TimelineEntry]) -> dict[str, str]:
    """provider / model / tenant from the labels of the outside alerts on a timeline (the feed
    keeps each `alert_firing` entry's labels in its data), first firing first."""
    scope: dict[str, str] = {}
    for entry in timeline:
        if entry.kind != "alert_firing":
            continue
        labels = entry.data.get("labels")
        if not isinstance(labels, Mapping):
            continue
        for label, key in LABEL_SCOPE.items():
            value = labels.get(label)
            if isinstance(value, str) and value:
                scope.setdefault(key, value)
    return scope


def prefill(spec: ActionSpec, scope: Mapping[str, str]) -> Params:
    """The parameters of `spec` an incident's scope names (fixed and secret ones never).

    A model group found only from traffic (`traffic_model`) fills a model parameter only when
    the action cannot take the provider itself: an action that acts on a whole provider should
    not be narrowed to one of its groups by a guess.
    """
    filled: list[tuple[str, str]] = []
    names = {p.name for p in spec.params if not (p.fixed or p.secret)}
    takes_provider = "provider" in scope and bool(names & set(SCOPE_PARAMS["provider"]))
    for param in spec.params:
        if param.name not in names:
            continue
        for key, candidates in SCOPE_PARAMS.items():
            value = scope.get(key)
            if key == "model" and value is None and not takes_provider:
                value = scope.get("traffic_model")
            if param.name in candidates and value:
                filled.append((param.name, value))
                break
    return tuple(filled)


Params = tuple[tuple[str, str], ...]
"""Parameters as typed: (name, text value) pairs."""


def ranked(specs: Sequence[ActionSpec], scope: Mapping[str, str]) -> list[tuple[ActionSpec, Params]]:
    """Every action with its prefilled params, those the scope fills most completely first
    (all required params filled, then most filled), otherwise in the desk's order."""
    def missing(spec: ActionSpec, params: Params) -> int:
        given = {k for k, _ in params}
        return sum(1 for p in spec.params if p.required and not p.fixed and p.default is None
                   and p.name not in given)

    rows = [(spec, prefill(spec, scope)) for spec in specs]
    order = {spec.name: i for i, spec in enumerate(specs)}
    return sorted(rows, key=lambda row: (missing(*row) > 0, -len(row[1]), order[row[0].name]))


class RunbookBridge:
    """Plans and applies through one `ActionDesk`, on the desk's own asyncio loop thread."""

    def __init__(self, make_desk: Callable[[], ActionDesk], *, plan_timeout: float = 30.0,
                 apply_timeout: float = 120.0) -> None:
        self._make_desk = make_desk
        self.write = False
        """`llmdeck --write` (for_config): other guarded paths of the console read it too."""
        self.plan_timeout = plan_timeout
        self.apply_timeout = apply_timeout
        self._desk: ActionDesk | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._plans: dict[int, Plan] = {}
        self._keys = itertools.count(1)
        self._lock = threading.Lock()
        self._building = threading.Lock()

    @classmethod
    def for_config(cls, config: Config, incidents: IncidentStore, *, write: bool = False,
                   read_only: bool = False, dry_run: bool = False) -> RunbookBridge:
        """A bridge to a desk over `config`'s [actions], writing outcomes to `incidents`' timelines
        (built on first use: starting the console reads no runbook file)."""
        def make() -> ActionDesk:
            from console.runbooks import ActionDesk

            return ActionDesk(config, write=write, read_only=read_only, dry_run=dry_run,
                              incidents=incidents)

        bridge = cls(make)
        bridge.write = write
        return bridge

    # ---- the loop thread ---------------------------------------------------------

    def _started(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="llmdeck-actions",
                                          daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def _call(self, make: Callable[[], Awaitable[T]], timeout: float) -> T:
        """Run `make()` on the desk's loop and wait for it (a worker thread, never the UI)."""
        async def run() -> T:
            return await make()

        future = asyncio.run_coroutine_threadsafe(run(), self._started())
        try:
            return future.result(timeout)
        except FutureTimeout:
            raise TimeoutError(f"the action desk did not answer within {timeout:g}s") from None

    def desk(self) -> ActionDesk:
        """The desk, built once on first use on its loop (a bad runbook file raises ActionError);
        two workers asking at once (the first revert check, an `x`) get the same one."""
        with self._building:
            if self._desk is None:
                async def build() -> ActionDesk:
                    return self._make_desk()
                self._desk = self._call(build, self.plan_timeout)
            return self._desk

    # ---- what the console asks (worker threads) ----------------------------------------

    def actions(self) -> list[ActionSpec]:
        """Every action the desk offers (ActionError when the runbooks cannot be loaded)."""
        return list(self.desk().actions())

    def mode(self) -> ActionMode:
        """The desk's mode now (read-only can change: LLMDECK_READONLY is read at each call)."""
        return self.desk().mode

    def plan(self, ask: ActionAsk) -> ActionPreview:
        """Plan `ask` (GETs only) and keep the plan; every problem comes back as text."""
        mode: ActionMode | None = None
        try:
            desk = self.desk()
            mode = desk.mode  # shown with a problem too: read-only says why before any plan
            params: dict[str, Any] = dict(ask.params)
            if ask.undo_of:
                plan = self._call(lambda: desk.undo(ask.undo_of, origin=ask.origin), self.plan_timeout)
            else:
                plan = self._call(lambda: desk.plan(ask.action, params, origin=ask.origin,
                                                    incident_id=ask.incident_id), self.plan_timeout)
            mode = desk.mode
        except (ActionError, TimeoutError, OSError) as exc:
            return ActionPreview(ask, mode, problem=f"{ask.action}: cannot plan: {cell(exc, 600)}")
        with self._lock:
            key = next(self._keys)
            self._plans[key] = plan
            for old in list(self._plans)[:-KEPT_PLANS]:
                del self._plans[old]
        time_box = ""
        if plan.time_box is not None:
            from console.runbook_files import format_duration
            time_box = format_duration(plan.time_box)
        return ActionPreview(
            ask, mode, title=plan.title, target=plan.target, gateway=plan.gateway,
            dangerous=plan.dangerous, time_box=time_box, diff=plan.diff,
            requests=tuple(r.text for r in plan.requests), notes=plan.notes, key=key)

    def apply(self, confirmed: ActionConfirmed) -> ActionResult:
        """Hand the kept plan to `ActionDesk.apply` (once) with what the operator typed."""
        preview = confirmed.preview
        ask = preview.ask
        with self._lock:
            plan = self._plans.pop(preview.key, None)
        if plan is None:
            return ActionResult(ask.action, preview.target, "failed", "that plan is gone: plan again",
                                False, incident_id=ask.incident_id)
        typed = confirmed.typed.strip()
        # the dialog's `y` is the desk's "yes"; the desk checks it against the plan again
        confirmation = Confirmation("yes" if typed.lower() in (YES, "yes") else typed)
        desk = self.desk()
        try:
            outcome = self._call(lambda: desk.apply(plan, confirmation), self.apply_timeout)
        except TimeoutError as exc:
            return ActionResult(ask.action, plan.target, "unknown",
                                f"{exc}: it may or may not have been applied (see the timeline"
                                " and `llmdeck audit show --unknown`)", False,
                                incident_id=ask.incident_id)
        except (ActionError, OSError) as exc:
            return ActionResult(ask.action, plan.target, "failed", cell(exc, 400), False,
                                incident_id=ask.incident_id)
        return result_of(outcome)

    def cancel(self, preview: ActionPreview) -> ActionResult | None:
        """The operator closed the dialog without confirming: hand the kept plan to the desk with
        no confirmation, so the cancelled attempt is audited (it sends nothing), and drop it.
        None when there was no plan (nothing planned, or already used)."""
        with self._lock:
            plan = self._plans.pop(preview.key, None)
        if plan is None:
            return None
        desk = self.desk()
        try:
            outcome = self._call(lambda: desk.apply(plan, None), self.plan_timeout)
        except (ActionError, TimeoutError, OSError) as exc:
            return ActionResult(preview.ask.action, plan.target, "failed", cell(exc, 400), False,
                                incident_id=preview.ask.incident_id)
        return result_of(outcome)

    def run_due_reverts(self) -> list[ActionResult]:
        """Revert the time-boxed actions whose box has ended (the desk obeys read-only and role;
        one that cannot run stays pending and comes back with its reason)."""
        desk = self.desk()
        outcomes = self._call(desk.run_due_reverts, self.apply_timeout)
        return [result_of(o) for o in outcomes]

    def attention(self) -> tuple[str, ...]:
        """Outcomes unknown and reverts that could not run, one line each (see
        `console.incident_views.action_attention`)."""
        from console.incident_views import action_attention
        from console.timeutil import utc_now

        store = self.desk().store
        try:
            return action_attention(store, utc_now())
        finally:
            store.close()  # this (worker) thread's connection only

    def close(self) -> None:
        """Close the desk's clients and stop its loop (the app's unmount)."""
        loop, thread = self._loop, self._thread
        if loop is None:
            return
        if self._desk is not None:
            desk = self._desk
            try:
                self._call(desk.aclose, 5.0)
            except Exception:  # closing: nothing left to tell the operator
                pass
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=5.0)


def result_of(outcome: Outcome) -> ActionResult:
    """An outcome as the console says it."""
    detail = outcome.detail
    if outcome.revert_due is not None:
        detail += f" (reverts at {outcome.revert_due:%H:%M:%S}Z)"
    return ActionResult(outcome.plan.action, outcome.plan.target, outcome.status, detail, outcome.ok,
                        outcome.sent, outcome.action_id, outcome.plan.incident_id)
