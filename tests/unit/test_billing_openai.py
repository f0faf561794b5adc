"""The OpenAI billing connector against a loopback replay of `/v1/organization/costs` and usage.

The server (tests/faults/billing_server.py) serves the documented shapes from generated
data; the real OpenAI Admin API cannot be reached here. Each fault test states what the
caller gets: the complete fetch, or a SourceError whose kind, status and text are fixed,
and whose text never carries the key or a URL query.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from connectors import billing_openai, billing_pages
from connectors.billing_openai import COSTS_PATH, USAGE_PATH, _cost_lines, model_of
from connectors.http import HttpPolicy, SourceClient, SourceError
from tests.faults.billing_server import BillingServer, ConnectorCalls, Sleeps, json_reply
from tests.faults.fault_server import Answer, Drip, Hang, RecordedRequest, Reply, Reset, html_page

KEY = "sk-admin-Zq8vT2xL9mN4pR7sK1wY6bH3cD5fG0jA"
START = date(2026, 6, 1)
DAYS = 90
END = START + timedelta(days=DAYS)
NOW = datetime(2026, 9, 1, 12, 0)
START_UNIX = int(datetime(2026, 6, 1, tzinfo=UTC).timestamp())


@pytest.fixture
def server() -> Iterator[BillingServer]:
    with BillingServer(start=START, days=DAYS, page_days=7) as s:
        yield s


CALLS = ConnectorCalls(billing_openai, KEY, "openai-main", START, END, NOW)
_fetch, _error = CALLS.fetch, CALLS.error


def _one_bucket(result: dict[str, object]) -> Reply:
    """A last page of one bucket (START's day) holding `result`."""
    return json_reply({"object": "page", "has_more": False, "next_page": None, "data": [{
        "object": "bucket", "start_time": START_UNIX, "end_time": START_UNIX + 86400, "results": [result]}]})


async def test_ninety_days_of_pages_sum_to_the_exact_decimal_total(server: BillingServer) -> None:
    fetch = await _fetch(server)
    assert (fetch.provider, fetch.source, fetch.start, fetch.end, fetch.fetched_at) == (
        "openai",
        "openai-main",
        START,
        END,
        NOW,
    )
    assert len(fetch.lines) == server.expected_lines("openai") == 90 * 6
    assert sum((line.amount for line in fetch.lines), Decimal(0)) == server.expected_total("openai")
    assert fetch.pages == len(server.requests) == 13 + 13  # 90 days, 7 per page, both endpoints
    amounts = {line.amount for line in fetch.lines}
    # exactly as sent: no float ever touched them
    assert Decimal("1.234567890123456789") in amounts and Decimal("0.30000000000000004") in amounts
    assert all(line.currency == "USD" and START <= line.day < END for line in fetch.lines)
    assert len(fetch.usage) == 90 * 2 and {u.batch for u in fetch.usage} == {None, True, False}


async def test_lines_carry_day_model_line_item_and_project_nulls_kept(server: BillingServer) -> None:
    fetch = await _fetch(server, start=START, end=START + timedelta(days=1))
    first = fetch.lines[0]
    assert (first.day, first.model, first.line_item, first.project) == (
        START,
        "gpt-4o-mini-2024-07-18",
        "gpt-4o-mini-2024-07-18, input",
        "proj_0",
    )
    assert any(line.project is None for line in fetch.lines)  # project_id null: allowed
    usage = fetch.usage[0]
    assert (
        usage.model,
        usage.project,
        usage.requests,
        usage.input_tokens,
        usage.output_tokens,
        usage.cached_input_tokens,
        usage.batch,
    ) == ("gpt-4o-mini-2024-07-18", None, 5, 5000, 1000, 1800, None)


async def test_requests_repeat_group_by_and_carry_the_key_only_in_a_header(server: BillingServer) -> None:
    await _fetch(server)
    costs = server.requests_to(COSTS_PATH)
    first = costs[0]
    assert [v for k, v in first.query if k == "group_by"] == ["line_item", "project_id"]
    assert dict(first.query)["bucket_width"] == "1d" and "page" not in dict(first.query)
    assert dict(costs[1].query)["page"].startswith("page_")
    usage = server.requests_to(USAGE_PATH)[0]
    assert [v for k, v in usage.query if k == "group_by"] == ["model", "project_id", "batch"]
    for request in server.requests:
        assert request.headers["authorization"] == f"Bearer {KEY}"
        assert all(KEY not in v for _, v in request.query)


async def test_a_429_with_retry_after_is_waited_out_and_the_fetch_completes(server: BillingServer) -> None:
    server.fault(
        COSTS_PATH,
        Reply(
            429,
            {"error": {"message": "Rate limit reached", "type": "requests", "param": None, "code": None}},
            headers={"Retry-After": "2"},
        ),
        after=1,
    )
    sleeps = Sleeps()
    fetch = await _fetch(server, sleep=sleeps)
    assert sum((line.amount for line in fetch.lines), Decimal(0)) == server.expected_total("openai")
    assert sleeps.seconds == [2.0]  # the server's Retry-After, once
    assert len(server.requests_to(COSTS_PATH)) == 13 + 1


@pytest.mark.parametrize("status", [500, 502, 503, 529])
async def test_a_5xx_then_success_is_retried_and_the_fetch_completes(
    server: BillingServer, status: int
) -> None:
    server.fault(
        USAGE_PATH,
        Reply(status, {"error": {"message": "boom", "type": "server_error", "param": None, "code": None}}),
        after=3,
    )
    fetch = await _fetch(server)
    assert len(fetch.usage) == 180 and len(server.requests_to(USAGE_PATH)) == 13 + 1


async def test_a_server_error_that_persists_is_one_http_error_naming_endpoint_and_page(
    server: BillingServer,
) -> None:
    server.fault(
        COSTS_PATH,
        Reply(
            500,
            {
                "error": {
                    "message": "The server had an error",
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            },
        ),
        after=2,
        repeat=True,
    )
    error = await _error(server)
    assert (error.kind, error.status) == ("http", 500)
    assert str(error) == (
        "openai-main: HTTP 500: GET /v1/organization/costs (page 3): server_error: The server had an error"
    )
    assert len(server.requests_to(COSTS_PATH)) == 2 + 3  # three attempts at page 3


async def test_a_connection_reset_once_is_retried(server: BillingServer) -> None:
    server.fault(COSTS_PATH, Reset(), after=1)
    fetch = await _fetch(server)
    assert len(fetch.lines) == 540


async def test_connection_resets_that_persist_say_so(server: BillingServer) -> None:
    server.replace(COSTS_PATH, Reset())
    error = await _error(server)
    assert (error.kind, error.status) == ("connect", None)
    assert str(error) == "openai-main: connect: GET /v1/organization/costs: connection reset by the server"


async def test_a_hung_server_is_a_timeout(server: BillingServer) -> None:
    server.replace(COSTS_PATH, Hang())
    error = await _error(server)
    assert error.kind == "timeout"
    assert (
        str(error)
        == "openai-main: timeout: GET /v1/organization/costs: no answer within 0.5 s (read timeout)"
    )


async def test_a_slow_drip_is_cut_at_the_deadline(server: BillingServer) -> None:
    server.replace(COSTS_PATH, Drip(interval=0.1))
    error = await _error(server, policy=HttpPolicy(read_timeout=0.5, deadline=1.0))
    assert error.kind == "timeout"
    assert str(error) == (
        "openai-main: timeout: GET /v1/organization/costs: no complete answer within the 1 s deadline"
    )


async def test_malformed_json_on_a_later_page_is_a_decode_error_naming_the_page(
    server: BillingServer,
) -> None:
    server.fault(
        COSTS_PATH, Reply(200, '{"object": "page", "data": [', content_type="application/json"), after=1
    )
    error = await _error(server)
    assert (error.kind, error.status) == ("decode", 200)
    assert str(error) == (
        "openai-main: decode: GET /v1/organization/costs (page 2): malformed JSON: "
        "Expecting value at line 1 column 29"
    )


async def test_an_html_page_is_a_content_type_error_with_its_title(server: BillingServer) -> None:
    server.replace(COSTS_PATH, html_page(200, "Sign in - Cloudflare Access"))
    error = await _error(server)
    assert (error.kind, error.status) == ("content_type", 200)
    assert str(error) == (
        "openai-main: content_type: GET /v1/organization/costs: "
        "expected JSON, got text/html (Sign in - Cloudflare Access)"
    )


async def test_html_labelled_as_json_is_a_decode_error(server: BillingServer) -> None:
    server.replace(
        COSTS_PATH, Reply(200, "<html><title>Bad gateway</title></html>", content_type="application/json")
    )
    error = await _error(server)
    assert (
        str(error)
        == "openai-main: decode: GET /v1/organization/costs: not JSON but an HTML page (Bad gateway)"
    )


@pytest.mark.parametrize("status", [401, 403])
async def test_401_and_403_name_the_source_to_check_never_the_key(server: BillingServer, status: int) -> None:
    message = f"Incorrect API key provided: {KEY}. You can find your API key at https://x.test/k?key={KEY}"
    server.replace(
        COSTS_PATH,
        json_reply(
            {
                "error": {
                    "message": message,
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "invalid_api_key",
                }
            },
            status,
        ),
    )
    error = await _error(server)
    assert (error.kind, error.status) == ("auth", status)
    assert error.permanent
    assert "check the credentials reference configured for source openai-main" in str(error)
    assert str(error).startswith(f"openai-main: HTTP {status}: GET /v1/organization/costs: ")
    assert len(server.requests_to(COSTS_PATH)) == 1  # never retried


@pytest.mark.parametrize(
    ("result", "says"),
    [
        ({"object": "organization.costs.result"}, "data[0].results[0].amount: missing"),
        ({"amount": {"currency": "usd"}}, "data[0].results[0].amount.value: missing"),
        ({"amount": {"value": "abc", "currency": "usd"}}, "data[0].results[0].amount.value: not a decimal"),
        ({"amount": {"value": None}}, "data[0].results[0].amount.value: expected an amount, got null"),
        (
            {"amount": {"value": 1}, "project_id": 7},
            "data[0].results[0].project_id: expected a string or null",
        ),
        (
            {"object": "organization.usage.images.result", "amount": {"value": 1}},
            "data[0].results[0].object: expected organization.costs.result",
        ),
    ],
)
async def test_a_result_not_shaped_as_documented_is_a_decode_error_naming_the_field(
    server: BillingServer, result: dict[str, object], says: str
) -> None:
    server.replace(COSTS_PATH, _one_bucket(result))
    error = await _error(server)
    assert error.kind == "decode"
    assert str(error).startswith(f"openai-main: decode: GET /v1/organization/costs: {says}")


@pytest.mark.parametrize(
    ("page", "says"),
    [
        ({"object": "page", "has_more": False}, "data: missing"),
        ([], "expected a JSON object, got a list"),
        ({"data": [], "has_more": True, "next_page": None}, "next_page: missing while has_more is true"),
        (
            {"data": [{"start_time": "x", "results": []}], "has_more": False},
            "data[0].start_time: expected Unix",
        ),
        ({"data": [], "has_more": "yes"}, "has_more: expected true or false, got a string"),
    ],
)
async def test_a_page_not_shaped_as_documented_is_a_decode_error(
    server: BillingServer, page: object, says: str
) -> None:
    server.replace(COSTS_PATH, json_reply(page))
    error = await _error(server)
    assert error.kind == "decode" and says in str(error)


async def test_a_server_repeating_its_cursor_is_stopped(server: BillingServer) -> None:
    server.replace(
        COSTS_PATH, json_reply({"object": "page", "data": [], "has_more": True, "next_page": "page_x"})
    )
    error = await _error(server)
    assert str(error) == (
        "openai-main: decode: GET /v1/organization/costs (page 2): "
        "the server sent the same next_page cursor twice"
    )
    assert len(server.requests_to(COSTS_PATH)) == 2


async def test_an_endless_walk_stops_at_the_page_cap(
    server: BillingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(billing_pages, "MAX_PAGES", 5)

    def endless(request: RecordedRequest) -> Reply:
        cursor = dict(request.query).get("page", "page_") + "x"
        return json_reply({"object": "page", "data": [], "has_more": True, "next_page": cursor})

    server.replace(COSTS_PATH, Answer(endless))
    error = await _error(server)
    assert str(error) == (
        "openai-main: decode: GET /v1/organization/costs (page 5): "
        "more than 5 pages; stopped (narrow the date range)"
    )
    assert len(server.requests_to(COSTS_PATH)) == 5


def test_the_example_payload_reads_with_nulls_and_its_model_names(examples: Path) -> None:
    doc = json.loads((examples / "openai_costs.json").read_text(), parse_float=Decimal)
    lines = _cost_lines(doc, "o", date(2024, 11, 1), date(2024, 11, 3))
    assert [(line.day, line.amount, line.model, line.project) for line in lines] == [
        (date(2024, 11, 1), Decimal("0.06"), "gpt-4o-mini-2024-07-18", "proj_abc"),
        (date(2024, 11, 1), Decimal("1.2"), "gpt-4o-2024-08-06", "proj_abc"),
    ]


def test_model_of_reads_only_the_model_comma_kind_form() -> None:
    assert model_of("gpt-4o-mini-2024-07-18, input") == "gpt-4o-mini-2024-07-18"
    assert model_of("web search tool calls") is None
    assert model_of("Fine-tuning training, gpt-4o") is None
    assert model_of(None) is None


async def test_an_empty_range_is_the_callers_mistake(server: BillingServer) -> None:
    with pytest.raises(ValueError, match="empty day range"):
        await _fetch(server, start=START, end=START)


async def test_a_retry_after_beyond_the_deadline_is_reported_not_waited(server: BillingServer) -> None:
    server.replace(
        COSTS_PATH,
        Reply(
            429,
            {
                "error": {
                    "message": "Rate limit reached for requests",
                    "type": "requests",
                    "param": None,
                    "code": None,
                }
            },
            headers={"Retry-After": "120"},
        ),
    )
    sleeps = Sleeps()
    with pytest.raises(SourceError) as info:
        await _fetch(server, sleep=sleeps)
    error = info.value
    assert (error.kind, error.status, error.retry_after, sleeps.seconds) == ("http", 429, 120.0, [])
    assert str(error) == "openai-main: HTTP 429: GET /v1/organization/costs: Rate limit reached for requests"


async def test_an_exhausted_quota_is_permanent_and_not_retried(server: BillingServer) -> None:
    message = "You exceeded your current quota, please check your plan and billing details."
    server.replace(
        COSTS_PATH,
        json_reply(
            {
                "error": {
                    "message": message,
                    "type": "insufficient_quota",
                    "param": None,
                    "code": "insufficient_quota",
                }
            },
            429,
        ),
    )
    error = await _error(server)
    assert (error.kind, error.status, error.permanent) == ("quota", 429, True)
    assert len(server.requests_to(COSTS_PATH)) == 1


async def test_a_server_that_is_not_there_is_a_connect_error() -> None:
    with BillingServer(start=START, days=1) as gone:
        url = gone.url
    async with SourceClient(
        "openai-main",
        url,
        secret_headers=billing_openai.secret_headers(KEY),
        policy=HttpPolicy(connect_timeout=0.5, deadline=2.0, backoff_base=0.01),
        sleep=Sleeps(),
    ) as client:
        with pytest.raises(SourceError) as info:
            await billing_openai.fetch(client, "openai-main", START, END)
    assert info.value.kind == "connect"
    assert str(info.value).startswith(
        "openai-main: connect: GET /v1/organization/costs: cannot connect to 127.0.0.1:"
    )
    assert KEY not in str(info.value)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"data": [], "has_more": false, "x": "\xff\xfe"}', "malformed JSON: not UTF-8"),
        (b"[" * 200_000 + b"]" * 200_000, "malformed JSON: nested too deeply"),
        (b'{"data": [], "has_more": false, "next_page": NaN}', "malformed JSON: NaN is not a JSON number"),
    ],
)
async def test_bodies_json_cannot_hold_are_decode_errors(
    server: BillingServer, body: bytes, says: str
) -> None:
    server.replace(COSTS_PATH, Reply(200, body, content_type="application/json"))
    error = await _error(server)
    assert str(error) == f"openai-main: decode: GET /v1/organization/costs: {says}"


async def test_a_key_echoed_in_an_html_title_is_masked(server: BillingServer) -> None:
    server.replace(COSTS_PATH, html_page(200, f"Denied for {KEY}"))
    error = await _error(server)
    assert error.kind == "content_type" and "Denied for" in str(error)


async def test_optional_usage_counts_missing_count_as_zero_and_dimensions_null(server: BillingServer) -> None:
    result = {
        "object": "organization.usage.completions.result",
        "input_tokens": 10,
        "output_tokens": 2,
        "num_model_requests": 1,
    }
    server.replace(USAGE_PATH, _one_bucket(result))
    fetch = await _fetch(server)
    assert [
        (u.model, u.project, u.requests, u.input_tokens, u.cached_input_tokens, u.batch) for u in fetch.usage
    ] == [(None, None, 1, 10, 0, None)]
