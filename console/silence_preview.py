"""What the console's silence dialog shows and hands back: plain frozen data, no I/O.

`SilenceAsk` is what the operator asked for (silence this alert, expire that silence),
`SilencePreview` the plan as text for the dialog, `Confirmation` the source name the
operator typed, `SilenceResult` what `console.silences.apply` did. Panels import these;
the plans themselves, and the clients that send them, stay in `console.silence_actions`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from console.alerts import SilenceMatcher

DEFAULT_LENGTH = "2h"
NO_ALERTMANAGER = ("silences live in Alertmanager, and no [[sources.alertmanager]] is configured:"
                   " nothing can silence this Prometheus alert from here")


@dataclass(frozen=True)
class SilenceAsk:
    """One silence to create (for an alert's labels) or expire (by id), before it is planned."""

    action: Literal["create", "expire"]
    source: str
    """The Alertmanager source that would receive the request ("" when there is none)."""
    target: str
    """What it is about, for the title: the alert's name or the silence's id."""
    matchers: tuple[SilenceMatcher, ...] = ()
    length: str = DEFAULT_LENGTH
    comment: str = ""
    silence_id: str = ""
    problem: str = ""
    """Why it cannot be planned at all (no Alertmanager configured), else ""."""


@dataclass(frozen=True)
class SilencePreview:
    """A planned (or unplannable) ask, as the dialog shows it; `key` names the plan kept aside."""

    ask: SilenceAsk
    plan_text: str = ""
    """The plan as `llmdeck silence` prints it: matchers, ends, affected alerts, the exact request."""
    affects: int = 0
    problem: str = ""
    read_only: bool = False
    key: int = 0
    read_only_reason: str = ""
    """Why the desk would refuse to send (`LLMDECK_READONLY=1`, `--read-only`, a prod environment
    without `--write`), "" when it would not."""

    @property
    def ready(self) -> bool:
        """A plan exists (it may still be refused: read-only)."""
        return bool(self.plan_text) and not self.problem

    @property
    def sendable(self) -> bool:
        """A plan exists and read-only mode is off."""
        return self.ready and not self.read_only


@dataclass(frozen=True)
class Confirmation:
    """The operator confirmed `preview` by typing `typed` (the source's name)."""

    preview: SilencePreview
    typed: str


@dataclass(frozen=True)
class SilenceResult:
    """What `apply` did with a confirmed plan: `status` is `SilenceOutcome.status` or "failed"."""

    source: str
    action: Literal["create", "expire"]
    status: str
    detail: str
    ok: bool
    sent: bool = False

    def summary(self) -> str:
        """One line for a notification (untrusted parts are the caller's to make safe)."""
        verb = "silence" if self.action == "create" else "expire"
        return f"{verb} on {self.source}: {self.status}: {self.detail}"
