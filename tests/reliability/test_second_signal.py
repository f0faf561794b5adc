"""The one second-signal policy and the terminal faults that are not a hangup, for real.

- A console whose terminal stopped reading (a stalled SSH session: its writes
  block) cannot finish the clean exit a SIGTERM asks for; a second SIGTERM
  ends it at once, with no process of its tree left and the cache whole.
- A second SIGINT/SIGTERM gives the terminal back (normal screen, cursor), says
  one line, kills the multiprocessing children and exits 128+n; a SIGHUP in
  between (the shell's, after the kernel's) is not a second signal.
- A terminal write failing with EAGAIN (a non-blocking terminal nobody reads)
  drops that frame only; EIO (the terminal gone) stops every later write once.
- `signals_blocked` puts back the mask it found; `start_resource_tracker`
  with no descriptor left raises nothing.
"""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.faultkit import (
    DEADLINE,
    LLMDECK,
    ROOT,
    PtyProcess,
    alive,
    check_cache,
    children,
    process_tree,
    wait_gone,
)

WRITE = {"x86_64": 1, "aarch64": 64, "riscv64": 64, "i686": 4}.get(os.uname().machine, 1)
"""The number of the write system call (/proc/PID/task/TID/syscall names calls by number)."""
DATA = rb"data \d\d:\d\d:\d\dZ"
"""The status line once a view was fetched: the console is up and answering."""


class Pty(PtyProcess):
    """`python ARGV` on a pseudo-terminal; it can tell when its writes to the terminal block."""

    def blocked_writing(self) -> bool:
        """Whether a thread of it waits in write(2, ...): the terminal takes no more."""
        for task in Path(f"/proc/{self.pid}/task").glob("*"):
            try:
                call = (task / "syscall").read_text().split()
            except OSError:
                continue
            if call[:2] == [str(WRITE), "0x2"]:
                return True
        return False

    def fill(self) -> None:
        """With reading paused: resize (a whole repaint each) until its writes block."""
        end = time.monotonic() + DEADLINE
        sizes = [(30, 100), (24, 80)]
        while True:
            if self.blocked_writing():
                time.sleep(0.3)
                if self.blocked_writing():  # still: not a write that was about to return
                    return
            assert time.monotonic() < end, "its writes to the terminal never blocked"
            self.resize(*sizes[0])
            sizes.reverse()
            time.sleep(0.2)


@pytest.fixture
def ptys() -> Iterator[list[Pty]]:
    started: list[Pty] = []
    yield started
    for p in started:
        p.kill()


@pytest.mark.slow
@pytest.mark.parametrize("workdir", ["given", "temporary"])
def test_a_second_sigterm_ends_a_console_whose_clean_exit_is_held_up(tmp_path, ptys, workdir):
    given = tmp_path / "demo"
    temp = tmp_path / "tmp"
    temp.mkdir()
    where = ["--workdir", str(given)] if workdir == "given" else []
    console = Pty(*LLMDECK[1:], "demo", *where, env={"TMPDIR": str(temp)})
    ptys.append(console)
    console.wait_for(DATA)
    end = time.monotonic() + DEADLINE  # the backfill's helper processes are running
    while len(alive(children(console.pid, console.tree))) <= 1:
        assert time.monotonic() < end, "no backfill helper processes"
        time.sleep(0.05)
    # The terminal stops reading (a stalled SSH session); a resize makes the console repaint
    # all of it, more than the terminal holds: its writes block, and so does its exit.
    console.reading.clear()
    console.fill()
    os.kill(console.pid, signal.SIGTERM)
    assert console.wait(2.0) is None, "the clean exit was expected to be held up"
    os.kill(console.pid, signal.SIGTERM)  # impatient: now
    status = console.wait()
    assert status == 128 + signal.SIGTERM, f"exit status {status} after a second SIGTERM"
    assert not wait_gone(console.tree), "processes of the console's tree outlived it"
    assert b"Traceback" not in console.output_to_end()
    if workdir == "given":
        assert check_cache(given / "demo.duckdb").spans > 0
    else:  # its own temporary directory is removed even so
        assert not list(temp.iterdir()), f"left behind: {list(temp.iterdir())}"


