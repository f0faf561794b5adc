"""The HTTP policy: which failures are retried, how long it waits, the breaker, one request per endpoint.

Every test runs against the real loopback fault server; sleeping, jitter and the clock
are injected, so nothing here depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import pickle
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from connectors.http import HttpPolicy, SourceClient, SourceError
from connectors.http_text import Redactor, retry_after_seconds, short_reason
from tests.faults.fault_server import FaultServer, Hang, Reply, Reset

SECRET = "sk-CANARY-unit-0123456789abcdef"


class FakeClock:
    """An injected clock: sleeping records the delay and moves time on without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as fault_server:
        yield fault_server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make_client(server: FaultServer, clock: FakeClock) -> AsyncIterator[Any]:
    clients: list[SourceClient] = []

    def make(jitter: float = 0.5, **policy: Any) -> SourceClient:
        client = SourceClient("prom", server.url, secret_headers={"Authorization": f"Bearer {SECRET}"},
                              policy=HttpPolicy(**{"deadline": 60.0, **policy}), sleep=clock.sleep,
                              random=lambda: jitter, monotonic=clock.monotonic)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def _error(call: Any) -> SourceError:
    with pytest.raises(SourceError) as caught:
        await call
    return caught.value


# -- retries and backoff -------------------------------------------------------------------


async def test_get_retries_a_503_twice_then_returns_the_answer(server, make_client, clock) -> None:
    server.route("/q", Reply(503), Reply(503), Reply(200, {"ok": True}))
    assert await make_client().get_json("/q") == {"ok": True}
    assert len(server.requests_to("/q")) == 3
    assert clock.sleeps == [0.5 * 0.5, 0.5 * 1.0]  # random() * base * 2**retry


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 529])
async def test_retryable_status_is_tried_max_attempts_times_then_raised(server, make_client, clock,
                                                                        status) -> None:
    server.route("/q", Reply(status, {"error": "busy"}))
    err = await _error(make_client().get_json("/q"))
    assert (err.kind, err.status, err.permanent) == ("http", status, False)
    assert len(server.requests_to("/q")) == 3
    assert len(clock.sleeps) == 2


async def test_backoff_is_full_jitter_of_a_capped_exponential(server, make_client, clock) -> None:
    server.route("/q", Reply(500))
    await _error(make_client(jitter=1.0, max_attempts=6, backoff_base=1.0, backoff_cap=3.0).get_json("/q"))
    assert clock.sleeps == [1.0, 2.0, 3.0, 3.0, 3.0]


async def test_full_jitter_can_retry_at_once(server, make_client, clock) -> None:
    server.route("/q", Reply(500), Reply(200, {}))
    await make_client(jitter=0.0).get_json("/q")
    assert clock.sleeps == [0.0]


@pytest.mark.parametrize(("headers", "floor"), [
    ({"Retry-After": "4"}, 4.0),
    ({"retry-after-ms": "1500"}, 1.5),
    ({"retry-after-ms": "2500", "Retry-After": "9"}, 2.5),
])
async def test_retry_after_is_a_floor_under_the_jittered_backoff(server, make_client, clock, headers,
                                                                 floor) -> None:
    server.route("/q", Reply(429, {"error": "rate limited"}, headers=headers), Reply(200, {}))
    await make_client(jitter=0.5).get_json("/q")
    assert clock.sleeps == [floor]


async def test_retry_after_as_http_date_is_a_floor(server, make_client, clock) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    server.route("/q", Reply(503, headers={"Retry-After": when}), Reply(200, {}))
    await make_client().get_json("/q")
    assert len(clock.sleeps) == 1 and 15.0 <= clock.sleeps[0] <= 20.0


async def test_retry_after_below_the_jitter_leaves_the_jitter(server, make_client, clock) -> None:
    server.route("/q", Reply(429, headers={"Retry-After": "0"}), Reply(429, headers={"Retry-After": "0"}),
                 Reply(200, {}))
    await make_client(jitter=1.0).get_json("/q")
    assert clock.sleeps == [0.5, 1.0]


