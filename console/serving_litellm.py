"""LiteLLM's Prometheus metrics as model, deployment and budget rows.

Models are LiteLLM `requested_model`s (what clients asked for); series without one
(the proxy counts its own `/metrics` route, with an empty `requested_model`) are left
out. Deployments are keyed by `model_id`; budgets by team, key hash, user, org or
customer. Names are those of litellm 1.108-1.109 (`API_SHAPES.md` §4); counters may
be exposed with or without `_total`.
"""

from __future__ import annotations

from collections import defaultdict

from console.serving import BudgetScope, BudgetServing, DeploymentServing, ModelServing
from console.serving_math import (
    Metrics,
    Reads,
    bucket_increases,
    gauges,
    histogram,
    increases,
    per_second,
    quantiles,
    ratio,
    totals,
)

PREFIX = "litellm_"
E2E = "litellm_request_total_latency_metric"
TTFT = "litellm_llm_api_time_to_first_token_metric"
_NONE = ("", "None")
BUDGETS: tuple[tuple[BudgetScope, str, str | None, str], ...] = (
    ("team", "team", "team_alias", "team"),
    ("key", "hashed_api_key", "api_key_alias", "api_key"),
    ("user", "user", None, "user"),
    ("org", "org_id", "org_alias", "org"),
    ("customer", "end_user", None, "customer"),
)
"""(scope, id label, alias label, metric stem): `litellm_remaining_{stem}_budget_metric`,
`litellm_{stem}_max_budget_metric`, `litellm_{stem}_budget_remaining_hours_metric`."""
_DEPLOYMENT_INFO = ("litellm_deployment_state", "litellm_deployment_total_requests_total",
                    "litellm_deployment_success_responses_total",
                    "litellm_deployment_failure_responses_total",
                    "litellm_remaining_requests_metric", "litellm_remaining_tokens_metric")


def _model(labels: dict[str, str]) -> str | None:
    model = labels.get("requested_model", "")
    return None if model in _NONE else model


def _deployment(labels: dict[str, str]) -> str | None:
    model_id = labels.get("model_id", "")
    if model_id not in _NONE:
        return model_id
    name = labels.get("litellm_model_name", "")
    return None if name in _NONE else name


def litellm_models(r: Reads) -> list[ModelServing]:
    """One row per requested model, sorted by name."""
    cur, prev, window = r.cur, r.prev, r.window

    def grow(base: str) -> dict[str, float] | None:
        return increases(prev, cur, cur.counter(base), _model)

    requests = grow("litellm_proxy_total_requests_metric")
    if cur.counter("litellm_proxy_total_requests_metric") is None:  # before 1.40: only the deprecated one
        requests = grow("litellm_requests_metric")
    failures = grow("litellm_proxy_failed_requests_metric")
    spend = grow("litellm_spend_metric")
    spend_name = cur.counter("litellm_spend_metric")
    spent = totals(cur, spend_name, _model)
    tokens_in, tokens_out = grow("litellm_input_tokens_metric"), grow("litellm_output_tokens_metric")
    fallback_ok = grow("litellm_deployment_successful_fallbacks")
    fallback_failed = grow("litellm_deployment_failed_fallbacks")
    e2e = bucket_increases(prev, cur, histogram(cur, (E2E,)), _model)
    ttft = bucket_increases(prev, cur, histogram(cur, (TTFT,)), _model)
    queue = histogram(cur, ("litellm_request_queue_time_seconds",))
    queue_sum = increases(prev, cur, queue and queue + "_sum", _model)
    queue_count = increases(prev, cur, queue and queue + "_count", _model)
    names = sorted({
        model for name in cur.names if name.startswith(PREFIX)
        for labels, _ in cur.series(name) if (model := _model(dict(labels)))
    })
    e2e_p95, ttft_p95 = quantiles(0.95, e2e), quantiles(0.95, ttft)
    queue_p95 = quantiles(0.95, bucket_increases(prev, cur, queue, _model))
    rows = []
    for model in names:
        req, err = per_second(requests, model, window), per_second(failures, model, window)
        usd = per_second(spend, model, window)
        rows.append(ModelServing(
            model=model, requests_per_s=req, errors_per_s=err, error_ratio=ratio(err, req),
            ttft_p95_s=ttft_p95.get(model), e2e_p95_s=e2e_p95.get(model), queue_p95_s=queue_p95.get(model),
            queue_mean_s=ratio((queue_sum or {}).get(model), (queue_count or {}).get(model)),
            input_tokens_per_s=per_second(tokens_in, model, window),
            output_tokens_per_s=per_second(tokens_out, model, window),
            spend_per_hour=None if usd is None else usd * 3600,
            spend_total=spent.get(model, 0.0) if spend_name else None,
            fallbacks_ok_per_s=per_second(fallback_ok, model, window),
            fallbacks_failed_per_s=per_second(fallback_failed, model, window),
        ))
    return rows


