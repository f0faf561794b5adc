"""What the choke point remembers across processes: actions sent, idempotency keys, pending reverts.

Tables in the shared state file (`console.state_db`, WAL, so the CLI and a console can
both act). An action row is written with status "sent" inside `BEGIN IMMEDIATE` before its
first request leaves, keyed by its idempotency key: a second apply of the same plan, from
this process or another, finds the key and is refused locally instead of sending twice.
A time-boxed action leaves a pending revert row that a restarted console performs
(`ActionDesk.run_due_reverts`); a revert that cannot run keeps its row and its reason.
Parameters are stored masked (secret ones as `***`), never the secrets themselves.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from console import state_db

SCHEMA_NAME = "actions"
SCHEMA_VERSION = 2  # 2: action_senders (who is sending a "sent" row)
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS actions ("
    " action_id TEXT PRIMARY KEY, idempotency_key TEXT NOT NULL UNIQUE, plan_id TEXT NOT NULL,"
    " action TEXT NOT NULL, adapter TEXT NOT NULL, gateway TEXT NOT NULL, target TEXT NOT NULL,"
    " params_json TEXT NOT NULL, before_json TEXT NOT NULL, desired_json TEXT NOT NULL,"
    " origin TEXT NOT NULL, incident_id TEXT, revert_of TEXT NOT NULL DEFAULT '',"
    " user TEXT NOT NULL, status TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '',"
    " time_box_seconds REAL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS actions_target ON actions(adapter, gateway, target, created_at)",
    "CREATE TABLE IF NOT EXISTS action_reverts ("
    " action_id TEXT PRIMARY KEY REFERENCES actions(action_id), due_at TEXT NOT NULL,"
    " state TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '', attempts INTEGER NOT NULL DEFAULT 0,"
    " last_try_at TEXT, revert_action_id TEXT NOT NULL DEFAULT '', started_at TEXT)",
    "CREATE INDEX IF NOT EXISTS action_reverts_due ON action_reverts(state, due_at)",
    "CREATE TABLE IF NOT EXISTS action_senders ("
    " action_id TEXT PRIMARY KEY REFERENCES actions(action_id), pid INTEGER NOT NULL,"
    " host TEXT NOT NULL, started_at TEXT NOT NULL)",
)
RevertState = Literal["pending", "running", "done"]
UNKNOWN_STATUSES = ("sent", "unknown")
"""An action row still "sent" is being sent (its sender alive and within its gateway timeout,
see `action_senders` and `runbook_reverts.in_flight`) or its process died before the outcome;
"unknown" means no answer came back. Both stay until `ActionDesk.resolve_unknown` reads the
state back (which waits out one still in flight)."""


class AlreadySent(Exception):
    """The idempotency key was already used (by `action_id`): the request is not sent again."""

    def __init__(self, action_id: str, status: str) -> None:
        super().__init__(f"already sent as action {action_id} ({status}): not sent twice")
        self.action_id = action_id
        self.status = status


def _ts(at: datetime) -> str:
    return at.isoformat(timespec="microseconds")


def _dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


@dataclass(frozen=True)
class ActionRecord:
    """One action sent (or being sent) by the choke point."""

    action_id: str
    idempotency_key: str
    plan_id: str
    action: str
    adapter: str
    gateway: str
    target: str
    params_json: str
    """Masked: secret parameters are `***`."""
    before_json: str
    desired_json: str
    origin: str
    incident_id: str | None
    revert_of: str
    user: str
    status: str
    detail: str
    time_box: timedelta | None
    created_at: datetime
    updated_at: datetime

    @property
    def params(self) -> dict[str, Any]:
        return dict(json.loads(self.params_json))

    @property
    def before(self) -> dict[str, Any]:
        return dict(json.loads(self.before_json))

    @property
    def desired(self) -> dict[str, Any]:
        return dict(json.loads(self.desired_json))


@dataclass(frozen=True)
class PendingRevert:
    """A time box's revert: due at `due_at`; `reason` says why the last try could not run it."""

    action_id: str
    action: str
    target: str
    gateway: str
    due_at: datetime
    state: RevertState
    reason: str
    attempts: int
    last_try_at: datetime | None
    revert_action_id: str


_ACTION_COLUMNS = ("action_id, idempotency_key, plan_id, action, adapter, gateway, target, params_json,"
                   " before_json, desired_json, origin, incident_id, revert_of, user, status, detail,"
                   " time_box_seconds, created_at, updated_at")


