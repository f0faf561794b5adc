"""Textual's Linux driver, made to outlive its terminal: writes after a hangup are dropped.

Textual writes the screen from a thread of its own into a bounded queue. When
the terminal goes away (SSH drops, tmux kill-session) a write fails with EIO,
that thread dies, and the next writes fill the queue and block the UI thread:
the console would hang instead of exiting. Here a failed write marks the
terminal gone and every later one is dropped, so the exit path runs to its end.
"""

from __future__ import annotations

from typing import IO, Any

from textual.drivers.linux_driver import LinuxDriver


class DroppingWrites:
    """A text stream's write and flush, dropping everything once one has failed (EIO, EPIPE)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.gone = False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                return self.stream.write(text)
            except (OSError, ValueError):  # ValueError: the stream was closed
                self.gone = True
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self.stream.flush()
            except (OSError, ValueError):
                self.gone = True

    def fileno(self) -> int:
        return self.stream.fileno()

    def isatty(self) -> bool:
        return True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


class HangupSafeDriver(LinuxDriver):
    """`LinuxDriver` writing through `DroppingWrites`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self._file is not None:
            self._file = DroppingWrites(self._file)  # type: ignore[assignment]