# A stand-in for a console whose clean exit never comes: its screen taken, a child process
# running, the first signal handed to an event loop that never runs.
_HELD_UP = """
import asyncio, multiprocessing, os, sys, time, tty
from console.stop_signals import StopSignals
stop = StopSignals()
stop.install()
child = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(3600,))
child.start()
tty.setraw(0)
stop.attach(asyncio.new_event_loop(), print)
os.write(2, b"\\x1b[?1049hscreen taken\\r\\n")
while stop.received is None:
    time.sleep(0.02)
os.write(2, b"stopping\\r\\n")
while True:
    time.sleep(1)
"""


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT])
def test_a_second_signal_gives_the_terminal_back_and_leaves_no_child(ptys, second):
    held = Pty("-c", _HELD_UP)
    ptys.append(held)
    held.wait_for(b"screen taken")
    while len(held.tree) < 2:  # the child process runs
        process_tree(held.pid, held.tree)
        time.sleep(0.02)
    os.kill(held.pid, signal.SIGTERM)
    held.wait_for(b"stopping")
    os.kill(held.pid, signal.SIGHUP)  # the shell's hangup: not a second signal
    os.kill(held.pid, second)
    status = held.wait()
    assert status == 128 + second, f"exit status {status}: {bytes(held.output)!r}"
    assert not wait_gone(held.tree), "its child process outlived it"
    out = held.output_to_end()
    after = out[out.index(b"stopping"):]
    assert b"\x1b[?1049l" in after and b"\x1b[?25h" in after  # normal screen, cursor shown
    name = signal.Signals(second).name.encode()
    assert b"llmdeck: stopped at once by a second " + name + b"; nothing stored was lost" in after
    assert b"Traceback" not in out


def test_a_terminal_write_failing_with_eagain_drops_only_that_frame():
    from panels.terminal_driver import DroppingWrites

    master, slave = pty.openpty()
    flags = fcntl.fcntl(slave, fcntl.F_GETFL)
    fcntl.fcntl(slave, fcntl.F_SETFL, flags | os.O_NONBLOCK)  # a non-blocking terminal
    hangups: list[int] = []
    stream = open(slave, "w", encoding="utf-8")  # noqa: SIM115 - closed below
    writes = DroppingWrites(stream, lambda: hangups.append(1))
    try:
        frame = "x" * 8192
        written = 0
        for _ in range(64):  # far more than the terminal holds while nobody reads it
            writes.write(frame)
            writes.flush()
            written += len(frame)
        held = _drain(master)
        assert held < written, "no write was refused: the fault did not happen"
        assert not writes.gone and not hangups, "EAGAIN was taken for a hangup"
        _drain(master)
        writes.write("\r\nstill here\r\n")
        writes.flush()
        assert b"still here" in _read_some(master)
        os.close(master)  # the terminal goes away: EIO
        master = -1
        for _ in range(3):
            writes.write("gone\r\n")
            writes.flush()
        assert writes.gone and hangups == [1], "EIO must stop the writes, once"
    finally:
        if master >= 0:
            os.close(master)
        try:
            stream.close()
        except OSError:
            pass


def _drain(fd: int) -> int:
    """Read everything `fd` holds now; how many bytes that was."""
    total = 0
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            time.sleep(0.05)
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                return total
        if not chunk:
            return total
        total += len(chunk)


def _read_some(fd: int) -> bytes:
    end = time.monotonic() + DEADLINE
    got = b""
    while b"\n" not in got.split(b"still here", 1)[-1] or b"still here" not in got:
        try:
            got += os.read(fd, 65536)
        except BlockingIOError:
            assert time.monotonic() < end, f"nothing more written after the dropped frames: {got!r}"
            time.sleep(0.02)
    return got


def test_signals_blocked_puts_back_the_mask_it_found():
    from console.proc_guard import signals_blocked

    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
    try:
        with signals_blocked(frozenset({signal.SIGUSR2, signal.SIGWINCH})):
            assert {signal.SIGUSR2, signal.SIGWINCH} <= signal.pthread_sigmask(signal.SIG_BLOCK, [])
        now = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        assert signal.SIGUSR2 in now, "a signal blocked before the block was unblocked"
        assert signal.SIGWINCH not in now
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def test_start_resource_tracker_with_no_descriptor_left_raises_nothing():
    script = (
        "import os, resource\n"
        "from console.proc_guard import start_resource_tracker\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))\n"
        "held = []\n"
        "try:\n"
        "    while True: held.append(os.open(os.devnull, os.O_RDONLY))\n"
        "except OSError: pass\n"
        "start_resource_tracker()\n"
        "for fd in held: os.close(fd)\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr
    assert "Traceback" not in done.stderr


def test_the_stop_signal_set_is_one():
    from console import ingest_signals, proc_guard, stop_signals

    assert proc_guard.STOP_SIGNALS == frozenset(stop_signals.SIGNALS)
    assert ingest_signals.say is stop_signals.say
    assert [stop_signals.is_repeat(s) for s in stop_signals.SIGNALS] == [True, False, False]
    assert stop_signals.exit_code(signal.SIGTERM) == 143 and stop_signals.name(2) == "SIGINT"
