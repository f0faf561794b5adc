"""SLO reads (console.cache.slo_queries) agree with exact counts over `spans`.

Caches are built through the real ingest path from the demo traffic model, with
and without a provider incident, plus a small hand-made cache for change markers.
"""

from __future__ import annotations

import math
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from console.cache.ingest import Ingestor
from console.cache.queries import window_end
from console.cache.rollups import GAMMA
from console.cache.slo_queries import change_markers, series, slo_detail, slo_statuses
from console.cache.store import Cache
from console.config import ScopeFilter, SloSpec
from console.demo.traffic import Incident, TrafficModel, export_requests, write_collector_jsonl
from console.slo import REQUIRED_WINDOWS, AlertLevel, window_label
from console.snapshots import ChangeMarker
from tests.unit.otlp_spans import Span, ns, write_spans

END = datetime(2026, 3, 4, 10, 17, 23)
HOURS = 26
SPANS = 20_000

_SPAN_COLS = {"service": "service", "provider": "provider",
              "model": "coalesce(request_model, response_model)", "tenant": "tenant",
              "route": "route", "prompt_version": "prompt_version"}


def build_cache(tmp: Path, make_config: Any, incidents: list[Incident]) -> Path:
    end_ns = ns(END)
    model = TrafficModel(seed=5, incidents=incidents)
    path = tmp / "traffic.jsonl"
    write_collector_jsonl(str(path), export_requests(model, end_ns - HOURS * 3600 * 10**9, end_ns,
                                                     SPANS, 500))
    cache_path = tmp / "cache.duckdb"
    with Cache.open(cache_path) as cache:
        assert Ingestor(cache, make_config()).run([path]).spans_stored == SPANS
    return cache_path


@pytest.fixture(scope="module")
def incident_cache(tmp_path_factory: pytest.TempPathFactory, make_config: Any) -> Path:
    """Anthropic fails 45% of calls for the last hour."""
    end_ns = ns(END)
    return build_cache(tmp_path_factory.mktemp("incident"), make_config,
                       [Incident("anthropic", end_ns - 3600 * 10**9, end_ns)])


@pytest.fixture(scope="module")
def quiet_cache(tmp_path_factory: pytest.TempPathFactory, make_config: Any) -> Path:
    return build_cache(tmp_path_factory.mktemp("quiet"), make_config, [])


def span_where(flt: ScopeFilter) -> tuple[str, list[Any]]:
    clauses = [f" AND coalesce({_SPAN_COLS[k]}, '') = ?" for k, _ in flt.items()]
    return "".join(clauses), [v for _, v in flt.items()]


def exact(cur: Any, flt: ScopeFilter, start: datetime, end: datetime) -> dict[str, Any]:
    """Counts straight from `spans` for start_time in [start, end)."""
    where, params = span_where(flt)
    row = cur.execute(
        "SELECT count(*), count(*) FILTER (WHERE status = 'error'),"
        " count(*) FILTER (WHERE rate_limited), count(*) FILTER (WHERE fallback),"
        " list(duration_ms) FILTER (WHERE duration_ms IS NOT NULL),"
        " list(ttft_ms) FILTER (WHERE ttft_ms IS NOT NULL)"
        f" FROM spans WHERE epoch_ns(start_time) >= ? AND epoch_ns(start_time) < ?{where}",
        [ns(start), ns(end), *params]).fetchall()[0]
    return dict(zip(("requests", "errors", "rate_limited", "fallbacks", "latency", "ttft"),
                    row, strict=True))


ALL = ScopeFilter()


def slo(kind: str, objective: float, flt: ScopeFilter = ALL, **kw: Any) -> SloSpec:
    return SloSpec(name=f"{kind} {flt.describe()}", kind=kind, objective=objective, filter=flt, **kw)


# ---------------------------------------------------------------------------
# Statuses
# ---------------------------------------------------------------------------

FILTERS = [ScopeFilter(), ScopeFilter(provider="anthropic"),  # coarse rollups
           ScopeFilter(tenant="acme-corp"), ScopeFilter(service="support-chatbot", route="/v1/chat")]


