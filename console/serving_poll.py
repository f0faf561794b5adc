"""The hub's poller for a `[[sources.scrape]]` source: read `/metrics`, derive against the previous read."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from connectors.http import SourceClient
from connectors.scrape import MetricsReader, Scrape
from console.config import Config, ScrapeSource
from console.serving import ServingSnapshot
from console.serving_derive import derive_snapshot
from console.sources import SourceHealth
from console.timeutil import utc_now


class ScrapePoller:
    """Reads one scrape source; keeps the last good read so the next one has rates.

    A failed read leaves the previous good read in place: the next good one then
    averages its rates over the whole gap (its `window_s` says how long).
    """

    kind = "scrape"

    def __init__(self, source: ScrapeSource, client: SourceClient,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.source = source
        self.name = source.name
        self.interval = source.refresh_seconds
        self.health = SourceHealth.polled_every(source.name, self.kind, source.refresh_seconds)
        self.client = client
        self.reader = MetricsReader(client, source.metrics_path, clock)
        self.previous: Scrape | None = None

    async def poll(self) -> ServingSnapshot:
        """One read of the endpoint as a snapshot (SourceError when it cannot be read or parsed)."""
        scrape = await self.reader.read()
        snapshot = derive_snapshot(self.name, self.previous, scrape, self.source.kind)
        self.previous = scrape
        return snapshot

    async def aclose(self) -> None:
        await self.client.aclose()


def make_poller(source: ScrapeSource, config: Config, secret_headers: Mapping[str, str],
                **client_options: object) -> ScrapePoller:
    """A poller for `source` with its own `SourceClient` (`client_options`: e.g. a test transport)."""
    return ScrapePoller(source, SourceClient.for_source(source, secret_headers, **client_options))
