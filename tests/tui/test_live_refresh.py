"""How llmdeck refreshes while it is on screen: one poll at a time, only the visible view,
paused under a modal, surviving a failing source, updating tables in place, honouring NO_COLOR.

The backends here wrap the real `Backend` (they count, slow down or break `fetch`); the data
is the session's frozen demo incident, except for the in-place test, which steps the clock of
its own small cache (the shared demo cache is never written to).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from textual.widgets import DataTable

from console.backend import Backend
from console.cache.ingest import Ingestor
from console.cache.store import Cache
from console.config import Config, UiSettings
from console.demo.traffic import Incident, TrafficModel, export_requests, write_collector_jsonl
from console.sources import SourceStatus
from console.views import CostView, Fetched, OverviewView, SloView, View
from panels.help_screen import HelpScreen
from panels.overview import OverviewScreen
from panels.slo_screen import SloScreen
from panels.status_line import StatusLine
from panels.traces_screen import TracesScreen
from tests.tui.conftest import WALL, DemoData, settle
from tests.tui.screen_text import screen_lines, screen_text, terminal_bytes

SIZE = (80, 24)


class ProbeBackend(Backend):
    """The demo backend, recording every fetch (and how many ran at once), slowed or broken."""

    def __init__(self, demo: DemoData, config: Config | None = None, *, delay: float = 0.0,
                 sources: list[Any] | None = None) -> None:
        super().__init__(demo.cache, config or demo.config, lambda: demo.at,
                         [demo.simulator] if sources is None else sources)
        self.delay = delay
        self.failure: Exception | None = None
        """Raised by every fetch while set (after the delay), as a broken cache would."""
        self.views: list[View] = []
        self.spans: list[tuple[float, float]] = []
        """(start, end) of every finished fetch, time.monotonic()."""
        self.running = 0
        self.max_running = 0
        self._lock = threading.Lock()

    def fetch(self, view: View) -> Fetched:
        started = time.monotonic()
        with self._lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            self.views.append(view)
        try:
            time.sleep(self.delay)
            if self.failure is not None:
                raise self.failure
            return super().fetch(view)
        finally:
            with self._lock:
                self.running -= 1
                self.spans.append((started, time.monotonic()))


def refresh_every(demo: DemoData, seconds: float) -> Config:
    ui = demo.config.ui.model_copy(update={"refresh_seconds": seconds})
    return demo.config.model_copy(update={"ui": ui})


def status(app: Any) -> str:
    return str(app.screen.query_one(StatusLine).render())


async def until(pilot: Any, condition: Callable[[], bool], timeout: float = 8.0) -> None:
    """Pause until `condition()` holds; fail after `timeout` seconds with the screen's text."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; the screen reads:\n{screen_text(pilot.app)}")
        await pilot.pause(0.05)


async def test_polls_never_overlap_even_when_a_fetch_outlasts_the_interval(
        make_app: Callable[..., Any], demo_data: DemoData) -> None:
    backend = ProbeBackend(demo_data, refresh_every(demo_data, 1), delay=1.2)
    app = make_app(backend=backend)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        settled = len(backend.views)
        started = time.monotonic()
        while time.monotonic() - started < 3.0:  # three intervals, and `r` hammered meanwhile
            await pilot.press("r")
            await pilot.pause(0.3)
        await until(pilot, lambda: backend.running == 0)
        assert backend.max_running == 1
        assert len(backend.views) - settled >= 2  # the poller kept going: fetch after fetch
        ends_and_starts = sorted(backend.spans)
        for (_, end), (start, _) in zip(ends_and_starts, ends_and_starts[1:], strict=False):
            assert start >= end


async def test_a_refresh_asked_for_during_a_poll_runs_when_that_poll_ends(
        make_app: Callable[..., Any], demo_data: DemoData) -> None:
    backend = ProbeBackend(demo_data, refresh_every(demo_data, 30), delay=0.5)
    app = make_app(backend=backend)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("r")
        await until(pilot, lambda: backend.running == 1, timeout=2)
        await pilot.press("r")  # while that fetch runs: queued, not dropped, not overlapping
        await until(pilot, lambda: len(backend.spans) >= 3, timeout=5)
        (_, first_end), (second_start, _) = backend.spans[1], backend.spans[2]
        assert second_start - first_end < 1.0  # not the 30 s interval
        assert backend.max_running == 1


