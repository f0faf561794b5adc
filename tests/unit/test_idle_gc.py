"""IdleCollector: full collections only when nobody is typing, and never left undone for long."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from console.idle_gc import NEVER, IdleCollector


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def collector() -> Iterator[tuple[IdleCollector, FakeClock, list[int]]]:
    clock = FakeClock()
    ran: list[int] = []

    def collect(generation: int) -> int:
        ran.append(generation)
        return 0

    c = IdleCollector(quiet=0.4, every=5.0, at_most=30.0, clock=clock, collect=collect)
    saved = gc.get_threshold()
    c.start()
    try:
        yield c, clock, ran
    finally:
        c.stop()
        assert gc.get_threshold() == saved


def pending_gen2() -> None:
    """Make generation 2 have pending work: one real generation-1 collection."""
    gc.collect(1)


def test_start_turns_off_automatic_full_collections_and_stop_restores_the_thresholds() -> None:
    saved = gc.get_threshold()
    c = IdleCollector()
    c.start()
    try:
        assert gc.get_threshold() == (saved[0], saved[1], NEVER)
        c.start()  # idempotent: a second start must not save the changed thresholds
    finally:
        c.stop()
    assert gc.get_threshold() == saved
    c.stop()  # and a second stop changes nothing
    assert gc.get_threshold() == saved


def test_collects_once_the_user_has_paused_and_the_interval_has_passed(collector) -> None:
    c, clock, ran = collector
    pending_gen2()
    clock.now += 1.0
    assert not c.tick() and ran == []  # less than `every` since start
    clock.now += 5.0
    c.input_seen()
    clock.now += 0.1
    pending_gen2()
    assert not c.tick() and ran == []  # typing: 0.1 s since the last key
    clock.now += 0.5
    assert c.tick() and ran == [2]  # quiet for 0.6 s
    assert c.collections == 1


def test_typing_without_pause_still_collects_after_at_most_seconds(collector) -> None:
    c, clock, ran = collector
    for _ in range(29 * 10):  # a key every 0.1 s for 29 s
        clock.now += 0.1
        c.input_seen()
        pending_gen2()
        assert not c.tick()
    clock.now += 1.1
    c.input_seen()
    assert c.tick() and ran == [2]


def test_nothing_runs_when_nothing_is_pending_or_before_start() -> None:
    ran: list[int] = []
    clock = FakeClock()
    c = IdleCollector(clock=clock, collect=lambda g: ran.append(g) or 0)
    pending_gen2()
    clock.now += 60
    assert not c.tick() and ran == []  # not started: CPython still owns full collections
    c.start()
    try:
        gc.collect()  # a full collection resets generation 2's pending count
        clock.now += 60
        assert not c.tick() and ran == []
    finally:
        c.stop()

