"""The console as a writer of its cache: the write gate, the read-write open, the in-process receiver.

DuckDB lets one process hold a file read-write, and then no other process can open it at all.
`llmdeck` therefore opens its cache read-write only when the config gives it something to
write (billing sources, `[receiver] listen`), and falls back to read-only when another
process has the file open (`open_for_writers`): then the writers' source lines say why they
are idle instead of the console failing. Every writer of the process (the billing poller, the
receiver, the demo simulator's ingest) writes only inside one `WriteGate` (the demo uses its
simulator's lock instead), so no two write at once.

`ReceiverHost` runs `[receiver] listen` in the console process: the receiver's writer thread
(console/receiver.py) and the OTLP/HTTP server (connectors/otlp_http.py) on a thread with an
event loop of its own; `close()` stops the server, then the receiver, and returns once neither
has a thread left. Its source line carries the receiver's stats (requests, spans stored, state).
The receiver writes through a connection of its own to the same database (DuckDB shares one
instance per file in a process): after a failed write it abandons and reopens only that one,
never the connection the panels read through.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from console.cache.faults import CacheError, CacheLockedError, first_line
from console.cache.store import Cache
from console.sources import SourceState, SourceStatus
from console.timeutil import utc_now

if TYPE_CHECKING:
    from connectors.otlp_http import OtlpHttpServer
    from console.config import Config
    from console.receiver import Receiver, ReceiverStats

Gate = Callable[[], AbstractContextManager[object]]

OPEN_TRIES = 4
OPEN_PAUSE = 0.25
"""A read-write open that finds the file held is tried again a few times (a `llmdeck status`
holds it for a moment) before the console settles for read-only."""


class GateClosed(RuntimeError):
    """The gate no longer lets writers in: the console is closing, or its cache was released."""


class WriteGate:
    """The lock every writer of this process's cache holds while it uses the cache."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closed: str | None = None

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._closed is not None:
                raise GateClosed(self._closed)
            yield

    def close(self, reason: str) -> None:
        """Let no writer in from now on (waits for the one inside, if any)."""
        with self._lock:
            self._closed = reason


def wants_writers(config: Config) -> bool:
    """Whether the console has anything to write: billing sources or `[receiver] listen`."""
    return bool(config.sources.billing()) or receiver_listen(config) is not None


def receiver_listen(config: Config) -> str | None:
    """`[receiver] listen`, or None: the console process receives only when it is set."""
    return config.receiver.listen or None


def open_for_writers(path: Path, pause: Callable[[float], None] = time.sleep) -> tuple[Cache, str | None]:
    """The cache read-write, or read-only with who holds it (`PATH is in use by ... (PID n)`)
    when another process has it open.

    Raises the `CacheLockedError` when it cannot be opened at all (a writer holds it), and any
    other `CacheError` (corrupt, too new) as `Cache.open` does."""
    for attempt in range(OPEN_TRIES):
        try:
            return Cache.open(path, read_only=False, create=False), None
        except CacheLockedError as exc:
            held = exc
            if attempt + 1 < OPEN_TRIES:
                pause(OPEN_PAUSE)
    cache = Cache.open(path, read_only=True, create=False)
    return cache, str(held).split("; close it")[0]


def not_polling(held_by: str) -> str:
    """What the billing lines say while another process has the cache open."""
    return (f"not polling: the cache is open read-only here ({held_by}); run `llmdeck billing sync`"
            " once it is closed, or restart the console then")


def not_listening(held_by: str) -> str:
    """What the receiver's line says while another process has the cache open."""
    return (f"not listening: the cache is open read-only here ({held_by}); restart the console"
            " once it is closed")


_STATE: dict[str, SourceState] = {"ok": "live", "behind": "stale", "cannot_write": "down"}


