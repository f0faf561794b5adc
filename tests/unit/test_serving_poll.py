"""ScrapePoller: successive polls keep the previous read for rates; failures raise and keep it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import httpx
import pytest

from connectors.http import HttpPolicy, SourceClient, SourceError
from console.config import Config, ScrapeSource
from console.serving import ServingSnapshot
from console.serving_poll import ScrapePoller
from console.serving_poll import make_poller as make_transport_poller
from console.source_setup import _factory as hub_factory

T0 = datetime(2026, 3, 1, 12, 0, 0)


def _body(stop: float, running: float) -> str:
    return (f'vllm:request_success_total{{finished_reason="stop",model_name="m"}} {stop}\n'
            f'vllm:num_requests_running{{model_name="m"}} {running}\n')


def _poller(bodies: list[str | int], seen: list[httpx.Request] | None = None) -> ScrapePoller:
    answers: Iterator[str | int] = iter(bodies)
    now = [T0 - timedelta(seconds=15)]

    def answer(request: httpx.Request) -> httpx.Response:
        """Each request is answered 15 s after the previous one."""
        if seen is not None:
            seen.append(request)
        now[0] += timedelta(seconds=15)
        body = next(answers)
        if isinstance(body, int):
            return httpx.Response(body, text="upstream down")
        return httpx.Response(200, text=body, headers={"content-type": "text/plain; version=0.0.4"})

    source = ScrapeSource(name="vllm-a", url="http://127.0.0.1:9", refresh_seconds=15)
    client = SourceClient("vllm-a", "http://127.0.0.1:9", transport=httpx.MockTransport(answer),
                          policy=HttpPolicy(max_attempts=1))
    return ScrapePoller(source, client, clock=lambda: now[0])


async def test_first_poll_has_no_rates_and_the_second_has_them() -> None:
    poller = _poller([_body(100, 4), _body(130, 6)])
    first = await poller.poll()
    assert isinstance(first, ServingSnapshot) and first.window_s is None
    assert first.models[0].requests_per_s is None and first.models[0].running == 4
    second = await poller.poll()
    assert second.window_s == 15 and second.models[0].requests_per_s == pytest.approx(2.0)
    assert second.models[0].running == 6
    await poller.aclose()


async def test_a_failed_poll_raises_and_the_next_good_one_averages_over_the_whole_gap() -> None:
    poller = _poller([_body(100, 4), 503, _body(190, 1)])
    await poller.poll()
    with pytest.raises(SourceError) as caught:
        await poller.poll()
    assert caught.value.status == 503 and not caught.value.permanent
    after = await poller.poll()
    assert after.window_s == 30 and after.models[0].requests_per_s == pytest.approx(90 / 30)
    await poller.aclose()


async def test_a_body_that_does_not_parse_fails_the_poll_as_decode() -> None:
    poller = _poller(["vllm:num_requests_running{model_name=m} 1\n"])
    with pytest.raises(SourceError) as caught:
        await poller.poll()
    assert caught.value.kind == "decode" and "line 1" in str(caught.value)
    await poller.aclose()


async def test_make_poller_wires_the_source_path_prefix_metrics_path_and_secret_headers() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text=_body(1, 1))

    source = ScrapeSource(name="gw", url="http://127.0.0.1:9", path_prefix="/proxy", metrics_path="/stats",
                          kind="litellm", refresh_seconds=30)
    hub_made = hub_factory(source)(source, Config(), {})  # what the hub builds
    assert isinstance(hub_made, ScrapePoller)
    await hub_made.aclose()
    poller = make_transport_poller(source, Config(), {"Authorization": "Bearer sk-canary"},
                                   transport=httpx.MockTransport(answer))
    assert (poller.name, poller.kind, poller.interval) == ("gw", "scrape", 30)
    assert poller.health.status().state == "stale"  # not read yet
    snap = await poller.poll()
    assert seen[0].url.path == "/proxy/stats" and seen[0].headers["authorization"] == "Bearer sk-canary"
    assert snap.kind == "litellm" and any("no LiteLLM" in note for note in snap.notes)
    assert "sk-canary" not in repr(snap)
    await poller.aclose()
