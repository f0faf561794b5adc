"""The shared SQLite state file: incidents (console.incidents) and actions (console.action_store).

Why SQLite and not the DuckDB cache: DuckDB lets one process hold a file, and the CLI must be
able to write (open an incident, add a note) while a console is open on the same machine.
SQLite in WAL mode lets any number of readers run beside one writer, across processes.

Rules every user of this module follows:
- one connection per thread (`connect()`; sqlite3 connections are not shared across threads);
- `isolation_level=None`: no implicit transactions; every write goes through `write(conn)`,
  which takes the write lock up front (`BEGIN IMMEDIATE`), so a read-then-write (dedupe,
  next id) cannot interleave with another process's;
- `busy_timeout` 10 s: a writer waits for another writer instead of failing at once;
- `synchronous=FULL`: a committed write survives a power cut;
- each module owns its tables and declares them with `ensure_schema(conn, name, version, ...)`.

Every failure reaches the caller as `StateError("cannot use the state file <path>: <reason>")`,
never as a bare sqlite3 error, so the CLI and console can say which file and why.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from console.paths import state_dir

STATE_FILE = "state.sqlite3"
BUSY_TIMEOUT_MS = 10_000
_DIR_MODE = 0o700
_FILE_MODE = 0o600

_SCHEMA_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_versions ("
    " name TEXT PRIMARY KEY, version INTEGER NOT NULL)"
)


class StateError(Exception):
    """The state file cannot be used: names the file and the reason (never a bare sqlite3 error)."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot use the state file {path}: {reason}")


class StateConnection(sqlite3.Connection):
    """A sqlite3 connection that remembers its file, so errors can name it."""

    state_path: Path = Path()


def default_state_db() -> Path:
    """`$XDG_STATE_HOME/llmdeck/state.sqlite3`."""
    return state_dir() / STATE_FILE


def path_of(conn: sqlite3.Connection) -> Path:
    """The file behind `conn` (for error messages)."""
    if isinstance(conn, StateConnection):
        return conn.state_path
    try:
        row = conn.execute("PRAGMA database_list").fetchone()
    except sqlite3.Error:
        return Path("?")
    return Path(row[2]) if row and row[2] else Path(":memory:")


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, sqlite3.OperationalError) and "locked" in text:
        return f"{text} (another llmdeck process held the write lock for over" \
               f" {BUSY_TIMEOUT_MS // 1000} s)"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return text


def _prepare_dir(directory: Path) -> None:
    if not directory.exists():
        directory.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
        os.chmod(directory, _DIR_MODE)  # the umask may have taken bits away; set exactly
    elif not directory.is_dir():
        raise NotADirectoryError(20, "its directory is not a directory", str(directory))
    else:  # incidents and actions are nobody else's business: tighten a directory others can read
        st = directory.stat()
        if stat.S_IMODE(st.st_mode) & 0o077 and st.st_uid == os.getuid():
            os.chmod(directory, _DIR_MODE)


def _prepare_file(path: Path) -> None:
    """Create the file 0600 before SQLite does (SQLite gives the -wal/-shm files the same mode);
    tighten an existing file that others could read."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, _FILE_MODE)
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & 0o077 and os.fstat(fd).st_uid == os.getuid():
            os.fchmod(fd, _FILE_MODE)
    finally:
        os.close(fd)


def connect(path: Path | None = None) -> sqlite3.Connection:
    """Open (creating if needed) the state file for this thread: WAL, busy_timeout 10 s,
    synchronous=FULL, autocommit mode (use `write()` for transactions)."""
    target = Path(path) if path is not None else default_state_db()
    try:
        _prepare_dir(target.parent)
        _prepare_file(target)
        conn = sqlite3.connect(str(target), timeout=BUSY_TIMEOUT_MS / 1000,
                               isolation_level=None, factory=StateConnection)
    except (OSError, sqlite3.Error) as exc:
        raise StateError(target, _reason(exc)) from exc
    assert isinstance(conn, StateConnection)
    conn.state_path = target
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        if not mode or str(mode[0]).lower() != "wal":
            raise StateError(target, f"WAL mode is not available (journal_mode is {mode})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error as exc:
        conn.close()
        raise StateError(target, _reason(exc)) from exc
    except StateError:
        conn.close()
        raise
    return conn


@contextmanager
def write(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: `BEGIN IMMEDIATE` (waits up to busy_timeout for other writers),
    COMMIT when the block ends, ROLLBACK if it raises. A sqlite3 error inside becomes a
    StateError; other exceptions (IncidentError, ...) are re-raised unchanged after rollback."""
    if conn.in_transaction:
        raise RuntimeError("state_db.write: a transaction is already open on this connection")
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise StateError(path_of(conn), _reason(exc)) from exc
    try:
        yield conn
    except BaseException as exc:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        if isinstance(exc, sqlite3.Error):
            raise StateError(path_of(conn), _reason(exc)) from exc
        raise
    try:
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        raise StateError(path_of(conn), _reason(exc)) from exc


