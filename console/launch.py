"""Building and running the console: `llmdeck`, `llmdeck --cache FILE`, `llmdeck demo`.

The composition root: opens the cache, builds the backend, the sources and
(for the demo) the simulator, and hands them to the Textual app. The app
module is imported only here, so `llmdeck status` never loads Textual.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from console.backend import Backend
from console.cache.faults import CacheError, classify
from console.cache.queries import newest_span
from console.cache.store import Cache
from console.cli import EXIT_CACHE
from console.config import Config
from console.safe_text import cell
from console.sources import SourceHealth, SourceProbe, SourceStatus
from console.stop_signals import StopSignals, say
from console.timeutil import utc_now
from console.views import OverviewView

if TYPE_CHECKING:
    from console.billing_worker import BillingWorker
    from console.demo.backfill import BackfillProgress
    from console.demo.endpoints import DemoEndpoints
    from console.demo.simulator import Simulator
    from console.source_hub import SourceHub
    from console.writers import Gate, ReceiverHost


@dataclass
class CacheProbe:
    """The cache file as a source: live while it answers, with its newest span.

    Read-only, nothing can write the file while this process holds it, so the newest span is
    read once; read-write (the console's own writers add spans), it is read again at most every
    `REREAD_SECONDS`. Reports through a `SourceHealth`, like every other source.
    """

    cache: Cache
    label: str = "trace cache"
    _detail: str | None = field(default=None, init=False, repr=False)
    _read_at: float = field(default=0.0, init=False, repr=False)
    _health: SourceHealth = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._health = SourceHealth(self.label, "duckdb")

    def source_status(self) -> SourceStatus:
        """`SourceProbe`: live once the newest span was read, down (with the error) if it cannot be."""
        again = not self.cache.read_only and time.monotonic() - self._read_at >= REREAD_SECONDS
        if self._detail is None or again:
            try:
                newest = newest_span(self.cache.cursor(), utc_now())  # not a span dated ahead
            except Exception as exc:  # the UI shows it; it must not crash the poll
                fault = classify(exc, self.cache.path)
                self._health.failed(str(fault) if fault is not None else type(exc).__name__)
                return self._health.status()
            self._read_at = time.monotonic()
            self._detail = f"newest span {newest:%Y-%m-%d %H:%M}Z" if newest else "no spans yet"
        self._health.succeeded(detail=self._detail)
        return self._health.status()

    def release_cache(self, fault: CacheError) -> None:
        """`backend.CacheUser`: nothing to wait for, this probe reads on the poll's own thread."""

    def adopt_cache(self, cache: Cache) -> None:
        """`backend.CacheUser`: read the cache opened again from now on."""
        self.cache = cache


REREAD_SECONDS = 10.0
"""How often the cache line reads the newest span again while this process writes the cache."""


def wall_clock() -> datetime:
    """Naive-UTC now."""
    return utc_now()


def source_hub(config: Config) -> SourceHub | None:
    """The hub polling every configured outside source (started by the app after its first
    paint), or None when none is configured. Builds pollers only: no I/O here."""
    from console.source_hub import SourceHub
    from console.source_setup import build_pollers

    pollers = build_pollers(config)
    return SourceHub(pollers) if pollers else None


def storage_badge() -> str | None:
    """The status-line warning while secrets are kept in plaintext files (--insecure-storage)."""
    import sys

    secrets = sys.modules.get("console.secrets")  # imported only if a secret was asked for
    return secrets.badge_text() if secrets is not None else None


def run_console(config: Config, cache_path: Path, theme: str | None, err: TextIO, *,
                write: bool = False, dry_run: bool = False) -> int:
    """`llmdeck` / `llmdeck --cache FILE`: the console on a cache.

    Read-only unless the config gives it something to write: then it opens the cache
    read-write and hosts the writers (console/writers.py): billing polling (each source
    every `poll_seconds`) and `[receiver] listen`. When another process has the file open it
    settles for read-only, and those sources' lines say why they are idle. A cache that
    cannot be opened (corrupt, locked by a writer, too new) raises its `CacheError` before
    Textual starts. SIGHUP, SIGTERM and SIGINT end it cleanly (console/stop_signals.py); the
    writers are closed first, then the cache. `write` (`llmdeck --write`) lets runbook actions
    act in an environment marked `[actions] prod = true` (read-only there otherwise); `dry_run`
    (`llmdeck --dry-run`) makes every action from the console a dry run (nothing sent).
    """
    from console.writers import open_for_writers, wants_writers

    if not cache_path.exists():
        err.write(f"llmdeck: no cache at {cell(cache_path, 400)}; run `llmdeck ingest FILES` first,"
                  " or `llmdeck demo` to try the console\n")
        return 1
    stop = StopSignals()
    stop.install()
    held_by: str | None = None
    if wants_writers(config):
        cache, held_by = open_for_writers(cache_path)
    else:
        cache = Cache.open(cache_path, read_only=True, create=False)
    writers: ConsoleWriters | None = None
    backend: Backend | None = None
    try:
        writers = ConsoleWriters.build(cache, config, held_by)
        writers.start()
        backend = Backend(cache, config, wall_clock, [CacheProbe(cache), *writers.probes()],
                          hub=source_hub(config))
        # the first overview query runs while Textual is imported and the app mounts
        backend.prefetch(OverviewView())
        from console.app import LlmdeckApp
        from console.runbook_actions import RunbookBridge

        runbooks = RunbookBridge.for_config(config, backend.incident_store(), write=write,
                                            dry_run=dry_run)
        app = LlmdeckApp(backend, theme=theme, badge=storage_badge(), stop=stop, runbooks=runbooks)
        if stop.received is None:
            app.run()
    finally:
        if writers is not None:
            writers.close()  # first: no writer is inside the cache when it closes
        faulted = backend is not None and (backend.read_fault is not None or backend.reopened)
        if faulted and not cache.read_only:  # no closing checkpoint: a damaged file stays as it was
            cache.abandon()
        else:
            cache.close()  # read-only: never a checkpoint
        if backend is not None and backend.cache is not cache:  # reopened
            backend.cache.close()
    return stopped(stop, cache_path, err)


@dataclass
class ConsoleWriters:
    """What writes the cache in a console process: the billing poller and the receiver, behind
    one write gate (the demo passes its simulator's lock as the gate)."""

    gate: Gate
    billing: BillingWorker | None = None
    receiver: ReceiverHost | None = None
    closing: Callable[[str], None] | None = None
    """Shuts the gate (the console's own `WriteGate`), once the writers are closed."""

    @classmethod
    def build(cls, cache: Cache, config: Config, held_by: str | None, gate: Gate | None = None, *,
              listen: str | None = None, **billing: Any) -> ConsoleWriters:
        """The writers `config` asks for (none started). `held_by`: who holds the cache (it is
        read-only here), said on their lines instead of writing. `gate`: the process's write
        lock (default: a `WriteGate` of their own); `billing`: `BillingWorker` options."""
        from console.billing_worker import BillingWorker
        from console.writers import WriteGate, not_polling, receiver_host

        closing = None
        if gate is None:
            own = WriteGate()
            gate, closing = own, own.close
        worker = (BillingWorker(cache, config, gate, not_polling=held_by and not_polling(held_by),
                                **billing) if config.sources.billing() else None)
        return cls(gate, worker, receiver_host(cache, config, gate, held_by, listen=listen), closing)

    def start(self) -> None:
        """Start the receiver (a port it cannot bind is said on its line), then billing polling."""
        if self.receiver is not None:
            try:
                self.receiver.start()
            except OSError:  # said on its source line
                pass
        if self.billing is not None:
            self.billing.start()

    def probes(self) -> list[SourceProbe]:
        """Their source lines: each billing source, then the receiver."""
        lines: list[SourceProbe] = [*self.billing.probes()] if self.billing is not None else []
        if self.receiver is not None:
            lines.append(self.receiver)
        return lines

    def close(self) -> None:
        """The receiver first (no new spans), then billing; returns with no thread of theirs left."""
        if self.receiver is not None:
            self.receiver.close()
        if self.billing is not None:
            self.billing.close()
        if self.closing is not None:
            self.closing("the console is closing")


def stopped(stop: StopSignals, cache_path: Path, err: TextIO) -> int:
    """After the console: one line when a signal stopped it (to /dev/null after a hangup)."""
    if stop.received is None:
        return 0
    say(err, f"llmdeck: stopped by {stop.describe()}; {cell(cache_path, 400)} is closed,"
             " nothing stored was lost")
    return stop.exit_code


def run_demo(seed: int, speed: float, start: datetime | None, theme: str | None,
             workdir: Path | None, err: TextIO | None = None) -> int:
    """`llmdeck demo`: a fresh cache in a temp dir, the console at once, a week of history behind it.

    The history is ingested newest first on the simulator's own thread while the
    console is up (its source status says how far it got; a toast says when the
    week is in), then the simulator's live steps keep it going. A corrupt demo cache
    in `workdir` is moved aside and the demo starts on a fresh one. SIGHUP, SIGTERM
    and SIGINT end it cleanly: the backfill stops, the cache is closed. Its incidents, actions
    and audit journal live in `<workdir>/state` (XDG_STATE_HOME for this process), never in
    the operator's own state directory: a simulated outage is no compliance evidence.
    """
    from console.demo.clock import SimClock
    from console.demo.config import demo_config
    from console.demo.simulator import Simulator

    err = err or sys.stderr
    own = workdir is None
    root = Path(tempfile.mkdtemp(prefix="llmdeck-demo-")) if workdir is None else workdir
    root.mkdir(parents=True, exist_ok=True)
    spool = root / "spool"
    spool.mkdir(exist_ok=True)
    cache_path = root / "demo.duckdb"
    os.environ["XDG_STATE_HOME"] = str(root / "state")  # before anything opens the state file
    config = demo_config(cache_path)
    stop = StopSignals()
    stop.install()
    if own:  # a second signal exits at once, skipping the finally below
        stop.cleanups.append(lambda: shutil.rmtree(root, ignore_errors=True))
    try:
        cache, moved = open_demo_cache(cache_path, err)
    except CacheError as exc:
        err.write(f"llmdeck demo: {cell(exc, 1000)}\n")
        return EXIT_CACHE
    sim: Simulator | None = None
    endpoints: DemoEndpoints | None = None
    writers: ConsoleWriters | None = None
    backend: Backend | None = None
    try:
        clock = SimClock(start or wall_clock(), speed)
        sim = Simulator(cache, config, spool, seed=seed, clock=clock)
        # The newest hour is ingested while the servers start; the rest while the console runs.
        progress = _DemoProgress()
        painted = threading.Event()  # the older parts wait for the first paint (at most 3 s)
        sim.start_backfill(progress, hold=painted)
        # vLLM and LiteLLM /metrics and an Alertmanager on loopback, read by the real connectors
        from console.demo.endpoints import DemoEndpoints

        endpoints = DemoEndpoints.for_simulator(sim)
        config = demo_config(cache_path, endpoints.start())
        # billing APIs -> cache, under the simulator's lock (every DEMO_BILLING_SECONDS of wall
        # time; "today" is the simulated day)
        # and the console's receiver on a free loopback port, which the live traffic goes to
        writers = ConsoleWriters.build(cache, config, None, sim.writing, listen=DEMO_LISTEN,
                                       today=lambda: clock.now().date(), every=DEMO_BILLING_SECONDS,
                                       prepare=endpoints.ledger.catch_up)
        writers.start()
        host = writers.receiver
        if host is not None and host.receiver is not None:  # listening (else its line says why)
            sim.send_live_to(host.url, before_release=host.release_cache)
        backend = Backend(cache, config, clock.now, [sim, *writers.probes()], hub=source_hub(config))
        # The first overview query runs on the newest hour while Textual is imported and the
        # app mounts, so the first paint is populated.
        progress.first_part.wait(FIRST_PART_WAIT)
        backend.prefetch(OverviewView())
        from console.app import LlmdeckApp

        app = LlmdeckApp(backend, theme=theme, simulator=sim, badge=storage_badge(), stop=stop)
        days = sim.backfill_span / timedelta(days=1)
        app.notify(f"loading {days:g} days of demo history in the background, newest first;"
                   " the panels fill in as it arrives", title="llmdeck demo", timeout=6)
        if moved is not None:  # said on stderr too, hidden now by the console's screen
            app.notify(moved, title="llmdeck demo", severity="warning", timeout=15, markup=False)
        progress.app = app
        app.call_later(app.call_after_refresh, painted.set)  # runs once the app has mounted
        if stop.received is None:
            app.run()
    finally:
        if writers is not None:
            writers.close()
        if sim is not None:
            sim.close()  # stops the backfill between two batches (committed ones kept)
        if endpoints is not None:
            endpoints.close()
        if _fault_met(sim, backend):  # no closing checkpoint: a damaged file stays as it was
            cache.abandon()
        else:
            cache.close()
        if backend is not None and backend.cache is not cache:  # reopened read-only
            backend.cache.close()
        if own:
            shutil.rmtree(root, ignore_errors=True)
    return stopped(stop, cache_path, err)


def _fault_met(sim: Simulator | None, backend: Backend | None) -> bool:
    """Whether the demo met a fault of its cache file (a write that failed, a damaged block, an
    invalidated database): then it is closed without the closing checkpoint."""
    return ((sim is not None and sim.cache_fault is not None)
            or (backend is not None and (backend.read_fault is not None or backend.reopened)))


def open_demo_cache(path: Path, err: TextIO) -> tuple[Cache, str | None]:
    """The demo's cache at `path`, and what was moved aside first: a corrupt cache is (never
    deleted, never written), said in one line on `err`, and the demo starts on a fresh one.
    Every block of an existing cache is read once, to tell."""
    if not path.exists():
        return Cache.open(path), None
    from console.cache.reset import reset

    report = reset(path, only_if_corrupt=True)
    if report.corrupt is None:
        return Cache.open(path), None
    moved = ", ".join(f"{cell(dst, 400)}" for _, dst in report.moved) or "nowhere"
    said = (f"{cell(path, 400)} is corrupt ({cell(report.corrupt, 200)}); moved it aside to"
            f" {moved} and starting on a fresh demo cache")
    err.write(f"llmdeck demo: {said}\n")
    err.flush()
    return Cache.open(path), said


DEMO_LISTEN = "127.0.0.1:0"
"""The demo's receiver: loopback, a port the system picks."""
DEMO_BILLING_SECONDS = 30.0
"""Wall seconds between two syncs of the demo's billing APIs (the simulated clock runs faster)."""
FIRST_PART_WAIT = 3.0
"""Seconds `llmdeck demo` waits for the newest hour of history before opening the console."""


class _DemoProgress:
    """The demo backfill's progress callback: refresh the view after the recent parts, toast at the end.

    Called on the backfill's thread; `call_later` and `notify` post to the app's
    queue (thread-safe, never blocking). Parts that land before the app exists
    are shown by its first poll.
    """

    def __init__(self) -> None:
        self.app: _DemoApp | None = None
        self.first_part = threading.Event()

    def __call__(self, p: BackfillProgress) -> None:
        self.first_part.set()
        app = self.app
        if app is None:
            return
        if p.depth <= timedelta(days=1) or p.done:  # the periodic poll shows the older parts
            app.call_later(app.action_refresh_now)
        if p.done:
            app.notify(f"demo history loaded: {p.total / timedelta(days=1):g} days,"
                       f" {p.spans_stored:,} spans in {p.seconds:.1f} s", title="llmdeck demo",
                       timeout=8)


class _DemoApp(Protocol):
    def call_later(self, callback: Callable[[], object]) -> object: ...
    def action_refresh_now(self) -> None: ...
    def notify(self, message: str, *, title: str = "", timeout: float | None = None) -> None: ...
