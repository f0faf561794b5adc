"""One world for the action matrix: a recording LiteLLM admin server, a config file, real CLI runs.

The matrix (tests/integration/test_action_matrix.py) proves that nothing reaches the
gateway except through `ActionDesk.apply`, whatever starts an action. It needs the same
world for every entry path: L's recording server (tests/faults/litellm_admin_server.py,
every request logged before it is answered), a config file with `[actions]` and an
`[[actions.litellm]]` pointing at it, a runbook file of the matrix's own in the user's
runbook directory (the production `litellm.*` adapters, so the real send path is used),
XDG dirs in the test's tmp dir, and `llmdeck` run as a real subprocess (`python -m
console.cli` with the worktree first on PYTHONPATH), exactly as an operator would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from console.audit import AuditJournal, AuditRecord
from console.operator import user_name
from tests.faults.litellm_admin_server import MASTER_KEY, LiteLLMAdminServer, RecordedRequest

ROOT = Path(__file__).resolve().parents[2]
KEY_ENV = "MATRIX_LITELLM_ADMIN_KEY"
TEAM = "team-a"
TEAM_TPM, TEAM_RPM = 1000, 10
THROTTLE = "mx-throttle-team"
RUN_LIMIT_SECONDS = 120.0
"""A guard against a hung subprocess only (the test fails with its output), never a measure."""

RUNBOOK = """\
[runbook]
name = "matrix"
title = "The action matrix's own actions (production LiteLLM adapters)"

[[action]]
name = "mx-throttle-team"
title = "Throttle a team (matrix)"
adapter = "litellm.team_limits"
role = "responder"
revert = "restore"
target = "team_id"
[action.params.team_id]
type = "str"
required = true
[action.params.tpm_limit]
type = "int"
min = 0
[action.params.rpm_limit]
type = "int"
min = 0
[action.params.for]
type = "duration"

