"""The Prometheus connector: API payload parsing, envelope errors and warnings, steps under 11,000 points."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import pytest

from connectors.http import SourceError
from connectors.prometheus import (
    MAX_POINTS,
    PrometheusClient,
    choose_step,
    duration,
    labels_fingerprint,
    parse_alerts,
    parse_query,
    parse_rules,
    sample_value,
)
from console.config import PrometheusSource
from tests.faults.fault_server import FaultServer, Reply

# examples/prometheus_*.json from the shared reference, verbatim.
EXAMPLES: dict[str, Any] = {
    "query": {'status': 'success',
     'data': {'resultType': 'vector',
              'result': [{'metric': {'model_name': 'meta-llama/Llama-3.1-8B-Instruct'},
                          'value': [1735689600, '2.4375']},
                         {'metric': {'model_name': 'Qwen/Qwen2.5-7B-Instruct'},
                          'value': [1735689600, 'NaN']}]}},
    "query_range": {'status': 'success',
     'data': {'resultType': 'matrix',
              'result': [{'metric': {'model_name': 'meta-llama/Llama-3.1-8B-Instruct'},
                          'values': [[1735689600, '1532.2'],
                                     [1735689660, '1611.85'],
                                     [1735689720, '1498.0']]},
                         {'metric': {'model_name': 'Qwen/Qwen2.5-7B-Instruct'},
                          'values': [[1735689600, '0'],
                                     [1735689660, '12.5'],
                                     [1735689720, '30.116666666666667']]}]}},
    "alerts": {'status': 'success',
     'data': {'alerts': [{'labels': {'alertname': 'VLLMHighTTFT',
                                     'model_name': 'meta-llama/Llama-3.1-8B-Instruct',
                                     'severity': 'page'},
                          'annotations': {'summary': 'p95 TTFT above 2s'},
                          'state': 'firing',
                          'activeAt': '2025-01-01T00:00:12.60602144Z',
                          'value': '2.4375e+00'}]}},
    "rules": {'status': 'success',
     'data': {'groups': [{'name': 'llm-serving',
                          'file': '/etc/prometheus/rules/llm.yaml',
                          'interval': 30,
                          'limit': 0,
                          'evaluationTime': 0.000933,
                          'lastEvaluation': '2025-01-01T00:00:30.000Z',
                          'rules': [{'state': 'firing',
                                     'name': 'VLLMHighTTFT',
                                     'query': 'histogram_quantile(0.95, sum by (le, model_name) '
                                              '(rate(vllm:time_to_first_token_seconds_bucket[5m]))) > '
                                              '2',
                                     'duration': 300,
                                     'keepFiringFor': 0,
                                     'labels': {'severity': 'page'},
                                     'annotations': {'summary': 'p95 TTFT above 2s'},
                                     'alerts': [{'labels': {'alertname': 'VLLMHighTTFT',
                                                            'model_name': 'meta-llama/Llama-3.1-8B-Instruct',
                                                            'severity': 'page'},
                                                 'annotations': {'summary': 'p95 TTFT above 2s'},
                                                 'state': 'firing',
                                                 'activeAt': '2025-01-01T00:00:12.60602144Z',
                                                 'value': '2.4375e+00'}],
                                     'health': 'ok',
                                     'evaluationTime': 0.000512,
                                     'lastEvaluation': '2025-01-01T00:00:30.000Z',
                                     'type': 'alerting'},
                                    {'name': 'model:vllm_generation_tokens:rate5m',
                                     'query': 'sum by (model_name) '
                                              '(rate(vllm:generation_tokens_total[5m]))',
                                     'health': 'ok',
                                     'evaluationTime': 0.000301,
                                     'lastEvaluation': '2025-01-01T00:00:30.000Z',
                                     'type': 'recording'}]}]}},
    "error": {'status': 'error',
     'errorType': 'bad_data',
     'error': 'exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query '
              'resolution (?step=XX)'},
}
AT = datetime(2025, 1, 1)


def example(name: str) -> Any:
    return EXAMPLES[name]


def test_instant_vector_keeps_labels_and_parses_nan_sample_values() -> None:
    result = parse_query(example("query"), "prom")
    assert result.result_type == "vector" and result.warnings == ()
    llama, qwen = result.series
    assert llama.label("model_name") == "meta-llama/Llama-3.1-8B-Instruct"
    assert llama.points == ((1735689600.0, 2.4375),) and llama.value == 2.4375
    assert math.isnan(qwen.value)


def test_range_matrix_keeps_every_point_in_order() -> None:
    result = parse_query(example("query_range"), "prom")
    assert result.result_type == "matrix"
    assert [len(s.points) for s in result.series] == [3, 3]
    assert result.series[1].points[-1] == (1735689720.0, 30.116666666666667)


def test_scalar_and_string_results() -> None:
    scalar = parse_query({"status": "success", "data": {"resultType": "scalar", "result": [1.5, "+Inf"]}})
    assert scalar.series[0].labels == () and scalar.series[0].value == math.inf
    text = parse_query({"status": "success", "data": {"resultType": "string", "result": [1.5, "hi"]}})
    assert text.text == "hi" and text.series == ()


@pytest.mark.parametrize("raw, value", [("1", 1.0), ("NaN", math.nan), ("+Inf", math.inf),
                                        ("-Inf", -math.inf), ("2.4375e+00", 2.4375), (3, 3.0)])
def test_sample_values_arrive_as_strings_including_nan_and_infinities(raw: object, value: float) -> None:
    got = sample_value(raw)
    assert (math.isnan(got) and math.isnan(value)) or got == value


def test_a_malformed_sample_is_a_decode_error_naming_the_source() -> None:
    body = {"status": "success",
            "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "x"]}]}}
    with pytest.raises(SourceError) as info:
        parse_query(body, "prom")
    assert info.value.kind == "decode" and str(info.value) == "prom: decode: bad sample value 'x'"


def test_an_error_envelope_becomes_a_source_error_with_error_type_and_message() -> None:
    with pytest.raises(SourceError) as info:
        parse_query(example("error"), "prom")
    assert info.value.reason.startswith("bad_data: exceeded maximum resolution of 11,000 points")


def test_an_answer_without_a_status_is_not_taken_for_data() -> None:
    with pytest.raises(SourceError, match="not a Prometheus API answer"):
        parse_query({"data": {}}, "prom")


def test_warnings_and_infos_travel_on_the_result() -> None:
    body = {"status": "success", "warnings": ["PromQL info: metric might not be a counter"],
            "infos": ["a note"], "data": {"resultType": "vector", "result": []}}
    result = parse_query(body)
    assert result.warnings == ("PromQL info: metric might not be a counter",) and result.infos == ("a note",)


def test_alerts_map_to_active_alert_rows() -> None:
    (alert,) = parse_alerts(example("alerts"), "prom")
    assert (alert.source, alert.origin, alert.name, alert.state, alert.severity) == (
        "prom", "prometheus", "VLLMHighTTFT", "firing", "page")
    assert alert.summary == "p95 TTFT above 2s" and alert.value == "2.4375e+00" and alert.firing
    assert alert.started == datetime(2025, 1, 1, 0, 0, 12, 606021)  # nanoseconds cut to microseconds
    assert alert.labels == tuple(sorted(alert.labels))


def test_alert_fingerprint_is_a_stable_hash_of_the_label_set_only() -> None:
    a = {"labels": {"alertname": "A", "x": "1"}, "state": "pending", "annotations": {}, "value": "1"}
    b = {"labels": {"x": "1", "alertname": "A"}, "state": "firing", "annotations": {}, "value": "7"}
    c = {"labels": {"alertname": "A", "x": "2"}, "state": "firing", "annotations": {}}
    rows = parse_alerts({"status": "success", "data": {"alerts": [a, b, c]}})
    by_state = {(r.state, r.label("x")): r.fingerprint for r in rows}
    assert by_state[("pending", "1")] == by_state[("firing", "1")] != by_state[("firing", "2")]
    assert labels_fingerprint((("alertname", "A"), ("x", "1"))) == by_state[("firing", "1")]
    assert [r.state for r in rows] == ["firing", "firing", "pending"]


def test_rules_list_alerting_and_recording_rules() -> None:
    alerting, recording = parse_rules(example("rules"), "prom")
    assert (alerting.type, alerting.state, alerting.health, alerting.group) == (
        "alerting", "firing", "ok", "llm-serving")
    assert recording.type == "recording" and recording.state == ""


@pytest.mark.parametrize("span, target, step", [
    (timedelta(hours=6), 72, timedelta(minutes=5)),
    (timedelta(hours=1), 250, timedelta(seconds=15)),
    (timedelta(minutes=1), 250, timedelta(seconds=1)),
    (timedelta(days=28), 250, timedelta(hours=3)),
    (timedelta(days=3650), 250, timedelta(days=15)),
])
def test_choose_step_picks_a_round_step_near_the_target(span: timedelta, target: int,
                                                        step: timedelta) -> None:
    assert choose_step(AT, AT + span, target) == step


@pytest.mark.parametrize("span", [timedelta(hours=1), timedelta(days=1), timedelta(days=400),
                                  timedelta(seconds=11_000 * 7 + 3)])
def test_choose_step_stays_under_the_11000_point_limit_whatever_the_target(span: timedelta) -> None:
    step = choose_step(AT, AT + span, 1_000_000)
    assert span / step <= MAX_POINTS - 1 and step >= timedelta(seconds=1)


def test_choose_step_refuses_a_reversed_range() -> None:
    with pytest.raises(ValueError, match="before start"):
        choose_step(AT, AT - timedelta(seconds=1))


@pytest.mark.parametrize("window, text", [(timedelta(minutes=5), "5m"), (timedelta(hours=24), "1d"),
                                          (timedelta(days=28), "28d"), (timedelta(seconds=90), "90s"),
                                          (timedelta(milliseconds=1500), "1500ms")])
def test_promql_durations_use_the_largest_exact_unit(window: timedelta, text: str) -> None:
    assert duration(window) == text


# ---------------------------------------------------------------------------
# Through the HTTP policy, against a loopback server
# ---------------------------------------------------------------------------

VECTOR = {"resultType": "vector", "result": [{"metric": {}, "value": [1735689600, "3"]}]}


def client_for(server: FaultServer, **kw: Any) -> PrometheusClient:
    source = PrometheusSource(name="mimir", url=server.url, path_prefix="/prometheus",
                              headers={"X-Scope-OrgID": "tenant-1"}, **kw)
    return PrometheusClient.for_source(source, {})


async def test_query_sends_expression_time_prefix_and_headers_and_returns_warnings() -> None:
    with FaultServer() as server:
        server.route("/prometheus/api/v1/query", Reply(200, {
            "status": "success", "warnings": ["results truncated due to limit"], "data": VECTOR}))
        client = client_for(server)
        try:
            result = await client.query('sum(x{a="b"})', AT)
        finally:
            await client.aclose()
        (request,) = server.requests_to("/prometheus/api/v1/query")
    assert result.series[0].value == 3.0 and result.warnings == ("results truncated due to limit",)
    assert dict(request.query) == {"query": 'sum(x{a="b"})', "time": "1735689600.000"}
    assert request.headers.get("x-scope-orgid") == "tenant-1"


@pytest.mark.parametrize("status, error_type, message", [
    (400, "bad_data", 'parse error: unexpected end of input'),
    (422, "execution", "query processing would load too many samples into memory"),
    (200, "internal", "something odd"),
])
async def test_error_envelopes_with_any_http_status_read_error_type_colon_error(
        status: int, error_type: str, message: str) -> None:
    with FaultServer() as server:
        server.route("/prometheus/api/v1/query", Reply(status, {
            "status": "error", "errorType": error_type, "error": message}))
        client = client_for(server)
        try:
            with pytest.raises(SourceError) as info:
                await client.query("x", AT)
        finally:
            await client.aclose()
    assert info.value.reason == f"{error_type}: {message}"
    assert f"mimir: {'HTTP ' + str(status) if status != 200 else 'http'}: {error_type}: " in str(info.value)


async def test_query_range_never_asks_for_more_than_11000_points() -> None:
    with FaultServer() as server:
        server.route("/prometheus/api/v1/query_range", Reply(200, {
            "status": "success", "data": {"resultType": "matrix", "result": []}}))
        client = client_for(server)
        try:
            await client.query_range("x", AT, AT + timedelta(days=30), step=timedelta(seconds=1))
            await client.query_range("x", AT, AT + timedelta(hours=1))
        finally:
            await client.aclose()
        fine, default = server.requests_to("/prometheus/api/v1/query_range")
    assert timedelta(days=30) / timedelta(seconds=float(dict(fine.query)["step"])) <= MAX_POINTS - 1
    assert dict(default.query)["step"] == "15"


async def test_a_query_too_long_for_a_url_is_posted_as_a_form_and_get_again_after_a_405() -> None:
    from urllib.parse import parse_qsl

    from connectors.prometheus import MAX_GET_QUERY

    long = " or ".join(f'sum(increase(x{{i="{i}"}}[5m]))' for i in range(400))
    assert len(long) > MAX_GET_QUERY
    with FaultServer() as server:
        server.route("/prometheus/api/v1/query", Reply(200, {"status": "success", "data": VECTOR}),
                     Reply(200, {"status": "success", "data": VECTOR}),
                     Reply(405, {"status": "error", "errorType": "bad_data", "error": "POST not allowed"}),
                     Reply(200, {"status": "success", "data": VECTOR}))
        client = client_for(server)
        try:
            await client.query("sum(x)", AT)
            await client.query(long, AT)
            assert (await client.query(long, AT)).series[0].value == 3.0  # POST refused: GET
            assert not client.post_long_queries
        finally:
            await client.aclose()
        short, posted, refused, again = server.requests_to("/prometheus/api/v1/query")
    assert (short.method, posted.method, refused.method, again.method) == ("GET", "POST", "POST", "GET")
    assert dict(parse_qsl(posted.body.decode())) == {"query": long, "time": "1735689600.000"}
    assert posted.query == () and dict(again.query)["query"] == long
    assert posted.headers.get("x-scope-orgid") == "tenant-1"
