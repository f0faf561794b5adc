"""`llmdeck ingest` onto a file system that fills up: one line, exit 3, then an exact resume.

The cache lives on a real tmpfs too small for the ~43 MB Collector file's
40,000 spans (committed in batches of 2,000 per worker chunk): 8 MB fills
while a COMMIT writes the WAL, 22 MB while DuckDB folds its 16 MB WAL into the
file (a failed checkpoint, after which DuckDB refuses everything). The
ingest must end with one line naming the cache file, how many spans it stored
and how to resume, exit code 3 and no traceback; the cache must hold exactly
the spans the line says, each once, with the file offset committed beside
them. After the tmpfs is made bigger (`mount -o remount,size=...`), the same
command stores the rest and nothing twice.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from console.cache.store import Cache
from console.demo.traffic import TrafficModel, export_requests, write_collector_jsonl

ROOT = Path(__file__).resolve().parents[2]
SPANS = 40_000
BATCH = 2_000
FULL_LINE = re.compile(
    r"llmdeck: no space left on the device holding (?P<cache>\S+) \(.*\); free some space"
    r" \(or point --cache at another disk\) and run the same command again\. Before it failed:"
    r" (?P<spans>[\d,]+) spans stored, (?P<path>.+) read up to byte (?P<offset>[\d,]+) of"
    r" [\d,]+ \([\d.]+%\); the rerun resumes right after that \(nothing is stored twice\)"
)

pytestmark = pytest.mark.slow


@pytest.fixture(params=["8m", "22m"], ids=["wal-commit", "checkpoint"])
def small_disk(tmp_path: Path, request: pytest.FixtureRequest):
    """A real small tmpfs (root only; in CI the test must run, so it fails there instead)."""
    if os.geteuid() != 0 and os.environ.get("CI") != "true":
        pytest.skip("mounting a tmpfs needs root (CI runs this as root)")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={request.param}", "tmpfs", str(mount)],
                   check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _write_traffic(path: Path) -> tuple[list[int], list[int]]:
    """The file, and per line: its span count and the byte offset just after it."""
    end = time.time_ns() // 60_000_000_000 * 60_000_000_000  # recent: inside rollup retention
    write_collector_jsonl(str(path), export_requests(
        TrafficModel(seed=11), end - 6 * 3600 * 10**9, end, SPANS, 500))
    counts, offsets, offset = [], [], 0
    with path.open("rb") as f:
        for line in f:
            offset += len(line)
            counts.append(line.count(b'"spanId"'))
            offsets.append(offset)
    assert sum(counts) == SPANS
    return counts, offsets


def _ingest(cache_path: Path, path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LLMDECK_INGEST__BATCH_SPANS": str(BATCH)}
    return subprocess.run(
        [sys.executable, "-m", "console.cli", "--cache", str(cache_path), "ingest", str(path),
         *extra],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )


def _stored(cache_path: Path) -> tuple[int, int, list[tuple[str, int, int]]]:
    """Spans (checked unique and equal to the rollups' count) and the stored file offsets."""
    with Cache.open(cache_path, read_only=True) as cache:
        cur = cache.cursor()
        spans, distinct = cur.execute(
            "SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM spans").fetchall()[0]
        minute = cur.execute("SELECT coalesce(sum(requests), 0) FROM rollup_minute").fetchall()
        files = cur.execute("SELECT path, byte_offset, line FROM ingest_files").fetchall()
    assert spans == distinct, "duplicate spans"
    assert minute[0][0] == spans, "rollups and spans disagree"
    return int(spans), int(distinct), files


def test_a_full_disk_ends_the_ingest_with_one_line_and_the_rerun_resumes(tmp_path, small_disk):
    path = tmp_path / "traffic.jsonl"
    counts, offsets = _write_traffic(path)
    cache_path = small_disk / "cache.duckdb"

    run = _ingest(cache_path, path)
    assert run.returncode == 3, run.stderr  # EXIT_CACHE
    assert "Traceback" not in run.stderr and run.stdout == ""
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    match = FULL_LINE.fullmatch(lines[0])
    assert match, lines[0]
    assert match["cache"] == str(cache_path) and match["path"] == str(path)
    said = int(match["spans"].replace(",", ""))
    assert 0 < said < SPANS, "the disk was meant to fill mid-run, after some commits"

    # What was committed is intact and is what the line says, with its file offset.
    spans, _, files = _stored(cache_path)
    assert spans == said
    ((stored_path, offset, line),) = files
    assert stored_path == str(path)
    assert offset == int(match["offset"].replace(",", "")) == offsets[line - 1]
    assert spans == sum(counts[:line])

    # Room made: the same command stores the rest, and nothing twice.
    subprocess.run(["mount", "-o", "remount,size=96m", str(small_disk)], check=True)
    rerun = _ingest(cache_path, path, "--json")
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(rerun.stdout)
    assert report["spans_read"] == SPANS - said and report["spans_stored"] == SPANS - said
    assert report["duplicates"] == 0 and report["errors"] == []
    assert _stored(cache_path)[0] == SPANS
