"""What went wrong with the cache file, in one line a person can act on.

DuckDB reports a damaged block, a full disk and a read-only file system as
generic `duckdb.Error`s (or as an `OSError` from our own file handling); these
classes name the fault and say what to do. Every entry point that opens or
writes the cache (the CLI, the console's panels, an ingest inside the console)
turns such an exception into one of these with `classify`, so the same fault
reads the same wherever it is met.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

import duckdb

from console.paths import default_cache_file


class CacheError(Exception):
    """A cache problem worth one clear line to the user, never a traceback."""

    path: Path | None = None
    """The file the fault is in, when `classify` named one (the cache, or a file beside it)."""


class CacheLockedError(CacheError):
    """Another process holds the cache file."""


class CacheCorruptError(CacheError):
    """The cache file is damaged (a failed block checksum, a file cut short)."""


class CacheFullError(CacheError):
    """The file system holding the cache is full (or over quota)."""


class CacheUnwritableError(CacheError):
    """The cache (or its directory) cannot be written: read-only file system, permissions."""


_CORRUPT = (
    "corrupt database file",
    "computed checksum",
    "does not match stored checksum",
    "not a valid duckdb database file",
    "the file is not a valid",
    "could not read enough bytes",
    "reading past the end of the file",
)
_FULL = ("no space left on device", "disk quota exceeded", "file too large")
_UNWRITABLE = ("read-only file system", "permission denied", "operation not permitted")
_ERRNO_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_ERRNO_UNWRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}

RESET_HINT = (
    "The cache holds only data derived from your trace files (spans and rollups): run"
    " `llmdeck cache reset` to move it aside (it is kept, not deleted) and start a fresh"
    " cache, then run `llmdeck ingest` again on your trace files."
)

_BLOCK_RE = re.compile(r"in block at location (\d+)")
_SHORT_RE = re.compile(r"attempted to read (\d+) bytes from location (\d+)")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text (its type name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def is_corruption(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(marker in text for marker in _CORRUPT)


def is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in _ERRNO_FULL:
        return True
    text = str(exc).lower()
    return any(marker in text for marker in _FULL)


def is_unwritable(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in _ERRNO_UNWRITABLE:
        return True
    text = str(exc).lower()
    return any(marker in text for marker in _UNWRITABLE)


def os_reason(exc: OSError) -> str:
    """What an OSError says went wrong, without its path (`Permission denied`)."""
    return exc.strerror or first_line(exc)


def os_what(exc: OSError) -> str:
    """What an OSError escaping a command means for it: `out of space`, `cannot use`..."""
    if exc.errno == errno.EROFS:
        return "cannot write (read-only place)"
    if exc.errno == errno.EDQUOT:
        return "over quota"
    if exc.errno == errno.ENOSPC:
        return "out of space"
    return "cannot use"


def cache_flag(path: Path | str) -> str:
    """` --cache PATH` for a command naming the cache at `path`; empty for the default cache."""
    if Path(path).absolute() == default_cache_file().absolute():
        return ""
    return f" --cache {path}"


def reset_hint(path: Path | str) -> str:
    """RESET_HINT with `--cache PATH` in the command when `path` is not the default cache."""
    return RESET_HINT.replace("`llmdeck cache reset`", f"`llmdeck cache reset{cache_flag(path)}`")


def damage(path: Path | str, exc: BaseException) -> str:
    """Where the file is damaged, from DuckDB's message: a block's byte offset, a cut, a header."""
    text = first_line(exc)
    block = _BLOCK_RE.search(text)
    if block:
        return f"the block at byte {int(block[1]):,} fails its checksum"
    short = _SHORT_RE.search(text)
    if short:
        try:
            size = f"{os.path.getsize(path):,} bytes"
        except OSError:
            size = "fewer"
        end = int(short[1]) + int(short[2])
        return f"the file is cut short (it has {size}; DuckDB needs bytes up to {end:,})"
    if "not a valid" in text.lower():
        return "its header is not a DuckDB header (overwritten, zeroed, or not a cache file at all)"
    return f"DuckDB: {text}"


def corrupt(path: Path | str, exc: BaseException) -> CacheCorruptError:
    return CacheCorruptError(f"{path} is corrupt: {damage(path, exc)}. {reset_hint(path)}")


def classify(exc: BaseException, path: Path | str) -> CacheError | None:
    """The `CacheError` this exception means for the file at `path` (the cache, or a file the
    cache is written from), or None if it is no known fault of a file: only a `duckdb.Error` or
    an `OSError` can be one (anything else, a bug say, surfaces as it is, whatever its text)."""
    if isinstance(exc, CacheError):
        return exc
    if not isinstance(exc, (duckdb.Error, OSError)):
        return None
    fault: CacheError
    if is_corruption(exc):
        fault = corrupt(path, exc)
    elif is_disk_full(exc):
        fault = CacheFullError(
            f"no space left on the device holding {path} ({first_line(exc)}); free some space"
            " (or point --cache at another disk) and run the same command again"
        )
    elif is_unwritable(exc):
        fault = CacheUnwritableError(
            f"cannot write {path} ({first_line(exc)}); make it and its directory writable, or"
            " point --cache at a writable place"
        )
    else:
        return None
    fault.path = Path(path)
    return fault
