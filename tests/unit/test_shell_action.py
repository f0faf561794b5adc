"""`shell.exec` against real subprocesses: a small Python script stands in for kubectl.

What is checked: off by default, the allowlist (element by element, checked again in
`send`), values that try to inject (`; rm -rf`, `$(...)`, backticks, a leading `-`, NUL and
newlines) either stay one literal argument or are refused, the timeout kills the whole
process group, output is captured, capped and redacted, and a read command + expectation
gives a plan that can be verified and reverted.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from console.action_types import ActionError, PlannedRequest, SendError
from console.adapters import AdapterContext, build, kinds
from console.adapters.shell_action import OUTPUT_CAP, ShellExecAdapter, allowed
from console.config import Config
from console.config_actions import ActionsSettings, ShellSettings

SCRIPT = r'''
import json, os, subprocess, sys, time
cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "echo":
    print(json.dumps(args))
elif cmd == "set":
    with open(args[0], "w") as f:
        json.dump({"spec": {"image": args[1]}}, f)
    print("deployment.apps/web image updated")
elif cmd == "get":
    with open(args[0]) as f:
        print(f.read())
elif cmd == "sleep":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(args[0], "w") as f:
        f.write(f"{os.getpid()} {child.pid}")
    time.sleep(600)
elif cmd == "leak":
    print("connected with api_key=sk-proj-abcdefghijklmnopqrstuvwxyz0123 as ops@example.com")
elif cmd == "env":
    print(json.dumps(sorted(k for k in os.environ if k.startswith("H_TEST_"))))
elif cmd == "big":
    sys.stdout.write("x" * 300000)
elif cmd == "fail":
    print("error: Unauthorized, token=ghp_abcdefghijklmnopqrstuvwxyz0123456789", file=sys.stderr)
    sys.exit(3)
'''


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "fakectl.py"
    path.write_text(SCRIPT)
    return path


def adapter(script: Path, options: dict[str, Any], *, enabled: bool = True,
            allow: list[list[str]] | None = None, timeout: float = 30) -> ShellExecAdapter:
    shell = ShellSettings(enabled=enabled, timeout_seconds=timeout,
                          allow=allow if allow is not None else [[sys.executable, str(script)]])
    config = Config(actions=ActionsSettings(shell=shell))
    built = build("shell.exec", AdapterContext(config=config, gateway="", options=options))
    assert isinstance(built, ShellExecAdapter)
    return built


def plan_one(a: ShellExecAdapter, params: dict[str, Any]) -> PlannedRequest:
    (request,) = a.requests(params, {}, {})
    return request


async def send(a: ShellExecAdapter, request: PlannedRequest) -> str:
    return await a.send(request, idempotency_key="k-1", changed_by="alice")


def test_registered() -> None:
    assert "shell.exec" in kinds()


def test_off_by_default_nothing_runs(script: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    options = {"argv": [sys.executable, str(script), "set", str(marker), "$image"]}
    shell = Config().actions.shell
    assert shell.enabled is False and shell.allow == []
    a = build("shell.exec", AdapterContext(config=Config(), gateway="", options=options))
    with pytest.raises(ActionError, match=r"commands are off \(\[actions.shell\] enabled = false\)"):
        a.requests({"image": "web:2"}, {}, {})
    forged = PlannedRequest(method="EXEC", text="",
                            argv=(sys.executable, str(script), "set", str(marker), "x"))
    with pytest.raises(SendError, match="commands are off"):
        asyncio.run(a.send(forged, idempotency_key="k", changed_by="alice"))
    assert not marker.exists()


def test_enabled_without_an_allow_entry_refuses(script: Path) -> None:
    a = adapter(script, {"argv": [sys.executable, str(script), "echo", "$x"]}, allow=[])
    with pytest.raises(ActionError, match=r"starts with no allowed prefix \(\[actions.shell\] allow\)"):
        plan_one(a, {"x": "1"})


def test_allowlist_is_element_by_element() -> None:
    allow = [["kubectl", "rollout", "undo"]]
    assert allowed(["kubectl", "rollout", "undo", "deployment/web"], allow)
    assert not allowed(["kubectl", "rollout", "undo-evil"], allow)
    assert not allowed(["kubectl", "rollout"], allow)
    assert not allowed(["kubectl rollout undo"], allow)
    assert not allowed(["/tmp/kubectl", "rollout", "undo"], allow)
    assert not allowed(["kubectl", "delete", "ns", "prod"], allow)
    assert not allowed(["anything"], [[]])


def test_send_checks_the_allowlist_again(script: Path, tmp_path: Path) -> None:
    """A request not built by `requests` (say, replayed from elsewhere) is refused too."""
    a = adapter(script, {"argv": [sys.executable, str(script), "echo", "$x"]},
                allow=[[sys.executable, str(script), "echo"]])
    marker = tmp_path / "state.json"
    forged = PlannedRequest(method="EXEC", text="",
                            argv=(sys.executable, str(script), "set", str(marker), "x"))
    with pytest.raises(SendError, match="no allowed prefix"):
        asyncio.run(send(a, forged))
    with pytest.raises(SendError, match="not a command"):
        asyncio.run(send(a, PlannedRequest(method="POST", text="", path="/x")))
    assert not marker.exists()


@pytest.mark.parametrize("value", [
    "web; rm -rf /", "$(touch {marker})", "`touch {marker}`", "web && touch {marker}",
    "web | tee {marker}", "'\"quoted\" web", "a b  c", "*", "web > {marker}",
])
def test_shell_syntax_in_a_value_stays_one_literal_argument(script: Path, tmp_path: Path, value: str) -> None:
    marker = tmp_path / "marker"
    value = value.format(marker=marker)
    a = adapter(script, {"argv": [sys.executable, str(script), "echo", "deployment/$name", "$name"]})
    request = plan_one(a, {"name": value})
    assert request.method == "EXEC"
    assert request.argv == (sys.executable, str(script), "echo", f"deployment/{value}", value)
    answer = asyncio.run(send(a, request))
    assert answer.startswith(f"{sys.executable}: exit 0: ")
    assert json.loads(answer.split(": exit 0: ", 1)[1]) == [f"deployment/{value}", value]
    assert not marker.exists()


@pytest.mark.parametrize("value", ["--all", "-n", "-", "--kubeconfig=/tmp/evil"])
def test_a_value_starting_with_a_dash_is_refused(script: Path, value: str) -> None:
    a = adapter(script, {"argv": [sys.executable, str(script), "echo", "$name"]})
    with pytest.raises(ActionError, match=r"param 'name': a value starting with '-' would be read as an op"):
        plan_one(a, {"name": value})


def test_a_dash_is_allowed_when_the_param_allows_it(script: Path) -> None:
    a = adapter(script, {"argv": [sys.executable, str(script), "echo", "$flags", "$name"],
                         "allow_dash": ["flags"]})
    request = plan_one(a, {"flags": ["--dry-run=client", "-o", "json"], "name": "web"})
    assert request.argv[3:] == ("--dry-run=client", "-o", "json", "web")
    assert json.loads(asyncio.run(send(a, request)).split(": exit 0: ", 1)[1]) == list(request.argv[3:])
    with pytest.raises(ActionError, match="param 'name'"):
        plan_one(a, {"flags": [], "name": "--all"})


def test_a_list_value_is_checked_item_by_item(script: Path) -> None:
    a = adapter(script, {"argv": [sys.executable, str(script), "echo", "$names"]})
    assert plan_one(a, {"names": ["web", "api"]}).argv[3:] == ("web", "api")
    with pytest.raises(ActionError, match="starting with '-'"):
        plan_one(a, {"names": ["web", "--all-namespaces"]})


@pytest.mark.parametrize("value", ["web\nrm -rf /", "web\x00--all", "web\r", "web\x1b[2J"])
def test_control_characters_are_refused(script: Path, value: str) -> None:
    a = adapter(script, {"argv": [sys.executable, str(script), "echo", "$name"], "allow_dash": ["name"]})
    with pytest.raises(ActionError, match="param 'name': holds a NUL, newline or control character"):
        plan_one(a, {"name": value})


def test_options_are_checked_where_they_are_written(script: Path) -> None:
    base = [sys.executable, str(script)]
    with pytest.raises(ActionError, match=r"options.argv\[0\]: the program cannot come from a parameter"):
        adapter(script, {"argv": ["$program", "rollout", "undo"]})
    with pytest.raises(ActionError, match="options: unknown shell for shell.exec"):
        adapter(script, {"argv": base, "shell": True})
    with pytest.raises(ActionError, match="options.argv: expected a non-empty list"):
        adapter(script, {"argv": "kubectl rollout undo"})
    with pytest.raises(ActionError, match=r"options.argv\[2\]: bad placeholder"):
        adapter(script, {"argv": [*base, "$ bad"]})
    with pytest.raises(ActionError, match="read_argv and expect go together"):
        adapter(script, {"argv": base, "read_argv": [*base, "get"]})
    with pytest.raises(ActionError, match="no parameter named 'name'"):
        plan_one(adapter(script, {"argv": [*base, "echo", "$name"]}), {})


def test_the_plan_text_is_the_exact_argv(script: Path) -> None:
    a = adapter(script, {"argv": [sys.executable, str(script), "echo", "deployment/$name"],
                         "target": "$name"})
    request = plan_one(a, {"name": "web; rm -rf /"})
    assert request.text == f"$ {sys.executable} {script} echo 'deployment/web; rm -rf /'"
    assert a.target({"name": "web"}) == "web"
    assert a.readable is False
    assert asyncio.run(a.read({"name": "web"})) == {} and a.desired({"name": "web"}, {}) == {}
    assert a.restore_params({"name": "web"}, {}) is None


def test_timeout_kills_the_whole_process_group(script: Path, tmp_path: Path) -> None:
    """3 s: long enough for the script to start and write its pids on a loaded machine."""
    pids = tmp_path / "pids"
    a = adapter(script, {"argv": [sys.executable, str(script), "sleep", str(pids)]}, timeout=3)
    with pytest.raises(SendError) as caught:
        asyncio.run(send(a, plan_one(a, {})))
    assert caught.value.unsure is True
    assert "was still running after 3 s and was killed" in str(caught.value)
    for pid in map(int, pids.read_text().split()):
        assert not _alive(pid), f"process {pid} survived the timeout"


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for init to reap it counts as dead); waits for the kill to land."""
    import time

    for _ in range(200):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return False
        if state in ("Z", "X"):
            return False
        time.sleep(0.05)
    return True


