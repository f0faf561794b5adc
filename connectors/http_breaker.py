"""A per-source circuit breaker: closed, open after N consecutive failed calls, half-open single probe."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Counts consecutive failed calls; while open, calls are refused until one probe may try again."""

    def __init__(self, failures: int, open_seconds: float, monotonic: Callable[[], float]) -> None:
        self.failures_to_open = max(1, failures)
        self.open_seconds = open_seconds
        self._monotonic = monotonic
        self.state: BreakerState = "closed"
        self.consecutive_failures = 0
        self.opened_at = 0.0
        self.last_failure = ""
        self._probe_in_flight = False

    def seconds_until_probe(self) -> float:
        """How long until an open breaker lets one probe through (0 when it would now)."""
        return max(0.0, self.opened_at + self.open_seconds - self._monotonic())

    def admit(self) -> bool | None:
        """None: refuse the call (open, or a probe is already out); True: this call is the probe;
        False: an ordinary call."""
        if self.state == "closed":
            return False
        if self.state == "open":
            if self.seconds_until_probe() > 0:
                return None
            self.state = "half_open"
        if self._probe_in_flight:
            return None
        self._probe_in_flight = True
        return True

    def succeeded(self, probe: bool) -> None:
        """The source answered: close the breaker."""
        if probe:
            self._probe_in_flight = False
        self.state = "closed"
        self.consecutive_failures = 0

    def failed(self, probe: bool, reason: str) -> None:
        """The source did not answer usefully (connect, timeout, 5xx, rate limit)."""
        self.last_failure = reason
        self.consecutive_failures += 1
        if probe:
            self._probe_in_flight = False
        if probe or self.state == "half_open" or self.consecutive_failures >= self.failures_to_open:
            self.state = "open"
            self.opened_at = self._monotonic()

    def released(self, probe: bool) -> None:
        """A call ended without a verdict on the source (cancelled): let another probe try."""
        if probe:
            self._probe_in_flight = False
            if self.state == "half_open":
                self.state = "open"
                self.opened_at = self._monotonic() - self.open_seconds
