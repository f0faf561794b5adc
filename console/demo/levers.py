"""What the demo gateway's admin actions change in the simulated world: its levers.

The demo's traffic is a pure function of (seed, chunk index) (console/demo/generate.py),
drawn again by several readers (the simulator's live steps, the endpoints' telemetry,
the billing ledger), each on its own thread and at its own pace. So a lever is not a
flag flipped under their feet: it is a schedule. `Levers.change` adds a `LeverState`
that holds FROM a simulated time on (the caller picks the next chunk boundary, which no
reader has drawn yet), and every reader asks `at(t)` for the state at the time it draws.
Each chunk then sees one state, the same one in every reader, and a reader that draws
a chunk late gets the same spans as one that drew it on time.

Three levers, matching the runbook actions that move them:
* a tenant's share of its usual requests (throttle / block a team or its key): the rest
  is held back by the gateway's limit and never reaches a provider;
* routes: a model group served by another group while its own provider is failing
  (a general fallback at the gateway: LiteLLM sends a cooled-down deployment's
  requests to the fallback directly);
* deployments: the upstream model a group is served by (a deployment's
  `litellm_params.model`), which sets the provider and the latency profile, so rolling
  back the parameters restores the previous latency.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class Upstream:
    """What serves a model group: provider (as the spans name it), response model, median latency."""

    provider: str
    response_model: str
    median_s: float


def _frozen(mapping: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    """A private copy, never mutated after (a plain dict: the state is pickled for the backfill)."""
    return dict(mapping or {})


@dataclass(frozen=True)
class LeverState:
    """The levers' positions over one stretch of simulated time (immutable: shared by threads)."""

    tenant_share: Mapping[str, float] = field(default_factory=_frozen)
    """tenant -> share of its usual requests let through (1.0 when absent; 0.0 blocked)."""
    routes: Mapping[str, str] = field(default_factory=_frozen)
    """model group -> the group serving it while its provider fails."""
    upstreams: Mapping[str, Upstream] = field(default_factory=_frozen)
    """model group -> the upstream serving it, where it differs from the traffic model's own."""

    def share(self, tenant: str) -> float:
        return self.tenant_share.get(tenant, 1.0)

    def with_share(self, tenant: str, share: float) -> LeverState:
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"a tenant's share must be within [0, 1], got {share!r} for {tenant!r}")
        shares = {k: v for k, v in self.tenant_share.items() if k != tenant}
        if share < 1.0:
            shares[tenant] = share
        return replace(self, tenant_share=_frozen(shares))

    def with_route(self, group: str, to: str | None) -> LeverState:
        routes = {k: v for k, v in self.routes.items() if k != group}
        if to is not None and to != group:
            routes[group] = to
        return replace(self, routes=_frozen(routes))

    def with_upstream(self, group: str, upstream: Upstream | None) -> LeverState:
        ups = {k: v for k, v in self.upstreams.items() if k != group}
        if upstream is not None:
            ups[group] = upstream
        return replace(self, upstreams=_frozen(ups))

    @property
    def idle(self) -> bool:
        """No lever moved: the traffic is exactly the traffic model's own."""
        return not (self.tenant_share or self.routes or self.upstreams)


IDLE = LeverState()


class Levers:
    """A thread-safe schedule of `LeverState`s by simulated time (Unix ns).

    Written by the demo gateway's admin handler (an HTTP server thread), read by every
    traffic reader on its own thread. Picklable as a snapshot (the backfill's worker
    processes get one; the history lies before any change anyway).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._starts: list[int] = []
        self._states: list[LeverState] = []

    def at(self, t_ns: int) -> LeverState:
        """The state holding at simulated time `t_ns` (IDLE before the first change)."""
        with self._lock:
            i = bisect.bisect_right(self._starts, t_ns)
            return self._states[i - 1] if i else IDLE

    def current(self) -> LeverState:
        """The newest state (what the next change starts from)."""
        with self._lock:
            return self._states[-1] if self._states else IDLE

    def change(self, from_ns: int, state: LeverState) -> int:
        """`state` holds from `from_ns` on; returns when it starts.

        A change never rewrites the past of another: one dated before the newest start
        is moved up to it (and replaces the state starting there).
        """
        with self._lock:
            if self._starts and from_ns <= self._starts[-1]:
                from_ns = self._starts[-1]
                self._states[-1] = state
            else:
                self._starts.append(from_ns)
                self._states.append(state)
            return from_ns

    def history(self) -> list[tuple[int, LeverState]]:
        """Every (start, state), oldest first (for tests and the demo's help text)."""
        with self._lock:
            return list(zip(self._starts, self._states, strict=True))

    def __getstate__(self) -> dict[str, Any]:
        with self._lock:
            return {"starts": list(self._starts), "states": list(self._states)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._lock = threading.Lock()
        self._starts = state["starts"]
        self._states = state["states"]
