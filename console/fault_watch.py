"""The cache fault the console shows on every status line, and when it is new enough to toast."""

from __future__ import annotations

from typing import Protocol

from console.backend import Fault


class FaultSource(Protocol):
    """What the watch reads: `Backend.fault()` (cheap; the UI thread calls it every second)."""

    def fault(self) -> Fault | None: ...


class FaultWatch:
    """Remembers the last cache fault read, so each new one is announced once."""

    def __init__(self) -> None:
        self.fault: Fault | None = None
        """The fault last read (None: the cache has none)."""

    @property
    def line(self) -> str | None:
        """The few words every status line shows first, or None."""
        return self.fault.line if self.fault is not None else None

    def poll(self, backend: FaultSource) -> str | None:
        """Read the backend's fault; its whole message (where, what to do) when it is new, else
        None (the same fault again, or none)."""
        fault = backend.fault()
        previous, self.fault = self.fault, fault
        if fault is not None and (previous is None or fault.line != previous.line):
            return fault.message
        return None
