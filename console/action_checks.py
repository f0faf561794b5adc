"""The pure checks `console.runbooks.ActionDesk` applies: mode, role, confirmation, diff, read-back.

No I/O and nothing that can send: split from the desk so each rule reads in a few lines
and is tested on its own. `read_mode` is evaluated at every apply (an operator may set
`LLMDECK_READONLY=1` while a plan is on screen).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from console.action_store import ActionRecord
from console.action_types import (
    ROLE_ORDER,
    ActionError,
    Confirmation,
    DiffLine,
    Plan,
    PlannedRequest,
    Role,
    SendError,
)
from console.config_actions import ActionsSettings
from console.runbook_files import MASK, ActionSpec, format_duration

READONLY_ENV = "LLMDECK_READONLY"
IDEMPOTENCY_PLACEHOLDER = "<idempotency-key>"
CHANGED_BY_PLACEHOLDER = "<operator>"
"""What adapters write in a request's text where the header values go (the same strings as
connectors.litellm_admin's); `with_real_headers` fills in the real ones for the plan."""
_FALSE = frozenset({"", "0", "false", "no", "off"})
_SHOWN = 80


class Timeline(Protocol):
    """What the desk needs of the incident store (`console.incidents.IncidentStore`)."""

    def get(self, incident_id: str) -> Any: ...

    def add_entry(self, incident_id: str, kind: Any, text: str, *, author: str | None = None,
                  data: Mapping[str, Any] | None = None, at: datetime | None = None) -> Any: ...


@dataclass(frozen=True)
class ActionMode:
    """Whether the desk may send, and as whom; shown in every plan and confirmation."""

    read_only: bool
    reason: str
    """Why read-only ("" when not)."""
    dry_run: bool
    role: Role
    user: str
    environment: str

    def label(self) -> str:
        """`READ-ONLY`, `DRY RUN` or `WRITE`, for the dialog's reverse-video badge."""
        return "READ-ONLY" if self.read_only else "DRY RUN" if self.dry_run else "WRITE"

    def notes(self) -> tuple[str, ...]:
        notes = []
        if self.read_only:
            notes.append(f"read-only ({self.reason}): cannot be applied")
        if self.dry_run:
            notes.append("dry run: nothing will be sent")
        return tuple(notes)


def env_read_only(environ: Mapping[str, str] | None = None) -> bool:
    """`LLMDECK_READONLY` set to anything but 0/false/no/off (the global kill switch, R4.8)."""
    env = os.environ if environ is None else environ
    return env.get(READONLY_ENV, "").strip().lower() not in _FALSE


def read_mode(settings: ActionsSettings, user: str, groups: Sequence[str], *, write: bool, read_only: bool,
              dry_run: bool, environ: Mapping[str, str] | None) -> ActionMode:
    reasons = []
    if env_read_only(environ):
        reasons.append(f"{READONLY_ENV}=1")
    if read_only:
        reasons.append("--read-only")
    if settings.prod and not write:
        reasons.append(f"environment {settings.environment} is prod; start llmdeck with --write to act")
    return ActionMode(bool(reasons), "; ".join(reasons), dry_run, settings.role_of(user, groups), user,
                      settings.environment)


def confirmed(plan: Plan, confirmation: Confirmation | None) -> bool:
    """The typed target (or, for a plan that is not dangerous, "yes"); never an empty answer."""
    if confirmation is None:
        return False
    typed = confirmation.typed.strip()
    if not typed:
        return False
    return typed == plan.target.strip() or (not plan.dangerous and typed == "yes")


