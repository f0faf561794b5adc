"""What the demo's model server and gateway would have counted, from the simulator's traffic.

The demo's `/metrics` endpoints (console/demo/endpoints.py) are driven by the
same seeded traffic the simulator ingests: `Telemetry.catch_up(now)` draws
every chunk up to `now` again (console/demo/generate.py: a chunk is a pure
function of the seed and its index, so these are the very same spans) and
counts each call once it has ended, as a server counts a finished request.
Counting starts WARMUP before the demo's start, as if the servers had been up
for a while. Calls still in flight make the running and waiting gauges; the
last few minutes of finished calls make the deployment states and the alerts.
"""

from __future__ import annotations

import hashlib
import heapq
import threading
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from console.demo import generate
from console.demo.traffic import Incident
from console.pricing import PriceTable

WARMUP = timedelta(hours=1)
RECENT = timedelta(minutes=5)
"""Finished calls kept for gauges, deployment states and alert rules (simulated time)."""

BUCKETS: dict[str, tuple[float, ...]] = {
    "ttft": (0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0),
    "e2e": (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0),
    "queue": (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0),
    "request": (0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0),
}
"""Upper bounds (seconds) of each histogram: vLLM's own, shortened; the gateway's request latency."""

_EPOCH = datetime(1970, 1, 1)
_NS = 1_000_000_000


@dataclass
class Histogram:
    """Cumulative bucket counts (one per bound, +Inf is `count`), sum and count."""

    bounds: tuple[float, ...]
    buckets: list[int]
    total: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.buckets[i] += 1
        self.total += value
        self.count += 1


@dataclass(frozen=True, slots=True)
class Call:
    """One LLM call (one span) as a server or gateway sees it; times in Unix seconds (simulated)."""

    trace_id: str
    start: float
    end: float
    provider: str
    model: str
    tenant: str
    status: int
    """HTTP status: 200, or the error's (429, 529, 500, 504, 400)."""
    error_type: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    ttft: float | None
    queue: float
    """Seconds the call waited before the model started on it."""
    fallback: bool
    attempt: int
    cost: float

    @property
    def ok(self) -> bool:
        return self.status == 200


def deployment_id(provider: str, model: str) -> str:
    """LiteLLM's `model_id` for a deployment: a stable short hash, as LiteLLM hashes its config."""
    return hashlib.blake2b(f"{provider}/{model}".encode(), digest_size=6).hexdigest()


