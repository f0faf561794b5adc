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

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from console.cache.ingest import PARALLEL_MIN_BYTES
from console.cache.store import Cache
from console.demo.traffic import TrafficModel, export_requests, write_collector_jsonl

ROOT = Path(__file__).resolve().parents[2]
SPANS = 100_000
BATCH = 2_000
DEADLINE = 20.0  # seconds: "within a few seconds", generous for a loaded machine
STOP_LINE = re.compile(
    r"llmdeck: ingest stopped by (?P<sig>SIG[A-Z]+): (?P<spans>[\d,]+) spans stored,"
    r" (?P<path>.+) read up to byte (?P<offset>[\d,]+) of (?P<size>[\d,]+) \([\d.]+%\);"
    r" run the same command again to resume where it stopped \(nothing is stored twice\)"
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int], list[int]]:
    """The file, and per line: its span count and the byte offset just after it."""
    path = tmp_path_factory.mktemp("signals") / "traffic.jsonl"
    end = time.time_ns() // 60_000_000_000 * 60_000_000_000  # recent: inside rollup retention
    write_collector_jsonl(str(path), export_requests(
        TrafficModel(seed=10), end - 6 * 3600 * 10**9, end, SPANS, 200))
    counts, offsets, offset = [], [], 0
    with path.open("rb") as f:
        for line in f:
            offset += len(line)
            counts.append(line.count(b'"spanId"'))
            offsets.append(offset)
    assert sum(counts) == SPANS
    assert offset >= PARALLEL_MIN_BYTES, "the file must be big enough for worker processes"
    return path, counts, offsets


def _start(cache_path: Path, path: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "LLMDECK_INGEST__BATCH_SPANS": str(BATCH)}
    return subprocess.Popen(
        [sys.executable, "-m", "console.cli", "--cache", str(cache_path), "ingest", str(path)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group, as a shell job has
    )


def _proc_stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time) of a live process, None if it is gone (or a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] == "Z":
        return None
    return int(fields[1]), fields[19]


def _children(pids: set[int]) -> dict[int, str]:
    """Every live process whose parent is in `pids`: pid -> start time."""
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _proc_stat(int(entry))
            if stat is not None and stat[0] in pids:
                found[int(entry)] = stat[1]
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _wait_for_workers(proc: subprocess.Popen[str], cache_path: Path) -> dict[int, str]:
    """Once two workers and the resource tracker run and a batch is committed: the tree."""
    tree: dict[int, str] = {}
    wal = cache_path.with_name(cache_path.name + ".wal")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        tree.update(_children({proc.pid, *tree}))
        lines = [_cmdline(pid) for pid in tree]
        workers = sum("spawn_main" in c for c in lines)
        tracker = any("resource_tracker" in c for c in lines)
        # DuckDB writes the WAL as it commits: a first batch is being committed (or is)
        committed = wal.exists() and wal.stat().st_size > 512 * 1024
        if workers >= 2 and tracker and committed:
            return tree
        time.sleep(0.02)
    raise AssertionError(f"the ingest never ran its workers: rc={proc.poll()} tree={tree}")


