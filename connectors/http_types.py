"""The types every connector's HTTP failure and policy is stated in: `HttpPolicy` (timeouts,
retries, breaker) and `SourceError` (what failed, safe to show).

Split from connectors/http.py, which re-exports both: a module that only catches a
`SourceError` or builds a policy need not read the client's retry machinery.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from console.config import HttpSource

ErrorKind = Literal["connect", "timeout", "http", "auth", "quota", "decode", "content_type", "breaker_open"]

_PERMANENT: frozenset[str] = frozenset({"auth", "quota", "breaker_open"})
_HTTP_FORM: frozenset[str] = frozenset({"http", "auth", "quota"})


@dataclass(frozen=True)
class HttpPolicy:
    """Timeouts, retry and breaker settings for one source (seconds)."""

    connect_timeout: float = 3.0
    read_timeout: float = 5.0
    deadline: float = 15.0  # a whole call, retries and backoff included
    max_attempts: int = 3
    backoff_base: float = 0.5
    backoff_cap: float = 8.0
    retry_after_cap: float = 30.0
    breaker_failures: int = 5
    breaker_open_seconds: float = 30.0

    @classmethod
    def for_source(cls, source: HttpSource) -> HttpPolicy:
        """The policy for a configured source: its timeout as the read timeout, three times it as deadline."""
        return cls(read_timeout=source.timeout_seconds, deadline=3 * source.timeout_seconds)


class SourceError(Exception):
    """A source could not be read; the text names the source and never carries a secret."""

    def __init__(self, source: str, kind: ErrorKind, reason: str, *, status: int | None = None,
                 retry_after: float | None = None, maybe_sent: bool = False) -> None:
        self.source = source
        self.kind: ErrorKind = kind
        self.status = status
        self.reason = reason
        self.retry_after = retry_after
        self.maybe_sent = maybe_sent
        """True when the request may have reached the server with no answer back (read timeout,
        connection lost mid-answer): a write may have taken. False when it surely did not leave
        (connect failure, open breaker) or an answer came (status)."""
        super().__init__(self._text())

    def _text(self) -> str:
        if self.status is not None and self.kind in _HTTP_FORM:
            return f"{self.source}: HTTP {self.status}: {self.reason}"
        return f"{self.source}: {self.kind}: {self.reason}"

    def __str__(self) -> str:
        return self._text()

    def __reduce__(self) -> tuple[Any, ...]:
        # copy/pickle rebuild from the fields, not from the formatted text in args
        return (type(self), (self.source, self.kind, self.reason),
                {"status": self.status, "retry_after": self.retry_after, "maybe_sent": self.maybe_sent})

    @property
    def permanent(self) -> bool:
        """True when waiting will not help (auth, exhausted quota, open breaker): the source is down."""
        return self.kind in _PERMANENT