class Telemetry:
    """Cumulative counts of finished calls (since WARMUP before the start), plus the recent ones."""

    def __init__(self, plan: generate.TrafficPlan, start: datetime, clock: Callable[[], datetime],
                 prices: PriceTable | None = None) -> None:
        self.plan = plan
        self.clock = clock
        self.prices = prices or PriceTable.load()
        self.incident: Incident | None = plan.incident
        self._model = plan.model()
        self._next = generate.chunk_of(_ns(start - WARMUP))
        self._lock = threading.Lock()
        self._pending: list[tuple[float, int, Call]] = []  # (end, seq, call): started, not ended
        self._seq = 0
        self._traces: dict[str, list[Call]] = {}
        """Calls of user requests not finished yet (a request ends with its last call)."""
        self.recent: deque[Call] = deque()
        """Finished calls of the last RECENT, oldest first."""
        self.calls: Counter[tuple[Any, ...]] = Counter()
        """(provider, model, tenant, status, error_type) -> finished calls."""
        self.tokens: Counter[tuple[Any, ...]] = Counter()
        """(provider, model, tenant, 'input'|'output'|'cached') -> tokens."""
        self.spend: defaultdict[tuple[str, str, str], float] = defaultdict(float)
        """(provider, model, tenant) -> USD."""
        self.histograms: dict[tuple[str, str, str], Histogram] = {}
        """(name in BUCKETS, provider, model) -> seconds observed."""
        self.requests: Counter[tuple[Any, ...]] = Counter()
        """(requested provider, requested model, tenant, final status, final error) -> user requests."""
        self.fallbacks: Counter[tuple[Any, ...]] = Counter()
        """(requested model, fallback model, tenant, ok) -> requests that fell back."""
        self.now = 0.0

    def catch_up(self, at: datetime | None = None) -> float:
        """Draw and count the traffic up to `at` (default: the clock); returns `at` in Unix seconds."""
        at = at or self.clock()
        now = _ns(at) / _NS
        last = generate.chunk_of(_ns(at))
        with self._lock:
            for index in range(self._next, last):
                for _, span in generate.chunk_spans(self.plan, self._model, index):
                    self._started(self._call(span))
            self._next = max(self._next, last)
            while self._pending and self._pending[0][0] <= now:
                self._finished(heapq.heappop(self._pending)[2])
            while self.recent and self.recent[0].end < now - RECENT.total_seconds():
                self.recent.popleft()
            self.now = max(self.now, now)
        return now

    def in_flight(self) -> list[Call]:
        """Calls started and not finished at the last catch-up (call with `lock` held)."""
        return [c for _, _, c in self._pending if c.start <= self.now]

    @property
    def lock(self) -> threading.Lock:
        """Held while the counts are read (the endpoints' threads) or updated (catch_up)."""
        return self._lock

    # -- internals ------------------------------------------------------------

    def _call(self, span: dict[str, Any]) -> Call:
        attrs = {kv["key"]: next(iter(kv["value"].values())) for kv in span["attributes"]}
        start = int(span["startTimeUnixNano"]) / _NS
        end = int(span["endTimeUnixNano"]) / _NS
        provider = attrs.get("gen_ai.provider.name") or attrs.get("gen_ai.system") or ""
        model = attrs.get("gen_ai.request.model", "")
        status = int(attrs.get("http.response.status_code", 200))
        inp = int(attrs.get("gen_ai.usage.input_tokens") or attrs.get("gen_ai.usage.prompt_tokens") or 0)
        out = int(attrs.get("gen_ai.usage.output_tokens")
                  or attrs.get("gen_ai.usage.completion_tokens") or 0)
        cached = int(attrs.get("gen_ai.usage.cache_read.input_tokens") or 0)
        ttft = attrs.get("gen_ai.response.time_to_first_chunk")
        price = self.prices.lookup(provider, model, date.fromtimestamp(int(start)))
        inc = self.incident
        slowed = (inc is not None and inc.provider == provider
                  and inc.start_ns <= int(span["startTimeUnixNano"]) < inc.end_ns)
        # an incident's slowdown is time spent queued at the overloaded provider
        queue = (end - start) * (1 - 1 / inc.slowdown) if slowed and inc else (end - start) * 0.03
        return Call(span["traceId"], start, end, provider, model, attrs.get("llmdeck.tenant", ""),
                    status, attrs.get("error.type", ""), inp, out, cached,
                    float(ttft) if ttft is not None else None, queue,
                    bool(attrs.get("llmdeck.fallback")), int(attrs.get("http.request.resend_count", 0)),
                    price.cost(inp, out, cached) if price else 0.0)

    def _started(self, call: Call) -> None:
        self._seq += 1
        heapq.heappush(self._pending, (call.end, self._seq, call))
        self._traces.setdefault(call.trace_id, []).append(call)

    def _finished(self, call: Call) -> None:
        key = (call.provider, call.model)
        self.calls[(*key, call.tenant, call.status, call.error_type)] += 1
        for kind, n in (("input", call.input_tokens), ("output", call.output_tokens),
                        ("cached", call.cached_tokens)):
            self.tokens[(*key, call.tenant, kind)] += n
        self.spend[(*key, call.tenant)] += call.cost
        self._observe("e2e", key, call.end - call.start)
        self._observe("queue", key, call.queue)
        if call.ttft is not None:
            self._observe("ttft", key, call.ttft)
        self.recent.append(call)
        chain = self._traces.get(call.trace_id)
        if chain is not None and chain[-1] is call:  # a request's calls run one after another
            self._request_done(self._traces.pop(call.trace_id))

    def _request_done(self, chain: list[Call]) -> None:
        first, last = chain[0], chain[-1]
        self.requests[(first.provider, first.model, first.tenant, last.status, last.error_type)] += 1
        self._observe("request", (first.provider, first.model), last.end - first.start)
        if last.fallback and len(chain) > 1:
            self.fallbacks[(first.model, last.model, first.tenant, last.ok)] += 1

    def _observe(self, name: str, key: tuple[str, str], value: float) -> None:
        hist = self.histograms.get((name, *key))
        if hist is None:
            bounds = BUCKETS[name]
            hist = self.histograms[(name, *key)] = Histogram(bounds, [0] * len(bounds))
        hist.observe(value)


def _ns(t: datetime) -> int:
    return (t - _EPOCH) // timedelta(microseconds=1) * 1000
