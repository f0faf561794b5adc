"""Text that leaves an HTTP exchange: short error reasons with control characters and secrets removed.

Everything here is pure: a `Redactor` knows the secret header values of one client and
masks them (and anything shaped like a key) in any text; `short_reason` reduces an error
body (JSON, HTML page or plain text) to one printable line; `retry_after_seconds` reads
`retry-after-ms` / `Retry-After` (seconds or HTTP-date); `says_quota_exhausted` tells a
spend-limit 429 from a rate-limit one.
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from console.config_errors import _SECRET_SHAPES

MASK = "***"
REASON_LIMIT = 200
_BODY_PEEK = 65536
_WHITESPACE = re.compile(r"\s+")
_ESCAPE_SEQUENCE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_HTML_START = re.compile(r"\s*(?:<!doctype\s+html|<html|<head|<body)", re.IGNORECASE)
_QUERY = re.compile(r"(\b[a-z][a-z0-9+.\-]*://[^\s?#'\"<>]*)\?[^\s#'\"<>]*", re.IGNORECASE)
_QUOTA = re.compile(
    r"quota|spend(?:ing)?[\s_\-]*(?:limit|cap)|billing|credit|budget"
    r"|insufficient[\s_\-]*(?:funds|balance)",
    re.IGNORECASE,
)
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_EXPLAINING_HEADER = re.compile(r"error|reason|code|type|quota|limit|budget|billing", re.IGNORECASE)
_MIN_SECRET = 4


def _variants(value: str) -> set[str]:
    """A secret header value and the parts of it that could be echoed alone (token, basic password)."""
    found = {value}
    scheme, _, token = value.partition(" ")
    if token:
        found.add(token.strip())
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                decoded = ""
            if decoded:
                found.add(decoded)
                found.add(decoded.partition(":")[2])
    return {v for v in found if len(v) >= _MIN_SECRET}


class Redactor:
    """Masks known secret values and secret-shaped strings in text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        for value in secrets:
            self.add(value)

    def add(self, value: str) -> None:
        """Remember one more secret value (and its token / password parts)."""
        if value:
            self._secrets |= _variants(value)

    @property
    def secrets(self) -> frozenset[str]:
        """Every value this redactor masks by name."""
        return frozenset(self._secrets)

    def __call__(self, text: str) -> str:
        # Longest first, so a whole "Bearer x" is masked before its token alone.
        for value in sorted(self._secrets, key=len, reverse=True):
            if value in text:
                text = text.replace(value, MASK)
        return _SECRET_SHAPES.sub(_mask_unless_uuid, text)

    def known(self, text: str) -> str:
        """`text` with only the known secret values masked (no shape guessing: ids stay readable)."""
        for value in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(value, MASK)
        return text

    def known_bytes(self, data: bytes) -> bytes:
        """`data` (an answer's body, before decoding) with the known secret values masked."""
        for value in sorted(self._secrets, key=len, reverse=True):
            raw = value.encode()
            if raw in data:
                data = data.replace(raw, MASK.encode())
        return data


def _mask_unless_uuid(match: re.Match[str]) -> str:
    """A secret-shaped match masked, except a canonical UUID (silence and request ids are UUIDs)."""
    return match.group(0) if _UUID.fullmatch(match.group(0)) else MASK


def strip_query(text: str) -> str:
    """Every URL in `text` with its query string replaced by `?***`."""
    return _QUERY.sub(lambda m: f"{m.group(1)}?{MASK}", text)


def printable(text: str) -> str:
    """One line: whitespace runs collapsed, control and format characters (bidi, zero-width) removed."""
    text = "".join(" " if unicodedata.category(c) == "Cc" else c for c in _ESCAPE_SEQUENCE.sub("", text))
    text = _WHITESPACE.sub(" ", text)
    return "".join(c for c in text if unicodedata.category(c) not in ("Cf", "Cs", "Co")).strip()


def clean(text: str, redact: Redactor, limit: int = REASON_LIMIT) -> str:
    """`text` made safe to show: secrets masked, query strings dropped, printable, capped at `limit`."""
    text = redact(strip_query(printable(redact(text))))
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _json_reason(doc: Any) -> str | None:
    """The message of a JSON error document: `error`, `message` or `detail`, with `errorType` if any."""
    if isinstance(doc, str):
        return doc
    if not isinstance(doc, dict):
        return None
    loc, msg = doc.get("loc"), doc.get("msg")
    if isinstance(loc, list) and isinstance(msg, str) and msg:  # one FastAPI validation problem (422)
        where = ".".join(str(part) for part in loc if part != "body")
        return f"{where}: {msg}" if where else msg
    kind = doc.get("errorType") or doc.get("type") or doc.get("code")
    for key in ("error", "message", "detail", "msg"):
        value = doc.get(key)
        if isinstance(value, dict):
            inner = _json_reason(value)
            if inner:
                return inner
        elif isinstance(value, list) and value:
            parts = [_json_reason(v) if isinstance(v, dict) else str(v) for v in value[:3]]
            return "; ".join(p for p in parts if p)
        elif isinstance(value, str) and value:
            return f"{kind}: {value}" if isinstance(kind, str) and kind and kind not in value else value
    return None


def looks_like_html(body: str, content_type: str) -> bool:
    """True for an HTML page (by content type or by its first tag)."""
    return "html" in content_type.lower() or _HTML_START.match(body) is not None


def html_title(body: str) -> str | None:
    """The `<title>` of an HTML page, unescaped, or None."""
    match = _TITLE.search(body)
    if match is None:
        return None
    return html.unescape(match.group(1)) or None


def body_text(content: bytes) -> str:
    """The first part of a body as text (undecodable bytes replaced)."""
    return content[:_BODY_PEEK].decode("utf-8", errors="replace")


def short_reason(content: bytes, content_type: str, redact: Redactor, fallback: str) -> str:
    """One short printable line saying what an error body says (or `fallback` for an empty body)."""
    body = body_text(content)
    reason: str | None = None
    if looks_like_html(body, content_type):
        title = html_title(body)
        reason = f"HTML error page: {title}" if title and printable(title) else "HTML error page"
    else:
        try:
            reason = _json_reason(json.loads(body)) if body.strip()[:1] in ('{', '[', '"') else None
        except ValueError:
            reason = None
        if reason is None:
            reason = body
    return clean(reason, redact) or clean(fallback, redact)


def says_quota_exhausted(content: bytes, headers: Mapping[str, str]) -> bool:
    """True when a 429's body or an explaining header (error, reason, code, quota...) says a spend
    limit, quota, budget or credits ran out; a `Via: billing-proxy` does not count."""
    if _QUOTA.search(body_text(content)):
        return True
    return any(_QUOTA.search(value) for name, value in headers.items() if _EXPLAINING_HEADER.search(name))


def retry_after_seconds(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds the server asks to wait: `retry-after-ms`, else `Retry-After` (seconds or HTTP-date)."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
