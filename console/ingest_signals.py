"""How `llmdeck ingest` ends early: on SIGTERM, SIGHUP or SIGINT, or on a cache fault.

The first signal only asks the ingest to stop (`Ingestor.request_stop`): the
batch being committed is finished, the rest dropped, the worker processes
stopped, and one line says how far it got; the exit code is 128 + the
signal's number, as for a process the signal ended. A second signal while
stopping (but SIGHUP, which a closed terminal and its shell each send) kills
the workers and exits at once, the one policy of `console/stop_signals.py`:
like a SIGKILL, that is safe (every batch is committed whole or not at all;
the next run resumes).
"""

from __future__ import annotations

import os
import signal
from types import TracebackType
from typing import TYPE_CHECKING, TextIO

from console.safe_text import cell
from console.stop_signals import StopSignals, exit_code, name, say

if TYPE_CHECKING:
    from console.cache.faults import CacheError
    from console.cache.ingest import Ingestor

__all__ = ["RESUME_HINT", "StopOnSignals", "reached", "resume_note", "say"]

RESUME_HINT = "run the same command again to resume where it stopped (nothing is stored twice)"


def reached(ingestor: Ingestor | None) -> str:
    """`12,000 spans stored, big.jsonl read up to byte 12,345,678 of 43,204,371 (28.6%)`."""
    stored = ingestor.spans_stored() if ingestor is not None else 0
    position = ingestor.position() if ingestor is not None else None
    if not stored and position is None:
        return "nothing stored yet"
    text = f"{stored:,} spans stored"
    if position is not None:
        path, offset = position
        text += f", {cell(path, 300)} read up to byte {offset:,}"
        try:
            size = os.stat(path).st_size
        except OSError:
            size = 0
        if size:
            text += f" of {size:,} ({100 * offset / size:.1f}%)"
    return text


def resume_note(ingestor: Ingestor | None) -> str:
    """What running the same command again does, after `reached(ingestor)`."""
    if ingestor is None or (not ingestor.spans_stored() and ingestor.position() is None):
        return "the rerun starts from the beginning"
    return "the rerun resumes right after that (nothing is stored twice)"


class StopOnSignals:
    """While in its `with` block, SIGINT, SIGTERM and SIGHUP stop the watched ingest cleanly
    (a second SIGINT or SIGTERM exits at once: `console.stop_signals`)."""

    def __init__(self, err: TextIO) -> None:
        self.err = err
        self.ingestor: Ingestor | None = None
        self.fault: CacheError | None = None
        """The cache fault that ended the ingest, if one did."""
        self._signals = StopSignals(last_words=self._at_once)
        self._said = False  # the stop line is out: a second signal adds no other

    @property
    def signum(self) -> int | None:
        """The first stop signal received, if any."""
        return self._signals.received

    def __enter__(self) -> StopOnSignals:
        self._signals.install()
        self._signals.listen(self._on_first)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._signals.uninstall()

    def watch(self, ingestor: Ingestor) -> None:
        """Stop `ingestor` on the next signal (at once if one came already)."""
        self.ingestor = ingestor
        if self.signum is not None:
            ingestor.request_stop()

    def stopped(self) -> int:
        """Say how far the stopped ingest got; return the exit code (128 + the signal)."""
        signum = self.signum if self.signum is not None else signal.SIGTERM
        say(self.err, f"llmdeck: ingest stopped by {name(signum)}: {reached(self.ingestor)};"
                      f" {RESUME_HINT}")
        self._said = True
        return exit_code(signum)

    def _on_first(self, signum: int) -> None:
        if self.ingestor is not None:
            self.ingestor.request_stop()

    def _at_once(self, signum: int) -> None:
        """A second signal: no more waiting (`StopSignals.exit_at_once` then exits)."""
        if self.ingestor is not None:
            self.ingestor.kill_workers()
        if not self._said:
            say(self.err, f"llmdeck: ingest stopped at once by a second {name(signum)}:"
                          f" {reached(self.ingestor)}; {RESUME_HINT}")
