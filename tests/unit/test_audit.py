"""The audit journal keeps what happened, never a secret, one chain across processes, and
an action whose process died between intent and outcome shows as "outcome unknown".

Concurrency and crashes use real processes: two appenders released at once by a go-file,
and a child killed with SIGKILL after its intent (and, for a silence, after the POST reached
a loopback Alertmanager that never answers).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from console.audit import MASK, AuditError, AuditJournal, redact_params
from console.audit_cli import add_parser, main_audit
from console.audit_redact import scrub
from tests.faults.fault_server import FaultServer, Hang, Reply
from tests.integration.servers import wait_until

ROOT = Path(__file__).resolve().parents[2]
CANARY = "sk-canary0123456789abcdef"


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMDECK_")}
    env.update(PYTHONPATH=str(ROOT), XDG_STATE_HOME=str(tmp_path / "state"),
               XDG_CONFIG_HOME=str(tmp_path / "config"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    return env


def _llmdeck(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "console.cli", *args], cwd=ROOT, env=_env(tmp_path),
                          capture_output=True, text=True, timeout=120, check=False)


def test_redact_params_masks_declared_named_and_shaped_secrets_at_any_depth() -> None:
    params = {"key": CANARY, "tpm_limit": 100, "max_tokens": 5, "api_key": "short",
              "password": "hunter2", "note": f"use {CANARY} now", "auth": "Bearer abc",
              "declared": "plain-looking",
              "nested": {"authorization": "x", "list": ["ok", "ghp_abcdefghijklmnop1234"]},
              "silence_id": "bee2d90d-954a-4d4a-9a45-913e0e93fdb2", "model": "gpt-4o",
              "litellm_params": {"api_key": "x", "api_base": "http://h"}}
    got = redact_params(params, secret_names={"declared"})
    assert got == {"key": MASK, "tpm_limit": 100, "max_tokens": 5, "api_key": MASK, "password": MASK,
                   "note": f"use {MASK} now", "auth": MASK, "declared": MASK,
                   "nested": {"authorization": MASK, "list": ["ok", MASK]},
                   "silence_id": "bee2d90d-954a-4d4a-9a45-913e0e93fdb2", "model": "gpt-4o",
                   "litellm_params": {"api_key": MASK, "api_base": "http://h"}}


def test_hex_ids_are_identifiers_not_secrets_but_declared_secrets_stay_masked() -> None:
    """A LiteLLM deployment id (64-hex sha256), a key hash and a commit SHA name what was changed:
    masked, the action could not be verified and the journal could not say which target it was
    (review finding 2). Declared-secret params, secret names and sk-/Bearer values stay masked."""
    model_id, sha = "9f2c" * 16, "0123456789abcdef0123456789ABCDEF01234567"
    params = {"model_id": model_id, "key_hash": "ab" * 32, "sha": sha, "declared": "ab" * 32,
              "token": "ab" * 32, "key": "sk-" + "ab" * 20, "auth": "Bearer " + "ab" * 32}
    assert redact_params(params, secret_names={"declared"}) == {
        "model_id": model_id, "key_hash": "ab" * 32, "sha": sha, "declared": MASK, "token": MASK,
        "key": MASK, "auth": MASK}
    assert scrub(f"deployment {model_id} at {sha}, key {CANARY}") == \
        f"deployment {model_id} at {sha}, key {MASK}"


def test_records_carry_who_and_where_and_never_a_secret(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSH_CONNECTION", "203.0.113.9 51000 10.0.0.1 22")
    j = AuditJournal(tmp_path / "state" / "llmdeck" / "audit.jsonl")
    aid = j.intent(action="throttle-key", target=f"key {CANARY}", params={"key": CANARY, "tpm": 1},
                   pre_state_hash="c" * 64, idempotency_key="idem-1", origin="cli", gateway="gw",
                   incident_id="INC-3")
    j.outcome(aid, action="throttle-key", status="failed", detail=f"HTTP 401: bad key {CANARY}",
              extra={"echo": CANARY})
    text = j.path.read_text()
    assert CANARY not in text
    intent, outcome = j.records()
    assert (intent.seq, outcome.seq, intent.kind, outcome.kind) == (1, 2, "intent", "outcome")
    assert {k: intent.data[k] for k in ("user", "host", "ssh_client", "origin", "gateway", "incident_id",
                                        "idempotency_key", "pre_state_hash", "target")} == {
        "user": intent.data["user"], "host": intent.data["host"], "ssh_client": "203.0.113.9",
        "origin": "cli", "gateway": "gw", "incident_id": "INC-3", "idempotency_key": "idem-1",
        "pre_state_hash": "c" * 64, "target": f"key {MASK}"}
    assert intent.data["user"] and intent.data["host"]
    assert outcome.action_id == aid and outcome.data["detail"] == f"HTTP 401: bad key {MASK}"
    assert oct(j.path.stat().st_mode & 0o777) == "0o600"
    assert oct(j.head_path.stat().st_mode & 0o777) == "0o600"
    assert oct(j.path.parent.stat().st_mode & 0o777) == "0o700"
    assert json.loads(j.head_path.read_text()) == {"seq": 2, "hash": outcome.data["hash"]}


def test_the_default_journal_lives_in_the_state_dir(tmp_path: Path) -> None:
    j = AuditJournal()
    j.event("x", status="refused", detail="d")
    assert j.path == Path(os.environ["XDG_STATE_HOME"]) / "llmdeck" / "audit.jsonl"
    assert j.head_path == j.path.with_name("audit.head") and j.head_path.exists()


def test_an_unwritable_journal_raises_audit_error_naming_the_file_not_the_params(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    j = AuditJournal(blocker / "audit.jsonl")
    with pytest.raises(AuditError) as info:
        j.intent(action="a", target="t", params={"key": CANARY}, pre_state_hash="", idempotency_key="",
                 origin="cli")
    assert str(info.value) == f"cannot open the audit journal {blocker / 'audit.jsonl'}: Not a directory"
    assert CANARY not in repr(info.value) and isinstance(info.value, OSError)


def test_an_intent_without_outcome_is_unknown_until_an_outcome_settles_it(tmp_path: Path) -> None:
    j = AuditJournal(tmp_path / "audit.jsonl")
    done = j.intent(action="a", target="t", params={}, pre_state_hash="", idempotency_key="1", origin="cli")
    j.outcome(done, action="a", status="applied", detail="ok")
    open_one = j.intent(action="b", target="u", params={}, pre_state_hash="", idempotency_key="2",
                        origin="key")
    assert [r.action_id for r in j.unknown_outcomes()] == [open_one]
    j.outcome(open_one, action="b", status="applied", detail="read back: it took", resolved_by="verify")
    assert j.unknown_outcomes() == [] and j.records()[-1].data["resolved_by"] == "verify"
    assert j.verify().ok


def test_threads_appending_at_once_and_a_record_bigger_than_the_tail_chunk_keep_the_chain(
        tmp_path: Path) -> None:
    j = AuditJournal(tmp_path / "audit.jsonl")
    j.event("big", status="refused", detail="d", params={"blob": "x y " * 50_000})  # > 64 KiB line
    threads = [threading.Thread(target=lambda n=n: [j.event(f"t{n}", status="refused", detail=str(i))
                                                   for i in range(40)]) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    v = j.verify()
    assert v.ok and v.records == 121, v.problem
    assert sorted(int(r.get("detail")) for r in j.records() if r.action == "t1") == list(range(40))


def test_show_limits_to_the_newest_records(tmp_path: Path) -> None:
    j = AuditJournal(tmp_path / "audit.jsonl")
    for i in range(5):
        j.event(f"a{i}", status="refused", detail="d")
    parser = argparse.ArgumentParser(prog="llmdeck")
    add_parser(parser.add_subparsers(dest="command"))
    out = io.StringIO()
    main_audit(parser.parse_args(["audit", "show", "--journal", str(j.path), "--limit", "2"]), parser,
               out, io.StringIO())
    lines = out.getvalue().splitlines()
    assert lines[0] == "(3 older record(s) not shown: --limit 0 shows all)"
    assert [line.split()[3] for line in lines[2:]] == ["a3", "a4"]


APPENDER = """
import os, sys, time
from pathlib import Path
from console.audit import AuditJournal
path, name, count, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
journal = AuditJournal(Path(path))
print("ready", flush=True)
while not go.exists():
    time.sleep(0.001)
