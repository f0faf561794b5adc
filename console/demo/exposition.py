"""The demo's `/metrics` pages: vLLM- and LiteLLM-shaped Prometheus text from `Telemetry`.

Names, types and labels are the current ones (../shared/reference/API_SHAPES.md
§6 for vLLM 0.33, §4 for LiteLLM): counters end in `_total`, histograms have
`_bucket` (cumulative, `le` ascending, `+Inf` equal to `_count`), `_sum` and
`_count`. The vLLM page presents every model the traffic calls as one engine
serving it (`model_name`, `engine="0"`). The gateway's histograms carry the
model labels only, as a LiteLLM trimmed with `prometheus_metrics_config` would.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from console.demo.telemetry import Call, Histogram, Telemetry, deployment_id

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
KV_CACHE_TOKENS = 400_000
"""Tokens of KV cache per engine: usage is the running calls' tokens over this."""
RPM_LIMIT = 5_000
TPM_LIMIT = 2_000_000
TEAM_BUDGET_USD = 300.0
KEY_BUDGET_USD = 150.0
API_BASES = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com",
             "gcp.gemini": "https://generativelanguage.googleapis.com",
             "mistral_ai": "https://api.mistral.ai/v1"}
DOWN_SHARE, DEGRADED_SHARE = 0.5, 0.05
"""Failed share of a deployment's calls in the last STATE_WINDOW for state 2 (outage) and 1 (partial)."""
STATE_WINDOW = 120.0
"""Seconds (simulated) of calls a deployment's state and remaining requests/tokens are taken from."""

Labels = Mapping[str, str]


