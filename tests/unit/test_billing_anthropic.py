"""The Anthropic billing connector against a loopback replay of the cost report and usage report.

The server (tests/faults/billing_server.py) serves the documented shapes from generated
data; the real Anthropic Admin API cannot be reached here. Amounts are decimal strings
in cents: the dollars must come out exact (`"123.45"` -> `Decimal("1.2345")`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from connectors import billing_anthropic
from connectors.billing_anthropic import COST_PATH, USAGE_PATH, _cost_lines, _usage_lines
from connectors.billing_pages import cents_to_dollars
from connectors.http import HttpPolicy
from tests.faults.billing_server import BillingServer, ConnectorCalls, Sleeps, json_reply
from tests.faults.fault_server import Drip, Hang, Reply, Reset, html_page

KEY = "sk-ant-admin01-Vb7Nq2Lx8Zr4Tk9Wm3Hc6Jp1Sd5Fg0Ya"
START = date(2026, 6, 1)
DAYS = 90
END = START + timedelta(days=DAYS)
NOW = datetime(2026, 9, 1, 12, 0)


def _error_body(kind: str, message: str) -> dict[str, object]:
    return {
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy",
    }


@pytest.fixture
def server() -> Iterator[BillingServer]:
    with BillingServer(start=START, days=DAYS, page_days=7) as s:
        yield s


CALLS = ConnectorCalls(billing_anthropic, KEY, "claude-org", START, END, NOW)
_fetch, _error = CALLS.fetch, CALLS.error


@pytest.mark.parametrize(
    ("cents", "dollars"),
    [
        ("123.45", "1.2345"),
        ("123.78912", "1.2378912"),
        ("50.00", "0.5000"),
        ("7", "0.07"),
        ("0.001", "0.00001"),
        ("-12.5", "-0.125"),
        ("1234567890123456789012345678901.99", "12345678901234567890123456789.0199"),
    ],
)
def test_cents_become_dollars_by_moving_the_point_exactly(cents: str, dollars: str) -> None:
    converted = cents_to_dollars(Decimal(cents))
    assert converted == Decimal(dollars) and str(converted) == dollars


async def test_ninety_days_of_pages_sum_to_the_exact_decimal_total(server: BillingServer) -> None:
    fetch = await _fetch(server)
    assert (fetch.provider, fetch.source, fetch.fetched_at) == ("anthropic", "claude-org", NOW)
    assert len(fetch.lines) == server.expected_lines("anthropic") == 90 * 6
    assert sum((line.amount for line in fetch.lines), Decimal(0)) == server.expected_total("anthropic")
    assert fetch.pages == len(server.requests) == 13 + 13
    assert {line.amount for line in fetch.lines} >= {
        Decimal("1.2345"),
        Decimal("0.00001"),
        Decimal("99.99999999"),
    }
    assert all(line.currency == "USD" for line in fetch.lines)


async def test_the_default_workspace_and_code_execution_lines_keep_their_nulls(server: BillingServer) -> None:
    fetch = await _fetch(server, start=START, end=START + timedelta(days=1))
    code = [line for line in fetch.lines if line.line_item == "Code Execution Usage"]
    assert len(code) == 1 and (code[0].model, code[0].project, code[0].service_tier) == (None, None, None)
    assert any(line.project is None and line.model for line in fetch.lines)  # default workspace
    assert {line.project for line in fetch.lines} == {None, "wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ"}
    batch, standard = sorted(fetch.usage, key=lambda u: u.project is not None)
    assert (batch.model, batch.project, batch.batch) == ("claude-sonnet-5", None, True)
    assert (standard.project, standard.batch, standard.requests) == ("wrkspc_1", False, 0)
    # total input = uncached + cache read + both cache writes
    assert (standard.input_tokens, standard.cached_input_tokens, standard.output_tokens) == (
        1500 + 200 + 15,
        200,
        500,
    )


async def test_requests_send_version_and_group_by_brackets_and_the_key_only_in_a_header(
    server: BillingServer,
) -> None:
    await _fetch(server)
    first = server.requests_to(COST_PATH)[0]
    assert [v for k, v in first.query if k == "group_by[]"] == ["workspace_id", "description"]
    assert dict(first.query)["starting_at"] == "2026-06-01T00:00:00Z"
    assert dict(first.query)["ending_at"] == "2026-08-30T00:00:00Z"
    usage = server.requests_to(USAGE_PATH)[0]
    assert [v for k, v in usage.query if k == "group_by[]"] == ["model", "workspace_id", "service_tier"]
    for request in server.requests:
        assert request.headers["x-api-key"] == KEY and request.headers["anthropic-version"] == "2023-06-01"
        assert "authorization" not in request.headers
        assert all(KEY not in v for _, v in request.query)


async def test_a_429_with_retry_after_is_waited_out_and_the_fetch_completes(server: BillingServer) -> None:
    server.fault(
        COST_PATH,
        Reply(
            429,
            _error_body("rate_limit_error", "Number of requests has exceeded your rate limit"),
            headers={"retry-after": "2"},
        ),
        after=4,
    )
    sleeps = Sleeps()
    fetch = await _fetch(server, sleep=sleeps)
    assert sum((line.amount for line in fetch.lines), Decimal(0)) == server.expected_total("anthropic")
    assert sleeps.seconds == [2.0]


async def test_a_529_overloaded_then_success_is_retried(server: BillingServer) -> None:
    server.fault(
        USAGE_PATH,
        json_reply(_error_body("overloaded_error", "Overloaded"), 529),
        json_reply(_error_body("api_error", "Internal server error"), 500),
        after=2,
    )
    fetch = await _fetch(server)
    assert len(fetch.usage) == 180 and len(server.requests_to(USAGE_PATH)) == 13 + 2


async def test_a_529_that_persists_is_one_error_with_the_providers_message(server: BillingServer) -> None:
    server.replace(USAGE_PATH, json_reply(_error_body("overloaded_error", "Overloaded"), 529))
    error = await _error(server)
    assert (error.kind, error.status) == ("http", 529)
    assert str(error) == (
        "claude-org: HTTP 529: GET /v1/organizations/usage_report/messages: overloaded_error: Overloaded"
    )


async def test_a_connection_reset_once_is_retried_and_persisting_resets_say_so(server: BillingServer) -> None:
    server.fault(COST_PATH, Reset(), after=5)
    assert len((await _fetch(server)).lines) == 540
    server.replace(COST_PATH, Reset())
    error = await _error(server)
    assert (
        str(error) == "claude-org: connect: GET /v1/organizations/cost_report: connection reset by the server"
    )


async def test_a_hung_server_is_a_timeout_and_a_slow_drip_is_cut_at_the_deadline(
    server: BillingServer,
) -> None:
    server.replace(COST_PATH, Hang())
    error = await _error(server)
    assert (error.kind, str(error)) == (
        "timeout",
        "claude-org: timeout: GET /v1/organizations/cost_report: no answer within 0.5 s (read timeout)",
    )
    server.replace(COST_PATH, Drip(interval=0.1))
    error = await _error(server, policy=HttpPolicy(read_timeout=0.5, deadline=1.0))
    assert str(error) == (
        "claude-org: timeout: GET /v1/organizations/cost_report: no complete answer within the 1 s deadline"
    )


async def test_malformed_json_and_html_are_decode_and_content_type_errors(server: BillingServer) -> None:
    server.fault(USAGE_PATH, Reply(200, '{"data": [}', content_type="application/json"), after=2)
    error = await _error(server)
    assert (error.kind, str(error)) == (
        "decode",
        "claude-org: decode: GET /v1/organizations/usage_report/messages "
        "(page 3): malformed JSON: Expecting value at line 1 column 11",
    )
    server.replace(USAGE_PATH, html_page(502, "502 Bad Gateway"))
    error = await _error(server)
    assert (error.kind, error.status) == ("http", 502)
    assert str(error) == (
        "claude-org: HTTP 502: GET /v1/organizations/usage_report/messages: HTML error page: 502 Bad Gateway"
    )
    server.replace(USAGE_PATH, html_page(200, "Log in"))
    error = await _error(server)
    assert (error.kind, str(error)) == (
        "content_type",
        "claude-org: content_type: GET "
        "/v1/organizations/usage_report/messages: expected JSON, got text/html (Log in)",
    )


@pytest.mark.parametrize(("status", "kind"), [(401, "authentication_error"), (403, "permission_error")])
async def test_401_and_403_name_the_source_to_check_never_the_key(
    server: BillingServer, status: int, kind: str
) -> None:
    server.replace(COST_PATH, json_reply(_error_body(kind, f"invalid x-api-key {KEY}"), status))
    error = await _error(server)
    assert (error.kind, error.status, error.permanent) == ("auth", status, True)
    assert str(error).startswith(f"claude-org: HTTP {status}: GET /v1/organizations/cost_report: ")
    assert str(error).endswith("check the credentials reference configured for source claude-org")
    assert len(server.requests_to(COST_PATH)) == 1


@pytest.mark.parametrize(
    ("result", "says"),
    [
        ({"currency": "USD"}, "data[0].results[0].amount: missing"),
        ({"amount": "12,5"}, "data[0].results[0].amount: not a decimal amount: '12,5'"),
        ({"amount": "NaN"}, "data[0].results[0].amount: not a finite amount: NaN"),
        ({"amount": "Infinity"}, "data[0].results[0].amount: not a finite amount"),
        ({"amount": "1", "currency": 5}, "data[0].results[0].currency: expected a currency code"),
        (
            {"amount": "1", "workspace_id": ["w"]},
            "data[0].results[0].workspace_id: expected a string or null",
        ),
        ("x", "data[0].results[0]: expected an object, got a string"),
    ],
)
async def test_a_cost_result_not_shaped_as_documented_is_a_decode_error_naming_the_field(
    server: BillingServer, result: object, says: str
) -> None:
    page = {
        "data": [
            {"starting_at": "2026-06-01T00:00:00Z", "ending_at": "2026-06-02T00:00:00Z", "results": [result]}
        ],
        "has_more": False,
        "next_page": None,
    }
    server.replace(COST_PATH, json_reply(page))
    error = await _error(server)
    assert error.kind == "decode"
    assert str(error).startswith(f"claude-org: decode: GET /v1/organizations/cost_report: {says}")


async def test_a_usage_result_missing_its_token_counts_is_a_decode_error(server: BillingServer) -> None:
    page = {
        "data": [{"starting_at": "2026-06-01T00:00:00Z", "results": [{"model": "m", "output_tokens": 3}]}],
        "has_more": False,
        "next_page": None,
    }
    server.replace(USAGE_PATH, json_reply(page))
    error = await _error(server)
    assert str(error) == (
        "claude-org: decode: GET /v1/organizations/usage_report/messages: "
        "data[0].results[0].uncached_input_tokens: missing"
    )


async def test_a_number_amount_is_accepted_too(server: BillingServer) -> None:
    page = {
        "data": [{"starting_at": "2026-06-01T00:00:00Z", "results": [{"amount": Decimal("10.5")}]}],
        "has_more": False,
        "next_page": None,
    }
    server.replace(COST_PATH, json_reply(page))
    fetch = await _fetch(server)
    assert [line.amount for line in fetch.lines] == [Decimal("0.105")]


def test_the_example_payloads_read_with_nulls(examples: Path) -> None:
    costs = json.loads((examples / "anthropic_cost_report.json").read_text(), parse_float=Decimal)
    lines = _cost_lines(costs, "a", date(2025, 8, 1), date(2025, 8, 3))
    assert [(line.amount, line.model, line.project, line.line_item, line.service_tier) for line in lines] == [
        (
            Decimal("1.2378912"),
            "claude-opus-5",
            "wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ",
            "Claude Opus 5 Usage - Input Tokens",
            "standard",
        ),
        (Decimal("0.5000"), None, None, "Code Execution Usage", None),
    ]
    usage = json.loads((examples / "anthropic_usage_report_messages.json").read_text(), parse_float=Decimal)
    rows = _usage_lines(usage, "a", date(2025, 8, 1), date(2025, 8, 3))
    assert [
        (u.model, u.project, u.input_tokens, u.cached_input_tokens, u.output_tokens, u.batch) for u in rows
    ] == [
        ("claude-opus-5", "wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ", 1500 + 200 + 1500, 200, 500, None),
        ("claude-sonnet-5", None, 98000 + 45000 + 12000, 45000, 21000, None),
    ]


async def test_optional_usage_fields_missing_or_null_count_as_zero(server: BillingServer) -> None:
    result = {
        "uncached_input_tokens": 7,
        "output_tokens": 3,
        "cache_creation": None,
        "model": None,
        "workspace_id": None,
        "service_tier": None,
    }
    page = {"data": [{"starting_at": "2026-06-01T00:00:00Z", "results": [result]}], "has_more": False}
    server.replace(USAGE_PATH, json_reply(page))
    fetch = await _fetch(server)
    assert [
        (u.model, u.project, u.input_tokens, u.cached_input_tokens, u.output_tokens, u.batch)
        for u in fetch.usage
    ] == [(None, None, 7, 0, 3, None)]
