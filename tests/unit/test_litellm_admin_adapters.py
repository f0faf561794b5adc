"""The six LiteLLM adapter kinds against the recording admin server (tests/faults/litellm_admin_server.py).

A real proxy cannot take admin writes here (they need a database), so the write side runs
against GatewayAdmin, the documented shapes. Each kind goes read → desired → requests →
send → read back, then restore_params → the same again, and the gateway's state must equal
the snapshot taken before; every mutating request carries Idempotency-Key and
LiteLLM-Changed-By; a raw key is in no plan text, request, state or restore param.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import pytest

from console.action_types import ActionError, Adapter, SendError
from console.adapters import AdapterContext, build, kinds
from console.config import Config
from console.config_actions import ActionsSettings, LiteLLMGateway
from console.demo.gateway_admin import hash_token
from tests.faults.litellm_admin_server import MASTER_KEY, LiteLLMAdminServer

RAW = "sk-team-a-live-0123456789abcdef"
OTHER_RAW = "sk-team-b-live-fedcba9876543210"
TOKEN = hash_token(RAW)


@pytest.fixture
def server() -> Iterator[LiteLLMAdminServer]:
    with LiteLLMAdminServer() as srv:
        admin = srv.admin
        admin.add_key(RAW, key_alias="team-a-key", team_id="team-a", tpm_limit=1000, blocked=False)
        admin.add_key(OTHER_RAW, key_alias="team-b-key", team_id="team-b", rpm_limit=30, blocked=False)
        admin.add_team("team-a", team_alias="Team A", rpm_limit=600)
        admin.add_deployment("chat", {"model": "openai/gpt-4o", "api_key": "sk-upstream-xyz", "rpm": 100},
                             model_id="chat-1")
        admin.add_deployment("chat-backup", {"model": "anthropic/claude-sonnet"}, model_id="backup-1")
        admin.add_deployment("chat-small", {"model": "openai/gpt-4o-mini"}, model_id="small-1")
        admin.add_deployment("haiku", {"model": "anthropic/claude-haiku"}, model_id="haiku-1")
        admin.add_deployment("gemini", {"model": "gemini/gemini-2.5-flash"}, model_id="gemini-1")
        admin.set_fallbacks("chat", ["chat-small"])
        admin.set_fallbacks("haiku", ["chat-small"])
        yield srv


def _config(url: str) -> Config:
    gateway = LiteLLMGateway(name="edge-gw", url=url, admin_key_ref="env:LITELLM_ADMIN_KEY",
                             timeout_seconds=1)
    return Config(actions=ActionsSettings(litellm=[gateway]))


@pytest.fixture
async def adapters(server: LiteLLMAdminServer) -> AsyncIterator[dict[str, Adapter]]:
    context = AdapterContext(config=_config(server.url), gateway="", secret=lambda ref: MASTER_KEY)
    built = {kind: build(kind, context) for kind in kinds() if kind.startswith("litellm.")}
    yield built
    for adapter in built.values():
        await adapter.aclose()


async def _apply(adapter: Adapter, params: Mapping[str, Any], key: str) -> tuple[dict[str, Any], list[str]]:
    """read → desired → requests → send; returns (state before, the plan texts)."""
    current = await adapter.read(params)
    desired = adapter.desired(params, current)
    planned = adapter.requests(params, current, desired)
    for n, request in enumerate(planned):
        answer = await adapter.send(request, idempotency_key=f"{key}:{n}", changed_by="alice@bastion")
        assert answer.startswith("edge-gw: ") and "accepted" in answer
    assert await adapter.read(params) == desired  # the read-back shows what was planned
    texts = [r.text for r in planned] + [r.body_json for r in planned]
    return current, texts


CASES = [
    ("litellm.key_limits", {"key_alias": "team-a-key", "tpm_limit": 10, "rpm_limit": 5}, "team-a-key"),
    ("litellm.key_limits", {"key": RAW, "max_parallel_requests": 2, "tpm_limit": None}, f"key {TOKEN[:16]}"),
    ("litellm.team_limits", {"team_id": "team-a", "tpm_limit": 50, "rpm_limit": 6}, "team-a"),
    ("litellm.key_block", {"key_alias": "team-a-key", "blocked": True}, "team-a-key"),
    ("litellm.key_block", {"key": RAW, "blocked": True}, f"key {TOKEN[:16]}"),
    ("litellm.team_block", {"team_id": "team-a", "blocked": True}, "team-a"),
    ("litellm.fallbacks", {"model": "chat", "fallback_models": ["chat-backup", "chat-small"]}, "chat"),
    ("litellm.fallbacks", {"model": "chat", "fallback_models": []}, "chat"),
    ("litellm.fallbacks", {"provider": "anthropic", "fallback_models": ["chat", "gemini"]}, "anthropic"),
    ("litellm.fallbacks", {"model": "chat-backup", "fallback_models": ["chat"],
                           "fallback_type": "context_window"}, "chat-backup"),
    ("litellm.model_params", {"model_name": "chat", "litellm_params": {"model": "openai/gpt-4o-2024-05-13",
                                                                      "rpm": None, "timeout": 30}}, "chat"),
]


@pytest.mark.parametrize(("kind", "params", "target"), CASES)
async def test_apply_then_restore_leaves_the_gateway_as_it_was(
        server: LiteLLMAdminServer, adapters: dict[str, Adapter], kind: str, params: dict[str, Any],
        target: str) -> None:
    adapter = adapters[kind]
    snapshot = server.admin.snapshot()
    assert adapter.target(params) == target and adapter.readable
    before, texts = await _apply(adapter, params, "act-1")
    assert server.admin.snapshot() != snapshot
    restore = adapter.restore_params(params, before)
    assert restore is not None
    _, restore_texts = await _apply(adapter, restore, "act-2")
    assert server.admin.snapshot() == snapshot
    writes = server.mutating()
    each_way = 2 if "provider" in params else 1  # one request per model group on the provider
    assert len(writes) == 2 * each_way
    assert [w.headers["idempotency-key"] for w in writes] == [f"act-{a}:{n}" for a in (1, 2)
                                                              for n in range(each_way)]
    assert all(w.headers["litellm-changed-by"] == "alice@bastion" for w in writes)
    everything = " ".join([*texts, *restore_texts, repr(before), repr(restore), adapter.target(params),
                           *(w.path + w.body.decode() for w in server.requests)])
    assert RAW not in everything and MASTER_KEY not in everything and "sk-upstream" not in everything
    plan_texts = [t for t in texts if t.startswith(("POST ", "PATCH ", "DELETE "))]
    assert plan_texts and all("\nauthorization: ***\n" in t for t in plan_texts)


async def test_switching_a_provider_sets_each_of_its_groups(server: LiteLLMAdminServer,
                                                             adapters: dict[str, Adapter]) -> None:
    adapter = adapters["litellm.fallbacks"]
    params = {"provider": "anthropic", "fallback_models": ["chat"]}
    current = await adapter.read(params)
    assert current == {"fallbacks": {"chat-backup": [], "haiku": ["chat-small"]}}
    planned = adapter.requests(params, current, adapter.desired(params, current))
    assert [(r.method, r.body) for r in planned] == [
        ("POST", {"model": "chat-backup", "fallback_models": ["chat"], "fallback_type": "general"}),
        ("POST", {"model": "haiku", "fallback_models": ["chat"], "fallback_type": "general"})]
    with pytest.raises(ActionError, match="'chat-backup' is itself on provider 'anthropic'"):
        await adapter.read({"provider": "anthropic", "fallback_models": ["chat-backup"]})
    with pytest.raises(ActionError, match="no model group on provider 'mistral'"):
        await adapter.read({"provider": "mistral", "fallback_models": ["chat"]})
    restore = adapter.restore_params(params, current)
    assert restore == {"provider": "anthropic", "fallback_type": "general",
                       "groups": {"chat-backup": [], "haiku": ["chat-small"]}}


async def test_plan_text_shows_the_headers_and_masks_the_admin_key(adapters: dict[str, Adapter]) -> None:
    adapter = adapters["litellm.team_limits"]
    params = {"team_id": "team-a", "rpm_limit": 1}
    current = await adapter.read(params)
    (request,) = adapter.requests(params, current, adapter.desired(params, current))
    lines = request.text.lower().splitlines()
    assert lines[0].startswith("post http://127.0.0.1:") and lines[0].endswith("/team/update")
    assert "idempotency-key: <idempotency-key>" in lines and "litellm-changed-by: <operator>" in lines
    assert MASTER_KEY not in request.text and request.body == {"team_id": "team-a", "rpm_limit": 1}


async def test_nothing_to_change_plans_no_request(adapters: dict[str, Adapter]) -> None:
    adapter = adapters["litellm.key_limits"]
    params = {"key_alias": "team-a-key", "tpm_limit": 1000}
    current = await adapter.read(params)
    assert adapter.requests(params, current, adapter.desired(params, current)) == []


async def test_unknown_targets_and_bad_params_are_action_errors(adapters: dict[str, Adapter]) -> None:
    with pytest.raises(ActionError, match="no key with alias 'ghost'"):
        await adapters["litellm.key_limits"].read({"key_alias": "ghost", "tpm_limit": 1})
    with pytest.raises(ActionError, match="team 'ghost' not found"):
        await adapters["litellm.team_block"].read({"team_id": "ghost"})
    with pytest.raises(ActionError, match="no model group 'gpt-9'"):
        await adapters["litellm.fallbacks"].read({"model": "chat", "fallback_models": ["gpt-9"]})
    with pytest.raises(ActionError, match="api_key cannot be changed"):
        await adapters["litellm.model_params"].read({"model_id": "chat-1",
                                                     "litellm_params": {"api_key": "x"}})
    with pytest.raises(ActionError, match="raw key") as raw:
        adapters["litellm.key_block"].target({"key_alias": RAW})
    assert RAW not in str(raw.value)
    with pytest.raises(ActionError, match="'tpm_limit'"):
        adapters["litellm.key_limits"].desired({"tpm_limit": -1}, {})


async def _one_request(adapter: Adapter, params: dict[str, Any]) -> Any:
    current = await adapter.read(params)
    (request,) = adapter.requests(params, current, adapter.desired(params, current))
    return request


async def test_refusals_become_send_errors_with_status_and_gateway(server: LiteLLMAdminServer,
                                                                  adapters: dict[str, Adapter]) -> None:
    adapter = adapters["litellm.team_block"]
    request = await _one_request(adapter, {"team_id": "team-a"})
    server.fail_next(500, {"detail": {"error": "No DB Connected"}})
    with pytest.raises(SendError) as refused:
        await adapter.send(request, idempotency_key="k1", changed_by="alice")
    assert refused.value.status == 500 and not refused.value.unsure
    assert str(refused.value) == ("LiteLLM gateway edge-gw: POST /team/block failed: HTTP 500: "
                                  "No DB Connected")
    server.fail_next(401, {"error": {"message": "Authentication Error, not an admin", "type": "auth_error",
                                     "param": "None", "code": "401"}})
    with pytest.raises(SendError, match="HTTP 401: .*not an admin") as denied:
        await adapter.send(request, idempotency_key="k2", changed_by="alice")
    assert denied.value.status == 401
    assert len(server.mutating()) == 2  # each sent once, never retried
    assert server.admin.team("team-a")["blocked"] is False


async def test_a_lost_answer_is_unsure_and_never_retried(server: LiteLLMAdminServer,
                                                         adapters: dict[str, Adapter]) -> None:
    adapter = adapters["litellm.key_block"]
    request = await _one_request(adapter, {"key_alias": "team-a-key"})
    server.drop_next()
    with pytest.raises(SendError, match="may or may not have taken") as dropped:
        await adapter.send(request, idempotency_key="k1", changed_by="alice")
    assert dropped.value.unsure and dropped.value.status is None
    assert server.admin.key(RAW)["blocked"] is True  # it did take
    server.hang_next()
    with pytest.raises(SendError) as hung:
        await adapter.send(request, idempotency_key="k2", changed_by="alice")
    assert hung.value.unsure
    assert len(server.mutating()) == 2


async def test_a_gateway_that_is_down_was_not_sent(server: LiteLLMAdminServer,
                                                   adapters: dict[str, Adapter]) -> None:
    request = await _one_request(adapters["litellm.team_block"], {"team_id": "team-a"})
    with LiteLLMAdminServer() as gone:
        url = gone.url  # a port nobody listens on once it stopped
    context = AdapterContext(config=_config(url), gateway="edge-gw", secret=lambda ref: MASTER_KEY)
    adapter = build("litellm.team_block", context)
    try:
        with pytest.raises(SendError, match="not sent") as down:
            await adapter.send(request, idempotency_key="k1", changed_by="alice")
    finally:
        await adapter.aclose()
    assert not down.value.unsure and down.value.status is None
    assert "edge-gw" in str(down.value) and not server.mutating()


def test_the_six_kinds_are_registered_and_a_missing_gateway_is_named() -> None:
    assert {k for k in kinds() if k.startswith("litellm.")} == {
        "litellm.key_limits", "litellm.team_limits", "litellm.key_block", "litellm.team_block",
        "litellm.fallbacks", "litellm.model_params"}
    context = AdapterContext(config=_config("http://127.0.0.1:9"), gateway="nope", secret=lambda ref: "k")
    with pytest.raises(ActionError, match="no \\[\\[actions.litellm\\]\\] gateway named 'nope' .*edge-gw"):
        build("litellm.key_limits", context)
    with pytest.raises(ActionError, match="name the LiteLLM gateway|none configured"):
        build("litellm.key_limits", AdapterContext(config=Config(), gateway="", secret=lambda ref: "k"))


async def test_each_documented_error_body_becomes_one_clean_line(server: LiteLLMAdminServer,
                                                                 adapters: dict[str, Adapter]) -> None:
    adapter = adapters["litellm.team_limits"]
    request = await _one_request(adapter, {"team_id": "team-a", "tpm_limit": 9})
    bodies = [
        (400, {"error": {"message": "Invalid budget_duration", "type": "bad_request_error",
                         "param": "budget_duration", "code": "400"}}, "Invalid budget_duration"),
        (404, {"detail": {"error": "Team not found, passed team_id=team-a"}},
         "Team not found, passed team_id=team-a"),
        (422, {"detail": [{"type": "missing", "loc": ["body", "team_id"], "msg": "Field required",
                           "input": {"secret": MASTER_KEY}}]}, "team_id: Field required"),
        (403, {"detail": "Only proxy admins can update teams\x1b[31m"}, "Only proxy admins can update teams"),
    ]
    for status, body, said in bodies:
        server.fail_next(status, body)
        with pytest.raises(SendError) as refused:
            await adapter.send(request, idempotency_key=f"k{status}", changed_by="alice")
        text = str(refused.value)
        assert refused.value.status == status and not refused.value.unsure
        assert text.startswith(f"LiteLLM gateway edge-gw: POST /team/update failed: HTTP {status}: ")
        assert said in text and "\x1b" not in text and MASTER_KEY not in text and "\n" not in text
    assert len(server.mutating()) == len(bodies)


async def test_a_failed_read_is_an_action_error_naming_the_gateway_once(
        server: LiteLLMAdminServer, adapters: dict[str, Adapter]) -> None:
    server.fail_next(401, {"error": {"message": "Authentication Error, Invalid proxy server token passed.",
                                     "type": "auth_error", "param": "None", "code": "401"}}, method="GET")
    with pytest.raises(ActionError) as failed:
        await adapters["litellm.team_limits"].read({"team_id": "team-a", "rpm_limit": 1})
    text = str(failed.value)
    assert text.startswith("cannot read the current state from LiteLLM gateway edge-gw: HTTP 401: ")
    assert text.count("edge-gw") == 2  # the gateway, and the credentials hint naming it
    assert "Invalid proxy server token" in text and not server.mutating()


@pytest.mark.parametrize("kind", ["litellm.key_limits", "litellm.key_block"])
async def test_an_action_on_a_raw_key_is_undone_from_its_masked_params(
        server: LiteLLMAdminServer, adapters: dict[str, Adapter], kind: str) -> None:
    """The desk stores a secret `key` param as "***": the restore names the key by the hash read before."""
    adapter = adapters[kind]
    params = {"key": RAW, "tpm_limit": 3} if kind.endswith("limits") else {"key": RAW, "blocked": True}
    snapshot = server.admin.snapshot()
    before, _ = await _apply(adapter, params, "act-1")
    stored = {**params, "key": "***"}
    restore = adapter.restore_params(stored, before)
    assert restore is not None and restore["key_hash"] == TOKEN and "key" not in restore
    assert adapter.target(restore) == f"key {TOKEN[:16]}"
    await _apply(adapter, restore, "act-2")
    assert server.admin.snapshot() == snapshot
    with pytest.raises(ActionError, match="'key' is masked"):
        adapter.restore_params(stored, {})  # no hash captured: a clear refusal, not a wrong key
    with pytest.raises(ActionError, match="raw key"):
        adapter.target({"key_hash": RAW})
