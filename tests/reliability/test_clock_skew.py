"""Spans dated by a wrong clock (next day, years ahead, years back, 1970) are stored and counted,
and leave every window of now exactly as it is without them.

Two caches are built by the real `llmdeck ingest` from real files: one with recent traffic
only, one with the same traffic plus 14 skewed spans. Everything shown for now (`llmdeck
status`, the console's overview, SLO, cost, breakdown and request views) must be the same
for both; the ingest says how many spans were outside the expected range; `cache info`
keeps its span range to the spans of now and counts the others.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from console.backend import Backend
from console.cache import ingest as ingest_mod
from console.cache import rollups
from console.cache.ingest import Ingestor
from console.cache.queries import cache_info
from console.cache.store import Cache
from console.config import load_config
from console.demo.traffic import TrafficModel, export_request, export_requests
from console.timeutil import utc_now
from console.views import BreakdownView, CostView, OverviewView, RequestsView, SloView
from tests.reliability.faultkit import cli

RECENT = 3_000
DAY = 86_400 * 10**9
SKEW = (  # (what, offset from now in ns, or an absolute time; how many)
    ("+1d", DAY, 5),
    ("+2y", 730 * DAY, 4),
    ("-3y", -3 * 365 * DAY, 3),
    ("1970", None, 2),  # e.g. a time in seconds read as nanoseconds
)
FUTURE, PAST = 9, 5
HORIZON_DAYS = 400  # the default rollup retention: older spans are outside every window of now
CONFIG = """
[[slos]]
name = "availability"
kind = "availability"
objective = 0.99
window_days = 28

[[slos]]
name = "latency"
kind = "latency"
objective = 0.9
threshold_ms = 2000
window_days = 7

[[budgets]]
name = "monthly"
limit_usd = 100
period = "month"

[[budgets]]
name = "daily"
limit_usd = 5
period = "day"
"""


def ns_datetime(ns: int) -> datetime:
    return datetime(1970, 1, 1) + timedelta(microseconds=ns // 1000)


def _lines(requests: Any) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in requests)


def _skewed_spans(now_ns: int, seed: int = 9) -> list[dict[str, Any]]:
    model = TrafficModel(seed=seed)
    spans = []
    for _, offset, n in SKEW:
        base = 5 * 10**9 if offset is None else now_ns + offset
        spans += [model.span(base + i * 10**9, 0) for i in range(n)]
    return spans


def _recent(now_ns: int, count: int = RECENT, seed: int = 3) -> list[dict[str, Any]]:
    end = now_ns // 60_000_000_000 * 60_000_000_000 - 60 * 10**9
    return list(export_requests(TrafficModel(seed=seed), end - 26 * 3600 * 10**9, end, count, 500))


@dataclasses.dataclass
class World:
    dir: Path
    env: dict[str, str]
    base: Path
    skewed: Path
    ingest_out: str
    now_ns: int
    at: datetime


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    d = tmp_path_factory.mktemp("clock")
    (d / "llmdeck.toml").write_text(CONFIG)
    env = {"LLMDECK_CONFIG": str(d / "llmdeck.toml")}  # added to this process's environment
    now_ns = time.time_ns()
    (d / "recent.jsonl").write_bytes(_lines(_recent(now_ns)))
    (d / "skewed.jsonl").write_bytes(_lines([export_request([_skewed_spans(now_ns)])]))
    base, skewed = d / "base.duckdb", d / "skewed.duckdb"
    done = cli("--cache", str(base), "ingest", str(d / "recent.jsonl"), env=env)
    assert done.returncode == 0, done.stderr
    done = cli("--cache", str(skewed), "ingest", str(d / "recent.jsonl"), str(d / "skewed.jsonl"),
                env=env)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return World(d, env, base, skewed, done.stdout, now_ns, utc_now())


def test_ingest_stores_every_skewed_span_and_says_how_many_were_outside(world: World) -> None:
    latest = max(world.now_ns + off + (n - 1) * 10**9 for _, off, n in SKEW if off and off > 0)
    # the horizon is the default rollup retention before the ingest's wall clock
    horizons = {f"{ns_datetime(world.now_ns + s * 10**9 - HORIZON_DAYS * DAY):%Y-%m-%d}"
                for s in (0, 120)}
    line = next(ln for ln in world.ingest_out.splitlines() if "clock:" in ln)
    m = re.fullmatch(
        r"  clock: 9 spans dated in the future \(up to (\S+)\), 5 older than (\S+): stored,"
        r" but outside the windows of now \(a host clock may be wrong\)", line)
    assert m, line
    assert m.group(1) == f"{ns_datetime(latest):%Y-%m-%dT%H:%MZ}"
    assert m.group(2) in horizons
    assert f"{RECENT + FUTURE + PAST:,} spans read, {RECENT + FUTURE + PAST:,} stored" in world.ingest_out
    with Cache.open(world.skewed, read_only=True) as cache:
        cur = cache.cursor()
        total, future, past = cur.execute(
            "SELECT count(*), count(*) FILTER (WHERE start_time > ?),"
            " count(*) FILTER (WHERE start_time < ?) FROM spans",
            [world.at + timedelta(hours=1), world.at - timedelta(days=400)],
        ).fetchall()[0]
    assert (total, future, past) == (RECENT + FUTURE + PAST, FUTURE, PAST)
    # the JSON report has the counts too
    fresh = world.dir / "json.duckdb"
    done = cli("--cache", str(fresh), "ingest", str(world.dir / "skewed.jsonl"), "--json",
                env=world.env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["spans_stored"], report["future"], report["past"]) == (FUTURE + PAST, FUTURE, PAST)
    assert report["future_latest"] == m.group(1)
    assert report["past_earliest"] == "1970-01-01T00:00Z"


def test_status_for_now_is_the_same_without_the_skewed_spans(world: World) -> None:
    at = f"{world.at:%Y-%m-%dT%H:%M:%S}Z"
    outs = []
    for path in (world.base, world.skewed):
        done = cli("--cache", str(path), "status", "--at", at, "--json", env=world.env)
        assert done.returncode in (0, 1, 2), done.stderr
        outs.append(json.loads(done.stdout))
    assert _differences(outs[0], outs[1], tol=1.01e-6) == []
    assert any(g["requests"] for g in outs[0]["groups"]), "the recent traffic shows"


def _plain(value: Any) -> Any:
    """`value` as nested dicts and lists (dataclasses by name and fields)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"type": type(value).__name__, **_plain(dataclasses.asdict(value))}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _differences(a: Any, b: Any, where: str = "", tol: float = 1e-12) -> list[str]:
    """Where `a` and `b` differ; floats may differ in the last digits (sums in another row order)
    or, rounded to `tol` (the JSON's 6 decimals), by one unit of it."""
    if isinstance(a, float) and isinstance(b, float):
        return [] if math.isclose(a, b, rel_tol=1e-9, abs_tol=tol) else [f"{where}: {a} != {b}"]
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{where}: keys {sorted(a)} != {sorted(b)}"]
        return [d for k in a for d in _differences(a[k], b[k], f"{where}.{k}", tol)]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} items != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True))
                for d in _differences(x, y, f"{where}[{i}]", tol)]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


