"""`llmdeck audit show|export`: who changed what, when, from where, with what result.

Records are written through `AuditJournal` with a fixed clock (the journal's `utc_now` is
patched), so `--since` / `--until` windows are exact; the commands run in-process through
the CLI's own parser.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from console import audit, audit_cli
from console.audit import AuditJournal
from console.cli import build_parser
from console.cli import main as cli_main

T0 = datetime(2026, 12, 5, 1, 0, 0)
HOSTILE = "\x1b]52;c;ZXZpbA==\x07\u202eevil\x1b[2J"


def _run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    parser = build_parser()
    code = audit_cli.main_audit(parser.parse_args(["audit", *args]), parser, out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AuditJournal:
    clock = iter(T0 + timedelta(minutes=10 * i) for i in range(100))
    monkeypatch.setattr(audit, "utc_now", lambda: next(clock))
    monkeypatch.setenv("SSH_CONNECTION", "198.51.100.7 40000 10.0.0.2 22")
    j = AuditJournal(tmp_path / "audit.jsonl")
    a = j.intent(action="throttle-key", target="team-a", params={"tpm_limit": 100}, pre_state_hash="p1",
                 idempotency_key="k1", origin="cli", gateway="edge", incident_id="INC-1")      # 01:00
    j.outcome(a, action="throttle-key", status="applied", detail="read back: tpm_limit 100")  # 01:10
    j.event("block-key", status="refused", detail="read-only mode", origin="key",
            target="=HYPERLINK(\"http://x\")")                                                 # 01:20
    j.intent(action="rollback-model", target=HOSTILE, params={"model": "m"}, pre_state_hash="p2",
             idempotency_key="k2", origin="palette", gateway="edge")                          # 01:30
    return j


def test_show_puts_unknown_outcomes_first_and_makes_hostile_text_inert(journal: AuditJournal) -> None:
    code, out, err = _run("show", "--journal", str(journal.path))
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith("!!! OUTCOME UNKNOWN: 1 action(s)")
    assert "rollback-model" in lines[1] and lines[1].endswith(": outcome unknown")
    assert "\x1b" not in out and "\u202e" not in out and "\\x1b]52" in out and "<U+202E>" in out
    rows = lines[lines.index(next(x for x in lines if x.startswith("time (UTC)"))) + 1:]
    assert [r.split()[2:4] for r in rows] == [["intent", "throttle-key"], ["outcome", "throttle-key"],
                                             ["event", "block-key"], ["intent", "rollback-model"]]
    assert "team-a" in rows[1] and "applied" in rows[1]  # an outcome row shows its intent's target
    assert "from 198.51.100.7" in rows[0] and "outcome unknown" in rows[3]


def test_show_since_and_unknown_filter(journal: AuditJournal, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = _run("show", "--journal", str(journal.path), "--since", "2026-12-05T01:15Z", "--json")
    got = json.loads(out)
    assert code == 0 and [r["seq"] for r in got["records"]] == [3, 4]
    assert got["records"][1]["outcome"] == "outcome unknown" and got["verification"]["ok"]
    code, out, _ = _run("show", "--journal", str(journal.path), "--unknown", "--json")
    assert [r["action"] for r in json.loads(out)["records"]] == ["rollback-model"]
    monkeypatch.setattr(audit_cli, "utc_now", lambda: T0 + timedelta(minutes=35))
    code, out, _ = _run("show", "--journal", str(journal.path), "--since", "10m", "--json")
    assert code == 0 and [r["seq"] for r in json.loads(out)["records"]] == [4]  # since 01:25


def test_export_json_joins_each_intent_with_its_outcome(journal: AuditJournal) -> None:
    code, out, err = _run("export", "--journal", str(journal.path), "--since", "2026-12-05T00:00Z",
                          "--until", "2026-12-05T02:00Z")
    doc = json.loads(out)
    assert code == 0 and err == "" and doc["verification"]["ok"]
    rows = doc["rows"]
    assert [(r["action"], r["kind"], r["status"]) for r in rows] == [
        ("throttle-key", "action", "applied"), ("block-key", "attempt", "refused"),
        ("rollback-model", "action", "outcome unknown")]
    first = rows[0]
    assert (first["started"], first["finished"]) == ("2026-12-05T01:00:00.000Z", "2026-12-05T01:10:00.000Z")
    assert (first["user"] != "", first["host"] != "", first["ssh_client"]) == (True, True, "198.51.100.7")
    assert (first["target"], first["gateway"], first["incident_id"], first["origin"]) == (
        "team-a", "edge", "INC-1", "cli")
    assert json.loads(first["params"]) == {"tpm_limit": 100} and first["detail"] == "read back: tpm_limit 100"
    _, out, _ = _run("export", "--journal", str(journal.path), "--since", "2026-12-05T01:15Z",
                     "--until", "2026-12-05T01:25Z")
    assert [r["action"] for r in json.loads(out)["rows"]] == ["block-key"]


def test_export_csv_is_inert_in_spreadsheets_and_terminals(journal: AuditJournal) -> None:
    code, out, _ = _run("export", "--journal", str(journal.path), "--format", "csv")
    assert code == 0 and "\x1b" not in out
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["action"] for r in rows] == ["throttle-key", "block-key", "rollback-model"]
    assert rows[1]["target"] == "'=HYPERLINK(\"http://x\")"  # never a formula
    assert rows[2]["target"].startswith("\\x1b]52")
    assert rows[0]["ssh_client"] == "198.51.100.7" and rows[0]["status"] == "applied"


def test_export_of_a_tampered_journal_says_so_and_exits_1(journal: AuditJournal) -> None:
    lines = journal.path.read_text().splitlines()
    journal.path.write_text("\n".join([lines[0], *lines[2:]]) + "\n")
    code, out, err = _run("export", "--journal", str(journal.path))
    assert code == 1 and json.loads(out)["verification"]["kind"] == "deleted"
    assert "the journal FAILS verification (deleted)" in err
    code, out, err = _run("show", "--journal", str(journal.path))
    assert code == 0 and "FAILS verification (deleted)" in err


def test_bad_input_and_an_unreadable_journal_exit_2(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run("export", "--since", "2026-12-05T02:00Z", "--until", "2026-12-05T01:00Z")
    assert code == 2 and "--since must be before --until" in err
    (tmp_path / "dir.jsonl").mkdir()
    code, _, err = _run("verify", "--journal", str(tmp_path / "dir.jsonl"))
    assert code == 2 and f"cannot read the audit journal {tmp_path / 'dir.jsonl'}: Is a directory" in err
    with pytest.raises(SystemExit) as info:
        cli_main(["audit", "show", "--since", "yesterday"])
    assert info.value.code == 2 and "not a time: 'yesterday'" in capsys.readouterr().err


def test_an_empty_journal_shows_and_verifies(tmp_path: Path) -> None:
    path = str(tmp_path / "none.jsonl")
    assert _run("show", "--journal", path)[1] == "no records\n"
    assert _run("verify", "--journal", path)[:2] == (0, f"ok: 0 records, chain and head intact ({path})\n")
