"""Rollups agree with the spans they summarise.

Percentiles read from the log-bucket histograms are within 2% of exact
nearest-rank percentiles; `status_groups` counts, tokens and cost equal SQL
over `spans` for the same windows, whatever mix of hour and minute rollups a
window is read from; compaction merges partial rows without changing totals.
"""

from __future__ import annotations

import json
import math
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from console.cache import rollups
from console.cache.queries import STATUS_WINDOWS, status_groups
from console.cache.store import Cache
from console.config import IngestSettings
from console.demo.traffic import Incident, TrafficModel, export_requests, write_collector_jsonl

EPOCH = datetime(1970, 1, 1)
DAY0 = datetime(2026, 3, 2)  # a Monday, midnight UTC


def ns(t: datetime) -> int:
    return int((t - EPOCH) / timedelta(microseconds=1)) * 1000


def kv(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"stringValue": value}}


def write_spans(path: Path, spans: list[dict[str, Any]], per_line: int = 500) -> Path:
    """Collector JSON lines; each span dict: start_ns, dur_ns, provider, model, [ttft_s]."""
    with path.open("w") as f:
        for i in range(0, len(spans), per_line):
            out = []
            for j, s in enumerate(spans[i: i + per_line], i):
                attrs = [kv("gen_ai.provider.name", s["provider"]),
                         kv("gen_ai.request.model", s["model"]),
                         kv("gen_ai.usage.input_tokens", s.get("tin", 100)),
                         kv("gen_ai.usage.output_tokens", s.get("tout", 10))]
                if s.get("ttft_s") is not None:
                    attrs.append(kv("gen_ai.response.time_to_first_chunk", s["ttft_s"]))
                out.append({"traceId": f"{s.get('trace', 7):016x}{j:016x}",
                            "spanId": f"{j + 1:016x}", "name": "chat", "kind": 3,
                            "startTimeUnixNano": str(s["start_ns"]),
                            "endTimeUnixNano": str(s["start_ns"] + s["dur_ns"]),
                            "attributes": attrs,
                            "status": {"code": 2} if s.get("error") else {}})
            req = {"resourceSpans": [{"resource": {"attributes": [kv("service.name", "svc")]},
                                      "scopeSpans": [{"scope": {"name": "t"}, "spans": out}]}]}
            f.write(json.dumps(req) + "\n")
    return path


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def rel_err(approx: float | None, exact: float) -> float:
    assert approx is not None
    return abs(approx - exact) / exact


def window_end(at: datetime) -> datetime:
    """Independent restatement of the design: windows end at the next minute boundary."""
    floor = at.replace(second=0, microsecond=0)
    return floor if floor == at else floor + timedelta(minutes=1)


EXACT_SQL = """
SELECT provider, coalesce(request_model, response_model) AS model, count(*),
       count(*) FILTER (WHERE status = 'error'), coalesce(sum(input_tokens), 0),
       coalesce(sum(output_tokens), 0), coalesce(sum(cost_usd), 0),
       count(*) FILTER (WHERE unpriced),
       list(duration_ms) FILTER (WHERE duration_ms IS NOT NULL),
       list(ttft_ms) FILTER (WHERE ttft_ms IS NOT NULL)
FROM spans WHERE epoch_ns(start_time) >= ? AND epoch_ns(start_time) < ? GROUP BY ALL
"""


def exact_groups(cur: Any, at: datetime) -> dict[tuple[str, str | None, str | None], tuple]:
    end = window_end(at)
    out = {}
    for label, width in STATUS_WINDOWS:
        for row in cur.execute(EXACT_SQL, [ns(end - width), ns(end)]).fetchall():
            out[(label, row[0], row[1])] = row[2:]
    return out


