"""SIGKILL `llmdeck ingest` at random moments; nothing stored is lost, nothing is doubled.

~60k synthetic spans in a Collector JSON-lines file, committed in batches of
2,000 (`LLMDECK_INGEST__BATCH_SPANS`), so a run makes ~30 commits. The same
command is started again and again and killed after a seeded random delay.
After every kill the cache must open and hold whole batches only: no
duplicate spans, rollups equal to the spans (committed in the same
transaction), a stored file offset that matches exactly the lines stored, and
a span count that never goes down. A last run completes the job.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from console.cache.store import Cache
from console.demo.traffic import TrafficModel, export_requests, write_collector_jsonl

ROOT = Path(__file__).resolve().parents[2]
SPANS = 60_000
MIN_KILLS = 8
MIN_MID_RUN_KILLS = 3  # kills that land after this run has committed something
BATCH = 2_000
# A full run takes ~4 s on a 2-core machine, most of the first second spent starting up
# (and spawning the decode workers); delays over the whole run put kills between commits.
KILL_AFTER = (0.3, 3.0)

pytestmark = pytest.mark.slow


def _write_traffic(path: Path) -> tuple[list[int], list[int]]:
    """The file, and per line: its span count and the byte offset just after it."""
    end = time.time_ns() // 60_000_000_000 * 60_000_000_000  # recent: inside rollup retention
    write_collector_jsonl(str(path), export_requests(
        TrafficModel(seed=42), end - 6 * 3600 * 10**9, end, SPANS, 200))
    counts, offsets, offset = [], [], 0
    with path.open("rb") as f:
        for line in f:
            offset += len(line)
            counts.append(line.count(b'"spanId"'))
            offsets.append(offset)
    assert sum(counts) == SPANS
    return counts, offsets


def _check(cache_path: Path, path: Path, counts: list[int], offsets: list[int]) -> int:
    """Assert the cache is consistent after a kill; return the number of spans stored."""
    if not cache_path.exists():  # killed before it created the cache: nothing stored, nothing lost
        return 0
    with Cache.open(cache_path, read_only=True) as cache:
        assert cache.recovery is None  # a kill never needs the WAL moved aside
        cur = cache.cursor()
        spans, distinct = cur.execute(
            "SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM spans").fetchall()[0]
        minute = cur.execute("SELECT coalesce(sum(requests), 0) FROM rollup_minute").fetchall()
        hour = cur.execute("SELECT coalesce(sum(requests), 0) FROM rollup_hour").fetchall()
        files = cur.execute("SELECT path, byte_offset, line FROM ingest_files").fetchall()
        quarantined = cur.execute("SELECT count(*) FROM quarantine").fetchall()[0][0]
    assert spans == distinct, "duplicate spans after a kill"
    assert minute[0][0] == spans and hour[0][0] == spans, "rollups and spans disagree"
    assert quarantined == 0
    if spans:
        # the file's offset is committed with its spans: it covers exactly the lines stored
        ((stored_path, offset, line),) = files
        assert stored_path == str(path)
        assert offset == offsets[line - 1]
        assert spans == sum(counts[:line])
    return int(spans)


def _start(cache_path: Path, path: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "LLMDECK_INGEST__BATCH_SPANS": str(BATCH)}
    return subprocess.Popen(
        [sys.executable, "-m", "console.cli", "--cache", str(cache_path), "ingest", str(path),
         "--json"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group: the kill takes any helpers too
    )


def test_sigkill_at_random_points_loses_nothing_and_duplicates_nothing(tmp_path):
    path = tmp_path / "traffic.jsonl"
    counts, offsets = _write_traffic(path)
    rng = random.Random(20261124)
    kills, mid_run, rounds, runs = 0, 0, 0, 0
    history: list[list[int]] = []
    cache_path = tmp_path / "round0.duckdb"
    last = 0
    started = time.monotonic()
    while (kills < MIN_KILLS or mid_run < MIN_MID_RUN_KILLS) and runs < 40:
        runs += 1
        proc = _start(cache_path, path)
        try:
            out, err = proc.communicate(timeout=rng.uniform(*KILL_AFTER))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        if proc.returncode == -signal.SIGKILL:
            kills += 1
        else:
            assert proc.returncode == 0, err
            assert '"spans_stored"' in out
        stored = _check(cache_path, path, counts, offsets)
        assert stored >= last, f"stored count went down: {last} -> {stored}"
        if proc.returncode == -signal.SIGKILL and last < stored < SPANS:
            mid_run += 1
        last = stored
        if len(history) <= rounds:
            history.append([])
        history[rounds].append(stored)
        if stored == SPANS:  # done before enough kills: start over on a fresh cache
            rounds += 1
            cache_path = tmp_path / f"round{rounds}.duckdb"
            last = 0
    assert kills >= MIN_KILLS, f"only {kills} kills landed in {runs} runs"
    assert mid_run >= MIN_MID_RUN_KILLS, f"only {mid_run} kills landed between commits: {history}"

    # The same command completes the job: it resumes from the stored offset (re-reading
    # nothing already stored) and ends with every span exactly once.
    proc = _start(cache_path, path)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    report = json.loads(out)
    assert report["spans_read"] == SPANS - last
    assert report["duplicates"] == 0 and report["quarantined"] == 0
    assert _check(cache_path, path, counts, offsets) == SPANS
    # what each run left behind, for the record in the test log
    print(f"T1: {kills} SIGKILLs ({mid_run} between commits) over {runs} runs in"
          f" {time.monotonic() - started:.1f}s; stored after each run, by round: {history}")
