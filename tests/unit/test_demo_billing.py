"""The demo's billing APIs: real connectors read them, amounts are the traffic at the table, one gap."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors import billing_anthropic, billing_openai
from connectors.http import SourceClient, SourceError
from console.billing import BillingFetch
from console.billing_worker import BillingWorker
from console.cache.store import Cache
from console.demo import generate
from console.demo.billing_api import ENV_KEYS
from console.demo.billing_ledger import DELAY, PRICE_CHANGE_MODEL, PRICE_CHANGE_OUTPUT
from console.demo.clock import SimClock
from console.demo.config import demo_config
from console.demo.endpoints import DemoEndpoints, EndpointUrls
from console.demo.simulator import Simulator, to_ns
from console.demo.traffic import MODELS
from console.pricing import PriceTable, normalise_model
from console.reconcile import reconcile

START = datetime(2026, 3, 10, 9, 30, 0)
HISTORY = timedelta(days=4)
FIRST = START - HISTORY
FIRST_DAY = FIRST.date()
END_DAY = START.date() + timedelta(days=1)
RATE = 0.03
CONNECTORS: dict[str, Any] = {"openai": billing_openai, "anthropic": billing_anthropic}
RESPONSE = {m[1]: m[2] for m in MODELS}


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def served() -> Iterator[tuple[DemoEndpoints, Clock]]:
    clock = Clock()
    plan = generate.TrafficPlan(seed=7, rate=RATE)
    endpoints = DemoEndpoints(plan, START, clock, history_start=FIRST)
    endpoints.start()
    yield endpoints, clock
    endpoints.close()


def urls(endpoints: DemoEndpoints) -> EndpointUrls:
    assert endpoints.urls is not None
    return endpoints.urls


def fetch(endpoints: DemoEndpoints, provider: str, key: str | None = None,
          start: date = FIRST_DAY, end: date = END_DAY) -> BillingFetch:
    """A fetch through the real connector, with the demo's own key (from its environment)."""
    conn = CONNECTORS[provider]
    base = urls(endpoints).openai_billing if provider == "openai" else urls(endpoints).anthropic_billing
    assert base is not None
    secret = conn.secret_headers(key if key is not None else os.environ[ENV_KEYS[provider]])

    async def go() -> BillingFetch:
        client = SourceClient(f"demo-{provider}", base, headers=conn.HEADERS, secret_headers=secret)
        try:
            got: BillingFetch = await conn.fetch(client, f"demo-{provider}", start, end)
            return got
        finally:
            await client.aclose()

    return asyncio.run(go())