@pytest.mark.parametrize("flt", FILTERS, ids=lambda f: f.describe())
def test_availability_compliance_and_every_burn_rate_equal_exact_span_counts(flt, incident_cache):
    specs = [slo("availability", 0.99, flt), slo("availability", 0.95, flt, window_days=0.5)]
    with Cache.open(incident_cache, read_only=True) as cache:
        cur = cache.cursor()
        statuses = slo_statuses(cur, specs, END)
        end = window_end(END)
        for spec, status in zip(specs, statuses, strict=True):
            budget = 1 - spec.objective
            whole = exact(cur, flt, end - timedelta(days=spec.window_days), end)
            assert status.requests == whole["requests"] > 0
            assert status.compliance == pytest.approx(1 - whole["errors"] / whole["requests"])
            assert status.budget_remaining == pytest.approx(
                1 - whole["errors"] / whole["requests"] / budget)
            assert [label for label, _ in status.burn_rates] == [
                "5m", "30m", "1h", "2h", "6h", "24h", "3d"]
            for width in REQUIRED_WINDOWS:
                e = exact(cur, flt, end - width, end)
                expected = e["errors"] / e["requests"] / budget if e["requests"] else None
                assert status.burn(window_label(width)) == pytest.approx(expected), width


def test_latency_slo_good_count_is_within_one_bucket_of_exact(incident_cache):
    threshold = 3000.0
    flt = ScopeFilter(service="support-chatbot")
    spec = slo("latency", 0.9, flt, threshold_ms=threshold)
    with Cache.open(incident_cache, read_only=True) as cache:
        cur = cache.cursor()
        (status,) = slo_statuses(cur, [spec], END)
        e = exact(cur, flt, window_end(END) - timedelta(days=28), window_end(END))
    assert status.compliance is not None
    good = round(status.compliance * len(e["latency"]))
    under = sum(v <= threshold for v in e["latency"])
    under_one_bucket_less = sum(v <= threshold / GAMMA for v in e["latency"])
    assert under_one_bucket_less <= good <= under  # conservative: never overstates compliance
    assert under - good < 0.01 * len(e["latency"])


def test_ttft_slo_counts_only_requests_that_have_a_ttft(incident_cache):
    threshold = 400.0
    spec = slo("ttft", 0.9, ScopeFilter(), threshold_ms=threshold)
    with Cache.open(incident_cache, read_only=True) as cache:
        cur = cache.cursor()
        (status,) = slo_statuses(cur, [spec], END)
        e = exact(cur, ScopeFilter(), window_end(END) - timedelta(days=28), window_end(END))
    assert 0 < len(e["ttft"]) < e["requests"]
    good = status.compliance * len(e["ttft"])
    assert sum(v <= threshold / GAMMA for v in e["ttft"]) <= round(good) <= sum(
        v <= threshold for v in e["ttft"])


@pytest.mark.parametrize(("kind", "field"), [("rate_limit", "rate_limited"), ("fallback", "fallbacks")])
def test_rate_limit_and_fallback_slos_count_their_flags(kind, field, incident_cache):
    flt = ScopeFilter(provider="anthropic")
    spec = slo(kind, 0.99, flt, window_days=1)
    with Cache.open(incident_cache, read_only=True) as cache:
        cur = cache.cursor()
        (status,) = slo_statuses(cur, [spec], END)
        whole = exact(cur, flt, window_end(END) - timedelta(days=1), window_end(END))
        hour = exact(cur, flt, window_end(END) - timedelta(hours=1), window_end(END))
    assert whole[field] > 0
    assert status.compliance == pytest.approx(1 - whole[field] / whole["requests"])
    assert status.burn("1h") == pytest.approx(hour[field] / hour["requests"] / 0.01)


def test_provider_incident_pages_with_the_firing_rule_in_words(incident_cache):
    spec = slo("availability", 0.98, ScopeFilter(provider="anthropic"))
    with Cache.open(incident_cache, read_only=True) as cache:
        (status,) = slo_statuses(cache.cursor(), [spec], END)
    assert status.level is AlertLevel.PAGE
    assert status.reason.startswith("page: 1h burn ") and "> 14.4" in status.reason
    assert status.time_to_exhaustion is not None
    assert status.time_to_exhaustion < timedelta(days=3)