class Page:
    """A text exposition being written: families in order, each with HELP and TYPE."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]

    def sample(self, name: str, labels: Labels, value: float) -> None:
        body = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
        self.lines.append(f"{name}{{{body}}} {_number(value)}" if body else f"{name} {_number(value)}")

    def histogram(self, name: str, labels: Labels, hist: Histogram) -> None:
        for bound, count in zip(hist.bounds, hist.buckets, strict=True):
            self.sample(f"{name}_bucket", {**labels, "le": _number(bound)}, count)
        self.sample(f"{name}_bucket", {**labels, "le": "+Inf"}, hist.count)
        self.sample(f"{name}_count", labels, hist.count)
        self.sample(f"{name}_sum", labels, hist.total)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def vllm_page(tel: Telemetry) -> str:
    """`/metrics` of a vLLM server per model (call with `tel.lock` held, after `catch_up`)."""
    page = Page()
    models = sorted({(p, m) for (p, m, *_) in tel.calls} | {(c.provider, c.model) for c in tel.in_flight()})

    def base(model: str) -> dict[str, str]:
        return {"engine": "0", "model_name": model}

    flight = tel.in_flight()
    waiting = {key: [c for c in flight if tel.now < c.start + c.queue and (c.provider, c.model) == key]
               for key in models}
    running = {key: [c for c in flight if (c.provider, c.model) == key and c not in waiting[key]]
               for key in models}
    gauges = (
        ("vllm:num_requests_running", "Number of requests in model execution batches.",
         lambda k: len(running[k])),
        ("vllm:num_requests_waiting", "Number of requests waiting to be processed.",
         lambda k: len(waiting[k])),
        ("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.",
         lambda k: min(1.0, sum(c.input_tokens + c.output_tokens for c in running[k]) / KV_CACHE_TOKENS)),
    )
    for name, help_text, value in gauges:
        page.family(name, "gauge", help_text)
        for key in models:
            page.sample(name, base(key[1]), value(key))
    tokens = _sum_by(tel.tokens.items(), lambda k: (k[0], k[1], k[3]))
    for name, kind, help_text in (
        ("vllm:prompt_tokens_total", "input", "Number of prefill tokens processed."),
        ("vllm:generation_tokens_total", "output", "Number of generation tokens processed."),
    ):
        page.family(name, "counter", help_text)
        for key in models:
            page.sample(name, base(key[1]), tokens.get((*key, kind), 0))
    reasons = _sum_by(tel.calls.items(), lambda k: (k[0], k[1], _finished_reason(k[3])))
    page.family("vllm:request_success_total", "counter", "Count of successfully processed requests.")
    for key in models:
        for reason in ("stop", "abort", "error"):
            page.sample("vllm:request_success_total", {**base(key[1]), "finished_reason": reason},
                        reasons.get((*key, reason), 0))
    for short, name, help_text in (
        ("ttft", "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds."),
        ("e2e", "vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds."),
        ("queue", "vllm:request_queue_time_seconds",
         "Histogram of time spent in WAITING phase for request."),
    ):
        page.family(name, "histogram", help_text)
        for key in models:
            hist = tel.histograms.get((short, *key))
            if hist is not None:
                page.histogram(name, base(key[1]), hist)
    return page.text()


def litellm_page(tel: Telemetry) -> str:
    """`/metrics` of a LiteLLM proxy (call with `tel.lock` held, after `catch_up`)."""
    page = Page()
    requests: list[tuple[str, str, Callable[[int], bool]]] = [
                ("litellm_proxy_total_requests_metric_total",
                 "Total number of requests made to the proxy server", lambda status: True),
                ("litellm_proxy_failed_requests_metric_total",
                 "Total number of failed responses from proxy", lambda status: status != 200)]
    for name, help_text, wanted in requests:
        page.family(name, "counter", help_text)
        for (provider, model, tenant, status, error), n in sorted(tel.requests.items()):
            if not wanted(status):
                continue
            labels = {**_caller(tenant), "requested_model": model, "route": "/chat/completions",
                      "model_id": deployment_id(provider, model), "api_provider": provider,
                      "client_ip": "", "user_agent": "", "user_email": ""}
            if status == 200:
                labels["status_code"] = "200"
            else:
                labels.update(exception_status=str(status), exception_class=_exception_class(error))
                if name.startswith("litellm_proxy_total"):
                    labels["status_code"] = str(status)
            page.sample(name, labels, n)
    page.family("litellm_spend_metric_total", "counter", "Total spend on LLM requests")
    for (provider, model, tenant), usd in sorted(tel.spend.items()):
        page.sample("litellm_spend_metric_total", _spend_labels(provider, model, tenant), usd)
    for kind, name in (("input", "litellm_input_tokens_metric_total"),
                       ("output", "litellm_output_tokens_metric_total")):
        page.family(name, "counter", f"Total number of {kind} tokens from LLM requests")
        for (provider, model, tenant, k), n in sorted(tel.tokens.items()):
            if k == kind:
                page.sample(name, _spend_labels(provider, model, tenant), n)
    _deployments(page, tel)
    _fallbacks(page, tel)
    _budgets(page, tel)
    for short, name, help_text in (
        ("request", "litellm_request_total_latency_metric",
         "Total latency (seconds) for a request to LiteLLM"),
        ("e2e", "litellm_llm_api_latency_metric", "Total latency (seconds) for a models LLM API call"),
        ("ttft", "litellm_llm_api_time_to_first_token_metric",
         "Time to first token for a models LLM API call"),
        ("queue", "litellm_request_queue_time_seconds",
         "Time spent in request queue before processing starts"),
    ):
        page.family(name, "histogram", help_text)
        for (hist_name, provider, model), hist in sorted(tel.histograms.items()):
            if hist_name == short:
                page.histogram(name, {"model_group": model, "requested_model": model,
                                      "model": f"{provider}/{model}",
                                      "model_id": deployment_id(provider, model),
                                      "api_provider": provider}, hist)
    return page.text()


def _deployments(page: Page, tel: Telemetry) -> None:
    per: defaultdict[tuple[str, str], list[Call]] = defaultdict(list)
    for c in (c for c in tel.recent if c.end >= tel.now - STATE_WINDOW):
        per[(c.provider, c.model)].append(c)
    keys = sorted({(p, m) for (p, m, *_) in tel.calls})

    def labels(provider: str, model: str) -> dict[str, str]:
        return {"litellm_model_name": f"{provider}/{model}", "model_id": deployment_id(provider, model),
                "api_base": API_BASES.get(provider, "https://llm.internal.example/v1"),
                "api_provider": provider, "model_group": model}

    page.family("litellm_deployment_state", "gauge",
                "LLM Deployment Analytics - The state of the deployment: 0 = healthy, 1 = partial outage,"
                " 2 = complete outage")
    for key in keys:
        calls = per.get(key, [])
        failed = sum(1 for c in calls if not c.ok) / len(calls) if len(calls) >= 3 else 0.0
        state = 2 if failed >= DOWN_SHARE else 1 if failed >= DEGRADED_SHARE else 0
        page.sample("litellm_deployment_state", labels(*key), state)
    outcomes = _sum_by(tel.calls.items(), lambda k: (k[0], k[1], k[3] == 200))
    for name, ok in (("litellm_deployment_success_responses_total", True),
                     ("litellm_deployment_failure_responses_total", False)):
        outcome = "successful" if ok else "failed"
        page.family(name, "counter",
                    f"LLM Deployment Analytics - Total number of {outcome} LLM API calls via litellm")
        for key in keys:
            page.sample(name, labels(*key), outcomes.get((*key, ok), 0))
    page.family("litellm_deployment_total_requests_total", "counter",
                "LLM Deployment Analytics - Total number of LLM API calls via litellm - success + failure")
    for key in keys:
        page.sample("litellm_deployment_total_requests_total", labels(*key),
                    outcomes.get((*key, True), 0) + outcomes.get((*key, False), 0))
    for name, limit, used in (
        ("litellm_remaining_requests_metric", RPM_LIMIT, lambda cs: len(cs) * 60 / STATE_WINDOW),
        ("litellm_remaining_tokens_metric", TPM_LIMIT,
         lambda cs: sum(c.input_tokens + c.output_tokens for c in cs) * 60 / STATE_WINDOW),
    ):
        page.family(name, "gauge", "LLM Deployment Analytics - remaining requests/tokens for model,"
                    " returned from LLM API Provider")
        for key in keys:
            calls = per.get(key, [])
            limited = any(c.status == 429 for c in calls)  # the provider said so: nothing left
            page.sample(name, labels(*key), 0 if limited else max(0, limit - used(calls)))


def _fallbacks(page: Page, tel: Telemetry) -> None:
    for name, ok in (("litellm_deployment_successful_fallbacks_total", True),
                     ("litellm_deployment_failed_fallbacks_total", False)):
        outcome = "successful" if ok else "failed"
        page.family(name, "counter", f"LLM Deployment Analytics - Number of {outcome} fallback requests"
                    " from primary model -> fallback model")
        for (requested, fallback, tenant, succeeded), n in sorted(tel.fallbacks.items()):
            if succeeded == ok:
                page.sample(name, {**_caller(tenant), "requested_model": requested,
                                   "fallback_model": fallback, "exception_status": "429",
                                   "exception_class": "RateLimitError", "model_id": ""}, n)


def _budgets(page: Page, tel: Telemetry) -> None:
    spent: defaultdict[str, float] = defaultdict(float)
    for (_, _, tenant), usd in tel.spend.items():
        spent[tenant] += usd
    now = datetime(1970, 1, 1) + timedelta(seconds=tel.now)
    month_end = (now.replace(day=28) + timedelta(days=4)).replace(day=1, hour=0, minute=0, second=0,
                                                                   microsecond=0)
    hours_left = (month_end - now) / timedelta(hours=1)
    tenants = sorted(spent)
    for stem, limit, labels in (
        ("team", TEAM_BUDGET_USD, lambda t: {"team": _team_id(t), "team_alias": t}),
        ("api_key", KEY_BUDGET_USD, lambda t: {"hashed_api_key": _key_hash(t), "api_key_alias": f"{t}-prod"}),
    ):
        for name, kind, value in (
            (f"litellm_remaining_{stem}_budget_metric", "Remaining budget for",
             lambda t, lim=limit: lim - spent[t]),
            (f"litellm_{stem}_max_budget_metric", "Maximum budget set for", lambda t, lim=limit: lim),
            (f"litellm_{stem}_budget_remaining_hours_metric", "Remaining hours until the budget reset for",
             lambda t: hours_left),
        ):
            page.family(name, "gauge", f"{kind} {stem.replace('_', ' ')}")
            for tenant in tenants:
                page.sample(name, labels(tenant), value(tenant))


def _caller(tenant: str) -> dict[str, str]:
    return {"end_user": "", "user": "", "team": _team_id(tenant), "team_alias": tenant,
            "hashed_api_key": _key_hash(tenant), "api_key_alias": f"{tenant}-prod"}


def _spend_labels(provider: str, model: str, tenant: str) -> dict[str, str]:
    return {**_caller(tenant), "model": f"{provider}/{model}", "requested_model": model,
            "model_id": deployment_id(provider, model), "api_provider": provider, "user_email": ""}


def _team_id(tenant: str) -> str:
    return deployment_id("team", tenant)


def _key_hash(tenant: str) -> str:
    return deployment_id("key", tenant) * 2


def _finished_reason(status: int) -> str:
    return "stop" if status == 200 else "abort" if status == 504 else "error"


def _exception_class(error_type: str) -> str:
    return {"rate_limit_error": "RateLimitError", "overloaded_error": "InternalServerError",
            "timeout": "Timeout", "api_error": "APIError",
            "invalid_request_error": "BadRequestError"}.get(error_type, "APIError")


def _sum_by(items: Iterable[tuple[tuple[Any, ...], float]],
            key: Callable[[tuple[Any, ...]], tuple[Any, ...]]) -> dict[tuple[Any, ...], float]:
    out: defaultdict[tuple[Any, ...], float] = defaultdict(float)
    for k, n in items:
        out[key(k)] += n
    return out


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return repr(float(value))
