"""The console under faults, as an on-call engineer meets them, in real processes.

- The terminal goes away (SSH drops, `tmux kill-session`: SIGHUP) or a service
  manager sends SIGTERM while `llmdeck demo` ingests its history: the console
  exits cleanly within seconds, no process of its tree is left, and the cache
  opens afterwards with its spans intact (whole batches, rollups equal to the
  spans) and no WAL to recover.
- The disk fills during the demo's backfill (a real 40 MB tmpfs): the status
  line says the cache write failed and the console keeps answering keys.
- `llmdeck demo --workdir` on a corrupt demo cache: moved aside (byte-identical),
  said on one line, and the demo starts on a fresh one.
- Corruption met later by one panel's query (a real cache with noise in one
  block): that panel says the cache is corrupt and what to do, the status line
  says so too, and the console stays up.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from console.cache.store import Cache
from tests.reliability.faultkit import (
    DEADLINE,
    LLMDECK,
    ROOT,
    PtyProcess,
    Tree,
    alive,
    check_cache,
    fill_disk,
    kill_tree,
    needs,
    process_tree,
    tmpfs,
    wait_gone,
)

pytestmark = pytest.mark.slow


# ---- processes -------------------------------------------------------------------------------

def wait_below(pid: int, tree: Tree, at_least: int) -> Tree:
    """Once at least `at_least` processes run below `pid` (for the console: the backfill's
    writer and workers, so the backfill is under way), those; all seen are kept in `tree`."""
    end = time.monotonic() + DEADLINE
    while len(below := {p: t for p, t in alive(process_tree(pid, tree)).items() if p != pid}
              ) < at_least:
        assert time.monotonic() < end, f"not {at_least} processes below {pid}: {below}"
        time.sleep(0.05)
    return below


class PtyConsole(PtyProcess):
    """`llmdeck ARGS` on a pseudo-terminal of 80x24, its output collected as it comes."""

    def __init__(self, *args: str) -> None:
        super().__init__(*LLMDECK[1:], *args)


@pytest.fixture
def consoles() -> Iterator[list[PtyConsole]]:
    started: list[PtyConsole] = []
    yield started
    for console in started:
        console.kill()


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", "-L", "llmdeck-faults", *args], check=True, text=True,
                          capture_output=True).stdout


@pytest.fixture
def tmux_server() -> Iterator[None]:
    needs(shutil.which("tmux") is not None, "tmux is not installed")
    yield
    subprocess.run(["tmux", "-L", "llmdeck-faults", "kill-server"], capture_output=True)


def pane(session: str) -> str:
    return tmux("capture-pane", "-p", "-t", session)


def wait_pane(session: str, text: str, deadline: float = 60.0,
              watch: tuple[int, Tree] | None = None) -> str:
    """The screen once it shows `text`; `watch` (pid, tree): keep what runs below pid in tree."""
    end = time.monotonic() + deadline
    while True:
        if watch is not None:
            process_tree(*watch)
        shown = pane(session)
        if text in shown:
            return shown
        assert time.monotonic() < end, f"no {text!r} on the screen:\n{shown}"
        time.sleep(0.2)


DATA = rb"data \d\d:\d\d:\d\dZ"
"""The status line once a view was fetched: the console is up and answering."""


# ---- SIGHUP / SIGTERM -------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["hangup", "sigterm"])
def test_a_stop_signal_during_the_backfill_exits_cleanly(tmp_path, consoles, how):
    workdir = tmp_path / "demo"
    console = PtyConsole("demo", "--workdir", str(workdir))
    consoles.append(console)
    console.wait_for(DATA)
    wait_below(console.pid, console.tree, 1)  # the week's backfill is under way
    tree = process_tree(console.pid)
    if how == "hangup":
        console.hang_up()
    else:
        os.kill(console.pid, signal.SIGTERM)
    status = console.wait()
    assert status is not None, f"still running {DEADLINE} s after {how}"
    expected = signal.SIGHUP if how == "hangup" else signal.SIGTERM
    assert status == 128 + expected, f"exit status {status}: {bytes(console.output)[-1500:]!r}"
    assert not wait_gone(tree), "processes of the console's tree outlived it"
    out = console.output_to_end()
    assert b"Traceback" not in out
    if how == "sigterm":  # the terminal is still there: restored, and one line on it
        assert b"\x1b[?1049l" in out  # left the alternate screen
        assert b"llmdeck: stopped by SIGTERM; " in out and b"nothing stored was lost" in out
    assert check_cache(workdir / "demo.duckdb", closed=True).spans > 0


@pytest.mark.parametrize("how", ["hangup", "sigterm"])
def test_a_stop_signal_ends_the_console_on_a_cache(tmp_path, consoles, how):
    path = tmp_path / "cache.duckdb"
    _small_cache(path)
    before = check_cache(path, closed=True)
    console = PtyConsole("--cache", str(path))
    consoles.append(console)
    console.wait_for(DATA)
    if how == "hangup":
        console.hang_up()
    else:
        os.kill(console.pid, signal.SIGTERM)
    expected = signal.SIGHUP if how == "hangup" else signal.SIGTERM
    assert console.wait() == 128 + expected
    assert b"Traceback" not in console.output_to_end()
    assert check_cache(path, closed=True) == before


WRAPPER = """
import signal, subprocess, sys
signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the wrapper stays to write down the exit status
rc = subprocess.call(sys.argv[2:], preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))
open(sys.argv[1], "w").write(str(rc))
"""


def test_tmux_kill_session_while_the_demo_backfills(tmp_path, tmux_server):
    workdir = tmp_path / "demo"
    rc = tmp_path / "rc"
    wrapper_py = tmp_path / "wrapper.py"
    wrapper_py.write_text(WRAPPER)
    command = " ".join([sys.executable, str(wrapper_py), str(rc), *LLMDECK, "demo",
                        "--workdir", str(workdir)])
    tmux("new-session", "-d", "-s", "hup", "-x", "80", "-y", "24", "-c", str(ROOT),
         f"exec {command}")
    wrapper = int(tmux("display-message", "-p", "-t", "hup", "#{pane_pid}").strip())
    seen = process_tree(wrapper)  # all of it is SIGKILLed at the end, whatever happened
    try:
        wait_pane("hup", "demo simulator", watch=(wrapper, seen))
        tree = wait_below(wrapper, seen, 2)  # the console, and its backfill under way
        # The terminal goes away: the kernel sends SIGHUP to the session leader only (here
        # the wrapper, which ignores it, like a shell that does not pass it on); the console
        # meets EIO on its next write and must stop by itself.
        tmux("kill-session", "-t", "hup")
        left = wait_gone(tree)
        end = time.monotonic() + DEADLINE
        while not rc.exists() and time.monotonic() < end:
            time.sleep(0.1)
        wrapper_left = wait_gone({wrapper: seen[wrapper]}, 5)
    finally:
        kill_tree(seen)
    assert not wrapper_left
    assert not left, f"processes of the console's tree outlived the session: {left}"
    assert rc.read_text() == str(128 + signal.SIGHUP)  # it exited by itself, not killed
    assert check_cache(workdir / "demo.duckdb", closed=True).spans > 0


# ---- a full disk ---------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 40 MB tmpfs (root only, never skipped in CI); unmounted, holders killed, after."""
    with tmpfs(tmp_path / "small", "40m") as where:
        yield where


