"""One seeded demo cache for every console test, and one factory that builds the app on it.

The cache is built once per session through the real path (simulator → spool
files → ingest): a week of backfill before START, then live traffic up to AT,
which is 15 simulated minutes into the scripted anthropic incident. The clock
is frozen at AT, so every snapshot shows the same data.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from console.backend import Backend
from console.cache.store import Cache
from console.config import Config
from console.demo.clock import SimClock
from console.demo.config import demo_config
from console.demo.simulator import Simulator
from console.writers import ReceiverHost

START = datetime(2026, 11, 24, 12, 0, 0)
INCIDENT_DELAY = timedelta(minutes=5)
AT = START + INCIDENT_DELAY + timedelta(minutes=15)
WALL = datetime(2026, 11, 24, 12, 20, 1)
"""The pinned wall clock: status lines read "refreshed 0s ago"."""


@dataclass
class DemoData:
    """The session's demo cache (open read-write by this process) and its config."""

    cache: Cache
    config: Config
    simulator: Simulator
    at: datetime


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoData]:
    root = tmp_path_factory.mktemp("demo")
    config = demo_config(root / "demo.duckdb")
    assert config.cache.path is not None
    cache = Cache.open(config.cache.path)
    clock = SimClock(START, 10.0)
    clock.freeze()
    sim = Simulator(cache, config, root / "spool", seed=7, clock=clock,
                    incident_delay=INCIDENT_DELAY, wall=lambda: WALL)
    sim.backfill()
    receiver = ReceiverHost(cache, config, sim.writing, host="127.0.0.1", port=0)
    receiver.start()
    try:  # the live stretch over OTLP/HTTP to the receiver, as `llmdeck demo` sends it
        sim.send_live_to(receiver.url)
        sim.step(until=AT)
    finally:
        receiver.close()
    try:
        yield DemoData(cache, config, sim, AT)
    finally:
        cache.close()


@pytest.fixture
def make_app(demo_data: DemoData) -> Callable[..., Any]:
    """make_app(theme=None, config=None, backend=None) -> LlmdeckApp on the frozen demo data."""
    from console.app import LlmdeckApp

    def make(theme: str | None = None, config: Config | None = None,
             backend: Backend | None = None, **kwargs: Any) -> LlmdeckApp:
        backend = backend or Backend(demo_data.cache, config or demo_data.config,
                                     lambda: demo_data.at, [demo_data.simulator])
        return LlmdeckApp(backend, theme=theme, wall_clock=lambda: WALL, **kwargs)

    return make


async def settle(pilot: Any, timeout: float = 10.0) -> None:
    """Pause until the active screen shows data fetched for its current view.

    The poller answers a screen asynchronously (SnapshotReady), and a screen may ask again at
    once (the SLO screen picks its first SLO): wait until the last snapshot shown is for the
    view the screen wants now and the status line says "data", then two more pauses for
    after-refresh work (tree cursor, attribute rows). Bounded: fails with the screen's text.
    """
    from panels.base import DeckScreen
    from panels.status_line import StatusLine
    from tests.tui.screen_text import screen_text

    app = pilot.app
    for _ in range(int(timeout / 0.02)):
        screen = app.screen
        if isinstance(screen, DeckScreen) and screen.last is not None \
                and screen.last.view == screen.view() and screen.is_mounted:
            if "data " in str(screen.query_one(StatusLine).render()):
                await pilot.pause()
                await pilot.pause()
                return
        await pilot.pause(0.02)
    raise AssertionError(f"no data on {type(app.screen).__name__} after {timeout}s:\n"
                         f"{screen_text(app)}")


async def press_settled(pilot: Any, *keys: str) -> None:
    """Press each key and wait for the screen it leads to to show its data (see settle)."""
    for key in keys:
        await pilot.press(key)
        await settle(pilot)


@pytest.fixture
def wait_for_data() -> Callable[..., Awaitable[None]]:
    """`await wait_for_data(pilot)`: the active screen shows its own view's data (see settle)."""
    return settle
