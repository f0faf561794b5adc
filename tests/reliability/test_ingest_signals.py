"""Signals sent to the real `llmdeck ingest` mid-run: a clean stop, then an exact resume.

A Collector JSON-lines file over PARALLEL_MIN_BYTES (so the ingest maps it in
worker processes, with multiprocessing's resource tracker beside them),
committed in batches of 2,000 spans. Each case starts the real command, waits
until its workers run and a first batch is committed (the WAL grows), and
sends a signal the way it comes in life: SIGTERM to the process alone
(`kill`, `timeout`) or to its group (a service manager), SIGINT to the group
(Ctrl-C), SIGHUP to the group (a closed terminal or SSH session). Then: exit
code 128 + the signal, one line on stderr saying how far it got, no
traceback, no process of its tree left, the cache holding exactly what the
line says, and the same command completing the file exactly. SIGKILL to the
parent alone (the OOM killer) must leave no worker or tracker behind either.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from console.cache.ingest import PARALLEL_MIN_BYTES
from tests.reliability.faultkit import (
    DEADLINE,
    ROOT,
    Traffic,
    Tree,
    check_cache,
    children,
    cmdline,
    kill_tree,
    readline,
    spawn,
    wait_gone,
    write_traffic,
)

SPANS = 100_000
ENV = {"LLMDECK_INGEST__BATCH_SPANS": "2000"}
REACHED = (r"(?P<spans>[\d,]+) spans stored, (?P<path>.+) read up to byte (?P<offset>[\d,]+) of"
           r" (?P<size>[\d,]+) \([\d.]+%\); run the same command again to resume where it"
           r" stopped \(nothing is stored twice\)")
STOP_LINE = re.compile(r"llmdeck: ingest stopped by (?P<sig>SIG[A-Z]+): " + REACHED)
AT_ONCE_LINE = re.compile(r"llmdeck: ingest stopped at once by a second (?P<sig>SIG[A-Z]+): "
                          + REACHED)
AT_ONCE_BEFORE_A_COMMIT = re.compile(
    r"llmdeck: ingest stopped at once by a second (?P<sig>SIG[A-Z]+): nothing stored yet; run the"
    r" same command again to resume where it stopped \(nothing is stored twice\)")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Traffic:
    """A file big enough for worker processes, with its per-line span counts and offsets."""
    traffic = write_traffic(tmp_path_factory.mktemp("signals") / "traffic.jsonl", SPANS, seed=10)
    assert traffic.size >= PARALLEL_MIN_BYTES, "the file must be big enough for worker processes"
    return traffic


def _start(cache_path: Path, traffic: Traffic) -> subprocess.Popen[str]:
    return spawn("--cache", cache_path, "ingest", traffic.path, env=ENV)


def _wait_for_workers(proc: subprocess.Popen[str], cache_path: Path, tree: Tree) -> None:
    """Until two workers and the resource tracker run and a batch is committed; every process
    seen goes into `tree` (the caller's: it kills them even when this wait fails)."""
    wal = cache_path.with_name(cache_path.name + ".wal")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        lines = [cmdline(pid) for pid in children(proc.pid, tree)]
        workers = sum("spawn_main" in c for c in lines)
        tracker = any("resource_tracker" in c for c in lines)
        # DuckDB writes the WAL as it commits: a first batch is being committed (or is)
        committed = wal.exists() and wal.stat().st_size > 512 * 1024
        if workers >= 2 and tracker and committed:
            return
        time.sleep(0.02)
    raise AssertionError(f"the ingest never ran its workers: rc={proc.poll()} tree={tree}")


def _resume(cache_path: Path, traffic: Traffic, before: int) -> None:
    """The same command again: it reads only what was not stored, and completes the file."""
    proc = _start(cache_path, traffic)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert out.startswith(f"1 file(s): {SPANS - before:,} spans read, {SPANS - before:,} stored,"
                          " 0 duplicates"), out
    assert check_cache(cache_path, traffic).spans == SPANS


@pytest.mark.parametrize(("signum", "group"), [
    (signal.SIGTERM, False),  # kill, timeout
    (signal.SIGTERM, True),  # a service manager stopping its unit
    (signal.SIGINT, True),  # Ctrl-C
    (signal.SIGHUP, True),  # the terminal or the SSH session went away
], ids=["SIGTERM", "SIGTERM-group", "SIGINT-group", "SIGHUP-group"])
def test_a_signal_stops_the_ingest_cleanly_and_the_rerun_resumes(tmp_path, traffic, signum, group):
    cache_path = tmp_path / "cache.duckdb"
    proc = _start(cache_path, traffic)
    tree: Tree = {}
    try:
        _wait_for_workers(proc, cache_path, tree)
        (os.killpg if group else os.kill)(proc.pid, signum)
        out, err = proc.communicate(timeout=60)
        left = wait_gone(tree)
    finally:
        proc.kill()
        kill_tree(tree)
    name = signal.Signals(signum).name
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in err and out == ""
    assert not left, f"left running after {name}: {left}"
    lines = err.splitlines()
    assert len(lines) == 1, err
    match = STOP_LINE.fullmatch(lines[0])
    assert match, lines[0]
    assert match["sig"] == name and match["path"] == str(traffic.path)
    said = int(match["spans"].replace(",", ""))
    assert 0 < said < SPANS, "the signal was meant to land mid-run"
    assert check_cache(cache_path, traffic) == (said, int(match["offset"].replace(",", "")))
    _resume(cache_path, traffic, said)


def test_a_hangup_sent_twice_still_stops_cleanly(tmp_path, traffic):
    """A closed terminal sends SIGHUP and its shell sends it again: not an impatient user."""
    cache_path = tmp_path / "cache.duckdb"
    proc = _start(cache_path, traffic)
    tree: Tree = {}
    try:
        _wait_for_workers(proc, cache_path, tree)
        os.killpg(proc.pid, signal.SIGHUP)
        time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGHUP)
        out, err = proc.communicate(timeout=60)
        left = wait_gone(tree)
    finally:
        proc.kill()
        kill_tree(tree)
    assert proc.returncode == 129, err
    assert "Traceback" not in err and out == "" and not left
    lines = err.splitlines()
    assert len(lines) == 1, err
    match = STOP_LINE.fullmatch(lines[0])
    assert match and match["sig"] == "SIGHUP", lines[0]
    said = int(match["spans"].replace(",", ""))
    assert check_cache(cache_path, traffic) == (said, int(match["offset"].replace(",", "")))
    _resume(cache_path, traffic, said)