def test_output_is_redacted(script: Path) -> None:
    a = adapter(script, {"argv": [sys.executable, str(script), "leak"]})
    answer = asyncio.run(send(a, plan_one(a, {})))
    assert "sk-proj-" not in answer and "ops@example.com" not in answer
    assert "[SECRET]" in answer and "[EMAIL]" in answer


def test_a_failed_command_is_a_send_error_with_its_redacted_stderr(script: Path) -> None:
    a = adapter(script, {"argv": [sys.executable, str(script), "fail"]})
    with pytest.raises(SendError) as caught:
        asyncio.run(send(a, plan_one(a, {})))
    text = str(caught.value)
    assert "exited with status 3: error: Unauthorized" in text
    assert "ghp_" not in text and caught.value.unsure is False
    assert caught.value.status == 3, "it ran: the desk counts it as sent"


def test_output_is_capped_and_the_command_never_blocks(script: Path) -> None:
    from console.adapters.shell_action import run

    code, out, err = asyncio.run(run([sys.executable, str(script), "big"], 30))
    assert (code, len(out), err) == (0, OUTPUT_CAP, b"")
    a = adapter(script, {"argv": [sys.executable, str(script), "big"]})
    answer = asyncio.run(send(a, plan_one(a, {})))
    assert answer.endswith("more characters)") and len(answer) < 2200


