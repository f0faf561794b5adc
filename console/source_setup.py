"""Pollers for every configured outside source, built without touching the network or keyring.

A source's secrets (bearer token, basic password, secret headers) are resolved on
its first poll, on the hub's thread, not when the console starts: a keyring that
is slow or locked then shows as that source being down, with a message naming the
reference, instead of holding up the first paint. No Textual here.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Mapping
from typing import Any

from console.config import (
    AlertmanagerSource,
    Config,
    HttpSource,
    PrometheusSource,
    ScrapeSource,
)
from console.source_hub import Poller
from console.sources import SourceHealth

Factory = Callable[[Any, Config, Mapping[str, str]], Poller]
"""`make_poller(source, config, secret_headers)` of one kind of source."""


class SecretsUnavailable(Exception):
    """A source's secret reference did not resolve (the message names it, never a value)."""

    kind = "auth"
    permanent = True


KINDS: dict[type[HttpSource], tuple[str, str]] = {
    PrometheusSource: ("prometheus", "console.prometheus_poll"),
    AlertmanagerSource: ("alertmanager", "console.alertmanager_poll"),
    ScrapeSource: ("scrape", "console.serving_poll"),
}
"""Each source type's kind name and the module whose `make_poller` builds its poller (imported
only when such a source is configured: no httpx or connector import otherwise)."""


def _factory(source: HttpSource) -> Factory:
    """The poller factory of a source."""
    module = importlib.import_module(KINDS[type(source)][1])
    factory: Factory = module.make_poller
    return factory


class LazyPoller:
    """A source's poller, made on its first poll once its secrets are resolved."""

    def __init__(self, source: HttpSource, config: Config,
                 factory: Callable[[HttpSource], Factory] = _factory) -> None:
        self.source = source
        self.config = config
        self.name = source.name
        self.kind = KINDS[type(source)][0]
        self.interval = source.refresh_seconds
        self.health = SourceHealth.polled_every(source.name, self.kind, source.refresh_seconds)
        self._factory = factory
        self._inner: Poller | None = None

    async def prepare(self) -> None:
        """Resolve the secrets and build the real poller (its HTTP client) on a worker thread,
        so neither a keyring call nor loading a TLS context stalls the hub's loop; the hub
        calls this before it times the poll."""
        if self._inner is None:
            self._inner = await asyncio.to_thread(self._make)

    def _make(self) -> Poller:
        headers = _secret_headers(self.source)
        make = self._factory(self.source)
        return make(self.source, self.config, headers)

    async def poll(self) -> object:
        await self.prepare()
        assert self._inner is not None
        return await self._inner.poll()

    @property
    def inner(self) -> Poller | None:
        """The real poller once made (its client serves one-off calls such as chart queries)."""
        return self._inner

    async def aclose(self) -> None:
        if self._inner is not None:
            await self._inner.aclose()


def _secret_headers(source: HttpSource) -> dict[str, str]:
    from console.secrets import SecretError, source_secret_headers

    try:
        return source_secret_headers(source)
    except SecretError as exc:
        raise SecretsUnavailable(f"{source.name}: {exc}") from None


def build_pollers(config: Config) -> list[LazyPoller]:
    """One poller per configured HTTP source, in config order (no I/O)."""
    return [LazyPoller(source, config) for source in config.sources.http()]