def test_a_full_disk_shows_on_the_status_line_and_the_console_keeps_answering(
        small_disk, tmux_server):
    command = " ".join([*LLMDECK, "demo", "--workdir", str(small_disk)])
    tmux("new-session", "-d", "-s", "full", "-x", "80", "-y", "24", "-c", str(ROOT),
         f"exec {command}")
    pid = int(tmux("display-message", "-p", "-t", "full", "#{pane_pid}").strip())
    seen = process_tree(pid)  # all of it is SIGKILLed at the end, whatever happened
    try:
        # the week's history does not fit in 40 MB (spool files and cache): a write fails
        shown = wait_pane("full", "✖ cache write failed: disk full; showing what is stored",
                          120, watch=(pid, seen))
        assert shown.splitlines()[0].startswith(" llmdeck › overview · ✖ cache write failed")
        assert "Traceback" not in shown
        tmux("send-keys", "-t", "full", "2")  # keys still work: the SLO screen, from stored data
        wait_pane("full", "llmdeck › SLOs · ✖ cache write failed: disk full", watch=(pid, seen))
        wait_pane("full", "support-chatbot", watch=(pid, seen))
        assert "Traceback" not in pane("full")
        tree = alive(process_tree(pid, seen))
        tmux("kill-session", "-t", "full")
        left = wait_gone(tree)
    finally:
        kill_tree(seen)
    assert not left, f"processes of the console's tree outlived the session: {left}"


# ---- a corrupt demo cache -------------------------------------------------------------------

