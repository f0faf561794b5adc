"""Open and join incidents from what fires: paging SLOs, critical budgets, paging outside alerts.

The console calls `IncidentFeed.observe` on a worker after every refresh (whatever screen is
shown), with the overview's alerts and the outside (Prometheus / Alertmanager) alerts. Causes:

- "slo:<name>"                 an SLO at page level (console.slo.AlertLevel.PAGE)
- "budget:<name>"              a budget at critical (console.snapshots.BudgetLevel.CRITICAL)
- "alert:<source>/<alertname>" an outside alert that pages (firing, not silenced, not inhibited,
                               severity label critical/page/error/emergency/sev1/sev2/high)

A cause that starts firing is announced once: if an unresolved incident already carries it, an
alert_firing entry goes there; else it joins the newest incident the feed opened within
`join_window` (one scripted outage -> one incident with three causes; a sev1 cause raises a sev2
incident it joins to sev1); else it opens one (sev2; sev1 for an alert labelled sev1). A cause
that stops firing writes alert_resolved on the incident it was announced on. What was firing is
kept in SQLite, so a restarted console (or a second one) does not announce it again; the whole
observe runs in one write transaction.

A cause that stops firing is called resolved once it has stayed away `resolve_after` (default
1 minute, by the `at` of the observations); back sooner, nothing is written.
A cause still firing on an incident someone resolved is not re-announced until it resolves and
fires again: the person decided, and the feed does not reopen behind their back.
Alert text (reasons, summaries, labels) is untrusted: stored as given (capped), cleaned where
shown.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from console.alerts import PAGING_SEVERITIES, ActiveAlert, loud
from console.incidents import (
    MAX_CAUSE,
    MAX_TEXT,
    MAX_TITLE,
    FeedFiring,
    Incident,
    IncidentError,
    IncidentStore,
    Severity,
    TimelineEntry,
)
from console.slo import AlertLevel
from console.snapshots import Alert, BudgetLevel
from console.timeutil import naive_utc

MAX_LABEL = 200
MAX_LABELS = 40
MAX_REASON = 1000
"""Untrusted alert text is clipped to these sizes so that no alert can make the store refuse the
feed's writes (the store's caps are errors; the feed must keep running)."""

RESOLVE_AFTER = timedelta(minutes=1)
"""How long a cause must stay away before it is called resolved: a flapping alert or one failed
read does not write resolved/firing pairs on every refresh."""

OUTSIDE_PAGING = PAGING_SEVERITIES | {"sev1", "sev2", "high"}
"""`severity` label values of outside alerts that open incidents."""


@dataclass(frozen=True)
class Firing:
    """One cause firing now, with what to write about it."""

    cause: str
    level: int
    title: str
    reason: str
    severity: Severity
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FeedResult:
    """What one observe wrote: incidents opened, incidents a new cause joined (each as it stands
    after the observe), and the alert_firing / alert_resolved entries (the opened / joined /
    severity entries are on the incidents' timelines)."""

    opened: tuple[Incident, ...] = ()
    joined: tuple[Incident, ...] = ()
    entries: tuple[TimelineEntry, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.opened or self.joined or self.entries)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _matches(cause: str, unknown: Collection[str]) -> bool:
    return any(cause == u or (u.endswith("/") and cause.startswith(u)) for u in unknown)


def firing_causes(alerts: Sequence[Alert], outside: Sequence[ActiveAlert]) -> dict[str, Firing]:
    """The causes firing now, in the overview's order (SLOs, budgets, then outside alerts)."""
    found: dict[str, Firing] = {}
    for a in alerts:
        name, reason = _clip(a.name, MAX_LABEL), _clip(a.reason, MAX_REASON)
        if a.source == "slo" and a.level >= AlertLevel.PAGE:
            cause, title = f"slo:{name}", f"SLO {name} pages: {reason}"
        elif a.source == "budget" and a.level >= BudgetLevel.CRITICAL:
            cause, title = f"budget:{name}", f"budget {name} critical: {reason}"
        else:
            continue  # tickets, warnings; outside alerts come from `outside`, with their labels
        found.setdefault(cause, Firing(cause, a.level, _clip(title, MAX_TITLE), reason, "sev2",
                                       {"source": a.source, "name": name, "level": a.level,
                                        "reason": reason}))
    counts: dict[str, int] = {}
    for o in loud(outside):
        if o.silenced_by or o.inhibited_by or o.severity.lower() not in OUTSIDE_PAGING:
            continue
        cause = _clip(f"alert:{o.source}/{o.name}", MAX_CAUSE)
        counts[cause] = counts.get(cause, 0) + 1
        if cause in found:
            continue
        reason = _clip(o.summary or f"{o.name} firing on {o.source}", MAX_REASON)
        labels = {_clip(k, MAX_LABEL): _clip(v, MAX_LABEL) for k, v in o.labels[:MAX_LABELS]}
        data = {"source": _clip(o.source, MAX_LABEL), "origin": o.origin, "name": _clip(o.name, MAX_LABEL),
                "severity": _clip(o.severity, MAX_LABEL), "labels": labels, "summary": reason,
                "value": _clip(o.value, MAX_LABEL),
                "started": o.started.isoformat() if o.started else None,
                "fingerprint": o.fingerprint}
        severity: Severity = "sev1" if o.severity.lower() == "sev1" else "sev2"
        found[cause] = Firing(cause, 2, _clip(f"alert {o.name} ({o.source}): {reason}", MAX_TITLE),
                              reason, severity, data)
    for cause, count in counts.items():
        if count > 1:  # the same alertname on several series: one cause, say how many
            f = found[cause]
            found[cause] = Firing(f.cause, f.level, f.title, f.reason, f.severity,
                                  {**f.data, "series": count})
    return found


class IncidentFeed:
    """Turns what fires into incidents and timeline entries (see the module docstring)."""

    def __init__(self, store: IncidentStore, *, join_window: timedelta = timedelta(minutes=30),
                 resolve_after: timedelta = RESOLVE_AFTER) -> None:
        self.store = store
        self.join_window = join_window
        self.resolve_after = resolve_after

    def observe(self, alerts: Sequence[Alert], outside: Sequence[ActiveAlert], at: datetime, *,
                figures: Mapping[str, Mapping[str, Any]] | None = None,
                unknown: Collection[str] = ()) -> FeedResult:
        """Compare what fires at `at` with what fired last time and write the difference.

        `figures` (optional, by cause) adds the SLO/cost figures of the moment to the entries.
        `unknown`: causes whose state cannot be known this time, kept as they were instead of
        being called resolved: a cause ("slo:<name>" whose source is down) or a prefix ending in
        "/" ("alert:<source>/" for an alert source that could not be read)."""
        at = naive_utc(at)
        now = firing_causes(alerts, outside)
        opened: list[Incident] = []
        joined: list[Incident] = []
        entries: list[TimelineEntry] = []
        with self.store.batch():
            before = self.store.feed_firing()
            for cause, firing in now.items():
                if cause in before:
                    continue
                data = {**firing.data, **dict((figures or {}).get(cause, {}))}
                incident = self._announce(firing, data, at, opened, joined)
                entries.append(self.store.add_entry(incident.id, "alert_firing",
                                                    _clip(f"{cause} firing: {firing.reason}", MAX_TEXT),
                                                    author="llmdeck", data={"cause": cause, **data},
                                                    at=at))
                self.store.set_feed_firing(FeedFiring(cause, incident.id, at, firing.level,
                                                      firing.reason))
            for cause, was in before.items():
                if cause in now:
                    if was.missing_since is not None:  # back within the hold: nothing to tell
                        self.store.set_feed_missing(cause, None)
                    continue
                if _matches(cause, unknown):
                    continue
                if was.missing_since is None:
                    self.store.set_feed_missing(cause, at)
                missing_since = was.missing_since or at
                if at - missing_since < self.resolve_after:
                    continue
                self.store.clear_feed_firing(cause)
                data = {"cause": cause, "since": was.since.isoformat(), "last_reason": was.reason,
                        "missing_since": missing_since.isoformat(),
                        **dict((figures or {}).get(cause, {}))}
                try:
                    entries.append(self.store.add_entry(was.incident_id, "alert_resolved",
                                                        f"{cause} resolved", author="llmdeck",
                                                        data=data, at=at))
                except IncidentError:
                    continue  # its incident is gone (an import replaced it): nothing to tell
            # each incident once, as it stands after this observe
            opened_ids = list(dict.fromkeys(i.id for i in opened))
            joined_ids = [i for i in dict.fromkeys(i.id for i in joined) if i not in opened_ids]
            final = {key: self.store.get(key) for key in (*opened_ids, *joined_ids)}
        return FeedResult(tuple(final[k] for k in opened_ids), tuple(final[k] for k in joined_ids),
                          tuple(entries))

    def _announce(self, firing: Firing, data: Mapping[str, Any], at: datetime,
                  opened: list[Incident], joined: list[Incident]) -> Incident:
        """The incident a newly firing cause goes on: its own, the newest auto one, or a new one."""
        existing = self.store.find_open(firing.cause)
        if existing is not None:
            return existing
        recent = self.store.newest_auto_open(at - self.join_window)
        if recent is not None:
            incident = self.store.join(recent.id, firing.cause,
                                       _clip(f"{firing.cause} joined: {firing.reason}", MAX_TEXT),
                                       author="llmdeck", data=data, at=at)
            incident = self.store.escalate(incident.id, firing.severity, author="llmdeck",
                                           reason=f"{firing.cause} joined", at=at)
            joined.append(incident)
            return incident
        incident, _ = self.store.open(firing.title, severity=firing.severity, cause=firing.cause,
                                      author="llmdeck", data=data, at=at, auto=True)
        opened.append(incident)
        return incident
