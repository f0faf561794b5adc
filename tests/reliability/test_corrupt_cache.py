"""A cache file with real damage: noise in a block, a zeroed header, a copy cut short.

A real cache of 60,000 spans is built once by a real `llmdeck ingest`, then copies
of it are damaged on disk the way bit rot, a bad disk or an interrupted copy would.
Every command that opens the cache must say, in one line and with exit code 3,
that it is corrupt, where (the file, the block's byte offset or the cut), that it
holds only derived data and what to do; none may change the damaged bytes.
`llmdeck cache reset` moves the file aside byte for byte, lists the trace files to
ingest again, and a re-ingest gives back the exact span count.

DuckDB 2.0's file layout, pinned here so an upgrade that changes it is noticed: three
4 KiB header blocks, then 256 KiB blocks each starting with its checksum. A checksum
failure reads "Corrupt database file: computed checksum N does not match stored
checksum M in block at location L" and is raised by the first query that reads the
block: the first block fails DuckDB's connect, the catalog's at llmdeck's first read in
`Cache.open`, a rollup's block only when `status` reads it, a span's when `prune` does.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from tests.reliability.faultkit import ROOT, cli, readline, sha, write_traffic

SPANS = 60_000
HEADER = 3 * 4096
BLOCK = 256 * 1024

pytestmark = pytest.mark.slow

HOLDER = """
import sys, time
from pathlib import Path
from console.cache.store import Cache
cache = Cache.open(Path(sys.argv[1]), read_only=sys.argv[2] == "ro")
print("ready", flush=True)
time.sleep(120)
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a healthy cache of SPANS spans written by a real `llmdeck ingest`, its trace file)."""
    base = tmp_path_factory.mktemp("corrupt")
    traces = write_traffic(base / "traffic.jsonl", SPANS, seed=11).path  # recent: in every window
    cache = base / "healthy.duckdb"
    result = cli("--cache", cache, "ingest", traces, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["spans_stored"] == SPANS
    assert not Path(f"{cache}.wal").exists()  # checkpointed: every byte is in the file
    assert (cache.stat().st_size - HEADER) % BLOCK == 0, "DuckDB's block layout changed"
    return cache, traces


def _noise_in_block(src: Path, dst: Path, block: int) -> int:
    """Copy `src` to `dst` with 512 random bytes inside block `block`; return its location."""
    shutil.copyfile(src, dst)
    location = HEADER + block * BLOCK
    with dst.open("r+b") as f:
        f.seek(location + 100_000)
        f.write(random.Random(block).randbytes(512))
    return location


def _connects(path: Path) -> bool:
    try:
        duckdb.connect(str(path), read_only=True).close()
    except duckdb.Error:
        return False
    return True


def _opens(path: Path) -> bool:
    """Whether DuckDB opens the file and reads the catalog and meta (what every open does)."""
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            con.execute("SELECT count(*) FROM information_schema.tables").fetchall()
            con.execute("SELECT value FROM meta").fetchall()
    except duckdb.Error:
        return False
    return True


def _status_reads_fail(path: Path) -> bool:
    from console import status_report
    from console.config import Config
    from console.timeutil import utc_now

    try:
        with duckdb.connect(str(path), read_only=True) as con:
            status_report.gather(con.cursor(), Config(), utc_now())
    except duckdb.Error as exc:
        assert "Corrupt database file" in str(exc)
        return True
    return False


def _prune_reads_fail(path: Path) -> bool:
    """Whether the spans `cache prune --older-than 1h` must read sit in a damaged block."""
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            con.execute("SELECT count(*) FROM spans WHERE start_time"
                        " < now()::TIMESTAMP - INTERVAL 1 HOUR").fetchall()
    except duckdb.Error as exc:
        assert "Corrupt database file" in str(exc)
        return True
    return False


def _find_block(healthy: Path, dst: Path, wanted: Callable[[Path], bool]) -> int:
    """Damage block after block (in a copy) until `wanted(copy)`; return the block's location."""
    blocks = (healthy.stat().st_size - HEADER) // BLOCK
    for block in range(blocks):
        location = _noise_in_block(healthy, dst, block)
        if wanted(dst):
            return location
    raise AssertionError("no damaged block did what the test needs")


