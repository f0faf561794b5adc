"""The ingest's writer thread: each batch of spans stored in one transaction, in order.

A batch's spans (deduplicated against the stored ones), their partial rollup rows, its
quarantined lines and the file offset it reached are committed together, so a killed
run leaves whole batches only and the next run resumes right after the last one.
That store step is `BatchStore`, shared with the OTLP/HTTP receiver (`console.receiver`).
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from console.cache import rollups
from console.cache.batching import lower_thread_priority
from console.cache.ingest_report import IngestReport
from console.cache.store import Cache
from console.cache.transactions import transaction
from console.timeutil import utc_now

COMPACT_EVERY_BATCHES = 16
WAIT_SECONDS = 0.2
"""How often the reading thread, waiting on a worker or the writer, looks whether to stop."""


@dataclass
class Batch:
    """What the writer stores in one transaction: span tables in file order, quarantine, offset."""

    tables: list[pa.Table]
    quarantine: list[tuple[str, int, str]]
    file_state: tuple[str, str, int, int] | None  # path, fingerprint, byte offset, line


class Writer(threading.Thread):
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
        self.inbox: queue.Queue[Batch | None] = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.store = BatchStore()

    def offer(self, batch: Batch) -> None:
        """Queue a batch (from the reading thread); dropped if a stop comes while the queue is full."""
        while not self.stop.is_set():
            try:
                self.inbox.put(batch, timeout=WAIT_SECONDS)
                return
            except queue.Full:
                continue

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
                self.store.compact(cur)
            except BaseException as exc:
                self.error = exc

    def _store(self, cur: Any, batch: Batch) -> None:
        counts = self.store.store(cur, batch)
        with self.lock:
            self.report.spans_stored += counts.spans
            self.report.duplicates += counts.duplicates
            self.report.unpriced += counts.unpriced
            if batch.file_state is not None:
                self.position = (batch.file_state[0], batch.file_state[2])
        self.store.batches_since_compact += max(1, len(batch.tables))
        if self.store.batches_since_compact >= COMPACT_EVERY_BATCHES:
            self.store.compact(cur)


@dataclass(frozen=True, slots=True)
class StoreCounts:
    """What one `BatchStore.store` committed: spans stored, already there, stored unpriced."""

    spans: int
    duplicates: int
    unpriced: int


class BatchStore:
    """The store step shared by `llmdeck ingest` and the OTLP receiver (`console.receiver`).

    `store` commits one batch in one transaction on the caller's cursor: its span tables
    deduplicated on (trace id, span id) against the stored spans and against each other,
    their partial rollup rows, its quarantine rows and its file offset. `compact` folds the
    partial rollup rows of the hours stored into since the last compaction.
    """

    def __init__(self) -> None:
        self.touched: set[int] = set()
        """Hours (unix ns // 1 h) given partial rollup rows since the last compaction."""
        self.batches_since_compact = 0
        """Batches (span tables) stored since the last compaction; the caller decides when."""

    def store(self, cur: Any, batch: Batch) -> StoreCounts:
        """Commit `batch` in one transaction (a failure rolls all of it back and raises)."""
        stored = dup = unpriced = 0
        views: list[str] = []  # the batch's tables, registered as views until the transaction ends
        try:
            with transaction(cur):  # a rollback takes the temporary tables made in it too
                sources: list[str] = []  # the rows stored from each table, for the rollups
                temporary: list[str] = []  # tables `_insert_spans` made, dropped before the commit
                for i, table in enumerate(batch.tables):
                    if not table.num_rows:
                        continue
                    view = f"_batch{i}"
                    views.append(view)
                    cur.register(view, table)
                    # A later table's dedupe sees the earlier ones (same transaction).
                    source, s, d, u = self._insert_spans(cur, view, table, f"_new{i}")
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
        return StoreCounts(stored, dup, unpriced)

    def _insert_spans(self, cur: Any, view: str, table: pa.Table, new: str) -> tuple[str, int, int, int]:
        """Store the spans of `view` that are not stored yet.

        Returns where the rows stored are (`view`, or the temporary table `new`, left for
        the caller to drop, when some were stored before), and how many were stored,
        already there, and unpriced.
        """
        # The hours the batch starts in, not min..max: with one span from 1970 in the batch,
        # dedupe and compaction still read the recent hours and that one, not 56 years.
        hours = rollups.hours_of_table(table)  # computed on the Arrow table: no query
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
        stored = table.num_rows - clashes
        if not stored:
            return source, 0, clashes, 0
        if clashes:
            unpriced = cur.execute(
                f"SELECT count(*) FILTER (WHERE unpriced) FROM {source}"
            ).fetchall()[0][0]
        else:
            unpriced = pc.sum(pc.cast(pc.fill_null(table["unpriced"], False), pa.int64())).as_py() or 0
        cur.execute(f"INSERT INTO spans SELECT * FROM {source}")
        self.touched |= hours
        return source, stored, clashes, unpriced

    def compact(self, cur: Any) -> None:
        """Compact the partial rollup rows of the hours touched since the last time (one transaction)."""
        self.batches_since_compact = 0
        if not self.touched:
            return
        with transaction(cur):
            rollups.compact_hours(cur, self.touched)
        self.touched = set()
