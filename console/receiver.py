"""The ingest side of the OTLP/HTTP receiver: export requests into the cache, acknowledged once durable.

`connectors.otlp_http.OtlpHttpServer` frames the HTTP and hands each body to `Receiver.handle`.
A mapping thread decodes it (protobuf through `otlp_proto`, JSON as `llmdeck ingest` reads a
Collector line) and maps it with the same `BatchBuilder` as files (mapping, redaction, pricing);
one writer thread then stores everything queued in ONE transaction through the ingest's own
store step (`ingest_writer.BatchStore`: dedupe on (trace id, span id), partial rollups,
quarantine): a group commit, so many small requests cost one commit. Each request is answered
only after the transaction holding its spans committed, so a 200 means durable: a kill -9 at
any moment loses no acknowledged span, and the exporter's retry of an unacknowledged batch is
deduplicated rather than stored twice.

Memory is bounded: bodies waiting to be mapped are bounded in bytes, mapped spans waiting for
the writer in spans (`queue_spans`); past either, 503 with Retry-After. A failed write (a full
disk: DuckDB may then refuse everything) answers 503 with Retry-After to the requests in that
transaction and to every new one; the writer abandons the connection (no checkpoint), waits
until the file system has room and the cache opens read-write again, and carries on by itself.

One request decoded and mapped: `receiver_requests`; the answers it gets: `receiver_answers`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from connectors.otlp_http import ExportRequest, ExportResult
from console.cache.batching import BatchBuilder, QuarantineRow
from console.cache.faults import CacheError, classify, first_line
from console.cache.ingest_writer import Batch, BatchStore
from console.cache.retention import apply_retention
from console.cache.store import Cache
from console.config import Config
from console.receiver_answers import clean, public_reason, stored, unavailable
from console.receiver_pool import Mapped, MapPool
from console.receiver_requests import (
    map_request,
    mask_secrets,
    protobuf_spans,
    source_name,
    too_many,
)
from console.timeutil import utc_now

__all__ = ["Mapped", "Receiver", "ReceiverStats", "State", "map_request"]

State = Literal["ok", "behind", "cannot_write"]

QUEUE_BYTES = 64 * 1024 * 1024
"""Bodies received but not yet mapped, in bytes, past which new ones get a 503."""
RETRY_BEHIND = 1.0
"""Retry-After (seconds) when the queue is full."""
RETRY_CANNOT_WRITE = 5.0
"""Retry-After (seconds) while the cache cannot be written."""
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
MAX_REQUEST_SPANS = 32_768
"""Spans one export request may hold (and never more than `queue_spans`): counted right after
the body is parsed, before anything is mapped (mapping holds ~1.8 KB per span until the table is
built: a 16 MiB body of minimal spans would cost ~600 MB). Past it: 413 naming the limit. Not a
503: every OTLP exporter retries a 503, and a request that can never fit would be retried
forever; a 413 is not retried (OTLP/HTTP retries only 429, 502, 503, 504), the exporter logs it
as a permanent error and the operator lowers its batch size. An OTel SDK sends 512 spans per
request (OTEL_BSP_MAX_EXPORT_BATCH_SIZE), a Collector's batch processor 8,192 by default."""
BEHIND_SECONDS = 5.0
"""How long a refusal for a full queue keeps the state at "behind"."""


@dataclass(frozen=True, slots=True)
class ReceiverStats:
    """A snapshot of what the receiver did and how it is doing."""

    requests: int
    spans_stored: int
    duplicates: int
    rejected: int
    queue_spans: int
    state: State
    reason: str
    """Why the state is not "ok" (one line, no secrets), "" when it is."""
    last_write_at: datetime | None


@dataclass(eq=False)
class _Job:
    """One export request on its way: decoded and mapped, then stored, then answered."""

    request: ExportRequest
    seq: int
    future: concurrent.futures.Future[ExportResult]
    table: pa.Table | None = None
    quarantine: list[QuarantineRow] = field(default_factory=list)
    spans: int = 0