[[action]]
name = "mx-block-team"
title = "Block a team (matrix, dangerous)"
adapter = "litellm.team_block"
role = "admin"
dangerous = true
revert = "restore"
target = "team_id"
[action.params.team_id]
type = "str"
required = true
[action.params.blocked]
type = "bool"
default = true
"""


@dataclass(frozen=True)
class Run:
    """One finished `llmdeck` subprocess."""

    argv: tuple[str, ...]
    code: int
    out: str
    err: str

    def said(self) -> str:
        return (f"$ llmdeck {' '.join(self.argv)}\nexit {self.code}\n"
                f"--- stdout\n{self.out}--- stderr\n{self.err}")


class ActionWorld:
    """The recording server, the XDG dirs, the config file and the CLI, for one test."""

    def __init__(self, base: Path, server: LiteLLMAdminServer, monkeypatch: pytest.MonkeyPatch) -> None:
        self.server = server
        self.config_home, self.state_home, self.cache_home = (base / "config", base / "state", base / "cache")
        for var, path in (("XDG_CONFIG_HOME", self.config_home), ("XDG_STATE_HOME", self.state_home),
                          ("XDG_CACHE_HOME", self.cache_home)):
            path.mkdir(parents=True, exist_ok=True)
            monkeypatch.setenv(var, str(path))
        monkeypatch.setenv(KEY_ENV, MASTER_KEY)
        self.runbook_dir = self.config_home / "llmdeck" / "runbooks"
        self.runbook_dir.mkdir(parents=True, exist_ok=True)
        (self.runbook_dir / "matrix.toml").write_text(RUNBOOK)
        self.config_file = self.config_home / "llmdeck" / "config.toml"
        self.write_config()

    # -- config -----------------------------------------------------------------------------------

    def write_config(self, *, role: str | None = "admin", prod: bool = False,
                     timeout_seconds: float = 10, extra: str = "") -> None:
        """`role`: the role given to this OS user (None: the default role, viewer); `extra`:
        more TOML appended (`[[actions.http]]`, `[actions.shell]`)."""
        roles = "" if role is None else f'[actions.roles]\n"{user_name()}" = "{role}"\n'
        self.config_file.write_text(
            "[actions]\n"
            'environment = "matrix"\n'
            f"prod = {'true' if prod else 'false'}\n"
            'default_role = "viewer"\n'
            f'runbook_dir = "{self.runbook_dir}"\n'
            f"{roles}\n"
            "[[actions.litellm]]\n"
            'name = "gw"\n'
            f'url = "{self.server.url}"\n'
            f'admin_key_ref = "env:{KEY_ENV}"\n'
            f"timeout_seconds = {timeout_seconds}\n{extra}")

    def config(self) -> Any:
        """The config file loaded as the CLI loads it (for in-process desks)."""
        from console.config import load_config

        return load_config(self.config_file, os.environ)

    # -- the CLI ----------------------------------------------------------------------------------

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("LLMDECK_")}
        env.update({"PYTHONPATH": str(ROOT), "XDG_CONFIG_HOME": str(self.config_home),
                    "XDG_STATE_HOME": str(self.state_home), "XDG_CACHE_HOME": str(self.cache_home),
                    KEY_ENV: MASTER_KEY, "NO_COLOR": "1", "COLUMNS": "200"})
        env.update(extra or {})
        return env

    def argv(self, args: Sequence[str]) -> list[str]:
        return [sys.executable, "-m", "console.cli", "--config", str(self.config_file), *args]

    def cli(self, *args: str, env: Mapping[str, str] | None = None) -> Run:
        """Run `llmdeck ARGS` to its end."""
        try:
            done = subprocess.run(self.argv(args), env=self.env(env), cwd=ROOT, capture_output=True,
                                  text=True, timeout=RUN_LIMIT_SECONDS, check=False)
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"llmdeck {' '.join(args)} did not end: {exc.stdout!r} {exc.stderr!r}")
        return Run(tuple(args), done.returncode, done.stdout, done.stderr)

    def start(self, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
        """Start `llmdeck ARGS` without waiting (to kill it, or to run another beside it)."""
        return subprocess.Popen(self.argv(args), env=self.env(env), cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    # -- what happened ----------------------------------------------------------------------------

    def mutating(self) -> list[RecordedRequest]:
        return self.server.mutating()

    @property
    def audit_path(self) -> Path:
        return self.state_home / "llmdeck" / "audit.jsonl"

    def audit(self) -> list[AuditRecord]:
        if not self.audit_path.exists():
            return []
        return AuditJournal(self.audit_path).records()

    def team(self) -> dict[str, Any]:
        return self.server.admin.team(TEAM)


def wait_for(check: Callable[[], bool], what: str, process: subprocess.Popen[str] | None = None) -> None:
    """Poll until `check` holds; fail naming `what` (and the process's output, if it ended first)."""
    deadline = time.monotonic() + RUN_LIMIT_SECONDS
    while time.monotonic() < deadline:
        if check():
            return
        if process is not None and process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"waiting for {what}: the process ended first (exit {process.returncode})"
                        f"\n{out}\n{err}")
        time.sleep(0.02)
    pytest.fail(f"gave up waiting for {what}")


def kill_9(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.communicate()


def killed_mid_apply(world: ActionWorld, *params: str) -> str:
    """`runbook apply THROTTLE` whose request the server holds, killed with SIGKILL once the
    intent is in the journal and the request on the wire; the action id of the intent."""
    world.server.hang_next(path="/team/update")
    process = world.start("runbook", "apply", THROTTLE, "--param", f"team_id={TEAM}", "--param",
                          "tpm_limit=5", *params, "--confirm", TEAM)
    wait_for(lambda: any(r.kind == "intent" for r in world.audit()), "the intent in the journal", process)
    wait_for(lambda: len(world.mutating()) == 1, "the request at the server", process)
    kill_9(process)
    assert process.returncode == -signal.SIGKILL
    [intent] = [r for r in world.audit() if r.kind == "intent"]
    assert [r.kind for r in world.audit()] == ["intent"]  # no outcome: the process died first
    return intent.action_id