def matches(current: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    return not mismatch(current, desired)


def mismatch(current: Mapping[str, Any], desired: Mapping[str, Any]) -> str:
    """"" when every desired field reads back as desired, else the first that does not."""
    for field, want in desired.items():
        have = current.get(field)
        if not _same(have, want):
            return f"{field} reads {_show(have)}, expected {_show(want)}"
    return ""


def _same(have: Any, want: Any) -> bool:
    if isinstance(have, int | float) and isinstance(want, int | float) and not isinstance(have, bool):
        return bool(have == want)
    return json.dumps(have, sort_keys=True, default=str) == json.dumps(want, sort_keys=True, default=str)


def secret_values(spec: ActionSpec, values: Mapping[str, Any]) -> frozenset[str]:
    """The text of every secret parameter's value, to mask wherever it shows up in a diff."""
    return frozenset(str(values[p.name]) for p in spec.params
                     if p.secret and values.get(p.name) not in (None, ""))


def diff_lines(current: Mapping[str, Any] | None, desired: Mapping[str, Any],
               hidden: frozenset[str] = frozenset()) -> tuple[DiffLine, ...]:
    """One line per field that changes (`current` None: cannot be read, every field shown)."""
    lines = []
    for field, want in desired.items():
        if current is not None and _same(current.get(field), want):
            continue
        before = "(cannot read)" if current is None else _show(current.get(field), hidden)
        lines.append(DiffLine(field, before, _show(want, hidden)))
    return tuple(lines)


def _show(value: Any, hidden: frozenset[str] = frozenset()) -> str:
    text = "(none)" if value is None else value if isinstance(value, str) else \
        json.dumps(value, sort_keys=True, default=str)
    for secret in hidden:
        text = text.replace(secret, MASK)
    return text if len(text) <= _SHOWN else text[:_SHOWN - 1] + "…"


def gateway_for(settings: ActionsSettings, spec: ActionSpec) -> str:
    """The configured system `spec` acts on: its `gateway`, else the only one of its family."""
    family = spec.adapter.split(".", 1)[0]
    if family not in ("litellm", "http"):
        return spec.gateway
    names = settings.gateway_names(family)
    if spec.gateway:
        if spec.gateway not in names:
            raise ActionError(f"{spec.where}: gateway {spec.gateway!r}: no [[actions.{family}]] has that"
                              f" name (configured: {', '.join(names) or 'none'})")
        return spec.gateway
    if len(names) == 1:
        return names[0]
    if not names:
        raise ActionError(f"{spec.name}: no [[actions.{family}]] is configured to act on")
    raise ActionError(f"{spec.name}: several [[actions.{family}]] are configured ({', '.join(names)});"
                      f" name one with gateway = \"...\" at {spec.where}")


def failure_text(plan: Plan, i: int, request: PlannedRequest, err: SendError) -> str:
    """Which request failed, how, and what that means for the ones before it."""
    what = request.path or " ".join(request.argv)
    text = f"request {i + 1}/{len(plan.requests)} ({request.method} {what}): {err}"
    if err.unsure:
        text += "; it may or may not have taken: `llmdeck runbook verify` reads it back"
    if i:
        took = ", ".join(f"{j + 1} ({r.method} {r.path or ' '.join(r.argv)})"
                         for j, r in enumerate(plan.requests[:i]))
        text += f"; request(s) {took} took; the rest were not sent"
    return text


def request_key(idempotency_key: str, i: int, count: int) -> str:
    """The Idempotency-Key of request `i` of `count`: the plan's key, suffixed when there are several."""
    return idempotency_key if count == 1 else f"{idempotency_key}-{i + 1}"


def with_real_headers(requests: Sequence[PlannedRequest], idempotency_key: str,
                      user: str) -> tuple[PlannedRequest, ...]:
    """The requests with their text showing the exact Idempotency-Key and operator sent."""
    n = len(requests)
    return tuple(replace(r, text=r.text.replace(IDEMPOTENCY_PLACEHOLDER, request_key(idempotency_key, i, n))
                         .replace(CHANGED_BY_PLACEHOLDER, user)) for i, r in enumerate(requests))


def plan_notes(spec: ActionSpec, mode: ActionMode, now: datetime, *, target: str, readable: bool,
               unchanged: bool, time_box: timedelta | None, revert_of: str,
               unsure: ActionRecord | None) -> tuple[str, ...]:
    """What the operator must know before confirming, in the order the dialog shows it."""
    notes = list(mode.notes())
    if not readable:
        notes.append("no read-back: the current state is not shown and the result cannot be verified")
    elif unchanged:
        notes.append("changes nothing: the state already is what this action sets")
    if ROLE_ORDER[mode.role] < ROLE_ORDER[spec.role]:
        notes.append(f"needs role {spec.role}; {mode.user} is {mode.role}: cannot be applied")
    if time_box is not None:
        notes.append(f"time box {format_duration(time_box)}: reverts by itself at {now + time_box:%H:%M}Z"
                     " (or when a console or `runbook reverts --run` is next up)")
    if spec.revert == "none" and not revert_of:
        notes.append("cannot be undone (revert = \"none\")")
    if spec.dangerous:
        notes.append(f"dangerous: type {target} to confirm")
    if unsure is not None:
        notes.append(f"action {unsure.action_id} on {target} has an unknown outcome: verify it first"
                     f" (llmdeck runbook verify {unsure.action_id}); until then this cannot be applied")
    return tuple(notes)
