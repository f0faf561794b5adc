"""The hub: every outside source polled concurrently on one asyncio loop of its own thread.

Each configured source has one poller (Prometheus, Alertmanager, a scraped
`/metrics`...). The hub polls each on its own interval, so a slow or hung source
never delays another, keeps the latest snapshot of each, and reports every poll
to the source's `SourceHealth`. A failed poll keeps the last snapshot but the
source turns stale, then down: nothing old is passed off as fresh (readers get
the snapshot together with its status). Worker threads read snapshots and run
one-off calls (a chart query, a silence) on the hub's loop with a deadline. No
Textual here; nothing here runs before `start()`, which the app calls after its
first paint.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from connectors.http_logging import mask_secrets
from console.safe_text import cell
from console.sources import SourceHealth, SourceStatus
from console.timeutil import utc_now

T = TypeVar("T")


class Poller(Protocol):
    """One source as the hub polls it."""

    name: str
    kind: str
    interval: float
    health: SourceHealth

    async def poll(self) -> object:
        """Read the source once and return one frozen snapshot; raise on failure."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class Reading:
    """A source's latest snapshot (None before its first good poll) and its status now."""

    name: str
    kind: str
    snapshot: object | None
    read_at: datetime | None
    """When `snapshot` was read (wall clock, naive UTC)."""
    status: SourceStatus


def failure_text(exc: BaseException) -> str:
    """What a failed poll says: a connector error's own text, else the exception's class and
    message, one line, secrets masked (a poller bug may quote a header), control characters made
    visible, capped."""
    text = str(exc) if getattr(exc, "kind", None) is not None else f"{type(exc).__name__}: {exc}"
    return cell(mask_secrets(text), 300)


def snapshot_summary(snapshot: object) -> str:
    """What a snapshot says it holds (its `summary()`, if it has one), one clean line."""
    summary = getattr(snapshot, "summary", None)
    return cell(summary(), 200) if callable(summary) else ""