VIEWS = (OverviewView(), SloView(selected="availability"), SloView(selected="latency"), CostView(),
         BreakdownView(window=timedelta(hours=24)), RequestsView(window=timedelta(hours=24)),
         RequestsView(window=timedelta(hours=24), order="slowest"))


def test_every_console_view_of_now_is_the_same_without_the_skewed_spans(world: World) -> None:
    config = load_config(world.dir / "llmdeck.toml")
    seen = []
    for path in (world.base, world.skewed):
        with Cache.open(path, read_only=True) as cache:
            backend = Backend(cache, config, lambda: world.at)
            seen.append([_plain(backend.fetch(v).snapshot) for v in VIEWS])
    for view, base, skewed in zip(VIEWS, *seen, strict=True):
        assert _differences(base, skewed) == [], view


def test_cache_info_keeps_the_span_range_to_now_and_counts_the_rest(world: World) -> None:
    with Cache.open(world.base, read_only=True) as cache:
        base = cache_info(cache.cursor(), str(world.base))
    with Cache.open(world.skewed, read_only=True) as cache:
        info = cache_info(cache.cursor(), str(world.skewed))
    assert (info.first_span, info.last_span) == (base.first_span, base.last_span)
    from console.cache.queries import newest_span  # the newest span of now, for the console

    with Cache.open(world.skewed, read_only=True) as cache:
        assert newest_span(cache.cursor(), world.at) == base.last_span
    assert (info.spans, info.future_spans, info.past_spans) == (RECENT + FUTURE + PAST, FUTURE, PAST)
    assert info.earliest_span == datetime(1970, 1, 1, 0, 0, 5)
    text = info.outside_range()
    assert text is not None and text.startswith("9 dated in the future (up to ")
    assert "5 older than " in text and text.endswith("(a host clock may be wrong)")
    done = cli("--cache", str(world.skewed), "cache", "info", "--json", env=world.env)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert (shown["future_spans"], shown["past_spans"]) == (FUTURE, PAST)
    assert shown["first_span"] == base.first_span.isoformat()
    done = cli("--cache", str(world.skewed), "cache", "info", env=world.env)
    assert done.returncode == 0, done.stderr
    assert f"span range     {base.first_span} .. {base.last_span} (UTC)\n" in done.stdout
    assert f"outside range  {text}\n" in done.stdout


