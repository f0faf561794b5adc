"""A real LiteLLM proxy's /metrics read through the scrape poller, checked against the traffic sent.

The proxy (PyPI `litellm[proxy]`, in its own virtualenv built by `litellm_venv.sh`,
never the project's) runs on 127.0.0.1 in front of a loopback OpenAI-compatible server
(`fake_openai.py`): `good-model` answers, `flaky-model` fails upstream and falls back to
`good-model`, `broken-model` fails with no fallback. The open-source proxy serves its
`litellm_*` metrics with `callbacks: ["prometheus"]` (no enterprise licence needed in
1.108); `/metrics` needs the master key and redirects to `/metrics/`. What it attributes
where, as observed: a request answered by a fallback is counted under the fallback's
model group in `litellm_proxy_total_requests_metric`, and under the requested model in
`litellm_deployment_successful_fallbacks`; single-deployment groups that fail are shown
as partial outage (1), not cooled down.
"""

from __future__ import annotations

import math
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from connectors.http import SourceError
from connectors.scrape import parse_exposition
from console.config import Config, ScrapeSource
from console.secrets import source_secret_headers
from console.serving import ServingSnapshot
from console.serving_poll import make_poller
from tests.integration.fake_openai import COMPLETION_TOKENS, PROMPT_TOKENS, REQUEST_LIMIT, FakeOpenAI
from tests.integration.servers import ServerProcess, free_port, http_ok, wait_until

ROOT = Path(__file__).resolve().parents[2]
# Read at import: the autouse conftest fixture clears LLMDECK_* variables before each test.
VENV = Path(os.environ.get("LLMDECK_LITELLM_VENV") or ROOT / ".litellm-venv")
MASTER_KEY = "sk-llmdeck-test-master-0123"
PRICE_IN, PRICE_OUT = 0.001, 0.002
PER_CALL_USD = PROMPT_TOKENS * PRICE_IN + COMPLETION_TOKENS * PRICE_OUT
SENT = {"good-model": 3, "good-model-streamed": 1, "flaky-model": 2, "broken-model": 2}
pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


def _need_litellm() -> Path:
    """The proxy's executable, building its virtualenv if needed; skip locally, fail in CI, if that fails."""
    binary = VENV / "bin" / "litellm"
    if not binary.exists():
        script = ROOT / "tests" / "integration" / "litellm_venv.sh"
        done = subprocess.run([str(script), str(VENV)], capture_output=True, text=True, timeout=1200,
                              check=False)
        if done.returncode != 0 or not binary.exists():
            reason = (f"cannot build the LiteLLM virtualenv at {VENV} "
                      f"(litellm_venv.sh exit {done.returncode}): {done.stderr.strip()[-300:]}")
            if os.environ.get("CI") == "true":
                pytest.fail(f"in CI nothing skips: {reason}")
            pytest.skip(reason)
    return binary


