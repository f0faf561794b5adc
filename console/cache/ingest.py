"""`llmdeck ingest`: read trace files into the cache, safely and fast.

The reading thread decodes and maps spans into column batches; a writer
thread stores each batch in one transaction together with its rollups,
its quarantined rows and the file offset it reached. A batch is either
wholly stored or not at all, so a killed run is completed by running it
again, and dedupe on (trace id, span id) keeps that from duplicating rows.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from console.cache import clock, readers, rollups
from console.cache.batching import (
    BACKGROUND_NICE,
    BatchBuilder,
    Chunk,
    init_worker,
    lower_thread_priority,
    map_range,
)
from console.cache.clock import ClockCounts
from console.cache.store import Cache
from console.cache.transactions import transaction
from console.config import Config
from console.proc_guard import (
    INTERRUPT,
    STOP_SIGNALS,
    call_interruptibly,
    signals_blocked,
    start_resource_tracker,
)
from console.timeutil import utc_now

QUARANTINE_SAMPLES = 10
COMPACT_EVERY_BATCHES = 16
# Files at least this big are decoded and mapped in worker processes.
PARALLEL_MIN_BYTES = 32 * 1024 * 1024
MAX_WORKERS = 2
MAX_IN_FLIGHT = 2
# Chunks mapped by worker processes are stored this many to a transaction (at most one per
# worker, so a group is ready about when its last chunk is): every commit is a checkpoint
# that compresses the new rows again with their neighbours, and half as many commits cut the
# writer's time by ~20% (300k spans, 2 workers: 2.1 -> 1.7 s).
CHUNKS_PER_BATCH = 2
BYTES_PER_SPAN_GUESS = 1100
WAIT_SECONDS = 0.2
"""How often the reading thread, waiting on a worker or the writer, looks whether to stop."""


class IngestStopped(Exception):
    """`Ingestor.run` ended early because a stop was requested; what it committed is kept."""


@dataclass
class IngestReport:
    """What one `llmdeck ingest` run did (the `--json` output)."""

    files: int = 0
    spans_read: int = 0
    spans_stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    unpriced: int = 0
    seconds: float = 0.0
    future: int = 0
    """Spans started more than clock.FUTURE_TOLERANCE_NS after the ingest's wall clock."""
    past: int = 0
    """Spans started before `past_before` (the rollup retention): outside every window of now."""
    future_latest: str | None = None
    past_earliest: str | None = None
    past_before: str | None = None
    quarantine_reasons: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    pending_partial_lines: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["seconds"] = round(self.seconds, 3)
        return data


@dataclass(frozen=True)
class Progress:
    """A progress tick for the terminal: where the run is."""

    file_index: int
    files: int
    path: str
    spans_read: int
    spans_stored: int
    bytes_done: int
    bytes_total: int


@dataclass
class _Batch:
    """What the writer stores in one transaction: span tables in file order, quarantine, offset."""

    tables: list[pa.Table]
    quarantine: list[tuple[str, int, str]]
    file_state: tuple[str, str, int, int] | None  # path, fingerprint, byte offset, line


