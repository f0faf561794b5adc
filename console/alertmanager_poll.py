"""An Alertmanager as the source hub polls it: alerts and silences in one frozen reading."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connectors.alertmanager import AlertmanagerClient
from console.alerts import ActiveAlert, Silence
from console.config import AlertmanagerSource, Config
from console.sources import SourceHealth
from console.timeutil import utc_now


@dataclass(frozen=True)
class AlertmanagerReading:
    """One poll of one Alertmanager."""

    source: str
    at: datetime
    """When it was read (naive UTC)."""
    alerts: tuple[ActiveAlert, ...]
    silences: tuple[Silence, ...]

    def summary(self) -> str:
        """One line for `:sources`: how many alerts fire, are silenced, and silences in force."""
        firing = sum(1 for a in self.alerts if a.firing)
        muted = sum(1 for a in self.alerts if a.state == "suppressed")
        live = sum(1 for s in self.silences if s.state != "expired")
        return f"{firing} firing, {muted} silenced/inhibited, {live} silences"


class AlertmanagerPoller:
    """Reads `/api/v2/alerts` and `/api/v2/silences` concurrently each poll."""

    kind = "alertmanager"

    def __init__(self, source: AlertmanagerSource, client: AlertmanagerClient,
                 health: SourceHealth | None = None) -> None:
        self.name = source.name
        self.interval = source.refresh_seconds
        self.client = client
        """The source's client; one-off calls (a silence) run on the hub's loop through it."""
        self.health = health or SourceHealth.polled_every(source.name, self.kind, source.refresh_seconds)

    async def poll(self) -> AlertmanagerReading:
        """One reading; raises `SourceError` if either read fails (no half reading is kept)."""
        # Both reads run to their end (each within its deadline) before a failure is raised: a
        # plain gather would leave the other read running unawaited after the first failure.
        alerts, silences = await asyncio.gather(self.client.alerts(), self.client.silences(),
                                                return_exceptions=True)
        for answer in (alerts, silences):
            if isinstance(answer, BaseException):
                raise answer
        assert not isinstance(alerts, BaseException) and not isinstance(silences, BaseException)
        return AlertmanagerReading(self.name, utc_now(), alerts, silences)

    async def aclose(self) -> None:
        await self.client.aclose()


def make_poller(source: AlertmanagerSource, config: Config, secret_headers: Mapping[str, str],
                **client_kw: Any) -> AlertmanagerPoller:
    """The poller of one `[[sources.alertmanager]]` (no I/O until the first poll)."""
    return AlertmanagerPoller(source, AlertmanagerClient.for_source(source, secret_headers, **client_kw))
