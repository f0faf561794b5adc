"""The incident types every layer shares (store, feed, CLI, console views, panels): no SQLite here.

console.incidents re-exports all of them; see it for the lifecycle and storage rules.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

IncidentState = Literal["open", "acknowledged", "mitigated", "resolved"]
Severity = Literal["sev1", "sev2", "sev3", "sev4"]
EntryKind = Literal["opened", "joined", "state", "alert_firing", "alert_resolved", "action_intent",
                    "action_outcome", "note", "figures", "revert"]

STATES: tuple[IncidentState, ...] = get_args(IncidentState)
SEVERITIES: tuple[Severity, ...] = get_args(Severity)
ENTRY_KINDS: tuple[EntryKind, ...] = get_args(EntryKind)
UNRESOLVED: tuple[IncidentState, ...] = ("open", "acknowledged", "mitigated")

MAX_TITLE = 200
MAX_TEXT = 4000
MAX_NAME = 100
MAX_CAUSE = 300
MAX_DATA = 64_000

_ID = re.compile(r"(?i)^\s*(?:inc-)?(\d{1,18})\s*$")


class IncidentError(Exception):
    """An unknown incident, a transition that is not allowed, or input that cannot be stored."""


@dataclass(frozen=True)
class Incident:
    id: str
    title: str
    severity: Severity
    state: IncidentState
    owner: str
    opened_at: datetime
    acknowledged_at: datetime | None
    mitigated_at: datetime | None
    resolved_at: datetime | None
    causes: tuple[str, ...]
    """What opened or joined it: "slo:<name>", "budget:<name>", "alert:<source>/<alertname>"."""
    auto: bool
    """Opened by the feed (console.incident_feed), not by a person."""
    updated_at: datetime

    @property
    def resolved(self) -> bool:
        return self.state == "resolved"


@dataclass(frozen=True)
class TimelineEntry:
    incident_id: str
    seq: int
    at: datetime
    kind: EntryKind
    author: str
    text: str
    data_json: str

    @property
    def data(self) -> dict[str, Any]:
        value = json.loads(self.data_json) if self.data_json else {}
        return value if isinstance(value, dict) else {"value": value}


def normalize_id(incident_id: str) -> str:
    """"INC-7", "inc-7", " 7 " -> "INC-7"; any other id (an import's) is kept as given."""
    text = str(incident_id)
    match = _ID.match(text)
    if match:
        return f"INC-{int(match.group(1))}"
    if not text.strip():
        raise IncidentError("an incident id is needed (INC-<n> or <n>)")
    return text.strip()


@dataclass(frozen=True)
class FeedFiring:
    """A cause the feed saw firing, and the incident it was announced on."""

    cause: str
    incident_id: str
    since: datetime
    level: int
    reason: str
    missing_since: datetime | None = None
    """When the feed first stopped seeing it (it is called resolved after the feed's hold)."""