class _Writer(threading.Thread):
    """Stores batches in order, one transaction each, off the reading thread."""

    def __init__(self, cache: Cache, report: IngestReport, lock: threading.Lock,
                 nice: int = 0, stop: threading.Event | None = None) -> None:
        super().__init__(name="llmdeck-ingest-writer", daemon=True)
        self.nice = nice
        self.stop = stop or threading.Event()
        """Once set, the batches still queued are dropped (the one being stored is finished)."""
        self.position: tuple[str, int] | None = None
        """The file and byte offset of the last batch committed (a resumable file's)."""
        self.cache = cache
        self.report = report
        self.lock = lock
        self.inbox: queue.Queue[_Batch | None] = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.touched: set[int] = set()
        """Hours (unix ns // 1 h) given partial rollup rows since the last compaction."""
        self.batches_since_compact = 0

    def run(self) -> None:
        lower_thread_priority(self.nice)
        cur = self.cache.cursor()
        while True:
            batch = self.inbox.get()
            if batch is None:
                break
            if self.error is not None or self.stop.is_set():
                continue  # drain so the reader never blocks forever
            try:
                self._store(cur, batch)
            except BaseException as exc:  # reported by the reading thread
                self.error = exc
        if self.error is None:
            try:
                self._compact(cur)
            except BaseException as exc:
                self.error = exc

    def _store(self, cur: Any, batch: _Batch) -> None:
        views: list[str] = []  # the batch's tables, registered as views until the transaction ends
        try:
            with transaction(cur):  # a rollback takes the temporary tables made in it too
                stored = dup = unpriced = 0
                sources: list[str] = []  # the rows stored from each table, for the rollups
                temporary: list[str] = []  # tables `_insert_spans` made, dropped before the commit
                for i, table in enumerate(batch.tables):
                    if not table.num_rows:
                        continue
                    view = f"_batch{i}"
                    views.append(view)
                    cur.register(view, table)
                    # A later table's dedupe sees the earlier ones (same transaction).
                    source, s, d, u = self._insert_spans(cur, view, table.num_rows, f"_new{i}")
                    stored, dup, unpriced = stored + s, dup + d, unpriced + u
                    if source != view:
                        temporary.append(source)
                    if s:
                        sources.append(source)
                if len(sources) == 1:  # one set of partial rollup rows for the whole transaction
                    rollups.append_partials(cur, sources[0])
                elif sources:
                    union = " UNION ALL ".join(f"SELECT * FROM {s}" for s in sources)
                    rollups.append_partials(cur, f"({union})")
                for temp in temporary:
                    cur.execute(f"DROP TABLE {temp}")
                if batch.quarantine:
                    now = utc_now()
                    cur.executemany(
                        "INSERT INTO quarantine VALUES (?, ?, ?, NULL, ?)",
                        [(src, line, reason, now) for src, line, reason in batch.quarantine],
                    )
                if batch.file_state is not None:
                    path, fp, offset, line = batch.file_state
                    cur.execute(
                        "INSERT OR REPLACE INTO ingest_files VALUES (?, ?, ?, ?, now()::TIMESTAMP)",
                        [path, fp, offset, line],
                    )
        finally:
            for view in views:
                cur.unregister(view)
        with self.lock:
            self.report.spans_stored += stored
            self.report.duplicates += dup
            self.report.unpriced += unpriced
            if batch.file_state is not None:
                self.position = (batch.file_state[0], batch.file_state[2])
        self.batches_since_compact += max(1, len(batch.tables))
        if self.batches_since_compact >= COMPACT_EVERY_BATCHES:
            self._compact(cur)

    def _insert_spans(self, cur: Any, view: str, rows: int, new: str) -> tuple[str, int, int, int]:
        """Store the spans of `view` that are not stored yet.

        Returns where the rows stored are (`view`, or the temporary table `new`, left for
        the caller to drop, when some were stored before), and how many were stored,
        already there, and unpriced.
        """
        # The hours the batch starts in, not min..max: with one span from 1970 in the batch,
        # dedupe and compaction still read the recent hours and that one, not 56 years.
        hours = rollups.hours_of(cur, view)
        in_range, bounds = rollups.hours_where("start_time", hours)
        # The table is unique already (SpanColumns); only stored spans can repeat it.
        # Usually none do, and the table is stored straight from Arrow, uncopied.
        clashes = cur.execute(
            f"""
            SELECT count(*) FROM (SELECT trace_id, span_id FROM {view})
            SEMI JOIN (SELECT trace_id, span_id FROM spans WHERE {in_range})
            USING (trace_id, span_id)
            """,
            bounds,
        ).fetchall()[0][0]
        source = view
        if clashes:
            source = new
            cur.execute(
                f"""
                CREATE OR REPLACE TEMP TABLE {new} AS
                SELECT b.* FROM {view} b
                ANTI JOIN (SELECT trace_id, span_id FROM spans WHERE {in_range}) s
                USING (trace_id, span_id)
                """,
                bounds,
            )
        stored = rows - clashes
        if not stored:
            return source, 0, clashes, 0
        unpriced = cur.execute(
            f"SELECT count(*) FILTER (WHERE unpriced) FROM {source}"
        ).fetchall()[0][0]
        cur.execute(f"INSERT INTO spans SELECT * FROM {source}")
        self.touched |= hours
        return source, stored, clashes, unpriced

    def _compact(self, cur: Any) -> None:
        self.batches_since_compact = 0
        if not self.touched:
            return
        with transaction(cur):
            rollups.compact_hours(cur, self.touched)
        self.touched = set()


