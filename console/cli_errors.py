"""One-line CLI text for errors that are the user's place or config, not a bug."""

from __future__ import annotations

from console.cache.faults import os_reason, os_what
from console.safe_text import cell


def os_error_line(exc: OSError) -> str:
    """`<what>: <path>: <reason>` for an OSError (what: `cannot use`, or what its errno means)."""
    where = "".join(f"{cell(name, 500)}: " for name in (exc.filename, exc.filename2)
                    if name is not None)
    return f"{os_what(exc)}: {where}{cell(os_reason(exc), 300)}"


def config_error_text(exc: Exception) -> str:
    """`llmdeck: bad config: <problem>` on one line, or a line per problem when there are more."""
    lines = str(exc).splitlines()
    if len(lines) == 1:
        return f"llmdeck: bad config: {cell(lines[0], 1000)}\n"
    return "llmdeck: bad config:\n" + "".join(f"{cell(line, 1000)}\n" for line in lines)
