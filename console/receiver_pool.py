"""Worker processes that decode and map the receiver's export requests, off its GIL.

`llmdeck receive` runs the HTTP loop, the mapping and DuckDB's writer in one process; on
a few cores the decoding and mapping (about half of its CPU per span) then waits for the
GIL. `MapPool` runs `map_protobuf` (the receiver's own protobuf path, see
`console.receiver_requests.map_request`) in `size` child processes, each with its own
`BatchBuilder` made from the same configuration (the same mapping, redaction and pricing as in
process): a protobuf body goes in, its span table and quarantine rows come back (or its span
count, unmapped, when it is over the receiver's per-request limit). JSON bodies, and protobuf ones that do not
parse (the 400 and its reason), are the receiver's own. The writer, the group commit and the
answer after the commit stay in the receiver.

The workers are plain `python -c` children fed over their stdin/stdout (length-prefixed
pickles; a table crosses as Arrow IPC), not multiprocessing's: that needs a resource tracker
process (~13 MB) and re-imports the command's main module in each worker (`console.cli`, and
with it DuckDB). A worker imports pyarrow, the configuration and the mapping only (~63 MB
idle, ~79 MB at its peak under load, measured; most of pyarrow's pages are shared with the
receiver).

The workers leave stop signals to the receiver's process and exit once it is gone however
it died (`proc_guard.guard_worker`: the kernel's parent-death signal, tied to the thread
that started them, so `start` starts them all from the caller's thread), or when their
stdin ends (`close`). A worker that dies (the OOM killer) fails the requests it held with
`BrokenProcessPool`; `map` then starts new workers and maps its request once more.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import os
import pickle
import subprocess
import sys
import threading
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from typing import IO, TYPE_CHECKING, cast

import pyarrow as pa

from console.cache.batching import QuarantineRow
from console.proc_guard import STOP_SIGNALS, guard_worker, signals_blocked

if TYPE_CHECKING:
    from console.cache.batching import BatchBuilder
    from console.cache.store import Cache
    from console.config import Config

__all__ = ["MapPool", "Mapped", "default_workers", "map_protobuf", "taken"]

Mapped = tuple[pa.Table | None, list[QuarantineRow], int]
"""A request mapped: its span table (None without spans), quarantine rows, spans in the table."""


def default_workers() -> int:
    """Mapping processes for `llmdeck receive`: a core for the receiver's own process, one
    process per other core, at most 2 (the writer is the limit past that)."""
    return max(1, min(2, (os.cpu_count() or 1) - 1))


def taken(builder: BatchBuilder) -> Mapped:
    """What `builder` mapped since the last take, as `Mapped`."""
    cols, quarantine, _ = builder.take()
    return (cols.to_arrow() if len(cols) else None), quarantine, len(cols)


def map_protobuf(builder: BatchBuilder, body: bytes, name: str, seq: int,
                 max_spans: int | None = None) -> Mapped | int | None:
    """Map a protobuf ExportTraceServiceRequest straight into columns
    (`otlp_proto.add_export_request`); None if the body does not parse, its span count
    (nothing mapped) if it holds more than `max_spans` spans."""
    from console.cache.otlp_proto import add_export_request, parse_export_request

    try:
        message = parse_export_request(body)
    except Exception:  # DecodeError, and whatever else a hostile body makes upb raise
        return None
    spans = sum(len(ss.spans) for rs in message.resource_spans for ss in rs.scope_spans)
    if max_spans is not None and spans > max_spans:
        return spans
    add_export_request(builder, message, name, seq)
    del message  # before the table is built: the parsed request is no longer needed
    return taken(builder)


_BOOT = ("import os, pickle, sys; f = os.fdopen(0, 'rb', buffering=0);"
         " n = int.from_bytes(f.read(8), 'little'); sys.path[:] = pickle.loads(f.read(n));"
         " from console.receiver_pool import _serve; _serve(f)")
"""A worker's command (`python -c _BOOT llmdeck-map-worker`): the first frame on its stdin is the
parent's sys.path, so it imports this checkout's `console` as the parent does."""
WORKER_MARK = "llmdeck-map-worker"
"""The worker's last argument, to tell it in a process list."""
_FRAME = 8  # bytes of length before each pickled frame


