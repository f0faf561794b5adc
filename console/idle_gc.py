"""Full garbage collections moved to the moments nobody is typing.

CPython runs a full (generation 2) collection whenever enough objects have survived
the younger ones, from whichever thread happens to allocate: in the console that is
often the middle of a key press. With an ingest running and panels refreshing every
second, a full collection took 15-45 ms of the UI thread (the GIL is held throughout),
and they set the slowest key presses (bench/responsiveness.py).

`IdleCollector` turns automatic full collections off (generation 2's threshold set out
of reach; generations 0 and 1 still collect on their own, and they are short) and runs
them itself from a timer: when there is pending work, at most every `every` seconds,
and only once no input has arrived for `quiet` seconds. Someone who never stops typing
still gets one at least every `at_most` seconds, so cyclic garbage stays bounded.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field

NEVER = 1_000_000_000
"""Generation 2 threshold that automatic collection never reaches."""


@dataclass
class IdleCollector:
    quiet: float = 0.4
    """Seconds without input before a collection may run."""
    every: float = 5.0
    """Least seconds between two collections."""
    at_most: float = 30.0
    """Most seconds between two collections while there is work, however busy the user is."""
    clock: Callable[[], float] = time.monotonic
    collect: Callable[[int], int] = gc.collect
    collections: int = 0
    """Full collections this collector ran."""
    _saved: tuple[int, ...] | None = field(default=None, repr=False)
    _last_input: float = field(default=float("-inf"), repr=False)
    _last_full: float = field(default=0.0, repr=False)

    def start(self) -> None:
        """Take over full collections (idempotent)."""
        if self._saved is None:
            self._saved = gc.get_threshold()
            gc.set_threshold(self._saved[0], self._saved[1], NEVER)
        self._last_full = self.clock()

    def stop(self) -> None:
        """Hand full collections back to CPython, with the thresholds it had."""
        if self._saved is not None:
            gc.set_threshold(*self._saved)
            self._saved = None

    @property
    def active(self) -> bool:
        return self._saved is not None

    def input_seen(self) -> None:
        """A key or mouse event arrived."""
        self._last_input = self.clock()

    def tick(self) -> bool:
        """Called often (a few times a second); runs a full collection if one is due now."""
        if self._saved is None or gc.get_count()[2] == 0:
            return False  # not started, or nothing survived into generation 2 since the last
        now = self.clock()
        since = now - self._last_full
        due = since >= self.every and now - self._last_input >= self.quiet
        if not (due or since >= self.at_most):
            return False
        self.collect(2)
        self.collections += 1
        self._last_full = self.clock()
        return True
