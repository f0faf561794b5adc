"""The receiver's writer thread: group commits through the ingest's store step, answered once durable.

It stores everything the mapping threads queued in ONE transaction (`ingest_writer.BatchStore`),
compacts the partial rollup rows and applies retention now and then; a failed write answers 503
to the requests it held and to every new one, abandons the connection and probes until the cache
opens read-write again (`_recover`). `ReceiverWriter` is the writer half of `Receiver`: its
state is the receiver's, guarded by the receiver's condition.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from console.cache.faults import CacheError, classify, first_line
from console.cache.ingest_writer import Batch, BatchStore
from console.cache.retention import apply_retention
from console.cache.store import Cache
from console.config import Config
from console.receiver_answers import (
    RETRY_CANNOT_WRITE,
    Job,
    answer,
    clean,
    public_reason,
    stored,
    unavailable,
)
from console.timeutil import utc_now

State = Literal["ok", "behind", "cannot_write"]

COMPACT_SECONDS = 30.0
"""How often the writer compacts the partial rollup rows of the hours it stored into."""
COMPACT_TABLES = 512
"""...or after this many requests' tables, whichever comes first."""
RETENTION_SECONDS = 3600.0
"""How often the writer applies the configured retention (`[cache] retention_days`), as an
ingest does after each run..."""
RETENTION_FIRST_SECONDS = 60.0
"""...the first time this long after it starts."""
PROBE_FREE_BYTES = 4 * 1024 * 1024
"""Free bytes the cache's file system needs before the writer reopens the cache after a fault."""
PROBE_MAX_SECONDS = 5.0
"""The longest wait between two probes of a cache that could not be written."""
GROUP_SPANS = 16_384
"""The writer waits for requests already received (in the inbox or being mapped) to join its
transaction until it holds this many spans... (the store step's cost per span falls with the
size of the transaction: ~70 us at 512 spans, ~24 at 2048, ~10 at 16k, measured)"""
GROUP_WAIT = 0.25
"""...or for this many seconds at most; a request alone is committed at once."""


def first_retention_at() -> float:
    """The monotonic time retention was last applied, as a receiver starting now sees it."""
    return time.monotonic() - RETENTION_SECONDS + RETENTION_FIRST_SECONDS


