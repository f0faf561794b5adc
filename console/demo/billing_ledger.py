"""What OpenAI and Anthropic would bill the demo for, per UTC day, from the simulator's own traffic.

`BillingLedger.catch_up()` draws every chunk of the simulator's traffic again
(console/demo/generate.py: a chunk is a pure function of the seed and its index, so
these are the very spans the simulator ingests), from where its history begins up
to DELAY before the simulated now, and counts each openai / anthropic call that
carries usage (successes, and failures billed mid-stream) by UTC day of its start,
provider, the model the provider reports (the response model), project (the
service: one provider project / workspace per application) and token kind.
Amounts are those tokens at the shipped price table (exact `Decimal`), with ONE
planted difference, the gap the reconciliation has to find: see `PRICE_CHANGE`.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from console.demo import generate
from console.demo.incident import to_ns
from console.demo.traffic import MODELS, SERVICES
from console.pricing import Price, PriceTable

DELAY = timedelta(hours=1)
"""Calls started less than this (simulated time) before now are not billed yet: providers'
figures for the latest hours arrive late, so the latest day is always short of the traces."""
BILLED_PROVIDERS = ("openai", "anthropic")
UNPRICED = frozenset({"acme-finetune-v2"})
"""A fine-tune the price table cannot price: left out of the bills (its estimate is $0 too)."""
PRICE_CHANGE_MODEL = "claude-haiku-4-5"
PRICE_CHANGE_OUTPUT = Decimal("6.0")
PRICE_CHANGE_DAYS_BEFORE_START = 3
TOKEN_KINDS = ("input", "cached", "output")
"""Uncached input, cache-read input, output (the OTel input count includes the cached part)."""
_PER_TOKEN = Decimal("0.000001")
_RESPONSE_MODEL = {m[1]: m[2] for m in MODELS}


@dataclass(frozen=True)
class PriceChange:
    """The planted gap: from `since` on, `model`'s output is billed at `output` $/M tokens, while
    the shipped table (dated before) still lists the old price; the reconciliation's cause for
    those days is `price_changed`."""

    model: str
    since: date
    output: Decimal


def price_change_for(start: datetime, table: PriceTable) -> PriceChange:
    """PRICE_CHANGE_MODEL's new output price, from PRICE_CHANGE_DAYS_BEFORE_START days before the
    demo's start (never before the table's own date for it)."""
    since = start.date() - timedelta(days=PRICE_CHANGE_DAYS_BEFORE_START)
    listed = table.lookup("anthropic", PRICE_CHANGE_MODEL, since)
    if listed is not None and since <= listed.effective:
        since = listed.effective + timedelta(days=1)
    return PriceChange(PRICE_CHANGE_MODEL, since, PRICE_CHANGE_OUTPUT)


@dataclass(frozen=True)
class Usage:
    """One (day, provider, response model, project) group of billed calls."""

    day: date
    provider: str
    model: str
    """As the provider reports it (`claude-haiku-4-5-20251001`)."""
    project: str
    requests: int
    tokens: dict[str, int]
    """By TOKEN_KINDS."""
    prices: dict[str, Decimal]
    """Billed $/M tokens by TOKEN_KINDS."""

    def cost(self, kind: str) -> Decimal:
        return self.tokens[kind] * self.prices[kind] * _PER_TOKEN


def table_prices(price: Price) -> dict[str, Decimal]:
    """A table price as exact $/M tokens by token kind (cached at `input` when no cache price)."""
    cached = price.input if price.cache_read is None else price.cache_read
    return {"input": Decimal(repr(price.input)), "cached": Decimal(repr(cached)),
            "output": Decimal(repr(price.output))}


def span_usage(span: dict[str, Any]) -> tuple[str, str, int, int, int] | None:
    """(provider, requested model, uncached input, cached input, output) of a billed span, or None."""
    attrs = {kv["key"]: next(iter(kv["value"].values())) for kv in span["attributes"]}
    provider = str(attrs.get("gen_ai.provider.name") or attrs.get("gen_ai.system") or "")
    model = str(attrs.get("gen_ai.request.model", ""))
    if provider not in BILLED_PROVIDERS or model in UNPRICED:
        return None
    inp = int(attrs.get("gen_ai.usage.input_tokens") or attrs.get("gen_ai.usage.prompt_tokens") or 0)
    out = int(attrs.get("gen_ai.usage.output_tokens") or attrs.get("gen_ai.usage.completion_tokens") or 0)
    cached = int(attrs.get("gen_ai.usage.cache_read.input_tokens") or 0)
    if inp <= 0 and out <= 0:
        return None
    return provider, model, max(inp - cached, 0), cached, out


class BillingLedger:
    """Billed usage of the simulator's traffic since `first` (where its history begins)."""

    def __init__(self, plan: generate.TrafficPlan, first: datetime, clock: Callable[[], datetime],
                 prices: PriceTable | None = None, start: datetime | None = None) -> None:
        self.plan = plan
        self.clock = clock
        self.prices = prices or PriceTable.load()
        self.change = price_change_for(start or clock(), self.prices)
        self._model = plan.model()
        self._next = generate.chunk_of(to_ns(first))
        self._lock = threading.Lock()
        self._groups: defaultdict[tuple[date, str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        """(day, provider, requested model, project) -> [requests, uncached, cached, output]."""

    def catch_up(self, at: datetime | None = None) -> None:
        """Count every call started before `at` (default: the clock's now) less DELAY."""
        last = generate.chunk_of(to_ns((at or self.clock()) - DELAY))
        with self._lock:
            for index in range(self._next, last):
                day = _day(generate.chunk_start_ns(index))
                for svc, span in generate.chunk_spans(self.plan, self._model, index):
                    got = span_usage(span)
                    if got is None:
                        continue
                    provider, model, uncached, cached, out = got
                    group = self._groups[(day, provider, model, SERVICES[svc][0])]
                    group[0] += 1
                    group[1] += uncached
                    group[2] += cached
                    group[3] += out
            self._next = max(self._next, last)

    def usage(self, provider: str, start: date, end: date) -> list[Usage]:
        """`provider`'s billed groups of the UTC days [start, end), by day, model and project."""
        with self._lock:
            items = sorted((k, list(v)) for k, v in self._groups.items()
                           if k[1] == provider and start <= k[0] < end)
        out = []
        for (day, prov, model, project), (requests, uncached, cached, output) in items:
            price = self.prices.lookup(prov, model, day)
            if price is None:
                continue
            prices = table_prices(price)
            if model == self.change.model and day >= self.change.since:
                prices["output"] = self.change.output
            out.append(Usage(day, prov, _RESPONSE_MODEL.get(model, model), project, requests,
                             {"input": uncached, "cached": cached, "output": output}, prices))
        return out


def _day(t_ns: int) -> date:
    return (datetime(1970, 1, 1) + timedelta(microseconds=t_ns // 1000)).date()
