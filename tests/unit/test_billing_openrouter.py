"""The OpenRouter billing connector against a loopback replay of `/api/v1/key`, `/credits`, `/activity`.

The server (tests/faults/billing_server.py) serves the documented shapes; the real
OpenRouter API cannot be reached here. `/activity` and `/credits` need a management key:
a 403 there degrades to what `/key` gives, with a note, instead of failing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest

from connectors import billing_openrouter
from connectors.billing_openrouter import ACTIVITY_PATH, CREDITS_PATH, KEY_ONLY_LINE_ITEM, KEY_PATH, Balance
from connectors.http import HttpPolicy
from tests.faults.billing_server import BillingServer, ConnectorCalls, Sleeps, client_for, json_reply
from tests.faults.fault_server import Drip, Hang, Reply, Reset, html_page

KEY = "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"
TODAY = date(2026, 9, 1)
NOW = datetime(2026, 9, 1, 12, 0)
START = TODAY - timedelta(days=30)
END = TODAY + timedelta(days=1)


@pytest.fixture
def server() -> Iterator[BillingServer]:
    with BillingServer(start=date(2026, 6, 1), days=92, today=TODAY) as s:
        yield s


CALLS = ConnectorCalls(billing_openrouter, KEY, "openrouter", START, END, NOW)
_fetch, _error = CALLS.fetch, CALLS.error


async def _balance(server: BillingServer) -> Balance:
    async with client_for(server, billing_openrouter, KEY, name="openrouter") as client:
        return await billing_openrouter.balance(client)


async def test_thirty_days_of_activity_sum_exactly_per_model_and_provider(server: BillingServer) -> None:
    fetch = await _fetch(server)
    assert (fetch.provider, fetch.source, fetch.pages, fetch.fetched_at) == (
        "openrouter",
        "openrouter",
        2,
        NOW,
    )
    assert len(fetch.lines) == server.expected_lines("openrouter") == 30 * 3
    assert sum((line.amount for line in fetch.lines), Decimal(0)) == server.expected_total("openrouter")
    assert Decimal("3.3333333333333333") in {line.amount for line in fetch.lines}
    first = [line for line in fetch.lines if line.day == TODAY - timedelta(days=1)]
    assert {(line.model, line.line_item) for line in first} == {
        ("openai/gpt-4o", "OpenAI"),
        ("anthropic/claude-sonnet-5", "Anthropic"),
        ("openai/gpt-4o", "Azure"),
    }
    # usage is per day and model: the two gpt-4o endpoints are summed
    day_usage = {u.model: u for u in fetch.usage if u.day == TODAY - timedelta(days=1)}
    assert (day_usage["openai/gpt-4o"].requests, day_usage["openai/gpt-4o"].input_tokens) == (3 + 5, 200)
    assert [r.path for r in server.requests] == [KEY_PATH, ACTIVITY_PATH]
    assert all(r.headers["authorization"] == f"Bearer {KEY}" and not r.query for r in server.requests)


async def test_only_days_inside_the_range_are_kept(server: BillingServer) -> None:
    start = TODAY - timedelta(days=3)
    fetch = await _fetch(server, start=start, end=TODAY)
    assert {line.day for line in fetch.lines} == {start, start + timedelta(days=1), start + timedelta(days=2)}
    assert sum((line.amount for line in fetch.lines), Decimal(0)) == server.expected_total(
        "openrouter", start, TODAY
    )


async def test_without_a_management_key_the_fetch_degrades_to_the_keys_spend_today(
    server: BillingServer,
) -> None:
    server.forbid(ACTIVITY_PATH)
    fetch = await _fetch(server)
    assert fetch.usage == () and fetch.pages == 1
    assert [(line.day, line.amount, line.model, line.line_item) for line in fetch.lines] == [
        (TODAY, Decimal("1.25"), None, KEY_ONLY_LINE_ITEM)
    ]
    assert "management key" in KEY_ONLY_LINE_ITEM
    # the fetch covers only today, whatever was asked: stored per-model days are never replaced by it
    assert (fetch.start, fetch.end) == (TODAY, TODAY + timedelta(days=1))


async def test_the_fetch_claims_only_the_days_activity_knows(server: BillingServer) -> None:
    fetch = await _fetch(server, start=TODAY - timedelta(days=60), end=TODAY + timedelta(days=1))
    assert (fetch.start, fetch.end) == (TODAY - timedelta(days=30), TODAY)  # last 30 completed days
    assert len(fetch.lines) == 90
    early = await _fetch(server, start=TODAY - timedelta(days=60), end=TODAY - timedelta(days=40))
    assert (early.start, early.end, early.lines) == (
        TODAY - timedelta(days=40),
        TODAY - timedelta(days=40),
        (),
    )


async def test_balance_reads_credits_or_degrades_to_the_keys_limit(server: BillingServer) -> None:
    full = await _balance(server)
    assert (full.remaining, full.used, full.total, full.basis) == (
        Decimal("74.75"),
        Decimal("25.75"),
        Decimal("100.5"),
        "credits",
    )
    server.forbid(CREDITS_PATH)
    limited = await _balance(server)
    assert (limited.remaining, limited.used, limited.total, limited.basis) == (
        Decimal("74.5"),
        Decimal("25.5"),
        Decimal("100"),
        "key",
    )
    assert "needs a management key" in limited.note


@pytest.mark.parametrize("path", [KEY_PATH, ACTIVITY_PATH])
async def test_a_401_is_an_auth_error_naming_the_source_never_degraded(
    server: BillingServer, path: str
) -> None:
    server.replace(
        path, json_reply({"error": {"code": 401, "message": f"No auth credentials found {KEY}"}}, 401)
    )
    error = await _error(server)
    assert (error.kind, error.status) == ("auth", 401)
    assert str(error).startswith(f"openrouter: HTTP 401: GET {path}: ")
    assert str(error).endswith("check the credentials reference configured for source openrouter")


async def test_a_403_on_key_itself_is_an_auth_error(server: BillingServer) -> None:
    server.forbid(KEY_PATH)
    error = await _error(server)
    assert (error.kind, error.status) == ("auth", 403)


async def test_a_429_with_retry_after_then_success(server: BillingServer) -> None:
    server.fault(
        ACTIVITY_PATH,
        Reply(429, {"error": {"code": 429, "message": "Rate limit exceeded"}}, headers={"Retry-After": "1"}),
    )
    sleeps = Sleeps()
    fetch = await _fetch(server, sleep=sleeps)
    assert len(fetch.lines) == 90 and sleeps.seconds == [1.0]


async def test_a_402_is_not_retried_and_says_what_the_provider_said(server: BillingServer) -> None:
    server.replace(
        ACTIVITY_PATH, json_reply({"error": {"code": 402, "message": "Insufficient credits"}}, 402)
    )
    error = await _error(server)
    assert (error.kind, error.status) == ("http", 402)
    assert str(error) == "openrouter: HTTP 402: GET /api/v1/activity: Insufficient credits"
    assert len(server.requests_to(ACTIVITY_PATH)) == 1


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_a_5xx_then_success_is_retried(server: BillingServer, status: int) -> None:
    server.fault(KEY_PATH, Reply(status, {"error": {"code": status, "message": "down"}}))
    assert len((await _fetch(server)).lines) == 90


async def test_a_reset_a_hang_and_a_drip(server: BillingServer) -> None:
    server.fault(ACTIVITY_PATH, Reset())
    assert len((await _fetch(server)).lines) == 90
    server.replace(ACTIVITY_PATH, Reset())
    assert (
        str(await _error(server))
        == "openrouter: connect: GET /api/v1/activity: connection reset by the server"
    )
    server.replace(ACTIVITY_PATH, Hang())
    assert str(await _error(server)) == (
        "openrouter: timeout: GET /api/v1/activity: no answer within 0.5 s (read timeout)"
    )
    server.replace(ACTIVITY_PATH, Drip(interval=0.1))
    error = await _error(server, policy=HttpPolicy(read_timeout=0.5, deadline=1.0))
    assert (
        str(error) == "openrouter: timeout: GET /api/v1/activity: no complete answer within the 1 s deadline"
    )


async def test_malformed_json_and_html(server: BillingServer) -> None:
    server.replace(
        ACTIVITY_PATH,
        Reply(200, '{"data": [{"date": "2026-08-31", "usage": 0.1', content_type="application/json"),
    )
    error = await _error(server)
    assert error.kind == "decode"
    assert str(error).startswith("openrouter: decode: GET /api/v1/activity: malformed JSON: ")
    server.replace(ACTIVITY_PATH, html_page(200, "Just a moment..."))
    error = await _error(server)
    assert str(error) == (
        "openrouter: content_type: GET /api/v1/activity: expected JSON, got text/html (Just a moment...)"
    )
    server.replace(ACTIVITY_PATH, Reply(200, "", content_type="application/json"))
    assert (
        str(await _error(server)) == "openrouter: decode: GET /api/v1/activity: empty answer, expected JSON"
    )


@pytest.mark.parametrize(
    ("item", "says"),
    [
        (
            {"date": "2026-08-31", "model": "m", "requests": 1, "prompt_tokens": 1, "completion_tokens": 1},
            "data[0].usage: missing",
        ),
        ({"date": "31/08/2026", "usage": 1}, "data[0].date: not a YYYY-MM-DD date"),
        (
            {"date": "2026-08-31", "usage": 1, "requests": -1, "prompt_tokens": 1, "completion_tokens": 1},
            "data[0].requests: expected a whole number >= 0",
        ),
        ({"date": "2026-08-31", "usage": True}, "data[0].usage: expected an amount, got a boolean"),
    ],
)
async def test_an_item_not_shaped_as_documented_is_a_decode_error(
    server: BillingServer, item: dict[str, object], says: str
) -> None:
    server.replace(ACTIVITY_PATH, json_reply({"data": [item]}))
    error = await _error(server)
    assert str(error).startswith(f"openrouter: decode: GET /api/v1/activity: {says}")


async def test_a_key_answer_without_data_is_a_decode_error(server: BillingServer) -> None:
    server.replace(KEY_PATH, json_reply({"label": "x"}))
    assert (
        str(await _error(server)) == "openrouter: decode: GET /api/v1/key: data: expected an object, got null"
    )