def test_a_span_from_1970_does_not_make_compaction_scan_the_years_between(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache_path = tmp_path / "c.duckdb"
    shutil.copy(world.base, cache_path)
    # more traffic in the same hours (so partial rollup rows need merging) and one span from 1970
    requests = _recent(world.now_ns, 2_000, seed=21)
    requests[0]["resourceSpans"][0]["scopeSpans"][0]["spans"].append(_skewed_spans(0, 5)[-1])
    path = tmp_path / "more.jsonl"
    path.write_bytes(_lines(requests))
    ranges: list[tuple[datetime, datetime]] = []
    real = rollups.compact

    def spy(cur: Any, start: datetime, end: datetime) -> None:
        ranges.append((start, end))
        real(cur, start, end)

    monkeypatch.setattr(rollups, "compact", spy)
    config = load_config(world.dir / "llmdeck.toml")
    with Cache.open(cache_path) as cache:
        report = Ingestor(cache, config, workers=1).run([path])
        cur = cache.cursor()
        dims = ", ".join(rollups.ROLLUP_DIMS)
        leftover = cur.execute(
            f"SELECT count(*) FROM (SELECT ts, {dims} FROM rollup_minute"
            f" GROUP BY ts, {dims} HAVING count(*) > 1)").fetchall()[0][0]
        spans, minute = cur.execute(
            "SELECT (SELECT count(*) FROM spans WHERE start_time > TIMESTAMP '2000-01-01'),"
            " (SELECT sum(requests) FROM rollup_minute)").fetchall()[0]
    assert report.spans_stored == 2_001
    assert ranges, "the ingest compacted nothing"
    widest = max(end - start for start, end in ranges)
    assert widest < timedelta(days=2), f"compaction scanned {widest} of rollups: {ranges}"
    assert leftover == 0, "partial rollup rows left unmerged"
    assert minute == spans == RECENT + 2_000  # the 1970 span's rollups fall to the retention
    assert report.past == 1
    # the same spans again (under another name, so read from the start): every one a duplicate
    again = tmp_path / "again.jsonl"
    shutil.copy(path, again)
    with Cache.open(cache_path) as cache:
        report = Ingestor(cache, config, workers=1).run([again])
    assert (report.spans_stored, report.duplicates) == (0, 2_001)


def test_a_start_time_a_timestamp_cannot_hold_is_quarantined_not_fatal(world: World) -> None:
    spans = _skewed_spans(world.now_ns, seed=31)[:2]  # two good (if future) spans
    bad = dict(spans[0], spanId="00000000000000ff", startTimeUnixNano="9300000000000000000")
    path = world.dir / "overflow.jsonl"
    path.write_bytes(_lines([export_request([[spans[0], bad, spans[1]]])]))
    fresh = world.dir / "overflow.duckdb"
    done = cli("--cache", str(fresh), "ingest", str(path), env=world.env)
    assert "Traceback" not in done.stderr and "error" not in done.stderr, done.stderr
    assert done.returncode == 0
    assert "2 spans read, 2 stored, 0 duplicates, 1 quarantined" in done.stdout
    assert ("startTimeUnixNano 9300000000000000000 is out of range (not a time from 1970 to 2262)"
            in done.stdout)
    with Cache.open(fresh, read_only=True) as cache:
        assert cache.cursor().execute("SELECT count(*) FROM spans").fetchall()[0][0] == 2


@pytest.mark.slow
def test_worker_processes_count_the_skewed_spans_too(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "all.jsonl"
    path.write_bytes((world.dir / "recent.jsonl").read_bytes()
                     + (world.dir / "skewed.jsonl").read_bytes())
    monkeypatch.setattr(ingest_mod, "PARALLEL_MIN_BYTES", 0)  # map this small file in workers
    config = load_config(world.dir / "llmdeck.toml")
    with Cache.open(tmp_path / "w.duckdb") as cache:
        ingestor = Ingestor(cache, config, workers=2, processes=True)
        ingestor.batch_spans = 500  # several chunks, from both workers
        report = ingestor.run([path])
    assert (report.spans_stored, report.future, report.past) == (RECENT + FUTURE + PAST, FUTURE, PAST)
    assert report.past_earliest == "1970-01-01T00:00Z"
