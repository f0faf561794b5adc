"""Views and pages of `:incidents` and one incident's detail, and the readers that answer them.

Like `console.views`, plain frozen data: the backend answers a view on a worker thread
from the incident store (SQLite, `console.incidents`) and the UI thread only renders
the page. A state file that cannot be read becomes the page's `problem` (the screen
says it), never an exception on the UI thread. No Textual here.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from console.action_store import ActionRecord, ActionStore
from console.incidents import Incident, IncidentError, IncidentStore, Severity, TimelineEntry
from console.safe_text import cell
from console.snapshots import ChangeMarker
from console.state_db import StateError

INCIDENT_LIMIT = 200
"""Incidents the list reads at most (unresolved first, so the ones that matter always fit)."""


@dataclass(frozen=True)
class IncidentsView:
    """Every incident, unresolved first (open, acknowledged, mitigated), newest first."""

    include_resolved: bool = True


@dataclass(frozen=True)
class IncidentView:
    """One incident: its header and its whole timeline."""

    incident_id: str


@dataclass(frozen=True)
class IncidentsPage:
    """What `:incidents` shows."""

    incidents: tuple[Incident, ...]
    problem: str = ""
    """Why the incident store could not be read ("" when it was)."""
    attention: tuple[str, ...] = ()
    """Actions to look at before anything else: outcomes unknown (sent, no answer: verify
    them), time-boxed reverts overdue or that could not run, each with why."""
    reverts: tuple[str, ...] = ()
    """Time-boxed actions still in force, and when each reverts itself."""


@dataclass(frozen=True)
class IncidentPage:
    """What one incident's screen shows; `incident` None when it is not found (the problem says)."""

    view: IncidentView
    incident: Incident | None
    timeline: tuple[TimelineEntry, ...]
    problem: str = ""


def read_incidents(store: IncidentStore, view: IncidentsView, actions: ActionStore | None = None,
                   now: datetime | None = None) -> IncidentsPage:
    """The list (a worker thread's read), and what needs attention among the actions; a state
    file that cannot be read is the page's problem."""
    try:
        found = store.list(include_resolved=view.include_resolved, limit=INCIDENT_LIMIT)
        attention = action_attention(actions, now) if actions is not None else ()
        reverts = upcoming_reverts(actions, now) if actions is not None else ()
    except (StateError, IncidentError) as exc:
        return IncidentsPage((), problem=cell(exc, 400))
    finally:  # worker threads come and go: their connections must not wait for the collector
        store.close()
        if actions is not None:
            actions.close()
    return IncidentsPage(tuple(found), attention=attention, reverts=reverts)


def upcoming_reverts(actions: ActionStore, now: datetime | None = None) -> tuple[str, ...]:
    """One line per time box still running (`↺ throttle-team on acme-corp reverts at 12:45Z`);
    overdue and failed ones are `action_attention`'s."""
    return tuple(f"↺ {r.action} on {r.target} reverts at {r.due_at:%H:%M}Z"
                 for r in actions.pending_reverts()
                 if not r.reason and (now is None or r.due_at > now))


SENT_STATUSES = frozenset({"applied", "unverified", "unknown", "sent", "failed"})
"""Actions that sent something (a failed one may have been refused after sending)."""


def action_markers(actions: ActionStore, start: datetime, end: datetime,
                   shift: timedelta = timedelta(0)) -> tuple[ChangeMarker, ...]:
    """Runbook actions that sent something in [start, end) of the charts' data time, as chart
    markers (`throttle-team acme-corp`). Actions are stamped with the wall clock: `shift` is
    the data clock minus the wall clock (the demo's simulated time runs ahead of it)."""
    try:
        recent = actions.recent(limit=50)
    except StateError:  # the charts do without markers; :incidents says what is wrong
        return ()
    finally:
        actions.close()
    markers = [ChangeMarker(r.created_at + shift, "action", f"{r.action} {r.target}")
               for r in recent if r.status in SENT_STATUSES and start <= r.created_at + shift < end]
    return tuple(sorted(markers, key=lambda m: m.ts))


