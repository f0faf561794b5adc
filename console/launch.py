"""Building and running the console: `llmdeck`, `llmdeck --cache FILE`, `llmdeck demo`.

The composition root: opens the cache, builds the backend, the sources and
(for the demo) the simulator, and hands them to the Textual app. The app
module is imported only here, so `llmdeck status` never loads Textual.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from console.backend import Backend
from console.cache.store import Cache
from console.config import Config
from console.sources import SourceHealth, SourceStatus
from console.views import OverviewView

if TYPE_CHECKING:
    from console.demo.simulator import BackfillProgress


@dataclass
class CacheProbe:
    """A read-only cache file as a source: live while it answers, with its newest span.

    Nothing can write a file this process holds read-only, so the newest span is
    read once rather than scanned again on every refresh. Reports through a
    `SourceHealth`, like every other source.
    """

    cache: Cache
    label: str = "trace cache"
    _detail: str | None = field(default=None, init=False, repr=False)
    _health: SourceHealth = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._health = SourceHealth(self.label, "duckdb")

    def source_status(self) -> SourceStatus:
        """`SourceProbe`: live once the newest span was read, down (with the error) if it cannot be."""
        if self._detail is None:
            try:
                rows = self.cache.cursor().execute("SELECT max(start_time) FROM spans").fetchall()
            except Exception as exc:  # the UI shows it; it must not crash the poll
                self._health.failed(type(exc).__name__)
                return self._health.status()
            newest = rows[0][0]
            self._detail = f"newest span {newest:%Y-%m-%d %H:%M}Z" if newest else "no spans yet"
        self._health.succeeded(detail=self._detail)
        return self._health.status()


def wall_clock() -> datetime:
    """Naive-UTC now."""
    return datetime.now(UTC).replace(tzinfo=None)


def run_console(config: Config, cache_path: Path, theme: str | None, err: TextIO) -> int:
    """`llmdeck` / `llmdeck --cache FILE`: the console on a cache (read-only; it never writes it)."""
    if not cache_path.exists():
        err.write(f"llmdeck: no cache at {cache_path}; run `llmdeck ingest FILES` first,"
                  " or `llmdeck demo` to try the console\n")
        return 1
    cache = Cache.open(cache_path, read_only=True, create=False)
    try:
        backend = Backend(cache, config, wall_clock, [CacheProbe(cache)])
        # the first overview query runs while Textual is imported and the app mounts
        backend.prefetch(OverviewView())
        from console.app import LlmdeckApp

        LlmdeckApp(backend, theme=theme).run()
    finally:
        cache.close()
    return 0


def run_demo(seed: int, speed: float, start: datetime | None, theme: str | None,
             workdir: Path | None) -> int:
    """`llmdeck demo`: a fresh cache in a temp dir, a week of backfill, then live traffic."""
    from console.app import LlmdeckApp
    from console.demo.clock import SimClock
    from console.demo.config import demo_config
    from console.demo.simulator import Simulator

    own = workdir is None
    root = Path(tempfile.mkdtemp(prefix="llmdeck-demo-")) if workdir is None else workdir
    root.mkdir(parents=True, exist_ok=True)
    spool = root / "spool"
    spool.mkdir(exist_ok=True)
    config = demo_config(root / "demo.duckdb")
    assert config.cache.path is not None
    cache = Cache.open(config.cache.path)
    try:
        clock = SimClock(start or wall_clock(), speed)
        sim = Simulator(cache, config, spool, seed=seed, clock=clock)
        # Backfill before the console starts, with its progress on the terminal, so every
        # panel is populated from the first paint.
        sim.backfill(partial(_backfill_progress, sys.stderr))
        sys.stderr.write("\n")
        backend = Backend(cache, config, clock.now, [sim])
        LlmdeckApp(backend, theme=theme, simulator=sim).run()
    finally:
        cache.close()
        if own:
            shutil.rmtree(root, ignore_errors=True)
    return 0


def _backfill_progress(err: TextIO, p: BackfillProgress) -> None:
    if err.isatty():
        err.write(f"\rllmdeck demo: backfilling a week of traffic: day {p.parts_done}/{p.parts},"
                  f" {p.spans_stored:,} spans, through {p.through:%Y-%m-%d %H:%M}Z\x1b[K")
        err.flush()
