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

The writer thread: `receiver_writer`; one request decoded and mapped: `receiver_requests`; the
answers it gets: `receiver_answers`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime

from connectors.otlp_http import ExportRequest, ExportResult
from console.cache.batching import BatchBuilder
from console.cache.faults import CacheError
from console.cache.ingest_writer import BatchStore
from console.cache.store import Cache
from console.config import Config
from console.receiver_answers import (
    RETRY_BEHIND,
    RETRY_CANNOT_WRITE,
    Job,
    answer,
    clean,
    public_reason,
    unavailable,
)
from console.receiver_pool import Mapped, MapPool
from console.receiver_requests import (
    map_request,
    mask_secrets,
    source_name,
    too_many,
)
from console.receiver_writer import ReceiverWriter, State, first_retention_at

__all__ = ["Mapped", "Receiver", "ReceiverStats", "State", "map_request"]

QUEUE_BYTES = 64 * 1024 * 1024
"""Bodies received but not yet mapped, in bytes, past which new ones get a 503."""
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


class Receiver(ReceiverWriter):
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
        self._inbox: list[Job] = []
        self._inbox_bytes = 0
        self._pending: list[Job] = []
        self._mapping = 0  # jobs taken from the inbox, not yet pending nor answered
        self._writing: list[Job] = []  # taken by the writer, not answered yet
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
        self._last_retention = first_retention_at()

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
            self._inbox.append(Job(req, self._seq, future))
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
            answer(job, unavailable("the receiver is shutting down", RETRY_BEHIND))

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
                answer(job, error)
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
                answer(job, refusal)

    def _map(self, job: Job) -> ExportResult | None:
        """Decode and map `job`'s body into its table and quarantine rows; an error result if
        the body cannot be decoded (400)."""
        req = job.request
        limit = min(self.queue_spans, MAX_REQUEST_SPANS)
        mapped: Mapped | ExportResult | None = None
        if self._pool is not None and req.encoding == "protobuf":
            pooled = self._pool.map(req.body, source_name(req), job.seq, limit)
            # (a body that does not parse gets its 400 below)
            mapped = too_many(pooled, limit) if isinstance(pooled, int) else pooled
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
