"""Opening the DuckDB cache file: ownership, recovery, migrations, cursors.

One process owns the file read-write. Inside it, the `Cache` object's own
connection is the single writer; every reader thread takes its own `cursor()`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import duckdb

from console.cache import schema
from console.cache.faults import CacheCorruptError as CacheCorruptError
from console.cache.faults import CacheError as CacheError
from console.cache.faults import CacheLockedError as CacheLockedError
from console.cache.faults import (
    CacheUnwritableError,
    classify,
    first_line,
    is_unwritable,
    os_reason,
)
from console.timeutil import from_unix, utc_now

MEMORY_LIMIT = "512MB"
READ_ONLY_MEMORY_LIMIT = "96MB"
READ_ONLY_THREADS = 1
"""Read-only opens (the console, `status`) get a small DuckDB buffer pool and one thread. With
512MB and a thread per core, the console on a 10M-span cache peaked at 468 MB RSS (bench/memory.py:
span scans left ~200 MB of columns cached); with these, 269 MB. Their queries read rollups and
short span ranges: one thread is as fast for them, and evicted blocks come back from the OS page
cache (overview fetch on 10M spans ~240 ms instead of ~190 ms; `status` unchanged)."""

_LOCK_RE = re.compile(r"Conflicting lock is held in (?P<prog>.+?) \(PID (?P<pid>\d+)\)")


@dataclass(frozen=True)
class WalRecovery:
    """What was done because the write-ahead log could not be replayed."""

    moved_to: Path
    last_checkpoint: str | None
    wal_modified: str

    def message(self) -> str:
        since = self.last_checkpoint or "the cache was created"
        return (
            f"the cache's write-ahead log could not be replayed and was moved to {self.moved_to};"
            f" anything ingested between {since} and {self.wal_modified} may be missing."
            " Re-run `llmdeck ingest` on those files to restore it (nothing is duplicated)."
        )


def _describe_holder(message: str, path: Path) -> str:
    match = _LOCK_RE.search(message)
    if not match:
        return f"{path} is in use by another process"
    return describe_pid(int(match.group("pid")), path, os.path.basename(match.group("prog")))


def describe_pid(pid: int, path: Path, prog: str | None = None,
                 advice: str = "close it or use another --cache") -> str:
    """`PATH is in use by <its llmdeck command line, or its program> (PID n); <advice>`."""
    cmdline = ""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        cmdline = " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    except OSError:
        pass
    if prog is None:
        try:
            prog = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
        except OSError:
            prog = "another process"
    who = cmdline if "llmdeck" in cmdline else prog
    return f"{path} is in use by {who} (PID {pid}); {advice}"


def _now() -> str:
    return utc_now().strftime("%Y-%m-%dT%H:%M:%SZ")


class Cache:
    """An open cache file: the writer connection plus per-thread reader cursors."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path, read_only: bool) -> None:
        self.con = con
        self.path = path
        self.read_only = read_only
        self.recovery: WalRecovery | None = None
        self._local = threading.local()
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path, *, read_only: bool = False, create: bool = True) -> Cache:
        """Open (creating and migrating as needed); raise CacheError with a one-line reason.

        A damaged file raises CacheCorruptError, an unwritable place CacheUnwritableError.
        """
        path = Path(path)
        is_dir, exists = probe(path)
        if is_dir:
            raise CacheError(f"{path} is a directory, not a cache file; point --cache at a file"
                             f" (for example {path / 'cache.duckdb'})")
        if not exists and (read_only or not create):
            raise CacheError(f"no cache at {path}; run `llmdeck ingest` first")
        if not read_only:
            _make_parent(path)
        recovery = None
        try:
            con = cls._connect(path, read_only)
        except CacheLockedError:
            raise
        except duckdb.Error as exc:
            wal = Path(f"{path}.wal")
            # Only a failed WAL replay is recovered by moving the WAL aside; any other error
            # (a damaged main file, say) must not cost the un-checkpointed writes as well.
            # Read-only commands (`status`, `cache info`) recover too: nothing can open the
            # file until the bad WAL is out of the way.
            if not wal.exists() or "WAL" not in str(exc):
                if read_only and is_unwritable(exc):  # not writing: the file cannot be read
                    raise CacheError(f"cannot read {path} ({first_line(exc)}); check the"
                                     " permissions of the file and its directory") from exc
                raise _fault(exc, path, "cannot open") from exc
            recovery = cls._move_wal_aside(path, wal)
            try:
                con = cls._connect(path, read_only)
            except duckdb.Error as exc2:
                raise _fault(exc2, path, "cannot open") from exc2
        try:
            return cls._prepare(con, path, read_only, recovery)
        except BaseException:
            con.close()
            raise

    @classmethod
    def _prepare(cls, con: duckdb.DuckDBPyConnection, path: Path, read_only: bool,
                 recovery: tuple[Path, str] | None) -> Cache:
        """Set limits, note a WAL recovery, check or migrate the schema (the first reads)."""
        # The console must stay small on a bastion; DuckDB spills or evicts past this.
        con.execute(f"SET memory_limit = '{READ_ONLY_MEMORY_LIMIT if read_only else MEMORY_LIMIT}'")
        if read_only:
            con.execute(f"SET threads = {READ_ONLY_THREADS}")
        cache = cls(con, path, read_only)
        if recovery is not None:
            try:
                last = cache.meta("last_checkpoint")
            except duckdb.Error:  # the schema itself was only in the lost WAL
                last = None
            cache.recovery = WalRecovery(recovery[0], last, recovery[1])
        if not read_only:
            try:
                schema.migrate(con, str(path))
            except schema.SchemaTooNewError as exc:
                raise CacheError(str(exc)) from exc
            except duckdb.Error as exc:
                raise _fault(exc, path, "cannot prepare") from exc
            return cache
        try:
            found = schema.current_version(con)
        except duckdb.Error as exc:
            raise _fault(exc, path, "cannot read") from exc
        if found == 0:
            raise CacheError(f"{path} is not an llmdeck cache (no schema); run `llmdeck ingest`")
        if found > schema.SCHEMA_VERSION:
            raise CacheError(
                f"{path} was written by a newer llmdeck (cache schema v{found}; this llmdeck"
                f" reads up to v{schema.SCHEMA_VERSION})."
            )
        return cache

    @staticmethod
    def _connect(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if "Conflicting lock" in str(exc) or "Could not set lock" in str(exc):
                raise CacheLockedError(_describe_holder(str(exc), path)) from exc
            raise

    @staticmethod
    def _move_wal_aside(path: Path, wal: Path) -> tuple[Path, str]:
        modified = from_unix(wal.stat().st_mtime).strftime("%Y-%m-%dT%H:%M:%SZ")
        stamp = utc_now().strftime("%Y%m%dT%H%M%SZ")
        target = Path(f"{path}.wal.corrupt-{stamp}")
        shutil.move(str(wal), target)
        return target, modified

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's own reader cursor (DuckDB connections are not thread-safe)."""
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            with self._lock:
                cur = self.con.cursor()
            self._local.cursor = cur
        return cur

    def meta(self, key: str) -> str | None:
        rows = self.cursor().execute("SELECT value FROM meta WHERE key = ?", [key]).fetchall()
        return rows[0][0] if rows else None

    def checkpoint(self) -> bool:
        """Fold the WAL into the file and remember when (the loss window if the WAL breaks).

        Best effort: DuckDB refuses while another transaction it counts as writing is
        open (seen at the end of an ingest inside the console, with polls running). The
        data is committed and safe in the WAL either way; the next checkpoint (DuckDB's
        own when the WAL grows, or closing the cache) folds it. Returns whether it ran.
        """
        if self.read_only:
            return False
        try:
            self.con.execute("CHECKPOINT")
        except duckdb.TransactionException:
            return False
        # remembered only once it happened (a checkpoint failing on a full disk invalidates the
        # database: a value written before it would stay in the WAL); a second, small
        # checkpoint puts it in the file itself, read after a WAL loss
        self.con.execute("INSERT OR REPLACE INTO meta VALUES ('last_checkpoint', ?)", [_now()])
        with contextlib.suppress(duckdb.TransactionException):
            self.con.execute("CHECKPOINT")
        return True

    def close(self) -> None:
        try:
            self.checkpoint()
        except duckdb.Error:
            pass
        self.con.close()

    def abandon(self) -> None:
        """Close after a fault without any checkpoint: the file and its WAL stay byte for byte.

        DuckDB checkpoints when its last connection closes (that rewrote a damaged file); the
        pragma turns that off. Never raises a DuckDB error: a broken file may refuse even that.
        """
        with contextlib.suppress(duckdb.Error):
            self.con.execute("PRAGMA disable_checkpoint_on_shutdown")
        with contextlib.suppress(duckdb.Error):
            self.con.close()

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fault(exc: BaseException, path: Path, doing: str) -> CacheError:
    """The named fault (corrupt, full, unwritable) or `<doing> PATH: <DuckDB's first line>`."""
    return classify(exc, path) or CacheError(f"{doing} {path}: {first_line(exc)}")


def probe(path: Path) -> tuple[bool, bool]:
    """(is a directory, exists) for `path`; CacheError when a directory above cannot be searched."""
    try:
        return path.is_dir(), path.exists()
    except OSError as exc:
        raise CacheError(f"cannot reach {path}: {os_reason(exc)}; check the permissions of"
                         " the directories above it") from exc


def _make_parent(path: Path) -> None:
    """Create the cache's directory, or say in one line why it cannot be."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), path.parent)
        raise CacheUnwritableError(
            f"cannot create the cache directory {path.parent}: {blocker} is a file, not a"
            " directory; point --cache at a file in a directory") from exc
    except OSError as exc:
        raise CacheUnwritableError(
            f"cannot create the cache directory {path.parent}: {os_reason(exc)};"
            " make it creatable or point --cache at a writable place") from exc
