"""Moving a cache file (and its WAL) aside so the next ingest starts a fresh one; never deleting.

`reset` refuses while another process holds the file (DuckDB's lock), reads
the trace files recorded in the cache's `ingest_files` table (best effort,
read-only), checks every table's blocks to tell a corrupt cache from a
healthy one, and renames `<file>` to `<file>.corrupt-<UTC stamp>` (or
`.reset-<stamp>`) and `<file>.wal` to `<that>.wal`, so the moved file still
opens with its WAL (`llmdeck --cache <moved> status`).
"""

from __future__ import annotations

import fcntl
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from console.cache.faults import (
    CacheError,
    CacheLockedError,
    damage,
    first_line,
    is_corruption,
    os_reason,
)
from console.cache.store import (
    READ_ONLY_MEMORY_LIMIT,
    READ_ONLY_THREADS,
    Cache,
    describe_pid,
    probe,
)
from console.timeutil import utc_now


@dataclass
class ResetReport:
    """What `llmdeck cache reset` did: the moves, why, and what to ingest again."""

    path: Path
    moved: list[tuple[Path, Path]] = field(default_factory=list)
    corrupt: str | None = None
    """Where the file is damaged (`faults.damage`), or None when every table read back."""
    files: list[str] | None = None
    """Trace files the cache had ingested; None when they could not be read."""
    files_error: str | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "cache": str(self.path),
            "moved": [{"from": str(a), "to": str(b)} for a, b in self.moved],
            "corrupt": self.corrupt is not None,
            "corruption": self.corrupt,
            "ingested_files": None if self.files is None else [
                {"path": f, "exists": os.path.exists(f) if os.path.isabs(f) else None} for f in self.files],
            "ingested_files_error": self.files_error,
        }


def reset(path: Path, *, only_if_corrupt: bool = False) -> ResetReport:
    """Move the cache at `path` aside; raise CacheError (one line) when it cannot be.

    With `only_if_corrupt`, a cache whose every block reads back stays where it is (the
    report then has `corrupt` None and nothing moved): one read of every block decides.
    """
    path = Path(path)
    wal = Path(f"{path}.wal")
    is_dir, exists = probe(path)
    if is_dir:
        raise CacheError(f"{path} is a directory, not a cache file; nothing was moved")
    report = ResetReport(path)
    if not exists and not wal.exists():
        return report
    if path.exists():
        _refuse_if_held(path)
        report.files, report.files_error, report.corrupt = _survey(path)
    if only_if_corrupt and report.corrupt is None:
        return report
    stamp = utc_now().strftime("%Y%m%dT%H%M%SZ")
    kind = "corrupt" if report.corrupt is not None else "reset"
    target = _free_name(path, f"{kind}-{stamp}")
    holder = _lock(path) if path.exists() else None
    try:
        if holder is not None:
            _move(path, target, report)
        if wal.exists():
            _move(wal, Path(f"{target}.wal"), report)
    finally:
        if holder is not None:
            os.close(holder)
    return report


def damage_of(path: Path) -> str | None:
    """Where the cache at `path` is damaged (`faults.damage`), or None when every table reads
    back; read-only, no WAL recovery; CacheLockedError when another process holds it.

    Not while this process has the file open itself: closing the lock probe's descriptor
    would drop that connection's POSIX lock."""
    _refuse_if_held(path)
    return _survey(path)[2]


def _survey(path: Path) -> tuple[list[str] | None, str | None, str | None]:
    """(ingested files or None, why they could not be read, where the file is damaged or None).

    Read-only and straight through DuckDB: no WAL recovery, nothing written.
    """
    try:
        con = Cache._connect(path, read_only=True)
    except CacheLockedError:
        raise
    except duckdb.Error as exc:
        found = damage(path, exc) if is_corruption(exc) else None
        return None, found or first_line(exc), found
    files: list[str] | None = None
    files_error: str | None = None
    found = None
    try:
        con.execute(f"SET memory_limit = '{READ_ONLY_MEMORY_LIMIT}'")  # as small as the console
        con.execute(f"SET threads = {READ_ONLY_THREADS}")
        try:
            rows = con.execute("SELECT path FROM ingest_files ORDER BY path").fetchall()
            files = [str(r[0]) for r in rows]
        except duckdb.Error as exc:
            if is_corruption(exc):
                found = damage(path, exc)
            files_error = found or first_line(exc)
        if found is None:
            try:
                _read_every_block(con)
            except duckdb.Error as exc:
                if is_corruption(exc):
                    found = damage(path, exc)
    finally:
        con.close()
    return files, files_error, found


def _read_every_block(cur: duckdb.DuckDBPyConnection) -> None:
    """Read every column of every table (DuckDB checks each block's checksum as it reads it).

    About 0.4 s per million spans on one thread.
    """
    tables = cur.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'").fetchall()
    for (table,) in tables:
        quoted = '"' + table.replace('"', '""') + '"'
        cur.execute(f"SELECT count(*), sum(hash(COLUMNS(*))) FROM {quoted}").fetchall()


def _refuse_if_held(path: Path) -> None:
    """Raise CacheLockedError naming the holder when another process has the file open."""
    fd = _lock(path)
    os.close(fd)


def _lock(path: Path) -> int:
    """An fd holding an exclusive lock on `path` (what DuckDB takes); CacheLockedError if held."""
    mode = fcntl.LOCK_EX
    try:
        fd = os.open(path, os.O_RDWR)
    except PermissionError:  # a read-only file in a writable directory: a shared lock will do
        fd, mode = _open_read_only(path), fcntl.LOCK_SH
    except OSError as exc:
        raise CacheError(f"cannot move {path} aside: {os_reason(exc)}; nothing was moved"
                         ) from exc
    try:
        fcntl.lockf(fd, mode | fcntl.LOCK_NB)
    except OSError as exc:
        pid = _lock_holder(fd)
        os.close(fd)
        advice = "nothing was moved: close it (or let it finish) and run `llmdeck cache reset` again"
        who = (describe_pid(pid, path, advice=advice) if pid
               else f"{path} is in use by another process; {advice}")
        raise CacheLockedError(who) from exc
    return fd


def _open_read_only(path: Path) -> int:
    try:
        return os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise CacheError(f"cannot move {path} aside: {os_reason(exc)}; nothing was moved"
                         ) from exc


def _lock_holder(fd: int) -> int | None:
    """The PID holding a conflicting POSIX lock on `fd`'s file (Linux struct flock), or None."""
    try:
        query = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, query)
        kind, _, _, _, pid = struct.unpack("hhqqi4x", answer)
    except (OSError, struct.error):
        return None
    return pid if kind != fcntl.F_UNLCK and pid > 0 else None


def _free_name(path: Path, suffix: str) -> Path:
    """`<path>.<suffix>`, with `-2`, `-3`... when that (or its WAL) is taken."""
    n = 1
    while True:
        target = Path(f"{path}.{suffix}" + (f"-{n}" if n > 1 else ""))
        if not target.exists() and not Path(f"{target}.wal").exists():
            return target
        n += 1


def _move(src: Path, dst: Path, report: ResetReport) -> None:
    try:
        os.rename(src, dst)
    except OSError as exc:
        moved = "; ".join(f"{a} was moved to {b}" for a, b in report.moved)
        raise CacheError(
            f"cannot move {src} aside to {dst}: {os_reason(exc)}"
            + (f" ({moved})" if moved else "; nothing was moved")) from exc
    report.moved.append((src, dst))