@pytest.fixture(scope="module")
def damaged(built: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
            ) -> dict[str, tuple[Path, str]]:
    """Damaged copies of the healthy cache: name -> (file, what the message must name)."""
    healthy, _ = built
    base = tmp_path_factory.mktemp("damaged")
    out: dict[str, tuple[Path, str]] = {}
    first = base / "first-block.duckdb"  # DuckDB refuses the connection itself
    location = _find_block(healthy, first, lambda p: not _connects(p))
    out["first-block"] = (first, f"block at byte {location:,}")
    catalog = base / "catalog-block.duckdb"  # connects, fails at llmdeck's first read
    location = _find_block(healthy, catalog, lambda p: _connects(p) and not _opens(p))
    out["catalog-block"] = (catalog, f"block at byte {location:,}")
    rollup = base / "rollup-block.duckdb"
    location = _find_block(healthy, rollup, lambda p: _opens(p) and _status_reads_fail(p))
    out["rollup-block"] = (rollup, f"block at byte {location:,}")
    spans = base / "spans-block.duckdb"
    location = _find_block(healthy, spans, lambda p: _opens(p) and _prune_reads_fail(p))
    out["spans-block"] = (spans, f"block at byte {location:,}")
    data = healthy.read_bytes()
    zeroed = base / "header-zeroed.duckdb"
    zeroed.write_bytes(bytes(4096) + data[4096:])
    out["header-zeroed"] = (zeroed, "header")
    header_block = base / "header-block.duckdb"  # the second header block, zeroed
    header_block.write_bytes(data[:4096] + bytes(4096) + data[8192:])
    out["header-block"] = (header_block, "block at byte 4,096")
    cut = base / "cut-short.duckdb"
    cut.write_bytes(data[: len(data) // 2])
    out["cut-short"] = (cut, f"cut short (it has {len(data) // 2:,} bytes")
    return out


def assert_corrupt_line(result: subprocess.CompletedProcess[str], path: Path, where: str) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert result.returncode == 3, line
    assert line.startswith(f"llmdeck: {path} is corrupt: "), line
    assert where in line, line
    assert "only data derived from your trace files" in line
    assert f"`llmdeck cache reset --cache {path}`" in line and "llmdeck ingest" in line
    return line


COMMANDS = {
    "status": ["status"],
    "status --json": ["status", "--json"],
    "cache info": ["cache", "info"],
    "cache prune": ["cache", "prune", "--older-than", "7d"],
    "ingest": ["ingest", "{traces}"],
    "console": [],  # bare `llmdeck`: the console refuses before it starts
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("damage", ["first-block", "catalog-block", "header-zeroed", "header-block",
                                    "cut-short"])
def test_every_command_says_corrupt_where_and_what_to_do(damage, command, damaged, built,
                                                         tmp_path):
    source, where = damaged[damage]
    cache = tmp_path / "c.duckdb"
    shutil.copyfile(source, cache)
    before = sha(cache)
    args = [a.format(traces=built[1]) for a in COMMANDS[command]]
    result = cli("--cache", cache, *args)
    assert_corrupt_line(result, cache, where)
    assert result.stdout == ""
    assert sha(cache) == before  # the damaged file is left exactly as it was
    assert not Path(f"{cache}.wal").exists()


@pytest.mark.parametrize("args", [["status"], ["status", "--json"]], ids=" ".join)
def test_a_damaged_block_met_by_a_later_query_is_the_same_line(args, damaged, tmp_path):
    """The file opens; `status` meets the damage reading the rollups."""
    source, where = damaged["rollup-block"]
    cache = tmp_path / "c.duckdb"
    shutil.copyfile(source, cache)
    assert _opens(cache)
    result = cli("--cache", cache, *args)
    assert_corrupt_line(result, cache, where)
    assert result.stdout == ""
    assert sha(cache) == sha(source)


def test_a_damaged_block_met_by_prune_is_the_same_line_and_changes_no_byte(damaged, tmp_path):
    """The file opens read-write; the prune's scan meets the damage; its transaction is
    dropped and the file is closed without the usual closing checkpoint."""
    source, where = damaged["spans-block"]
    cache = tmp_path / "c.duckdb"
    shutil.copyfile(source, cache)
    before = sha(cache)
    result = cli("--cache", cache, "cache", "prune", "--older-than", "1h")
    assert_corrupt_line(result, cache, where)
    assert result.stdout == ""
    assert sha(cache) == before


def test_the_default_cache_is_named_without_cache_flag(damaged, tmp_path):
    """Under the XDG default the hint is plain `llmdeck cache reset`."""
    xdg = tmp_path / "xdg-cache"
    cache = xdg / "llmdeck" / "cache.duckdb"
    cache.parent.mkdir(parents=True)
    shutil.copyfile(damaged["catalog-block"][0], cache)
    result = cli("status", env={"XDG_CACHE_HOME": str(xdg)})
    assert result.returncode == 3 and "Traceback" not in result.stderr
    assert f"llmdeck: {cache} is corrupt: " in result.stderr
    assert "run `llmdeck cache reset` to move it aside" in result.stderr


# ---------------------------------------------------------------------------
# llmdeck cache reset
# ---------------------------------------------------------------------------


def _span_count(cache: Path) -> int:
    result = cli("--cache", cache, "cache", "info", "--json")
    assert result.returncode == 0, result.stderr
    return int(json.loads(result.stdout)["spans"])


def test_reset_moves_a_corrupt_cache_aside_intact_and_a_reingest_restores_it(
        damaged, built, tmp_path):
    _, traces = built
    cache = tmp_path / "c.duckdb"
    shutil.copyfile(damaged["rollup-block"][0], cache)
    before = sha(cache)
    result = cli("--cache", cache, "cache", "reset")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    (moved,) = tmp_path.glob("c.duckdb.corrupt-*")
    assert not cache.exists()
    assert sha(moved) == before  # moved, byte for byte; nothing deleted
    out = result.stdout
    assert f"{cache} was corrupt: the block at byte" in out
    assert f"{cache} -> {moved}" in out
    assert f"  {traces}\n" in out  # what to ingest again
    assert f"llmdeck ingest --cache {cache} FILE..." in out
    # the next ingest starts a fresh cache and gets every span back
    again = cli("--cache", cache, "ingest", traces, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["spans_stored"] == SPANS
    assert _span_count(cache) == SPANS
    assert cli("--cache", cache, "status").returncode in (0, 1, 2)


def test_reset_when_even_the_file_list_is_unreadable_says_so(damaged, tmp_path):
    cache = tmp_path / "c.duckdb"
    shutil.copyfile(damaged["header-zeroed"][0], cache)
    before = sha(cache)
    result = cli("--cache", cache, "cache", "reset", "--json")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    report = json.loads(result.stdout)
    assert report["corrupt"] is True and "header" in report["corruption"]
    assert report["ingested_files"] is None and report["ingested_files_error"]
    ((src, dst),) = [(m["from"], m["to"]) for m in report["moved"]]
    assert src == str(cache) and ".corrupt-" in dst and sha(Path(dst)) == before
    shutil.copyfile(damaged["cut-short"][0], cache)
    text = cli("--cache", cache, "cache", "reset")
    assert text.returncode == 0 and "cut short" in text.stdout


def test_reset_of_a_healthy_cache_with_its_wal_keeps_both_usable(built, tmp_path):
    healthy, traces = built
    cache = tmp_path / "c.duckdb"
    shutil.copyfile(healthy, cache)
    # a writer that dies before its checkpoint leaves a WAL holding its last commit
    script = ("import duckdb, os, sys; con = duckdb.connect(sys.argv[1]);"
              " con.execute(\"INSERT INTO meta VALUES ('left_in_wal', 'yes')\"); os._exit(0)")
    subprocess.run([sys.executable, "-c", script, str(cache)], check=True, timeout=60)
    wal = Path(f"{cache}.wal")
    assert wal.exists() and wal.stat().st_size > 0
    result = cli("--cache", cache, "cache", "reset", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["corrupt"] is False
    assert report["ingested_files"] == [{"path": str(traces), "exists": True}]
    (moved,) = tmp_path.glob("c.duckdb.reset-*[0-9Z]")
    assert [(m["from"], m["to"]) for m in report["moved"]] == [
        (str(cache), str(moved)), (str(wal), f"{moved}.wal")]
    assert not cache.exists() and not wal.exists()
    # the moved file still opens with its WAL: nothing was lost by the move
    assert _span_count(moved) == SPANS
    with duckdb.connect(str(moved), read_only=True) as con:
        assert con.execute("SELECT value FROM meta WHERE key = 'left_in_wal'").fetchall() == [
            ("yes",)]
    nothing = cli("--cache", cache, "cache", "reset")
    assert nothing.returncode == 0 and "nothing to move" in nothing.stdout


@pytest.mark.parametrize("mode", ["rw", "ro"])
def test_reset_refuses_while_another_process_has_the_cache(mode, built, tmp_path):
    cache = tmp_path / "c.duckdb"
    shutil.copyfile(built[0], cache)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(cache), mode], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and readline(holder.stdout).strip() == "ready"
        result = cli("--cache", cache, "cache", "reset")
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert result.returncode == 3 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert f"{cache} is in use by" in line and f"(PID {holder.pid})" in line
    assert "nothing was moved" in line
    assert cache.exists() and list(tmp_path.iterdir()) == [cache]