for i in range(count):
    if i % 2 == 0:
        aid = journal.intent(action="append", target=name, params={"i": i}, pre_state_hash="",
                             idempotency_key=f"{name}-{i}", origin="cli")
    else:
        journal.outcome(aid, action="append", status="applied", detail=f"{name} {i}")
"""


def test_two_processes_appending_at_once_keep_one_valid_chain(tmp_path: Path) -> None:
    path, go, count = tmp_path / "state" / "audit.jsonl", tmp_path / "go", 120
    procs = [subprocess.Popen([sys.executable, "-c", APPENDER, str(path), name, str(count), str(go)],
                              cwd=ROOT, env=_env(tmp_path), stdout=subprocess.PIPE, text=True)
             for name in ("alpha", "beta")]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline() == "ready\n"
    go.write_text("")
    for p in procs:
        assert p.wait(timeout=300) == 0
    j = AuditJournal(path)
    v = j.verify()
    assert v.ok and v.records == 2 * count, v.problem
    records = j.records()
    assert [r.seq for r in records] == list(range(1, 2 * count + 1))
    for name in ("alpha", "beta"):  # each process's records in its own order, none lost
        mine = [r for r in records if r.get("target") == name or r.get("detail").startswith(name)]
        assert len(mine) == count
        assert [int(r.params["i"]) if r.kind == "intent" else int(r.get("detail").split()[1])
                for r in mine] == list(range(count))
    assert j.unknown_outcomes() == []
    assert json.loads(j.head_path.read_text())["seq"] == 2 * count


KILLED = """
import sys
from console.audit import AuditJournal
aid = AuditJournal().intent(action="throttle-key", target="team-a", params={"tpm_limit": 10},
                            pre_state_hash="d" * 64, idempotency_key="idem-k", origin="cli", gateway="gw")