def assert_status_matches_spans(cur: Any, at: datetime) -> int:
    """status_groups(at) equals SQL over spans, group by group; returns the groups checked."""
    exact = exact_groups(cur, at)
    got = {(g.window, g.provider, g.model): g for g in status_groups(cur, at)}
    assert set(got) == set(exact), f"at {at}: groups differ"
    for key, (req, err, tin, tout, cost, unpriced, lat, ttft_values) in exact.items():
        g = got[key]
        assert (g.requests, g.errors, g.input_tokens, g.output_tokens, g.unpriced) == (
            req, err, tin, tout, unpriced), (at, key)
        assert g.cost_usd == pytest.approx(cost, rel=1e-9, abs=1e-12), (at, key)
        assert g.error_rate == pytest.approx(err / req)
        for q, value in ((0.5, g.latency_p50_ms), (0.95, g.latency_p95_ms),
                         (0.99, g.latency_p99_ms)):
            assert rel_err(value, nearest_rank(lat, q)) <= 0.02, (at, key, q)
        if ttft_values:
            assert rel_err(g.ttft_p95_ms, nearest_rank(ttft_values, 0.95)) <= 0.02, (at, key)
        else:
            assert g.ttft_p95_ms is None, (at, key)
    return len(exact)


# ---------------------------------------------------------------------------
# Percentile accuracy
# ---------------------------------------------------------------------------

N_PER_DIST = 12_000


def _draw(kind: str, rng: random.Random) -> float:
    if kind == "lognormal":
        return rng.lognormvariate(math.log(800), 0.6)
    if kind == "bimodal":  # cache hits vs full generations
        return max(1.0, rng.gauss(180, 25) if rng.random() < 0.7 else rng.gauss(4200, 500))
    if kind == "uniform":
        return rng.uniform(50, 5000)
    if kind == "heavy-tail":  # Pareto, alpha 1.1: p99 is ~60x the median
        return 40 * rng.paretovariate(1.1)
    raise ValueError(kind)


DISTRIBUTIONS = ("lognormal", "bimodal", "uniform", "heavy-tail")


@pytest.fixture(scope="module")
def percentile_cache(tmp_path_factory: pytest.TempPathFactory, make_config) -> Path:
    """48k spans, one model per latency distribution, spread over 20 hours, ingested for real."""
    from console.cache.ingest import Ingestor

    tmp = tmp_path_factory.mktemp("pct")
    rng = random.Random(20260302)
    spans = []
    for i, kind in enumerate(DISTRIBUTIONS):
        for _ in range(N_PER_DIST):
            ms = _draw(kind, rng)
            spans.append({
                "start_ns": ns(DAY0) + rng.randrange(20 * 3600 * 10**9),
                "dur_ns": max(1, round(ms * 1e6)),
                "provider": "p", "model": kind, "trace": i + 1,
                "ttft_s": ms * rng.uniform(0.05, 0.5) / 1000 if kind != "uniform" else None,
            })
    rng.shuffle(spans)
    path = write_spans(tmp / "pct.jsonl", spans)
    cache_path = tmp / "pct.duckdb"
    with Cache.open(cache_path) as cache:
        report = Ingestor(cache, make_config()).run([path])
    assert report.spans_stored == len(spans)
    return cache_path


@pytest.mark.parametrize("kind", DISTRIBUTIONS)
def test_rollup_percentiles_within_two_percent_of_exact(kind, percentile_cache):
    with Cache.open(percentile_cache, read_only=True) as cache:
        cur = cache.cursor()
        at = DAY0 + timedelta(hours=20)
        groups = {(g.window, g.model): g for g in status_groups(cur, at)}
        checked = 0
        for label, width in STATUS_WINDOWS:
            g = groups.get((label, kind))
            if g is None:
                continue
            lat, ttft = cur.execute(
                "SELECT list(duration_ms), list(ttft_ms) FILTER (WHERE ttft_ms IS NOT NULL)"
                " FROM spans WHERE request_model = ? AND epoch_ns(start_time) >= ?"
                " AND epoch_ns(start_time) < ?", [kind, ns(at - width), ns(at)]).fetchall()[0]
            assert g.requests == len(lat)
            for q, got in ((0.5, g.latency_p50_ms), (0.95, g.latency_p95_ms),
                           (0.99, g.latency_p99_ms)):
                exact = nearest_rank(lat, q)
                assert rel_err(got, exact) <= 0.02, f"{kind} {label} p{int(q * 100)}: {got} vs {exact}"
            if kind != "uniform":  # every span of these kinds streamed and has a TTFT
                assert len(ttft) == len(lat)
                assert rel_err(g.ttft_p95_ms, nearest_rank(ttft, 0.95)) <= 0.02
            checked += 1
        assert checked == 4
        assert groups[("24h", kind)].requests == N_PER_DIST


