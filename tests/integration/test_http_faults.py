"""Every fault from the sources issue, over real loopback sockets: what the user sees for each.

A `SourceClient` talks to the fault server with real timeouts and real sleeps (short
backoff so the suite stays quick). Each fault pins the error kind, status and text; a
canary secret sent in headers (and echoed back by hostile servers) appears in no error
text, traceback or log record.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from connectors.http import HttpPolicy, SourceClient, SourceError
from tests.faults.fault_server import Drip, FaultServer, Hang, Reply, Reset, html_page

CANARY = "sk-CANARY-5f1c2e9a7b3d4c6e8f0a"
CANARY_HEADER = "hdr-canary-Zq8wX3vR1tY6uP0o"
POLICY = HttpPolicy(connect_timeout=1.0, read_timeout=1.0, deadline=2.5, max_attempts=3,
                    backoff_base=0.05, backoff_cap=0.2, retry_after_cap=1.5)

QUOTA_BODY = {"error": {"type": "insufficient_quota", "message": "You exceeded your current quota, "
                        "please check your plan and billing details."}}
CHECK_CREDENTIALS = "check the credentials reference configured for source prom"
OVERLOADED = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
PROM_ERROR = {"status": "error", "errorType": "internal", "error": "query failed"}
TRUNCATED = Reply(200, b'{"status": "success", "data": {', content_type="application/json")

# path -> (behaviours, kind, status, text the user sees)
FAULTS: dict[str, tuple[tuple[Any, ...], str, int | None, str]] = {
    "/401": ((Reply(401, {"error": "Unauthorized"}),), "auth", 401,
             f"prom: HTTP 401: Unauthorized; {CHECK_CREDENTIALS}"),
    "/403": ((Reply(403, {"message": "forbidden: tenant t1"}),), "auth", 403,
             f"prom: HTTP 403: forbidden: tenant t1; {CHECK_CREDENTIALS}"),
    "/404": ((Reply(404, "404 page not found\n"),), "http", 404, "prom: HTTP 404: 404 page not found"),
    "/429": ((Reply(429, {"error": "rate limited"}),), "http", 429, "prom: HTTP 429: rate limited"),
    "/429-retry-after": ((Reply(429, {"error": "slow down"}, headers={"Retry-After": "1"}),), "http", 429,
                         "prom: HTTP 429: slow down"),
    "/429-quota": ((Reply(429, QUOTA_BODY),), "quota", 429,
                   "prom: HTTP 429: insufficient_quota: You exceeded your current quota, "
                   "please check your plan and billing details."),
    "/500": ((Reply(500, PROM_ERROR),), "http", 500, "prom: HTTP 500: internal: query failed"),
    "/502": ((Reply(502, ""),), "http", 502, "prom: HTTP 502: Bad Gateway"),
    "/503": ((Reply(503, "upstream connect error or disconnect/reset before headers"),), "http", 503,
             "prom: HTTP 503: upstream connect error or disconnect/reset before headers"),
    "/529": ((Reply(529, OVERLOADED),), "http", 529, "prom: HTTP 529: overloaded_error: Overloaded"),
    "/html": ((html_page(502, "502 Bad Gateway"),), "http", 502,
              "prom: HTTP 502: HTML error page: 502 Bad Gateway"),
    "/html-untitled": ((html_page(500, None),), "http", 500, "prom: HTTP 500: HTML error page"),
    "/malformed": ((TRUNCATED,), "decode", 200,
                   "prom: decode: malformed JSON: unexpected end of data: line 1 column 32 (char 31)"),
    "/wrong-type": ((html_page(200, "Sign in"),), "content_type", 200,
                    "prom: content_type: expected JSON, got text/html (Sign in)"),
    "/redirect": ((Reply(302, "", headers={"Location": "https://sso.example/login?next=%2Fapi&sig=abc"}),),
                  "http", 302,
                  "prom: HTTP 302: redirected to https://sso.example/login?*** (not followed: check url and "
                  "path_prefix)"),
    "/reset": ((Reset(),), "connect", None, "prom: connect: connection reset by the server"),
    "/timeout": ((Hang(),), "timeout", None, "prom: timeout: no answer within 1 s (read timeout)"),
    "/drip": ((Drip(interval=0.2),), "timeout", None,
              "prom: timeout: no complete answer within the 2.5 s deadline"),
}


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as fault_server:
        for path, (behaviours, *_rest) in FAULTS.items():
            fault_server.route(path, *behaviours)
        yield fault_server


@pytest.fixture
async def client(server: FaultServer) -> AsyncIterator[SourceClient]:
    secrets = {"Authorization": f"Bearer {CANARY}", "X-Canary": CANARY_HEADER}
    source_client = SourceClient("prom", server.url, headers={"X-Scope-OrgID": "t1"}, secret_headers=secrets,
                                 policy=POLICY)
    yield source_client
    await source_client.aclose()


async def _fail(call: Any) -> tuple[SourceError, float]:
    start = time.monotonic()
    with pytest.raises(SourceError) as caught:
        await call
    return caught.value, time.monotonic() - start


@pytest.mark.parametrize("path", list(FAULTS))
async def test_each_fault_shows_the_user_a_short_error_naming_source_and_status(client, server, path) -> None:
    _, kind, status, text = FAULTS[path]
    err, elapsed = await _fail(client.get_json(path))
    assert (err.kind, err.status, str(err)) == (kind, status, text)
    assert elapsed < POLICY.deadline + 2.0  # a bound: no fault outlives the deadline


@pytest.mark.parametrize(("path", "attempts"), [
    ("/401", 1), ("/403", 1), ("/404", 1), ("/429-quota", 1), ("/malformed", 1), ("/wrong-type", 1),
    ("/timeout", 1), ("/429", 3), ("/500", 3), ("/502", 3), ("/503", 3), ("/529", 3), ("/reset", 3),
])
async def test_only_transient_faults_are_retried(client, server, path, attempts) -> None:
    await _fail(client.get_json(path))
    assert len(server.requests_to(path)) == attempts


async def test_retry_after_is_waited_for_before_the_retry(client, server) -> None:
    server.route("/q", Reply(429, {"error": "slow down"}, headers={"Retry-After": "1"}),
                 Reply(200, {"ok": 1}))
    assert await client.get_json("/q") == {"ok": 1}
    first, second = server.requests_to("/q")
    assert second.time - first.time >= 1.0


async def test_retry_after_beyond_the_deadline_is_reported_at_once(server) -> None:
    server.route("/q", Reply(503, {"error": "maintenance"}, headers={"Retry-After": "3600"}))
    source_client = SourceClient("prom", server.url, policy=HttpPolicy(read_timeout=1.0, deadline=2.5))
    try:
        err, _ = await _fail(source_client.get_json("/q"))
    finally:
        await source_client.aclose()
    assert (str(err), err.retry_after) == ("prom: HTTP 503: maintenance", 3600.0)
    assert len(server.requests_to("/q")) == 1


async def test_fail_twice_then_succeed_returns_the_data(client, server) -> None:
    server.route("/q", Reply(503), Reset(), Reply(200, {"status": "success"}))
    assert await client.get_json("/q") == {"status": "success"}


async def test_a_refused_connection_names_host_and_reason() -> None:
    with FaultServer() as gone:
        url, port = gone.url, gone.port
    source_client = SourceClient("prom", url, policy=POLICY)
    try:
        err, _ = await _fail(source_client.get_json("/q"))
    finally:
        await source_client.aclose()
    assert str(err) == f"prom: connect: cannot connect to 127.0.0.1:{port}: connection refused"


async def test_a_dripping_source_ends_in_a_timeout_within_the_deadline(client, server) -> None:
    err, elapsed = await _fail(client.get_text("/drip"))
    assert err.kind == "timeout"
    assert elapsed < POLICY.deadline + 1.0


async def test_a_call_queued_behind_a_hung_one_on_the_same_endpoint_keeps_its_deadline(server) -> None:
    source_client = SourceClient("prom", server.url, policy=HttpPolicy(read_timeout=30.0, deadline=1.0))
    try:
        start = time.monotonic()
        results = await asyncio.gather(source_client.get_json("/timeout"), source_client.get_json("/timeout"),
                                       return_exceptions=True)
        elapsed = time.monotonic() - start
    finally:
        await source_client.aclose()
    assert [str(r) for r in results] == ["prom: timeout: no complete answer within the 1 s deadline"] * 2
    assert elapsed < 1.0 + 1.0


async def test_a_hung_source_does_not_delay_another(server) -> None:
    server.route("/ok", Reply(200, {"ok": 1}))
    hung = SourceClient("hung", server.url, policy=HttpPolicy(read_timeout=30, deadline=30))
    live = SourceClient("live", server.url, policy=POLICY)
    try:
        hanging = asyncio.create_task(hung.get_json("/timeout"))
        assert await live.get_json("/ok") == {"ok": 1}
        assert not hanging.done()
        hanging.cancel()
        with pytest.raises(asyncio.CancelledError):
            await hanging
    finally:
        await hung.aclose()
        await live.aclose()


async def test_breaker_fails_fast_once_a_source_keeps_failing(server) -> None:
    policy = HttpPolicy(read_timeout=1.0, deadline=2.5, max_attempts=1, breaker_failures=2)
    source_client = SourceClient("prom", server.url, policy=policy)
    try:
        for _ in range(2):
            await _fail(source_client.get_json("/503"))
        err, _ = await _fail(source_client.get_json("/503"))
    finally:
        await source_client.aclose()
    assert err.kind == "breaker_open" and err.permanent
    assert str(err).startswith("prom: breaker_open: not asked: 2 failed calls in a row, next try in 30 s")
    assert len(server.requests_to("/503")) == 2


# -- the canary: secrets never leave in text ---------------------------------------------------------


def _hostile_routes(server: FaultServer) -> list[str]:
    """Faults whose bodies echo the secrets back, as careless servers do."""
    routes = {
        "/echo-401": Reply(401, {"error": f"invalid api key {CANARY}", "header": CANARY_HEADER}),
        "/echo-500": Reply(500, f"Traceback: Authorization: Bearer {CANARY} X-Canary: {CANARY_HEADER}",
                           headers={"X-Echo-Authorization": f"Bearer {CANARY}", "X-Echo": CANARY_HEADER}),
        "/echo-html": html_page(502, f"Bad key {CANARY}"),
        "/echo-429": Reply(429, {"error": f"quota exhausted for {CANARY}"}),
        "/echo-redirect": Reply(302, "", headers={"Location": f"https://login.example/auth?key={CANARY}"}),
        "/echo-ctype": html_page(200, f"Login {CANARY_HEADER}"),
    }
    for path, behaviour in routes.items():
        server.route(path, behaviour)
    return list(routes)


def _texts(err: BaseException) -> list[str]:
    return [str(err), repr(err), "".join(traceback.format_exception(err)), *map(str, vars(err).values())]


async def test_canary_secret_appears_in_no_error_traceback_or_log(server, caplog) -> None:
    for logger in ("httpx", "httpcore", "connectors", "connectors.http"):
        caplog.set_level(logging.DEBUG, logger=logger)
    secret_headers = {"Authorization": f"Bearer {CANARY}", "X-Canary": CANARY_HEADER}
    paths = list(FAULTS) + _hostile_routes(server)
    errors: list[BaseException] = []
    for name, policy in (("prom", POLICY), ("breaker", HttpPolicy(read_timeout=1.0, deadline=2.5,
                                                                   max_attempts=1, breaker_failures=1))):
        source_client = SourceClient(name, server.url, secret_headers=secret_headers, policy=policy)
        try:
            for path in paths:
                try:
                    await source_client.get_json(path, params={"query": "up"})
                except SourceError as err:
                    errors.append(err)
            for method in ("POST", "DELETE"):
                try:
                    await source_client.send(method, "/echo-500", json={"k": "v"})
                except SourceError as err:
                    errors.append(err)
            assert CANARY not in source_client.describe_request("POST", "/x", json={"a": 1})
        finally:
            await source_client.aclose()
    assert any(e.kind == "breaker_open" for e in errors if isinstance(e, SourceError))
    assert len(errors) >= 2 * len(paths)
    assert all(r.headers.get("authorization") == f"Bearer {CANARY}" for r in server.requests)  # really sent
    for err in errors:
        assert err.__context__ is None and err.__cause__ is None, str(err)
        for text in _texts(err):
            assert CANARY not in text and CANARY_HEADER not in text, text
            assert "?query" not in text and "key=" not in text, text
    logged = [caplog.text, *(record.getMessage() for record in caplog.records)]
    assert caplog.records, "the httpx and httpcore loggers were captured"
    for text in logged:
        assert CANARY not in text and CANARY_HEADER not in text


async def test_a_url_query_never_reaches_httpx_logs(server, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="httpx")
    server.route("/q", Reply(200, {}))
    source_client = SourceClient("prom", server.url, policy=POLICY)
    try:
        await source_client.get_json("/q", params={"api_key": CANARY})
    finally:
        await source_client.aclose()
    requests = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert requests == [f'HTTP Request: GET {server.url}/q?*** "HTTP/1.1 200 OK"']