def expected(until: datetime, first: datetime = FIRST) -> dict[tuple[str, date, str], Decimal]:
    """(provider, day, response model) -> dollars: every openai/anthropic call with usage started in
    [first, until), priced here at the shipped table (haiku's output at the changed price from the
    ledger's date), independently of the ledger's code."""
    table = PriceTable.load()
    plan = generate.TrafficPlan(seed=7, rate=RATE)
    model = plan.model()
    since = START.date() - timedelta(days=3)
    out: dict[tuple[str, date, str], Decimal] = {}
    for index in range(generate.chunk_of(to_ns(first)), generate.chunk_of(to_ns(until))):
        for _, span in generate.chunk_spans(plan, model, index):
            a = {kv["key"]: next(iter(kv["value"].values())) for kv in span["attributes"]}
            provider = a.get("gen_ai.provider.name") or a.get("gen_ai.system")
            name = a["gen_ai.request.model"]
            if provider not in ("openai", "anthropic") or name == "acme-finetune-v2":
                continue
            tin = int(a.get("gen_ai.usage.input_tokens") or a.get("gen_ai.usage.prompt_tokens") or 0)
            tout = int(a.get("gen_ai.usage.output_tokens") or a.get("gen_ai.usage.completion_tokens") or 0)
            cached = int(a.get("gen_ai.usage.cache_read.input_tokens") or 0)
            if not tin and not tout:
                continue
            day = datetime.utcfromtimestamp(int(span["startTimeUnixNano"]) // 10**9).date()
            price = table.lookup(provider, name, day)
            assert price is not None
            cache_price = price.cache_read if price.cache_read is not None else price.input
            out_price = (PRICE_CHANGE_OUTPUT if name == PRICE_CHANGE_MODEL and day >= since
                         else Decimal(repr(price.output)))
            cost = (Decimal(repr(price.input)) * (tin - cached) + Decimal(repr(cache_price)) * cached
                    + out_price * tout) * Decimal("0.000001")
            key = (provider, day, RESPONSE[name])
            out[key] = out.get(key, Decimal(0)) + cost
    return out


def billed(got: BillingFetch) -> dict[tuple[str, date, str], Decimal]:
    out: dict[tuple[str, date, str], Decimal] = {}
    for line in got.lines:
        assert line.model is not None and line.currency == "USD"
        key = (line.provider, line.day, line.model)
        out[key] = out.get(key, Decimal(0)) + line.amount
    return out


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_pages_read_through_the_real_connector_are_the_traffic_at_the_table(
        served: tuple[DemoEndpoints, Clock], provider: str) -> None:
    endpoints, _ = served
    got = fetch(endpoints, provider)
    assert got.pages == 6  # 5 days in pages of 2 buckets, costs and usage: 3 + 3
    want = {k: v for k, v in expected(START - DELAY).items() if k[0] == provider}
    assert want and billed(got) == want  # exact Decimal, every day and model
    assert {u.project for u in got.usage} == {"support-chatbot", "search-summarizer", "code-assistant"}
    # the usage report counts the same tokens the costs bill
    assert sum(u.output_tokens for u in got.usage) > 0
    assert all(u.batch in (False, None) for u in got.usage)


def test_the_latest_day_is_delayed_and_fills_in_as_the_clock_moves(
        served: tuple[DemoEndpoints, Clock]) -> None:
    endpoints, clock = served
    today = START.date()
    first = fetch(endpoints, "openai", start=today, end=today + timedelta(days=1))
    day_total = sum(billed(first).values())
    on_time = sum(v for k, v in expected(START).items() if k[0] == "openai" and k[1] == today)
    delayed = sum(v for k, v in expected(START - DELAY).items() if k[0] == "openai" and k[1] == today)
    assert day_total == delayed < on_time  # the last hour is not billed yet
    clock.now = START + DELAY
    later = sum(billed(fetch(endpoints, "openai", start=today, end=today + timedelta(days=1))).values())
    assert later == on_time  # an hour on, the hour before START is in


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_wrong_admin_key_gets_401(served: tuple[DemoEndpoints, Clock], provider: str) -> None:
    endpoints, _ = served
    with pytest.raises(SourceError) as err:
        fetch(endpoints, provider, key="demo-admin-not-the-key")
    assert err.value.status == 401 and err.value.kind == "auth"
    base = urls(endpoints).openai_billing if provider == "openai" else urls(endpoints).anthropic_billing
    path = billing_openai.COSTS_PATH if provider == "openai" else billing_anthropic.COST_PATH
    assert httpx.get(f"{base}{path}", params={"start_time": "0", "starting_at": "2026-03-01T00:00:00Z"},
                     timeout=10).status_code == 401


def test_demo_config_lists_the_billing_sources_with_env_refs(served: tuple[DemoEndpoints, Clock],
                                                            tmp_path: Path) -> None:
    endpoints, _ = served
    config = demo_config(tmp_path / "c.duckdb", urls(endpoints))
    sources = config.sources.billing()
    assert [(s.provider, s.name) for s in sources] == [("openai", "demo-openai-billing"),
                                                       ("anthropic", "demo-anthropic-billing")]
    for s in sources:
        assert s.admin_key_ref == f"env:{ENV_KEYS[s.provider]}"
        assert os.environ[ENV_KEYS[s.provider]] not in repr(config)


def test_reconciliation_of_the_demo_cache_finds_the_price_change(tmp_path: Path) -> None:
    start = datetime(2026, 3, 10, 2, 0, 0)
    with Cache.open(tmp_path / "c.duckdb") as cache:
        clock = SimClock(start, 1.0, wall=lambda: 0.0)
        sim = Simulator(cache, demo_config(tmp_path / "c.duckdb"), tmp_path / "spool", clock=clock,
                        backfill=timedelta(days=4), rate=RATE, incident_delay=timedelta(days=30), workers=1)
        endpoints = DemoEndpoints.for_simulator(sim)
        try:
            sim.backfill()
            config = demo_config(tmp_path / "c.duckdb", endpoints.start())
            worker = BillingWorker(cache, config, sim.writing, today=lambda: clock.now().date())
            results = worker.sync_once()
            assert [r.ok for r in results] == [True, True], worker.last_error
            rows = reconcile(cache.con, start.date(), 5, PriceTable.load())
        finally:
            endpoints.close()
            sim.close()
    change = endpoints.ledger.change
    assert change.since == start.date() - timedelta(days=3)
    gaps = [r for r in rows if r.status == "gap"]
    haiku = normalise_model(PRICE_CHANGE_MODEL)
    assert {(r.provider, r.model, r.day) for r in gaps} == {
        ("anthropic", haiku, change.since + timedelta(days=i)) for i in range(3)}
    for r in gaps:
        assert r.causes[0].code == "price_changed", r.causes
        assert r.billed is not None and r.estimated is not None and r.billed > r.estimated
    before = [r for r in rows if r.model == haiku and r.day < change.since and r.billed]
    assert before and all(r.status == "ok" for r in before)
    assert all(r.status in ("ok", "gap") for r in rows if r.provider in ("openai", "anthropic")
               and r.model != normalise_model("acme-finetune-v2") and r.billed)


def test_the_worker_thread_stores_both_sources_and_stops_with_the_simulator(tmp_path: Path) -> None:
    from console.cache import billing_store

    with Cache.open(tmp_path / "c.duckdb") as cache:
        clock = SimClock(START, 1.0, wall=lambda: 0.0)
        sim = Simulator(cache, demo_config(tmp_path / "c.duckdb"), tmp_path / "spool", clock=clock,
                        backfill=timedelta(hours=2), rate=RATE, workers=1)
        endpoints = DemoEndpoints.for_simulator(sim)
        worker = BillingWorker(cache, demo_config(tmp_path / "c.duckdb", endpoints.start()), sim.writing,
                               today=lambda: clock.now().date(), every=0.2,
                               prepare=endpoints.ledger.catch_up, first_delay=0.0)
        try:
            worker.start()
            deadline = time.monotonic() + 20
            while worker.syncs < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert worker.syncs >= 2 and worker.last_error is None
            with sim.exclusive(lambda: cache.con.cursor()) as cur:
                stored = {(s.provider, s.source) for s in billing_store.syncs(cur)}
            assert stored == {("openai", "demo-openai-billing"), ("anthropic", "demo-anthropic-billing")}
            sim.close()  # the worker's next turn finds the simulator closed and ends
            deadline = time.monotonic() + 20
            while worker._thread is not None and worker._thread.is_alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert worker._thread is not None and not worker._thread.is_alive()
            assert worker.last_error == "the simulator is closed"
            lines = [p.source_status() for p in worker.probes()]
            assert [(s.name, s.kind) for s in lines] == [("demo-openai-billing", "billing"),
                                                         ("demo-anthropic-billing", "billing")]
            assert all(s.detail == "not polling: the simulator is closed" for s in lines), lines
        finally:
            worker.close()
            endpoints.close()
            sim.close()
