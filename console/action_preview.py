"""What the console's action dialog shows and hands back: plain frozen data, no I/O.

`ActionAsk` is what the operator asked for (an action and its parameters as typed),
`ActionPreview` the desk's plan as text for the dialog, `ActionConfirmed` what was typed
to confirm, `ActionResult` what `ActionDesk.apply` did. Panels import these; the plans
themselves, and the desk that applies them, stay in `console.runbook_actions`, so a
dialog can never hand anything sendable back (only a key and the typed text).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from console.action_checks import ActionMode
from console.action_types import DiffLine, Origin

YES = "y"
"""What confirms an action that is not dangerous (a dangerous one needs its target typed)."""


class ParamsError(ValueError):
    """`k=v` text that does not parse; the message names the word."""


def parse_params(text: str) -> tuple[tuple[str, str], ...]:
    """`model=gpt-4o "note=two words"` -> (("model", "gpt-4o"), ("note", "two words")).

    Shell-like quoting, so a value may hold spaces; each word must be `name=value`.
    """
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise ParamsError(f"parameters: {exc}") from None
    pairs = []
    for word in words:
        name, sep, value = word.partition("=")
        if not sep or not name.strip():
            raise ParamsError(f"parameter {word!r}: write it as name=value")
        pairs.append((name.strip(), value))
    return tuple(pairs)


def params_text(params: tuple[tuple[str, str], ...]) -> str:
    """The inverse of `parse_params` (values with spaces quoted)."""
    return " ".join(shlex.quote(f"{k}={v}") for k, v in params)


@dataclass(frozen=True)
class ActionAsk:
    """One action to plan, with its parameters as the operator typed them."""

    action: str
    params: tuple[tuple[str, str], ...]
    origin: Origin = "key"
    incident_id: str | None = None
    undo_of: str = ""
    """An action id: plan putting back the state captured before it (`ActionDesk.undo`);
    `action` is then that action's name, for the title, and `params` are not used."""


@dataclass(frozen=True)
class ActionPreview:
    """A planned (or unplannable) ask as the dialog shows it; `key` names the plan kept aside."""

    ask: ActionAsk
    mode: ActionMode | None = None
    title: str = ""
    target: str = ""
    gateway: str = ""
    dangerous: bool = False
    time_box: str = ""
    diff: tuple[DiffLine, ...] = ()
    requests: tuple[str, ...] = ()
    """Each mutating request exactly as it will be sent, secrets masked."""
    notes: tuple[str, ...] = ()
    problem: str = ""
    """Why there is no plan (unknown action, bad parameter, target not found), else ""."""
    key: int = 0

    @property
    def ready(self) -> bool:
        """A plan exists (it may still be refused: read-only)."""
        return self.key != 0 and not self.problem

    @property
    def sendable(self) -> bool:
        """A plan exists and the desk is not read-only (dry-run may still be confirmed: it
        shows what the desk would do, and sends nothing)."""
        return self.ready and self.mode is not None and not self.mode.read_only

    @property
    def confirm_word(self) -> str:
        """What must be typed: the target for a dangerous action, else `y`."""
        return self.target if self.dangerous else YES

    def confirms(self, typed: str) -> bool:
        """Whether `typed` confirms this plan (never the empty string: Enter alone is no)."""
        typed = typed.strip()
        if not typed or not self.sendable:
            return False
        return typed == self.target or (not self.dangerous and typed.lower() in (YES, "yes"))


@dataclass(frozen=True)
class ActionConfirmed:
    """The operator confirmed `preview` by typing `typed`."""

    preview: ActionPreview
    typed: str


@dataclass(frozen=True)
class ActionResult:
    """What the desk did with a confirmed plan (`status` is an `OutcomeStatus`, or "failed"
    when the desk could not be asked at all)."""

    action: str
    target: str
    status: str
    detail: str
    ok: bool
    sent: int = 0
    action_id: str = ""
    incident_id: str | None = None

    def summary(self) -> str:
        """One line for a notification (untrusted parts are the caller's to make safe)."""
        on = f" on {self.target}" if self.target else ""
        return f"{self.action}{on}: {self.status}: {self.detail}"