def test_quantile_of_merged_histograms_equals_quantile_of_all_values():
    rng = random.Random(5)
    values = [rng.lognormvariate(5, 1.5) for _ in range(20_000)]
    hist: dict[int, int] = defaultdict(int)
    for v in values:
        hist[rollups.bucket_of(v)] += 1
    for q in (0.01, 0.5, 0.9, 0.99, 0.999, 1.0):
        assert rel_err(rollups.quantile(hist.items(), q), nearest_rank(values, q)) <= rollups.ALPHA
    assert rollups.quantile([], 0.5) is None


# ---------------------------------------------------------------------------
# status_groups == SQL over spans
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def traffic_cache(tmp_path_factory: pytest.TempPathFactory, make_config
                  ) -> tuple[Path, datetime]:
    from console.cache.ingest import Ingestor

    tmp = tmp_path_factory.mktemp("traffic")
    end = DAY0 + timedelta(hours=30, minutes=17, seconds=23)
    end_ns = ns(end)
    start_ns = end_ns - 30 * 3600 * 10**9
    model = TrafficModel(seed=11, incidents=[Incident("anthropic", end_ns - 40 * 60 * 10**9,
                                                      end_ns - 10 * 60 * 10**9)])
    path = tmp / "traffic.jsonl"
    write_collector_jsonl(str(path), export_requests(model, start_ns, end_ns, 20_000, 250))
    cache_path = tmp / "traffic.duckdb"
    cfg = make_config(ingest=IngestSettings(batch_spans=1000))  # many batches, many partial rows
    with Cache.open(cache_path) as cache:
        report = Ingestor(cache, cfg).run([path])
    assert report.spans_stored == 20_000 and report.unpriced > 0
    return cache_path, end


@pytest.mark.parametrize("offset", [timedelta(0), timedelta(minutes=-3, seconds=-5),
                                    timedelta(hours=-7, minutes=-42, microseconds=-1)])
def test_status_groups_equal_sql_over_spans(offset, traffic_cache):
    cache_path, end = traffic_cache
    with Cache.open(cache_path, read_only=True) as cache:
        n = assert_status_matches_spans(cache.cursor(), end + offset)
    assert n >= 4 * 5  # every window has several provider/model groups


def test_status_sees_errors_and_unpriced_traffic(traffic_cache):
    cache_path, end = traffic_cache
    with Cache.open(cache_path, read_only=True) as cache:
        groups = status_groups(cache.cursor(), end)
    anthropic_1h = [g for g in groups if g.window == "1h" and g.provider == "anthropic"]
    assert anthropic_1h and all(g.errors > 0 for g in anthropic_1h)  # the incident
    assert any(g.unpriced > 0 and g.model == "acme-finetune-v2" for g in groups)
    assert all(g.unpriced == 0 for g in groups if g.model != "acme-finetune-v2")


# ---------------------------------------------------------------------------
# Window edges: hour parts vs minute parts
# ---------------------------------------------------------------------------

EDGE_BASE = DAY0 + timedelta(hours=10)


@pytest.fixture(scope="module")
def edge_cache(tmp_path_factory: pytest.TempPathFactory, make_config) -> Path:
    """Spans on and next to minute and hour boundaries around EDGE_BASE (10:00)."""
    from console.cache.ingest import Ingestor

    tmp = tmp_path_factory.mktemp("edges")
    rng = random.Random(3)
    spans = []
    t0 = EDGE_BASE - timedelta(hours=26)
    minute = 0
    while t0 + timedelta(minutes=minute) <= EDGE_BASE + timedelta(hours=2):
        base = ns(t0 + timedelta(minutes=minute))
        # on the boundary and 1 ns / 1 us either side of it, mid-minute, end of the minute
        for delta in (-1000, -1, 0, 1, 1000, 29_999_999_999, 59_999_999_999):
            spans.append({"start_ns": base + delta, "dur_ns": rng.randrange(10**6, 10**10),
                          "provider": rng.choice(["openai", "anthropic"]),
                          "model": rng.choice(["gpt-4o", "claude-haiku-4-5"]),
                          "tin": rng.randrange(1, 5000), "tout": rng.randrange(1, 900),
                          "error": rng.random() < 0.1,
                          "ttft_s": rng.uniform(0.05, 1.0) if rng.random() < 0.5 else None})
        minute += rng.choice([1, 1, 1, 7, 13])
    path = write_spans(tmp / "edges.jsonl", spans, per_line=300)
    cache_path = tmp / "edges.duckdb"
    with Cache.open(cache_path) as cache:
        assert Ingestor(cache, make_config()).run([path]).spans_stored == len(spans)
    return cache_path


