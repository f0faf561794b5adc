"""SIGHUP, SIGTERM and SIGINT: a clean stop on the first, an exit at once on a second.

A closed terminal or SSH session (tmux kill-session too) sends SIGHUP; service
managers and `timeout` send SIGTERM; Ctrl-C sends SIGINT. `StopSignals` records
the first one and hands it to a listener (the console's app, which exits so
`console/launch.py` closes what it opened; `llmdeck ingest`'s stop request).
Before a listener is set and after it is removed it only records, so the
start-up or the clean-up in progress is finished rather than cut short.

The one second-signal policy, for the console and `llmdeck ingest` alike: a
second SIGINT or SIGTERM while stopping is an impatient user or a service
manager that stopped waiting, so the process exits at once (last words said,
the terminal restored, its child processes killed, `os._exit(128 + n)`): as
safe as a SIGKILL, since every write to the cache is committed whole or not at
all. A SIGHUP after the first signal is not a second one: a closed terminal
sends one, its shell another, and the console's terminal driver a third.
After a hangup the terminal's descriptors are swapped for /dev/null: every
later write (restoring the screen, Python's last flush) goes nowhere instead
of failing with EIO.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import multiprocessing
import os
import signal
import sys
import termios
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    import asyncio

SIGNALS: tuple[signal.Signals, ...] = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)
"""Every signal that asks `llmdeck` to stop."""

# What Textual's driver writes when it leaves (kitty keyboard off, normal screen, cursor
# shown, focus/mouse reports, bracketed paste off, line wrap on); CAN first ends any escape
# sequence a frame being written left open.
_LEAVE_SCREEN = ("\x18\x1b[<u\x1b[?1049l\x1b[?25h\x1b[?1004l\x1b[?1000l\x1b[?1003l"
                 "\x1b[?1015l\x1b[?1006l\x1b[?2004l\x1b[?7h\r\n")


def name(signum: int) -> str:
    """`SIGTERM` etc., for the one line said on the way out."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def exit_code(signum: int) -> int:
    """128 + the signal's number: the shell's exit status of a process the signal ended."""
    return 128 + signum


def is_repeat(signum: int) -> bool:
    """Whether `signum`, arriving while already stopping, repeats the stop rather than hurrying it.

    A SIGHUP does: the kernel sends one, the terminal's shell another (tmux kill-session),
    the console's terminal driver one more when its write fails. Nobody is waiting there.
    """
    return signum == signal.SIGHUP


def say(err: TextIO, line: str) -> None:
    """Write one line to `err`, quietly giving up if it is gone (a closed terminal)."""
    try:
        err.write(line + "\n")
        err.flush()
    except (OSError, ValueError, RuntimeError):  # RuntimeError: a signal came mid-write
        pass


class StopSignals:
    """Records the first stop signal and hands it to the listener; a second one exits at once."""

    def __init__(self, last_words: Callable[[int], None] | None = None) -> None:
        self.received: int | None = None
        self._listener: Callable[[int], None] | None = None
        self._last_words = last_words
        """Said before exiting at once on a second signal (default: one line on stderr)."""
        self._previous: dict[int, object] = {}
        self._terminal: list[Any] | None = None  # the terminal's modes before the screen
        self._screen = False  # an app took the terminal (attach): give it back on a hurry
        self.cleanups: list[Callable[[], object]] = []
        """Run after the children are killed, before exiting at once (a temporary directory)."""

    def install(self) -> None:
        """Handle the stop signals in Python from now on (main thread only)."""
        with contextlib.suppress(termios.error, OSError, ValueError, AttributeError):
            if sys.__stdin__ is not None and os.isatty(sys.__stdin__.fileno()):
                self._terminal = termios.tcgetattr(sys.__stdin__.fileno())
        for signum in SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)

    def uninstall(self) -> None:
        """Put back the handlers `install` replaced."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous.clear()

    def listen(self, listener: Callable[[int], None] | None) -> None:
        """Hand stop signals to `listener` (None: record only); one already received is handed now."""
        self._listener = listener
        if listener is not None and self.received is not None:
            listener(self.received)

    def attach(self, loop: asyncio.AbstractEventLoop, on_stop: Callable[[int], object]) -> None:
        """Run `on_stop(exit code)` on `loop` (the app's exit) for the first stop signal.

        From now on the terminal is the app's screen: exiting at once gives it back first.
        """
        self._screen = True

        def on_signal(signum: int) -> None:  # in a signal handler: hand it to the loop
            with contextlib.suppress(RuntimeError):  # the loop is closed: the app has ended
                loop.call_soon_threadsafe(on_stop, exit_code(signum))

        self.listen(on_signal)

    def detach(self) -> None:
        """Stop handing signals to the app (it is ending); they are recorded only."""
        self.listen(None)

    def handle(self, signum: int) -> None:
        """One stop signal: leave a terminal that hung up; hand the first on; exit at once on a
        second SIGINT or SIGTERM (a repeated SIGHUP is not one: see `is_repeat`)."""
        if signum == signal.SIGHUP and terminal_gone():
            detach_from_terminal()
        if self.received is None:
            self.received = signum
            if self._listener is not None:
                self._listener(signum)
            return
        if not is_repeat(signum):
            self.exit_at_once(signum)

    def exit_at_once(self, signum: int) -> None:
        """Say the last words, give the terminal back, kill the child processes, `os._exit`."""
        try:
            if self._last_words is not None:
                self._last_words(signum)
            else:
                self._say_at_once(signum)
        except BaseException:  # noqa: BLE001 - nothing may stop this exit
            pass
        kill_children()
        for cleanup in self.cleanups:
            with contextlib.suppress(Exception):
                cleanup()
        os._exit(exit_code(signum))

    def _say_at_once(self, signum: int) -> None:
        text = f"llmdeck: stopped at once by a second {name(signum)}; nothing stored was lost\n"
        if self._screen:
            text = _LEAVE_SCREEN + text
        restore_terminal(self._terminal)
        write_without_waiting(2, text.encode())

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.handle(signum)

    @property
    def exit_code(self) -> int:
        """128 + the signal number (the shell's convention), or 0 when none arrived."""
        return 0 if self.received is None else exit_code(self.received)

    def describe(self) -> str:
        """`SIGTERM` etc., for the one line said on the way out."""
        return name(self.received) if self.received is not None else ""


def restore_terminal(modes: list[Any] | None) -> None:
    """Put the terminal's modes back as they were (`termios.tcgetattr` of stdin), best effort."""
    if modes is None or sys.__stdin__ is None:
        return
    with contextlib.suppress(termios.error, OSError, ValueError):
        termios.tcsetattr(sys.__stdin__.fileno(), termios.TCSANOW, modes)


def write_without_waiting(fd: int, data: bytes) -> None:
    """Write what `fd` takes now and drop the rest: a terminal nobody reads (a stalled SSH
    session) would otherwise hold up an exit that must not wait."""
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    except OSError:
        return
    try:
        while data:
            data = data[os.write(fd, data):]
    except OSError:  # EAGAIN: full; EIO: gone
        pass
    finally:
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, fcntl.F_SETFL, flags)  # it is shared with the shell: put it back


def kill_children() -> None:
    """SIGKILL this process's worker processes (multiprocessing's), for a process exiting now."""
    try:
        children = multiprocessing.active_children()
    except (RuntimeError, OSError, ValueError):  # its bookkeeping was mid-change
        return
    for child in children:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            child.kill()


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
