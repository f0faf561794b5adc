"""A Prometheus-compatible source as the source hub polls it, and a one-shot read for `llmdeck status`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connectors.http import SourceError
from connectors.prometheus import PrometheusClient
from console.alerts import ActiveAlert
from console.config import Config, PrometheusSource, SloSpec
from console.promql_eval import evaluate_many
from console.promql_slo import PromqlSloResult, specs_by_source
from console.snapshots import SloStatus
from console.sources import SourceHealth
from console.timeutil import utc_now

SOURCE_LEVEL_KINDS = frozenset({"connect", "timeout", "breaker_open", "auth"})
"""Failures that say the source itself is unreachable, not that one query is wrong."""


@dataclass(frozen=True)
class PrometheusReading:
    """One poll of one Prometheus-compatible source: its alerts and its PromQL SLOs."""

    source: str
    at: datetime
    """The evaluation time (naive UTC)."""
    alerts: tuple[ActiveAlert, ...]
    slos: tuple[SloStatus, ...]
    """SLOs that evaluated, in config order (the source of each is `prometheus:<source>`)."""
    warnings: tuple[str, ...]
    """The API's warnings, each prefixed by the SLO it came with."""
    errors: tuple[tuple[str, str], ...]
    """(SLO name, why it has no status) for SLOs whose queries failed."""
    alerts_error: str | None = None
    """Why the alerts could not be read while the SLO queries worked (e.g. a 404 from a store
    without rules: set `alerts = false`)."""

    @property
    def slo_source(self) -> str:
        return f"prometheus:{self.source}"

    @property
    def problems(self) -> tuple[str, ...]:
        """What went wrong although the source answered (the hub shows the source stale)."""
        alerts = (f"alerts: {self.alerts_error}",) if self.alerts_error else ()
        return alerts + tuple(f"SLO {name}: {text}" for name, text in self.errors) + self.warnings

    def summary(self) -> str:
        """One line for `:sources`: alerts firing and SLOs evaluated."""
        firing = sum(1 for a in self.alerts if a.firing)
        failed = f", {len(self.errors)} failed" if self.errors else ""
        return f"{len(self.alerts)} alerts ({firing} firing), {len(self.slos)} PromQL SLOs{failed}"


def reading_from(source: str, at: datetime, alerts: tuple[ActiveAlert, ...],
                 results: Sequence[PromqlSloResult], alerts_error: str | None = None) -> PrometheusReading:
    """A reading from the alerts and per-SLO results."""
    return PrometheusReading(
        source=source, at=at, alerts=alerts,
        slos=tuple(r.status for r in results if r.status is not None),
        warnings=tuple(dict.fromkeys(f"{r.name}: {w}" for r in results for w in r.warnings)),
        errors=tuple((r.name, r.error or "") for r in results if r.status is None),
        alerts_error=alerts_error,
    )


class PrometheusPoller:
    """Reads active alerts (if enabled) and evaluates the source's PromQL SLOs (batched), concurrently."""

    kind = "prometheus"

    def __init__(self, source: PrometheusSource, specs: Sequence[SloSpec], client: PrometheusClient,
                 health: SourceHealth | None = None, clock: Callable[[], datetime] = utc_now) -> None:
        self.name = source.name
        self.source = source
        self.specs = tuple(specs)
        self.interval = source.refresh_seconds
        self.client = client
        """The source's client; one-off calls (chart range queries) run on the hub's loop through it."""
        self.clock = clock
        self.le_cache: dict[tuple[str, str, float], str] = {}
        self.isolated: set[str] = set()
        """SLOs the server refused in the shared query: asked alone until they evaluate again."""
        self.health = health or SourceHealth.polled_every(source.name, self.kind, source.refresh_seconds)

    async def poll(self) -> PrometheusReading:
        """One reading; raises SourceError when nothing could be read (alerts nor any SLO).

        A failed alerts read beside working SLO queries is kept as `alerts_error`; SLO
        failures are per SLO unless every one of them says the source is unreachable.
        """
        at = self.clock()
        alerts_or_error, results = await asyncio.gather(
            self.client.alerts() if self.source.alerts else _no_alerts(),
            evaluate_many(self.client, self.specs, at, self.le_cache, self.isolated),
            return_exceptions=True,
        )
        if isinstance(results, BaseException):
            raise results
        unreachable = [r for r in results if r.error_kind in SOURCE_LEVEL_KINDS]
        all_unreachable = len(unreachable) == len(results)
        if isinstance(alerts_or_error, BaseException):
            if all_unreachable:  # no SLOs, or none got through either
                raise alerts_or_error
            text = str(alerts_or_error) if isinstance(alerts_or_error, SourceError) else repr(alerts_or_error)
            return reading_from(self.name, at, (), results, text[:300])
        if results and all_unreachable and not self.source.alerts:
            first = unreachable[0]
            kind = first.error_kind or "connect"
            raise SourceError(self.name, kind,  # type: ignore[arg-type]
                              (first.error or "").removeprefix(f"{self.name}: {kind}: "))
        return reading_from(self.name, at, alerts_or_error, results)

    async def aclose(self) -> None:
        await self.client.aclose()


async def _no_alerts() -> tuple[ActiveAlert, ...]:
    return ()


def make_poller(source: PrometheusSource, config: Config, secret_headers: Mapping[str, str],
                **client_kw: Any) -> PrometheusPoller:
    """The poller of one `[[sources.prometheus]]` with the SLOs that name it (no I/O until polled)."""
    specs = specs_by_source(config.slos).get(source.name, [])
    return PrometheusPoller(source, specs, PrometheusClient.for_source(source, secret_headers, **client_kw))


def evaluate_configured(config: Config, at: datetime,
                        secret_headers: Callable[[PrometheusSource], Mapping[str, str]] | None = None,
                        **client_kw: Any) -> dict[str, PromqlSloResult]:
    """Every PromQL SLO of the config evaluated live at `at` (for `llmdeck status`), by SLO name.

    Sources are read concurrently, each within its HTTP policy's deadline; a source
    that fails (secrets, connection, deadline) gives each of its SLOs that error.
    """
    grouped = specs_by_source(config.slos)
    sources = {s.name: s for s in config.sources.prometheus if s.name in grouped}

    async def one(source: PrometheusSource) -> tuple[PromqlSloResult, ...]:
        specs = grouped[source.name]
        try:
            from console.secrets import source_secret_headers

            headers = await asyncio.to_thread(secret_headers or source_secret_headers, source)
        except Exception as exc:  # noqa: BLE001 - a secret that does not resolve fails this source only
            return tuple(PromqlSloResult(s.name, s.source, None, str(exc)[:500], "auth") for s in specs)
        client = PrometheusClient.for_source(source, headers, **client_kw)
        deadline = client.http.policy.deadline
        try:
            return await asyncio.wait_for(evaluate_many(client, specs, at), deadline)
        except TimeoutError:
            text = f"{source.name}: timeout: SLO queries took longer than the {deadline:g} s deadline"
            return tuple(PromqlSloResult(s.name, s.source, None, text, "timeout") for s in specs)
        finally:
            await client.aclose()

    async def all_sources() -> list[tuple[PromqlSloResult, ...]]:
        return await asyncio.gather(*(one(s) for s in sources.values()))

    if not sources:
        return {}
    return {r.name: r for results in asyncio.run(all_sources()) for r in results}
