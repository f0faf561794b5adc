"""SourceClient's per-request `headers=` (Idempotency-Key, LiteLLM-Changed-By) and `maybe_sent`:
what a write needs from the shared HTTP policy, against the recording LiteLLM admin server."""

from __future__ import annotations

import pytest

from connectors.http import HttpPolicy, SourceClient, SourceError
from connectors.litellm_admin import LiteLLMAdmin, NotFound, hash_token
from console.action_types import SendError
from tests.faults.litellm_admin_server import MASTER_KEY, LiteLLMAdminServer

POLICY = HttpPolicy(connect_timeout=1.0, read_timeout=0.5, deadline=3.0, backoff_base=0.01, backoff_cap=0.02)
WRITE_HEADERS = {"Idempotency-Key": "act-1:0", "LiteLLM-Changed-By": "alice@bastion"}


def _client(url: str) -> SourceClient:
    return SourceClient("gw", url, secret_headers={"Authorization": f"Bearer {MASTER_KEY}"}, policy=POLICY)


async def test_headers_go_on_that_request_only() -> None:
    with LiteLLMAdminServer() as server:
        server.admin.add_team("t1")
        async with _client(server.url) as client:
            await client.send("POST", "/team/block", json={"team_id": "t1"}, headers=WRITE_HEADERS)
            await client.get_json("/team/info", params={"team_id": "t1"})
            text = client.describe_request("POST", "/team/block", json={"team_id": "t1"},
                                           headers=WRITE_HEADERS)
    write, read = server.requests
    assert write.headers["idempotency-key"] == "act-1:0"
    assert write.headers["litellm-changed-by"] == "alice@bastion"
    assert write.headers["authorization"] == f"Bearer {MASTER_KEY}"
    assert "idempotency-key" not in read.headers and "litellm-changed-by" not in read.headers
    assert "Idempotency-Key: act-1:0" in text.replace("idempotency-key", "Idempotency-Key")
    assert MASTER_KEY not in text


async def test_a_lost_answer_is_maybe_sent_and_never_retried() -> None:
    with LiteLLMAdminServer() as server:
        server.admin.add_team("t1")
        async with _client(server.url) as client:
            server.drop_next()
            with pytest.raises(SourceError) as dropped:
                await client.send("POST", "/team/block", json={"team_id": "t1"}, headers=WRITE_HEADERS)
            server.hang_next()
            with pytest.raises(SourceError) as hung:
                await client.send("POST", "/team/unblock", json={"team_id": "t1"}, headers=WRITE_HEADERS)
    assert dropped.value.maybe_sent and hung.value.maybe_sent
    assert hung.value.kind == "timeout"
    assert len(server.mutating()) == 2  # one each: a write is never retried


async def test_a_refused_connection_was_not_sent() -> None:
    with LiteLLMAdminServer() as server:
        url = server.url
    async with _client(url) as client:
        with pytest.raises(SourceError) as refused:
            await client.send("POST", "/team/block", json={"team_id": "t1"}, headers=WRITE_HEADERS)
    assert refused.value.kind == "connect" and not refused.value.maybe_sent


async def test_admin_reads_and_a_write_without_its_headers_is_not_sent() -> None:
    raw = "sk-reader-0123456789abcdef"
    with LiteLLMAdminServer() as server:
        server.admin.add_key(raw, key_alias="reader", rpm_limit=7)
        server.admin.add_deployment("chat", {"model": "openai/gpt-4o"}, model_id="c1")
        server.admin.add_deployment("alt", {"model": "mistral/large"}, model_id="a1")
        server.admin.set_fallbacks("chat", ["alt"])
        async with _client(server.url) as client:
            admin = LiteLLMAdmin(client)
            by_key = await admin.key_info(raw)
            by_alias = await admin.key_by_alias("reader")
            assert by_key["rpm_limit"] == by_alias["rpm_limit"] == 7
            assert by_key["token"] == by_alias["token"] == hash_token(raw)
            assert (await admin.router_settings())["fallbacks"] == [{"chat": ["alt"]}]
            assert await admin.fallbacks("alt") == []
            with pytest.raises(NotFound, match="no key with alias 'ghost'"):
                await admin.key_by_alias("ghost")
            with pytest.raises(SendError, match="needs an idempotency key"):
                await admin.admin_write("POST", "/team/block", {"team_id": "t"}, idempotency_key="",
                                        changed_by="a")
    assert all(raw not in r.path + repr(r.query) for r in server.requests)  # only the hash travels
    assert not server.mutating()