def _sending_here(actions: ActionStore, record: ActionRecord) -> bool:
    """Whether a "sent" action's request is still on the wire: the process that claimed it
    runs on this host and is alive (it writes the outcome when the answer or its timeout
    comes). Such an action is not an unknown outcome yet, so it is not said as one."""
    if record.status != "sent":
        return False
    sender = actions.sender(record.action_id)
    if sender is None or sender[1] != socket.gethostname():
        return False
    try:
        os.kill(sender[0], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    return True


def action_attention(actions: ActionStore, now: datetime | None = None) -> tuple[str, ...]:
    """One line per action whose outcome is unknown, then per revert that is overdue or could
    not run (with its reason): said loudly until `llmdeck runbook verify` / the revert settles it."""
    lines = []
    for r in actions.unknown():
        if _sending_here(actions, r):
            lines.append(f"sending: {r.action} on {r.target} ({r.action_id}, {r.created_at:%H:%M}Z):"
                         " waiting for the answer")
        else:
            lines.append(f"OUTCOME UNKNOWN: {r.action} on {r.target} ({r.action_id}, {r.created_at:%H:%M}Z):"
                         f" it may or may not have taken; run `llmdeck runbook verify {r.action_id}`")
    for revert in actions.pending_reverts():
        if revert.reason:
            lines.append(f"REVERT NOT DONE: {revert.action} on {revert.target} (due"
                         f" {revert.due_at:%H:%M}Z): {revert.reason}")
        elif now is not None and revert.due_at <= now:
            lines.append(f"revert due: {revert.action} on {revert.target} (due"
                         f" {revert.due_at:%H:%M}Z): the console runs it within 15 s")
    return tuple(lines)


def read_incident(store: IncidentStore, view: IncidentView) -> IncidentPage:
    """One incident and its timeline, or why not (unknown id, unreadable state file)."""
    try:
        incident = store.get(view.incident_id)
        timeline = store.timeline(incident.id)
    except (StateError, IncidentError) as exc:
        return IncidentPage(view, None, (), problem=cell(exc, 400))
    finally:
        store.close()
    return IncidentPage(view, incident, tuple(timeline))


def cause_scope(cause: str) -> tuple[str, str]:
    """`slo:anthropic availability` -> ("slo", "anthropic availability"); the kind and the name
    (an alert's name is `source/alertname`)."""
    kind, _, name = cause.partition(":")
    return (kind, name) if name else ("", cause)


IncidentChange = Literal["open", "acknowledge", "mitigate", "resolve", "note"]
"""What a key on the incident screens asks for (the app runs `apply_change` on a worker)."""


def apply_change(store: IncidentStore, change: IncidentChange, incident_id: str, text: str = "",
                 *, severity: Severity = "sev3") -> str:
    """Write one change (a worker thread's write) and say what was done in one line.

    IncidentError (unknown id, a backward transition) and StateError (the state file) pass
    through: their messages already say what and where.
    """
    try:
        if change == "open":
            incident, _ = store.open(text, severity=severity)
            return f"opened {incident.id}"
        if change == "note":
            store.note(incident_id, text)
            return f"note added to {incident_id}"
        if change == "acknowledge":
            return f"{store.acknowledge(incident_id).id} acknowledged"
        if change == "mitigate":
            return f"{store.mitigate(incident_id).id} mitigated"
        return f"{store.resolve(incident_id).id} resolved"
    finally:
        store.close()


__all__ = [
    "IncidentChange",
    "IncidentPage",
    "IncidentView",
    "IncidentsPage",
    "IncidentsView",
    "action_attention",
    "action_markers",
    "apply_change",
    "cause_scope",
    "read_incident",
    "read_incidents",
]
