"""The demo's billing sync: a thread storing the demo billing APIs' figures in the demo's cache.

The console opens caches read-only for billing; `llmdeck demo` holds its cache
read-write, so this worker runs `console.billing_sync.sync` (the same code as
`llmdeck billing sync`, through the real connectors and the demo's loopback APIs)
every SYNC_SECONDS of wall time, under the simulator's step lock (`Simulator.exclusive`)
so it never writes while an ingest does. "Today" is the simulated clock's day. A
failed sync is kept in `last_error` (one line, no key) and retried at the next turn;
once the simulator is closed or halted by a cache fault, the worker writes nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from console.cache.faults import CacheError

if TYPE_CHECKING:
    from console.billing_sync import SyncResult
    from console.config import Config
    from console.demo.simulator import Simulator

SYNC_SECONDS = 30.0
"""Wall seconds between two syncs (the simulated clock usually runs faster)."""
FIRST_DELAY = 5.0
"""Wall seconds before the first sync: the console's start-up has the machine to itself."""


class BillingWorker:
    """Syncs the demo's billing sources into the simulator's cache, now and every `every` seconds."""

    def __init__(self, sim: Simulator, config: Config, every: float = SYNC_SECONDS,
                 prepare: Callable[[], None] | None = None, first_delay: float = FIRST_DELAY) -> None:
        self.sim = sim
        self.first_delay = first_delay
        self.prepare = prepare
        """Run before each sync, outside the step lock (the billing ledger's catch-up: seconds of
        drawing at the first sync, which must not hold the simulator's steps back)."""
        self.config = config
        self.every = every
        self.results: list[SyncResult] = []
        self.last_error: str | None = None
        self.syncs = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Run on a daemon thread of its own; `close()` stops it."""
        if self._thread is None and self.config.sources.billing():
            self._thread = threading.Thread(target=self._run, name="demo-billing", daemon=True)
            self._thread.start()

    def sync_once(self) -> list[SyncResult]:
        """One sync of every billing source now (on the caller's thread); the results."""
        from console.billing_sync import sync

        sim = self.sim
        if self.prepare is not None:
            self.prepare()
        today = sim.clock.now().date()
        results = sim.exclusive(lambda: sync(self.config, sim.cache, today=today))
        self.results = results
        self.syncs += 1
        failed = [r.error for r in results if r.error]
        self.last_error = "; ".join(e for e in failed if e) or None
        return results

    def close(self) -> None:
        """Stop (a sync under way finishes first)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        self._stop.wait(self.first_delay)
        while not self._stop.is_set():
            try:
                self.sync_once()
            except (CacheError, RuntimeError) as exc:  # closed, or halted by a cache fault
                self.last_error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                if self.sim.cache_fault is not None or isinstance(exc, RuntimeError):
                    return
            except Exception as exc:  # a full disk mid-store and the like: said, retried next turn
                self.last_error = f"billing sync: {type(exc).__name__}: {str(exc)[:200]}"
            self._stop.wait(self.every)