def _small_cache(path: Path, hours: float = 6.0) -> None:
    """A real llmdeck cache with a few hours of demo traffic, closed (checkpointed)."""
    from console.demo.clock import SimClock
    from console.demo.config import demo_config
    from console.demo.simulator import Simulator

    config = demo_config(path)
    start = datetime(2026, 11, 24, 12, 0, 0)
    clock = SimClock(start, 10.0)
    clock.freeze()
    with Cache.open(path) as cache:
        sim = Simulator(cache, config, path.parent / f"{path.stem}-spool", clock=clock,
                        backfill=timedelta(hours=hours), workers=1)
        sim.backfill()
        sim.close()


BLOCK = 256 * 1024
HEADER = 3 * 4096


def _noise_in_every_block(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for offset in range(HEADER + 1000, len(data), BLOCK):
        data[offset:offset + 64] = os.urandom(64)
    path.write_bytes(bytes(data))


def _damaged(path: Path, damage: str) -> bytes:
    """The cache at `path` with its header zeroed or noise in every block; the damaged bytes."""
    if damage == "zeroed header":
        with path.open("r+b") as f:
            f.write(bytes(4096))
    else:
        _noise_in_every_block(path)
    return path.read_bytes()


@pytest.mark.parametrize("damage", ["noise in blocks", "zeroed header"])
def test_the_demo_moves_a_corrupt_cache_aside_and_starts_fresh(tmp_path, consoles, damage):
    workdir = tmp_path / "demo"
    workdir.mkdir()
    path = workdir / "demo.duckdb"
    _small_cache(path)
    corrupt = _damaged(path, damage)
    console = PtyConsole("demo", "--workdir", str(workdir))
    consoles.append(console)
    console.wait_for(DATA)  # the console runs, on a fresh cache
    said = bytes(console.output).split(b"\x1b[", 1)[0].decode()  # before Textual starts
    assert re.fullmatch(
        rf"llmdeck demo: {re.escape(str(path))} is corrupt \(.+\); moved it aside to"
        rf" {re.escape(str(path))}\.corrupt-\d{{8}}T\d{{6}}Z and starting on a fresh demo"
        r" cache\r\n", said), said
    aside = Path(said.split(" moved it aside to ")[1].split(" and starting")[0])
    assert aside.read_bytes() == corrupt, "the corrupt cache must be kept as it was"
    os.kill(console.pid, signal.SIGTERM)
    assert console.wait() == 128 + signal.SIGTERM
    assert b"Traceback" not in console.output_to_end()
    assert check_cache(path, closed=True).spans > 0
    assert aside.read_bytes() == corrupt


@pytest.mark.parametrize("damage", ["noise in blocks", "zeroed header"])
def test_the_console_on_a_corrupt_cache_says_so_in_one_line(tmp_path, consoles, damage):
    path = tmp_path / "cache.duckdb"
    _small_cache(path)
    corrupt = _damaged(path, damage)
    console = PtyConsole("--cache", str(path))
    consoles.append(console)
    assert console.wait() == 3
    out = console.output_to_end().decode()
    assert "\x1b[" not in out, "Textual started"  # the line comes before the console
    assert re.fullmatch(rf"llmdeck: {re.escape(str(path))} is corrupt: [^\r\n]+ run `llmdeck cache"
                        rf" reset --cache {re.escape(str(path))}`[^\r\n]+\r\n", out), out
    assert path.read_bytes() == corrupt


# ---- corruption met by one panel's query -----------------------------------------------------

def _corrupt_for_the_overview(pristine: Path, work: Path) -> Path:
    """A copy of `pristine` with noise in one block: it opens read-only, and the overview's
    query then fails on a checksum. Tries each block in turn (found, not guessed)."""
    from console.backend import Backend
    from console.cache.faults import CacheCorruptError, is_corruption
    from console.demo.config import demo_config
    from console.views import OverviewView

    size = pristine.stat().st_size
    at = datetime(2026, 11, 24, 12, 0, 0)
    for n, offset in enumerate(range(HEADER, size, BLOCK)):
        path = work / f"corrupt-{n}.duckdb"
        data = bytearray(pristine.read_bytes())
        data[offset + 1000:offset + 1064] = os.urandom(64)
        path.write_bytes(bytes(data))
        try:
            cache = Cache.open(path, read_only=True)
        except Exception:
            continue
        try:
            Backend(cache, demo_config(path), lambda: at).fetch(OverviewView())
        except Exception as exc:
            if isinstance(exc, CacheCorruptError) or is_corruption(exc):
                return path
        finally:
            cache.close()
    raise AssertionError("no block whose damage only the overview's query meets")


async def test_corruption_met_by_a_panel_query_is_that_panels_error(tmp_path):
    from console.app import LlmdeckApp
    from console.backend import Backend
    from console.demo.config import demo_config
    from tests.tui.screen_text import screen_text

    pristine = tmp_path / "pristine.duckdb"
    _small_cache(pristine, hours=24)
    path = _corrupt_for_the_overview(pristine, tmp_path)
    at = datetime(2026, 11, 24, 12, 0, 0)
    cache = Cache.open(path, read_only=True)  # opening succeeds: the damage is met later
    try:
        app = LlmdeckApp(Backend(cache, demo_config(path), lambda: at),
                         wall_clock=lambda: datetime(2026, 11, 24, 12, 0, 1))
        async with app.run_test(size=(80, 24)) as pilot:
            for _ in range(200):
                await pilot.pause(0.05)
                text = screen_text(app)
                flat = "".join(text.split())  # the panel wraps the path anywhere
                if "iscorrupt" in flat:
                    break
            assert f"{path}iscorrupt:theblockatbyte" in flat, text
            assert f"run`llmdeckcachereset--cache{path}`" in flat, text
            assert "`llmdeckingest`again" in flat, text
            first = text.splitlines()[0].strip()
            assert first.startswith("llmdeck › overview · ✖ cache corrupt: run `llmdeck cache"), first
            assert "Traceback" not in text and "_duckdb" not in text
            await pilot.press("5")  # the console stays up: another screen, other queries
            for _ in range(100):
                await pilot.pause(0.05)
                if "llmdeck › sources" in screen_text(app):
                    break
            text = screen_text(app)
            assert "llmdeck › sources · ✖ cache corrupt" in text, text
            assert app.is_running
    finally:
        cache.close()


def test_the_panels_keep_answering_after_a_full_disk_invalidates_the_cache(small_disk):
    """A checkpoint that fails on a full disk makes DuckDB refuse every later query ("database
    has been invalidated"); the console reopens the file read-only and answers as before."""
    import duckdb

    from console.backend import Backend
    from console.demo.config import demo_config
    from console.views import OverviewView

    path = small_disk / "demo.duckdb"
    _small_cache(path)
    at = datetime(2026, 11, 24, 12, 0, 0)
    cache = Cache.open(path)
    try:
        backend = Backend(cache, demo_config(path), lambda: at)
        before = backend.fetch(OverviewView()).snapshot
        # committed to the WAL; the checkpoint must then grow the file, on a full disk
        # (more than the free blocks inside the file hold)
        cache.con.execute("SET checkpoint_threshold = '1GB'")
        cache.con.execute("CREATE TABLE filler (m VARCHAR)")
        for _ in range(8):
            cache.con.execute("INSERT INTO filler SELECT md5(random()::VARCHAR) FROM range(40000)")
        assert Path(f"{path}.wal").stat().st_size > 8_000_000
        fill_disk(small_disk / "filler")
        with pytest.raises(duckdb.Error, match="No space left on device"):
            cache.con.execute("CHECKPOINT")
        with pytest.raises(duckdb.Error, match="database has been invalidated"):
            cache.cursor().execute("SELECT count(*) FROM spans").fetchall()
        after = backend.fetch(OverviewView()).snapshot
        assert after == before
        assert backend.cache is not cache and backend.cache.read_only
    finally:
        cache.close()
        if backend.cache is not cache:
            backend.cache.close()


def test_the_console_stays_up_on_a_cache_whose_damage_a_query_meets(tmp_path, consoles):
    pristine = tmp_path / "pristine.duckdb"
    _small_cache(pristine, hours=24)
    path = _corrupt_for_the_overview(pristine, tmp_path)
    console = PtyConsole("--cache", str(path))
    consoles.append(console)
    console.wait_for(rb"cache corrupt: run `llmdeck cache reset`")
    console.wait_for(rb"is corrupt: the block at byte")  # the panel's own line says where
    os.write(console.fd, b"5")  # keys still work: the sources screen
    console.wait_for(rb"llmdeck(\x1b\[[0-9;]*m)* \xe2\x80\xba sources")
    os.write(console.fd, b"q")
    assert console.wait() == 0
    assert b"Traceback" not in console.output_to_end()
