"""The demo traffic generator: timestamps, requests with retries and fallbacks, chunks."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from console.demo import generate
from console.demo.traffic import (
    FALLBACKS,
    Incident,
    TrafficModel,
    diurnal_rate,
    export_requests,
    timestamps,
)

HOUR_NS = 3_600 * 10**9
DAY0_NS = int(datetime(2026, 3, 4, tzinfo=UTC).timestamp()) * 10**9  # midnight UTC


def attrs(span: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for kv in span["attributes"]:
        (value,) = kv["value"].values()
        out[kv["key"]] = value
    return out


# ---------------------------------------------------------------------------
# timestamps()
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("count", [50, 2_000, 20_000])
def test_night_window_does_not_pile_spans_on_one_instant(count: int) -> None:
    # 03:00-04:00 UTC is the diurnal trough (load 0.4): the old random walk overshot the end
    # and clamped up to half the spans onto end - 1.
    start, end = DAY0_NS + 3 * HOUR_NS, DAY0_NS + 4 * HOUR_NS
    ts = list(timestamps(start, end, count, random.Random(1)))
    assert len(ts) == count
    assert all(start <= t < end for t in ts)
    assert ts == sorted(ts)
    top = Counter(ts).most_common(1)[0][1]
    assert top <= max(2, count // 1000)  # no instant holds more than 0.1% of the spans
    # spread over the whole hour: every 5-minute slice gets its share (within noise)
    if count >= 2_000:
        slices = Counter((t - start) * 12 // HOUR_NS for t in ts)
        assert len(slices) == 12
        assert min(slices.values()) > count / 12 * 0.7


def test_tiny_window_stays_inside() -> None:
    ts = list(timestamps(DAY0_NS, DAY0_NS + 1_000, 500, random.Random(2)))  # 1 µs, 500 spans
    assert len(ts) == 500 and all(DAY0_NS <= t < DAY0_NS + 1_000 for t in ts)
    assert list(timestamps(DAY0_NS, DAY0_NS + HOUR_NS, 0, random.Random(2))) == []
    with pytest.raises(ValueError):
        list(timestamps(DAY0_NS, DAY0_NS, 1, random.Random(2)))


def test_timestamps_follow_the_diurnal_curve_and_are_deterministic() -> None:
    count = 48_000
    ts = list(timestamps(DAY0_NS, DAY0_NS + 24 * HOUR_NS, count, random.Random(3)))
    assert ts == list(timestamps(DAY0_NS, DAY0_NS + 24 * HOUR_NS, count, random.Random(3)))
    per_hour = Counter((t - DAY0_NS) // HOUR_NS for t in ts)
    for hour in (3, 9, 15, 21):
        expected = count / 24 * diurnal_rate(DAY0_NS + hour * HOUR_NS + HOUR_NS // 2)
        assert per_hour[hour] == pytest.approx(expected, rel=0.12), hour
    assert per_hour[15] > 3 * per_hour[3]  # afternoon peak vs night trough (1.6 vs 0.4)


def test_export_requests_still_writes_exactly_count_spans() -> None:
    reqs = list(export_requests(TrafficModel(seed=5), DAY0_NS, DAY0_NS + HOUR_NS, 1_234, 100))
    spans = [sp for r in reqs for rs in r["resourceSpans"] for ss in rs["scopeSpans"]
             for sp in ss["spans"]]
    assert len(spans) == 1_234
    assert len({(s["traceId"], s["spanId"]) for s in spans}) == 1_234


# ---------------------------------------------------------------------------
# requests: retries and fallbacks
# ---------------------------------------------------------------------------


def test_a_failing_provider_causes_retries_then_a_fallback_in_the_same_trace() -> None:
    inc = Incident("anthropic", DAY0_NS, DAY0_NS + HOUR_NS, failure_share=1.0, billed_share=1.0)
    model = TrafficModel(seed=9, incidents=[inc], max_retries=2)
    chains = [model.request(DAY0_NS + i * 10**9, i % 3) for i in range(400)]
    anthropic = [c for c in chains if attrs(c[0])["gen_ai.request.model"].startswith("claude")]
    assert anthropic
    for chain in anthropic:
        assert len(chain) == 4  # the call, two retries, the fallback
        assert len({s["traceId"] for s in chain}) == 1
        first, *retries, fallback = chain
        starts = [int(s["startTimeUnixNano"]) for s in chain]
        assert starts == sorted(starts)
        for n, span in enumerate([first, *retries]):
            a = attrs(span)
            assert span["status"]["code"] == 2
            assert a["http.response.status_code"] in ("429", "529")
            assert a.get("http.request.resend_count") == (str(n) if n else None)
            # billed_share=1: every failed call had its prompt processed and carries usage
            assert int(a.get("gen_ai.usage.input_tokens") or a["gen_ai.usage.prompt_tokens"]) > 0
        fa = attrs(fallback)
        requested = attrs(first)["gen_ai.request.model"]
        assert fa["gen_ai.request.model"] == FALLBACKS[requested]
        assert fa["llmdeck.fallback"] is True
        assert fa.get("gen_ai.provider.name", fa.get("gen_ai.system")) == "openai"
    others = [c for c in chains if c not in anthropic]
    assert sum(len(c) for c in others) < len(others) * 1.05  # the rest hardly ever retries


def test_incident_slows_the_provider_down() -> None:
    def median_latency(incidents: list[Incident]) -> float:
        model = TrafficModel(seed=4, incidents=incidents, rate_limit_share=0, error_share=0)
        lat = []
        for i in range(3_000):
            span = model.span(DAY0_NS + i * 10**9, 0)
            if attrs(span)["gen_ai.request.model"].startswith("claude"):
                lat.append(int(span["endTimeUnixNano"]) - int(span["startTimeUnixNano"]))
        return sorted(lat)[len(lat) // 2]

    inc = Incident("anthropic", DAY0_NS, DAY0_NS + 10 * HOUR_NS, failure_share=0.0, slowdown=3.0)
    assert median_latency([inc]) / median_latency([]) == pytest.approx(3.0, rel=0.15)


# ---------------------------------------------------------------------------
# chunks
# ---------------------------------------------------------------------------


def test_a_chunk_is_a_pure_function_of_seed_and_index() -> None:
    plan = generate.TrafficPlan(seed=7, rate=2.0)
    index = generate.chunk_of(DAY0_NS + 15 * HOUR_NS)

    def ids(p: generate.TrafficPlan, k: int) -> list[tuple[str, str]]:
        return [(s["traceId"], s["spanId"]) for _, s in generate.chunk_spans(p, p.model(), k)]

    first = ids(plan, index)
    assert first and first == ids(plan, index)
    model = plan.model()
    generate.chunk_spans(plan, model, index + 1)  # whatever the model drew before
    assert [(s["traceId"], s["spanId"]) for _, s in generate.chunk_spans(plan, model, index)] == first
    assert ids(plan, index + 1) != first
    assert ids(generate.TrafficPlan(seed=8, rate=2.0), index) != first


def test_chunk_counts_follow_rate_and_time_of_day() -> None:
    plan = generate.TrafficPlan(seed=1, rate=1.0, max_retries=0)
    model = plan.model()

    def requests(hour: int) -> int:
        first = generate.chunk_of(DAY0_NS + hour * HOUR_NS)
        return sum(len(generate.chunk_spans(plan, model, k)) for k in range(first, first + 360))

    night, afternoon = requests(3), requests(15)  # one hour each: ~1,440 and ~5,760 expected
    assert night == pytest.approx(3_600 * diurnal_rate(DAY0_NS + 3 * HOUR_NS), rel=0.1)
    assert afternoon == pytest.approx(3_600 * diurnal_rate(DAY0_NS + 15 * HOUR_NS), rel=0.1)


def test_poisson_mean() -> None:
    rng = random.Random(0)
    for lam in (0.5, 4.0, 80.0):
        draws = [generate.poisson(rng, lam) for _ in range(4_000)]
        assert sum(draws) / len(draws) == pytest.approx(lam, rel=0.06)
    assert generate.poisson(rng, 0.0) == 0
