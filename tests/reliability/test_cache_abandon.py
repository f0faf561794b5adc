"""Cache faults met after writes: a damaged file is closed without a checkpoint, byte for byte.

A real DuckDB cache file gets real damage (noise inside one data block of a table),
is opened read-write, takes a few commits (they sit in the WAL), and then a query
meets the damaged block. `Cache.abandon()` must leave the file and its WAL exactly
as they were (the commits stay replayable); the ordinary `close()` checkpoints and
rewrites the file, which the control test shows, so the first test proves something.
"""

from __future__ import annotations

import hashlib
import io
import shutil
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from console.cache.faults import CacheCorruptError, classify
from console.cache.store import Cache

HEADER = 3 * 4096
BLOCK = 256 * 1024
ROWS = 400_000


def _sha(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def _state(path: Path) -> tuple[str | None, str | None]:
    return _sha(path), _sha(Path(f"{path}.wal"))


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpointed cache with a table of ROWS rows spread over many blocks."""
    path = tmp_path_factory.mktemp("g-abandon") / "healthy.duckdb"
    with Cache.open(path) as cache:
        cache.con.execute("CREATE TABLE filler AS SELECT range AS i, md5(range::VARCHAR) AS s"
                          f" FROM range({ROWS})")
    assert not Path(f"{path}.wal").exists()
    return path


def _damaged(healthy: Path, dst: Path) -> Path:
    """A copy of `healthy` with noise in the first block that only a scan of `filler` reads."""
    blocks = (healthy.stat().st_size - HEADER) // BLOCK
    for block in range(blocks):
        shutil.copyfile(healthy, dst)
        with dst.open("r+b") as f:
            f.seek(HEADER + block * BLOCK + 100_000)
            f.write(b"\xaa" * 512)
        try:
            with duckdb.connect(str(dst), read_only=True) as con:
                con.execute("SELECT value FROM meta").fetchall()
                con.execute("SELECT sum(length(s)) FROM filler").fetchall()
        except duckdb.Error as exc:
            if "checksum" in str(exc):
                return dst
    raise AssertionError("no block of the filler table could be damaged alone")


def _commit_then_meet_damage(path: Path) -> Cache:
    """Open read-write, commit three writes (kept in the WAL), then read the damaged block."""
    cache = Cache.open(path)
    for k in range(3):
        with cache.con.cursor() as cur:
            cur.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [f"g-{k}", "x" * 1000])
    with pytest.raises(duckdb.Error) as met:
        cache.con.execute("SELECT sum(length(s)) FROM filler").fetchall()
    assert isinstance(classify(met.value, path), CacheCorruptError)
    assert Path(f"{path}.wal").exists(), "the commits are expected in the WAL"
    return cache


def test_abandon_keeps_the_damaged_file_and_its_wal_byte_for_byte(healthy, tmp_path):
    path = _damaged(healthy, tmp_path / "c.duckdb")
    cache = _commit_then_meet_damage(path)
    before = _state(path)
    cache.abandon()
    assert _state(path) == before
    cache.abandon()  # a second call (a finally after an except) is harmless
    # nothing committed was lost: the WAL replays on the next open
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute("SELECT count(*) FROM meta WHERE key LIKE 'g-%'").fetchall()
    assert rows == [(3,)]


@pytest.mark.parametrize("closing", [Cache.close, lambda cache: cache.con.close()],
                         ids=["close", "con.close"])
def test_control_an_ordinary_close_rewrites_the_damaged_file(
        closing: Callable[[Cache], None], healthy, tmp_path):
    path = _damaged(healthy, tmp_path / "c.duckdb")
    cache = _commit_then_meet_damage(path)
    before = _state(path)
    closing(cache)
    after = _state(path)
    assert after[0] != before[0]  # the checkpoint on close rewrote the damaged file
    assert after[1] is None  # and folded the WAL into it


def test_run_on_cache_meeting_damage_after_commits_is_one_line_and_changes_no_byte(
        healthy, tmp_path):
    from console.cache_cli import run_on_cache
    from console.cli import EXIT_CACHE

    path = _damaged(healthy, tmp_path / "c.duckdb")
    committed: list[tuple[str | None, str | None]] = []

    def body(cache: Cache) -> int:
        for k in range(3):
            with cache.con.cursor() as cur:
                cur.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [f"g-{k}", "y"])
        committed.append(_state(path))
        cache.con.execute("SELECT sum(length(s)) FROM filler").fetchall()
        return 0

    err = io.StringIO()
    assert run_on_cache(path, read_only=False, err=err, body=body) == EXIT_CACHE
    lines = err.getvalue().splitlines()
    assert len(lines) == 1 and f"{path} is corrupt: the block at byte" in lines[0], lines
    assert "llmdeck cache reset" in lines[0]
    assert committed and committed[0][1] is not None  # the commits were in the WAL
    assert _state(path) == committed[0]


# ---- the console's reopen after DuckDB invalidated the cache, while the demo writes ---------

def test_backend_reopen_while_the_simulator_writes_keeps_saying_disk_full(tmp_path):
    """A checkpoint failing on a full disk invalidates the database while the demo simulator
    keeps stepping (as the app's worker does), its live traffic going over OTLP/HTTP to the
    console's receiver, which writes it. The receiver answers 503 (never 200) and the simulator
    says so; the status line says the disk is full. The backend stops the receiver and the
    simulator, then closes the cache and opens it again read-only: the panels answer from what
    is stored, and every later step says the classified fault (disk full), never 'Connection
    already closed'."""
    import threading
    import time
    from datetime import datetime, timedelta

    from console.backend import Backend
    from console.cache.faults import CacheError, CacheFullError
    from console.demo.clock import SimClock
    from console.demo.config import demo_config
    from console.demo.live_link import LiveRefused
    from console.demo.simulator import Simulator
    from console.views import OverviewView
    from console.writers import ReceiverHost
    from tests.reliability import faultkit

    with faultkit.tmpfs(tmp_path / "small", "40m") as disk:
        path = disk / "demo.duckdb"
        config = demo_config(path)
        clock = SimClock(datetime(2026, 11, 24, 12, 0, 0), 600.0)  # new chunks every step
        cache = Cache.open(path)
        sim = Simulator(cache, config, disk / "spool", clock=clock, backfill=timedelta(hours=2),
                        workers=1)
        receiver = ReceiverHost(cache, config, sim.writing, host="127.0.0.1", port=0)
        receiver.start()
        sim.send_live_to(receiver.url, before_release=receiver.release_cache)
        errors: list[BaseException] = []
        done = threading.Event()

        def app_worker() -> None:  # what LlmdeckApp._simulate does, faster
            while not done.is_set():
                try:
                    sim.step()
                except Exception as exc:
                    errors.append(exc)
                time.sleep(0.02)

        worker = threading.Thread(target=app_worker, daemon=True)
        backend = Backend(cache, config, clock.now, [sim, receiver])
        try:
            sim.backfill()
            sim.step()
            before = backend.fetch(OverviewView()).snapshot
            assert before.spend  # something stored to show
            # commits that only a checkpoint growing the file can fold in
            cache.con.execute("SET checkpoint_threshold = '1GB'")
            cache.con.execute("CREATE TABLE filler (m VARCHAR)")
            for _ in range(8):
                cache.con.execute(
                    "INSERT INTO filler SELECT md5(random()::VARCHAR) FROM range(40000)")
            faultkit.fill_disk(disk / "fill")
            with pytest.raises(duckdb.Error, match="No space left on device"):
                cache.con.execute("CHECKPOINT")
            (disk / "fill").unlink()  # room again: only the invalidated database refuses
            with pytest.raises(duckdb.Error, match="database has been invalidated"):
                cache.cursor().execute("SELECT count(*) FROM spans").fetchall()
            worker.start()  # its requests meet the invalidated database in the receiver
            deadline = time.monotonic() + 20
            while len(errors) < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(errors) >= 3, errors
            assert all(isinstance(e, LiveRefused) and e.status == 503 for e in errors), errors
            status = sim.source_status()
            assert status.state != "live"
            assert "the receiver did not store live traffic (HTTP 503" in status.detail
            fault = backend.fault()  # the receiver's: the status line says it
            assert fault is not None
            assert fault.line == "cache write failed: disk full; showing what is stored"

            after = backend.fetch(OverviewView())  # meets the invalidated database: reopens
            assert backend.reopened and backend.cache is not cache and backend.cache.read_only
            assert after.snapshot.spend == tuple((k, pytest.approx(v)) for k, v in before.spend)
            line = receiver.source_status()
            assert line.state == "down" and "stopped: " in line.detail and receiver.receiver is None

            seen = len(errors)
            deadline = time.monotonic() + 20
            while len(errors) < seen + 5 and time.monotonic() < deadline:
                time.sleep(0.05)
            later = errors[seen + 1:]  # (one step may have been under way when it stopped)
            assert len(later) >= 4, "the simulator stopped stepping"
            assert all(isinstance(e, CacheFullError) for e in later), later
            assert not any("already closed" in str(e) for e in errors), errors
            status = sim.source_status()
            assert status.state != "live" and "no space left on the device holding" in status.detail
            fault = backend.fault()
            assert fault is not None
            assert fault.line == "cache write failed: disk full; showing what is stored"
            assert isinstance(sim.cache_fault, CacheError)
        finally:
            done.set()
            if worker.is_alive():
                worker.join(20)
            receiver.close()
            sim.close()
            cache.abandon()
            if backend.cache is not cache:
                backend.cache.close()


def test_a_checkpoint_failing_on_a_full_disk_is_not_remembered(tmp_path):
    """`cache info`'s checkpoint line must not name a checkpoint that never happened."""
    from tests.reliability import faultkit

    with faultkit.tmpfs(tmp_path / "small", "16m") as disk:
        path = disk / "c.duckdb"
        done = "2001-02-03T04:05:06Z"  # the last checkpoint that happened
        cache = Cache.open(path)
        cache.con.execute("INSERT OR REPLACE INTO meta VALUES ('last_checkpoint', ?)", [done])
        cache.con.execute("CHECKPOINT")
        try:
            cache.con.execute("SET checkpoint_threshold = '1GB'")
            cache.con.execute("CREATE TABLE filler (m VARCHAR)")
            for _ in range(4):  # in the WAL: only the checkpoint grows the file
                cache.con.execute(
                    "INSERT INTO filler SELECT md5(random()::VARCHAR) FROM range(40000)")
            assert Path(f"{path}.wal").stat().st_size > 4_000_000
            faultkit.fill_disk(disk / "fill")
            with pytest.raises(duckdb.Error, match="No space left on device"):
                cache.checkpoint()
        finally:
            cache.abandon()
        (disk / "fill").unlink()
        with Cache.open(path, read_only=True) as cache:
            assert cache.meta("last_checkpoint") == done
            assert cache.cursor().execute("SELECT count(*) FROM filler").fetchall() == [(160000,)]