def test_a_second_signal_while_stopping_exits_at_once(tmp_path, traffic):
    cache_path = tmp_path / "cache.duckdb"
    proc = _start(cache_path, traffic)
    tree: Tree = {}
    try:
        _wait_for_workers(proc, cache_path, tree)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C, and again: impatient
        time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        left = wait_gone(tree)
    finally:
        proc.kill()
        kill_tree(tree)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and out == ""
    assert not left, f"left running after two SIGINTs: {left}"
    lines = err.splitlines()  # the line for a stop at once, and no other
    assert len(lines) == 1, err
    match = AT_ONCE_LINE.fullmatch(lines[0])
    if match:
        assert match["path"] == str(traffic.path)
        said = int(match["spans"].replace(",", ""))
    else:  # the first commit was still under way when the second signal ended the run (seen in CI)
        match = AT_ONCE_BEFORE_A_COMMIT.fullmatch(lines[0])
        said = 0
    assert match and match["sig"] == "SIGINT", lines[0]
    # said before the exit: a commit under way then may still have ended (whole)
    stored = check_cache(cache_path, traffic).spans
    assert said <= stored < SPANS
    _resume(cache_path, traffic, stored)


def test_sigkill_to_the_parent_alone_leaves_no_worker_behind(tmp_path, traffic):
    cache_path = tmp_path / "cache.duckdb"
    proc = _start(cache_path, traffic)
    tree: Tree = {}
    try:
        _wait_for_workers(proc, cache_path, tree)
        os.kill(proc.pid, signal.SIGKILL)  # as the OOM killer: the parent alone, no goodbye
        proc.wait(timeout=60)  # (its children may hold its stdout and stderr open)
        left = wait_gone(tree)
    finally:
        proc.kill()
        kill_tree(tree)
        proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not left, f"left running {DEADLINE:.0f}s after the parent was killed: {left}"
    _resume(cache_path, traffic, check_cache(cache_path, traffic).spans)


BACKFILL = """if 1:
    import sys, time
    from pathlib import Path
    from console.demo import generate
    from console.demo.backfill import PartFiles, plan_parts
    plan = generate.TrafficPlan(seed=3, rate=0.5)
    live = generate.chunk_of(time.time_ns())
    parts = plan_parts(plan, live - 7 * 24 * 360, live, Path(sys.argv[1]))  # a week
    files = PartFiles(plan, parts, workers=2)
    files.ready(0)
    files.ready(1)  # the writer process starts on the older parts now
    print("started", flush=True)
    files.ready(len(parts) - 1)
"""


def test_sigkill_to_the_demo_leaves_no_backfill_writer_behind(tmp_path):
    """The demo's backfill writer process goes with its parent too (no waiting for its file)."""
    proc = subprocess.Popen([sys.executable, "-c", BACKFILL, str(tmp_path)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    tree: Tree = {}
    try:
        assert proc.stdout is not None and readline(proc.stdout, 60) == "started\n"
        children(proc.pid, tree)
        assert any("spawn_main" in cmdline(pid) for pid in tree), "no writer process running"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        left = wait_gone(tree)
    finally:
        proc.kill()
        kill_tree(tree)
        proc.communicate(timeout=60)
    assert not left, f"left running {DEADLINE:.0f}s after the demo was killed: {left}"
