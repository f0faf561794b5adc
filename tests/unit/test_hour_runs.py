"""`rollups.hour_runs` (split at the largest gaps) gives exactly what the old pairwise merge gave."""

from __future__ import annotations

import random
import time
from collections.abc import Iterable

from console.cache.rollups import hour_runs


def _merge_smallest_gaps(hours: Iterable[int], most: int) -> list[tuple[int, int]]:
    """The previous O(n^2) implementation, kept as the reference."""
    runs: list[list[int]] = []
    for h in sorted(set(hours)):
        if runs and h == runs[-1][1] + 1:
            runs[-1][1] = h
        else:
            runs.append([h, h])
    while len(runs) > max(1, most):
        i = min(range(len(runs) - 1), key=lambda k: runs[k + 1][0] - runs[k][1])
        runs[i:i + 2] = [[runs[i][0], runs[i + 1][1]]]
    return [(a, b) for a, b in runs]


def test_same_runs_as_the_pairwise_merge_on_random_hour_sets() -> None:
    rng = random.Random(20261204)
    for case in range(3000):
        span = rng.choice([5, 30, 200, 5000, 500_000])
        n = rng.randint(0, 60)
        hours = [rng.randrange(-span, span) for _ in range(n)]
        if case % 3 == 0:  # equal gaps on purpose: ties must break the same way
            step = rng.randint(2, 4)
            hours = [k * step for k in range(n)] + hours[: n // 4]
        most = rng.choice([0, 1, 2, 3, 8, 100])
        assert hour_runs(hours, most) == _merge_smallest_gaps(hours, most), (hours, most)


def test_the_usual_shapes() -> None:
    assert hour_runs([]) == []
    assert hour_runs([5, 6, 7]) == [(5, 7)]
    recent = range(490_000, 490_006)
    assert hour_runs([*recent, 0], 2) == [(0, 0), (490_000, 490_005)]
    assert hour_runs([1, 3, 5, 7], 2) == [(1, 5), (7, 7)]  # equal gaps: the later one splits


def test_many_sparse_hours_stay_fast() -> None:
    hours = list(range(0, 6000, 2))  # 3,000 runs (0.57 s before; now milliseconds)
    started = time.process_time()
    for _ in range(20):
        assert len(hour_runs(hours)) == 8
    print(f"20 x hour_runs(3,000 sparse hours): {time.process_time() - started:.3f}s CPU")
