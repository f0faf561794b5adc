"""SIGHUP, SIGTERM and SIGINT to the console: a clean exit instead of dying on the spot.

A closed terminal or SSH session (tmux kill-session too) sends SIGHUP; service
managers and `timeout` send SIGTERM. `StopSignals` records the first one and
hands it to the running app (which exits, so `console/launch.py` closes the
simulator, the endpoints and the cache on its way out); before the app runs and
after it has stopped it only records, so the start-up or the clean-up in
progress is finished rather than cut short. After a hangup the terminal's
descriptors are swapped for /dev/null: every later write (Textual restoring the
screen, Python's last flush) goes nowhere instead of failing with EIO.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import termios
from collections.abc import Callable
from types import FrameType

SIGNALS: tuple[signal.Signals, ...] = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """Records the first stop signal; calls the listener (the app's exit) when one is set."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._listener: Callable[[int], None] | None = None

    def install(self) -> None:
        """Handle the stop signals in Python from now on (main thread only)."""
        for signum in SIGNALS:
            signal.signal(signum, self._handle)

    def listen(self, listener: Callable[[int], None] | None) -> None:
        """Hand stop signals to `listener` (None: record only); one already received is handed now."""
        self._listener = listener
        if listener is not None and self.received is not None:
            listener(self.received)

    def handle(self, signum: int) -> None:
        """One stop signal: leave a terminal that hung up; the first is recorded and handed on
        (a repeat, such as the hangup the terminal driver raises after the kernel's, is not)."""
        if signum == signal.SIGHUP and terminal_gone():
            detach_from_terminal()
        if self.received is not None:
            return
        self.received = signum
        if self._listener is not None:
            self._listener(signum)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.handle(signum)

    @property
    def exit_code(self) -> int:
        """128 + the signal number (the shell's convention), or 0 when none arrived."""
        return 0 if self.received is None else 128 + self.received

    def describe(self) -> str:
        """`SIGTERM` etc., for the one line said on the way out."""
        return signal.Signals(self.received).name if self.received is not None else ""


def terminal_gone() -> bool:
    """Whether the terminal behind stdin/stderr has hung up (its calls fail with EIO)."""
    for stream in (sys.__stderr__, sys.__stdin__):
        if stream is None:
            continue
        try:
            termios.tcgetattr(stream.fileno())
        except termios.error as exc:
            if exc.args and exc.args[0] == errno.EIO:
                return True
        except (OSError, ValueError):
            continue
    return False


def detach_from_terminal() -> None:
    """Point descriptors 0, 1 and 2 at /dev/null (the terminal they named is gone)."""
    try:
        null = os.open(os.devnull, os.O_RDWR)
    except OSError:
        return
    for fd in (0, 1, 2):
        try:
            os.dup2(null, fd)
        except OSError:
            pass
    os.close(null)
