"""console/serving_math.py: counter increases, resets and histogram quantiles between two scrapes."""

from __future__ import annotations

import math

import pytest

from connectors.scrape import ScrapeSample
from console.serving_math import (
    Metrics,
    bucket_increases,
    gauges,
    histogram_quantile,
    increases,
    per_second,
    quantiles,
    resets,
)


def _metrics(*rows: tuple[str, dict[str, str], float]) -> Metrics:
    return Metrics(ScrapeSample(name, tuple(sorted(labels.items())), value) for name, labels, value in rows)


def _by_model(labels: dict[str, str]) -> str | None:
    return labels.get("model") or None


def _hist(model: str, counts: dict[str, float]) -> list[tuple[str, dict[str, str], float]]:
    return [("lat_bucket", {"model": model, "le": le}, value) for le, value in counts.items()]


def test_quantile_interpolates_inside_the_bucket_like_histogram_quantile() -> None:
    buckets = {1.0: 10, 2.0: 20, math.inf: 20}
    assert histogram_quantile(0.5, buckets) == pytest.approx(1.0)
    assert histogram_quantile(0.75, buckets) == pytest.approx(1.5)
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.5)  # the first bucket starts at 0


def test_quantile_in_the_inf_bucket_is_the_highest_finite_bound() -> None:
    assert histogram_quantile(0.95, {1.0: 1, 2.0: 2, math.inf: 10}) == 2.0


def test_quantile_is_unknown_without_observations_or_without_an_inf_bucket() -> None:
    assert histogram_quantile(0.95, {1.0: 0, math.inf: 0}) is None
    assert histogram_quantile(0.95, {1.0: 3, 2.0: 5}) is None
    assert histogram_quantile(0.95, {}) is None


def test_quantile_repairs_non_monotonic_cumulative_counts() -> None:
    # a bucket reset between scrapes can leave a lower count above a higher one
    assert histogram_quantile(0.5, {1.0: 4, 2.0: 2, math.inf: 8}) == pytest.approx(1.0)


def test_counter_increase_between_two_reads() -> None:
    before = _metrics(("req_total", {"model": "a"}, 100.0), ("req_total", {"model": "b"}, 5.0))
    after = _metrics(("req_total", {"model": "a"}, 160.0), ("req_total", {"model": "b"}, 5.0))
    grown = increases(before, after, "req_total", _by_model)
    assert grown == {"a": 60.0, "b": 0.0}
    assert per_second(grown, "a", 30.0) == pytest.approx(2.0)
    assert per_second(grown, "b", 30.0) == 0.0


def test_a_counter_that_went_down_was_reset_and_its_new_value_is_the_increase() -> None:
    before = _metrics(("req_total", {"model": "a"}, 1000.0))
    after = _metrics(("req_total", {"model": "a"}, 20.0))
    assert increases(before, after, "req_total", _by_model) == {"a": 20.0}
    assert resets(before, after, ["req_total"]) == ["req_total"]


def test_a_series_new_since_the_previous_read_counts_from_zero() -> None:
    before = _metrics(("req_total", {"model": "a", "reason": "stop"}, 10.0))
    after = _metrics(("req_total", {"model": "a", "reason": "stop"}, 12.0),
                     ("req_total", {"model": "a", "reason": "abort"}, 3.0))
    assert increases(before, after, "req_total", _by_model) == {"a": 5.0}


def test_nothing_is_known_from_one_read() -> None:
    after = _metrics(("req_total", {"model": "a"}, 10.0), *_hist("a", {"1": 1, "+Inf": 1}))
    assert increases(None, after, "req_total", _by_model) is None
    assert bucket_increases(None, after, "lat", _by_model) is None
    assert per_second(None, "a", None) is None
    assert quantiles(0.95, None) == {}


def test_quantile_comes_from_bucket_increases_not_lifetime_counts() -> None:
    # lifetime: 100 slow requests (1-10 s); in the window: 20 fast ones (0.1-0.2 s)
    before = _metrics(*_hist("a", {"0.1": 0, "0.2": 0, "1": 0, "10": 100, "+Inf": 100}))
    after = _metrics(*_hist("a", {"0.1": 0, "0.2": 20, "1": 20, "10": 120, "+Inf": 120}))
    per_model = bucket_increases(before, after, "lat", _by_model)
    assert per_model is not None
    assert quantiles(0.95, per_model)["a"] == pytest.approx(0.1 + 0.1 * 19 / 20)
    lifetime = {float(le): v for le, v in {"0.1": 0, "0.2": 20, "1": 20, "10": 120, "+Inf": 120}.items()}
    assert histogram_quantile(0.95, lifetime) > 5  # what a lifetime quantile would have claimed


def test_bucket_increases_sum_series_that_differ_only_in_other_labels() -> None:
    rows = []
    for engine in ("0", "1"):
        rows += [("lat_bucket", {"model": "a", "engine": engine, "le": le}, v)
                 for le, v in {"1": 2, "+Inf": 2}.items()]
    per_model = bucket_increases(_metrics(), _metrics(*rows), "lat", _by_model)
    assert per_model == {"a": {1.0: 4.0, math.inf: 4.0}}


def test_gauges_combine_several_series_and_read_the_no_limit_sentinel_as_infinity() -> None:
    cur = _metrics(("running", {"model": "a", "engine": "0"}, 3.0),
                   ("running", {"model": "a", "engine": "1"}, 4.0),
                   ("left", {"model": "a"}, 9.223372036854776e18), ("skip", {"model": "a"}, math.nan))
    assert gauges(cur, "running", _by_model) == {"a": 7.0}
    assert gauges(cur, "running", _by_model, max) == {"a": 4.0}
    assert gauges(cur, "left", _by_model) == {"a": math.inf}
    assert gauges(cur, "skip", _by_model) == {}
