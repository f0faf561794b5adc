"""The `llmdeck demo` simulator: clock, determinism, backfill, live steps, the scripted incident."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from console.cache.ingest import Ingestor
from console.cache.store import Cache
from console.config import Config
from console.demo import generate
from console.demo.clock import SimClock
from console.demo.config import DEMO_BUDGETS, DEMO_SLOS, demo_config
from console.demo.live_link import LiveLink, LiveRefused
from console.demo.simulator import Simulator, to_ns
from console.slo import AlertLevel
from console.snapshots import BudgetLevel
from console.writers import ReceiverHost

# 03:00 UTC is the diurnal trough: the fewest requests per window, the hardest case for burn rates.
START = datetime(2026, 3, 4, 3, 0, 0)


class FakeWall:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


# ---------------------------------------------------------------------------
# SimClock
# ---------------------------------------------------------------------------


def test_clock_runs_at_speed_and_freezes() -> None:
    wall = FakeWall()
    clock = SimClock(START, speed=60, wall=wall)
    assert clock.now() == START and clock() == START
    wall.t += 2.5
    assert clock.now() == START + timedelta(seconds=150)
    frozen = clock.freeze()
    assert frozen == START + timedelta(seconds=150) and clock.frozen
    wall.t += 100
    assert clock.now() == frozen  # a frozen clock never moves
    clock.set(START + timedelta(hours=1))
    wall.t += 100
    assert clock.now() == START + timedelta(hours=1)
    assert clock.advance(timedelta(minutes=5)) == START + timedelta(hours=1, minutes=5)
    assert clock.now() == START + timedelta(hours=1, minutes=5)


def test_clock_takes_aware_times_as_utc_and_rejects_bad_speeds() -> None:
    paris = timezone(timedelta(hours=1))
    clock = SimClock(datetime(2026, 3, 4, 4, 0, tzinfo=paris), wall=FakeWall())
    assert clock.now() == START and clock.now().tzinfo is None
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            SimClock(START, speed=bad)


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


@dataclass
class Demo:
    sim: Simulator
    cache: Cache
    config: Config
    clock: SimClock
    spool: Path
    receiver: ReceiverHost
    """The console's receiver as `llmdeck demo` runs it: the live traffic goes there."""

    def close(self) -> None:
        """As `llmdeck demo` ends: the receiver first, then the simulator, then the cache."""
        self.receiver.close()
        self.sim.close()
        self.cache.close()

    def sql(self, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.cache.cursor().execute(query, params or []).fetchall()

    def ids(self) -> list[tuple[str, str]]:
        return [(a, b) for a, b in self.sql("SELECT trace_id, span_id FROM spans ORDER BY 1, 2")]


def make_demo(tmp: Path, *, seed: int = 7, backfill: timedelta = timedelta(hours=3),
              start: datetime = START, **kw: Any) -> Demo:
    tmp.mkdir(parents=True, exist_ok=True)
    config = demo_config(tmp / "cache.duckdb")
    cache = Cache.open(tmp / "cache.duckdb")
    clock = SimClock(start, 1.0, wall=FakeWall())
    sim = Simulator(cache, config, tmp / "spool", seed=seed, clock=clock, backfill=backfill, **kw)
    return Demo(sim, cache, config, clock, tmp / "spool", live_receiver(sim))


def live_receiver(sim: Simulator) -> ReceiverHost:
    """A receiver on a free loopback port writing under the simulator's lock; the live traffic
    goes there (as in console/launch.py run_demo)."""
    host = ReceiverHost(sim.cache, sim.config, sim.writing, host="127.0.0.1", port=0)
    host.start()
    sim.send_live_to(host.url, before_release=host.release_cache)
    return host


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    d = make_demo(tmp_path)
    yield d
    d.close()


# ---------------------------------------------------------------------------
# determinism, backfill, live steps
# ---------------------------------------------------------------------------


def test_same_seed_and_start_give_the_same_spans_whatever_the_step_pattern(tmp_path: Path) -> None:
    a = make_demo(tmp_path / "a")
    b = make_demo(tmp_path / "b")
    c = make_demo(tmp_path / "c", seed=8)
    try:
        inc = a.sim.incident.start
        end = inc + timedelta(minutes=4, seconds=7)  # into the incident: retries and fallbacks too
        for d in (a, b, c):
            d.sim.backfill()
        a.sim.step(end)  # one big step ...
        t = START
        while t < end:  # ... against many small, irregular ones
            t = min(end, t + timedelta(seconds=13.7))
            b.sim.step(t)
        c.sim.step(end)
        ids_a, ids_b = a.ids(), b.ids()
        assert len(ids_a) > 1_000
        assert ids_a == ids_b
        assert set(c.ids()).isdisjoint(ids_a)  # another seed, other traffic
        stats = "SELECT count(*), sum(cost_usd), count(*) FILTER (WHERE status = 'error') FROM spans"
        assert a.sql(stats) == b.sql(stats)
        assert a.sim.generated_until == b.sim.generated_until
    finally:
        for d in (a, b, c):
            d.close()


def test_backfill_covers_the_whole_week(tmp_path: Path) -> None:
    d = make_demo(tmp_path, backfill=timedelta(days=7))
    try:
        ticks: list[Any] = []
        report = d.sim.backfill(progress=ticks.append)
        print(f"week backfill: {report.spans_stored:,} spans in {report.seconds:.2f} s")
        assert not report.errors and report.duplicates == 0 and report.quarantined == 0
        # newest first: the last hour, the last 6 h, the last day, then 12 h at a time
        assert [t.depth for t in ticks] == [timedelta(hours=1), timedelta(hours=6)] + [
            timedelta(hours=h) for h in range(24, 7 * 24 + 1, 12)]
        assert [t.oldest for t in ticks] == [START - t.depth for t in ticks]
        assert ticks[-1].parts_done == ticks[-1].parts == 15 and ticks[-1].done
        assert not any(t.done for t in ticks[:-1])
        assert ticks[-1].spans_stored == report.spans_stored
        assert ticks[0].describe() == "last 1 h of 7 days loaded"
        assert ticks[3].describe() == "1 day 12 h of 7 days loaded"
        assert ticks[6].describe() == "day 3/7 loaded"
        first, last, n = d.sql("SELECT min(start_time), max(start_time), count(*) FROM spans")[0]
        week = START - timedelta(days=7)
        assert week <= first < week + timedelta(minutes=5)
        assert START - timedelta(minutes=5) < last < START + timedelta(minutes=2)  # retries spill over
        # ~0.2 requests/s on average, a few more spans for retries
        assert 0.18 * 7 * 86_400 < n < 0.23 * 7 * 86_400
        assert n == report.spans_stored
        hours = d.sql("SELECT count(DISTINCT ts) FROM rollup_hour_svc WHERE ts < ?", [START])[0][0]
        assert hours == 7 * 24  # every hour of the week has traffic
        # even at night, the SLO-scoped providers have traffic in (nearly) every 5-minute window
        # and dozens of requests in every hour
        windows = d.sql(
            """
            SELECT provider, count(*) FILTER (WHERE n5 > 0), min(n5) FROM (
                SELECT provider, time_bucket(INTERVAL 5 MINUTE, ts) AS w, sum(requests) AS n5
                FROM rollup_minute_svc WHERE ts >= ? AND ts < ? GROUP BY ALL)
            GROUP BY provider
            """, [week + timedelta(hours=1), START - timedelta(hours=1)])
        busy = {p: n for p, n, _ in windows}
        assert set(busy) == {"anthropic", "gcp.gemini", "mistral_ai", "openai"}
        all_windows = (7 * 24 - 2) * 12
        assert busy["openai"] == all_windows and busy["anthropic"] >= 0.995 * all_windows
        hourly = dict(d.sql(
            "SELECT provider, min(n) FROM (SELECT provider, ts, sum(requests) AS n FROM rollup_hour_svc"
            " WHERE ts >= ? AND ts < ? GROUP BY ALL) GROUP BY provider",
            [week + timedelta(hours=1), START - timedelta(hours=1)]))
        assert hourly["anthropic"] >= 30 and hourly["openai"] >= 60
        assert len(list(d.spool.glob("demo-backfill-*.jsonl"))) == 15
        # a second backfill (same seed, start) reuses the files and stores nothing new
        again = d.sim.backfill()
        assert again.spans_stored == 0 and again.duplicates == 0
    finally:
        d.close()


def _backfill_the_old_way(d: Demo) -> None:
    """What `backfill()` did before it went newest first: whole days, oldest first."""
    from console.cache.ingest import Ingestor

    sim = d.sim
    day = 86_400 // generate.CHUNK_SECONDS
    for first in range(sim._backfill_first, sim._live_first, day):
        path = d.spool / f"old-{first}.jsonl"
        generate.write_chunks(sim.plan, first, min(first + day, sim._live_first), path)
        assert not Ingestor(d.cache, d.config, workers=1).run([path]).errors


ROLLUP_SUMS = """
    SELECT ts, provider, model, service, sum(requests), sum(errors), sum(rate_limited),
           sum(fallbacks), sum(input_tokens), sum(output_tokens), sum(cost_usd), sum(latency_sum_ms)
    FROM {table} GROUP BY ALL ORDER BY ALL
"""


def test_background_backfill_goes_newest_first_and_stores_what_the_old_path_stored(
    tmp_path: Path,
) -> None:
    new = make_demo(tmp_path / "new", backfill=timedelta(days=2))
    old = make_demo(tmp_path / "old", backfill=timedelta(days=2))
    try:
        seen: list[tuple[timedelta, datetime, datetime, str]] = []

        def tick(p: Any) -> None:  # on the backfill's thread, after each part
            oldest, newest = new.sql("SELECT min(start_time), max(start_time) FROM spans")[0]
            seen.append((p.depth, oldest, newest, new.sim.source_status().detail))

        new.sim.start_backfill(tick)
        assert new.sim.wait_backfill(timeout=300) and new.sim.backfill_done
        # the recent hours are in before anything older: the overview's 5m/1h/6h first
        assert [depth for depth, *_ in seen] == [
            timedelta(hours=h) for h in (1, 6, 24, 36, 48)]
        for depth, oldest, newest, _ in seen:
            assert START - depth <= oldest < START - depth + timedelta(minutes=5)
            assert newest > START - timedelta(minutes=5)
        assert seen[0][3].startswith("backfilling, newest first: last 1 h of 2 days loaded: ")
        assert seen[2][3].startswith("backfilling, newest first: day 1/2 loaded: ")
        assert seen[3][3].startswith("backfilling, newest first: 1 day 12 h of 2 days loaded: ")
        assert "backfilling" not in seen[-1][3] and new.sim.source_status().state == "live"

        _backfill_the_old_way(old)
        assert new.sql("SELECT count(*) FROM spans") == old.sql("SELECT count(*) FROM spans")
        # every column but `source` (the file and line a span was read from)
        everything = "SELECT * EXCLUDE (source) FROM spans ORDER BY trace_id, span_id"
        rows = new.sql(everything)
        assert len(rows) > 30_000 and rows == old.sql(everything)
        for table in ("rollup_minute", "rollup_hour", "rollup_minute_svc", "rollup_hour_svc"):
            query = ROLLUP_SUMS.format(table=table)
            if table.endswith("_svc"):
                query = query.replace(" model, ", " ")
            got, want = new.sql(query), old.sql(query)
            assert [r[:-2] for r in got] == [r[:-2] for r in want], table
            # float sums in another order: equal to the last few bits
            assert [r[-2:] for r in got] == [pytest.approx(r[-2:], rel=1e-9) for r in want], table
    finally:
        for d in (new, old):
            d.sim.close()
            d.close()


def test_a_failed_background_backfill_stays_in_the_source_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    d = make_demo(tmp_path, backfill=timedelta(hours=3))
    try:
        def broken(*_: Any) -> int:
            raise OSError("disk full")

        monkeypatch.setattr(generate, "write_chunks", broken)
        d.sim.start_backfill()
        deadline = time.monotonic() + 120  # polling for the failure, not a timing assertion
        while d.sim.source_status().state != "down" and time.monotonic() < deadline:
            time.sleep(0.01)
        d.sim.close()  # joins the backfill's thread, which stopped at its first part
        st = d.sim.source_status()
        assert not d.sim.backfill_done and st.state == "down"  # nothing ever succeeded
        assert st.detail == "OSError: disk full"
        assert d.sim._backfill_note == "backfill stopped: OSError: disk full"
    finally:
        d.close()


def test_close_stops_a_background_backfill_between_parts(tmp_path: Path) -> None:
    d = make_demo(tmp_path, backfill=timedelta(days=2))
    try:
        ticks: list[Any] = []
        closed = threading.Event()

        def tick(p: Any) -> None:
            ticks.append(p)
            d.sim.close()  # after the first part, as the app's exit could, from any thread
            closed.set()

        d.sim.start_backfill(tick)
        assert closed.wait(timeout=120)
        d.sim.close()  # joins the backfill's thread
        assert len(ticks) == 1 and not d.sim.backfill_done
        assert d.sql("SELECT min(start_time) FROM spans")[0][0] >= START - timedelta(hours=1)
        with pytest.raises(RuntimeError):
            d.sim.step(START + timedelta(minutes=1))
        with pytest.raises(RuntimeError):
            d.sim.start_backfill()
    finally:
        d.close()


def test_live_steps_send_only_new_data_to_the_receiver(demo: Demo) -> None:
    sim = demo.sim
    backfilled = sim.backfill().spans_stored
    assert backfilled > 0
    assert sim.step(START) is None  # nothing complete yet
    total = backfilled
    requests = 0
    for minutes in (1, 2, 2, 5, 9):
        report = sim.step(START + timedelta(minutes=minutes))
        if report is None:
            continue
        assert report.requests >= 1 and report.spans_sent > 0 and report.rejected == 0
        total += report.spans_sent
        requests += report.requests
        # acknowledged means stored: every span sent is in the cache once step() returns
        assert demo.sql("SELECT count(*) FROM spans")[0][0] == total
    assert sim.step(START + timedelta(minutes=9)) is None  # repeated: nothing new
    n, distinct = demo.sql("SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM spans")[0]
    assert n == distinct == total
    stats = demo.receiver.source_status()
    assert stats.state == "live"
    assert f"{requests} requests, {total - backfilled:,} spans stored" in stats.detail
    live = demo.sql("SELECT count(*) FROM spans WHERE start_time >= ?", [START])[0][0]
    assert live == total - backfilled
    assert not list(demo.spool.glob("demo-live-*"))  # the live traffic never touched a file
    assert sim.generated_until == START + timedelta(minutes=9)
    # the clock drives the default target
    demo.clock.set(START + timedelta(minutes=10))
    sim.step()
    assert sim.generated_until == START + timedelta(minutes=10)


def test_live_steps_store_what_the_files_would_have(tmp_path: Path) -> None:
    """The same chunks through the receiver (protobuf) and through a file (`llmdeck ingest`):
    the same rows, so the demo's history and its live traffic are one kind of data."""
    d = make_demo(tmp_path / "live", backfill=timedelta(0))
    try:
        end = START + timedelta(minutes=45)  # through the incident: errors, retries, fallbacks
        d.sim.step(end)
        first, last = generate.chunk_of(to_ns(START)), generate.chunk_of(to_ns(end))
        path = tmp_path / "live.jsonl"
        generate.write_chunks(d.sim.plan, first, last, path)
        with Cache.open(tmp_path / "files.duckdb") as files:
            report = Ingestor(files, d.config, workers=1).run([path])
            assert report.spans_stored > 200 and not report.errors
            query = "SELECT * EXCLUDE (source) FROM spans ORDER BY trace_id, span_id"
            assert d.sql(query) == files.cursor().execute(query).fetchall()
            assert d.sql("SELECT DISTINCT source FROM spans") == [("otlp-http 127.0.0.1:1",)]
            assert d.sql("SELECT count(*) FILTER (WHERE status = 'error') > 10,"
                         " count(*) FILTER (WHERE fallback) > 0 FROM spans") == [(True, True)]
    finally:
        d.close()


def test_a_refused_request_is_sent_again_at_the_next_step(demo: Demo) -> None:
    sim = demo.sim
    sim.step(START + timedelta(minutes=1))
    before = demo.ids()
    demo.receiver.close()  # the receiver is gone: nothing is acknowledged
    with pytest.raises(httpx.HTTPError):
        sim.step(START + timedelta(minutes=2))
    status = sim.source_status()
    assert status.state == "stale" and "cannot send live traffic to http://127.0.0.1:" in status.detail
    assert "sent again at the next step" in status.detail
    assert demo.ids() == before and sim.generated_until == START + timedelta(minutes=1)
    demo.receiver = live_receiver(sim)
    sim.step(START + timedelta(minutes=2))
    assert sim.source_status().state == "live" and sim.generated_until == START + timedelta(minutes=2)
    n, distinct = demo.sql("SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM spans")[0]
    assert n == distinct > len(before)


def test_a_second_simulator_on_the_same_spool_and_cache_duplicates_nothing(tmp_path: Path) -> None:
    d = make_demo(tmp_path, backfill=timedelta(hours=1))
    d.sim.backfill()
    d.sim.step(START + timedelta(minutes=3))
    before = d.ids()
    d.receiver.close()
    d.sim.close()
    sim2 = Simulator(d.cache, d.config, d.spool, seed=7, clock=d.clock, backfill=timedelta(hours=1))
    host2 = live_receiver(sim2)
    try:
        assert sim2.backfill().spans_stored == 0
        sim2.step(START + timedelta(minutes=3))
        assert d.ids() == before
        stats = host2.receiver.stats() if host2.receiver is not None else None
        assert stats is not None and stats.spans_stored == 0 and stats.duplicates > 0
        with pytest.raises(RuntimeError):
            d.sim.step(START + timedelta(minutes=4))
    finally:
        host2.close()
        sim2.close()
        d.close()


# ---------------------------------------------------------------------------
# the scripted incident
# ---------------------------------------------------------------------------


def test_incident_starts_a_minute_of_wall_time_after_the_start(tmp_path: Path) -> None:
    config = demo_config(tmp_path / "c.duckdb")
    with Cache.open(tmp_path / "c.duckdb") as cache:
        for speed, delay in ((1, timedelta(seconds=60)), (30, timedelta(minutes=30))):
            clock = SimClock(START, speed, wall=FakeWall())
            inc = Simulator(cache, config, tmp_path / "spool", clock=clock).incident
            assert (inc.provider, inc.start, inc.end) == (
                "anthropic", START + delay, START + delay + timedelta(hours=2))
            assert inc.models == ("claude-sonnet-4-5", "claude-haiku-4-5")
            assert "anthropic" in inc.describe() and inc.active(inc.start)
            assert not inc.active(inc.end)
        clock = SimClock(START, 1, wall=FakeWall())
        custom = Simulator(cache, config, tmp_path / "spool", clock=clock,
                           incident_delay=timedelta(minutes=5)).incident
        assert custom.start == START + timedelta(minutes=5)


@pytest.fixture(scope="module")
def incident_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """A day of history, then live steps (one per sim minute) to 10 minutes into the incident."""
    d = make_demo(tmp_path_factory.mktemp("incident"), backfill=timedelta(days=1))
    d.sim.backfill()
    inc = d.sim.incident
    t = START
    while t < inc.start + timedelta(minutes=10):
        t += timedelta(minutes=1)
        d.sim.step(t)
    yield d
    d.sim.close()
    d.close()


def test_the_incident_makes_anthropic_fail_slowly_after_the_delay(incident_demo: Demo) -> None:
    d = incident_demo
    inc = d.sim.incident
    rows = d.sql(
        """
        SELECT start_time >= ? AS during, count(*),
               avg((status = 'error')::INT), avg(rate_limited::INT),
               median(duration_ms),
               list(DISTINCT http_status) FILTER (WHERE status = 'error')
        FROM spans WHERE provider = 'anthropic' AND start_time >= ? AND start_time < ?
        GROUP BY ALL ORDER BY 1
        """, [inc.start, START - timedelta(hours=6), inc.start + timedelta(minutes=10)])
    (_, n0, err0, _, lat0, _), (_, n1, err1, rl1, lat1, statuses) = rows
    assert n0 > 100 and n1 > 20
    assert err0 < 0.02
    assert err1 > 0.6 and rl1 == err1  # every failure is a 429 or a 529
    assert set(statuses) == {429, 529}
    assert lat1 > 2 * lat0  # ~3x slower
    # no anthropic failure burst before the incident start
    early = d.sql("SELECT count(*) FROM spans WHERE provider = 'anthropic' AND rate_limited"
                  " AND start_time >= ? AND start_time < ?", [START, inc.start])[0][0]
    assert early <= 1
    # the app retries in the same trace, then falls back to OpenAI
    chains = d.sql(
        """
        SELECT trace_id, count(*) AS n, bool_or(fallback AND provider = 'openai') AS fell_back
        FROM spans WHERE start_time >= ? GROUP BY trace_id HAVING bool_or(provider = 'anthropic')
        """, [inc.start])
    assert max(n for _, n, _ in chains) == 4
    assert sum(1 for _, _, fb in chains if fb) > 5
    retried = d.sql("SELECT count(*) FROM spans WHERE start_time >= ?"
                    " AND attributes LIKE '%http.request.resend_count%'", [inc.start])[0][0]
    assert retried > 20


def test_failed_calls_cost_money_during_the_incident(incident_demo: Demo) -> None:
    from console.cache.cost_queries import cost_snapshot

    d = incident_demo
    inc = d.sim.incident
    at = inc.start + timedelta(minutes=10)
    failed_cost, billed = d.sql(
        "SELECT sum(cost_usd), count(*) FILTER (WHERE input_tokens > 0) FROM spans"
        " WHERE status = 'error' AND provider = 'anthropic' AND start_time >= ?", [inc.start])[0]
    assert billed > 10 and failed_cost > 0.01
    before = cost_snapshot(d.cache.cursor(), d.config.budgets, inc.start)
    during = cost_snapshot(d.cache.cursor(), d.config.budgets, at)
    assert during.retry_spend_usd > before.retry_spend_usd + 0.01
    assert during.retry_spend_usd == pytest.approx(
        d.sql("SELECT sum(cost_usd) FROM spans WHERE status = 'error' AND start_time >= ?"
              " AND start_time < ?", [at.replace(hour=0, minute=0, second=0), at])[0][0])


def test_slos_ok_before_the_incident_and_anthropic_pages_within_ten_minutes(
    incident_demo: Demo,
) -> None:
    from console.cache.cost_queries import cost_snapshot
    from console.cache.slo_queries import slo_statuses

    d = incident_demo
    cur = d.cache.cursor()
    inc = d.sim.incident
    for at in (START - timedelta(hours=12), START - timedelta(hours=1), inc.start):
        for status in slo_statuses(cur, d.config.slos, at):
            assert status.level is AlertLevel.OK, (at, status.name, status.reason)
        for budget in cost_snapshot(cur, d.config.budgets, at).budgets:
            assert budget.level is BudgetLevel.OK, (at, budget.name, budget.reason)

    paged: dict[str, datetime] = {}
    for minute in range(1, 11):
        at = inc.start + timedelta(minutes=minute)
        for status in slo_statuses(cur, d.config.slos, at):
            if status.level is AlertLevel.PAGE:
                paged.setdefault(status.name, at)
    final = {s.name: s for s in slo_statuses(cur, d.config.slos, inc.start + timedelta(minutes=10))}
    for name in ("anthropic availability", "anthropic rate limits"):
        status = final[name]
        assert status.level is AlertLevel.PAGE, status.reason
        assert (status.burn("5m") or 0) > 14.4 and (status.burn("1h") or 0) > 14.4
    print({name: str(at - inc.start) for name, at in paged.items()})
    assert paged["anthropic availability"] <= inc.start + timedelta(minutes=6)


# ---------------------------------------------------------------------------
# source status, config
# ---------------------------------------------------------------------------


def test_source_status_live_stale_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [datetime(2026, 1, 1, 12, 0, 0)]
    d = make_demo(tmp_path, backfill=timedelta(minutes=30), wall=lambda: now[0])
    try:
        st = d.sim.source_status()
        assert (st.name, st.kind, st.state) == ("demo simulator", "otlp-files", "stale")
        d.sim.backfill()
        assert d.sim.source_status().state == "live"
        d.sim.step(START + timedelta(minutes=1))
        st = d.sim.source_status()
        assert st.state == "live" and st.last_ok == now[0] and "spans" in st.detail
        now[0] += timedelta(seconds=30)
        st = d.sim.source_status()
        assert st.state == "stale" and st.since == now[0] - timedelta(seconds=20)
        now[0] += timedelta(minutes=2)
        assert d.sim.source_status().state == "down"

        d.sim.step(START + timedelta(minutes=2))
        assert d.sim.source_status().state == "live"

        def refused(*_: Any) -> int:
            raise LiveRefused(503, "cache write failed: disk full", "5")

        monkeypatch.setattr(LiveLink, "send", refused)
        with pytest.raises(LiveRefused):
            d.sim.step(START + timedelta(minutes=3))
        st = d.sim.source_status()
        assert st.state == "stale" and st.since == now[0]
        assert st.detail == ("the receiver did not store live traffic (HTTP 503: cache write failed:"
                             " disk full (Retry-After 5 s)); sent again at the next step")
        now[0] += timedelta(minutes=5)
        assert d.sim.source_status().state == "down"
        monkeypatch.undo()
        d.sim.step(START + timedelta(minutes=3))  # catches up
        assert d.sim.source_status().state == "live"
        assert d.sim.generated_until == START + timedelta(minutes=3)
    finally:
        d.close()


def test_demo_config(tmp_path: Path) -> None:
    config = demo_config(tmp_path / "demo.duckdb")
    assert config.cache.path == tmp_path / "demo.duckdb"
    assert config.cache_file() == tmp_path / "demo.duckdb"
    assert config.ui.refresh_seconds == 1
    assert config.cache.retention_days is None and config.cache.rollup_retention_days is None
    assert list(config.slos) == list(DEMO_SLOS) and list(config.budgets) == list(DEMO_BUDGETS)
    kinds = {s.kind for s in config.slos}
    assert kinds == {"availability", "latency", "ttft", "rate_limit", "fallback"}
    assert {b.period for b in config.budgets} == {"day", "week", "month"}
    assert {b.scope for b in config.budgets} == {"global", "provider", "tenant"}
    # round-trips through validation (what `config check` would see)
    assert Config.model_validate(config.model_dump()) == config
