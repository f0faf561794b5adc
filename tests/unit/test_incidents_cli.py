"""`llmdeck incidents ...`: text and --json output, exit codes, ids, terminal safety."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from console.cli import build_parser
from console.incidents import IncidentStore
from console.incidents_cli import main_incidents
from console.operator import user_name
from console.state_db import default_state_db

ROOT = Path(__file__).resolve().parents[2]
INCIDENT_KEYS = {"id", "title", "severity", "state", "owner", "opened_at", "acknowledged_at",
                 "mitigated_at", "resolved_at", "causes", "auto", "updated_at"}
ENTRY_KEYS = {"incident_id", "seq", "at", "kind", "author", "text", "data"}


def run(*argv: str) -> tuple[int, str, str]:
    parser = build_parser()
    args = parser.parse_args(["incidents", *argv])
    out, err = io.StringIO(), io.StringIO()
    code = main_incidents(args, parser, out, err)
    return code, out.getvalue(), err.getvalue()


def run_json(*argv: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = run(*argv, "--json")
    [line] = out.splitlines()
    answer = json.loads(line)
    assert answer["exit_code"] == code
    return code, answer


def test_open_list_show_in_text() -> None:
    code, out, err = run("open", "--title", "chat errors", "--severity", "sev2", "--owner", "alice")
    assert (code, err) == (0, "")
    assert out == "opened INC-1 (sev2, owner alice): chat errors\n"
    run("open", "--title", "slow", "--cause", "slo:latency")
    code, out, _ = run("list")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:5] == ["ID", "SEV", "STATE", "AGE", "OWNER"]
    assert lines[1].startswith("INC-2 ") and "slow  [slo:latency]" in lines[1]
    assert lines[2].startswith("INC-1 ") and "alice" in lines[2]
    assert lines[-1] == "2 unresolved, 0 resolved shown"
    code, out, _ = run("show", "inc-1")
    assert code == 0
    assert out.splitlines()[0] == "INC-1  sev2  open"
    assert "title:        chat errors" in out and "owner:        alice" in out
    assert "acknowledged: -" in out
    assert out.splitlines()[-1].split()[2:] == ["opened", user_name(), "chat", "errors"]


def test_lifecycle_and_errors_with_exit_codes() -> None:
    run("open", "--title", "x")
    assert run("ack", "1", "--note", "on it")[0] == 0
    code, out, err = run("ack", "INC-1")
    assert (code, out) == (1, "")
    assert err == "llmdeck: incidents ack: INC-1 is already acknowledged\n"
    code, out, _ = run("mitigate", "1")
    assert (code, out.split()[:3]) == (0, ["INC-1", "is", "mitigated"])
    assert run("resolve", "1")[0] == 0
    code, _, err = run("resolve", "1")
    assert code == 1 and "INC-1 is already resolved" in err
    code, _, err = run("note", "7", "hello")
    assert code == 1 and err.startswith("llmdeck: incidents note: no incident INC-7 ")
    code, out, _ = run("note", "1", "post-mortem on Monday")
    assert code == 0 and out == "noted on INC-1 (#5): post-mortem on Monday\n"
    code, out, _ = run("list")
    assert out == "no unresolved incidents (--all shows resolved ones too)\n"
    code, out, _ = run("list", "--all")
    assert "INC-1" in out and out.splitlines()[-1] == "0 unresolved, 1 resolved shown"
    kinds = [e.kind for e in IncidentStore().timeline("1")]
    assert kinds == ["opened", "state", "state", "state", "note"]


def test_json_shapes_are_stable() -> None:
    code, opened = run_json("open", "--title", "t", "--cause", "budget:team-a")
    assert code == 0 and opened["created"] is True
    assert set(opened["incident"]) == INCIDENT_KEYS
    inc = opened["incident"]
    assert inc["id"] == "INC-1" and inc["causes"] == ["budget:team-a"] and inc["auto"] is False
    assert inc["opened_at"].endswith("Z") and inc["resolved_at"] is None
    code, again = run_json("open", "--title", "t2", "--cause", "budget:team-a")
    assert code == 0 and again["created"] is False and again["incident"]["id"] == "INC-1"
    code, noted = run_json("note", "1", "n1")
    assert set(noted) == {"incident", "entry", "exit_code"} and set(noted["entry"]) == ENTRY_KEYS
    assert noted["entry"]["kind"] == "note" and noted["entry"]["seq"] == 2
    code, acked = run_json("ack", "1")
    assert set(acked) == {"incident", "exit_code"} and acked["incident"]["state"] == "acknowledged"
    code, shown = run_json("show", "1")
    assert set(shown) == {"incident", "timeline", "exit_code"}
    assert [e["kind"] for e in shown["timeline"]] == ["opened", "note", "state"]
    assert shown["timeline"][0]["data"]["cause"] == "budget:team-a"
    code, listed = run_json("list", "--all")
    assert set(listed) == {"incidents", "count", "exit_code"} and listed["count"] == 1
    code, failed = run_json("mitigate", "99")
    assert code == 1 and set(failed) == {"error", "exit_code"}
    assert failed["error"].startswith("no incident INC-99")


def test_refused_input_exits_1_with_a_clear_message() -> None:
    code, _, err = run("open", "--title", "x" * 201)
    assert code == 1 and "the title is 201 characters; at most 200" in err
    code, _, err = run("open", "--title", "   ")
    assert code == 1 and "the title is empty" in err
    with pytest.raises(SystemExit):  # argparse refuses an unknown severity before the store
        run("open", "--title", "x", "--severity", "sev9")


def test_untrusted_text_is_cleaned_in_text_and_escaped_in_json() -> None:
    evil = "pwn \x1b]52;c;Zm9v\x07 \x1b[2J\u202etxt\u202c\nsecond line"
    run("open", "--title", "x")
    run("note", "1", evil)
    IncidentStore().open("\x1b[31mred\x9b title", owner="\x1b]0;owner\x07")
    for argv in (("show", "1"), ("list",), ("show", "2"), ("note", "1", evil)):
        code, out, err = run(*argv)
        assert code == 0
        assert not any(ch in out for ch in "\x1b\x07\x9b\u202e\u202c"), argv
    code, out, _ = run("show", "1", "--json")
    assert out.isascii() and "\\u001b]52" in out
    assert json.loads(out)["timeline"][-1]["text"] == evil  # stored as given


def test_an_unusable_state_file_exits_2() -> None:
    path = default_state_db()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"garbage, not SQLite " * 100)
    code, out, err = run("list")
    assert code == 2 and out == ""
    assert err.startswith(f"llmdeck: incidents list: cannot use the state file {path}: ")
    code, answer = run_json("open", "--title", "x")
    assert code == 2 and answer["error"].startswith("cannot use the state file")


def test_the_real_command_line_works_without_a_config(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    (Path(env["XDG_CONFIG_HOME"]) / "llmdeck").mkdir(parents=True)
    (Path(env["XDG_CONFIG_HOME"]) / "llmdeck" / "config.toml").write_text("this is [not toml\n")
    cmd = [sys.executable, "-m", "console.cli", "incidents"]
    done = subprocess.run([*cmd, "open", "--title", "from the shell", "--json"], env=env,
                          capture_output=True, text=True, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["incident"]["id"] == "INC-1"
    done = subprocess.run([*cmd, "resolve", "1"], env=env, capture_output=True, text=True,
                          check=False, cwd=tmp_path)
    assert done.returncode == 0 and "INC-1 is resolved" in done.stdout
    done = subprocess.run([*cmd, "resolve", "1"], env=env, capture_output=True, text=True,
                          check=False, cwd=tmp_path)
    assert done.returncode == 1 and "INC-1 is already resolved" in done.stderr


def test_show_data_prints_each_entrys_data_cleaned() -> None:
    store = IncidentStore()
    inc, _ = store.open("x", cause="slo:chat")
    store.add_entry(inc.id, "alert_firing", "slo:chat firing", data={"burn": {"1h": 14.4},
                                                                     "label": "\x1b[2Jv"})
    code, out, _ = run("show", "1", "--data")
    assert code == 0
    lines = out.splitlines()
    firing = lines.index(next(line for line in lines if "alert_firing" in line))
    assert lines[firing + 1].strip().startswith('data: {"burn": {"1h": 14.4}, "label": "\\u001b[2Jv"}')
    assert "\x1b" not in out
    assert "data:" not in run("show", "1")[1]


def test_every_control_and_bidi_character_is_inert_in_text_output() -> None:
    dangerous = [chr(c) for c in (*range(0x00, 0x20), *range(0x7f, 0xa0))]
    dangerous += list("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
    hostile = "".join(f"{ch}x" for ch in dangerous)
    store = IncidentStore()
    inc, _ = store.open(hostile[:200], owner=hostile[:100], cause=hostile[:300])
    store.note(inc.id, hostile)
    store.add_entry(inc.id, "action_outcome", hostile, author=hostile[:100], data={"k": hostile})
    outputs = [run("show", "1", "--data")[1], run("list")[1], run("note", "1", hostile)[1],
               run("ack", "1")[1]]
    for out in outputs:
        for line in out.split("\n"):  # the CLI's own line ends (splitlines would eat \x1c, \x85)
            assert not [ch for ch in dangerous if ch in line]
        assert "\\x0ax\\x0bx" in out  # a newline in the text is shown escaped, not obeyed