def _read_exact(f: IO[bytes], n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = f.read(left)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_frame(f: IO[bytes]) -> object:
    n = int.from_bytes(_read_exact(f, _FRAME), "little")
    return pickle.loads(_read_exact(f, n))


def _write_frame(f: IO[bytes], obj: object) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    f.write(len(data).to_bytes(_FRAME, "little"))
    f.write(data)
    f.flush()


def _serve(stdin: IO[bytes]) -> None:
    """A worker's loop (after `_BOOT`): (parent pid, configuration) then requests on `stdin`,
    one answer each on stdout, in order, until `stdin` ends."""
    stdout = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print goes to stderr, never into the answers
    parent, config_json = cast("tuple[int, str]", _read_frame(stdin))
    guard_worker(parent, STOP_SIGNALS)
    gc.disable()  # as the ingest's workers: the mapping makes many small objects, no cycles
    from console.cache.batching import BatchBuilder
    from console.config import Config

    builder = BatchBuilder(Config.model_validate_json(config_json))
    while True:
        try:
            body, name, seq, max_spans = cast("tuple[bytes, str, int, int | None]", _read_frame(stdin))
        except EOFError:
            return
        answer: tuple[bool, object]
        try:
            answer = (True, map_protobuf(builder, body, name, seq, max_spans))
        except Exception as exc:  # a bug in mapping: this request fails (500), the worker goes on
            answer = (False, exc)
        del body
        try:
            _write_frame(stdout, answer)
        except (pickle.PicklingError, TypeError, AttributeError):
            _write_frame(stdout, (False, RuntimeError(type(answer[1]).__name__)))


class _Worker:
    """One worker process and the thread reading its answers (in the order of the requests)."""

    def __init__(self, config_json: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _BOOT, WORKER_MARK], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            close_fds=True)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._stdin: IO[bytes] = self.proc.stdin
        self._stdout: IO[bytes] = self.proc.stdout
        self._send_lock = threading.Lock()
        self._waiting: collections.deque[Future[Mapped | int | None]] = collections.deque()
        self.broken = False
        path = pickle.dumps(list(sys.path))
        self._stdin.write(len(path).to_bytes(_FRAME, "little") + path)
        _write_frame(self._stdin, (os.getpid(), config_json))
        self._reader = threading.Thread(target=self._read, name="llmdeck-map-answers", daemon=True)
        self._reader.start()

    def submit(self, body: bytes, name: str, seq: int,
               max_spans: int | None) -> Future[Mapped | int | None]:
        future: Future[Mapped | int | None] = Future()
        with self._send_lock:
            if self.broken:
                raise BrokenProcessPool("a mapping process died")
            self._waiting.append(future)
            try:
                _write_frame(self._stdin, (body, name, seq, max_spans))
            except (OSError, ValueError):
                self._break()
        return future

    def _read(self) -> None:
        try:
            while True:
                ok, value = cast("tuple[bool, object]", _read_frame(self._stdout))
                with self._send_lock:
                    future = self._waiting.popleft()
                if ok:
                    future.set_result(cast("Mapped | int | None", value))
                else:
                    error = value if isinstance(value, BaseException) else RuntimeError(str(value))
                    future.set_exception(error)
        except Exception:  # EOF (the worker ended or died), or an answer that did not unpickle
            self._break()
        with contextlib.suppress(Exception):
            self.proc.wait()  # reaped at once: no zombie left behind a dead worker

    def _break(self) -> None:
        with self._send_lock:
            self.broken = True
            waiting, self._waiting = list(self._waiting), collections.deque()
        for future in waiting:
            if not future.done():
                future.set_exception(BrokenProcessPool("a mapping process died"))

    def close(self, timeout: float = 5.0) -> None:
        """End its stdin (it exits after what it maps now), wait for it, kill it past `timeout`."""
        with self._send_lock:
            with contextlib.suppress(OSError, ValueError):
                self._stdin.close()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout)
        self._break()
        with contextlib.suppress(OSError, ValueError):
            self._stdout.close()


