"""The built-in runbooks (console/data/runbooks) through the desk and L's LiteLLM adapters,
against the recording admin server: each sends what its plan shows, once, and undoes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from console.action_types import Confirmation
from console.config import Config
from console.config_actions import ActionsSettings, LiteLLMGateway
from console.runbook_files import builtin_dir, load_catalog, load_file
from console.runbooks import ActionDesk
from tests.faults.litellm_admin_server import MASTER_KEY, LiteLLMAdminServer

RAW_KEY = "sk-builtin-test-key-0123456789abcdef"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 5, 3, 0)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def server() -> Iterator[LiteLLMAdminServer]:
    with LiteLLMAdminServer() as srv:
        srv.admin.add_team("acme-corp", tpm_limit=None, rpm_limit=60)
        srv.admin.add_key(RAW_KEY, key_alias="acme-key", team_id="acme-corp", tpm_limit=500)
        srv.admin.add_deployment("gpt-4o", {"model": "openai/gpt-4o"}, model_id="dep-gpt")
        srv.admin.add_deployment("claude-sonnet-4-5", {"model": "anthropic/claude-sonnet-4-5"},
                                 model_id="dep-claude")
        yield srv


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def desk(server: LiteLLMAdminServer, clock: Clock,
               monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ActionDesk]:
    monkeypatch.setenv("TEST_LITELLM_ADMIN", MASTER_KEY)
    config = Config(actions=ActionsSettings(environment="test", default_role="admin", litellm=[
        LiteLLMGateway(name="gw", url=server.url, admin_key_ref="env:TEST_LITELLM_ADMIN")]))
    d = ActionDesk(config, environ={}, clock=clock)
    yield d
    await d.aclose()


def test_builtins_load_and_name_what_the_issue_asks_for() -> None:
    catalog = load_catalog(None)
    for name in ("throttle-key", "throttle-team", "block-key", "unblock-key", "block-team", "unblock-team",
                 "switch-provider", "rollback-model", "feature-flag", "rollout-undo", "silence-alert",
                 "expire-silence"):
        assert name in catalog, name
    assert catalog["throttle-team"].time_box == timedelta(minutes=30)
    assert catalog["block-key"].dangerous and catalog["rollback-model"].role == "admin"
    assert sorted(p.name for p in builtin_dir().glob("*.toml"))  # shipped next to the code


async def test_throttle_team_sends_one_request_and_its_revert_clears_the_unset_limit(
        server: LiteLLMAdminServer, desk: ActionDesk, clock: Clock) -> None:
    plan = await desk.plan("throttle-team", {"team_id": "acme-corp", "tpm_limit": "100", "for": "10m"},
                           origin="cli")
    assert "idempotency-key: " + plan.idempotency_key in plan.requests[0].text.lower()
    done = await desk.apply(plan, Confirmation("acme-corp"))
    assert (done.status, done.sent) == ("applied", 1), done.detail
    assert server.admin.team("acme-corp")["tpm_limit"] == 100
    clock.now += timedelta(minutes=11)
    [reverted] = await desk.run_due_reverts()
    assert reverted.status == "applied", reverted.detail
    assert server.admin.team("acme-corp")["tpm_limit"] is None  # unset before: cleared, not left at 100
    assert len(server.mutating()) == 2


async def test_block_key_needs_the_alias_typed(server: LiteLLMAdminServer, desk: ActionDesk) -> None:
    plan = await desk.plan("block-key", {"key_alias": "acme-key"}, origin="key")
    assert plan.target == "acme-key" and RAW_KEY not in repr(plan)
    assert (await desk.apply(plan, Confirmation("yes"))).status == "cancelled"
    assert server.mutating() == []
    assert (await desk.apply(plan, Confirmation("acme-key"))).status == "applied"
    assert server.admin.key(RAW_KEY)["blocked"] is True
    undo = await desk.undo(desk.store.recent()[0].action_id)
    assert (await desk.apply(undo, Confirmation("acme-key"))).status == "applied"
    assert server.admin.key(RAW_KEY)["blocked"] is False


async def test_switch_provider_and_rollback_from_llmdecks_own_last_change(
        server: LiteLLMAdminServer, desk: ActionDesk) -> None:
    switch = await desk.plan("switch-provider", {"provider": "anthropic", "fallback_models": "gpt-4o"},
                             origin="palette")
    assert switch.target == "anthropic" and len(switch.requests) == 1
    assert (await desk.apply(switch, Confirmation("anthropic"))).status == "applied"
    assert server.admin.fallbacks("claude-sonnet-4-5") == ["gpt-4o"]

    change = await desk.plan("rollback-model", {"model_id": "dep-gpt",
                                                "litellm_params": '{"model": "openai/gpt-4o-mini"}'},
                             origin="cli")
    assert (await desk.apply(change, Confirmation("dep-gpt"))).status == "applied"
    back = await desk.plan("rollback-model", {"model_id": "dep-gpt"}, origin="cli")
    assert back.desired["litellm_params"] == {"model": "openai/gpt-4o"} and back.revert_of
    assert (await desk.apply(back, Confirmation("dep-gpt"))).status == "applied"
    assert server.admin.deployment("dep-gpt")["litellm_params"]["model"] == "openai/gpt-4o"
    assert len(server.mutating()) == 3


async def test_the_feature_flag_example_runs_through_the_http_adapter() -> None:
    from console.config_actions import HttpTarget
    from tests.faults.http_action_server import HttpActionServer

    with HttpActionServer() as flags:
        flags.docs["/flags/new-router"] = {"enabled": False}
        config = Config(actions=ActionsSettings(environment="test", default_role="responder",
                                                http=[HttpTarget(name="flags", url=flags.url)]))
        desk = ActionDesk(config, environ={})
        try:
            plan = await desk.plan("feature-flag", {"flag": "new-router", "enabled": "true"},
                                   origin="command")
            assert [(d.before, d.after) for d in plan.diff] == [("false", "true")], plan.diff
            assert flags.mutating() == []
            done = await desk.apply(plan, Confirmation("new-router"))
            assert (done.status, done.sent) == ("applied", 1), done.detail
            assert flags.docs["/flags/new-router"] == {"enabled": True}
            [sent] = flags.mutating()
            assert sent.method == "PUT" and sent.headers["idempotency-key"] == plan.idempotency_key
        finally:
            await desk.aclose()


async def test_a_secret_param_never_reaches_the_state_files_and_undo_uses_the_hash(
        server: LiteLLMAdminServer, desk: ActionDesk, tmp_path: Path) -> None:
    import os

    (tmp_path / "raw.toml").write_text(RAW_KEY_RUNBOOK)
    problems: list[str] = []
    book = load_file(tmp_path / "raw.toml", False, problems)
    assert book is not None, problems
    raw = ActionDesk(desk.config, environ={}, catalog={a.name: a for a in book.actions})
    try:
        plan = await raw.plan("throttle-raw-key", {"key": RAW_KEY, "tpm_limit": 7}, origin="cli")
        assert plan.params["key"] == "***" and RAW_KEY not in plan.target
        assert all(RAW_KEY not in r.text for r in plan.requests)
        done = await raw.apply(plan, Confirmation(plan.target))
        assert done.status == "applied" and server.admin.key(RAW_KEY)["tpm_limit"] == 7
        undo = await raw.undo(done.action_id)  # named by the key's hash read at plan time
        assert RAW_KEY not in repr(undo)
        assert (await raw.apply(undo, Confirmation(undo.target))).status == "applied"
        assert server.admin.key(RAW_KEY)["tpm_limit"] == 500
    finally:
        await raw.aclose()
    state = Path(os.environ["XDG_STATE_HOME"]) / "llmdeck"
    files = [f for f in state.iterdir() if f.is_file()]
    assert files and not [f.name for f in files if RAW_KEY.encode() in f.read_bytes()]


RAW_KEY_RUNBOOK = """\
[runbook]
name = "raw"

[[action]]
name = "throttle-raw-key"
adapter = "litellm.key_limits"
[action.params.key]
type = "str"
secret = true
required = true
[action.params.tpm_limit]
type = "int"
"""
