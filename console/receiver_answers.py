"""The receiver's answers to an exporter: 200 (or a partial success), 400, 503 with Retry-After.

Messages are one printable line, capped, and name no local path (`public_reason`); the HTTP
side (`connectors.otlp_http_codec.clean_message`) cleans them again as it encodes them.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
from dataclasses import dataclass, field

import pyarrow as pa

from connectors.otlp_http import ExportRequest, ExportResult
from console.cache.batching import QuarantineRow
from console.cache.faults import CacheCorruptError, CacheError, CacheFullError, CacheUnwritableError

RETRY_BEHIND = 1.0
"""Retry-After (seconds) when the queue is full."""
RETRY_CANNOT_WRITE = 5.0
"""Retry-After (seconds) while the cache cannot be written."""
MESSAGE_CHARS = 300
"""The longest message a client is sent (a fault's reason for `stats()` may be longer)."""


@dataclass(eq=False)
class Job:
    """One export request on its way: decoded and mapped, then stored, then answered."""

    request: ExportRequest
    seq: int
    future: concurrent.futures.Future[ExportResult]
    table: pa.Table | None = None
    quarantine: list[QuarantineRow] = field(default_factory=list)
    spans: int = 0


def answer(job: Job, result: ExportResult) -> None:
    """Answer `job` (once: a request answered already, or whose client left, keeps its answer)."""
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        job.future.set_result(result)


def stored(quarantine: list[QuarantineRow]) -> ExportResult:
    """The 200 for a committed request; a partial success naming its first rejected span."""
    rejected = len(quarantine)
    if not rejected:
        return ExportResult(200)
    first = quarantine[0][2]
    more = f" (and {rejected - 1} more)" if rejected > 1 else ""
    return ExportResult(200, rejected_spans=rejected,
                        message=clean(f"{rejected} span(s) rejected: {first}{more}"))


def unavailable(message: str, retry_after: float) -> ExportResult:
    """A 503 with Retry-After: the exporter retries by itself."""
    return ExportResult(503, message=message, retry_after=retry_after)


def bad_request(message: str) -> ExportResult:
    """A 400: the body cannot be decoded (not retried)."""
    return ExportResult(400, message=clean(message))


def public_reason(reason: str, kind: CacheError | None = None) -> str:
    """What a client is told while the cache cannot be written: the kind of fault (from its
    type when it is known, else from the reason's words), no local path."""
    fault = reason.lower()
    if isinstance(kind, CacheFullError):
        what = "its disk is full"
    elif isinstance(kind, CacheCorruptError):
        what = "its cache file is damaged"
    elif isinstance(kind, CacheUnwritableError):
        what = "its cache cannot be written"
    elif "no space left" in fault:
        what = "its disk is full"
    elif "corrupt" in fault:
        what = "its cache file is damaged"
    elif "cannot write" in fault or "permission" in fault or "read-only" in fault:
        what = "its cache cannot be written"
    else:
        what = "its cache cannot be written now"
    return f"the receiver cannot store spans now ({what}); retry later"



def clean(text: str, limit: int = MESSAGE_CHARS) -> str:
    """One line of printable text, at most `limit` characters."""
    line = "".join(c if c.isprintable() else " " for c in text.replace("\n", " "))
    return line if len(line) <= limit else line[: limit - 1] + "…"