async def test_the_slo_screen_shows_its_first_slo_without_waiting_an_interval(
        make_app: Callable[..., Any], demo_data: DemoData) -> None:
    """The SLO screen asks for its first SLO's detail as its first answer arrives."""
    backend = ProbeBackend(demo_data, refresh_every(demo_data, 30))
    app = make_app(backend=backend)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot, timeout=5)  # an interval is 30 s: only the follow-up can answer
        assert backend.views[-2:] == [SloView(), SloView(selected="anthropic availability")]
        assert "anthropic availability — ✖ page" in screen_text(app)


async def test_only_the_screen_on_top_is_polled(make_app: Callable[..., Any],
                                               demo_data: DemoData) -> None:
    backend = ProbeBackend(demo_data, refresh_every(demo_data, 1))
    app = make_app(backend=backend)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("3")
        await settle(pilot)
        seen = len(backend.views)
        await pilot.pause(2.5)  # two intervals and a half
        later = backend.views[seen:]
        assert len(later) >= 2
        assert all(v == CostView() for v in later)  # never the overview underneath


async def test_a_modal_pauses_polling_and_closing_it_resumes(make_app: Callable[..., Any],
                                                            demo_data: DemoData) -> None:
    backend = ProbeBackend(demo_data, refresh_every(demo_data, 1))
    app = make_app(backend=backend)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen) and backend.running == 0)
        await pilot.pause(0.2)
        paused_at = len(backend.views)
        await pilot.pause(2.5)
        assert len(backend.views) == paused_at
        await pilot.press("escape")
        await until(pilot, lambda: len(backend.views) > paused_at, timeout=3)
        assert isinstance(app.screen, OverviewScreen)
        assert backend.views[-1] == OverviewView()


async def test_a_failing_fetch_marks_the_view_stale_keeps_its_data_and_recovers(
        make_app: Callable[..., Any], demo_data: DemoData) -> None:
    backend = ProbeBackend(demo_data, refresh_every(demo_data, 1))
    app = make_app(backend=backend)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)
        before = screen_text(app).splitlines()[1:12]  # the SLO table
        backend.failure = duckdb.IOException("IO Error: Could not set lock on file cache.duckdb")
        await until(pilot, lambda: "stale since" in status(app))
        line = status(app)
        assert "data 12:20:00Z · ✖ stale since 12:20:01: IOException: IO Error: Could not set lock" \
            in line
        failures = len(backend.views)
        await until(pilot, lambda: len(backend.views) >= failures + 2)  # it keeps trying
        assert app.return_code is None and isinstance(app.screen, SloScreen)
        assert screen_text(app).splitlines()[1:12] == before  # the last data stays on screen
        assert "✖ stale since 12:20:01" in status(app)
        backend.failure = None
        await until(pilot, lambda: "stale" not in status(app))
        assert "data 12:20:00Z · refreshed 0s ago" in status(app)


class FlakySource:
    """A source probe whose state the test sets."""

    def __init__(self) -> None:
        self.state: SourceStatus = SourceStatus("collector files", "files", "live", WALL)

    def source_status(self) -> SourceStatus:
        return self.state


async def test_a_source_going_down_is_named_in_the_status_line_until_it_is_back(
        make_app: Callable[..., Any], demo_data: DemoData) -> None:
    source = FlakySource()
    backend = ProbeBackend(demo_data, refresh_every(demo_data, 1), sources=[source])
    app = make_app(backend=backend)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "● collector files live" in status(app)
        source.state = SourceStatus("collector files", "files", "down", WALL - timedelta(minutes=2),
                                    since=WALL - timedelta(minutes=1), detail="no such file")
        await until(pilot, lambda: "✖ collector files down since 12:19:01" in status(app))
        # ahead of the refresh age, so the 80-column line is not cut before it
        assert "✖ collector files down since 12:19:01" in screen_lines(app)[0]
        assert "✖ page" in screen_text(app)  # the data from the cache is still shown
        source.state = SourceStatus("collector files", "files", "live", WALL)
        await until(pilot, lambda: "● collector files live" in status(app))


# ---- tables update in place, on a small cache of our own with a clock we move ---------------

END = datetime(2025, 6, 2, 14, 0)


def _ns(t: datetime) -> int:
    return int(t.replace(tzinfo=UTC).timestamp() * 1e9)