def _later(kept: str | None, ns: int | None, pick: Callable[[str, str], str]) -> str | None:
    """The report's extreme start time (ISO, to the minute) updated with `ns`, by `pick`."""
    if ns is None:
        return kept
    text = f"{clock.ns_datetime(ns):%Y-%m-%dT%H:%MZ}"
    return text if kept is None else pick(kept, text)


def _processes(pool: ProcessPoolExecutor | None) -> list[BaseProcess]:
    """The pool's worker processes (an attribute of CPython's executor: none if it changes)."""
    processes = getattr(pool, "_processes", None) or {}
    return list(processes.values())


class Ingestor:
    """One ingest run over a set of paths into an open cache."""

    def __init__(
        self,
        cache: Cache,
        config: Config,
        progress: Callable[[Progress], None] | None = None,
        workers: int | None = None,
        processes: bool | None = None,
        stop_event: threading.Event | None = None,
    ) -> None:
        """`workers`: how many processes may decode and map a big file (default: one per core,
        at most MAX_WORKERS). `processes`: whether big files (>= PARALLEL_MIN_BYTES) are mapped
        in worker processes at all; by default only when `workers` > 1. `processes=True` with
        `workers=1` is the mode for an ingest inside the console: one worker process maps, the
        writer's DuckDB uses one thread, and the calling process keeps its GIL and a core.
        `stop_event`: once set (see `request_stop`), the run stops early and raises IngestStopped.
        """
        self.cache = cache
        self.config = config
        self.progress = progress
        self.batch_spans = config.ingest.batch_spans
        self.builder = BatchBuilder(config)
        self.report = IngestReport()
        self.workers = (os.cpu_count() or 1) if workers is None else workers
        self.processes = self.workers > 1 if processes is None else processes
        self._pool_size = max(1, min(self.workers, MAX_WORKERS))
        self.background = bool(processes)
        """Worker processes asked for explicitly: an ingest sharing the machine and this
        process with the console. DuckDB runs on one thread meanwhile (a database-wide
        setting, so the panels' queries too), writer and workers at a lower CPU priority so
        the UI thread wins the core, and the cyclic GC stays on for the UI's sake."""
        self._nice = BACKGROUND_NICE if self.background else 0
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event() if stop_event is None else stop_event
        self._writer: _Writer | None = None

    def request_stop(self) -> None:
        """Stop the run soon, keeping what is committed (safe from a signal handler).

        The reading thread stops at its next record or chunk, the writer finishes the
        batch it is storing and drops the queued ones, the worker processes drop the
        chunks they map and are shut down; `run` then raises IngestStopped. Running
        again resumes.
        """
        self._stop.set()

    def position(self) -> tuple[str, int] | None:
        """The file and byte offset the committed batches reach (None if none of a
        resumable file is committed yet). Takes no lock: safe from a signal handler."""
        writer = self._writer
        return None if writer is None else writer.position

    def spans_stored(self) -> int:
        """Spans committed so far by this run (no lock: safe from a signal handler)."""
        return self.report.spans_stored

    def kill_workers(self) -> None:
        """Kill the worker processes now, for a process about to exit at once (`os._exit`:
        see `_end_pool` for why nothing may wait on the pool after). Safe from a signal
        handler; what they were mapping is read again by the next run."""
        for proc in _processes(self._pool):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                proc.kill()

    def run(self, paths: list[Path], fmt: str = "auto") -> IngestReport:
        started = time.perf_counter()
        files = readers.list_files(paths)
        self.report.files = len(files)
        threads = self._leave_cores_to_workers(files)
        writer = _Writer(self.cache, self.report, self._lock, self._nice, self._stop)
        self._writer = writer
        writer.start()
        # Batches hold hundreds of thousands of live objects; the cyclic GC would
        # rescan them every few thousand allocations (measured: ~2x slower mapping).
        # GC is process-wide: inside the console (background) the UI sharing this
        # process must keep collecting in small steps rather than in one long pause after.
        gc_was_enabled = gc.isenabled()
        if not self.background:
            gc.disable()
        try:
            for index, path in enumerate(files, 1):
                if writer.error is not None or self._stop.is_set():
                    break
                self._ingest_file(writer, index, len(files), path, fmt)
        finally:
            if gc_was_enabled:
                gc.enable()
            self._end_pool()
            writer.inbox.put(None)
            writer.join()
            if threads is not None:
                try:
                    self.cache.cursor().execute(f"SET threads = {threads}")
                except Exception:
                    if writer.error is None:  # else the database may refuse all: report the cause
                        raise
        if writer.error is not None:
            raise writer.error
        if self._stop.is_set():
            raise IngestStopped("the ingest was stopped; what it committed is kept")
        self._apply_retention()
        self.cache.checkpoint()
        self.report.seconds = time.perf_counter() - started
        return self.report

    def _end_pool(self) -> None:
        """Shut the worker processes down; when stopping, cut short what they map first.

        Never by a signal that ends them: a worker killed while it sends a chunk leaves
        the pool's reading thread waiting for the rest forever (and this shutdown, and
        the interpreter's exit, with it). INTERRUPT ends only the mapping
        (`proc_guard.call_interruptibly`); pending chunks are cancelled.
        """
        if self._pool is None:
            return
        if self._stop.is_set():
            for proc in _processes(self._pool):
                with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
                    os.kill(proc.pid, INTERRUPT)  # type: ignore[arg-type]
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _leave_cores_to_workers(self, files: list[Path]) -> int | None:
        """Shrink DuckDB's thread pool while worker processes map; return the size to restore.

        The workers keep every core busy, so the writer's extra DuckDB threads would only
        compete with them (measured: ~20% more writer CPU for the same work on 2 cores).
        """
        if not self.processes:
            return None
        try:
            if not any(f.stat().st_size >= PARALLEL_MIN_BYTES for f in files):
                return None
        except OSError:
            return None
        cur = self.cache.cursor()
        threads = int(cur.execute("SELECT current_setting('threads')").fetchall()[0][0])
        keep = 1 if self.background else max(1, (os.cpu_count() or 1) - self._pool_size)
        cur.execute(f"SET threads = {keep}")
        return threads

    def _stored_state(self, path: Path) -> tuple[str, int, int] | None:
        """The fingerprint, byte offset and line stored for `path` by an earlier run, if any."""
        rows = self.cache.cursor().execute(
            "SELECT fingerprint, byte_offset, line FROM ingest_files WHERE path = ?", [str(path)]
        ).fetchall()
        return None if not rows else (str(rows[0][0]), int(rows[0][1]), int(rows[0][2]))

    @staticmethod
    def _resume_point(path: Path, stored: tuple[str, int, int] | None) -> tuple[int, int]:
        """Where to start reading `path`: the stored offset if it is still the same file."""
        if stored is None:
            return 0, 0
        fp, offset, line = stored
        if readers.same_file(path, fp) and path.stat().st_size >= offset:
            return offset, line
        return 0, 0

    def _ingest_file(self, writer: _Writer, index: int, total: int, path: Path, fmt: str) -> None:
        state = readers.ReadState()
        name = str(path)
        # A query of the cache: a fault of the cache file (a corrupt block) ends the run with
        # its one line (ingest_cli), not as an error of this trace file.
        stored = self._stored_state(path)
        try:
            size = path.stat().st_size
            offset, line = self._resume_point(path, stored)
            fingerprint = readers.file_fingerprint(path)
            actual = readers.resolve_format(path, fmt)
            parallel = (
                actual in ("otlp-jsonl", "jsonl")
                and self.processes
                and size - offset >= PARALLEL_MIN_BYTES
                and not readers.is_compressed(path)
            )
            if parallel:
                state.fmt, state.resumable = actual, True
                kind: readers.Kind = "otlp" if actual == "otlp-jsonl" else "flat"
                self._ingest_parallel(writer, index, total, path, kind, state, offset, line,
                                      fingerprint, size)
            else:
                self._ingest_serial(writer, index, total, path, actual, state, offset, line,
                                    fingerprint, size)
            if self._stop.is_set():  # not read to its end: no "done" tick, no pending tail
                return
            if state.pending_tail:
                self.report.pending_partial_lines.append(
                    f"{name}: last line is incomplete; left for the next run"
                )
            self._tick(index, total, name, size, size)
        except readers.UnreadableFile as exc:
            self.report.errors.append(str(exc))
        except OSError as exc:
            self.report.errors.append(f"{name}: {exc.strerror or exc}")
        except EOFError as exc:
            self.report.errors.append(f"{name}: truncated compressed file ({exc})")
        except duckdb.Error:  # the cache's, never the trace file's: see `stored` above
            raise
        except Exception as exc:  # zstd/gzip/parquet decoder errors name the file, never abort
            if self._stop.is_set():  # e.g. the workers, stopped by the same signal, broke the pool
                return
            self.report.errors.append(f"{name}: {type(exc).__name__}: {exc}")

    def _ingest_serial(
        self, writer: _Writer, index: int, total: int, path: Path, fmt: str,
        state: readers.ReadState, offset: int, line: int, fingerprint: str, size: int,
    ) -> None:
        name = str(path)
        builder = self.builder
        stop = self._stop
        last_offset, last_line = offset, line
        for rec in readers.read_file(path, fmt, state, offset, line):
            if stop.is_set():  # the batch being built is dropped: the next run reads it again
                return
            builder.add(rec, name)
            last_offset, last_line = rec.offset, rec.line
            if len(builder) >= self.batch_spans:
                self._submit_builder(writer, state, name, fingerprint, last_offset, last_line)
                self._tick(index, total, name, last_offset, size)
                if writer.error is not None:
                    return
        self._submit_builder(writer, state, name, fingerprint, last_offset, last_line)

    def _ingest_parallel(
        self, writer: _Writer, index: int, total: int, path: Path, kind: readers.Kind,
        state: readers.ReadState, offset: int, line: int, fingerprint: str, size: int,
    ) -> None:
        """Decode and map in worker processes; store in order on the writer thread."""
        if self._pool is None:
            start_resource_tracker()
            self._pool = ProcessPoolExecutor(
                max_workers=self._pool_size,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=init_worker,
                initargs=(self.config.model_dump_json(), self._nice, os.getpid()),
            )
        name = str(path)
        chunk_bytes = max(64 * 1024, self.batch_spans * BYTES_PER_SPAN_GUESS)
        group = max(1, min(CHUNKS_PER_BATCH, self._pool_size))
        in_flight: deque[Future[Chunk]] = deque()
        mapped: list[Chunk] = []
        # The parent only finds line boundaries; each worker reads its own run of lines.
        for start, end, first_line in readers.line_ranges(path, offset, line, chunk_bytes):
            if self._stop.is_set():
                return
            with signals_blocked(STOP_SIGNALS | {INTERRUPT}):  # a worker may be spawned here
                in_flight.append(self._pool.submit(call_interruptibly, map_range, kind, name,
                                                   start, end, first_line))
            while len(in_flight) > MAX_IN_FLIGHT:
                chunk = self._wait(in_flight.popleft())
                if chunk is None:
                    return
                mapped.append(self._take_chunk(chunk, state))
                if len(mapped) >= group:
                    done = self._store_chunks(writer, mapped, name, fingerprint)
                    mapped = []
                    self._tick(index, total, name, done, size)
            if writer.error is not None:
                return
        while in_flight:
            chunk = self._wait(in_flight.popleft())
            if chunk is None:
                return
            mapped.append(self._take_chunk(chunk, state))
            if len(mapped) >= group or not in_flight:
                self._store_chunks(writer, mapped, name, fingerprint)
                mapped = []

    def _wait(self, future: Future[Chunk]) -> Chunk | None:
        """The chunk a worker mapped, or None once a stop is requested."""
        while not self._stop.is_set():
            try:
                return future.result(timeout=WAIT_SECONDS)
            except TimeoutError:
                continue
        return None

    def _hand_over(self, writer: _Writer, batch: _Batch) -> None:
        """Queue a batch for the writer; dropped if a stop comes while the queue is full."""
        while not self._stop.is_set():
            try:
                writer.inbox.put(batch, timeout=WAIT_SECONDS)
                return
            except queue.Full:
                continue

    def _take_chunk(self, chunk: Chunk, state: readers.ReadState) -> Chunk:
        """Count a mapped chunk into the report as it arrives (in file order)."""
        self._count(chunk.spans_read, chunk.quarantine, chunk.duplicates, chunk.clock)
        state.pending_tail = state.pending_tail or chunk.pending_tail
        return chunk

    def _store_chunks(
        self, writer: _Writer, chunks: list[Chunk], name: str, fingerprint: str
    ) -> int:
        """Hand consecutive mapped chunks to the writer as one batch; return the offset reached."""
        last = max((c for c in chunks if c.last_offset >= 0), key=lambda c: c.last_offset,
                   default=None)
        if last is None:  # only blank lines (or an unfinished tail): nothing to store
            return -1
        tables = [c.table for c in chunks if c.table is not None]
        quarantine = [row for c in chunks for row in c.quarantine]
        self._hand_over(writer, _Batch(tables, quarantine, (name, fingerprint, last.last_offset,
                                                            last.last_line)))
        return last.last_offset

    def _submit_builder(
        self, writer: _Writer, state: readers.ReadState, name: str, fingerprint: str,
        offset: int, line: int,
    ) -> None:
        cols, quarantine, read = self.builder.take()
        self._count(read, quarantine, cols.duplicates, cols.clock)
        file_state = None
        if state.resumable and offset >= 0:
            file_state = (name, fingerprint, offset, line)
        if not len(cols) and not quarantine and file_state is None:
            return
        self._hand_over(writer, _Batch([cols.to_arrow()] if len(cols) else [], quarantine,
                                       file_state))

    def _count(self, spans_read: int, quarantine: list[tuple[str, int, str]], duplicates: int,
               skew: ClockCounts) -> None:
        report = self.report
        with self._lock:
            report.duplicates += duplicates
        report.future += skew.future
        report.past += skew.past
        report.future_latest = _later(report.future_latest, skew.latest_ns, max)
        report.past_earliest = _later(report.past_earliest, skew.earliest_ns, min)
        if skew.horizon_ns is not None:
            report.past_before = f"{clock.ns_datetime(skew.horizon_ns):%Y-%m-%d}"
        report.spans_read += spans_read
        report.quarantined += len(quarantine)
        room = QUARANTINE_SAMPLES - len(report.quarantine_reasons)
        report.quarantine_reasons += [f"{n}:{ln}: {r}" for n, ln, r in quarantine[:max(room, 0)]]

    def _tick(self, index: int, total: int, name: str, done: int, size: int) -> None:
        if self.progress is not None:
            with self._lock:
                stored = self.report.spans_stored
            self.progress(Progress(index, total, name, self.report.spans_read, stored,
                                   max(done, 0), size))

    def _apply_retention(self) -> None:
        days = self.config.cache.retention_days
        rollup_days = self.config.cache.rollup_retention_days
        if days is None and rollup_days is None:
            return
        now = utc_now()
        prune(
            self.cache,
            spans_before=now - timedelta(days=days) if days else None,
            rollups_before=now - timedelta(days=rollup_days) if rollup_days else None,
        )


def prune(
    cache: Cache, *, spans_before: datetime | None, rollups_before: datetime | None
) -> tuple[int, int]:
    """Delete spans (and, separately, rollups) older than the given times; rollups outlive spans."""
    cur = cache.cursor()
    spans = rolled = 0
    with transaction(cur):
        if spans_before is not None:
            spans = cur.execute(
                "DELETE FROM spans WHERE start_time < ?", [spans_before]
            ).fetchall()[0][0]
        if rollups_before is not None:
            for table, _, _ in rollups.all_tables():
                rolled += cur.execute(
                    f"DELETE FROM {table} WHERE ts < ?", [rollups_before]
                ).fetchall()[0][0]
    return int(spans), int(rolled)