class MapPool:
    """`size` worker processes mapping export requests; `close` stops them.

    Plain child processes fed over pipes (length-prefixed pickles; a span table crosses as
    Arrow IPC): no multiprocessing, so no resource tracker process and no re-import of the
    command's main module (`console.cli`, DuckDB) in each worker (~13 + ~25 MB of the tree)."""

    def __init__(self, config: Config, size: int) -> None:
        self.size = size
        self._config_json = config.model_dump_json()
        self._lock = threading.Lock()
        self._workers: list[_Worker] | None = None
        self._next = 0
        self._closed = False

    def start(self) -> None:
        """Start the workers now, from this thread (which must outlive them: see the module)."""
        with self._lock:
            self._start_locked()

    def _start_locked(self) -> list[_Worker]:
        if self._workers is None:
            with signals_blocked(STOP_SIGNALS):  # a worker takes them once guarded
                self._workers = [_Worker(self._config_json) for _ in range(self.size)]
        return self._workers

    def map(self, body: bytes, name: str, seq: int,
            max_spans: int | None = None) -> Mapped | int | None:
        """`map_protobuf` in a worker (blocks the calling thread, not the GIL)."""
        for attempt in (1, 2):
            with self._lock:
                if self._closed:
                    raise RuntimeError("the mapping processes are stopped")
                workers = self._start_locked()
                worker = workers[self._next % len(workers)]
                self._next += 1
            try:
                return worker.submit(body, name, seq, max_spans).result()
            except BrokenProcessPool:
                if attempt == 2:
                    raise
            with self._lock:  # a worker died: start new ones for this request and the next
                if self._workers is workers:
                    self._workers = None
                    dead = workers
                else:
                    dead = []
            for w in dead:
                threading.Thread(target=w.close, daemon=True).start()
        raise AssertionError("unreachable")

    def pids(self) -> list[int]:
        """The worker processes' ids (for tests and benches)."""
        with self._lock:
            workers = self._workers or []
        return [w.proc.pid for w in workers if not w.broken and w.proc.poll() is None]

    def close(self) -> None:
        """Stop the workers (after what they map now); later `map` calls raise."""
        with self._lock:
            self._closed = True
            workers, self._workers = self._workers or [], None
        for w in workers:
            with contextlib.suppress(Exception):
                w.close()


WRITER_SETTINGS = ("SET threads = 1", "SET checkpoint_threshold = '64MB'", "SET memory_limit = '40MB'")
"""DuckDB settings for a process that only receives (`llmdeck receive`). One thread: the
mapping worker has the other core, and the store step's statements are small (~15% less
CPU per span than two threads contending, measured in process). Checkpoints every 64 MB of
WAL instead of 16: each one recompresses, and they were a third of the store step's CPU
(2048-span commits: ~25 -> ~17 us per span); a WAL that size still replays in seconds.
A 40 MB buffer pool (the cache's default for writers is 512 MB). What DuckDB holds under
load is mostly the appended rows not yet checkpointed (`duckdb_memory()`: IN_MEMORY_TABLE),
which grow to the limit; the rest of the receiver is ~92 MB of mapped libraries (DuckDB,
Arrow, Python) and ~70 MB of heap. Peak VmHWM of the receiver's process in 30 s of
bench/receiver.py (a): 298 MB at 128 MB, 237 at 64 MB, 218-224 at 48 MB, 203 at 32 MB; spans
per CPU-second within the run-to-run noise (16-18.5k); with no limit it passed 400 MB in a
minute. 40 MB leaves the tree (with a mapping worker, ~80 MB) some room under 300 MB
without going as low as 32. What does not fit is evicted or spilled to the database's .tmp
directory by DuckDB."""


def tune_writer(cache: Cache) -> None:
    """Apply WRITER_SETTINGS to `cache`'s database (again after each reopen: `on_reopen`)."""
    for statement in WRITER_SETTINGS:
        cache.con.execute(statement)
