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
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.faultkit import check_cache, cli, remount, tmpfs, write_traffic

SPANS = 40_000
ENV = {"LLMDECK_INGEST__BATCH_SPANS": "2000"}
FULL_LINE = re.compile(
    r"llmdeck: no space left on the device holding (?P<cache>\S+) \(.*\); free some space"
    r" \(or point --cache at another disk\) and run the same command again\. Before it failed:"
    r" (?P<spans>[\d,]+) spans stored, (?P<path>.+) read up to byte (?P<offset>[\d,]+) of"
    r" [\d,]+ \([\d.]+%\); the rerun resumes right after that \(nothing is stored twice\)"
)

pytestmark = pytest.mark.slow


@pytest.fixture(params=["8m", "22m"], ids=["wal-commit", "checkpoint"])
def small_disk(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A real small tmpfs (root only; in CI the test must run, so it fails there instead)."""
    with tmpfs(tmp_path / "disk", request.param) as mount:
        yield mount


def test_a_full_disk_ends_the_ingest_with_one_line_and_the_rerun_resumes(tmp_path, small_disk):
    traffic = write_traffic(tmp_path / "traffic.jsonl", SPANS, seed=11, spans_per_request=500)
    path = traffic.path
    cache_path = small_disk / "cache.duckdb"

    run = cli("--cache", cache_path, "ingest", path, env=ENV, timeout=300)
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
    assert check_cache(cache_path, traffic) == (said, int(match["offset"].replace(",", "")))

    # Room made: the same command stores the rest, and nothing twice.
    remount(small_disk, "size=96m")
    rerun = cli("--cache", cache_path, "ingest", path, "--json", env=ENV, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(rerun.stdout)
    assert report["spans_read"] == SPANS - said and report["spans_stored"] == SPANS - said
    assert report["duplicates"] == 0 and report["errors"] == []
    assert check_cache(cache_path, traffic).spans == SPANS