class ReceiverHost:
    """`[receiver] listen` inside this process: a Receiver and its OTLP/HTTP server on a thread.

    `start()` returns once the server is bound (`address`) or raises why it could not be;
    with `not_listening` it starts nothing and its line says why."""

    def __init__(self, cache: Cache, config: Config, gate: Gate, *, host: str, port: int,
                 token: str | None = None, not_listening: str | None = None,
                 name: str = "otlp receiver") -> None:
        self.cache = cache
        self.config = config
        self.gate = gate
        self.host, self.port = host, port
        self.address: tuple[str, int] = (host, port)
        self.token = token
        self.not_listening = not_listening
        self.name = name
        self.receiver: Receiver | None = None
        self._server: OtlpHttpServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._failed: str | None = None
        self._close_lock = threading.Lock()
        self._last: ReceiverStats | None = None
        """The stats when it was closed (its line keeps the counts)."""
        self._since = utc_now()

    @property
    def url(self) -> str:
        """The traces endpoint (what OTEL_EXPORTER_OTLP_TRACES_ENDPOINT takes)."""
        host, port = self.address
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/v1/traces"

    def start(self) -> None:
        """Start the receiver's writer and the server; return once it listens."""
        if self.not_listening is not None or self._thread is not None:
            return
        from connectors.otlp_http import OtlpHttpServer
        from console.receiver import Receiver

        settings = self.config.receiver
        own = Cache.open(self.cache.path, read_only=False, create=False)  # the same database
        receiver = Receiver(own, self.config, write_lock=self.gate, queue_spans=settings.queue_spans,
                            secrets=(self.token,) if self.token else ())
        receiver.start()
        self.receiver = receiver
        self._server = OtlpHttpServer(receiver.handle, host=self.host, port=self.port,
                                      token=self.token, max_body_bytes=settings.max_body_bytes)
        ready = threading.Event()
        errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._serve, args=(ready, errors),
                                        name="llmdeck-receiver", daemon=True)
        self._thread.start()
        ready.wait()
        if errors:
            self._thread.join()
            self._thread = None
            self._close_receiver()
            self._failed = f"not listening: {self.host}:{self.port}: {_first_line(errors[0])}"
            raise OSError(self._failed) from errors[0]

    def _serve(self, ready: threading.Event, errors: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main(ready, errors))
        finally:
            loop.close()

    async def _main(self, ready: threading.Event, errors: list[BaseException]) -> None:
        server = self._server
        assert server is not None
        self._stop = asyncio.Event()
        try:
            await server.start()
        except BaseException as exc:  # the port is taken, say: start() raises it
            errors.append(exc)
            ready.set()
            return
        self.address = server.address
        ready.set()
        try:
            await server.serve_until(self._stop)
        except Exception as exc:  # nothing listens any more: the line must not say "live"
            self._failed = f"stopped: {_first_line(exc)}"

    def close(self) -> None:
        """Stop taking requests, then the receiver (what is queued is stored or refused);
        returns once its server thread is gone. A writer thread still held past the
        receiver's close timeout (the demo simulator's lock) is abandoned with the connection,
        as `llmdeck receive` does: its commit then fails and is answered 503. Two closes at
        once (the fetch worker's release_cache, the main thread's quit) take turns."""
        with self._close_lock:
            loop, stop, thread = self._loop, self._stop, self._thread
            if thread is not None:
                if loop is not None and stop is not None and not loop.is_closed():
                    try:
                        loop.call_soon_threadsafe(stop.set)
                    except RuntimeError:  # the loop ended meanwhile
                        pass
                thread.join()
                self._thread = None
            self._close_receiver()

    def _close_receiver(self) -> None:
        """Stop the receiver and close its connection (abandoned, no checkpoint, after a fault)."""
        receiver, self.receiver = self.receiver, None
        if receiver is None:
            return
        receiver.close()
        self._last = receiver.stats()
        if self._last.state == "cannot_write" or receiver.running:
            receiver.cache.abandon()  # no checkpoint under a live writer or onto a failing disk
        else:
            receiver.cache.close()

    # -- backend.CacheUser -------------------------------------------------------------

    def release_cache(self, fault: CacheError) -> None:
        """The cache is closed next under `fault`: stop listening and writing first."""
        self._failed = f"stopped: {fault}"
        self.close()

    def adopt_cache(self, cache: Cache) -> None:
        """Opened again read-only: nothing to write with; the line keeps the fault."""

    @property
    def cache_fault(self) -> CacheError | None:
        """While the receiver cannot write: its fault, of the kind `faults.classify` found for the
        failed write (the status line's "cache write failed: disk full"); None otherwise."""
        receiver = self.receiver
        if receiver is None:
            return None
        st = receiver.stats()
        if st.state != "cannot_write":
            return None
        known = receiver.fault  # the kind faults.classify found; a plain CacheError when it found none
        fault = (CacheError if known is None else type(known))(st.reason)
        fault.path = self.cache.path
        return fault

    # -- the line -------------------------------------------------------------------------

    def source_status(self) -> SourceStatus:
        """`SourceProbe`: listening (live), behind (stale) or unable to write (down), with its counts."""
        where = f"{self.address[0]}:{self.address[1]}"
        why = self.not_listening or self._failed
        receiver = self.receiver
        if why is not None or receiver is None:
            reason = why or ("closed" if self._last is not None else "not started")
            counts = "" if self._last is None else (
                f"; {self._last.requests:,} requests, {self._last.spans_stored:,} spans stored")
            return SourceStatus(self.name, "otlp", "down", None, self._since,
                                f"{where}: {reason}{counts}")
        st = receiver.stats()
        detail = (f"{where}: {st.requests:,} requests, {st.spans_stored:,} spans stored"
                  + (f", {st.duplicates:,} duplicates" if st.duplicates else "")
                  + (f", {st.rejected:,} rejected" if st.rejected else ""))
        state = _STATE.get(st.state, "down")
        if st.state != "ok":
            detail += f"; {st.state.replace('_', ' ')}" + (f": {st.reason}" if st.reason else "")
        return SourceStatus(self.name, "otlp", state, st.last_write_at, None, detail,
                            last_error=st.reason if st.state != "ok" else "")


def _first_line(exc: BaseException) -> str:
    return first_line(exc)[:300]


def receiver_host(cache: Cache, config: Config, gate: Gate, held_by: str | None = None,
                  listen: str | None = None) -> ReceiverHost | None:
    """The host for `[receiver] listen` (or `listen`), None when neither is set. Not started; when it
    cannot run (the cache is read-only here, a bad address, a non-loopback address without
    `[receiver] token`, a token that cannot be read) its line says why instead."""
    from console.config import parse_listen
    from console.receive_cli import is_loopback

    listen = listen or receiver_listen(config)
    if listen is None:
        return None
    try:
        host, port = parse_listen(listen)
    except ValueError as exc:
        return ReceiverHost(cache, config, gate, host=listen, port=0, not_listening=f"not listening: {exc}")
    token_ref = config.receiver.token
    why = not_listening(held_by) if held_by else None
    token: str | None = None
    if why is None and token_ref:
        from console.secrets import SecretError, header_secret

        try:
            token = header_secret(token_ref, timeout=10.0)
        except SecretError as exc:
            why = f"not listening: {exc}"
    elif why is None and not is_loopback(host):
        why = (f"not listening on {host}: an address other than loopback needs [receiver] token"
               " = \"<secret reference>\"")
    return ReceiverHost(cache, config, gate, host=host, port=port, token=token, not_listening=why)
