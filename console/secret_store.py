"""The plaintext secret store used only with `--insecure-storage`: one 0600 file per secret in a 0700 dir.

Modes are set when a file is created (`os.open(..., O_CREAT | O_EXCL, 0o600)` and an
explicit `fchmod`), never left to the umask, and checked on every read: a file or
directory that the group or others can reach, that another user owns, or that is a
symlink is refused with a message saying how to fix it. Values are never part of a
message.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from urllib.parse import quote

_PRIVATE = 0o077  # group and other bits: any of them set means "too open"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class StoreProblem(Exception):
    """The plaintext store cannot be used as it is (message says why and what to do)."""


def file_name(service: str, name: str) -> str:
    """The file that holds `keyring:SERVICE/NAME` (percent-encoded, so no `/` or `..`)."""
    return quote(f"{service}/{name}", safe="")


def _check_mode(path: Path, st: os.stat_result, what: str, fix: int) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise StoreProblem(f"refusing the insecure store: {path} is a symlink; remove it")
    if st.st_uid != os.getuid():
        raise StoreProblem(f"refusing the insecure store: {path} belongs to uid {st.st_uid}, not you")
    mode = stat.S_IMODE(st.st_mode)
    if mode & _PRIVATE:
        raise StoreProblem(
            f"refusing the insecure store: {what} {path} is mode {mode:04o} (group or others can"
            f" reach it); run `chmod {fix:o} {path}`"
        )


class FileStore:
    """Secrets as files under `directory`, which is created 0700 on the first write."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _dir_ok(self, create: bool) -> bool:
        """True if the directory exists and is private; creates it (0700) when `create`."""
        try:
            st = os.lstat(self.directory)
        except FileNotFoundError:
            if not create:
                return False
            self.directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.mkdir(self.directory, 0o700)
            os.chmod(self.directory, 0o700)  # the umask may have taken bits away; set exactly
            st = os.lstat(self.directory)
        if not stat.S_ISDIR(st.st_mode) and not stat.S_ISLNK(st.st_mode):
            raise StoreProblem(f"refusing the insecure store: {self.directory} is not a directory")
        _check_mode(self.directory, st, "directory", 0o700)
        return True

    def path(self, service: str, name: str) -> Path:
        """Where `keyring:SERVICE/NAME` is (or would be) kept."""
        return self.directory / file_name(service, name)

    def get(self, service: str, name: str) -> str | None:
        """The stored value, or None when there is none."""
        if not self._dir_ok(create=False):
            return None
        path = self.path(service, name)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        _check_mode(path, st, "file", 0o600)
        if not stat.S_ISREG(st.st_mode):
            raise StoreProblem(f"refusing the insecure store: {path} is not a regular file")
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
        with os.fdopen(fd, "rb") as f:
            data = f.read()
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise StoreProblem(f"{path} is not UTF-8 text; set the secret again") from None

    def set(self, service: str, name: str, value: str) -> Path:
        """Write the value to a new 0600 file and move it into place; returns its path."""
        self._dir_ok(create=True)
        path = self.path(service, name)
        tmp = self.directory / f".{path.name}.{os.getpid()}.tmp"
        try:
            os.unlink(tmp)  # left by a crashed earlier write
        except FileNotFoundError:
            pass
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | _NOFOLLOW, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, value.encode("utf-8"))
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        os.replace(tmp, path)
        return path

    def delete(self, service: str, name: str) -> bool:
        """Remove the secret; False when there was none."""
        if not self._dir_ok(create=False):
            return False
        try:
            os.unlink(self.path(service, name))
        except FileNotFoundError:
            return False
        return True
