"""Textual's Linux driver, made to outlive its terminal: writes after a hangup are dropped.

Textual writes the screen from a thread of its own into a bounded queue. When
the terminal goes away (SSH drops, tmux kill-session) a write fails with EIO,
that thread dies, and the next writes fill the queue and block the UI thread:
the console would hang instead of exiting. Here a failed write marks the
terminal gone and every later one is dropped, so the exit path runs to its end;
and the process sends itself the SIGHUP a hangup means, which the console
handles (console/stop_signals.py): the kernel sends it to the session leader
only, and when that is a wrapper or a shell that ignores it, nobody else would.
Only the errors of a terminal that is gone count (EIO, EPIPE, ENXIO, EBADF, a
closed stream); any other (EAGAIN on a non-blocking terminal, ENOSPC on a
redirected one) drops that frame and the console keeps running.
"""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Callable
from typing import IO, Any

from textual.drivers.linux_driver import LinuxDriver

HANGUP_ERRNOS = frozenset({errno.EIO, errno.EPIPE, errno.ENXIO, errno.EBADF})
"""What a write to a terminal that is gone fails with."""


class DroppingWrites:
    """A text stream's write and flush, dropping everything once the terminal is gone (EIO, EPIPE);
    a write failing otherwise is dropped alone."""

    def __init__(self, stream: IO[str], on_gone: Callable[[], None] = lambda: None) -> None:
        self.stream = stream
        self.gone = False
        self.on_gone = on_gone
        """Called once, by the first write finding the terminal gone."""

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                return self.stream.write(text)
            except ValueError:  # the stream was closed
                self._failed()
            except OSError as exc:
                self._check(exc)
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self.stream.flush()
            except ValueError:
                self._failed()
            except OSError as exc:
                self._check(exc)

    def _check(self, exc: OSError) -> None:
        """The terminal is gone, or only this write failed (the frame is dropped)."""
        if exc.errno in HANGUP_ERRNOS:
            self._failed()

    def _failed(self) -> None:
        self.gone = True
        self.on_gone()

    def fileno(self) -> int:
        return self.stream.fileno()

    def isatty(self) -> bool:
        return True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


class HangupSafeDriver(LinuxDriver):
    """`LinuxDriver` writing through `DroppingWrites`; a failed write raises SIGHUP here."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self._file is not None:
            self._file = DroppingWrites(self._file, _hang_up)  # type: ignore[assignment]


def _hang_up() -> None:
    os.kill(os.getpid(), signal.SIGHUP)