def litellm_deployments(r: Reads) -> list[DeploymentServing]:
    """One row per deployment, sorted by model group then model."""
    cur, prev, window = r.cur, r.prev, r.window
    info: dict[str, dict[str, str]] = defaultdict(dict)
    for name in _DEPLOYMENT_INFO:
        for labels, _ in cur.series(name):
            fields = dict(labels)
            row = _deployment(fields)
            if row is None:
                continue
            for label in ("litellm_model_name", "model_group", "api_base", "api_provider"):
                if fields.get(label, "") not in _NONE:
                    info[row].setdefault(label, fields[label])
    state = gauges(cur, cur.first("litellm_deployment_state"), _deployment, max)
    ok = increases(prev, cur, cur.counter("litellm_deployment_success_responses"), _deployment)
    failed = increases(prev, cur, cur.counter("litellm_deployment_failure_responses"), _deployment)
    left_requests = gauges(cur, cur.first("litellm_remaining_requests_metric"), _deployment, min)
    left_tokens = gauges(cur, cur.first("litellm_remaining_tokens_metric"), _deployment, min)
    rows = [
        DeploymentServing(
            model_id=row, model=fields.get("litellm_model_name", row),
            model_group=fields.get("model_group", ""), api_base=fields.get("api_base", ""),
            provider=fields.get("api_provider", ""),
            state=int(state[row]) if row in state else None,
            successes_per_s=per_second(ok, row, window), failures_per_s=per_second(failed, row, window),
            remaining_requests=left_requests.get(row), remaining_tokens=left_tokens.get(row),
        )
        for row, fields in info.items()
    ]
    return sorted(rows, key=lambda d: (d.model_group, d.model, d.model_id))


def litellm_budgets(cur: Metrics) -> list[BudgetServing]:
    """Every budget the proxy reports, by scope then name."""
    rows = []
    for scope, id_label, alias_label, stem in BUDGETS:
        names: dict[str, str] = {}

        def key(labels: dict[str, str], id_label: str = id_label, alias_label: str | None = alias_label,
                names: dict[str, str] = names) -> str | None:
            ident = labels.get(id_label, "")
            if ident in _NONE:
                return None
            alias = labels.get(alias_label, "") if alias_label else ""
            names.setdefault(ident, ident if alias in _NONE else alias)
            return ident

        remaining = gauges(cur, cur.first(f"litellm_remaining_{stem}_budget_metric"), key, min)
        most = gauges(cur, cur.first(f"litellm_{stem}_max_budget_metric"), key, min)
        hours = gauges(cur, cur.first(f"litellm_{stem}_budget_remaining_hours_metric"), key, min)
        for ident in sorted(names, key=lambda i: names[i]):
            rows.append(BudgetServing(scope, names[ident], remaining.get(ident), most.get(ident),
                                      hours.get(ident)))
    return rows