def test_the_same_slo_is_ok_without_an_incident(quiet_cache):
    specs = [slo("availability", 0.98, ScopeFilter(provider="anthropic")),
             slo("availability", 0.98, ScopeFilter())]
    with Cache.open(quiet_cache, read_only=True) as cache:
        statuses = slo_statuses(cache.cursor(), specs, END)
    assert [s.level for s in statuses] == [AlertLevel.OK, AlertLevel.OK]
    assert all(s.reason == "ok: no burn-rate rule fires" for s in statuses)
    assert all(0 < s.budget_remaining < 1 for s in statuses)


def test_statuses_come_from_rollups_alone(incident_cache, tmp_path):
    """Emptying `spans` changes nothing: the per-second query never scans spans."""
    specs = [slo("availability", 0.99, f) for f in FILTERS] + [
        slo("latency", 0.9, ScopeFilter(tenant="globex"), threshold_ms=2500)]
    copy = tmp_path / "copy.duckdb"
    shutil.copy(incident_cache, copy)
    with Cache.open(copy, read_only=True) as cache:
        before = slo_statuses(cache.cursor(), specs, END)
    with Cache.open(copy) as cache:
        cache.cursor().execute("DELETE FROM spans")
        after = slo_statuses(cache.cursor(), specs, END)
    assert after == before


def test_no_slos_and_no_traffic_are_quiet(quiet_cache):
    with Cache.open(quiet_cache, read_only=True) as cache:
        cur = cache.cursor()
        assert slo_statuses(cur, [], END) == ()
        (status,) = slo_statuses(cur, [slo("availability", 0.99)], END + timedelta(days=60))
    assert status.requests == 0 and status.compliance is None
    assert status.budget_remaining == 1.0 and status.time_to_exhaustion is None
    assert status.level is AlertLevel.OK and all(b is None for _, b in status.burn_rates)


# ---------------------------------------------------------------------------
# Series
# ---------------------------------------------------------------------------


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def test_series_error_rate_and_p95_match_spans_in_every_five_minute_step(incident_cache):
    flt = ScopeFilter(provider="anthropic")
    with Cache.open(incident_cache, read_only=True) as cache:
        cur = cache.cursor()
        errors, p95 = series(cur, flt, END, timedelta(hours=6), 72)
        assert len(errors.points) == len(p95.points) == 72
        assert errors.points[-1].ts == window_end(END) - timedelta(minutes=5)
        assert errors.points[0].ts == window_end(END) - timedelta(hours=6)
        for point, lat in zip(errors.points, p95.points, strict=True):
            e = exact(cur, flt, point.ts, point.ts + timedelta(minutes=5))
            if not e["requests"]:
                assert point.value is None and lat.value is None
                continue
            assert point.value == pytest.approx(e["errors"] / e["requests"])
            exact_p95 = nearest_rank(e["latency"], 0.95)
            assert abs(lat.value - exact_p95) / exact_p95 <= 0.02
    assert (errors.name, errors.unit, p95.unit) == ("error_rate", "fraction", "ms")


def test_series_with_hour_steps_reads_whole_hours(incident_cache):
    flt = ScopeFilter(tenant="acme-corp")
    with Cache.open(incident_cache, read_only=True) as cache:
        cur = cache.cursor()
        errors, _ = series(cur, flt, END, timedelta(hours=24), 12)
        top = END.replace(minute=0, second=0) + timedelta(hours=1)
        assert [p.ts for p in errors.points] == [top - timedelta(hours=24 - 2 * i) for i in range(12)]
        for point in errors.points:
            e = exact(cur, flt, point.ts, point.ts + timedelta(hours=2))
            assert point.value == pytest.approx(e["errors"] / e["requests"])


def test_slo_detail_burn_series_is_bad_share_over_the_error_budget(incident_cache):
    spec = slo("rate_limit", 0.995, ScopeFilter(provider="anthropic"))
    with Cache.open(incident_cache, read_only=True) as cache:
        cur = cache.cursor()
        detail = slo_detail(cur, spec, END, timedelta(hours=2), 24)
        assert detail.status == slo_statuses(cur, [spec], END)[0]
        for point in detail.burn_rate.points:
            e = exact(cur, spec.filter, point.ts, point.ts + timedelta(minutes=5))
            expected = e["rate_limited"] / e["requests"] / 0.005 if e["requests"] else None
            assert point.value == pytest.approx(expected)
    assert detail.burn_rate.points[-1].value > 14.4  # the incident
    assert len(detail.error_rate.points) == len(detail.latency_p95.points) == 24