async def test_every_admin_write_sends_its_headers_once_in_the_documented_shape() -> None:
    raw = "sk-writer-0123456789abcdef"
    with LiteLLMAdminServer() as server:
        server.admin.add_key(raw, key_alias="writer")
        server.admin.add_team("t1")
        server.admin.add_deployment("chat", {"model": "openai/gpt-4o"}, model_id="c1")
        server.admin.add_deployment("alt", {"model": "mistral/large"}, model_id="a1")
        async with _client(server.url) as client:
            admin = LiteLLMAdmin(client)
            who = {"changed_by": "alice@bastion"}
            requests = [
                LiteLLMAdmin.update_key_request({"key_alias": "writer"}, {"tpm_limit": 5}),
                LiteLLMAdmin.block_key_request(raw, True), LiteLLMAdmin.block_key_request(raw, False),
                LiteLLMAdmin.update_team_request("t1", {"rpm_limit": 3}),
                LiteLLMAdmin.block_team_request("t1", True), LiteLLMAdmin.block_team_request("t1", False),
                LiteLLMAdmin.update_model_request("c1", {"rpm": 9}),
                LiteLLMAdmin.set_fallbacks_request("chat", ["alt"]),
                LiteLLMAdmin.delete_fallbacks_request("chat")]
            for n, r in enumerate(requests, 1):
                await admin.admin_write(r.method, r.path, r.body, idempotency_key=f"i{n}", **who)
    writes = server.mutating()
    assert [(w.method, w.path, w.json()) for w in writes] == [
        ("POST", "/key/update", {"key_alias": "writer", "tpm_limit": 5}),
        ("POST", "/key/block", {"key": hash_token(raw)}),
        ("POST", "/key/unblock", {"key": hash_token(raw)}),
        ("POST", "/team/update", {"team_id": "t1", "rpm_limit": 3}),
        ("POST", "/team/block", {"team_id": "t1"}),
        ("POST", "/team/unblock", {"team_id": "t1"}),
        ("PATCH", "/model/c1/update", {"litellm_params": {"rpm": 9}}),
        ("POST", "/fallback", {"model": "chat", "fallback_models": ["alt"], "fallback_type": "general"}),
        ("DELETE", "/fallback/chat", None)]
    assert [w.headers["idempotency-key"] for w in writes] == [f"i{n}" for n in range(1, 10)]
    assert {w.headers["litellm-changed-by"] for w in writes} == {"alice@bastion"}
    assert writes[-1].query == (("fallback_type", "general"),)
    assert server.admin.key(raw)["tpm_limit"] == 5 and server.admin.team("t1")["rpm_limit"] == 3


async def test_a_non_ascii_or_hostile_operator_name_still_sends_once() -> None:
    with LiteLLMAdminServer() as server:
        server.admin.add_team("t1")
        async with _client(server.url) as client:
            admin = LiteLLMAdmin(client)
            await admin.admin_write("POST", "/team/block", {"team_id": "t1"}, idempotency_key="i1",
                                    changed_by="josé")
            await admin.admin_write("POST", "/team/unblock", {"team_id": "t1"}, idempotency_key="i2",
                                    changed_by="mallory\r\nX-Evil: 1")
            text = admin.describe("POST", "/team/block", {"team_id": "t1"}, changed_by="josé")
    first, second = server.mutating()
    assert first.headers["litellm-changed-by"] == "jos\\xe9"
    assert second.headers["litellm-changed-by"] == "malloryX-Evil: 1" and "x-evil" not in second.headers
    assert "litellm-changed-by: jos\\xe9" in text
    assert server.admin.team("t1")["updated_by"] == "malloryX-Evil: 1"
