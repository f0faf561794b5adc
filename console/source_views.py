"""Views and pages of the screens fed by outside sources: `:sources`, `:alerts`, `:serving`.

Like `console.views`, no DuckDB behind these: the backend answers them from the
source hub's latest snapshots, never with network I/O of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from console.alerts import ActiveAlert, Silence, alert_level
from console.sources import SourceStatus

if TYPE_CHECKING:
    from console.serving import ServingSnapshot


@dataclass(frozen=True)
class SourcesView:
    """Every source: kind, state, last success, latency, last error."""


@dataclass(frozen=True)
class AlertsView:
    """Alerts from Prometheus and Alertmanager, with their silences."""


@dataclass(frozen=True)
class ServingView:
    """Model-server and gateway figures scraped from `/metrics`."""


@dataclass(frozen=True)
class SourcesPage:
    """What `:sources` shows."""

    statuses: tuple[SourceStatus, ...]


@dataclass(frozen=True)
class AlertsPage:
    """What `:alerts` shows: every alert (firing first), every silence, and the alert sources'
    own states (an unreachable Alertmanager is not "nothing firing")."""

    alerts: tuple[ActiveAlert, ...]
    silences: tuple[Silence, ...]
    sources: tuple[SourceStatus, ...]


@dataclass(frozen=True)
class ServingPage:
    """What `:serving` shows: each scrape source's latest figures with its state."""

    readings: tuple[tuple[ServingSnapshot | None, SourceStatus], ...]


ALERT_STATE_ORDER = {"firing": 0, "active": 0, "pending": 1, "unprocessed": 1, "suppressed": 2}


def alerts_in_order(alerts: tuple[ActiveAlert, ...] | list[ActiveAlert]) -> tuple[ActiveAlert, ...]:
    """Firing first, then pending, then silenced/inhibited; within a state, by severity
    (critical/page first), then the oldest first."""
    def key(a: ActiveAlert) -> tuple[int, int, str, str]:
        severity = 2 - alert_level(a)  # paging severities first
        started = a.started.isoformat() if a.started else "9999"
        return ALERT_STATE_ORDER.get(a.state, 3), severity, started, a.name
    return tuple(sorted(alerts, key=key))