AT_VALUES = [
    EDGE_BASE,                                                  # exactly on the hour
    EDGE_BASE + timedelta(microseconds=1),                      # just after it
    EDGE_BASE - timedelta(microseconds=1),                      # just before it
    EDGE_BASE + timedelta(seconds=30),                          # inside the first minute
    EDGE_BASE + timedelta(minutes=59, seconds=59, microseconds=999_999),
    EDGE_BASE + timedelta(minutes=4),                           # on a minute, 5m = 09:59-10:04
    EDGE_BASE + timedelta(minutes=5),                           # 5m window exactly 10:00-10:05
    EDGE_BASE + timedelta(minutes=37, seconds=12, microseconds=345_678),
    EDGE_BASE + timedelta(hours=1, minutes=1),
]


@pytest.mark.parametrize("at", AT_VALUES, ids=lambda t: t.strftime("%H:%M:%S.%f"))
def test_window_edges_match_a_direct_span_query(at, edge_cache):
    with Cache.open(edge_cache, read_only=True) as cache:
        assert assert_status_matches_spans(cache.cursor(), at) > 0


def test_at_with_timezone_and_naive_utc_agree(edge_cache):
    at = EDGE_BASE + timedelta(minutes=12, seconds=3)
    with Cache.open(edge_cache, read_only=True) as cache:
        cur = cache.cursor()
        naive = [g.as_json() for g in status_groups(cur, at)]
        aware = [g.as_json() for g in status_groups(cur, at.replace(tzinfo=UTC))]
    assert naive == aware and naive


def test_ttft_p95_only_counts_spans_that_have_a_ttft(percentile_cache):
    """A span without TTFT (or duration) is left out of that histogram, not counted as ~0 ms."""
    with Cache.open(percentile_cache, read_only=True) as cache:
        groups = {(g.window, g.model): g for g in status_groups(cache.cursor(),
                                                                DAY0 + timedelta(hours=20))}
    assert groups[("24h", "uniform")].ttft_p95_ms is None  # no span of it has a TTFT


def test_span_just_before_a_boundary_stays_in_its_minute_and_hour(tmp_path, ingest, sql):
    """DuckDB 2.0's date_trunc on TIMESTAMP_NS rounds to microseconds first; rollups must not."""
    last = ns(EDGE_BASE) - 1  # 09:59:59.999999999
    path = write_spans(tmp_path / "b.jsonl", [
        {"start_ns": last, "dur_ns": 10**8, "provider": "p", "model": "m"},
        {"start_ns": ns(EDGE_BASE), "dur_ns": 10**8, "provider": "p", "model": "m"}])
    ingest([path])
    assert sql("SELECT ts, requests FROM rollup_minute ORDER BY ts") == [
        (EDGE_BASE - timedelta(minutes=1), 1), (EDGE_BASE, 1)]
    assert sql("SELECT ts, requests FROM rollup_hour ORDER BY ts") == [
        (EDGE_BASE - timedelta(hours=1), 1), (EDGE_BASE, 1)]


# ---------------------------------------------------------------------------
# Compaction
# ---------------------------------------------------------------------------

DIMS = "service, provider, model, tenant, route, prompt_version, status"
METRICS = ("requests", "errors", "rate_limited", "fallbacks", "input_tokens", "output_tokens",
           "cache_read_tokens", "cost_usd", "unpriced", "latency_sum_ms")


