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
import time

import pytest

from tests.reliability.faultkit import check_cache, spawn, write_traffic

SPANS = 60_000
MIN_KILLS = 8
MIN_MID_RUN_KILLS = 3  # kills that land after this run has committed something
BATCH = 2_000
# A full run takes ~4 s on a 2-core machine, most of the first second spent starting up
# (and spawning the decode workers); delays over the whole run put kills between commits.
KILL_AFTER = (0.3, 3.0)
ENV = {"LLMDECK_INGEST__BATCH_SPANS": str(BATCH)}

pytestmark = pytest.mark.slow


def test_sigkill_at_random_points_loses_nothing_and_duplicates_nothing(tmp_path):
    traffic = write_traffic(tmp_path / "traffic.jsonl", SPANS, seed=42)
    rng = random.Random(20261124)
    kills, mid_run, rounds, runs = 0, 0, 0, 0
    history: list[list[int]] = []
    cache_path = tmp_path / "round0.duckdb"
    last = 0
    started = time.monotonic()
    while (kills < MIN_KILLS or mid_run < MIN_MID_RUN_KILLS) and runs < 40:
        runs += 1
        proc = spawn("--cache", cache_path, "ingest", traffic.path, "--json", env=ENV)
        try:
            out, err = proc.communicate(timeout=rng.uniform(*KILL_AFTER))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own process group: helpers too
            out, err = proc.communicate()
        if proc.returncode == -signal.SIGKILL:
            kills += 1
        else:
            assert proc.returncode == 0, err
            assert '"spans_stored"' in out
        stored = check_cache(cache_path, traffic).spans
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
    proc = spawn("--cache", cache_path, "ingest", traffic.path, "--json", env=ENV)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    report = json.loads(out)
    assert report["spans_read"] == SPANS - last
    assert report["duplicates"] == 0 and report["quarantined"] == 0
    assert check_cache(cache_path, traffic).spans == SPANS
    # what each run left behind, for the record in the test log
    print(f"T1: {kills} SIGKILLs ({mid_run} between commits) over {runs} runs in"
          f" {time.monotonic() - started:.1f}s; stored after each run, by round: {history}")
