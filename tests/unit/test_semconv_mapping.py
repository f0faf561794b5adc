"""OpenTelemetry GenAI semantic conventions -> cache rows, through the real ingest path.

Current and deprecated attribute names, OTLP/JSON quirks (64-bit ints as strings,
hex ids in either case, integer or named enums), error and rate-limit detection,
TTFT, configurable dimensions, body dropping, redaction and pricing.
"""

from __future__ import annotations

import itertools
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from console.config import Config, IngestSettings
from console.pricing import PriceTable
from tests.unit.otlp_spans import kv

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
_ids = itertools.count(1)


def span(attrs: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """An OTLP/JSON span with fresh ids; `fields` override any span field."""
    n = next(_ids)
    sp = {
        "traceId": f"{n:032x}",
        "spanId": f"{n:016x}",
        "name": "chat",
        "kind": 3,
        "startTimeUnixNano": str(T0 + n * 1_000_000_000),
        "endTimeUnixNano": str(T0 + n * 1_000_000_000 + 500_000_000),
        "attributes": [kv(k, v) for k, v in (attrs or {}).items()],
        "status": {},
    }
    sp.update(fields)
    return sp


def write_request(path: Path, spans: list[dict[str, Any]],
                  resource: dict[str, Any] | None = None) -> Path:
    res = {"service.name": "svc", **(resource or {})}
    req = {"resourceSpans": [{"resource": {"attributes": [kv(k, v) for k, v in res.items()]},
                              "scopeSpans": [{"scope": {"name": "t"}, "spans": spans}]}]}
    path.write_text(json.dumps(req) + "\n")
    return path


@pytest.fixture
def store(tmp_path, ingest, sql):
    """store(spans, resource=None, config=None) ingests one request; returns (report, row_of).

    row_of(span, "col1, col2") reads those columns of that span's row.
    """
    files = itertools.count()

    def run(spans: list[dict[str, Any]], resource: dict[str, Any] | None = None,
            config: Config | None = None):
        path = write_request(tmp_path / f"req{next(files)}.jsonl", spans, resource)
        report = ingest([path], config=config)
        assert report.errors == []

        def row_of(sp: dict[str, Any], cols: str) -> tuple[Any, ...]:
            rows = sql(f"SELECT {cols} FROM spans WHERE span_id = ?", [sp["spanId"].lower()])
            assert len(rows) == 1, f"span {sp['spanId']} stored {len(rows)} times"
            return rows[0]

        return report, row_of

    return run


# ---------------------------------------------------------------------------
# Names, current and deprecated
# ---------------------------------------------------------------------------


def test_current_attribute_names(store):
    sp = span({"gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
               "gen_ai.request.model": "claude-haiku-4-5",
               "gen_ai.response.model": "claude-haiku-4-5-20251001",
               "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 200,
               "gen_ai.usage.cache_read.input_tokens": 300})
    _, row = store([sp])
    assert row(sp, "operation, provider, request_model, response_model, input_tokens,"
                   " output_tokens, cache_read_tokens, service") == (
        "chat", "anthropic", "claude-haiku-4-5", "claude-haiku-4-5-20251001", 1000, 200, 300, "svc")


def test_deprecated_names_gen_ai_system_and_prompt_completion_tokens(store):
    sp = span({"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o",
               "gen_ai.usage.prompt_tokens": 1500, "gen_ai.usage.completion_tokens": 250})
    report, row = store([sp])
    assert row(sp, "provider, input_tokens, output_tokens") == ("openai", 1500, 250)
    cost, unpriced = row(sp, "cost_usd, unpriced")
    assert unpriced is False and cost == pytest.approx((1500 * 2.5 + 250 * 10.0) / 1e6)
    assert report.unpriced == 0


def test_current_names_win_over_deprecated_ones(store):
    sp = span({"gen_ai.provider.name": "azure.ai.openai", "gen_ai.system": "openai",
               "gen_ai.request.model": "gpt-4o",
               "gen_ai.usage.input_tokens": 10, "gen_ai.usage.prompt_tokens": 99,
               "gen_ai.usage.output_tokens": 20, "gen_ai.usage.completion_tokens": 98})
    _, row = store([sp])
    assert row(sp, "provider, input_tokens, output_tokens") == ("azure.ai.openai", 10, 20)


# ---------------------------------------------------------------------------
# OTLP/JSON encoding quirks
# ---------------------------------------------------------------------------


def test_string_encoded_64_bit_integers_keep_every_digit(store, sql):
    big = 2**53 + 1  # not representable as a double
    sp = span({"gen_ai.request.model": "m", "gen_ai.usage.input_tokens": big},
              startTimeUnixNano="1767225600123456789", endTimeUnixNano="1767225600623456790")
    _, row = store([sp])
    assert row(sp, "input_tokens, epoch_ns(start_time)") == (big, 1767225600123456789)
    assert row(sp, "duration_ms")[0] == pytest.approx(500.000001)


def test_integers_given_as_json_numbers_also_work(store):
    sp = span({}, startTimeUnixNano=T0, endTimeUnixNano=T0 + 2_000_000)
    sp["attributes"] = [{"key": "gen_ai.usage.output_tokens", "value": {"intValue": 42}}]
    _, row = store([sp])
    assert row(sp, "output_tokens, epoch_ns(start_time), duration_ms") == (42, T0, 2.0)


def test_hex_ids_in_either_case_are_stored_lowercase_and_deduplicated(store, sql):
    upper = span({}, traceId="ABCDEF0123456789ABCDEF0123456789", spanId="ABCDEF0123456789",
                 parentSpanId="FEDCBA9876543210")
    report, row = store([upper])
    assert report.spans_stored == 1
    assert row(upper, "trace_id, span_id, parent_span_id") == (
        "abcdef0123456789abcdef0123456789", "abcdef0123456789", "fedcba9876543210")
    # the same span again, written in lowercase (and mixed case) by another exporter
    lower = dict(upper, traceId=upper["traceId"].lower(), spanId="abcDEF0123456789")
    report, _ = store([lower])
    assert (report.spans_stored, report.duplicates) == (0, 1)
    assert sql("SELECT count(*) FROM spans") == [(1,)]


@pytest.mark.parametrize(("kind", "stored"), [
    (3, 3), (2, 2), (0, 0), ("SPAN_KIND_CLIENT", 3), ("SPAN_KIND_SERVER", 2)])
def test_span_kind_integer_or_named_enum(kind, stored, store):
    sp = span({}, kind=kind)
    _, row = store([sp])
    assert row(sp, "kind") == (stored,)


@pytest.mark.parametrize(("code", "status"), [
    (0, "unset"), (1, "ok"), (2, "error"), ("STATUS_CODE_ERROR", "error"),
    ("STATUS_CODE_OK", "ok"), (None, "unset")])
def test_status_code_integer_or_named_enum(code, status, store):
    sp = span({}, status={} if code is None else {"code": code})
    _, row = store([sp])
    assert row(sp, "status") == (status,)


# ---------------------------------------------------------------------------
# Errors, rate limits, TTFT
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("attrs", "code", "status", "error_type"), [
    ({}, 2, "error", None),                                       # status code 2 alone
    ({"error.type": "timeout"}, 0, "error", "timeout"),            # error.type alone
    ({"http.response.status_code": 503}, 0, "error", None),        # a 5xx answer
    ({"http.response.status_code": 200}, 1, "ok", None),
    ({"http.response.status_code": 200}, 0, "unset", None),
])
def test_error_detection(attrs, code, status, error_type, store):
    sp = span(attrs, status={"code": code} if code else {})
    _, row = store([sp])
    assert row(sp, "status, error_type") == (status, error_type)