class ReceiverWriter:
    """The writer thread's half of `Receiver` (which sets every attribute below)."""

    cache: Cache
    path: Path
    config: Config
    _write_lock: Callable[[], AbstractContextManager[object]]
    _on_reopen: Callable[[Cache], None] | None
    _on_fault: Callable[[str | None], None] | None
    _store: BatchStore
    _cond: threading.Condition
    # guarded by _cond:
    _inbox: list[Job]
    _inbox_bytes: int
    _pending: list[Job]
    _mapping: int
    _writing: list[Job]
    _fault: CacheError | None
    _queued_spans: int
    _closing: bool
    _state: State
    _reason: str
    _spans_stored: int
    _duplicates: int
    _rejected: int
    _last_write_at: datetime | None
    # the writer's own:
    _last_compact: float
    _last_retention: float

    def _write_loop(self) -> None:
        try:
            self._write_forever()
        except BaseException as exc:  # a bug, or a callback's: never a silent death
            self._writer_died(exc)
            if not isinstance(exc, Exception):
                raise

    def _writer_died(self, exc: BaseException) -> None:
        """The writer thread ends on an unexpected error: every request it holds, queued or
        new gets a 503 from now on, and `stats().reason` says why."""
        reason = clean(f"the receiver's writer stopped: {type(exc).__name__}: {first_line(exc)}",
                        1000)
        with self._cond:
            self._state, self._reason = "cannot_write", reason  # for good: no _recover
            left = self._writing + self._pending + self._inbox
            self._writing, self._pending, self._inbox = [], [], []
            self._queued_spans = self._inbox_bytes = 0
            self._cond.notify_all()
        public = public_reason(reason)
        for job in left:
            answer(job, unavailable(public, RETRY_CANNOT_WRITE))
        self._tell(reason)

    def _tell(self, reason: str | None) -> None:
        """`on_fault(reason)`; its own failure is not the writer's."""
        if self._on_fault is not None:
            with contextlib.suppress(Exception):
                self._on_fault(reason)

    def _write_forever(self) -> None:
        cur: Any = None
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait(timeout=COMPACT_SECONDS)
                    if self._compact_due() or (
                            time.monotonic() - self._last_retention >= RETENTION_SECONDS):
                        break
                # A group commit: requests already received join this transaction (bounded).
                deadline = time.monotonic() + GROUP_WAIT
                while (self._pending and not self._closing and self._queued_spans < GROUP_SPANS
                       and (self._inbox or self._mapping)):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                jobs, self._pending = self._pending, []
                self._writing = jobs
                closing = self._closing
            try:
                if cur is None:
                    cur = self.cache.cursor()
                if jobs:
                    self._commit(cur, jobs)
                    jobs = self._writing = []  # answered: a failing compaction below is not theirs
                if self._compact_due() or (closing and self._store.touched):
                    with self._write_lock():
                        self._store.compact(cur)
                    self._last_compact = time.monotonic()
                if not closing and time.monotonic() - self._last_retention >= RETENTION_SECONDS:
                    with self._write_lock():
                        apply_retention(self.cache, self.config)
                    self._last_retention = time.monotonic()
            except Exception as exc:
                self._fail(jobs, exc)
                self._writing = []
                cur = None
                if not self._recover():
                    return
                continue
            if closing:
                return

    def _compact_due(self) -> bool:
        store = self._store
        return bool(store.touched) and (
            store.batches_since_compact >= COMPACT_TABLES
            or time.monotonic() - self._last_compact >= COMPACT_SECONDS)

    def _commit(self, cur: Any, jobs: list[Job]) -> None:
        table, repeated = _one_table([job.table for job in jobs if job.table is not None])
        quarantine = [row for job in jobs for row in job.quarantine]
        with self._write_lock():
            counts = self._store.store(cur, Batch([] if table is None else [table], quarantine, None))
        self._store.batches_since_compact += max(1, len(jobs))
        rejected = len(quarantine)
        with self._cond:
            self._queued_spans -= sum(job.spans for job in jobs)
            self._spans_stored += counts.spans
            self._duplicates += counts.duplicates + repeated
            self._rejected += rejected
            self._last_write_at = utc_now()
        for job in jobs:
            answer(job, stored(job.quarantine))

    def _fail(self, jobs: list[Job], exc: Exception) -> None:
        """A write failed: its requests get a 503, and so does every new one until `_recover`."""
        fault = classify(exc, self.path)
        reason = str(fault) if fault is not None else (
            f"cannot write {self.path}: {type(exc).__name__}: {first_line(exc)}")
        # a command's advice ("... and run the same command again") does not fit a receiver,
        # which retries by itself
        reason = reason.split("; free some space")[0]
        with self._cond:
            self._state, self._reason = "cannot_write", clean(reason, 1000)
            self._fault = fault
            self._queued_spans -= sum(job.spans for job in jobs)
            left, self._pending = self._pending, []
            self._queued_spans -= sum(job.spans for job in left)
            public = public_reason(self._reason, fault)
        for job in jobs + left:
            answer(job, unavailable(public, RETRY_CANNOT_WRITE))
        with contextlib.suppress(Exception):
            self._abandon()
        self._tell(self._reason)

    def _abandon(self) -> None:
        """Close the connection after a fault without a checkpoint (the WAL stays as it is;
        the writer's cursor goes with it: `_write_forever` drops its reference)."""
        self.cache.abandon()

    def _recover(self) -> bool:
        """Wait until the cache's file system has room and the cache opens read-write again;
        False if the receiver is closed meanwhile."""
        delay = 0.25
        while True:
            with self._cond:
                if self._closing:
                    return False
                self._cond.wait(timeout=delay)
                if self._closing:
                    return False
            delay = min(delay * 2, PROBE_MAX_SECONDS)
            if not _has_room(self.path):
                continue
            try:
                cache = Cache.open(self.path, read_only=False)
            except Exception as exc:  # CacheError; or DuckDB's own, e.g. a FatalException while
                # another connection of this process keeps the invalidated database alive
                fault = classify(exc, self.path)
                with self._cond:
                    self._reason = clean(str(fault) if fault is not None else
                                          f"cannot reopen {self.path}: {first_line(exc)}", 1000)
                continue
            try:
                if self._on_reopen is not None:
                    self._on_reopen(cache)
            except Exception as exc:  # the new connection is not used: abandoned, probed again
                with contextlib.suppress(Exception):
                    cache.abandon()
                with self._cond:
                    self._reason = clean(f"cannot prepare {self.path} after reopening it:"
                                          f" {type(exc).__name__}: {first_line(exc)}", 1000)
                continue
            self.cache = cache
            self._store = BatchStore()  # what was touched before is compacted by the next ingest
            with self._cond:
                self._state, self._reason, self._fault = "ok", "", None
            self._tell(None)
            return True


def _one_table(tables: list[pa.Table]) -> tuple[pa.Table | None, int]:
    """The requests' tables as one (the store step's fixed cost is per table), without repeats
    of a (trace id, span id) across them (an exporter's retry queued beside its first try):
    the first is kept. Returns the table and how many repeats were dropped."""
    if len(tables) <= 1:
        return (tables[0] if tables else None), 0
    table = pa.concat_tables(tables)
    keys = ["trace_id", "span_id"]
    if table.select(keys).group_by(keys).aggregate([]).num_rows == table.num_rows:
        return table, 0  # the usual case
    first = (table.select(keys).append_column("_row", pa.array(range(table.num_rows), pa.int64()))
             .group_by(keys).aggregate([("_row", "min")]))
    keep = pc.sort_indices(first["_row_min"])
    return table.take(pc.take(first["_row_min"], keep)), table.num_rows - first.num_rows


def _has_room(path: os.PathLike[str] | str) -> bool:
    """Whether the file system holding `path` is writable and has PROBE_FREE_BYTES free."""
    try:
        st = os.statvfs(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return False
    return not st.f_flag & os.ST_RDONLY and st.f_bavail * st.f_frsize >= PROBE_FREE_BYTES