# ---------------------------------------------------------------------------
# Change markers
# ---------------------------------------------------------------------------

T0 = datetime(2026, 3, 1)
NEW_PROMPT = T0 + timedelta(days=2, hours=5, minutes=13, seconds=41)
NEW_MODEL = T0 + timedelta(days=2, hours=7, minutes=2, seconds=5)


@pytest.fixture(scope="module")
def release_cache(tmp_path_factory: pytest.TempPathFactory, make_config: Any) -> Path:
    """Three days of v1 on gpt-4o-mini; prompt v2 and model gpt-4o arrive on day three."""
    spans = []
    t = T0
    while t < T0 + timedelta(days=3):
        spans.append(Span(t, prompt_version="v2" if t >= NEW_PROMPT else "v1"))
        t += timedelta(minutes=10)
    spans += [Span(NEW_PROMPT, prompt_version="v2"), Span(NEW_MODEL, model="gpt-4o"),
              Span(NEW_MODEL + timedelta(minutes=30), model="gpt-4o")]
    tmp = tmp_path_factory.mktemp("release")
    cache_path = tmp / "cache.duckdb"
    with Cache.open(cache_path) as cache:
        Ingestor(cache, make_config()).run([write_spans(tmp / "r.jsonl", spans)])
    return cache_path


def test_change_markers_flag_the_first_minute_of_a_new_prompt_version_and_model(release_cache):
    with Cache.open(release_cache, read_only=True) as cache:
        markers = change_markers(cache.cursor(), ScopeFilter(), T0 + timedelta(days=2),
                                 T0 + timedelta(days=3))
    assert markers == (
        ChangeMarker(NEW_PROMPT.replace(second=0), "prompt_version", "prompt v2"),
        ChangeMarker(NEW_MODEL.replace(second=0), "model", "model gpt-4o"),
    )


def test_change_markers_skip_what_was_seen_in_the_week_before(release_cache):
    with Cache.open(release_cache, read_only=True) as cache:
        markers = change_markers(cache.cursor(), ScopeFilter(), NEW_MODEL + timedelta(minutes=10),
                                 T0 + timedelta(days=3))
    assert markers == ()


def test_change_markers_need_a_baseline_and_respect_the_scope(release_cache):
    with Cache.open(release_cache, read_only=True) as cache:
        cur = cache.cursor()
        # nothing before the first span: everything would look new, so nothing is marked
        assert change_markers(cur, ScopeFilter(), T0 - timedelta(hours=1), T0 + timedelta(days=3)) == ()
        # scoped to the new model: it has no history at all in scope
        assert change_markers(cur, ScopeFilter(model="gpt-4o"), T0 + timedelta(days=2),
                              T0 + timedelta(days=3)) == ()
        scoped = change_markers(cur, ScopeFilter(model="gpt-4o-mini"), T0 + timedelta(days=2),
                                T0 + timedelta(days=3))
    assert [m.label for m in scoped] == ["prompt v2"]


def test_slos_with_different_filters_read_together_equal_each_read_alone(incident_cache):
    """One pass serves every filter (coarse and full rollups mixed): no filter sees another's rows."""
    specs = [slo("availability", 0.99, f) for f in FILTERS] + [
        slo("latency", 0.9, FILTERS[1], threshold_ms=2000.0),
        slo("ttft", 0.9, FILTERS[2], threshold_ms=400.0),
        slo("rate_limit", 0.99, FILTERS[3]),
        slo("fallback", 0.95, ALL, window_days=0.5),
    ]
    with Cache.open(incident_cache, read_only=True) as cache:
        cur = cache.cursor()
        together = slo_statuses(cur, specs, END)
        alone = [slo_statuses(cur, [spec], END)[0] for spec in specs]
    assert together == tuple(alone)
    assert {s.requests for s in together} != {0}