@pytest.mark.parametrize(("attrs", "limited"), [
    ({"http.response.status_code": 429}, True),
    ({"http.response.status_code": 529}, True),
    ({"http.status_code": 429}, True),  # the pre-1.21 HTTP name
    ({"error.type": "rate_limit_error"}, True),
    ({"error.type": "overloaded_error"}, True),
    ({"error.type": "api_error", "http.response.status_code": 500}, False),
    ({"error.type": "invalid_request_error", "http.response.status_code": 400}, False),
    ({}, False),
])
def test_rate_limit_detection(attrs, limited, store):
    sp = span(attrs, status={"code": 2})
    _, row = store([sp])
    assert row(sp, "rate_limited, status") == (limited, "error")
    if "http.response.status_code" in attrs or "http.status_code" in attrs:
        want = attrs.get("http.response.status_code", attrs.get("http.status_code"))
        assert row(sp, "http_status") == (want,)


def test_ttft_from_time_to_first_chunk_seconds_to_ms(store):
    streamed = span({"gen_ai.response.time_to_first_chunk": 0.25})
    plain = span({})
    _, row = store([streamed, plain])
    assert row(streamed, "ttft_ms")[0] == pytest.approx(250.0)
    assert row(plain, "ttft_ms") == (None,)


# ---------------------------------------------------------------------------
# Dimensions: tenant, route, prompt
# ---------------------------------------------------------------------------


