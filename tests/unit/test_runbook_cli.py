"""`llmdeck runbook ...` in a real process against the recording LiteLLM admin server.

The CLI is one entry path into the choke point: without --confirm, with --dry-run, with
--read-only or in a prod environment without --write it sends nothing; with them it sends
one request; exit codes and --json follow the module docstring.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.faults.litellm_admin_server import MASTER_KEY, LiteLLMAdminServer

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def server() -> Iterator[LiteLLMAdminServer]:
    with LiteLLMAdminServer() as srv:
        srv.admin.add_team("acme-corp", tpm_limit=1000, rpm_limit=60)
        yield srv


@pytest.fixture
def cli(server: LiteLLMAdminServer, run_cli: Run) -> Callable[..., subprocess.CompletedProcess[str]]:
    def write_config(prod: bool) -> None:
        file = Path(os.environ["XDG_CONFIG_HOME"]) / "llmdeck" / "config.toml"
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(f"""\
[actions]
environment = "cli-test"
prod = {str(prod).lower()}
default_role = "responder"

[[actions.litellm]]
name = "gw"
url = "{server.url}"
admin_key_ref = "env:TEST_LITELLM_ADMIN"
""")

    def run(*args: str, prod: bool = False) -> subprocess.CompletedProcess[str]:
        write_config(prod)
        return run_cli(*args, env={"TEST_LITELLM_ADMIN": MASTER_KEY})

    return run


THROTTLE = ("runbook", "apply", "throttle-team", "--param", "team_id=acme-corp", "--param", "tpm_limit=10")


def test_list_and_plan_send_nothing(server: LiteLLMAdminServer, cli: Run) -> None:
    listed = cli("runbook", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    names = {a["name"] for a in json.loads(listed.stdout)["actions"]}
    assert {"throttle-team", "switch-provider", "rollback-model"} <= names
    planned = cli("runbook", "plan", *THROTTLE[2:])
    assert planned.returncode == 0, planned.stderr
    assert "tpm_limit: 1000 -> 10" in planned.stdout and MASTER_KEY not in planned.stdout
    assert "--confirm acme-corp" in planned.stdout
    assert server.mutating() == []


@pytest.mark.parametrize("extra,prod,status", [
    ((), False, "cancelled"),                                   # no --confirm
    (("--confirm", "globex"), False, "cancelled"),              # the wrong target
    (("--confirm", "acme-corp", "--dry-run"), False, "dry_run"),
    (("--confirm", "acme-corp"), True, "refused"),              # prod without --write
])
def test_guarded_applies_send_nothing(extra: tuple[str, ...], prod: bool, status: str,
                                      server: LiteLLMAdminServer, cli: Run) -> None:
    done = cli(*THROTTLE, *extra, "--json", prod=prod)
    result = json.loads(done.stdout)
    assert result["outcome"]["status"] == status and result["outcome"]["sent"] == 0
    assert done.returncode == (0 if status == "dry_run" else 1)
    assert server.mutating() == []


def test_global_dry_run_sends_nothing(server: LiteLLMAdminServer, cli: Run) -> None:
    done = cli("--dry-run", *THROTTLE, "--confirm", "acme-corp")
    assert done.returncode == 0 and "DRY_RUN" in done.stdout and server.mutating() == []


def test_read_only_flag_wins_over_write(server: LiteLLMAdminServer, cli: Run) -> None:
    done = cli("--read-only", "--write", *THROTTLE, "--confirm", "acme-corp", prod=True)
    assert done.returncode == 1 and "REFUSED: read-only" in done.stdout
    assert server.mutating() == []


def test_apply_with_write_then_undo(server: LiteLLMAdminServer, cli: Run) -> None:
    done = cli("--write", *THROTTLE, "--confirm", "acme-corp", "--json", prod=True)
    assert done.returncode == 0, done.stdout + done.stderr
    outcome = json.loads(done.stdout)["outcome"]
    assert (outcome["status"], outcome["sent"]) == ("applied", 1)
    assert server.admin.team("acme-corp")["tpm_limit"] == 10
    pending = cli("runbook", "reverts", "--json")
    assert [p["action_id"] for p in json.loads(pending.stdout)["pending"]] == [outcome["action_id"]]
    undone = cli("--write", "runbook", "undo", outcome["action_id"], "--confirm", "acme-corp", prod=True)
    assert undone.returncode == 0 and "APPLIED" in undone.stdout, undone.stdout + undone.stderr
    assert server.admin.team("acme-corp")["tpm_limit"] == 1000
    assert len(server.mutating()) == 2
    assert "no pending reverts" in cli("runbook", "reverts").stdout  # undone by hand: nothing left


def test_unknown_outcome_is_listed_and_verified(server: LiteLLMAdminServer, cli: Run) -> None:
    server.drop_next()
    lost = cli(*THROTTLE, "--confirm", "acme-corp")
    assert lost.returncode == 1 and "UNKNOWN" in lost.stdout
    listed = cli("runbook", "verify")
    assert listed.returncode == 1 and "OUTCOME UNKNOWN" in listed.stdout
    action_id = listed.stdout.split()[2]
    settled = cli("runbook", "verify", action_id)
    assert settled.returncode == 0 and "it took" in settled.stdout
    assert cli("runbook", "verify").returncode == 0
    assert len(server.mutating()) == 1


def test_bad_input_and_bad_runbooks(server: LiteLLMAdminServer, cli: Run) -> None:
    bad = cli("runbook", "plan", "throttle-team", "--param", "team_id=acme-corp", "--param", "tpm_limit=x")
    assert bad.returncode == 1 and "param 'tpm_limit': expected an integer" in bad.stderr
    assert cli("runbook", "plan", "no-such-action").returncode == 1
    user_dir = Path(os.environ["XDG_CONFIG_HOME"]) / "llmdeck" / "runbooks"
    user_dir.mkdir(parents=True)
    (user_dir / "broken.toml").write_text("[runbook]\nname = \"b\"\n\n[[action]]\nname = \"x\"\n")
    broken = cli("runbook", "list")
    assert broken.returncode == 2
    assert f"{user_dir / 'broken.toml'}:4: action[0].adapter: required" in broken.stderr
    assert server.mutating() == []


def test_plan_never_echoes_a_key_shaped_value(server: LiteLLMAdminServer, cli: Run) -> None:
    raw = "sk-echo-test-0123456789abcdef0123"
    server.admin.add_key(raw, key_alias="echo-key", tpm_limit=5)
    user_dir = Path(os.environ["XDG_CONFIG_HOME"]) / "llmdeck" / "runbooks"
    user_dir.mkdir(parents=True)
    (user_dir / "raw.toml").write_text('[runbook]\nname = "raw"\n\n[[action]]\nname = "raw-throttle"\n'
                                       'adapter = "litellm.key_limits"\n[action.params.key]\ntype = "str"\n'
                                       'secret = true\n[action.params.tpm_limit]\ntype = "int"\n')
    planned = cli("runbook", "plan", "raw-throttle", "--param", f"key={raw}", "--param", "tpm_limit=9")
    assert planned.returncode == 0, planned.stderr
    assert raw not in planned.stdout + planned.stderr and "--param key=***" in planned.stdout