class Receiver:
    """Turns OTLP export requests into stored spans: a mapping thread and one writer thread."""

    def __init__(
        self,
        cache: Cache,
        config: Config,
        *,
        write_lock: Callable[[], AbstractContextManager[object]] | None = None,
        queue_spans: int = 100_000,
        on_reopen: Callable[[Cache], None] | None = None,
        on_fault: Callable[[str | None], None] | None = None,
        queue_bytes: int = QUEUE_BYTES,
        map_workers: int = 0,
        secrets: tuple[str, ...] = (),
    ) -> None:
        """`write_lock`: held around every transaction (the demo's `Simulator.exclusive`).
        `on_reopen`: told the new `Cache` after the writer reopened the file following a
        fault (the old one is abandoned); `cache` is always the current one. `on_fault`:
        told, from the writer thread, the reason when writing fails and None once it can
        write again. `map_workers`: decode and map in that many worker processes
        (`receiver_pool.MapPool`), 0: in a thread of this process."""
        self.cache = cache
        self.path = cache.path
        self.config = config
        self.queue_spans = queue_spans
        self.queue_bytes = queue_bytes
        self._write_lock = write_lock or nullcontext
        self._on_reopen = on_reopen
        self._on_fault = on_fault
        self._secrets = tuple(s for s in secrets if s)
        """Never stored: masked in every span string and quarantine row (the receiver's token)."""
        self._builder = BatchBuilder(config)  # for the mapping threads, one at a time
        self._builder_lock = threading.Lock()
        self._pool = MapPool(config, map_workers) if map_workers > 0 else None
        self._store = BatchStore()
        self._cond = threading.Condition()
        # guarded by _cond:
        self._inbox: list[_Job] = []
        self._inbox_bytes = 0
        self._pending: list[_Job] = []
        self._mapping = 0  # jobs taken from the inbox, not yet pending nor answered
        self._writing: list[_Job] = []  # taken by the writer, not answered yet
        self._fault: CacheError | None = None  # what the failed write was, while "cannot_write"
        self._queued_spans = 0
        self._closing = False
        self._state: State = "ok"
        self._reason = ""
        self._refused_at = 0.0
        self._requests = 0
        self._spans_stored = 0
        self._duplicates = 0
        self._rejected = 0
        self._last_write_at: datetime | None = None
        self._seq = 0
        self._threads: list[threading.Thread] = []
        self._last_compact = time.monotonic()
        self._last_retention = time.monotonic() - RETENTION_SECONDS + RETENTION_FIRST_SECONDS

    # -- the handler ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the mapping and writer threads."""
        if self._threads:
            return
        mappers = 1
        if self._pool is not None:
            self._pool.start()
            mappers = 2 * self._pool.size  # one request mapped, one on its way, per worker
        self._threads = [
            *(threading.Thread(target=self._map_loop, name="llmdeck-receiver-map", daemon=True)
              for _ in range(mappers)),
            threading.Thread(target=self._write_loop, name="llmdeck-receiver-writer", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    async def handle(self, req: ExportRequest) -> ExportResult:
        """The `connectors.otlp_http.Handler`: answered once the spans are committed (or refused)."""
        future: concurrent.futures.Future[ExportResult] = concurrent.futures.Future()
        with self._cond:
            self._requests += 1
            refusal = self._refusal_locked(len(req.body))
            if refusal is not None:
                return refusal
            self._seq += 1
            self._inbox.append(_Job(req, self._seq, future))
            self._inbox_bytes += len(req.body)
            self._cond.notify_all()
        return await asyncio.wrap_future(future)

    def stats(self) -> ReceiverStats:
        with self._cond:
            state = self._state
            if state == "ok" and (
                self._queued_spans >= self.queue_spans // 2
                or time.monotonic() - self._refused_at < BEHIND_SECONDS
            ):
                state = "behind"
            reason = self._reason if state == "cannot_write" else (
                "the writer is behind: its queue is full" if state == "behind" else "")
            return ReceiverStats(self._requests, self._spans_stored, self._duplicates,
                                 self._rejected, self._queued_spans, state, reason,
                                 self._last_write_at)

    def close(self, timeout: float = 5.0) -> None:
        """Stop taking work: requests not mapped yet get a 503, the mapped ones are committed
        (for up to `timeout` seconds; past it they get a 503 too, and may still be stored),
        the rollups compacted, the threads stopped. Blocks: call it off the event loop or
        after the server stopped. The caller closes `self.cache` (abandons it if
        `stats().state` is "cannot_write")."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        end = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, end - time.monotonic()))
        if self._pool is not None:
            self._pool.close()
        with self._cond:
            left = self._inbox + self._pending
            self._inbox, self._pending = [], []
            self._inbox_bytes = self._queued_spans = 0
        for job in left:
            _answer(job, unavailable("the receiver is shutting down", RETRY_BEHIND))

    @property
    def fault(self) -> CacheError | None:
        """While the cache cannot be written after a failed write: the kind of fault it was
        (`faults.classify`: CacheFullError, CacheCorruptError, ...), when it is a known one."""
        with self._cond:
            return self._fault if self._state == "cannot_write" else None

    @property
    def running(self) -> bool:
        """Whether a thread is still at work (after `close`: one did not end within its timeout)."""
        return any(t.is_alive() for t in self._threads)

    def _refusal_locked(self, nbytes: int) -> ExportResult | None:
        if self._closing:
            return unavailable("the receiver is shutting down", RETRY_BEHIND)
        if self._state == "cannot_write":
            return unavailable(public_reason(self._reason, self._fault), RETRY_CANNOT_WRITE)
        if self._queued_spans >= self.queue_spans or (
                self._inbox and self._inbox_bytes + nbytes > self.queue_bytes):
            self._refused_at = time.monotonic()
            return unavailable("the receiver is behind; retry later", RETRY_BEHIND)
        return None

    # -- the mapping thread ---------------------------------------------------------------------

    def _map_loop(self) -> None:
        while True:
            with self._cond:
                while not self._inbox and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return  # what is left in the inbox is refused by close()
                job = self._inbox.pop(0)
                self._inbox_bytes -= len(job.request.body)
                self._mapping += 1
            if not job.future.set_running_or_notify_cancel():  # the client left: not mapped
                with self._cond:
                    self._mapping -= 1
                    self._cond.notify_all()  # a writer waiting for this job to join its group
                continue
            try:
                error = self._map(job)
            except Exception as exc:  # a bug in mapping: this request fails, the receiver goes on
                error = ExportResult(500, message=clean(f"cannot map the request: {type(exc).__name__}"))
            if error is not None:
                with self._cond:
                    self._mapping -= 1
                    self._cond.notify_all()  # a writer waiting for this job to join its group
                _answer(job, error)
                continue
            with self._cond:
                self._mapping -= 1
                self._cond.notify_all()
                refusal = None
                if self._closing:
                    refusal = unavailable("the receiver is shutting down", RETRY_BEHIND)
                elif self._state == "cannot_write":
                    refusal = unavailable(public_reason(self._reason, self._fault),
                                           RETRY_CANNOT_WRITE)
                elif self._pending and self._queued_spans + job.spans > self.queue_spans:
                    self._refused_at = time.monotonic()
                    refusal = unavailable("the receiver is behind; retry later", RETRY_BEHIND)
                else:
                    self._pending.append(job)
                    self._queued_spans += job.spans
                    self._cond.notify_all()
            if refusal is not None:
                _answer(job, refusal)

    def _map(self, job: _Job) -> ExportResult | None:
        """Decode and map `job`'s body into its table and quarantine rows; an error result if
        the body cannot be decoded (400)."""
        req = job.request
        limit = min(self.queue_spans, MAX_REQUEST_SPANS)
        mapped: Mapped | ExportResult | None = None
        if self._pool is not None and req.encoding == "protobuf":
            spans = protobuf_spans(req.body)  # parsed here too (~1 us a span): counted first
            if spans is not None:  # (a body that does not parse gets its 400 below)
                mapped = too_many(spans, limit) or self._pool.map(req.body, source_name(req), job.seq)
        if mapped is None:  # no pool, JSON, or a body that does not parse (its 400 here)
            with self._builder_lock:
                try:
                    mapped = map_request(self._builder, req, job.seq, max_spans=limit)
                except BaseException:
                    self._builder.take()  # what it left must not be stored with the next request
                    raise
        if isinstance(mapped, ExportResult):
            return mapped
        job.table, job.quarantine, job.spans = mapped
        if self._secrets:
            job.table, job.quarantine = mask_secrets(job.table, job.quarantine, self._secrets)
        return None

    # -- the writer thread ----------------------------------------------------------------------

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
            _answer(job, unavailable(public, RETRY_CANNOT_WRITE))
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

    def _commit(self, cur: Any, jobs: list[_Job]) -> None:
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
            _answer(job, stored(job.quarantine))

    def _fail(self, jobs: list[_Job], exc: Exception) -> None:
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
            _answer(job, unavailable(public, RETRY_CANNOT_WRITE))
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


# -- helpers ----------------------------------------------------------------------------------

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



def _answer(job: _Job, result: ExportResult) -> None:
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        job.future.set_result(result)


def _has_room(path: os.PathLike[str] | str) -> bool:
    """Whether the file system holding `path` is writable and has PROBE_FREE_BYTES free."""
    try:
        st = os.statvfs(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return False
    return not st.f_flag & os.ST_RDONLY and st.f_bavail * st.f_frsize >= PROBE_FREE_BYTES

