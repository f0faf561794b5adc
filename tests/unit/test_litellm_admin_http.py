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
                await admin.write("POST", "/team/block", {"team_id": "t"}, idempotency_key="", changed_by="a")
    assert all(raw not in r.path + repr(r.query) for r in server.requests)  # only the hash travels
    assert not server.mutating()
