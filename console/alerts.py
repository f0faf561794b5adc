"""Alerts from outside llmdeck (Prometheus rules, Alertmanager) and Alertmanager silences.

The connectors return these frozen rows; panels and the CLI render them (label and
annotation text is untrusted: through `console.safe_text` only). No Textual here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

AlertOrigin = Literal["prometheus", "alertmanager"]


@dataclass(frozen=True)
class ActiveAlert:
    """One alert as its source reports it."""

    source: str
    """The configured source name it came from."""
    origin: AlertOrigin
    name: str
    """`alertname` label."""
    state: str
    """Prometheus: pending | firing. Alertmanager: active | suppressed | unprocessed."""
    severity: str
    """`severity` label, or ''."""
    labels: tuple[tuple[str, str], ...]
    """Every label, sorted by name."""
    summary: str
    """`summary` (else `description`) annotation, or ''."""
    started: datetime | None
    """activeAt / startsAt, naive UTC."""
    fingerprint: str
    """Alertmanager's fingerprint, or a stable hash of the labels for Prometheus."""
    silenced_by: tuple[str, ...] = ()
    inhibited_by: tuple[str, ...] = ()
    value: str = ""
    """Prometheus: the expression's value when it fired."""

    @property
    def firing(self) -> bool:
        """Firing and not silenced or inhibited (what pages someone)."""
        return self.state in ("firing", "active")

    def label(self, name: str) -> str:
        return dict(self.labels).get(name, "")


@dataclass(frozen=True)
class SilenceMatcher:
    """One Alertmanager matcher (`name=value`, `name!=value`, `name=~re`, `name!~re`)."""

    name: str
    value: str
    is_regex: bool = False
    is_equal: bool = True

    def __str__(self) -> str:
        op = ("=~" if self.is_regex else "=") if self.is_equal else ("!~" if self.is_regex else "!=")
        return f"{self.name}{op}{self.value}"


@dataclass(frozen=True)
class Silence:
    """One Alertmanager silence."""

    source: str
    id: str
    state: str
    """active | pending | expired."""
    matchers: tuple[SilenceMatcher, ...]
    starts: datetime
    ends: datetime
    created_by: str
    comment: str