def _config(upstream: str) -> str:
    def deployment(name: str, upstream_model: str, priced: bool = True) -> str:
        price = (f"      input_cost_per_token: {PRICE_IN}\n      output_cost_per_token: {PRICE_OUT}\n"
                 if priced else "")
        return (f"  - model_name: {name}\n    litellm_params:\n      model: openai/{upstream_model}\n"
                f"      api_base: {upstream}\n      api_key: sk-upstream-not-a-secret\n{price}")

    return ("model_list:\n" + deployment("good-model", "good-upstream")
            + deployment("flaky-model", "fail-upstream")
            + deployment("broken-model", "fail-broken", priced=False)
            + 'router_settings:\n  num_retries: 0\n  fallbacks: [{"flaky-model": ["good-model"]}]\n'
            + 'litellm_settings:\n  num_retries: 0\n  callbacks: ["prometheus"]\n'
            + "  require_auth_for_metrics_endpoint: true\n"
            + f"general_settings:\n  master_key: {MASTER_KEY}\n")


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, FakeOpenAI]]:
    """(proxy base URL, upstream) with the proxy up and ready."""
    binary = _need_litellm()
    upstream = FakeOpenAI().start()
    work = tmp_path_factory.mktemp("litellm")
    (work / "cfg.yaml").write_text(_config(upstream.base_url))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", NO_PROXY="127.0.0.1,localhost", HOME=str(work))
    server = ServerProcess([str(binary), "--config", str(work / "cfg.yaml"), "--port", str(port),
                            "--host", "127.0.0.1"], work / "litellm.log", env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        server.wait_ready(http_ok(base + "/health/liveliness"), timeout=120, what="litellm proxy")
        yield base, upstream
    finally:
        server.stop()
        upstream.stop()


def _send_traffic(base: str) -> None:
    auth = {"Authorization": f"Bearer {MASTER_KEY}"}
    ping = [{"role": "user", "content": "ping"}]
    with httpx.Client(base_url=base, headers=auth, timeout=60) as client:
        for model in ("good-model", "flaky-model", "broken-model"):
            for _ in range(SENT[model]):
                answer = client.post("/v1/chat/completions", json={"model": model, "messages": ping})
                assert answer.status_code == (500 if model == "broken-model" else 200), answer.text[:300]
        stream = {"model": "good-model", "messages": ping, "stream": True,
                  "stream_options": {"include_usage": True}}
        streamed = client.post("/v1/chat/completions", json=stream)
        assert streamed.status_code == 200 and "[DONE]" in streamed.text


def _recorded(base: str) -> bool:
    """True once the proxy's callbacks have counted every request sent (they run after the answers)."""
    text = httpx.get(base + "/metrics/", headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=5).text
    samples = parse_exposition(text, "probe")

    def total(name: str) -> float:
        return sum(s.value for s in samples
                   if s.name == name and s.label("requested_model") not in ("", "None"))

    return (total("litellm_proxy_total_requests_metric_total") >= sum(SENT.values())
            and total("litellm_deployment_successful_fallbacks_total") >= SENT["flaky-model"]
            and total("litellm_output_tokens_metric_total") >= 6 * COMPLETION_TOKENS)


async def test_real_litellm_metrics_match_the_traffic_sent(proxy: tuple[str, FakeOpenAI],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    base, upstream = proxy
    monkeypatch.setenv("LITELLM_TEST_MASTER_KEY", MASTER_KEY)
    source = ScrapeSource(name="gateway", url=base, bearer_token_ref="env:LITELLM_TEST_MASTER_KEY")
    poller = make_poller(source, Config(), source_secret_headers(source))
    try:
        first = await poller.poll()
        assert first.kind == "litellm" and first.window_s is None
        assert all(m.requests_per_s is None for m in first.models)
        _send_traffic(base)
        wait_until(lambda: _recorded(base), timeout=60, what="the proxy to count the requests")
        second = await poller.poll()
    finally:
        await poller.aclose()
    assert upstream.served == {"good-upstream": 6}
    assert upstream.failed == {"fail-upstream": 2, "fail-broken": 2}
    _check_models(second)
    _check_deployments(second)
    keys = {b.name: b for b in second.budgets if b.scope == "key"}
    assert keys["litellm_proxy_master_key"].remaining == math.inf  # the master key has no budget
    assert MASTER_KEY not in repr(second)


def _n(rate: float | None, window: float) -> int | None:
    """How many events a rate over the window stands for."""
    return None if rate is None else round(rate * window)


def _check_models(snap: ServingSnapshot) -> None:
    assert snap.kind == "litellm" and snap.window_s and snap.window_s > 0
    window = snap.window_s
    rows = {m.model: m for m in snap.models}
    good, flaky, broken = rows["good-model"], rows["flaky-model"], rows["broken-model"]
    answered_by_good = SENT["good-model"] + SENT["good-model-streamed"] + SENT["flaky-model"]
    assert _n(good.requests_per_s, window) == answered_by_good
    assert good.errors_per_s == 0.0 and good.error_ratio == 0.0
    assert _n(broken.requests_per_s, window) == SENT["broken-model"]
    assert _n(broken.errors_per_s, window) == SENT["broken-model"]
    assert broken.error_ratio == pytest.approx(1.0)
    assert _n(flaky.fallbacks_ok_per_s, window) == SENT["flaky-model"]
    assert flaky.fallbacks_failed_per_s == 0.0
    assert good.spend_total == pytest.approx(answered_by_good * PER_CALL_USD)
    assert good.spend_per_hour == pytest.approx(answered_by_good * PER_CALL_USD / window * 3600)
    assert _n(good.input_tokens_per_s, window) == answered_by_good * PROMPT_TOKENS
    assert _n(good.output_tokens_per_s, window) == answered_by_good * COMPLETION_TOKENS
    assert good.e2e_p95_s is not None and 0 < good.e2e_p95_s < 10
    assert good.ttft_p95_s is not None  # the streamed request
    assert broken.spend_total == 0.0


def _check_deployments(snap: ServingSnapshot) -> None:
    window = snap.window_s or 0
    by_model = {d.model: d for d in snap.deployments}
    good, flaky, broken = by_model["good-upstream"], by_model["fail-upstream"], by_model["fail-broken"]
    assert (good.state, good.state_text) == (0, "healthy")
    assert (good.model_group, good.provider) == ("good-model", "openai")
    assert flaky.state in (1, 2) and broken.state in (1, 2)
    assert _n(good.successes_per_s, window) == 6
    assert _n(flaky.failures_per_s, window) == SENT["flaky-model"]
    assert _n(broken.failures_per_s, window) == SENT["broken-model"]
    assert good.remaining_requests is not None
    assert REQUEST_LIMIT - 6 <= good.remaining_requests < REQUEST_LIMIT  # the upstream's x-ratelimit header
    assert good.remaining_tokens is not None and good.remaining_tokens > 0


async def test_metrics_without_the_master_key_are_an_auth_error(proxy: tuple[str, FakeOpenAI]) -> None:
    base, _ = proxy
    poller = make_poller(ScrapeSource(name="gateway", url=base), Config(), {})
    try:
        with pytest.raises(SourceError) as caught:
            await poller.poll()
    finally:
        await poller.aclose()
    assert caught.value.kind == "auth" and caught.value.status == 401 and caught.value.permanent
