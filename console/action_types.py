"""The shapes every runbook action shares: plans, outcomes, confirmations and the adapter protocol.

Plain frozen data and one protocol, no I/O. The choke point (`console.runbooks.ActionDesk`)
plans, confirms, applies, verifies and audits; adapters (`console/adapters/`) only read the
current state, describe and send the requests, and say how to revert. Panels import these
types to show a plan; they never hold anything that can send.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

Origin = Literal["key", "palette", "command", "cli", "revert", "undo", "suggestion", "verify"]
"""What started an action. Every origin goes through the same `ActionDesk.apply`."""

Role = Literal["viewer", "responder", "admin"]
ROLE_ORDER: Mapping[str, int] = {"viewer": 0, "responder": 1, "admin": 2}

OutcomeStatus = Literal[
    "applied",      # sent, read back, the state is what was planned
    "unverified",   # sent, but the read-back does not (yet) show it
    "failed",       # sent and refused, or could not be sent (the detail says which)
    "unknown",      # sent, and no answer (timeout, connection lost): it may or may not have taken
    "dry_run",      # planned only: nothing sent
    "refused",      # read-only mode, role too low, already sent, plan expired: nothing sent
    "cancelled",    # the operator did not confirm: nothing sent
]
NOT_SENT: frozenset[str] = frozenset({"dry_run", "refused", "cancelled"})


def jsonable(value: Mapping[str, Any]) -> str:
    """Canonical JSON text for a mapping (sorted keys), so plans stay immutable and hashable."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


@dataclass(frozen=True)
class PlannedRequest:
    """One mutating request exactly as it will be sent. `text` is what the operator sees
    (method, URL, headers with secrets masked, body); the other fields are what is sent."""

    method: str
    """POST, PUT, PATCH, DELETE; "EXEC" for an allowlisted command."""
    text: str
    """The exact request as text, secrets masked (e.g. `SourceClient.describe_request`)."""
    path: str = ""
    """HTTP: the path (and query) relative to the adapter's base URL."""
    body_json: str = ""
    """HTTP: the JSON body as text ("" for none)."""
    argv: tuple[str, ...] = ()
    """EXEC: the argument list (never through a shell)."""

    @property
    def body(self) -> Any:
        return json.loads(self.body_json) if self.body_json else None


@dataclass(frozen=True)
class DiffLine:
    """One field the action changes: its value now and after (as short display text)."""

    field: str
    before: str
    after: str


@dataclass(frozen=True)
class Confirmation:
    """What the operator typed (console modal) or passed (`--confirm TARGET`).

    The choke point accepts it when `typed` equals the plan's target; a plan that is not
    dangerous also accepts "yes" (the modal's explicit `y`). Anything else is a cancel.
    """

    typed: str


@dataclass(frozen=True)
class Plan:
    """What one action will do, built by reading only (GETs), shown before anything is sent."""

    plan_id: str
    action: str
    """The runbook action's name (`throttle-key`)."""
    title: str
    adapter: str
    """The adapter kind (`litellm.key_limits`)."""
    params_json: str
    """The validated parameters (secret ones masked) as canonical JSON."""
    target: str
    """What the action is about, typed to confirm a dangerous one (a key alias, a model name)."""
    gateway: str
    """The configured system it acts on (`[[actions.litellm]] name`), "" for shell."""
    dangerous: bool
    role: Role
    """The role the action requires."""
    time_box: timedelta | None
    """`for = "15m"`: reverted automatically when the box ends."""
    origin: Origin
    incident_id: str | None
    diff: tuple[DiffLine, ...]
    requests: tuple[PlannedRequest, ...]
    before_json: str
    """The state read before (the fields the action touches), canonical JSON: the undo's target."""
    desired_json: str
    """The state the action should leave, compared with a read-back to verify."""
    pre_state_hash: str
    """sha256 of `before_json`; the audit intent carries it."""
    idempotency_key: str
    created_at: datetime
    notes: tuple[str, ...] = ()
    """What the operator must know before confirming ("read-only: cannot be applied", "no
    read-back: cannot be verified", "changes nothing")."""
    revert_of: str = ""
    """The action id this plan undoes or reverts ("" for a fresh action)."""

    @property
    def params(self) -> dict[str, Any]:
        return dict(json.loads(self.params_json))

    @property
    def before(self) -> dict[str, Any]:
        return dict(json.loads(self.before_json))

    @property
    def desired(self) -> dict[str, Any]:
        return dict(json.loads(self.desired_json))

    @property
    def changes_nothing(self) -> bool:
        return not self.diff


@dataclass(frozen=True)
class Outcome:
    """What `ActionDesk.apply` did."""

    plan: Plan
    status: OutcomeStatus
    sent: int
    """How many mutating requests left this process (0 for every NOT_SENT status)."""
    detail: str
    action_id: str = ""
    """The audit journal's id for the attempt ("" when nothing was recorded)."""
    revert_due: datetime | None = None
    """A time-boxed action: when its automatic revert is due."""

    @property
    def ok(self) -> bool:
        return self.status in ("applied", "dry_run")


class ActionError(Exception):
    """An action that cannot be planned (unknown action, bad parameter, target not found);
    the message says which, and where (file:line for a runbook, param name for input)."""


class SendError(Exception):
    """A mutating request that failed. `unsure` when no answer came back (timeout, connection
    lost after sending): the change may or may not have taken, so the outcome is "unknown"."""

    def __init__(self, message: str, *, status: int | None = None, unsure: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.unsure = unsure


class Adapter(Protocol):
    """One kind of action against one configured system. Adapters never decide whether to
    send: only `ActionDesk.apply` calls `send`, after every check."""

    kind: str
    readable: bool
    """Whether `read` shows the state the action changes. When False (a templated request
    with no read path, a command with no read command) the plan says it cannot show a diff
    and the outcome cannot be verified by reading back."""

    def target(self, params: Mapping[str, Any]) -> str:
        """What the action is about, as the operator types it to confirm."""
        ...

    async def read(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The current values of the fields this action touches (GET only; ActionError if the
        target does not exist)."""
        ...

    def desired(self, params: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
        """The values those fields should have afterwards."""
        ...

    def requests(self, params: Mapping[str, Any], current: Mapping[str, Any],
                 desired: Mapping[str, Any]) -> Sequence[PlannedRequest]:
        """The exact mutating requests, in order (pure: nothing is sent)."""
        ...

    async def send(self, request: PlannedRequest, *, idempotency_key: str, changed_by: str) -> str:
        """Send one request with `Idempotency-Key` and `LiteLLM-Changed-By` (HTTP adapters);
        a short description of the answer; SendError on failure."""
        ...

    def restore_params(self, params: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, Any] | None:
        """Parameters for this same adapter that put `before` back (undo, time-box end), or
        None when the action cannot be reverted."""
        ...

    async def aclose(self) -> None:
        ...