async def test_retry_after_is_capped(server, make_client, clock) -> None:
    server.route("/q", Reply(429, headers={"Retry-After": "3600"}), Reply(200, {}))
    await make_client(retry_after_cap=5.0).get_json("/q")
    assert clock.sleeps == [5.0]


async def test_retry_after_beyond_the_deadline_stops_at_once(server, make_client, clock) -> None:
    server.route("/q", Reply(503, {"error": "maintenance"}, headers={"Retry-After": "120"}))
    err = await _error(make_client(deadline=10.0, retry_after_cap=300.0).get_json("/q"))
    assert (err.status, err.retry_after) == (503, 120.0)
    assert clock.sleeps == []
    assert len(server.requests_to("/q")) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_client_errors_are_not_retried(server, make_client, clock, status) -> None:
    server.route("/q", Reply(status, {"error": "no"}))
    err = await _error(make_client().get_json("/q"))
    assert err.status == status
    assert len(server.requests_to("/q")) == 1 and clock.sleeps == []


@pytest.mark.parametrize("body", [
    {"error": {"type": "insufficient_quota", "message": "You exceeded your current quota"}},
    {"error": "Monthly spend limit reached for this key"},
    {"error": {"message": "Budget has been exceeded! Current cost: 12.5, Max budget: 10.0"}},
    "Your credit balance is too low",
])
async def test_quota_exhausted_429_is_permanent_and_not_retried(server, make_client, clock, body) -> None:
    server.route("/q", Reply(429, body, headers={"Retry-After": "1"}))
    err = await _error(make_client().get_json("/q"))
    assert (err.kind, err.status, err.permanent) == ("quota", 429, True)
    assert len(server.requests_to("/q")) == 1 and clock.sleeps == []


async def test_quota_exhausted_said_in_a_header_is_permanent(server, make_client) -> None:
    server.route("/q", Reply(429, "", headers={"X-Error-Code": "billing_hard_limit_reached"}))
    err = await _error(make_client().get_json("/q"))
    assert err.kind == "quota"


async def test_a_rate_limit_429_is_not_mistaken_for_quota(server, make_client) -> None:
    server.route("/q", Reply(429, {"error": {"type": "rate_limit_error", "message": "Too many requests"}},
                             headers={"x-ratelimit-remaining-requests": "0", "Via": "1.1 billing-gw"}))
    err = await _error(make_client(max_attempts=1).get_json("/q"))
    assert (err.kind, err.permanent) == ("http", False)


async def test_auth_failure_is_permanent_and_names_the_credentials_reference(server, make_client) -> None:
    server.route("/q", Reply(401, {"error": "invalid token"}))
    err = await _error(make_client().get_json("/q"))
    assert (err.kind, err.permanent) == ("auth", True)
    assert "credentials reference" in err.reason and "source prom" in err.reason


async def test_post_is_sent_once_even_on_503(server, make_client, clock) -> None:
    server.route("/api/v2/silences", Reply(503))
    err = await _error(make_client().send("POST", "/api/v2/silences", json={"x": 1}))
    assert err.status == 503
    assert len(server.requests_to("/api/v2/silences")) == 1 and clock.sleeps == []


async def test_send_marked_idempotent_is_retried(server, make_client) -> None:
    server.route("/api/v2/silences", Reply(503), Reply(200, {"silenceID": "abc"}))
    response = await make_client().send("POST", "/api/v2/silences", json={"x": 1}, idempotent=True)
    assert response.json() == {"silenceID": "abc"}
    assert [r.json() for r in server.requests_to("/api/v2/silences")] == [{"x": 1}, {"x": 1}]


async def test_a_reset_connection_is_retried(server, make_client) -> None:
    server.route("/q", Reset(), Reply(200, {"ok": 1}))
    assert await make_client().get_json("/q") == {"ok": 1}
    assert len(server.requests_to("/q")) == 2