@contextmanager
def read(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A read transaction: every query inside sees one snapshot (WAL: writers are not blocked)."""
    if conn.in_transaction:
        raise RuntimeError("state_db.read: a transaction is already open on this connection")
    try:
        conn.execute("BEGIN DEFERRED")
    except sqlite3.Error as exc:
        raise StateError(path_of(conn), _reason(exc)) from exc
    try:
        yield conn
    except sqlite3.Error as exc:
        raise StateError(path_of(conn), _reason(exc)) from exc
    finally:
        try:
            conn.execute("COMMIT")
        except sqlite3.Error:
            pass


def _known_version(conn: sqlite3.Connection, name: str) -> int | None:
    """`name`'s version as stored, read without a transaction; None if not there (yet)."""
    try:
        row = conn.execute("SELECT version FROM schema_versions WHERE name = ?", (name,)).fetchone()
    except sqlite3.OperationalError:
        return None  # no schema_versions table yet
    except sqlite3.Error as exc:
        raise StateError(path_of(conn), _reason(exc)) from exc
    return int(row[0]) if row else None


def ensure_schema(conn: sqlite3.Connection, name: str, version: int,
                  statements: Sequence[str]) -> None:
    """Create module `name`'s tables at `version`, once; idempotent and safe across processes.

    `statements` must be idempotent DDL (`CREATE TABLE IF NOT EXISTS`, `CREATE INDEX IF NOT
    EXISTS`): a file at an older version of `name` runs them again (adding what is new) and is
    marked `version`; a module that changes a column writes its own migration statements. A
    file at a NEWER version (written by a newer llmdeck) is refused with a StateError rather
    than misread.
    """
    if version < 1:
        raise ValueError(f"ensure_schema({name!r}): version must be >= 1, not {version}")
    if _known_version(conn, name) == version:
        return  # the usual case: no write lock taken (a reader never waits for a writer here)
    with write(conn):
        conn.execute(_SCHEMA_TABLE)
        row = conn.execute("SELECT version FROM schema_versions WHERE name = ?",
                           (name,)).fetchone()
        current = int(row[0]) if row else 0
        if current > version:
            raise StateError(path_of(conn),
                             f"its '{name}' tables are version {current}, written by a newer"
                             f" llmdeck; this one knows version {version} (upgrade llmdeck)")
        if current == version:
            return
        for statement in statements:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_versions(name, version) VALUES (?, ?)"
                     " ON CONFLICT(name) DO UPDATE SET version = excluded.version",
                     (name, version))


class ThreadConnections:
    """One connection per thread to `path`, opened on first use with module `name`'s schema
    ensured: what every store on the state file needs (sqlite3 connections stay in their thread)."""

    def __init__(self, path: Path, name: str, version: int, statements: Sequence[str]) -> None:
        self.path = path
        self._schema = (name, version, tuple(statements))
        self._local = threading.local()

    def get(self) -> sqlite3.Connection:
        """This thread's connection (opened, and the schema ensured, the first time)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            try:
                ensure_schema(conn, *self._schema)
            except BaseException:
                conn.close()
                raise
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close this thread's connection, if any (a worker thread about to end calls this)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            conn.close()
