"""vLLM /metrics -> ServingSnapshot: the reference sample, both metric-name generations, resets, engines."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from connectors.scrape import Scrape, parse_exposition
from console.serving import MODEL_COLUMNS, ModelServing
from console.serving_derive import derive_snapshot

T0 = datetime(2026, 3, 1, 12, 0, 0)
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
L = f'engine="0",model_name="{MODEL}"'

# examples/vllm_metrics_sample.txt verbatim (real prometheus_client output, vllm 0.33 names).
SAMPLE = f"""\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{{{L}}} 12.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{{{L}}} 3.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{{{L}}} 0.42
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{{{L}}} 1.834221e+06
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{{{L}}} 402117.0
# HELP vllm:request_success_total Count of successfully processed requests.
# TYPE vllm:request_success_total counter
vllm:request_success_total{{engine="0",finished_reason="stop",model_name="{MODEL}"}} 1510.0
vllm:request_success_total{{engine="0",finished_reason="length",model_name="{MODEL}"}} 37.0
vllm:request_success_total{{engine="0",finished_reason="abort",model_name="{MODEL}"}} 4.0
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
""" + "".join(
    f'vllm:time_to_first_token_seconds_bucket{{engine="0",le="{le}",model_name="{MODEL}"}} {v}\n'
    for le, v in (("0.04", 0.0), ("0.1", 2.0), ("0.25", 3.0), ("0.5", 4.0), ("1.0", 5.0), ("2.5", 5.0),
                  ("+Inf", 6.0))
) + f"""vllm:time_to_first_token_seconds_count{{{L}}} 6.0
vllm:time_to_first_token_seconds_sum{{{L}}} 4.63
# HELP vllm:e2e_request_latency_seconds Histogram of e2e request latency in seconds.
# TYPE vllm:e2e_request_latency_seconds histogram
""" + "".join(
    f'vllm:e2e_request_latency_seconds_bucket{{engine="0",le="{le}",model_name="{MODEL}"}} {v}\n'
    for le, v in (("0.3", 0.0), ("0.5", 1.0), ("1.0", 1.0), ("2.5", 4.0), ("5.0", 4.0), ("10.0", 5.0),
                  ("+Inf", 6.0))
) + f"""vllm:e2e_request_latency_seconds_count{{{L}}} 6.0
vllm:e2e_request_latency_seconds_sum{{{L}}} 22.8
"""


def _queue(counts: tuple[float, float, float, float], total: float) -> str:
    name = "vllm:request_queue_time_seconds_bucket"
    lines = "".join(f'{name}{{engine="0",le="{le}",model_name="{MODEL}"}} {v}\n'
                    for le, v in zip(("0.01", "0.1", "1.0", "+Inf"), counts, strict=True))
    return (f"# TYPE vllm:request_queue_time_seconds histogram\n{lines}"
            f"vllm:request_queue_time_seconds_count{{{L}}} {counts[-1]}\n"
            f"vllm:request_queue_time_seconds_sum{{{L}}} {total}\n")


def _set(text: str, values: dict[tuple[str, str], float]) -> str:
    """`text` with the value of each line starting `name{` and containing `labels` replaced."""
    out = []
    for line in text.splitlines():
        for (name, labels), value in values.items():
            if line.startswith(name + "{") and labels in line:
                line = re.sub(r" \S+$", f" {value}", line)
        out.append(line)
    return "\n".join(out) + "\n"


BEFORE = SAMPLE + _queue((5, 6, 6, 6), 0.3)
# 30 s later: 20 stop + 2 length + 3 abort finished; 20 TTFTs in (0.1, 0.25]; 10 e2e in (1, 2.5];
# 10 queue waits in (0.01, 0.1] and 10 in (0.1, 1.0] summing to 5.5 s; 3000 prompt and 600 generated tokens.
AFTER = _set(SAMPLE, {
    ("vllm:request_success_total", '"stop"'): 1530, ("vllm:request_success_total", '"length"'): 39,
    ("vllm:request_success_total", '"abort"'): 7,
    **{("vllm:time_to_first_token_seconds_bucket", f'le="{le}"'): v
       for le, v in (("0.25", 23), ("0.5", 24), ("1.0", 25), ("2.5", 25), ("+Inf", 26))},
    **{("vllm:e2e_request_latency_seconds_bucket", f'le="{le}"'): v
       for le, v in (("2.5", 14), ("5.0", 14), ("10.0", 15), ("+Inf", 16))},
    ("vllm:num_requests_running", ""): 5, ("vllm:num_requests_waiting", ""): 0,
    ("vllm:kv_cache_usage_perc", ""): 0.5, ("vllm:prompt_tokens_total", ""): 1837221,
    ("vllm:generation_tokens_total", ""): 402717,
}) + _queue((5, 16, 26, 26), 5.8)


def _legacy(text: str) -> str:
    """The same exposition with the names older vLLM releases used."""
    return (text.replace("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
            .replace("vllm:request_queue_time_seconds", "vllm:time_in_queue_requests"))


def _scrape(text: str, seconds: float = 0.0) -> Scrape:
    return Scrape("vllm-a", T0 + timedelta(seconds=seconds), parse_exposition(text, "vllm-a"))


def test_first_read_of_the_sample_shows_gauges_and_leaves_rates_unknown() -> None:
    snap = derive_snapshot("vllm-a", None, _scrape(SAMPLE))
    assert snap.kind == "vllm" and snap.window_s is None and snap.series == 26
    (row,) = snap.models
    assert (row.model, row.running, row.waiting, row.kv_cache_usage) == (MODEL, 12.0, 3.0, 0.42)
    assert row.requests_per_s is None and row.errors_per_s is None and row.error_ratio is None
    assert row.ttft_p95_s is None and row.e2e_p95_s is None and row.input_tokens_per_s is None
    assert any("first read" in note for note in snap.notes)


def _expected_second_read(row: ModelServing) -> None:
    assert row.requests_per_s == pytest.approx(25 / 30)
    assert row.errors_per_s == pytest.approx(3 / 30)  # finished_reason="abort"
    assert row.error_ratio == pytest.approx(3 / 25)
    assert row.ttft_p95_s == pytest.approx(0.1 + 0.15 * 19 / 20)
    assert row.e2e_p95_s == pytest.approx(1.0 + 1.5 * 9.5 / 10)
    assert row.queue_p95_s == pytest.approx(0.1 + 0.9 * 9 / 10)
    assert row.queue_mean_s == pytest.approx(5.5 / 20)
    assert (row.running, row.waiting, row.kv_cache_usage) == (5.0, 0.0, 0.5)
    assert row.input_tokens_per_s == pytest.approx(100.0)
    assert row.output_tokens_per_s == pytest.approx(20.0)


def test_second_read_derives_rates_and_window_percentiles_with_current_names() -> None:
    snap = derive_snapshot("vllm-a", _scrape(BEFORE), _scrape(AFTER, 30))
    assert snap.window_s == 30 and snap.notes == ()
    _expected_second_read(snap.models[0])


def test_older_vllm_names_give_the_same_figures_and_say_so() -> None:
    snap = derive_snapshot("vllm-a", _scrape(_legacy(BEFORE)), _scrape(_legacy(AFTER), 30))
    assert "vllm:kv_cache_usage_perc" not in _legacy(AFTER)
    _expected_second_read(snap.models[0])
    (note,) = snap.notes
    assert "vllm:gpu_cache_usage_perc" in note and "vllm:time_in_queue_requests_bucket" in note


def test_a_restarted_server_counts_its_new_values_as_the_increase() -> None:
    restarted = _set(SAMPLE, {("vllm:request_success_total", '"stop"'): 20,
                              ("vllm:request_success_total", '"length"'): 0,
                              ("vllm:request_success_total", '"abort"'): 0})
    snap = derive_snapshot("vllm-a", _scrape(SAMPLE), _scrape(restarted, 10))
    assert snap.models[0].requests_per_s == pytest.approx(2.0)
    assert snap.models[0].errors_per_s == 0.0
    assert any("went down" in note and "vllm:request_success_total" in note for note in snap.notes)


def test_no_new_observations_leave_percentiles_unknown_but_rates_zero() -> None:
    snap = derive_snapshot("vllm-a", _scrape(SAMPLE), _scrape(SAMPLE, 15))
    row = snap.models[0]
    assert row.requests_per_s == 0.0 and row.error_ratio is None and row.ttft_p95_s is None


def test_engines_of_one_model_are_summed_and_the_fullest_kv_cache_is_shown() -> None:
    text = "".join(
        f'vllm:num_requests_running{{engine="{e}",model_name="{m}"}} {r}\n'
        f'vllm:kv_cache_usage_perc{{engine="{e}",model_name="{m}"}} {kv}\n'
        for e, m, r, kv in (("0", "a", 3, 0.2), ("1", "a", 4, 0.6), ("0", "b", 1, 0.1)))
    snap = derive_snapshot("vllm-a", None, _scrape(text))
    assert [(r.model, r.running, r.kv_cache_usage) for r in snap.models] == [("a", 7.0, 0.6), ("b", 1.0, 0.1)]


def test_every_vllm_column_names_a_model_field() -> None:
    fields = set(ModelServing.__dataclass_fields__)
    for kind in ("vllm", "litellm"):
        assert {c.field for c in MODEL_COLUMNS[kind]} <= fields