class SourceHub:
    """Runs pollers on a private event loop thread; thread-safe readers."""

    def __init__(self, pollers: Sequence[Poller], clock: Callable[[], datetime] = utc_now,
                 poll_deadline: float = 60.0) -> None:
        self.pollers = list(pollers)
        self.clock = clock
        self.poll_deadline = poll_deadline
        """A poll still running after this many seconds is cancelled and counted as failed."""
        self._lock = threading.Lock()
        self._latest: dict[str, tuple[object, datetime]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._wake: dict[str, asyncio.Event] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._started = threading.Event()
        self._stopping = False
        self.listener: Callable[[str], None] | None = None
        """Called (on the hub's thread) with a source's name when its state changes or its
        first snapshot arrives: the console refreshes the screen then, not at its next tick."""
        self.polls = 0
        """How many polls have ended (good or bad)."""

    # ---- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        """Start the loop thread and every poller's first poll (idempotent)."""
        if self._thread is not None or not self.pollers:
            return
        self._thread = threading.Thread(target=self._run_loop, name="llmdeck-sources", daemon=True)
        self._thread.start()
        self._started.wait(5)

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel the polls, close every poller's client, stop the loop."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout)
        except Exception:  # a poller that will not close must not hold up exit
            pass
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def _run_loop(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        for poller in self.pollers:
            self._wake[poller.name] = asyncio.Event()
            self._tasks.append(loop.create_task(self._poll_forever(poller), name=poller.name))
        self._started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _shutdown(self) -> None:
        self._stopping = True
        for event in self._wake.values():
            event.set()
        # Cancel until every poll has ended: on Python 3.11 a cancellation that lands while a
        # timeout fires can be swallowed, and the task would go on polling.
        for _ in range(40):
            pending = [t for t in self._tasks if not t.done()]
            if not pending:
                break
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=0.05)
        await asyncio.gather(*(asyncio.wait_for(p.aclose(), 2) for p in self.pollers),
                             return_exceptions=True)

    # ---- polling --------------------------------------------------------------

    async def _poll_forever(self, poller: Poller) -> None:
        wake = self._wake[poller.name]
        while not self._stopping:
            await self.poll_once(poller)
            wake.clear()
            try:
                async with asyncio.timeout(max(poller.interval, 0.05)):
                    await wake.wait()
            except TimeoutError:
                pass

    async def poll_once(self, poller: Poller) -> None:
        """One poll of `poller`: store its snapshot and report to its health."""
        before = poller.health.status().state
        had_snapshot = poller.name in self._latest
        started = time.perf_counter()
        try:
            prepare = getattr(poller, "prepare", None)
            if prepare is not None:  # one-off setup (secrets, client) is not the source's latency
                async with asyncio.timeout(self.poll_deadline):
                    await prepare()
                started = time.perf_counter()
            async with asyncio.timeout(self.poll_deadline):
                snapshot = await poller.poll()
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            poller.health.failed(f"no answer within {self.poll_deadline:.0f} s")
        except Exception as exc:  # every failure is the source's state, never the hub's end
            poller.health.failed(failure_text(exc), down=bool(getattr(exc, "permanent", False)))
        else:
            with self._lock:
                self._latest[poller.name] = (snapshot, self.clock())
            poller.health.succeeded(time.perf_counter() - started, snapshot_summary(snapshot))
            problems = tuple(getattr(snapshot, "problems", ()) or ())
            if problems:  # it answered, but not everything: stale, with the first reason
                poller.health.failed(cell("; ".join(problems), 300))
        with self._lock:
            self.polls += 1
            first = not had_snapshot and poller.name in self._latest
        listener = self.listener
        if listener is not None and (first or poller.health.status().state != before):
            try:
                listener(poller.name)
            except Exception:  # a closing console must not break the polls
                pass

    def refresh(self, name: str | None = None) -> None:
        """Poll `name` (or every source) now instead of at its next interval."""
        loop = self._loop
        if loop is None:
            return
        for poller_name, event in self._wake.items():
            if name is None or poller_name == name:
                loop.call_soon_threadsafe(event.set)

    # ---- readers (any thread) -------------------------------------------------

    def statuses(self) -> tuple[SourceStatus, ...]:
        """Every source's status, in config order."""
        return tuple(p.health.status() for p in self.pollers)

    def readings(self) -> tuple[Reading, ...]:
        """Every source's latest snapshot with its status, in config order."""
        with self._lock:
            latest = dict(self._latest)
        out = []
        for p in self.pollers:
            snapshot, read_at = latest.get(p.name, (None, None))
            out.append(Reading(p.name, p.kind, snapshot, read_at, p.health.status()))
        return tuple(out)

    def poller(self, name: str) -> Poller | None:
        return next((p for p in self.pollers if p.name == name), None)

    def client(self, name: str) -> object | None:
        """The HTTP client of source `name` once its poller is made (one-off calls such as a
        chart query or a silence run through it on the hub's loop); None before that."""
        poller = self.poller(name)
        return getattr(getattr(poller, "inner", poller), "client", None)

    def call(self, make: Callable[[], Awaitable[T]], timeout: float) -> T:
        """Run `make()` on the hub's loop from another thread and wait at most `timeout` s.

        Raises TimeoutError (the call is cancelled) or whatever the coroutine raised.
        """
        loop = self._loop
        if loop is None:
            raise RuntimeError("the source hub is not running")

        async def run() -> T:
            return await make()

        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(run(), loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"no answer within {timeout:.0f} s") from None


def run_pollers_once(pollers: Sequence[Poller], deadline: float = 30.0) -> list[Reading]:
    """Poll every source once, concurrently (the CLI's `sources check`, `alerts`): readings
    in config order, then every client closed."""
    hub = SourceHub(pollers, poll_deadline=deadline)

    async def once() -> None:
        try:
            await asyncio.gather(*(hub.poll_once(p) for p in pollers))
        finally:
            await asyncio.gather(*(p.aclose() for p in pollers), return_exceptions=True)

    asyncio.run(once())
    return list(hub.readings())


__all__ = ["Poller", "Reading", "SourceHub", "failure_text", "run_pollers_once"]