def _left(tree: dict[int, str]) -> dict[int, str]:
    """Which of `tree` still runs (the same process: same pid and start time)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        alive = {pid: _cmdline(pid) for pid, start in tree.items()
                 if (_proc_stat(pid) or (0, ""))[1] == start}
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def _kill_left(tree: dict[int, str]) -> None:
    """Leave nothing behind even when the test fails (old code: orphans forever)."""
    for pid, start in tree.items():
        if (_proc_stat(pid) or (0, ""))[1] == start:
            os.kill(pid, signal.SIGKILL)


def _stored(cache_path: Path, path: Path, counts: list[int], offsets: list[int]) -> tuple[int, int]:
    """Spans stored (each once, rollups agreeing) and the file offset stored with them."""
    if not cache_path.exists():
        return 0, 0
    with Cache.open(cache_path, read_only=True) as cache:
        cur = cache.cursor()
        spans, distinct = cur.execute(
            "SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM spans").fetchall()[0]
        minute = cur.execute("SELECT coalesce(sum(requests), 0) FROM rollup_minute").fetchall()
        files = cur.execute("SELECT path, byte_offset, line FROM ingest_files").fetchall()
    assert spans == distinct, "duplicate spans"
    assert minute[0][0] == spans, "rollups and spans disagree"
    if not files:  # stopped before a first commit
        assert spans == 0
        return 0, 0
    ((stored_path, offset, line),) = files
    assert stored_path == str(path)
    assert offset == offsets[line - 1] and spans == sum(counts[:line])
    return int(spans), int(offset)


def _resume(cache_path: Path, path: Path, counts: list[int], offsets: list[int],
            before: int) -> None:
    """The same command again: it reads only what was not stored, and completes the file."""
    proc = _start(cache_path, path)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert out.startswith(f"1 file(s): {SPANS - before:,} spans read, {SPANS - before:,} stored,"
                          " 0 duplicates"), out
    assert _stored(cache_path, path, counts, offsets)[0] == SPANS


@pytest.mark.parametrize(("signum", "group"), [
    (signal.SIGTERM, False),  # kill, timeout
    (signal.SIGTERM, True),  # a service manager stopping its unit
    (signal.SIGINT, True),  # Ctrl-C
    (signal.SIGHUP, True),  # the terminal or the SSH session went away
], ids=["SIGTERM", "SIGTERM-group", "SIGINT-group", "SIGHUP-group"])
def test_a_signal_stops_the_ingest_cleanly_and_the_rerun_resumes(tmp_path, traffic, signum, group):
    path, counts, offsets = traffic
    cache_path = tmp_path / "cache.duckdb"
    proc = _start(cache_path, path)
    tree: dict[int, str] = {}
    try:
        tree = _wait_for_workers(proc, cache_path)
        (os.killpg if group else os.kill)(proc.pid, signum)
        out, err = proc.communicate(timeout=60)
        left = _left(tree)
    finally:
        proc.kill()
        _kill_left(tree)
    name = signal.Signals(signum).name
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in err and out == ""
    assert not left, f"left running after {name}: {left}"
    lines = err.splitlines()
    assert len(lines) == 1, err
    match = STOP_LINE.fullmatch(lines[0])
    assert match, lines[0]
    assert match["sig"] == name and match["path"] == str(path)
    said = int(match["spans"].replace(",", ""))
    assert 0 < said < SPANS, "the signal was meant to land mid-run"
    assert _stored(cache_path, path, counts, offsets) == (
        said, int(match["offset"].replace(",", "")))
    _resume(cache_path, path, counts, offsets, said)


def test_a_hangup_sent_twice_still_stops_cleanly(tmp_path, traffic):
    """A closed terminal sends SIGHUP and its shell sends it again: not an impatient user."""
    path, counts, offsets = traffic
    cache_path = tmp_path / "cache.duckdb"
    proc = _start(cache_path, path)
    tree: dict[int, str] = {}
    try:
        tree = _wait_for_workers(proc, cache_path)
        os.killpg(proc.pid, signal.SIGHUP)
        time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGHUP)
        out, err = proc.communicate(timeout=60)
        left = _left(tree)
    finally:
        proc.kill()
        _kill_left(tree)
    assert proc.returncode == 129, err
    assert "Traceback" not in err and out == "" and not left
    lines = err.splitlines()
    assert len(lines) == 1, err
    match = STOP_LINE.fullmatch(lines[0])
    assert match and match["sig"] == "SIGHUP", lines[0]
    said = int(match["spans"].replace(",", ""))
    assert _stored(cache_path, path, counts, offsets)[0] == said
    _resume(cache_path, path, counts, offsets, said)


def test_a_second_signal_while_stopping_exits_at_once(tmp_path, traffic):
    path, counts, offsets = traffic
    cache_path = tmp_path / "cache.duckdb"
    proc = _start(cache_path, path)
    tree: dict[int, str] = {}
    try:
        tree = _wait_for_workers(proc, cache_path)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C, and again: impatient
        time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        left = _left(tree)
    finally:
        proc.kill()
        _kill_left(tree)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and out == ""
    assert not left, f"left running after two SIGINTs: {left}"
    lines = err.splitlines()  # the stop line, or the one for a stop at once; never both
    assert len(lines) == 1 and lines[0].startswith("llmdeck: ingest stopped"), err
    stored, _ = _stored(cache_path, path, counts, offsets)
    _resume(cache_path, path, counts, offsets, stored)


def test_sigkill_to_the_parent_alone_leaves_no_worker_behind(tmp_path, traffic):
    path, counts, offsets = traffic
    cache_path = tmp_path / "cache.duckdb"
    proc = _start(cache_path, path)
    tree: dict[int, str] = {}
    try:
        tree = _wait_for_workers(proc, cache_path)
        os.kill(proc.pid, signal.SIGKILL)  # as the OOM killer: the parent alone, no goodbye
        proc.wait(timeout=60)  # (its children may hold its stdout and stderr open)
        left = _left(tree)
    finally:
        proc.kill()
        _kill_left(tree)
        proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not left, f"left running {DEADLINE:.0f}s after the parent was killed: {left}"
    stored, _ = _stored(cache_path, path, counts, offsets)
    _resume(cache_path, path, counts, offsets, stored)


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
    tree: dict[int, str] = {}
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "started\n"
        tree = _children({proc.pid})
        assert any("spawn_main" in _cmdline(pid) for pid in tree), "no writer process running"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        left = _left(tree)
    finally:
        proc.kill()
        _kill_left(tree)
        proc.communicate(timeout=60)
    assert not left, f"left running {DEADLINE:.0f}s after the demo was killed: {left}"