async def test_a_refused_connection_is_retried_then_reported(make_client, clock) -> None:
    with FaultServer() as gone:
        url = gone.url
    client = SourceClient("prom", url, policy=HttpPolicy(deadline=60.0), sleep=clock.sleep,
                          random=lambda: 0.5, monotonic=clock.monotonic)
    try:
        err = await _error(client.get_json("/q"))
    finally:
        await client.aclose()
    assert err.kind == "connect" and "connection refused" in str(err)
    assert len(clock.sleeps) == 2


@pytest.mark.parametrize(("exception", "kind", "attempts"), [
    (httpx.ConnectTimeout("connect timed out"), "connect", 3),
    (httpx.ConnectError("refused"), "connect", 3),
    (httpx.ReadError("reset"), "connect", 3),
    (httpx.RemoteProtocolError("closed"), "connect", 3),
    (httpx.ReadTimeout("read timed out"), "timeout", 1),
    (httpx.WriteTimeout("write timed out"), "timeout", 1),
    (httpx.PoolTimeout("pool"), "timeout", 1),
    (httpx.UnsupportedProtocol("ftp"), "connect", 1),
])
async def test_transport_failures_map_to_a_kind_and_only_connection_errors_retry(clock, exception, kind,
                                                                                 attempts) -> None:
    seen: list[httpx.Request] = []

    def fail(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        raise exception

    client = SourceClient("prom", "http://127.0.0.1:9", transport=httpx.MockTransport(fail),
                          sleep=clock.sleep, random=lambda: 0.5, monotonic=clock.monotonic)
    err = await _error(client.get_json("/q", params={"api_key": SECRET}))
    await client.aclose()
    assert (err.kind, len(seen)) == (kind, attempts)
    assert SECRET not in str(err) and "api_key" not in str(err)


# -- circuit breaker ----------------------------------------------------------------------


async def test_breaker_opens_after_consecutive_failures_and_sends_nothing(server, make_client, clock) -> None:
    server.route("/q", Reply(500, {"error": "boom"}))
    client = make_client(max_attempts=1, breaker_failures=3, breaker_open_seconds=30.0)
    for _ in range(3):
        assert (await _error(client.get_json("/q"))).kind == "http"
    err = await _error(client.get_json("/q"))
    assert (err.kind, err.permanent) == ("breaker_open", True)
    assert "boom" in err.reason
    assert len(server.requests_to("/q")) == 3


async def test_breaker_half_open_probe_closes_it_on_success(server, make_client, clock) -> None:
    server.route("/q", Reply(500), Reply(500), Reply(500), Reply(200, {"ok": 1}))
    client = make_client(max_attempts=3, breaker_failures=1, breaker_open_seconds=30.0)
    await _error(client.get_json("/q"))  # one call, three attempts: one failed call
    assert client.breaker.state == "open"
    clock.now += 29.0
    assert (await _error(client.get_json("/q"))).kind == "breaker_open"
    clock.now += 1.0
    assert await client.get_json("/q") == {"ok": 1}
    assert client.breaker.state == "closed"


async def test_breaker_failed_probe_opens_it_again_for_a_full_period(server, make_client, clock) -> None:
    server.route("/q", Reply(502))
    client = make_client(max_attempts=3, breaker_failures=1, breaker_open_seconds=30.0)
    await _error(client.get_json("/q"))
    sent = len(server.requests_to("/q"))
    clock.now += 30.0
    await _error(client.get_json("/q"))
    assert len(server.requests_to("/q")) == sent + 1  # the probe is a single request
    clock.now += 29.0
    assert (await _error(client.get_json("/q"))).kind == "breaker_open"


async def test_breaker_lets_one_probe_through_at_a_time(server, make_client, clock) -> None:
    server.route("/q", Reply(500))
    client = make_client(max_attempts=1, breaker_failures=1, breaker_open_seconds=30.0)
    await _error(client.get_json("/q"))
    server.route("/q", Reply(200, {"ok": 1}, delay=0.3))
    clock.now += 30.0
    probe = asyncio.create_task(client.get_json("/q"))
    await asyncio.sleep(0)  # the probe task runs until it waits on the network: it holds the probe slot
    assert (await _error(client.get_json("/other"))).kind == "breaker_open"
    assert await probe == {"ok": 1}


async def test_client_errors_do_not_open_the_breaker(server, make_client) -> None:
    server.route("/q", Reply(404, {"error": "no such endpoint"}))
    client = make_client(breaker_failures=2)
    for _ in range(4):
        assert (await _error(client.get_json("/q"))).status == 404
    assert client.breaker.state == "closed"


# -- concurrency --------------------------------------------------------------------------


async def test_one_request_in_flight_per_endpoint_while_endpoints_overlap(server, make_client) -> None:
    server.route("/a", Reply(200, {"a": 1}, delay=0.15))
    server.route("/b", Reply(200, {"b": 1}, delay=0.15))
    client = make_client()
    calls = [client.get_json(path) for path in ("/a", "/b", "/a", "/b", "/a", "/b")]
    await asyncio.gather(*calls)
    assert server.max_in_flight_by_path == {"/a": 1, "/b": 1}
    assert server.max_in_flight == 2
    assert client._endpoints == {}  # locks of finished endpoints are not kept


async def test_two_sources_on_one_endpoint_run_concurrently(server, make_client) -> None:
    server.route("/a", Reply(200, {"a": 1}, delay=0.15))
    first, second = make_client(), make_client()
    await asyncio.gather(first.get_json("/a"), second.get_json("/a"))
    assert server.max_in_flight_by_path["/a"] == 2


async def test_a_hung_endpoint_does_not_hold_up_another(server, make_client) -> None:
    server.route("/hang", Hang())
    server.route("/ok", Reply(200, {"ok": 1}))
    client = make_client(read_timeout=30.0)
    hung = asyncio.create_task(client.get_json("/hang"))
    assert await client.get_json("/ok") == {"ok": 1}
    hung.cancel()
    with pytest.raises(asyncio.CancelledError):
        await hung


# -- text the user sees -------------------------------------------------------------------


def test_error_text_names_source_and_status_or_kind() -> None:
    assert str(SourceError("prom", "http", "boom", status=500)) == "prom: HTTP 500: boom"
    assert str(SourceError("prom", "timeout", "no answer")) == "prom: timeout: no answer"
    assert str(SourceError("prom", "decode", "malformed JSON", status=200)) == "prom: decode: malformed JSON"


def test_error_survives_copy_and_pickle_with_its_fields() -> None:
    err = SourceError("prom", "http", "busy", status=503, retry_after=2.0)
    for twin in (copy.copy(err), pickle.loads(pickle.dumps(err))):
        assert (str(twin), twin.kind, twin.status, twin.retry_after) == (str(err), "http", 503, 2.0)


@pytest.mark.parametrize(("body", "content_type", "expected"), [
    (b'{"status":"error","errorType":"bad_data","error":"parse error at char 3"}', "application/json",
     "bad_data: parse error at char 3"),
    (b'{"error":{"type":"overloaded_error","message":"Overloaded"}}', "application/json",
     "overloaded_error: Overloaded"),
    (b'{"message":"silence not found"}', "application/json", "silence not found"),
    (b'{"detail":[{"msg":"field required"}]}', "application/json", "field required"),
    (b'"silence 1 not found"', "application/json", "silence 1 not found"),
    (b"<html><head><title>502 Bad Gateway</title></head></html>", "text/html",
     "HTML error page: 502 Bad Gateway"),
    (b"<!DOCTYPE html><html><body>oops</body></html>", "text/plain", "HTML error page"),
    ("line one\r\n\tline\x00two\x1b[31m red\x1b]0;title\x07 \u202eevil".encode(), "text/plain",
     "line one line two red evil"),
    (b"", "text/plain", "Service Unavailable"),
])
def test_short_reason_from_each_kind_of_body(body: bytes, content_type: str, expected: str) -> None:
    assert short_reason(body, content_type, Redactor(), "Service Unavailable") == expected


def test_short_reason_masks_secrets_and_query_strings_and_is_capped() -> None:
    body = (f"bad key {SECRET} for Bearer {SECRET}; see https://x.example/p?api_key=abc&x=1 "
            "token ghp_abcdefghijklmnop1234 " + "x" * 500).encode()
    reason = short_reason(body, "text/plain", Redactor([f"Bearer {SECRET}"]), "")
    assert SECRET not in reason and "api_key" not in reason and "ghp_" not in reason
    assert "https://x.example/p?***" in reason
    assert len(reason) <= 200


def test_short_reason_keeps_a_uuid_readable() -> None:
    reason = short_reason(b'{"error":"silence 3f8c1c4e-1a2b-4c3d-8e9f-0123456789ab not found"}',
                          "application/json", Redactor(), "")
    assert reason == "silence 3f8c1c4e-1a2b-4c3d-8e9f-0123456789ab not found"


def test_basic_auth_password_is_masked_on_its_own() -> None:
    redact = Redactor(["Basic dXNlcjpodW50ZXIyLXBhc3N3b3Jk"])  # user:hunter2-password
    assert redact("echo hunter2-password") == "echo ***"


def test_retry_after_headers_are_read() -> None:
    assert retry_after_seconds({"retry-after": "7"}) == 7.0
    assert retry_after_seconds({"retry-after-ms": "250"}) == 0.25
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None


def test_describe_request_shows_the_exact_request_with_secrets_masked(server) -> None:
    client = SourceClient("am", server.url, path_prefix="/am", headers={"X-Scope-OrgID": "team-a"},
                          secret_headers={"Authorization": f"Bearer {SECRET}", "X-Api-Key": SECRET})
    text = client.describe_request("post", "/api/v2/silences", json={"comment": "deploy"},
                                   params={"dry": "1"})
    assert text.splitlines()[0] == f"POST {server.url}/am/api/v2/silences?dry=1"
    assert "authorization: ***" in text and "x-api-key: ***" in text and "x-scope-orgid: team-a" in text
    assert '"comment": "deploy"' in text
    assert SECRET not in text


def test_for_source_takes_timeout_prefix_and_headers_from_config() -> None:
    from console.config import PrometheusSource

    source = PrometheusSource(name="mimir", url="http://127.0.0.1:9009", path_prefix="/prometheus",
                              timeout_seconds=2, headers={"X-Scope-OrgID": "t1"})
    client = SourceClient.for_source(source, {"Authorization": f"Bearer {SECRET}"})
    assert (client.policy.read_timeout, client.policy.deadline, client.policy.connect_timeout) == (2, 6, 3.0)
    text = client.describe_request("GET", "/api/v1/query", params={"query": "up"})
    assert text.splitlines()[0] == "GET http://127.0.0.1:9009/prometheus/api/v1/query?query=up"


def test_httpx_log_lines_lose_their_query_even_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    import connectors.http  # noqa: F401  (installs the filter)

    caplog.set_level(logging.DEBUG, logger="httpx")
    logging.getLogger("httpx").info('HTTP Request: %s %s "%s"', "GET",
                                    "http://h:1/api?api_key=sk-secretvalue12345&q=1", "HTTP/1.1 200 OK")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ['HTTP Request: GET http://h:1/api?*** "HTTP/1.1 200 OK"']


def test_httpx_loggers_are_quiet_by_default() -> None:
    import connectors.http  # noqa: F401

    assert logging.getLogger("httpx").level == logging.WARNING
    assert logging.getLogger("httpcore").level == logging.WARNING
