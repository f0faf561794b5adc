"""The only path by which untrusted text reaches a terminal.

Trace attributes, model output, error bodies, incident titles and tenant names
can carry escape sequences (OSC title/hyperlink/clipboard, CSI, DCS), C1
controls, bidi overrides or megabyte lines. `sanitize` turns any of that into
inert, visible text: control characters become `\\xNN`, bidi controls become
`<U+202E>`, invalid UTF-8 is replaced, and length is capped. Markup safety
(Textual parses plain strings as markup) is the panels' half: they wrap the
result in `Content(...)`, never in a markup string.
"""

from __future__ import annotations

import re

DEFAULT_MAX_CHARS = 4096

# C0 except \t \n, DEL, C1 (0x80-0x9F).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_ONE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Bidi embeddings/overrides/isolates and other invisible direction marks (Trojan Source).
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _hex(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


def _bidi(match: re.Match[str]) -> str:
    return f"<U+{ord(match.group()):04X}>"


def sanitize(
    value: object, *, max_chars: int = DEFAULT_MAX_CHARS, one_line: bool = False
) -> str:
    """Make `value` safe to write to a terminal as plain text.

    `one_line` also escapes newlines and tabs (table cells, log lines).
    """
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray):
        text = bytes(value).decode("utf-8", errors="replace")
    else:
        text = str(value)
    truncated = len(text) > max_chars
    if truncated:
        text = text[:max_chars]
    # Lone surrogates (from invalid UTF-8 decoded with surrogateescape) cannot be encoded.
    text = text.encode("utf-8", errors="replace").decode("utf-8")
    text = (_CONTROL_ONE_LINE if one_line else _CONTROL).sub(_hex, text)
    text = _BIDI.sub(_bidi, text)
    if truncated:
        text += "…"
    return text


def cell(value: object, max_chars: int = 120) -> str:
    """A one-line, length-capped rendering for table cells and CLI columns."""
    return sanitize(value, max_chars=max_chars, one_line=True)
