"""The source hub polls every source concurrently; a slow, hung or failing one harms no other."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from console.source_hub import SourceHub, failure_text, run_pollers_once
from console.sources import SourceHealth


@dataclass(frozen=True)
class Snap:
    value: int


class FakeError(Exception):
    def __init__(self, text: str, permanent: bool = False) -> None:
        super().__init__(text)
        self.kind = "http"
        self.permanent = permanent


class FakePoller:
    def __init__(self, name: str, delay: float = 0.0, interval: float = 0.05,
                 fail: Exception | None = None, hang: bool = False) -> None:
        self.name = name
        self.kind = "fake"
        self.interval = interval
        self.health = SourceHealth(name, "fake")
        self.delay = delay
        self.fail = fail
        self.hang = hang
        self.calls = 0
        self.closed = False

    async def poll(self) -> object:
        self.calls += 1
        if self.hang:
            await asyncio.Event().wait()
        await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        return Snap(self.calls)

    async def aclose(self) -> None:
        self.closed = True


def wait_for(check, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.01)
    raise AssertionError("condition not reached")


def test_nothing_polls_before_start() -> None:
    poller = FakePoller("a")
    hub = SourceHub([poller])
    time.sleep(0.1)
    assert poller.calls == 0
    assert hub.readings()[0].snapshot is None
    assert hub.statuses()[0].state == "stale"  # not read yet


def test_a_hung_source_does_not_delay_the_others_and_shows_down_after_the_deadline() -> None:
    fast, hung = FakePoller("fast"), FakePoller("hung", hang=True)
    hub = SourceHub([hung, fast], poll_deadline=0.3)
    hub.start()
    try:
        wait_for(lambda: fast.calls >= 3)
        assert hung.calls == 1  # still in its first poll
        wait_for(lambda: hub.statuses()[0].state != "stale" or hung.calls > 1)
        wait_for(lambda: hung.health.status().last_error != "")
        status = hub.statuses()[0]
        assert status.state == "down"  # never read
        assert "no answer within" in status.detail
        fast_reading = hub.readings()[1]
        assert fast_reading.status.state == "live"
        assert isinstance(fast_reading.snapshot, Snap)
    finally:
        hub.stop()
    assert fast.closed and hung.closed


def test_failures_keep_the_last_snapshot_but_mark_it_stale_and_permanent_ones_down() -> None:
    poller = FakePoller("p", interval=10)
    hub = SourceHub([poller])
    hub.start()
    try:
        wait_for(lambda: hub.readings()[0].snapshot is not None)
        poller.fail = FakeError("p: HTTP 503: overloaded")
        hub.refresh("p")
        wait_for(lambda: hub.statuses()[0].state == "stale")
        reading = hub.readings()[0]
        assert reading.snapshot == Snap(1)  # kept, but not live
        assert reading.status.detail == "p: HTTP 503: overloaded"
        poller.fail = FakeError("p: HTTP 401: check bearer_token_ref", permanent=True)
        hub.refresh()
        wait_for(lambda: hub.statuses()[0].state == "down")
        poller.fail = None
        hub.refresh()
        wait_for(lambda: hub.statuses()[0].state == "live")
        assert hub.readings()[0].snapshot == Snap(4)
    finally:
        hub.stop()


def test_sources_poll_concurrently() -> None:
    pollers = [FakePoller(f"s{i}", delay=0.2) for i in range(6)]
    started = time.perf_counter()
    readings = run_pollers_once(pollers)
    elapsed = time.perf_counter() - started
    assert [r.status.state for r in readings] == ["live"] * 6
    assert elapsed < 6 * 0.2  # sequential would take 1.2 s; a bound, not a speed goal
    assert all(p.closed for p in pollers)


def test_call_runs_on_the_hub_loop_with_a_deadline() -> None:
    hub = SourceHub([FakePoller("a", interval=10)])
    hub.start()
    try:
        async def answer() -> int:
            return threading.get_ident()

        assert hub.call(answer, 2) != threading.get_ident()

        async def never() -> int:
            await asyncio.Event().wait()
            return 0

        with pytest.raises(TimeoutError):
            hub.call(never, 0.1)
    finally:
        hub.stop()


def test_failure_text_is_one_clean_line() -> None:
    assert failure_text(ValueError("bad\x1b]0;title\x07 thing")) == "ValueError: bad\\x1b]0;title\\x07 thing"
    assert failure_text(FakeError("src: HTTP 500: boom")) == "src: HTTP 500: boom"


def test_health_turns_stale_then_down_when_reads_stop() -> None:
    now = [datetime(2026, 1, 1)]
    health = SourceHealth("x", "k", stale_after=timedelta(seconds=30), down_after=timedelta(minutes=5),
                          clock=lambda: now[0])
    health.succeeded(0.01)
    assert health.status().state == "live"
    now[0] += timedelta(seconds=31)
    assert health.status().state == "stale"
    now[0] += timedelta(minutes=5)
    status = health.status()
    assert status.state == "down" and status.since == datetime(2026, 1, 1, 0, 5)


@dataclass(frozen=True)
class PartialSnap:
    problems: tuple[str, ...]

    def summary(self) -> str:
        return "2 SLOs"


def test_an_answer_with_problems_is_stale_with_the_reason_and_a_clean_one_is_live() -> None:
    class Partial(FakePoller):
        async def poll(self) -> object:
            return PartialSnap(("SLO x: bad_data: parse error",) if self.calls == 0 else ())

    poller = Partial("p")
    readings = run_pollers_once([poller])
    assert readings[0].status.state == "stale"
    assert readings[0].status.detail == "SLO x: bad_data: parse error"
    poller.calls = 1
    readings = run_pollers_once([poller])
    assert (readings[0].status.state, readings[0].status.detail) == ("live", "2 SLOs")


def test_the_listener_hears_a_first_snapshot_and_state_changes_only() -> None:
    poller = FakePoller("p", interval=10)
    heard: list[str] = []
    hub = SourceHub([poller])
    hub.listener = heard.append
    hub.start()
    try:
        wait_for(lambda: heard == ["p"])  # the first snapshot
        hub.refresh()
        wait_for(lambda: poller.calls >= 2)
        time.sleep(0.05)
        assert heard == ["p"]  # live again: nothing changed
        poller.fail = FakeError("p: HTTP 503: busy")
        hub.refresh()
        wait_for(lambda: heard == ["p", "p"])  # live -> stale
    finally:
        hub.stop()
