"""The LiteLLM adapters' read side against a REAL LiteLLM proxy, and what its refused writes become.

The proxy (PyPI `litellm[proxy]` in its own virtualenv, as for test_litellm_metrics.py) runs
on 127.0.0.1 with no database: `/model/info` and `GET /fallback/{model}` work, admin writes
do not (REAL_SERVERS.md). So this checks that the plans are made from the real answers
(deployments without their provider keys, configured fallbacks, the 404 of a model without
any), and that a real refused write reaches the operator as one clear SendError naming the
gateway, the call and the status. The write side proper is tested against the recording
server (tests/unit/test_litellm_admin_adapters.py).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from connectors.http import HttpPolicy, SourceClient
from connectors.litellm_admin import LiteLLMAdmin
from console.action_types import Adapter, SendError
from console.adapters import AdapterContext, build
from console.config import Config
from console.config_actions import ActionsSettings, LiteLLMGateway
from tests.integration.fake_openai import FakeOpenAI
from tests.integration.servers import ServerProcess, free_port, http_ok
from tests.integration.test_litellm_metrics import _need_litellm

MASTER_KEY = "sk-llmdeck-admin-reads-master-4242"
UPSTREAM_KEY = "sk-upstream-secret-never-shown-77"
pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


def _config(upstream: str) -> str:
    def deployment(name: str, upstream_model: str) -> str:
        return (f"  - model_name: {name}\n    litellm_params:\n      model: openai/{upstream_model}\n"
                f"      api_base: {upstream}\n      api_key: {UPSTREAM_KEY}\n      rpm: 120\n")

    return ("model_list:\n" + deployment("good-model", "good-upstream")
            + deployment("backup-model", "backup-upstream")
            + 'router_settings:\n  num_retries: 0\n  fallbacks: [{"good-model": ["backup-model"]}]\n'
            + "litellm_settings:\n  num_retries: 0\n"
            + f"general_settings:\n  master_key: {MASTER_KEY}\n")


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real proxy's base URL, up and ready."""
    binary = _need_litellm()
    upstream = FakeOpenAI().start()
    work = tmp_path_factory.mktemp("litellm-admin")
    (work / "cfg.yaml").write_text(_config(upstream.base_url))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", NO_PROXY="127.0.0.1,localhost", HOME=str(work))
    env.pop("DATABASE_URL", None)
    server = ServerProcess([str(binary), "--config", str(work / "cfg.yaml"), "--port", str(port),
                            "--host", "127.0.0.1"], work / "litellm.log", env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        server.wait_ready(http_ok(base + "/health/liveliness"), timeout=120, what="litellm proxy")
        yield base
    finally:
        server.stop()
        upstream.stop()


@pytest.fixture
async def admin(proxy: str) -> AsyncIterator[LiteLLMAdmin]:
    client = SourceClient("real-gw", proxy, secret_headers={"Authorization": f"Bearer {MASTER_KEY}"},
                          policy=HttpPolicy(read_timeout=10, deadline=30))
    yield LiteLLMAdmin(client)
    await client.aclose()


def _adapter(proxy: str, kind: str) -> Adapter:
    gateway = LiteLLMGateway(name="real-gw", url=proxy, admin_key_ref="env:UNUSED", timeout_seconds=10)
    context = AdapterContext(config=Config(actions=ActionsSettings(litellm=[gateway])), gateway="real-gw",
                             secret=lambda ref: MASTER_KEY)
    return build(kind, context)


async def test_model_info_lists_the_deployments_without_their_keys(admin: LiteLLMAdmin) -> None:
    rows = await admin.model_info()
    by_name = {r["model_name"]: r for r in rows}
    assert set(by_name) == {"good-model", "backup-model"}
    good = by_name["good-model"]
    assert good["litellm_params"]["model"] == "openai/good-upstream"
    assert good["litellm_params"]["rpm"] == 120
    assert "api_key" not in good["litellm_params"] and UPSTREAM_KEY not in repr(rows)
    model_id = good["model_info"]["id"]
    assert model_id and [r["model_name"] for r in await admin.model_info(model_id)] == ["good-model"]


async def test_fallbacks_read_the_configured_rule_and_none_is_empty(admin: LiteLLMAdmin) -> None:
    assert await admin.fallbacks("good-model") == ["backup-model"]
    assert await admin.fallbacks("backup-model") == []  # the proxy's 404 "No general fallbacks configured"
    assert await admin.fallbacks("good-model", "context_window") == []


async def test_router_settings_show_the_configured_fallbacks(admin: LiteLLMAdmin) -> None:
    values = await admin.router_settings()
    assert values.get("fallbacks") == [{"good-model": ["backup-model"]}]
    assert MASTER_KEY not in repr(values) and UPSTREAM_KEY not in repr(values)


async def test_a_real_refused_fallback_change_is_a_clear_send_error(proxy: str) -> None:
    adapter = _adapter(proxy, "litellm.fallbacks")
    try:
        params = {"model": "good-model", "fallback_models": []}
        current = await adapter.read(params)
        assert current == {"fallbacks": {"good-model": ["backup-model"]}}
        (request,) = adapter.requests(params, current, adapter.desired(params, current))
        assert (request.method, request.path) == ("DELETE", "/fallback/good-model?fallback_type=general")
        with pytest.raises(SendError) as refused:
            await adapter.send(request, idempotency_key="it-1:0", changed_by="alice")
        assert await adapter.read(params) == current  # nothing changed
    finally:
        await adapter.aclose()
    error = refused.value
    assert error.status == 400 and not error.unsure
    assert str(error).startswith("LiteLLM gateway real-gw: DELETE /fallback/good-model failed: HTTP 400: ")
    assert "Database storage not enabled" in str(error)
    assert "\n" not in str(error) and MASTER_KEY not in str(error) and "fallback_type=" not in str(error)


async def test_a_real_model_update_without_a_database_is_a_clear_send_error(proxy: str) -> None:
    adapter = _adapter(proxy, "litellm.model_params")
    try:
        params = {"model_name": "good-model", "litellm_params": {"rpm": 60}}
        current = await adapter.read(params)
        assert current["model_name"] == "good-model" and current["litellm_params"] == {"rpm": 120}
        (request,) = adapter.requests(params, current, adapter.desired(params, current))
        assert request.method == "PATCH" and request.body == {"litellm_params": {"rpm": 60}}
        assert UPSTREAM_KEY not in request.text and MASTER_KEY not in request.text
        with pytest.raises(SendError) as refused:
            await adapter.send(request, idempotency_key="it-2:0", changed_by="alice")
        assert await adapter.read(params) == current
    finally:
        await adapter.aclose()
    error = refused.value
    assert error.status == 500 and not error.unsure
    text = str(error)
    assert "db" in text.lower()  # "No DB Connected" / "DB not connected ..." (the proxy's wording varies)
    assert text.startswith(f"LiteLLM gateway real-gw: PATCH /model/{current['model_id']}/update failed: "
                           f"HTTP {error.status}: ")
    assert "\n" not in text and MASTER_KEY not in text and UPSTREAM_KEY not in text