@pytest.fixture(scope="module")
def moving_cache(tmp_path_factory: pytest.TempPathFactory, make_config: Callable[..., Any]
                 ) -> Iterator[tuple[Cache, Config]]:
    """Two hours of demo traffic (anthropic failing the last 40 minutes), 1 s refresh."""
    folder = tmp_path_factory.mktemp("moving")
    model = TrafficModel(seed=5, incidents=[
        Incident("anthropic", _ns(END - timedelta(minutes=40)), _ns(END))])
    traffic = folder / "traffic.jsonl"
    write_collector_jsonl(str(traffic), export_requests(
        model, _ns(END - timedelta(hours=2)), _ns(END), 4000))
    config = make_config(ui=UiSettings(refresh_seconds=1))
    cache = Cache.open(folder / "cache.duckdb")
    Ingestor(cache, config).run([Path(traffic)], "auto")
    yield cache, config
    cache.close()


def first_cells(table: DataTable[Any]) -> list[str]:
    return [str(k.value) for k in table.rows]


async def test_tables_update_in_place_keeping_rows_and_cursor_while_the_data_moves(
        make_app: Callable[..., Any], moving_cache: tuple[Cache, Config]) -> None:
    cache, config = moving_cache
    now = [END - timedelta(minutes=30)]
    app = make_app(backend=Backend(cache, config, lambda: now[0]))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("4")
        await settle(pilot)
        assert isinstance(app.screen, TracesScreen)
        table = app.screen.query_one("#traces-table", DataTable)
        keys = first_cells(table)
        assert keys[0] == "k:anthropic" and len(keys) == 4
        table.move_cursor(row=2)
        await pilot.pause()
        chosen = keys[2]
        clears: list[bool] = []
        real_clear = table.clear

        def counting_clear(columns: bool = False) -> Any:
            clears.append(columns)
            return real_clear(columns)

        table.clear = counting_clear  # type: ignore[method-assign]
        counts = [table.get_row(chosen)[1].plain]
        in_place = 0
        for _ in range(3):
            now[0] += timedelta(minutes=2)
            clears.clear()
            await until(pilot, lambda: app.screen.last is not None and app.screen.last.at == now[0])
            await pilot.pause()
            assert str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value) \
                == chosen  # the cursor stays on its row, wherever that row went
            if first_cells(table) == keys:  # same rows in the same order: updated cell by cell
                assert clears == [] and table.cursor_row == keys.index(chosen)
                in_place += 1
            keys = first_cells(table)
            counts.append(table.get_row(chosen)[1].plain)
            line = next(t for t in screen_text(app).splitlines() if chosen[2:] in t)
            assert all(c.plain in line for c in table.get_row(chosen))  # no cell cut short
        assert len(set(counts)) > 1  # the request counts moved with the clock
        assert in_place >= 2


# ---- NO_COLOR ---------------------------------------------------------------------------------

_SGR = re.compile(r"\x1b\[([0-9;:]*)m")
_COLOUR = {*range(30, 39), *range(40, 49), *range(90, 98), *range(100, 108)}
"""SGR parameters that set a colour (38/48 start 256-colour and truecolour forms)."""


def colour_codes(terminal: str) -> list[str]:
    """Every SGR sequence in `terminal` that sets a foreground or background colour."""
    found = []
    for params in _SGR.findall(terminal):
        numbers = [int(p) for p in re.split("[;:]", params) if p]
        if any(n in _COLOUR for n in numbers):
            found.append(params)
    return found


def coloured_segments(app: Any) -> list[str]:
    """The text of every segment on screen whose style sets a colour.

    terminal_bytes renders with the test console's colour system (16 colours here); a real
    terminal may take truecolour (38;2;…/48;2;…). No coloured segment means neither gets any.
    """
    update = app.screen._compositor.render_update(full=True)
    return [text for line in update.strips for strip in line for text, style, _ in strip
            if style is not None
            and any(c is not None and not c.is_default for c in (style.color, style.bgcolor))]


async def test_no_color_sends_no_colour_codes_and_states_still_read_as_words_and_symbols(
        make_app: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for _screen in ("overview", "slo"):
            terminal = terminal_bytes(app)
            assert "38;" not in terminal and "48;" not in terminal
            assert colour_codes(terminal) == []
            assert coloured_segments(app) == []
            assert any("7" in p.split(";") for p in _SGR.findall(terminal))  # cursor: reverse
            text = screen_text(app)
            assert "✖ page" in text and "✔ ok" in text
            await pilot.press("2")
            await settle(pilot)


async def test_with_colour_the_same_screen_does_send_colour_codes(
        make_app: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above is not vacuous: without NO_COLOR the same screen is coloured."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert colour_codes(terminal_bytes(app))
        assert coloured_segments(app)