def test_a_missing_program_is_a_clear_send_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-kubectl")
    shell = ShellSettings(enabled=True, allow=[[missing]])
    a = build("shell.exec", AdapterContext(config=Config(actions=ActionsSettings(shell=shell)), gateway="",
                                           options={"argv": [missing, "rollout"]}))
    with pytest.raises(SendError, match="cannot run .*no-such-kubectl: No such file") as caught:
        asyncio.run(a.send(a.requests({}, {}, {})[0], idempotency_key="k", changed_by="alice"))
    assert caught.value.unsure is False


def test_read_diff_send_verify_and_restore(script: Path, tmp_path: Path) -> None:
    state = tmp_path / "deployment.json"
    state.write_text(json.dumps({"spec": {"image": "web:1"}}))
    a = adapter(script, {
        "argv": [sys.executable, str(script), "set", str(state), "$image"],
        "read_argv": [sys.executable, str(script), "get", str(state)],
        "read_pointer": "/spec/image", "expect": "$image"})
    params = {"image": "web:2"}

    async def flow() -> tuple[dict[str, Any], dict[str, Any], str, dict[str, Any]]:
        before = await a.read(params)
        desired = a.desired(params, before)
        (request,) = a.requests(params, before, desired)
        answer = await a.send(request, idempotency_key="k", changed_by="alice")
        return before, desired, answer, await a.read(params)

    before, desired, answer, after = asyncio.run(flow())
    assert a.readable is True
    assert before == {"/spec/image": "web:1"} and desired == {"/spec/image": "web:2"}
    assert answer.endswith("exit 0: deployment.apps/web image updated")
    assert after == desired
    assert a.restore_params(params, before) == {"image": "web:1"}