def _per_key(cur: Any, table: str) -> dict[tuple, tuple]:
    """Per rollup key: summed metrics and merged histograms (partials folded)."""
    sums = ", ".join(f"sum({m})" for m in METRICS)
    rows = cur.execute(f"SELECT ts, {DIMS}, {sums} FROM {table} GROUP BY ALL").fetchall()
    out = {r[:8]: tuple(round(v, 9) if isinstance(v, float) else v for v in r[8:]) for r in rows}
    for col in ("latency_hist", "ttft_hist"):
        hist = cur.execute(
            f"SELECT ts, {DIMS}, u.b, sum(u.n) FROM (SELECT *, unnest({col}) AS u FROM {table})"
            " GROUP BY ALL").fetchall()
        merged: dict[tuple, dict[int, int]] = defaultdict(dict)
        for r in hist:
            merged[r[:8]][r[8]] = int(r[9])
        for key in out:
            out[key] = (*out[key], tuple(sorted(merged.get(key, {}).items())))
    return out


def test_compaction_leaves_one_row_per_key_and_keeps_totals(tmp_path, ingest, sql, monkeypatch,
                                                            cache_file, make_config):
    rng = random.Random(9)
    files = []
    for k in range(3):  # three files over the same two hours: the same keys again and again
        spans = [{"start_ns": ns(DAY0) + rng.randrange(2 * 3600 * 10**9),
                  "dur_ns": rng.randrange(10**6, 10**10), "trace": k + 1,
                  "provider": rng.choice(["openai", "anthropic"]),
                  "model": rng.choice(["gpt-4o", "claude-haiku-4-5"]),
                  "error": rng.random() < 0.2,
                  "ttft_s": rng.uniform(0.05, 1) if rng.random() < 0.5 else None}
                 for _ in range(1500)]
        files.append(write_spans(tmp_path / f"f{k}.jsonl", spans, per_line=100))
    monkeypatch.setattr(rollups, "compact", lambda *a, **k: None)
    for f in files:
        ingest([f], config=make_config(ingest=IngestSettings(batch_spans=100)))
    monkeypatch.undo()
    with Cache.open(cache_file) as cache:
        cur = cache.cursor()
        before = {t: _per_key(cur, t) for t in rollups.GRAINS}
        rows_before = cur.execute("SELECT count(*) FROM rollup_minute").fetchall()[0][0]
        assert rows_before > len(before["rollup_minute"])  # there are partials to merge
        cur.execute("BEGIN")
        rollups.compact(cur, DAY0 - timedelta(hours=1), DAY0 + timedelta(hours=3))
        cur.execute("COMMIT")
        for table in rollups.GRAINS:
            assert cur.execute(
                f"SELECT count(*) = count(DISTINCT (ts, {DIMS})) FROM {table}").fetchall() == [
                (True,)]
            assert _per_key(cur, table) == before[table]
        assert cur.execute("SELECT sum(requests) FROM rollup_minute").fetchall() == [(4500,)]
        assert cur.execute("SELECT sum(requests) FROM rollup_hour").fetchall() == [(4500,)]


def test_ingest_compacts_what_it_touched(tmp_path, ingest, sql, make_config):
    rng = random.Random(10)
    for k in range(2):
        spans = [{"start_ns": ns(DAY0) + rng.randrange(3600 * 10**9), "trace": k + 1,
                  "dur_ns": rng.randrange(10**6, 10**9), "provider": "openai", "model": "gpt-4o"}
                 for _ in range(2000)]
        ingest([write_spans(tmp_path / f"g{k}.jsonl", spans, per_line=100)],
               config=make_config(ingest=IngestSettings(batch_spans=100)))
    for table in rollups.GRAINS:
        assert sql(f"SELECT count(*) = count(DISTINCT (ts, {DIMS})) FROM {table}") == [(True,)]
        assert sql(f"SELECT sum(requests) FROM {table}") == [(4000,)]
    assert sql("SELECT count(*) FROM rollup_hour") == [(1,)]
    assert sql("SELECT count(*) FROM rollup_minute") == [(60,)]
    (hist_total,) = sql("SELECT sum(u.n) FROM (SELECT unnest(latency_hist) AS u"
                        " FROM rollup_hour)")[0]
    assert hist_total == 4000
