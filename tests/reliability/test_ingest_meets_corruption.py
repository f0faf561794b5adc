"""An ingest that commits a few batches, then meets a corrupt block of the cache file.

A real cache of 20,000 spans is built by a real `llmdeck ingest`; a copy gets 512
bytes of noise in one block (a spans block the dedupe of already-stored hours reads,
or the block holding `ingest_files`). `llmdeck ingest` then stores a new file (8,000
spans in hours of its own, 4 commits) and goes on to a copy of the first file, whose
spans dedupe against the damaged ones, or to the first file itself, whose resume point
is in the damaged `ingest_files` block (that was "error: FILE: Error: Corrupt database
file...", exit 1, before the lookup left the per-file error net). The user must see
one line (the corrupt file, the block, the reset advice, what this run stored; no resume
promise, no "..") and exit code 3; the run must close without the closing checkpoint,
so the damaged block keeps its bytes and the WAL holding the committed batches stays.
"""

from __future__ import annotations

import gzip
import random
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from console.demo.traffic import TrafficModel, export_requests, write_collector_jsonl
from tests.reliability import faultkit

ROOT = Path(__file__).resolve().parents[2]
HEADER = 3 * 4096
BLOCK = 256 * 1024
HOUR_NS = 3600 * 10**9
STORED, NEW = 20_000, 8_000

pytestmark = pytest.mark.slow


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return faultkit.cli(*args, env={"LLMDECK_INGEST__BATCH_SPANS": "2000"})


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A healthy checkpointed cache of STORED spans, its trace file, and a new trace file."""
    base = tmp_path_factory.mktemp("e-corrupt")
    end = time.time_ns() // 60_000_000_000 * 60_000_000_000
    stored, new = base / "stored.jsonl", base / "new.jsonl"
    write_collector_jsonl(str(stored), export_requests(
        TrafficModel(seed=11), end - 6 * HOUR_NS, end, STORED, 200))
    write_collector_jsonl(str(new), export_requests(  # hours no stored span starts in
        TrafficModel(seed=12), end - 30 * HOUR_NS, end - 24 * HOUR_NS, NEW, 200))
    cache = base / "healthy.duckdb"
    result = _cli("--cache", cache, "ingest", stored)
    assert result.returncode == 0, result.stderr
    assert not Path(f"{cache}.wal").exists()
    assert (cache.stat().st_size - HEADER) % BLOCK == 0, "DuckDB's block layout changed"
    new_gz = base / "new.jsonl.gz"
    new_gz.write_bytes(gzip.compress(new.read_bytes(), compresslevel=1))
    return {"cache": cache, "stored": stored, "new": new, "new_gz": new_gz}


def _reads(path: Path, sql: str) -> bool:
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            con.execute("SELECT * FROM meta").fetchall()
            con.execute(sql).fetchall()
    except duckdb.Error as exc:
        assert "Corrupt database file" in str(exc)
        return False
    return True


CUTOFF = f"make_timestamp_ns({time.time_ns() - 12 * HOUR_NS})"  # between the two files' hours
SPANS_EARLIER = f"SELECT max(trace_id), max(span_id) FROM spans WHERE start_time < {CUTOFF}"
SPANS_STORED = f"SELECT max(trace_id), max(span_id) FROM spans WHERE start_time > {CUTOFF}"
DAMAGE: dict[str, Callable[[Path], bool]] = {
    # the new file's dedupe (its own hours) reads fine; the copy's (the stored hours) does not
    "spans": lambda p: _reads(p, SPANS_EARLIER) and not _reads(p, SPANS_STORED),
    "ingest_files": lambda p: _reads(p, SPANS_STORED) and not _reads(p, "SELECT * FROM ingest_files"),
}


def _damaged_copy(healthy: Path, dst: Path, wanted: Callable[[Path], bool]) -> int:
    """Copy `healthy` to `dst` with noise in the first block for which `wanted(dst)`."""
    for block in range((healthy.stat().st_size - HEADER) // BLOCK):
        shutil.copyfile(healthy, dst)
        location = HEADER + block * BLOCK
        with dst.open("r+b") as f:
            f.seek(location + 100_000)
            f.write(random.Random(block).randbytes(512))
        if wanted(dst):
            return location
    raise AssertionError("no damaged block did what the test needs")


@pytest.mark.parametrize("table", DAMAGE)
def test_corruption_met_after_commits_is_one_line_and_leaves_the_file_as_it_was(
        built: dict[str, Path], tmp_path: Path, table: str) -> None:
    cache = tmp_path / "c.duckdb"
    location = _damaged_copy(built["cache"], cache, DAMAGE[table])
    before = cache.read_bytes()
    again = tmp_path / "again.jsonl"  # a copy of the stored file: same spans, another path
    shutil.copyfile(built["stored"], again)

    if table == "spans":  # the copy's dedupe meets the damaged block
        files = [built["new"], again]
    else:  # the stored file's resume point does; the new file, compressed, stores no offset
        files = [built["new_gz"], built["stored"]]
    result = _cli("--cache", cache, "ingest", *files)

    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert result.returncode == 3, line
    assert result.stdout == ""
    assert line.startswith(f"llmdeck: {cache} is corrupt: the block at byte {location:,} fails"
                           " its checksum. The cache holds only data derived from your trace"), line
    assert f"`llmdeck cache reset --cache {cache}`" in line
    assert ".." not in line and "resume" not in line and "error:" not in line, line
    match = re.search(r"on your trace files\. Before it failed: (?P<n>[\d,]+) spans stored"
                      r"(, (?P<path>\S+) read up to byte (?P<at>[\d,]+) of (?P<size>[\d,]+)"
                      r" \(100\.0%\))?$", line)
    assert match, line
    # the new file's 4 batches are committed; nothing of the second file is
    assert int(match["n"].replace(",", "")) == NEW
    if table == "spans":
        assert match["path"] == str(built["new"])
        assert int(match["at"].replace(",", "")) == built["new"].stat().st_size
    else:
        assert match["path"] is None

    # Closed without a checkpoint: not one byte of the file changed (the damaged block
    # included) and the committed batches wait in the WAL.
    after = cache.read_bytes()
    assert after[location:location + BLOCK] == before[location:location + BLOCK]
    assert after == before
    assert Path(f"{cache}.wal").stat().st_size > 0
