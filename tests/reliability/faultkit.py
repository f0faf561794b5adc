"""Helpers the fault tests share: process trees, traffic files, cache checks, tmpfs, the CLI.

- Processes are told apart by (pid, start time) read from /proc, so a pid the
  kernel reuses for another process is never taken for one of the test's.
- `write_traffic` writes a Collector JSON-lines file and knows, per line, its
  span count and the byte offset after it: what a stored offset must match.
- `check_cache` opens a cache read-only and asserts what every fault must leave:
  no WAL recovery, each span once, rollups equal to the spans, the stored file
  offset covering exactly the lines whose spans are stored.
- `needs_root` / `needs` skip only outside CI: with CI=true nothing may skip.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[2]
LLMDECK = [sys.executable, "-m", "console.cli"]
DEADLINE = 20.0
"""Seconds for "within a few seconds": generous, for a loaded machine."""

Tree = dict[int, int]
"""Processes as pid -> start time (clock ticks after boot, /proc/PID/stat field 22)."""


# ---- CI and root ------------------------------------------------------------------------------

def in_ci() -> bool:
    """Whether this runs in CI (CI=true), where no test may skip."""
    return os.environ.get("CI") == "true"


def needs(condition: bool, reason: str) -> None:
    """Skip when `condition` is false, outside CI only; in CI fail instead."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"{reason} (CI=true: nothing may skip)")
    pytest.skip(reason)


def needs_root(what: str = "mounting a tmpfs") -> None:
    """Skip unless root, outside CI only; in CI fail instead."""
    needs(os.geteuid() == 0, f"{what} needs root")


# ---- processes --------------------------------------------------------------------------------

def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, start time) of `pid`, None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return fields[0], int(fields[1]), int(fields[19])


def _running(pid: int, start: int) -> bool:
    """Whether the process `pid` started at `start` still runs (a zombie has ended)."""
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z" and stat[2] == start