def test_tenant_route_prompt_from_default_attributes(store):
    sp = span({"llmdeck.tenant": "acme", "http.route": "/v1/chat",
               "llmdeck.prompt.id": "support-answer", "llmdeck.prompt.version": "v13"})
    other = span({"tenant.id": "globex", "url.template": "/v1/items/{id}",
                  "prompt.name": "summarize", "prompt.version": "v4"})
    _, row = store([sp, other])
    assert row(sp, "tenant, route, prompt_id, prompt_version") == (
        "acme", "/v1/chat", "support-answer", "v13")
    assert row(other, "tenant, route, prompt_id, prompt_version") == (
        "globex", "/v1/items/{id}", "summarize", "v4")


def test_gen_ai_prompt_id_and_version_are_dimensions_not_bodies(store):
    """`gen_ai.prompt.id`/`.version` are dimensions; `gen_ai.prompt.0.content` is a body."""
    sp = span({"gen_ai.prompt.id": "support-answer", "gen_ai.prompt.version": "v13",
               "gen_ai.prompt.0.content": "user text", "gen_ai.completion.0.content": "reply"})
    _, row = store([sp])
    assert row(sp, "prompt_id, prompt_version") == ("support-answer", "v13")
    attrs = json.loads(row(sp, "attributes")[0])
    assert "gen_ai.prompt.0.content" not in attrs and "gen_ai.completion.0.content" not in attrs


def test_dimensions_fall_back_to_the_resource_and_the_span_wins(store):
    on_span = span({"tenant.id": "span-tenant"})
    bare = span({})
    _, row = store([on_span, bare],
                   resource={"tenant.id": "res-tenant", "http.route": "/res",
                             "prompt.version": "v9"})
    assert row(on_span, "tenant, route, prompt_version") == ("span-tenant", "/res", "v9")
    assert row(bare, "tenant, route, prompt_version") == ("res-tenant", "/res", "v9")


def test_custom_tenant_attribute_list_from_config(store, make_config):
    cfg = make_config(ingest=IngestSettings(tenant_attributes=["customer.org", "customer.id"],
                                       route_attributes=["rpc.method"]))
    sp = span({"llmdeck.tenant": "ignored", "customer.id": "c-42", "rpc.method": "Generate",
               "http.route": "/ignored"})
    res_only = span({"llmdeck.tenant": "ignored too"})
    _, row = store([sp, res_only], resource={"customer.org": "org-7"}, config=cfg)
    # any configured attribute on the span beats the resource; unlisted names are ignored
    assert row(sp, "tenant, route") == ("c-42", "Generate")
    assert row(res_only, "tenant, route") == ("org-7", None)


def test_integer_dimension_values_become_text(store):
    sp = span({"tenant.id": 1234})
    _, row = store([sp])
    assert row(sp, "tenant") == ("1234",)


def test_fallback_flag(store):
    used, unused = span({"llmdeck.fallback": True}), span({})
    _, row = store([used, unused])
    assert row(used, "fallback") == (True,)
    assert row(unused, "fallback") == (False,)


# ---------------------------------------------------------------------------
# Bodies and redaction
# ---------------------------------------------------------------------------

BODIES = {
    "gen_ai.input.messages": '[{"role":"user","parts":[{"type":"text","content":"hi"}]}]',
    "gen_ai.output.messages": '[{"role":"assistant","parts":[{"type":"text","content":"yo"}]}]',
    "gen_ai.system_instructions": "You are a helpful bot",
}
BODY_EVENT = {"name": "gen_ai.content.prompt", "timeUnixNano": str(T0),
              "attributes": [kv("gen_ai.prompt", "the secret prompt text")]}


def test_bodies_dropped_by_default(store):
    sp = span({**BODIES, "gen_ai.request.model": "m"}, events=[BODY_EVENT])
    _, row = store([sp])
    attrs, events = row(sp, "attributes, events")
    assert not set(BODIES) & set(json.loads(attrs))
    assert "helpful bot" not in attrs and "the secret prompt text" not in (events or "")
    assert json.loads(events)[0]["name"] == "gen_ai.content.prompt"  # the event stays, bodiless


def test_bodies_kept_with_keep_bodies_and_still_redacted(store, make_config):
    cfg = make_config(ingest=IngestSettings(keep_bodies=True))
    bodies = {**BODIES, "gen_ai.system_instructions": "Escalate to ops@example.com"}
    sp = span(bodies, events=[BODY_EVENT])
    _, row = store([sp], config=cfg)
    attrs, events, n = row(sp, "attributes, events, redactions")
    kept = json.loads(attrs)
    assert kept["gen_ai.input.messages"] == BODIES["gen_ai.input.messages"]
    assert kept["gen_ai.output.messages"] == BODIES["gen_ai.output.messages"]
    assert kept["gen_ai.system_instructions"] == "Escalate to [EMAIL]"
    assert "the secret prompt text" in events
    assert n == 1


