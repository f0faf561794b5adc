"""`llmdeck ingest`: read trace files into the cache, safely and fast.

The reading thread decodes and maps spans into column batches; a writer
thread stores each batch in one transaction together with its rollups,
its quarantined rows and the file offset it reached. A batch is either
wholly stored or not at all, so a killed run is completed by running it
again, and dedupe on (trace id, span id) keeps that from duplicating rows.
The writer is `ingest_writer`, the worker processes for big files
`ingest_pool`, what a run reports `ingest_report`, retention `retention`.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import duckdb

from console.cache import readers
from console.cache.batching import BACKGROUND_NICE, BatchBuilder
from console.cache.ingest_pool import MappingPool
from console.cache.ingest_report import IngestReport, IngestStopped, Progress
from console.cache.ingest_writer import Batch, Writer
from console.cache.retention import apply_retention, prune
from console.cache.store import Cache
from console.config import Config

__all__ = ["Ingestor", "IngestReport", "IngestStopped", "Progress", "prune",
           "PARALLEL_MIN_BYTES", "MAX_WORKERS"]

# Files at least this big are decoded and mapped in worker processes.
PARALLEL_MIN_BYTES = 32 * 1024 * 1024
MAX_WORKERS = 2


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
        self._pool: MappingPool | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event() if stop_event is None else stop_event
        self._writer: Writer | None = None

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
        see `MappingPool.end` for why nothing may wait on the pool after). Safe from a signal
        handler; what they were mapping is read again by the next run."""
        pool = self._pool
        if pool is not None:
            pool.kill()

    def run(self, paths: list[Path], fmt: str = "auto") -> IngestReport:
        started = time.perf_counter()
        files = readers.list_files(paths)
        self.report.files = len(files)
        threads = self._leave_cores_to_workers(files)
        writer = Writer(self.cache, self.report, self._lock, self._nice, self._stop)
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
        apply_retention(self.cache, self.config)
        self.cache.checkpoint()
        self.report.seconds = time.perf_counter() - started
        return self.report

    def _end_pool(self) -> None:
        """Shut the worker processes down (see `MappingPool.end`)."""
        if self._pool is not None:
            self._pool.end()

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

    def _ingest_file(self, writer: Writer, index: int, total: int, path: Path, fmt: str) -> None:
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
                if self._pool is None:
                    self._pool = MappingPool(self.config, self._pool_size, self._nice, self._stop,
                                             self.report, self._lock)
                self._pool.ingest(writer, path, kind, state, offset, line, fingerprint,
                                  lambda done: self._tick(index, total, name, done, size))
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
        self, writer: Writer, index: int, total: int, path: Path, fmt: str,
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

    def _submit_builder(
        self, writer: Writer, state: readers.ReadState, name: str, fingerprint: str,
        offset: int, line: int,
    ) -> None:
        cols, quarantine, read = self.builder.take()
        self.report.count(read, quarantine, cols.duplicates, cols.clock, self._lock)
        file_state = None
        if state.resumable and offset >= 0:
            file_state = (name, fingerprint, offset, line)
        if not len(cols) and not quarantine and file_state is None:
            return
        writer.offer(Batch([cols.to_arrow()] if len(cols) else [], quarantine, file_state))

    def _tick(self, index: int, total: int, name: str, done: int, size: int) -> None:
        if self.progress is not None:
            with self._lock:
                stored = self.report.spans_stored
            self.progress(Progress(index, total, name, self.report.spans_read, stored,
                                   max(done, 0), size))
