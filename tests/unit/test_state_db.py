"""console.state_db: the shared SQLite state file (modes, pragmas, transactions, schema versions)."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from console import state_db
from console.paths import state_dir
from console.state_db import StateError


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_default_path_is_under_xdg_state_home() -> None:
    assert state_db.default_state_db() == state_dir() / "state.sqlite3"


def test_connect_creates_private_dir_and_file_with_wal_pragmas() -> None:
    conn = state_db.connect()
    path = state_db.default_state_db()
    try:
        assert path.is_file()
        assert _mode(path.parent) == 0o700
        assert _mode(path) == 0o600
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.isolation_level is None
        assert state_db.path_of(conn) == path
        # the WAL file SQLite creates on the first write takes the database file's mode
        state_db.ensure_schema(conn, "t", 1, ["CREATE TABLE IF NOT EXISTS t (x)"])
        wal = path.with_name(path.name + "-wal")
        assert wal.exists() and _mode(wal) == 0o600
    finally:
        conn.close()


def test_connect_tightens_a_world_readable_existing_file_and_dir(tmp_path: Path) -> None:
    directory = tmp_path / "state"
    directory.mkdir()
    directory.chmod(0o755)
    path = directory / "s.sqlite3"
    path.touch(mode=0o644)
    path.chmod(0o644)
    state_db.connect(path).close()
    assert _mode(path) == 0o600
    assert _mode(directory) == 0o700


def test_write_commits_and_rolls_back(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    conn = state_db.connect(path)
    state_db.ensure_schema(conn, "t", 1, ["CREATE TABLE IF NOT EXISTS t (x INTEGER)"])
    with state_db.write(conn):
        conn.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(ValueError, match="boom"), state_db.write(conn):
        conn.execute("INSERT INTO t VALUES (2)")
        raise ValueError("boom")
    assert not conn.in_transaction
    other = state_db.connect(path)
    assert [r[0] for r in other.execute("SELECT x FROM t")] == [1]
    with pytest.raises(StateError, match=r"s\.sqlite3: .*no such table"), state_db.write(conn):
        conn.execute("INSERT INTO missing VALUES (1)")
    assert not conn.in_transaction


def test_nested_write_is_a_programming_error(tmp_path: Path) -> None:
    conn = state_db.connect(tmp_path / "s.sqlite3")
    with state_db.write(conn), pytest.raises(RuntimeError, match="already open"), \
            state_db.write(conn):
        pass


def test_a_held_write_lock_becomes_a_clear_state_error(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    holder = state_db.connect(path)
    waiter = state_db.connect(path)
    waiter.execute("PRAGMA busy_timeout = 0")  # fail at once instead of waiting 10 s
    with state_db.write(holder):
        with pytest.raises(StateError) as info, state_db.write(waiter):
            pass
    assert str(path) in str(info.value)
    assert "locked" in str(info.value)
    with state_db.write(waiter):  # the lock is free again
        pass


def test_reader_snapshot_does_not_block_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    reader = state_db.connect(path)
    writer = state_db.connect(path)
    state_db.ensure_schema(writer, "t", 1, ["CREATE TABLE IF NOT EXISTS t (x INTEGER)"])
    writer.execute("PRAGMA busy_timeout = 0")  # any blocking would fail rather than wait
    with state_db.read(reader):
        assert reader.execute("SELECT count(*) FROM t").fetchone()[0] == 0
        with state_db.write(writer):
            writer.execute("INSERT INTO t VALUES (1)")
        # the reader keeps its snapshot until its transaction ends
        assert reader.execute("SELECT count(*) FROM t").fetchone()[0] == 0
    assert reader.execute("SELECT count(*) FROM t").fetchone()[0] == 1


def test_ensure_schema_is_idempotent_upgrades_and_refuses_newer(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    conn = state_db.connect(path)
    v1 = ["CREATE TABLE IF NOT EXISTS a (x INTEGER)"]
    state_db.ensure_schema(conn, "mod", 1, v1)
    state_db.ensure_schema(conn, "mod", 1, v1)
    state_db.ensure_schema(conn, "other", 3, ["CREATE TABLE IF NOT EXISTS b (y)"])
    v2 = [*v1, "CREATE TABLE IF NOT EXISTS a2 (z)"]
    state_db.ensure_schema(conn, "mod", 2, v2)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"a", "a2", "b", "schema_versions"} <= tables
    versions = dict(conn.execute("SELECT name, version FROM schema_versions").fetchall())
    assert versions == {"mod": 2, "other": 3}
    with pytest.raises(StateError, match=r"'mod' tables are version 2.*knows version 1"):
        state_db.ensure_schema(conn, "mod", 1, v1)
    assert not conn.in_transaction


def test_a_file_that_is_not_a_database_is_a_state_error(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    path.write_bytes(b"this is not sqlite, just text that happens to be long enough" * 20)
    with pytest.raises(StateError, match=r"cannot use the state file .*s\.sqlite3: "):
        conn = state_db.connect(path)
        state_db.ensure_schema(conn, "t", 1, ["CREATE TABLE IF NOT EXISTS t (x)"])


def test_a_state_dir_that_is_a_file_is_a_state_error(tmp_path: Path) -> None:
    blocker = tmp_path / "notadir"
    blocker.write_text("x")
    with pytest.raises(StateError, match=r"notadir/s\.sqlite3: .*[Nn]ot a directory"):
        state_db.connect(blocker / "s.sqlite3")


def test_errors_are_never_bare_sqlite_errors(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    conn = state_db.connect(path)
    with pytest.raises(StateError) as info, state_db.write(conn):
        conn.execute("SELEC 1")
    assert not isinstance(info.value, sqlite3.Error)
    assert isinstance(info.value.__cause__, sqlite3.Error)


def test_ensure_schema_up_to_date_takes_no_write_lock(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    first = state_db.connect(path)
    statements = ["CREATE TABLE IF NOT EXISTS t (x)"]
    state_db.ensure_schema(first, "t", 1, statements)
    later = state_db.connect(path)
    later.execute("PRAGMA busy_timeout = 0")  # waiting for the lock would fail at once
    with state_db.write(first):
        state_db.ensure_schema(later, "t", 1, statements)  # a console reader opening meanwhile
        with pytest.raises(StateError, match="locked"):
            state_db.ensure_schema(later, "t", 2, statements)  # an upgrade does need the lock


def test_thread_connections_one_per_thread_schema_ensured(tmp_path: Path) -> None:
    import threading

    conns = state_db.ThreadConnections(tmp_path / "s.sqlite3", "t", 1,
                                       ["CREATE TABLE IF NOT EXISTS t (x)"])
    mine = conns.get()
    assert conns.get() is mine
    assert mine.execute("SELECT count(*) FROM t").fetchone()[0] == 0
    theirs: list[sqlite3.Connection] = []
    worker = threading.Thread(target=lambda: (theirs.append(conns.get()), conns.close()))
    worker.start()
    worker.join()
    assert theirs and theirs[0] is not mine
    conns.close()
    with pytest.raises(sqlite3.ProgrammingError):
        mine.execute("SELECT 1")  # closed
    assert conns.get() is not mine  # a fresh one after close
