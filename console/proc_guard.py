"""Worker processes that leave with their parent, and leave stop signals to it.

A worker started by `llmdeck` calls `guard_worker(parent, ignore)` first thing:
it then exits within about a second once `parent` is gone, however the parent
died (SIGKILL, the OOM killer), and it ignores the signals `ignore`: SIGINT and
SIGHUP, which a terminal sends to the whole process group (Ctrl-C, a closed SSH
session), and for a process-pool worker SIGTERM too (a service manager signals
the whole group; a pool worker killed while it sends a result leaves the
pool's reading thread waiting forever). The parent decides how to stop and
stops its workers itself. The parent starts workers inside
`signals_blocked(ignore)`, so a signal landing while a worker is still starting
up (before it can ignore it) waits, blocked, instead of printing the worker's
traceback. To stop sooner than the call a pool worker runs would end, the
parent sends it INTERRUPT: a call run through `call_interruptibly` then ends
in `Interrupted` (the pool sends that back like any exception), and so does
every later one.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from types import FrameType
from typing import Any, TypeVar

from console.stop_signals import SIGNALS

T = TypeVar("T")

TERMINAL_SIGNALS = frozenset({signal.SIGINT, signal.SIGHUP})
"""What a terminal sends to every process of its foreground group."""
STOP_SIGNALS = frozenset(SIGNALS)
"""Every signal that asks `llmdeck` to stop (`console.stop_signals.SIGNALS`)."""
INTERRUPT = signal.SIGUSR1
"""The parent's request to a worker: cut the call short (see `call_interruptibly`)."""
POLL_SECONDS = 0.5
"""How often a worker checks its parent is still there."""
_PR_SET_PDEATHSIG = 1
_interruptible = False  # a worker's `call_interruptibly` is running its function
_interrupted = False  # a worker was sent INTERRUPT: every call ends at once


class Interrupted(Exception):
    """A worker's call was cut short: its parent is stopping."""


def call_interruptibly(fn: Callable[..., T], *args: Any) -> T:
    """Run `fn(*args)` in a pool worker so that INTERRUPT ends it with `Interrupted`.

    Raised only while `fn` runs, never after: a worker cut short while it sends a
    result back would leave half a message in the pool's pipe, and the parent's
    reading thread waiting for the rest forever. What `fn` leaves half done in the
    worker does not matter: a parent interrupts its workers only to shut them down.
    """
    global _interruptible
    if _interrupted:
        raise Interrupted
    _interruptible = True
    try:
        return fn(*args)
    finally:
        _interruptible = False


def _on_interrupt(signum: int, frame: FrameType | None) -> None:
    global _interrupted
    _interrupted = True
    if _interruptible:
        raise Interrupted


@contextmanager
def signals_blocked(signals: frozenset[int]) -> Iterator[None]:
    """Block `signals` in this thread meanwhile (for starting a worker process).

    A child inherits the blocked set, so the signals wait until `guard_worker`
    ignores them and unblocks; here, one that arrives meanwhile is delivered
    when the block ends (not lost). The end puts back the mask as it was: a
    signal blocked before (by an enclosing block) stays blocked.
    """
    try:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    except (AttributeError, OSError, ValueError):  # no signal masks here: start it as it is
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def start_resource_tracker() -> None:
    """Start multiprocessing's resource tracker now: quiet, and out of the terminal's reach.

    Spawning a worker starts it once, handing it `sys.stderr.fileno()`. Inside a
    running Textual app that is a capture object whose descriptor is not a real
    one, and the spawn fails ("bad value(s) in fds_to_keep"); and its warnings
    (about semaphores it cleans up after a process that had to exit at once) are
    noise under our one line. So it gets /dev/null (as its descriptor 2 too, in a
    command). It ignores SIGINT and SIGTERM
    itself; started with SIGHUP blocked, a closed terminal does not end it either.
    It exits by itself once no process holds its pipe (parent and workers gone).
    Safe to call anywhere: if it cannot start (no processes, no descriptors left),
    nothing is raised; a worker spawned later then fails as it would have, and
    its caller does the work itself.
    """
    with suppress(OSError, ValueError):
        _start_resource_tracker()


def _start_resource_tracker() -> None:
    from multiprocessing import resource_tracker

    captured = sys.stderr
    # A command (stderr not captured): nothing else writes to descriptor 2 meanwhile, which
    # the tracker inherits as its stderr. Inside the console it is the screen: left alone.
    own_fd2 = captured is sys.__stderr__ and captured is not None
    with open(os.devnull, "w") as devnull:
        saved = -1
        try:
            if own_fd2:
                captured.flush()
                saved = os.dup(2)
                os.dup2(devnull.fileno(), 2)
            sys.stderr = devnull
            with signals_blocked(TERMINAL_SIGNALS):
                resource_tracker.ensure_running()
        finally:
            sys.stderr = captured
            if saved >= 0:
                os.dup2(saved, 2)
                os.close(saved)


def guard_worker(parent: int, ignore: frozenset[int] = TERMINAL_SIGNALS) -> None:
    """In a worker process: ignore `ignore`, take INTERRUPT, and exit soon after `parent` is gone.

    Two mechanisms: the kernel's parent-death signal (Linux; tied to the thread
    that started the worker, and immediate), and a daemon thread comparing
    `os.getppid()` with `parent` every POLL_SECONDS (any POSIX system; a worker
    is re-parented when its parent dies).
    """
    for signum in ignore:
        signal.signal(signum, signal.SIG_IGN)
    signal.signal(INTERRUPT, _on_interrupt)
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS | {INTERRUPT})
    except (AttributeError, OSError, ValueError):
        pass
    _set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != parent:  # it died before the signal was armed
        os._exit(1)
    threading.Thread(target=_watch, args=(parent,), name="llmdeck-parent-watch",
                     daemon=True).start()


def _set_parent_death_signal(signum: int) -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, ctypes.c_ulong(signum), 0, 0, 0)
    except (OSError, AttributeError):  # no prctl: the watching thread alone does it
        pass


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(POLL_SECONDS)
    os._exit(1)
