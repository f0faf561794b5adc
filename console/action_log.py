"""The record of mutating actions: `$XDG_STATE_HOME/llmdeck/actions.jsonl`, one fsync'd JSON line each.

An *intent* line is written (and synced) before a mutating request leaves, an
*outcome* line after it; an intent without an outcome means the process died in
between. Lines carry who (OS user, host, SSH client), what and where, never a
secret. This is the minimal form of the audit journal a later issue builds out.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from console.operator import operator as operator
from console.paths import state_dir
from console.timeutil import utc_now

ACTIONS_FILE = "actions.jsonl"


def default_actions_file() -> Path:
    """`$XDG_STATE_HOME/llmdeck/actions.jsonl`."""
    return state_dir() / ACTIONS_FILE


def new_action_id() -> str:
    """An id tying an action's intent line to its outcome line."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class ActionLog:
    """Appends records to one JSON-lines file (directory 0700, file 0600), synced to disk."""

    path: Path = field(default_factory=default_actions_file)

    def record(self, entry: Mapping[str, object]) -> None:
        """Append `entry` with a timestamp and the operator; raises OSError if it cannot be stored."""
        line = {"ts": utc_now().isoformat(timespec="milliseconds") + "Z", **operator(), **entry}
        data = (json.dumps(line, ensure_ascii=False, sort_keys=False) + "\n").encode()
        created = not self.path.parent.exists()
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def read(self) -> list[dict[str, object]]:
        """Every record so far (for tests and a later `llmdeck audit`)."""
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
