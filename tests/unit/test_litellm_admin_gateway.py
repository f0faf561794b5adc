"""GatewayAdmin (console/demo/gateway_admin.py) answers in the documented LiteLLM admin shapes,
and the recording server around it records every request and injects its faults."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from console.demo.gateway_admin import GatewayAdmin, hash_token
from tests.faults.litellm_admin_server import MASTER_KEY, LiteLLMAdminServer

RAW = "sk-team-a-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}


def _admin(changes: list[tuple[str, Any, Any]] | None = None) -> GatewayAdmin:
    record = (lambda *c: changes.append(c)) if changes is not None else None
    admin = GatewayAdmin(MASTER_KEY, on_change=record)
    admin.add_key(RAW, key_alias="team-a-key", team_id="team-a", tpm_limit=1000)
    admin.add_team("team-a", team_alias="Team A", rpm_limit=60)
    admin.add_deployment("chat", {"model": "openai/gpt-4o", "api_key": "sk-upstream-secret"}, model_id="m-1")
    admin.add_deployment("chat-backup", {"model": "anthropic/claude"}, model_id="m-2")
    return admin


def test_auth_is_the_master_key_and_health_is_open() -> None:
    admin = _admin()
    status, body = admin.handle("GET", "/key/list", {}, {}, None)
    assert status == 401 and body["error"]["type"] == "auth_error" and body["error"]["code"] == "401"
    status, body = admin.handle("GET", "/key/list", {}, {"Authorization": "Bearer sk-wrong"}, None)
    assert status == 401 and "sk-wrong" not in str(body)
    assert admin.handle("GET", "/key/list", {}, {"x-litellm-api-key": MASTER_KEY}, None)[0] == 200
    assert admin.handle("GET", "/health/liveliness", {}, {}, None) == (200, "I'm alive!")


def test_key_update_is_a_merge_patch_recording_who_changed_it() -> None:
    changes: list[tuple[str, Any, Any]] = []
    admin = _admin(changes)
    headers = {**AUTH, "LiteLLM-Changed-By": "alice"}
    patch = {"key_alias": "team-a-key", "rpm_limit": 5}
    status, body = admin.handle("POST", "/key/update", {}, headers, patch)
    assert status == 200 and body == {"key": hash_token(RAW), "rpm_limit": 5}
    row = admin.key(RAW)
    assert (row["tpm_limit"], row["rpm_limit"], row["updated_by"]) == (1000, 5, "alice")
    admin.handle("POST", "/key/update", {}, AUTH, {"key": hash_token(RAW), "tpm_limit": None})
    assert admin.key(RAW)["tpm_limit"] is None  # an explicit null clears
    assert [(k, b["rpm_limit"], a["rpm_limit"]) for k, b, a in changes][:1] == [("key", None, 5)]
    status, body = admin.handle("POST", "/key/update", {}, AUTH, {"key_alias": "team-a-key", "tpm_limit": -1})
    assert status == 422 and body["detail"][0]["loc"] == ["body", "tpm_limit"]
    status, body = admin.handle("POST", "/key/update", {}, AUTH, {"key_alias": "nobody"})
    assert status == 404 and "nobody" in body["error"]["message"]


def test_reads_hide_secrets_and_raw_keys() -> None:
    admin = _admin()
    status, body = admin.handle("GET", "/model/info", {}, AUTH, None)
    assert status == 200 and [m["model_info"]["id"] for m in body["data"]] == ["m-1", "m-2"]
    assert "sk-upstream-secret" not in str(body)
    query = {"key_alias": ["team-a-key"], "return_full_object": ["true"]}
    status, body = admin.handle("GET", "/key/list", query, AUTH, None)
    assert status == 200 and body["total_count"] == 1 and body["keys"][0]["token"] == hash_token(RAW)
    assert RAW not in str(body) and RAW not in str(admin.snapshot())
    status, body = admin.handle("GET", "/key/info", {"key": hash_token(RAW)}, AUTH, None)
    assert status == 200 and body["info"]["tpm_limit"] == 1000 and "token" not in body["info"]


def test_block_team_and_fallbacks_follow_the_documented_errors() -> None:
    changes: list[tuple[str, Any, Any]] = []
    admin = _admin(changes)
    assert admin.handle("POST", "/team/block", {}, AUTH, {"team_id": "team-a"})[1]["blocked"] is True
    status, body = admin.handle("POST", "/team/block", {}, AUTH, {"team_id": "ghost"})
    assert status == 404 and body == {"detail": {"error": "Team not found, passed team_id=ghost"}}
    status, body = admin.handle("GET", "/fallback/chat", {}, AUTH, None)
    assert status == 404 and body["detail"]["error"] == "No general fallbacks configured for model 'chat'"
    fallback = {"model": "chat", "fallback_models": ["chat-backup"]}
    status, body = admin.handle("POST", "/fallback", {}, AUTH, fallback)
    assert status == 200 and body["message"] == "Fallback configuration created successfully"
    assert admin.handle("GET", "/fallback/chat", {}, AUTH, None)[1]["fallback_models"] == ["chat-backup"]
    status, body = admin.handle("POST", "/fallback", {}, AUTH, {"model": "chat", "fallback_models": ["nope"]})
    assert status == 400 and "Invalid fallback models" in body["detail"]["error"]
    assert admin.handle("DELETE", "/fallback/chat", {}, AUTH, None)[0] == 200
    assert admin.fallbacks("chat") == []
    assert [c[0] for c in changes] == ["team", "fallbacks", "fallbacks"]


def test_model_update_merges_params_and_keeps_the_model() -> None:
    admin = _admin()
    status, body = admin.handle("POST", "/model/update", {}, AUTH,
                                {"model_info": {"id": "m-1"}, "litellm_params": {"rpm": 10}})
    assert status == 200 and body["litellm_params"] == {"model": "openai/gpt-4o", "rpm": 10}
    assert admin.deployment("m-1")["litellm_params"]["api_key"] == "sk-upstream-secret"
    status, body = admin.handle("POST", "/model/update", {}, AUTH, {"litellm_params": {"rpm": 1}})
    assert status == 422 and body["detail"][0]["loc"] == ["body", "model_info", "id"]
    status, _ = admin.handle("PATCH", "/model/m-1/update", {}, AUTH, {"litellm_params": {"rpm": None}})
    assert status == 200 and "rpm" not in admin.deployment("m-1")["litellm_params"]


def test_server_records_requests_and_injects_faults() -> None:
    with LiteLLMAdminServer(admin=_admin()) as server, httpx.Client(base_url=server.url, headers=AUTH,
                                                                     timeout=2) as client:
        server.fail_next(500, {"error": {"message": "No DB Connected", "type": "internal", "param": None,
                                         "code": "500"}})
        assert client.post("/team/block", json={"team_id": "team-a"}).status_code == 500
        assert server.admin.team("team-a")["blocked"] is False  # a failed request changes nothing
        server.drop_next(path="/team/block")
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("/team/block", json={"team_id": "team-a"})
        assert server.admin.team("team-a")["blocked"] is True  # applied, then no answer
        server.hang_next()
        with pytest.raises(httpx.ReadTimeout):
            client.post("/team/unblock", json={"team_id": "team-a"}, timeout=0.3)
        assert client.get("/team/info", params={"team_id": "team-a"}).json()["team_info"]["blocked"] is True
    assert [(r.method, r.path) for r in server.mutating()] == [("POST", "/team/block")] * 2 + [
        ("POST", "/team/unblock")]
    assert server.mutating()[0].headers["authorization"] == f"Bearer {MASTER_KEY}"
    assert server.mutating()[0].json() == {"team_id": "team-a"}


def test_concurrent_writes_all_land_and_every_change_is_reported_once() -> None:
    changes: list[tuple[str, Any, Any]] = []
    lock = threading.Lock()

    def record(kind: str, before: Any, after: Any) -> None:
        with lock:
            changes.append((kind, before, after))

    admin = GatewayAdmin(MASTER_KEY, on_change=record)
    for n in range(8):
        admin.add_key(f"sk-worker-{n}-0123456789", key_alias=f"worker-{n}")

    def work(n: int) -> None:
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=10) as client:
            for limit in range(1, 26):
                answer = client.post("/key/update", json={"key_alias": f"worker-{n}", "tpm_limit": limit})
                assert answer.status_code == 200

    with LiteLLMAdminServer(admin=admin) as server:
        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(server.mutating()) == 8 * 25 and len(changes) == 8 * 25
    assert all(admin.key(f"sk-worker-{n}-0123456789")["tpm_limit"] == 25 for n in range(8))
    for n in range(8):
        mine = [after["tpm_limit"] for _, _, after in changes if after["key_alias"] == f"worker-{n}"]
        assert sorted(mine) == list(range(1, 26))