def process_tree(pid: int, into: Tree | None = None) -> Tree:
    """`pid` and every live process descending from it, added to `into` (the caller's dict,
    so what was seen survives a failing wait) and returned; processes of `into` that still
    run count as parents too, so a child outliving its parent is still found."""
    tree: Tree = {} if into is None else into
    table: dict[int, tuple[str, int, int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None and stat[0] != "Z":
            table[int(entry)] = stat
    members = {p for p, start in tree.items() if p in table and table[p][2] == start}
    if pid in table:
        members.add(pid)
    grew = True
    while grew:
        more = {p for p, (_, ppid, _) in table.items() if ppid in members} - members
        members |= more
        grew = bool(more)
    tree.update({p: table[p][2] for p in members})
    return tree


def children(pid: int, into: Tree | None = None) -> Tree:
    """The live descendants of `pid` (not `pid` itself), added to `into` and returned."""
    tree = process_tree(pid, into)
    tree.pop(pid, None)
    return tree


def alive(tree: Mapping[int, int]) -> Tree:
    """Those of `tree` still running (the same process: same pid and start time)."""
    return {pid: start for pid, start in tree.items() if _running(pid, start)}


def cmdline(pid: int) -> str:
    """The command line of `pid`, "" if it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def wait_gone(tree: Mapping[int, int], deadline: float = DEADLINE) -> dict[int, str]:
    """Those of `tree` still running after up to `deadline` seconds: pid -> command line."""
    end = time.monotonic() + deadline
    while (left := alive(tree)) and time.monotonic() < end:
        time.sleep(0.1)
    return {pid: cmdline(pid) for pid in left}


def _sigkill(pid: int, start: int) -> None:
    """SIGKILL `pid` if it is still the process started at `start` (a pidfd: no reuse race)."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:  # gone
        return
    try:
        if _running(pid, start):  # the pidfd now pins this very process
            with suppress(ProcessLookupError):
                signal.pidfd_send_signal(fd, signal.SIGKILL)
    finally:
        os.close(fd)


def kill_tree(tree: Mapping[int, int] | int, deadline: float = DEADLINE) -> None:
    """SIGKILL what is alive of `tree` (or of the tree under a pid) and of what it spawned
    meanwhile, until none of it runs or `deadline` passes; for cleanups, never fails."""
    known: Tree = process_tree(tree) if isinstance(tree, int) else dict(tree)
    end = time.monotonic() + deadline
    while True:
        if left := alive(known):  # what it spawned since: found through those still running
            process_tree(next(iter(left)), known)
            left = alive(known)
        if not left or time.monotonic() > end:
            return
        for pid, start in left.items():
            _sigkill(pid, start)
        time.sleep(0.02)


def readline(stream: IO[str], deadline: float = DEADLINE) -> str:
    """One line from `stream` (a child's stdout), failing after `deadline` seconds without one."""
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(deadline)
    assert line, f"no line in {deadline:.0f} s"
    return line[0]


class PtyProcess:
    """`python ARGV` on a pseudo-terminal of 80x24 (its session leader), its output collected as it
    comes (`reading` cleared pauses the reading: the terminal fills up); every process seen
    below it is kept in `tree` for the cleanup, even after it exited."""

    def __init__(self, *argv: str, env: Mapping[str, str] | None = None) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # the child, session leader on the pty
            os.chdir(ROOT)
            os.execve(sys.executable, [sys.executable, *argv], {**os.environ, **(env or {})})
        self.pid, self.fd = pid, fd
        self.open = True
        self.resize(24, 80)
        self.output = bytearray()
        self.status: int | None = None
        self.tree: Tree = process_tree(pid)
        self.reading = threading.Event()
        self.reading.set()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def resize(self, rows: int, cols: int) -> None:
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def _read(self) -> None:
        while self.reading.wait():
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:  # EIO once the child side has closed, EBADF once we closed it
                return
            if not chunk:
                return
            self.output += chunk

    def wait_for(self, pattern: bytes, deadline: float = 60.0) -> None:
        """Until its output matches `pattern`; fails when it exits first or after `deadline` s."""
        end = time.monotonic() + deadline
        while not re.search(pattern, bytes(self.output)):
            assert time.monotonic() < end, f"no {pattern!r} in: {bytes(self.output)[-2000:]!r}"
            assert self.poll() is None, f"exited {self.status}: {bytes(self.output)[-2000:]!r}"
            process_tree(self.pid, self.tree)
            time.sleep(0.05)

    def poll(self) -> int | None:
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
        return self.status

    def wait(self, deadline: float = DEADLINE) -> int | None:
        end = time.monotonic() + deadline
        while self.poll() is None and time.monotonic() < end:
            process_tree(self.pid, self.tree)
            time.sleep(0.05)
        return self.status

    def hang_up(self) -> None:
        """What a dropped SSH session does: the terminal's master side closes (SIGHUP, EIO)."""
        self._close()

    def output_to_end(self) -> bytes:
        """All it wrote, once it has exited and its terminal has no writer left."""
        self.reading.set()
        self._reader.join(DEADLINE)
        assert not self._reader.is_alive(), "its terminal was still open"
        return bytes(self.output)

    def kill(self) -> None:
        """SIGKILL whatever still runs of its tree, reap it, close the terminal."""
        if self.poll() is None:
            process_tree(self.pid, self.tree)
        kill_tree(self.tree)
        self.wait()
        self.reading.set()
        self._close()

    def _close(self) -> None:
        if self.open:
            self.open = False
            os.close(self.fd)


# ---- the command ------------------------------------------------------------------------------

def cli(*args: str | Path, env: Mapping[str, str] | None = None, prefix: Sequence[str] = (),
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`llmdeck ARGS` in a fresh process (`env` added to this one's), its output captured."""
    return subprocess.run([*prefix, *LLMDECK, *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL,
                          env={**os.environ, **(env or {})})


def spawn(*args: str | Path, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """`llmdeck ARGS` started in its own session (a process group, as a shell job has)."""
    return subprocess.Popen([*LLMDECK, *map(str, args)], cwd=ROOT, text=True,
                            env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)


def sha(path: Path) -> str:
    """The SHA-256 of the file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- traffic files ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Traffic:
    """A Collector JSON-lines file, and per line its span count and the byte offset after it."""

    path: Path
    counts: list[int]
    offsets: list[int]

    @property
    def spans(self) -> int:
        return sum(self.counts)

    @property
    def size(self) -> int:
        return self.offsets[-1] if self.offsets else 0


def write_traffic(path: Path, spans: int, seed: int, spans_per_request: int = 200,
                  hours: float = 6.0) -> Traffic:
    """`spans` synthetic spans over the last `hours` (recent: inside every window of now)."""
    from console.demo.traffic import TrafficModel, export_requests, write_collector_jsonl

    end = time.time_ns() // 60_000_000_000 * 60_000_000_000
    write_collector_jsonl(str(path), export_requests(
        TrafficModel(seed=seed), end - int(hours * 3600) * 10**9, end, spans, spans_per_request))
    counts, offsets, offset = [], [], 0
    with path.open("rb") as f:
        for line in f:
            offset += len(line)
            counts.append(line.count(b'"spanId"'))
            offsets.append(offset)
    assert sum(counts) == spans
    return Traffic(path, counts, offsets)


# ---- the cache afterwards ---------------------------------------------------------------------

class Stored(NamedTuple):
    """What a checked cache holds: spans, and the byte offset stored for the traffic file."""

    spans: int
    offset: int


def check_cache(path: Path, traffic: Traffic | None = None, *, closed: bool = False) -> Stored:
    """Open `path` read-only and assert it is whole: no WAL recovery, each span once, rollups
    equal to the spans, nothing quarantined and (given `traffic`, the only file ingested) the
    stored offset covering exactly the lines stored. `closed`: no WAL left (checkpointed).
    No file at all is a cache stopped before it began: nothing stored, nothing lost."""
    from console.cache.store import Cache

    if not path.exists():
        assert not closed, f"no cache at {path}"
        return Stored(0, 0)
    if closed:
        assert not Path(f"{path}.wal").exists(), "the cache was not checkpointed and closed"
    with Cache.open(path, read_only=True) as cache:
        assert cache.recovery is None, "the WAL had to be moved aside"
        cur = cache.cursor()
        spans, distinct = cur.execute(
            "SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM spans").fetchall()[0]
        minute = cur.execute("SELECT coalesce(sum(requests), 0) FROM rollup_minute").fetchall()
        hour = cur.execute("SELECT coalesce(sum(requests), 0) FROM rollup_hour").fetchall()
        files = cur.execute("SELECT path, byte_offset, line FROM ingest_files").fetchall()
        quarantined = cur.execute("SELECT count(*) FROM quarantine").fetchall()[0][0]
    assert spans == distinct, "duplicate spans"
    assert minute[0][0] == spans and hour[0][0] == spans, "rollups and spans disagree"
    assert quarantined == 0
    if traffic is None:
        return Stored(int(spans), 0)
    if not files:  # stopped before a first commit
        assert spans == 0
        return Stored(0, 0)
    ((stored_path, offset, line),) = files
    assert stored_path == str(traffic.path)
    if line == 0:  # the file noted, none of its lines stored yet
        assert offset == 0 and spans == 0
        return Stored(0, 0)
    assert offset == traffic.offsets[line - 1], "the stored offset is not a line's end"
    assert spans == sum(traffic.counts[:line]), "spans stored and offset stored disagree"
    return Stored(int(spans), int(offset))


# ---- a small disk -----------------------------------------------------------------------------

def _holders(mount: Path) -> set[int]:
    """Processes (other than this one) with a file, cwd or mapping under `mount`."""
    inside = f"{mount}/"
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        links = [f"/proc/{entry}/cwd", f"/proc/{entry}/root"]
        with suppress(OSError):
            links += [f"/proc/{entry}/fd/{fd}" for fd in os.listdir(f"/proc/{entry}/fd")]
        for link in links:
            with suppress(OSError):
                target = os.readlink(link)
                if target == str(mount) or target.startswith(inside):
                    found.add(int(entry))
                    break
        with suppress(OSError):
            if inside in Path(f"/proc/{entry}/maps").read_text():
                found.add(int(entry))
    return found


def remount(mount: Path, options: str) -> None:
    """`mount -o remount,OPTIONS` (e.g. "size=96m", "ro")."""
    subprocess.run(["mount", "-o", f"remount,{options}", str(mount)], check=True)


def fill_disk(path: Path) -> None:
    """Write zeros to `path` until its file system is full (ENOSPC); unlink it to make room again."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, bytes(1 << 16))
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A real tmpfs of `size` (e.g. "8m") mounted at `where` (created); on leaving, whatever
    process still holds a file in it is SIGKILLed and it is unmounted, whatever happened."""
    needs_root()
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                   check=True)
    try:
        yield where
    finally:
        for _ in range(3):
            for pid in _holders(where):
                if (stat := _stat(pid)) is not None:
                    kill_tree({pid: stat[2]}, deadline=5)
            if subprocess.run(["umount", str(where)], capture_output=True).returncode == 0:
                break
            time.sleep(0.2)
        else:  # held by this very process (a file left open): detach it now, freed at close
            subprocess.run(["umount", "-l", str(where)], check=False)
