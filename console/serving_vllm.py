"""vLLM's `/metrics` as one row per served model (`model_name`), current and older metric names alike.

Names accepted (current first, then the older name it replaced):
- KV cache: `vllm:kv_cache_usage_perc`, `vllm:gpu_cache_usage_perc`;
- queue time: `vllm:request_queue_time_seconds`, `vllm:time_in_queue_requests`;
- requests: `vllm:request_success_total` (every `finished_reason`; errors are `abort`
  and `error`), TTFT `vllm:time_to_first_token_seconds`, end to end
  `vllm:e2e_request_latency_seconds`, `vllm:num_requests_running` / `_waiting`,
  `vllm:prompt_tokens_total`, `vllm:generation_tokens_total`.
Several engines of one model are summed (requests, queues) or the fullest is taken (KV cache).
"""

from __future__ import annotations

from console.serving import ModelServing
from console.serving_math import (
    Reads,
    bucket_increases,
    gauges,
    histogram,
    increases,
    per_second,
    quantiles,
    ratio,
)

PREFIX = "vllm:"
ERROR_REASONS = frozenset({"abort", "error"})
KV_CACHE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
QUEUE = ("vllm:request_queue_time_seconds", "vllm:time_in_queue_requests")
TTFT = ("vllm:time_to_first_token_seconds",)
E2E = ("vllm:e2e_request_latency_seconds",)
LEGACY = frozenset({"vllm:gpu_cache_usage_perc", "vllm:time_in_queue_requests",
                    "vllm:time_per_output_token_seconds", "vllm:gpu_prefix_cache_queries",
                    "vllm:gpu_prefix_cache_hits"})


def _model(labels: dict[str, str]) -> str | None:
    return labels.get("model_name") or None


def vllm_models(r: Reads, notes: list[str]) -> list[ModelServing]:
    """One row per `model_name`, sorted by name."""
    cur, prev, window = r.cur, r.prev, r.window
    names = sorted({
        model for name in cur.names if name.startswith(PREFIX)
        for labels, _ in cur.series(name) if (model := _model(dict(labels)))
    })
    success = cur.counter("vllm:request_success")
    requests = increases(prev, cur, success, _model)
    errors = increases(prev, cur, success, _model, lambda lb: lb.get("finished_reason") in ERROR_REASONS)
    prompt = increases(prev, cur, cur.counter("vllm:prompt_tokens"), _model)
    generation = increases(prev, cur, cur.counter("vllm:generation_tokens"), _model)
    queue = histogram(cur, QUEUE)
    ttft = quantiles(0.95, bucket_increases(prev, cur, histogram(cur, TTFT), _model))
    e2e = quantiles(0.95, bucket_increases(prev, cur, histogram(cur, E2E), _model))
    queue_p95 = quantiles(0.95, bucket_increases(prev, cur, queue, _model))
    queue_sum = increases(prev, cur, queue and queue + "_sum", _model)
    queue_count = increases(prev, cur, queue and queue + "_count", _model)
    running = gauges(cur, cur.first("vllm:num_requests_running"), _model)
    waiting = gauges(cur, cur.first("vllm:num_requests_waiting"), _model)
    kv = gauges(cur, cur.first(*KV_CACHE), _model, max)
    legacy = sorted(n for n in cur.names if n.removesuffix("_bucket").removesuffix("_total") in LEGACY)
    if legacy:
        notes.append("older vLLM metric names: " + ", ".join(legacy))
    rows = []
    for model in names:
        req = per_second(requests, model, window)
        err = per_second(errors, model, window)
        rows.append(ModelServing(
            model=model, requests_per_s=req, errors_per_s=err, error_ratio=ratio(err, req),
            ttft_p95_s=ttft.get(model), e2e_p95_s=e2e.get(model), queue_p95_s=queue_p95.get(model),
            queue_mean_s=ratio((queue_sum or {}).get(model), (queue_count or {}).get(model)),
            running=running.get(model), waiting=waiting.get(model), kv_cache_usage=kv.get(model),
            input_tokens_per_s=per_second(prompt, model, window),
            output_tokens_per_s=per_second(generation, model, window),
        ))
    return rows
