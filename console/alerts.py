"""Alerts from outside llmdeck (Prometheus rules, Alertmanager) and Alertmanager silences.

The connectors return these frozen rows; panels and the CLI render them (label and
annotation text is untrusted: through `console.safe_text` only). No Textual here.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def counterpart(alert: ActiveAlert, alerts: Sequence[ActiveAlert]) -> ActiveAlert | None:
    """The Alertmanager alert that is this Prometheus alert (it carries all its labels; external
    labels may add more), if one is among `alerts`."""
    mine = set(alert.labels)
    return next((a for a in alerts if a.origin == "alertmanager" and mine <= set(a.labels)), None)


def muted_upstream(alert: ActiveAlert, alerts: Sequence[ActiveAlert]) -> bool:
    """A firing Prometheus alert that Alertmanager (among `alerts`) silences or inhibits."""
    twin = counterpart(alert, alerts) if alert.origin == "prometheus" and alert.firing else None
    return twin is not None and twin.state == "suppressed"


def loud(alerts: Sequence[ActiveAlert]) -> list[ActiveAlert]:
    """The alerts that page someone, each once: Alertmanager's active ones, and firing Prometheus
    alerts that no Alertmanager here knows (else Alertmanager's state decides)."""
    return [a for a in alerts if a.firing and (a.origin != "prometheus" or counterpart(a, alerts) is None)]


PAGING_SEVERITIES = frozenset({"critical", "page", "error", "emergency"})
"""`severity` label values that page someone (others are tickets)."""


def alert_level(alert: ActiveAlert) -> int:
    """2 for a paging severity, else 1 (the overview's levels: page / ticket)."""
    return 2 if alert.severity.lower() in PAGING_SEVERITIES else 1