print(aid, flush=True)
sys.stdin.read()  # the request is "in flight" here
"""


def test_kill_9_between_intent_and_outcome_shows_outcome_unknown_until_resolved(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", KILLED], cwd=ROOT, env=_env(tmp_path),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    aid = child.stdout.readline().strip()
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=60) == -signal.SIGKILL
    shown = _llmdeck(tmp_path, "audit", "show")
    assert shown.returncode == 0, shown.stderr
    first = shown.stdout.splitlines()[:3]
    assert first[0].startswith("!!! OUTCOME UNKNOWN: 1 action(s)")
    assert "throttle-key  target team-a" in first[1] and f"action {aid}: outcome unknown" in first[1]
    assert "outcome unknown" in shown.stdout.splitlines()[-1]  # the intent's own row says it too
    as_json = json.loads(_llmdeck(tmp_path, "audit", "show", "--unknown", "--json").stdout)
    assert [(r["action_id"], r["outcome"]) for r in as_json["unknown"]] == [(aid, "outcome unknown")]
    assert _llmdeck(tmp_path, "audit", "verify").returncode == 0  # a crash is not tampering

    journal = AuditJournal(tmp_path / "state" / "llmdeck" / "audit.jsonl")
    journal.outcome(aid, action="throttle-key", status="applied", detail="read back: tpm_limit 10",
                    resolved_by="verify")
    after = _llmdeck(tmp_path, "audit", "show", "--unknown")
    assert after.returncode == 0 and after.stdout == "no action with an unknown outcome\n"


def test_kill_9_of_a_silence_create_in_flight_leaves_outcome_unknown(tmp_path: Path) -> None:
    """The real path: `llmdeck silence create --yes` writes its intent, POSTs to an Alertmanager
    that never answers, and is killed; the journal says outcome unknown for silence.create."""
    with FaultServer() as server:
        server.route("/api/v2/alerts", Reply(200, [{
            "labels": {"alertname": "Down"}, "annotations": {}, "fingerprint": "f1",
            "startsAt": "2026-12-04T10:00:00Z",
            "status": {"state": "active", "silencedBy": [], "inhibitedBy": []}}]))
        server.route("/api/v2/silences", Reply(200, []), Hang())  # the desk reads, then the POST hangs
        cfg = tmp_path / "cfg.toml"
        cfg.write_text(f'[[sources.alertmanager]]\nname = "am"\nurl = "{server.url}"\n')
        child = subprocess.Popen(
            [sys.executable, "-m", "console.cli", "--config", str(cfg), "silence", "create", "-m",
             "alertname=Down", "--for", "1h", "-c", "kill test", "--yes"],
            cwd=ROOT, env=_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: any(r.method == "POST" for r in server.requests_to("/api/v2/silences")),
                       120, "the silence POST")
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=60)
    shown = _llmdeck(tmp_path, "audit", "show", "--unknown", "--json")
    unknown = json.loads(shown.stdout)["unknown"]
    assert [(r["action"], r["gateway"], r["target"], r["outcome"]) for r in unknown] == [
        ("silence.create", "am", "alertname=Down", "outcome unknown")]
    text = _llmdeck(tmp_path, "audit", "show").stdout
    assert "OUTCOME UNKNOWN" in text and "silence.create" in text