def test_redaction_in_attributes_events_and_status_with_count(store, sql):
    sp = span(
        {"app.note": "mail jane.doe@example.com please",              # 1
         "app.keys": ["ok", "AKIAIOSFODNN7EXAMPLE"],                   # 1, inside an array
         "http.request.header.authorization": "Bearer abcdefghijklmnop",  # 1
         "gen_ai.request.model": "m"},
        events=[{"name": "retry", "timeUnixNano": str(T0),
                 "attributes": [kv("peer", "10.1.2.3"), kv("card", "4111 1111 1111 1111")]}],  # 2
        status={"code": 2, "message": "rejected for jane.doe@example.com"},  # 1
    )
    clean = span({"app.note": "nothing to see"})
    _, row = store([sp, clean])
    attrs, events, message, n = row(sp, "attributes, events, status_message, redactions")
    a = json.loads(attrs)
    assert a["app.note"] == "mail [EMAIL] please"
    assert a["app.keys"] == ["ok", "[SECRET]"]
    assert a["http.request.header.authorization"] == "Bearer [SECRET]"
    ev = json.loads(events)[0]["attributes"]
    assert ev == {"peer": "[IP]", "card": "[CARD]"}
    assert message == "rejected for [EMAIL]"
    assert n == 6
    assert row(clean, "redactions") == (0,)
    # nothing raw anywhere in the table
    dump = json.dumps(sql("SELECT * FROM spans"), default=str)
    for raw in ("jane.doe@example.com", "AKIAIOSFODNN7EXAMPLE", "10.1.2.3", "abcdefghijklmnop",
                "4111 1111"):
        assert raw not in dump


def test_secret_canary_never_reaches_the_cache_file(store, cache_file):
    canary = "sk-proj-CANARYcanary0123456789abcdefXYZ"
    sp = span({"app.header": f"x-api-key: {canary}"},
              events=[{"name": "e", "attributes": [kv("k", canary)]}])
    store([sp])
    for f in cache_file.parent.glob(cache_file.name + "*"):
        assert canary.encode() not in f.read_bytes(), f


def test_resource_attributes_are_redacted_too(store):
    sp = span({})
    _, row = store([sp], resource={"host.owner": "admin@example.com"})
    attrs, n = row(sp, "attributes, redactions")
    assert json.loads(attrs)["resource"]["host.owner"] == "[EMAIL]"
    assert n == 1


# ---------------------------------------------------------------------------
# Pricing
# ---------------------------------------------------------------------------


def test_known_model_priced_with_table_version(store):
    sp = span({"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
               "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
               "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 180,
               "gen_ai.usage.cache_read.input_tokens": 800})
    report, row = store([sp])
    cost, version, unpriced = row(sp, "cost_usd, price_version, unpriced")
    assert cost == pytest.approx(228e-6)
    assert version == PriceTable.load().version
    assert unpriced is False and report.unpriced == 0


def test_unknown_model_has_null_cost_and_is_counted_unpriced(store, sql):
    known = span({"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
                  "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 10})
    unknown = [span({"gen_ai.provider.name": "openai", "gen_ai.request.model": "acme-ft-v2",
                     "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 10})
               for _ in range(3)]
    report, row = store([known, *unknown])
    for sp in unknown:
        assert row(sp, "cost_usd, price_version, unpriced") == (None, None, True)
    assert report.unpriced == 3
    assert sql("SELECT sum(unpriced), sum(requests) FROM rollup_minute") == [(3, 4)]
    # the unpriced spans add nothing (not a silent $0 price: the cost column is NULL)
    (total,) = sql("SELECT sum(cost_usd) FROM rollup_minute")[0]
    assert total == pytest.approx(row(known, "cost_usd")[0])


def test_model_priced_from_override_is_tagged(store, make_config):
    from console.config import PriceOverride, PricingSettings

    cfg = make_config(pricing=PricingSettings(overrides=[
        PriceOverride(model="acme-ft-v2", input=1.0, output=2.0, effective=date(2025, 1, 1))]))
    sp = span({"gen_ai.request.model": "acme-ft-v2", "gen_ai.usage.input_tokens": 1_000_000,
               "gen_ai.usage.output_tokens": 1_000_000})
    report, row = store([sp], config=cfg)
    cost, version, unpriced = row(sp, "cost_usd, price_version, unpriced")
    assert (cost, unpriced, report.unpriced) == (pytest.approx(3.0), False, 0)
    assert version.endswith("+overrides")
