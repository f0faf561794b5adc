"""`Backend.prefetch`: start-up's first overview query runs early, and is used exactly once."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from console.backend import Backend
from console.cache.store import Cache
from console.config import BudgetSpec, SloSpec
from console.views import CostView, OverviewView

AT = datetime(2026, 3, 4, 10, 0)


@pytest.fixture
def backend(cache_file: Path, make_config: Any) -> Any:
    config = make_config(
        slos=[SloSpec(name="availability", kind="availability", objective=0.99)],
        budgets=[BudgetSpec(name="daily", period="day", limit_usd=10.0)],
    )
    with Cache.open(cache_file) as cache:
        calls: list[object] = []
        b = Backend(cache, config, lambda: AT)
        real = b._fetch

        def counting(view: object) -> Any:
            calls.append(view)
            return real(view)

        b._fetch = counting  # type: ignore[method-assign]
        yield b, calls


def test_the_first_fetch_of_the_prefetched_view_takes_its_result(backend):
    b, calls = backend
    b.prefetch(OverviewView())
    first = b.fetch(OverviewView())
    assert calls == [OverviewView()]  # queried once, on the prefetch thread
    assert first.view == OverviewView() and first.at == AT
    again = b.fetch(OverviewView())
    assert again is not first and calls == [OverviewView(), OverviewView()]


def test_a_different_view_is_fetched_fresh_and_the_prefetch_is_dropped(backend):
    b, calls = backend
    hour = OverviewView(chart_span=timedelta(hours=1))
    b.prefetch(hour)
    b.fetch(CostView())  # not the prefetched view: queried now, and the prefetch is dropped
    b.fetch(hour)
    # the prefetch thread's own query may land anywhere in the order
    assert sorted(map(repr, calls)) == sorted(map(repr, [hour, CostView(), hour]))


def test_a_failing_prefetch_raises_in_the_fetch_that_takes_it(backend):
    b, _ = backend

    def boom(view: object) -> Any:
        raise RuntimeError("cache unreadable")

    b._fetch = boom
    b.prefetch(OverviewView())
    with pytest.raises(RuntimeError, match="cache unreadable"):
        b.fetch(OverviewView())
