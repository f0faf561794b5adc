"""SourceClient.post_form: a read sent as a url-encoded form (PromQL too long for a URL), retried."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qsl

import pytest

from connectors.http import HttpPolicy, SourceClient, SourceError
from tests.faults.fault_server import FaultServer, Reply

SECRET = "sk-CANARY-form-0123456789abcdef"


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as fault_server:
        yield fault_server


def client(server: FaultServer, sleeps: list[float], prefix: str = "/prefix") -> SourceClient:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    return SourceClient("prom", server.url, path_prefix=prefix,
                        secret_headers={"Authorization": f"Bearer {SECRET}"},
                        policy=HttpPolicy(deadline=60.0), sleep=sleep, random=lambda: 0.5)


async def test_post_form_sends_the_fields_in_the_body_and_is_retried_on_503(server: FaultServer) -> None:
    server.route("/prefix/api/v1/query", Reply(503), Reply(200, {"status": "success"}))
    sleeps: list[float] = []
    query = 'label_replace(sum(increase(x{job="gw"}[5m])), "q", "0|good|5m", "", "") or ' * 200
    async with client(server, sleeps) as http:
        assert await http.post_form("/api/v1/query", {"query": query, "time": "1.000"}) == {
            "status": "success"}
    first, second = server.requests_to("/prefix/api/v1/query")
    assert (first.method, second.method, len(sleeps)) == ("POST", "POST", 1)
    assert second.query == () and dict(parse_qsl(second.body.decode())) == {"query": query, "time": "1.000"}
    assert second.headers["content-type"] == "application/x-www-form-urlencoded"
    assert second.headers["authorization"] == f"Bearer {SECRET}"


async def test_post_form_errors_carry_the_api_error_without_the_secret(server: FaultServer) -> None:
    server.route("/api/v1/query", Reply(400, {"status": "error", "errorType": "bad_data",
                                              "error": f"parse error near {SECRET}"}))
    async with client(server, [], prefix="") as http:
        with pytest.raises(SourceError) as caught:
            await http.post_form("/api/v1/query", {"query": "rate(("})
    assert caught.value.status == 400 and caught.value.reason.startswith("bad_data: parse error")
    assert SECRET not in str(caught.value)