def test_the_read_command_must_be_allowlisted_too(script: Path, tmp_path: Path) -> None:
    state = tmp_path / "deployment.json"
    state.write_text("{}")
    a = adapter(script, {"argv": [sys.executable, str(script), "set", str(state), "$image"],
                         "read_argv": [sys.executable, str(script), "get", str(state)], "expect": "$image"},
                allow=[[sys.executable, str(script), "set"]])
    with pytest.raises(ActionError, match=r"options.read_argv: .* starts with no allowed prefix"):
        asyncio.run(a.read({"image": "x"}))


def test_unparseable_read_output_is_named(script: Path) -> None:
    a = adapter(script, {"argv": [sys.executable, str(script), "echo"],
                         "read_argv": [sys.executable, str(script), "leak"], "read_pointer": "/x",
                         "expect": "1"})
    with pytest.raises(ActionError, match="did not print JSON"):
        asyncio.run(a.read({}))
    plain = adapter(script, {"argv": [sys.executable, str(script), "echo"],
                             "read_argv": [sys.executable, str(script), "echo", "$v"], "expect": "$v"})
    assert asyncio.run(plain.read({"v": "web:3"})) == {"output": '["web:3"]'}


def test_secret_params_never_reach_an_argv(script: Path) -> None:
    config = Config(actions=ActionsSettings(shell=ShellSettings(enabled=True, allow=[[sys.executable]])))
    base = [sys.executable, str(script), "echo"]
    for key, item in (("argv", "--token=$token"), ("read_argv", "$token")):
        options: dict[str, Any] = {"argv": base, "read_argv": base, "expect": "1"}
        options[key] = [*base, item]
        with pytest.raises(ActionError, match="secret parameter token would be visible"):
            build("shell.exec", AdapterContext(config=config, gateway="", options=options,
                                               secret_params=frozenset({"token"})))


def test_the_shipped_rollout_undo_cannot_even_be_planned_while_commands_are_off() -> None:
    from console.runbook_files import load_catalog
    from console.runbooks import ActionDesk

    desk = ActionDesk(Config(actions=ActionsSettings(default_role="admin")), catalog=load_catalog(None))

    async def flow() -> None:
        try:
            await desk.plan("rollout-undo", {"deployment": "web"}, origin="cli")
        finally:
            await desk.aclose()

    with pytest.raises(ActionError, match=r"commands are off \(\[actions.shell\] enabled = false\)"):
        asyncio.run(flow())


def test_an_allowed_command_through_the_desk_applies_verifies_undoes(script: Path, tmp_path: Path) -> None:
    from console.action_types import Confirmation
    from console.runbook_files import load_catalog
    from console.runbooks import ActionDesk

    state = tmp_path / "deployment.json"
    state.write_text(json.dumps({"spec": {"image": "web:1"}}))
    books = tmp_path / "runbooks"
    books.mkdir()
    py, ctl = json.dumps(sys.executable), json.dumps(str(script))
    (books / "deploy.toml").write_text(f"""\
[runbook]
name = "deploy"
title = "Deployments"

[[action]]
name = "set-image"
title = "Set the image"
adapter = "shell.exec"
role = "admin"
dangerous = true
target = "image"
[action.params.image]
type = "str"
required = true
[action.options]
argv = [{py}, {ctl}, "set", {json.dumps(str(state))}, "$image"]
read_argv = [{py}, {ctl}, "get", {json.dumps(str(state))}]
read_pointer = "/spec/image"
expect = "$image"
""")
    shell = ShellSettings(enabled=True, allow=[[sys.executable, str(script), "set"],
                                               [sys.executable, str(script), "get"]])
    desk = ActionDesk(Config(actions=ActionsSettings(default_role="admin", shell=shell)),
                      catalog=load_catalog(books))

    async def flow() -> tuple[Any, ...]:
        try:
            plan = await desk.plan("set-image", {"image": "web:2; rm -rf /"}, origin="cli")
            wrong = await desk.apply(plan, Confirmation("yes"))
            plan = await desk.plan("set-image", {"image": "web:2; rm -rf /"}, origin="cli")
            outcome = await desk.apply(plan, Confirmation("web:2; rm -rf /"))
            undo = await desk.undo(outcome.action_id)
            return plan, wrong, outcome, await desk.apply(undo, Confirmation("web:1"))
        finally:
            await desk.aclose()

    plan, wrong, outcome, undone = asyncio.run(flow())
    assert [(d.field, d.before, d.after) for d in plan.diff] == [("/spec/image", "web:1", "web:2; rm -rf /")]
    assert plan.requests[0].argv[-1] == "web:2; rm -rf /"
    assert (wrong.status, wrong.sent) == ("cancelled", 0)
    assert (outcome.status, outcome.sent) == ("applied", 1), outcome.detail
    assert (undone.status, undone.sent) == ("applied", 1), undone.detail
    assert json.loads(state.read_text()) == {"spec": {"image": "web:1"}}


