"""`:incidents`' attention lines: an action still being sent by a live process on this host is
"sending", not an unknown outcome; one whose sender died is OUTCOME UNKNOWN with the verify
command."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from console.action_store import ActionRecord, ActionStore
from console.incident_views import action_attention


def _sent(action_id: str) -> ActionRecord:
    at = datetime(2026, 12, 5, 4, 0)
    return ActionRecord(action_id, f"key-{action_id}", f"plan-{action_id}", "switch-provider",
                        "litellm.fallbacks", "gw", "anthropic", "{}", "{}", "{}", "key", None, "", "alice",
                        "sent", "", None, at, at)


def test_an_action_this_process_is_sending_is_not_an_unknown_outcome(tmp_path: Path) -> None:
    store = ActionStore(tmp_path / "state.sqlite3")
    store.claim(_sent("a1"))  # claimed by this (live) process
    lines = action_attention(store)
    assert len(lines) == 1 and lines[0].startswith("sending: switch-provider on anthropic (a1")
    assert "OUTCOME UNKNOWN" not in lines[0]


def test_an_action_whose_sender_died_is_an_unknown_outcome(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    store = ActionStore(path)
    store.claim(_sent("b2"))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    with sqlite3.connect(path) as conn:  # as if a process that has since exited had claimed it
        conn.execute("UPDATE action_senders SET pid = ? WHERE action_id = 'b2'", (int(dead.stdout),))
    lines = action_attention(store)
    assert len(lines) == 1 and lines[0].startswith("OUTCOME UNKNOWN: switch-provider on anthropic (b2")
    assert "llmdeck runbook verify b2" in lines[0]
