"""`llmdeck --read-only` sends nothing that changes anything, whatever the command says."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from console.cli import main
from tests.faults.fault_server import FaultServer, Reply


def test_global_read_only_refuses_a_confirmed_silence_and_sends_only_reads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with FaultServer() as server:
        server.route("/api/v2/alerts", Reply(200, []))
        server.route("/api/v2/silences", Reply(200, []), Reply(200, {"silenceID": "x"}))  # read, then POST
        config = tmp_path / "config.toml"
        config.write_text(f'[[sources.alertmanager]]\nname = "am"\nurl = "{server.url}"\n')
        monkeypatch.delenv("LLMDECK_READONLY", raising=False)
        code = main(["--read-only", "--config", str(config), "silence", "create", "--matcher",
                     "alertname=X", "--for", "1h", "--comment", "c", "--yes"])
        methods = [r.method for r in server.requests]
    assert code == 3
    assert "read-only" in capsys.readouterr().err
    assert methods and set(methods) == {"GET"}
    assert os.environ.get("LLMDECK_READONLY") == "1"  # every later guarded call sees it too
