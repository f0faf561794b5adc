"""One-line CLI text for errors that are the user's place or config, not a bug."""

from __future__ import annotations

import errno

from console.safe_text import cell

_OS_WHAT = {
    errno.EROFS: "cannot write (read-only place)",
    errno.ENOSPC: "out of space",
    errno.EDQUOT: "over quota",
}


def os_error_line(exc: OSError) -> str:
    """`<what>: <path>: <strerror>` for an OSError (what: `cannot use`, or what its errno means)."""
    what = _OS_WHAT.get(exc.errno or 0, "cannot use")
    where = "".join(f"{cell(name, 500)}: " for name in (exc.filename, exc.filename2)
                    if name is not None)
    return f"{what}: {where}{cell(exc.strerror or exc, 300)}"


def config_error_text(exc: Exception) -> str:
    """`llmdeck: bad config: <problem>` on one line, or a line per problem when there are more."""
    lines = str(exc).splitlines()
    if len(lines) == 1:
        return f"llmdeck: bad config: {cell(lines[0], 1000)}\n"
    return "llmdeck: bad config:\n" + "".join(f"{cell(line, 1000)}\n" for line in lines)
