"""Incidents and their timelines, in the shared SQLite state file (console.state_db).

Why SQLite: the CLI (`llmdeck incidents open/note/ack`) must write while a console is open on
the same machine, and two consoles may both run the feed; WAL lets readers and one writer at a
time share the file across processes. Every read-then-write (dedupe on the cause, the next
INC-<n>, the next timeline seq, a state change) runs inside one `BEGIN IMMEDIATE` transaction,
and a partial UNIQUE index on the causes of unresolved incidents makes "one incident per cause
while open" hold even if some path forgot to look first.

Lifecycle: open -> acknowledged -> mitigated -> resolved, forward only; steps may be skipped
(open -> resolved is fine), going back or repeating a state is an IncidentError ("INC-3 is
already resolved"). Every change writes a timeline entry. Text (titles, notes) is stored as
given and cleaned where it is shown (console.safe_text); it is length-capped here.
Times are naive UTC (console.timeutil.utc_now). Ids: "INC-<n>" for incidents opened here
(get() also accepts "inc-7" and "7"); imported incidents (issue 13) keep their own ids.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from console import state_db
from console.incident_types import (
    ENTRY_KINDS,
    MAX_CAUSE,
    MAX_DATA,
    MAX_NAME,
    MAX_TEXT,
    MAX_TITLE,
    SEVERITIES,
    STATES,
    UNRESOLVED,
    EntryKind,
    FeedFiring,
    Incident,
    IncidentError,
    IncidentState,
    Severity,
    TimelineEntry,
    normalize_id,
)
from console.operator import user_name
from console.timeutil import naive_utc, utc_now

__all__ = [  # the types live in console.incident_types; the store's users import them from here
    "IncidentStore", "ENTRY_KINDS", "MAX_CAUSE", "MAX_DATA", "MAX_NAME", "MAX_TEXT", "MAX_TITLE",
    "SEVERITIES", "STATES", "UNRESOLVED", "EntryKind", "FeedFiring", "Incident", "IncidentError",
    "IncidentState", "Severity", "TimelineEntry", "normalize_id",
]

SCHEMA_NAME = "incidents"
SCHEMA_VERSION = 2  # 2: incident_feed_missing
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS incidents ("
    " id TEXT PRIMARY KEY, num INTEGER UNIQUE, title TEXT NOT NULL, severity TEXT NOT NULL,"
    " state TEXT NOT NULL, owner TEXT NOT NULL, opened_at TEXT NOT NULL, acknowledged_at TEXT,"
    " mitigated_at TEXT, resolved_at TEXT, auto INTEGER NOT NULL, updated_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS incident_causes ("
    " incident_id TEXT NOT NULL REFERENCES incidents(id), cause TEXT NOT NULL,"
    " added_at TEXT NOT NULL, unresolved INTEGER NOT NULL, PRIMARY KEY (incident_id, cause))",
    # one unresolved incident per cause, whatever process writes
    "CREATE UNIQUE INDEX IF NOT EXISTS incident_causes_open ON incident_causes(cause)"
    " WHERE unresolved = 1",
    "CREATE TABLE IF NOT EXISTS incident_timeline ("
    " incident_id TEXT NOT NULL REFERENCES incidents(id), seq INTEGER NOT NULL, at TEXT NOT NULL,"
    " kind TEXT NOT NULL, author TEXT NOT NULL, text TEXT NOT NULL, data_json TEXT NOT NULL,"
    " PRIMARY KEY (incident_id, seq))",
    # what the feed last saw firing (console.incident_feed): a restart does not re-announce
    "CREATE TABLE IF NOT EXISTS incident_feed_firing ("
    " cause TEXT PRIMARY KEY, incident_id TEXT NOT NULL, since TEXT NOT NULL, level INTEGER NOT NULL,"
    " reason TEXT NOT NULL)",
    # since when the feed has not seen a remembered cause (resolved only after a hold: no flapping)
    "CREATE TABLE IF NOT EXISTS incident_feed_missing (cause TEXT PRIMARY KEY, since TEXT NOT NULL)",
)

_COLUMNS = ("id, title, severity, state, owner, opened_at, acknowledged_at, mitigated_at,"
            " resolved_at, auto, updated_at")


def _ts(dt: datetime) -> str:
    return naive_utc(dt).isoformat(timespec="microseconds")


def _dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _capped(what: str, value: str, limit: int, *, empty_ok: bool = False) -> str:
    if not isinstance(value, str):
        raise IncidentError(f"{what} must be text, not {type(value).__name__}")
    if not empty_ok and not value.strip():
        raise IncidentError(f"{what} is empty")
    if len(value) > limit:
        raise IncidentError(f"{what} is {len(value)} characters; at most {limit}")
    return value


def _data_json(data: Mapping[str, Any] | None) -> str:
    text = json.dumps(dict(data or {}), sort_keys=True, ensure_ascii=False, default=str)
    if len(text) > MAX_DATA:
        raise IncidentError(f"entry data is {len(text)} characters of JSON; at most {MAX_DATA}")
    return text


class IncidentStore:
    """Incidents in `path` (default: the shared state file). One SQLite connection per thread,
    opened on first use; safe to share one store between threads and to run in many processes."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else state_db.default_state_db()
        self._connections = state_db.ThreadConnections(self.path, SCHEMA_NAME, SCHEMA_VERSION, SCHEMA)
        self._local = threading.local()  # this thread's batch flag

    # -- connection and transactions ------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        return self._connections.get()

    def close(self) -> None:
        """Close this thread's connection (others close with their threads)."""
        self._connections.close()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Run several store calls in ONE write transaction (the feed's observe): they see each
        other's writes and no other process's in between. Nested batches join the outer one."""
        if getattr(self._local, "batch", False):
            yield
            return
        conn = self._conn()
        with state_db.write(conn):
            self._local.batch = True
            try:
                yield
            finally:
                self._local.batch = False

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        with self.batch():
            yield self._conn()

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        if conn.in_transaction:
            yield conn
            return
        with state_db.read(conn):
            yield conn

    # -- reads ------------------------------------------------------------------------------

    def _row_to_incident(self, conn: sqlite3.Connection, row: tuple[Any, ...]) -> Incident:
        causes = tuple(r[0] for r in conn.execute(
            "SELECT cause FROM incident_causes WHERE incident_id = ? ORDER BY rowid",
            (row[0],)))
        return Incident(id=row[0], title=row[1], severity=row[2], state=row[3], owner=row[4],
                        opened_at=datetime.fromisoformat(row[5]), acknowledged_at=_dt(row[6]),
                        mitigated_at=_dt(row[7]), resolved_at=_dt(row[8]), causes=causes,
                        auto=bool(row[9]), updated_at=datetime.fromisoformat(row[10]))

    def _get(self, conn: sqlite3.Connection, incident_id: str) -> Incident:
        key = normalize_id(incident_id)
        row = conn.execute(f"SELECT {_COLUMNS} FROM incidents WHERE id = ?", (key,)).fetchone()
        if row is None:
            raise IncidentError(f"no incident {key} (`llmdeck incidents list --all` lists them)")
        return self._row_to_incident(conn, row)

    def get(self, incident_id: str) -> Incident:
        """The incident `incident_id` ("INC-7", "inc-7" or "7"); IncidentError if unknown."""
        with self._reading() as conn:
            return self._get(conn, incident_id)

    def list(self, *, include_resolved: bool = True, limit: int = 200) -> list[Incident]:
        """Unresolved first (open, then acknowledged, then mitigated), then resolved; newest
        opened first within each state."""
        where = "" if include_resolved else "WHERE state != 'resolved'"
        order = ("CASE state WHEN 'open' THEN 0 WHEN 'acknowledged' THEN 1"
                 " WHEN 'mitigated' THEN 2 ELSE 3 END, opened_at DESC, num DESC")
        with self._reading() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM incidents {where} ORDER BY {order}"
                                " LIMIT ?", (max(0, int(limit)),)).fetchall()
            return [self._row_to_incident(conn, row) for row in rows]

    def _find_open(self, conn: sqlite3.Connection, cause: str) -> Incident | None:
        row = conn.execute("SELECT incident_id FROM incident_causes WHERE cause = ?"
                           " AND unresolved = 1", (cause,)).fetchone()
        return self._get(conn, row[0]) if row else None

    def find_open(self, cause: str) -> Incident | None:
        """The unresolved incident carrying `cause`, if any."""
        with self._reading() as conn:
            return self._find_open(conn, cause)

    def timeline(self, incident_id: str) -> builtins.list[TimelineEntry]:
        """Every entry of the incident, oldest first (by seq)."""
        with self._reading() as conn:
            key = self._get(conn, incident_id).id
            rows = conn.execute("SELECT incident_id, seq, at, kind, author, text, data_json"
                                " FROM incident_timeline WHERE incident_id = ? ORDER BY seq",
                                (key,)).fetchall()
        return [TimelineEntry(r[0], r[1], datetime.fromisoformat(r[2]), r[3], r[4], r[5], r[6])
                for r in rows]

    # -- writes -------------------------------------------------------------------------------

    def _entry(self, conn: sqlite3.Connection, incident_id: str, kind: str, text: str,
               author: str | None, data: Mapping[str, Any] | None,
               at: datetime | None) -> TimelineEntry:
        if kind not in ENTRY_KINDS:
            raise IncidentError(f"unknown timeline entry kind {kind!r}; one of {', '.join(ENTRY_KINDS)}")
        text = _capped("the text", text, MAX_TEXT, empty_ok=kind != "note")
        who = _capped("the author", author or user_name(), MAX_NAME)
        when = naive_utc(at) if at is not None else utc_now()
        data_json = _data_json(data)
        seq = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM incident_timeline"
                           " WHERE incident_id = ?", (incident_id,)).fetchone()[0]
        conn.execute("INSERT INTO incident_timeline VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (incident_id, seq, _ts(when), kind, who, text, data_json))
        conn.execute("UPDATE incidents SET updated_at = ? WHERE id = ?", (_ts(utc_now()), incident_id))
        return TimelineEntry(incident_id, seq, when, kind, who, text, data_json)

    def open(self, title: str, *, severity: str = "sev3", cause: str | None = None,
             owner: str | None = None, author: str | None = None,
             data: Mapping[str, Any] | None = None, at: datetime | None = None,
             auto: bool = False) -> tuple[Incident, bool]:
        """Open an incident; (incident, True). With a `cause` already on an unresolved incident:
        (that incident, False), and nothing is written."""
        title = _capped("the title", title, MAX_TITLE)
        if severity not in SEVERITIES:
            raise IncidentError(f"unknown severity {severity!r}; one of {', '.join(SEVERITIES)}")
        who = _capped("the owner", owner or user_name(), MAX_NAME)
        if cause is not None:
            cause = _capped("the cause", cause, MAX_CAUSE)
        when = naive_utc(at) if at is not None else utc_now()
        with self._writing() as conn:
            if cause is not None:
                existing = self._find_open(conn, cause)
                if existing is not None:
                    return existing, False
            num = conn.execute("SELECT COALESCE(MAX(num), 0) + 1 FROM incidents").fetchone()[0]
            while conn.execute("SELECT 1 FROM incidents WHERE id = ?", (f"INC-{num}",)).fetchone():
                num += 1  # an imported incident (issue 13) already uses that id
            key = f"INC-{num}"
            conn.execute(f"INSERT INTO incidents({_COLUMNS}, num) VALUES"
                         " (?, ?, ?, 'open', ?, ?, NULL, NULL, NULL, ?, ?, ?)",
                         (key, title, severity, who, _ts(when), int(auto), _ts(utc_now()), num))
            if cause is not None:
                conn.execute("INSERT INTO incident_causes VALUES (?, ?, ?, 1)", (key, cause, _ts(when)))
            details: dict[str, Any] = {"severity": severity, "owner": who, "auto": auto}
            if cause is not None:
                details["cause"] = cause
            self._entry(conn, key, "opened", title, author, {**details, **dict(data or {})}, when)
            return self._get(conn, key), True

    def join(self, incident_id: str, cause: str, text: str, *, author: str | None = None,
             data: Mapping[str, Any] | None = None, at: datetime | None = None) -> Incident:
        """Add `cause` to an unresolved incident, with a "joined" entry. A cause already on it is
        a no-op; a cause on another unresolved incident is an IncidentError."""
        cause = _capped("the cause", cause, MAX_CAUSE)
        with self._writing() as conn:
            incident = self._get(conn, incident_id)
            if incident.resolved:
                raise IncidentError(f"{incident.id} is already resolved")
            holder = self._find_open(conn, cause)
            if holder is not None:
                if holder.id == incident.id:
                    return incident
                raise IncidentError(f"{cause} is already on {holder.id}")
            when = naive_utc(at) if at is not None else utc_now()
            conn.execute("INSERT INTO incident_causes VALUES (?, ?, ?, 1)"
                         " ON CONFLICT(incident_id, cause) DO UPDATE SET unresolved = 1",
                         (incident.id, cause, _ts(when)))
            self._entry(conn, incident.id, "joined", text, author, {"cause": cause, **dict(data or {})},
                        when)
            return self._get(conn, incident.id)

    def add_entry(self, incident_id: str, kind: EntryKind, text: str, *, author: str | None = None,
                  data: Mapping[str, Any] | None = None, at: datetime | None = None) -> TimelineEntry:
        """Append a timeline entry (any kind; resolved incidents take entries too: late outcomes,
        reverts, post-incident notes)."""
        with self._writing() as conn:
            key = self._get(conn, incident_id).id
            return self._entry(conn, key, kind, text, author, data, at)

    def note(self, incident_id: str, text: str, *, author: str | None = None) -> TimelineEntry:
        """A person's note on the timeline."""
        return self.add_entry(incident_id, "note", text, author=author)

    def _advance(self, incident_id: str, to: IncidentState, author: str | None, note: str) -> Incident:
        note = _capped("the note", note, MAX_TEXT, empty_ok=True)
        with self._writing() as conn:
            incident = self._get(conn, incident_id)
            if STATES.index(incident.state) >= STATES.index(to):
                past = "" if incident.state == to else f" (past {to})"
                raise IncidentError(f"{incident.id} is already {incident.state}{past}")
            now = utc_now()
            conn.execute(f"UPDATE incidents SET state = ?, {to}_at = ? WHERE id = ?",
                         (to, _ts(now), incident.id))
            if to == "resolved":
                conn.execute("UPDATE incident_causes SET unresolved = 0 WHERE incident_id = ?",
                             (incident.id,))
            text = f"{to}: {note}" if note.strip() else to
            self._entry(conn, incident.id, "state", text, author,
                        {"from": incident.state, "to": to}, now)
            return self._get(conn, incident.id)

    def acknowledge(self, incident_id: str, *, author: str | None = None, note: str = "") -> Incident:
        return self._advance(incident_id, "acknowledged", author, note)

    def mitigate(self, incident_id: str, *, author: str | None = None, note: str = "") -> Incident:
        return self._advance(incident_id, "mitigated", author, note)

    def resolve(self, incident_id: str, *, author: str | None = None, note: str = "") -> Incident:
        """Resolve: its causes are free again (a new firing opens a new incident)."""
        return self._advance(incident_id, "resolved", author, note)

    def escalate(self, incident_id: str, severity: Severity, *, author: str | None = None,
                 reason: str = "", at: datetime | None = None) -> Incident:
        """Raise the severity (sev1 is worst) with a "state" entry; a severity no worse than the
        current one changes nothing. Never lowers it: that is a person's call, not a feed's."""
        if severity not in SEVERITIES:
            raise IncidentError(f"unknown severity {severity!r}; one of {', '.join(SEVERITIES)}")
        reason = _capped("the reason", reason, MAX_TEXT - 40, empty_ok=True)
        with self._writing() as conn:
            incident = self._get(conn, incident_id)
            if incident.resolved:
                raise IncidentError(f"{incident.id} is already resolved")
            if SEVERITIES.index(severity) >= SEVERITIES.index(incident.severity):
                return incident
            conn.execute("UPDATE incidents SET severity = ? WHERE id = ?", (severity, incident.id))
            text = f"severity {incident.severity} -> {severity}" + (f": {reason}" if reason.strip() else "")
            self._entry(conn, incident.id, "state", text, author,
                        {"severity_from": incident.severity, "severity_to": severity}, at)
            return self._get(conn, incident.id)

    # -- for console.incident_feed (inside its batch) -------------------------------------------

    def newest_auto_open(self, since: datetime) -> Incident | None:
        """The newest unresolved incident the feed opened at or after `since` (a new cause
        joins it: one outage, one incident)."""
        with self._reading() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM incidents WHERE auto = 1 AND state != 'resolved'"
                               " AND opened_at >= ? ORDER BY opened_at DESC, num DESC LIMIT 1",
                               (_ts(since),)).fetchone()
            return self._row_to_incident(conn, row) if row else None

    def feed_firing(self) -> dict[str, FeedFiring]:
        """What the feed last saw firing, by cause."""
        with self._reading() as conn:
            rows = conn.execute("SELECT f.cause, f.incident_id, f.since, f.level, f.reason, m.since"
                                " FROM incident_feed_firing f LEFT JOIN incident_feed_missing m"
                                " ON m.cause = f.cause").fetchall()
        return {r[0]: FeedFiring(r[0], r[1], datetime.fromisoformat(r[2]), r[3], r[4], _dt(r[5]))
                for r in rows}

    def set_feed_firing(self, firing: FeedFiring) -> None:
        with self._writing() as conn:
            conn.execute("INSERT OR REPLACE INTO incident_feed_firing VALUES (?, ?, ?, ?, ?)",
                         (firing.cause, firing.incident_id, _ts(firing.since), firing.level,
                          firing.reason[:MAX_TEXT]))

    def clear_feed_firing(self, cause: str) -> None:
        with self._writing() as conn:
            conn.execute("DELETE FROM incident_feed_firing WHERE cause = ?", (cause,))
            conn.execute("DELETE FROM incident_feed_missing WHERE cause = ?", (cause,))

    def set_feed_missing(self, cause: str, since: datetime | None) -> None:
        """Remember since when a firing cause has not been seen (None: it is back)."""
        with self._writing() as conn:
            if since is None:
                conn.execute("DELETE FROM incident_feed_missing WHERE cause = ?", (cause,))
            else:
                conn.execute("INSERT OR REPLACE INTO incident_feed_missing VALUES (?, ?)",
                             (cause, _ts(since)))