def _record(row: tuple[Any, ...]) -> ActionRecord:
    (action_id, key, plan_id, action, adapter, gateway, target, params, before, desired, origin,
     incident, revert_of, user, status, detail, box, created, updated) = row
    return ActionRecord(action_id, key, plan_id, action, adapter, gateway, target, params, before,
                        desired, origin, incident, revert_of, user, status, detail,
                        None if box is None else timedelta(seconds=box),
                        datetime.fromisoformat(created), datetime.fromisoformat(updated))


class ActionStore:
    """Actions, idempotency keys and pending reverts in the state file; one connection per thread."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or state_db.default_state_db()
        self._connections = state_db.ThreadConnections(self.path, SCHEMA_NAME, SCHEMA_VERSION, _SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        return self._connections.get()

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with state_db.read(self._conn()) as conn:
            yield conn

    def claim(self, record: ActionRecord) -> None:
        """Record `record` as "sent" before its first request leaves; AlreadySent when its
        idempotency key (or action id) was used before, by any process."""
        with state_db.write(self._conn()) as conn:
            row = conn.execute("SELECT action_id, status FROM actions WHERE idempotency_key = ?"
                               " OR action_id = ?", (record.idempotency_key, record.action_id)).fetchone()
            if row is not None:
                raise AlreadySent(row[0], row[1])
            box = None if record.time_box is None else record.time_box.total_seconds()
            conn.execute(
                f"INSERT INTO actions ({_ACTION_COLUMNS}) VALUES ({', '.join('?' * 19)})",
                (record.action_id, record.idempotency_key, record.plan_id, record.action, record.adapter,
                 record.gateway, record.target, record.params_json, record.before_json,
                 record.desired_json, record.origin, record.incident_id, record.revert_of, record.user,
                 record.status, record.detail, box, _ts(record.created_at), _ts(record.updated_at)))
            conn.execute("INSERT INTO action_senders (action_id, pid, host, started_at) VALUES (?, ?, ?, ?)",
                         (record.action_id, os.getpid(), socket.gethostname(), _ts(record.created_at)))

    def sender(self, action_id: str) -> tuple[int, str, datetime] | None:
        """(pid, host, started_at) of the process that claimed `action_id`; None for rows older
        than schema 2."""
        with self._reading() as conn:
            row = conn.execute("SELECT pid, host, started_at FROM action_senders WHERE action_id = ?",
                               (action_id,)).fetchone()
        return None if row is None else (int(row[0]), str(row[1]), datetime.fromisoformat(row[2]))

    def used_key(self, idempotency_key: str) -> ActionRecord | None:
        """The action that used this idempotency key, if any."""
        with self._reading() as conn:
            row = conn.execute(f"SELECT {_ACTION_COLUMNS} FROM actions WHERE idempotency_key = ?",
                               (idempotency_key,)).fetchone()
        return None if row is None else _record(row)

    def finish(self, action_id: str, status: str, detail: str, at: datetime) -> None:
        """The outcome of an action (also a later verify resolving an unknown one)."""
        with state_db.write(self._conn()) as conn:
            conn.execute("UPDATE actions SET status = ?, detail = ?, updated_at = ? WHERE action_id = ?",
                         (status, detail, _ts(at), action_id))

    def get(self, action_id: str) -> ActionRecord | None:
        """The action with this id (or the only one whose id starts with it)."""
        with self._reading() as conn:
            rows = conn.execute(f"SELECT {_ACTION_COLUMNS} FROM actions WHERE action_id = ?"
                                " OR action_id LIKE ? ORDER BY action_id = ? DESC LIMIT 2",
                                (action_id, action_id.replace("%", "").replace("_", "") + "%",
                                 action_id)).fetchall()
        if not rows or (len(rows) > 1 and rows[0][0] != action_id):
            return None
        return _record(rows[0])

    def recent(self, limit: int = 200) -> list[ActionRecord]:
        """The newest actions first."""
        with self._reading() as conn:
            rows = conn.execute(f"SELECT {_ACTION_COLUMNS} FROM actions ORDER BY created_at DESC"
                                " LIMIT ?", (limit,)).fetchall()
        return [_record(r) for r in rows]

    def unknown(self) -> list[ActionRecord]:
        """Actions sent whose outcome is not known (a crash, a timeout), oldest first."""
        with self._reading() as conn:
            rows = conn.execute(f"SELECT {_ACTION_COLUMNS} FROM actions WHERE status IN (?, ?)"
                                " ORDER BY created_at", UNKNOWN_STATUSES).fetchall()
        return [_record(r) for r in rows]

    def unknown_on(self, adapter: str, gateway: str, target: str) -> ActionRecord | None:
        """The newest action on this target whose outcome is unknown (a retry must verify it first)."""
        with self._reading() as conn:
            row = conn.execute(
                f"SELECT {_ACTION_COLUMNS} FROM actions WHERE adapter = ? AND gateway = ? AND target = ?"
                " AND status IN (?, ?) ORDER BY created_at DESC LIMIT 1",
                (adapter, gateway, target, *UNKNOWN_STATUSES)).fetchone()
        return None if row is None else _record(row)

    def last_change(self, adapter: str, gateway: str, target: str) -> ActionRecord | None:
        """llmdeck's own newest applied change (not an undo or revert) to this target."""
        with self._reading() as conn:
            row = conn.execute(
                f"SELECT {_ACTION_COLUMNS} FROM actions WHERE adapter = ? AND gateway = ? AND target = ?"
                " AND status IN ('applied', 'unverified') AND revert_of = ''"
                " ORDER BY created_at DESC LIMIT 1", (adapter, gateway, target)).fetchone()
        return None if row is None else _record(row)

    def add_revert(self, action_id: str, due_at: datetime) -> None:
        with state_db.write(self._conn()) as conn:
            conn.execute("INSERT OR REPLACE INTO action_reverts (action_id, due_at, state)"
                         " VALUES (?, ?, 'pending')", (action_id, _ts(due_at)))

    def pending_reverts(self, due_by: datetime | None = None) -> list[PendingRevert]:
        """Reverts not yet done (only those due by `due_by` when given), soonest first."""
        query = ("SELECT r.action_id, a.action, a.target, a.gateway, r.due_at, r.state, r.reason,"
                 " r.attempts, r.last_try_at, r.revert_action_id FROM action_reverts r"
                 " JOIN actions a USING (action_id) WHERE r.state IN ('pending', 'running')")
        args: tuple[str, ...] = ()
        if due_by is not None:
            query, args = query + " AND r.due_at <= ?", (_ts(due_by),)
        with self._reading() as conn:
            rows = conn.execute(query + " ORDER BY r.due_at", args).fetchall()
        return [PendingRevert(r[0], r[1], r[2], r[3], datetime.fromisoformat(r[4]), r[5], r[6], r[7],
                              _dt(r[8]), r[9]) for r in rows]

    def claim_revert(self, action_id: str, at: datetime, stale_after: timedelta) -> tuple[bool, str]:
        """Take a due revert for this process (pending -> running) inside BEGIN IMMEDIATE, so two
        consoles (or a console and `runbook reverts --run`) never both send it. (False, why) when
        it is done, being run by another process (for less than `stale_after`), or when an
        earlier revert of it has an unknown outcome: that one is verified, never re-sent blind."""
        with state_db.write(self._conn()) as conn:
            row = conn.execute("SELECT state, started_at FROM action_reverts WHERE action_id = ?",
                               (action_id,)).fetchone()
            if row is None or row[0] == "done":
                return False, ""
            if row[0] == "running" and row[1] is not None and \
                    datetime.fromisoformat(row[1]) > at - stale_after:
                return False, ""
            unsure = conn.execute("SELECT action_id FROM actions WHERE revert_of = ? AND status IN (?, ?)"
                                  " ORDER BY created_at DESC LIMIT 1",
                                  (action_id, *UNKNOWN_STATUSES)).fetchone()
            if unsure is not None:
                reason = (f"revert {unsure[0]}: outcome unknown, not sent again; run `llmdeck runbook verify"
                          f" {unsure[0]}`")
                conn.execute("UPDATE action_reverts SET state = 'pending', reason = ?, last_try_at = ?"
                             " WHERE action_id = ?", (reason, _ts(at), action_id))
                return False, reason
            conn.execute("UPDATE action_reverts SET state = 'running', started_at = ? WHERE action_id = ?",
                         (_ts(at), action_id))
            return True, ""

    def revert_done(self, action_id: str, revert_action_id: str, at: datetime, note: str = "") -> None:
        """The revert ran (or is no longer needed: `note` says why, e.g. undone by hand)."""
        with state_db.write(self._conn()) as conn:
            conn.execute("UPDATE action_reverts SET state = 'done', revert_action_id = ?, reason = ?,"
                         " last_try_at = ?, attempts = attempts + 1 WHERE action_id = ? AND state != 'done'",
                         (revert_action_id, note, _ts(at), action_id))

    def revert_failed(self, action_id: str, reason: str, at: datetime) -> None:
        """The revert could not run: it stays pending, with why."""
        with state_db.write(self._conn()) as conn:
            conn.execute("UPDATE action_reverts SET state = 'pending', reason = ?, last_try_at = ?,"
                         " attempts = attempts + 1 WHERE action_id = ? AND state != 'done'",
                         (reason, _ts(at), action_id))

    def close(self) -> None:
        """Close this thread's connection (a worker thread about to end calls this)."""
        self._connections.close()