@pytest.mark.parametrize("mode", ["read_only", "dry_run", "cancelled", "viewer", "env"])
def test_an_allowed_command_in_guarded_modes_runs_nothing(script: Path, tmp_path: Path, mode: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from console.action_types import Confirmation
    from console.runbook_files import load_catalog
    from console.runbooks import ActionDesk

    marker = tmp_path / "ran.json"
    books = tmp_path / "runbooks"
    books.mkdir()
    py, ctl = json.dumps(sys.executable), json.dumps(str(script))
    (books / "deploy.toml").write_text(f"""\
[runbook]
name = "deploy"
title = "Deployments"

[[action]]
name = "set-image"
title = "Set the image"
adapter = "shell.exec"
role = "responder"
target = "image"
[action.params.image]
type = "str"
required = true
[action.options]
argv = [{py}, {ctl}, "set", {json.dumps(str(marker))}, "$image"]
""")
    if mode == "env":
        monkeypatch.setenv("LLMDECK_READONLY", "1")
    shell = ShellSettings(enabled=True, allow=[[sys.executable, str(script), "set"]])
    actions = ActionsSettings(default_role="viewer" if mode == "viewer" else "admin", shell=shell)
    desk = ActionDesk(Config(actions=actions), catalog=load_catalog(books), read_only=mode == "read_only",
                      dry_run=mode == "dry_run")

    async def flow() -> Any:
        try:
            plan = await desk.plan("set-image", {"image": "web:2"}, origin="key")
            return await desk.apply(plan, None if mode == "cancelled" else Confirmation("web:2"))
        finally:
            await desk.aclose()

    outcome = asyncio.run(flow())
    assert outcome.sent == 0 and outcome.status in ("refused", "dry_run", "cancelled"), outcome
    assert not marker.exists()


def test_the_command_does_not_inherit_the_variables_llmdeck_secrets_come_from(
        script: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from console.config_actions import HttpTarget, LiteLLMGateway

    for var in ("H_TEST_ADMIN_KEY", "H_TEST_FLAGS_KEY", "H_TEST_KUBECONFIG"):
        monkeypatch.setenv(var, "x")
    actions = ActionsSettings(
        shell=ShellSettings(enabled=True, allow=[[sys.executable, str(script), "env"]]),
        litellm=[LiteLLMGateway(name="gw", url="http://127.0.0.1:1", admin_key_ref="env:H_TEST_ADMIN_KEY")],
        http=[HttpTarget(name="flags", url="http://127.0.0.1:1",
                         header_refs={"X-Key": "env:H_TEST_FLAGS_KEY"})])
    a = build("shell.exec", AdapterContext(config=Config(actions=actions), gateway="",
                                           options={"argv": [sys.executable, str(script), "env"]}))
    answer = asyncio.run(a.send(a.requests({}, {}, {})[0], idempotency_key="k", changed_by="alice"))
    assert json.loads(answer.split(": exit 0: ", 1)[1]) == ["H_TEST_KUBECONFIG"]


def test_a_read_that_prints_a_secret_is_masked_and_not_restorable(script: Path) -> None:
    a = adapter(script, {"argv": [sys.executable, str(script), "echo", "$v"],
                         "read_argv": [sys.executable, str(script), "leak"], "expect": "$v"})
    before = asyncio.run(a.read({"v": "x"}))
    assert "sk-proj-" not in json.dumps(before) and "[SECRET]" in before["output"]
    assert "ops@example.com" in before["output"], "secrets only: the diff must still show what changes"
    desired = a.desired({"v": "token=ghp_abcdefghijklmnopqrstuvwxyz0123456789"}, before)
    assert "ghp_" not in json.dumps(desired)
    assert a.restore_params({"v": "y"}, before) is None
    digest = adapter(script, {"argv": [sys.executable, str(script), "echo"],
                              "read_argv": [sys.executable, str(script), "echo", "$v"], "expect": "$v"})
    sha = "sha256:" + "ab12" * 16
    assert asyncio.run(digest.read({"v": sha})) == {"output": json.dumps([sha])}
    assert digest.restore_params({"v": "new"}, {"output": sha}) == {"v": sha}
