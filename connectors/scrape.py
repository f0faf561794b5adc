"""Direct reads of a model server's or gateway's Prometheus `/metrics` (teams without Prometheus).

The text is fetched through the source's `SourceClient` and parsed with
prometheus_client's own parser into a frozen `Scrape`: every sample by its
exposed name (`x_total`, `x_bucket`, `x_sum`, `x_count`; prometheus_client
drops `_total` from counter *family* names, so families are not used), labels
sorted, value as float. The `x_created` timestamps prometheus_client adds beside
counters and histograms are dropped. A body that does not parse is a
`SourceError(kind="decode")` naming the source and the line.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client.openmetrics import parser as openmetrics_parser
from prometheus_client.parser import text_fd_to_metric_families

from connectors.http import SourceError
from connectors.http_text import Redactor, clean
from console.timeutil import utc_now

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from connectors.http import SourceClient

Labels = tuple[tuple[str, str], ...]
_REDIRECTS = frozenset({301, 302, 307, 308})
_SIBLINGS = ("_total", "_count", "_bucket", "_sum", "")
_PLAIN = Redactor()
MAX_CHARS = 64 * 1024 * 1024
"""A larger body is refused (a big vLLM or LiteLLM exposition is a few MB)."""


@dataclass(frozen=True)
class ScrapeSample:
    """One exposed sample: its full name, its labels (sorted pairs) and its value."""

    name: str
    labels: Labels
    value: float

    def label(self, key: str, default: str = "") -> str:
        """The value of label `key` (`default` when absent)."""
        for name, value in self.labels:
            if name == key:
                return value
        return default


@dataclass(frozen=True)
class Scrape:
    """Everything one read of `/metrics` returned, and when (naive UTC)."""

    source: str
    at: datetime
    samples: tuple[ScrapeSample, ...]

    def names(self) -> frozenset[str]:
        """The distinct sample names."""
        return frozenset(s.name for s in self.samples)


class _CountingLines:
    """Feeds the parser one line at a time and remembers which line it is on."""

    def __init__(self, text: str) -> None:
        self._lines = io.StringIO(text)
        self.number = 0

    def __iter__(self) -> Iterator[str]:
        for line in self._lines:
            self.number += 1
            yield line


def parse_exposition(text: str, source: str, content_type: str = "") -> tuple[ScrapeSample, ...]:
    """The samples of a Prometheus text (0.0.4) or OpenMetrics exposition; SourceError on bad input."""
    if len(text) > MAX_CHARS:
        raise SourceError(source, "decode", f"metrics text of {len(text) // 1_048_576} MiB is over the "
                                            f"{MAX_CHARS // 1_048_576} MiB limit")
    media = content_type.split(";")[0].strip().lower()
    if "html" in media or (not media and text.lstrip()[:15].lower().startswith(("<!doctype", "<html"))):
        raise SourceError(source, "content_type", f"expected Prometheus text, got {media or 'HTML'}")
    openmetrics = media == "application/openmetrics-text"
    lines = _CountingLines(text)
    parse: Callable[[_CountingLines], Iterator[Metric]] = (
        openmetrics_parser.text_fd_to_metric_families if openmetrics else text_fd_to_metric_families)  # type: ignore[assignment]
    samples: list[ScrapeSample] = []
    try:
        for family in parse(lines):
            for s in family.samples:
                samples.append(ScrapeSample(s.name, tuple(sorted(s.labels.items())), float(s.value)))
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        what = str(exc) or type(exc).__name__
        where = f"line {lines.number}: " if lines.number else ""
        reason = clean(f"bad metrics text at {where}{what}", _PLAIN, 160)
        raise SourceError(source, "decode", reason) from None
    return _without_created(samples)


def _without_created(samples: list[ScrapeSample]) -> tuple[ScrapeSample, ...]:
    """Drops `x_created` samples that sit beside a counter, histogram or summary `x`."""
    names = {s.name for s in samples}

    def created(name: str) -> bool:
        if not name.endswith("_created"):
            return False
        base = name[: -len("_created")]
        return any(base + suffix in names for suffix in _SIBLINGS)

    return tuple(s for s in samples if not created(s.name))


class MetricsReader:
    """Reads one source's metrics endpoint through its `SourceClient`."""

    def __init__(self, client: SourceClient, path: str = "/metrics",
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.client = client
        self.path = path
        self._clock = clock

    async def read(self) -> Scrape:
        """One scrape. A redirect to the same path with a trailing slash (LiteLLM's `/metrics` ->
        `/metrics/`) is taken once and remembered; any other redirect is an error."""
        try:
            body, content_type = await self.client.get_text(self.path)
        except SourceError as err:
            if err.status not in _REDIRECTS or self.path.endswith("/"):
                raise
            body, content_type = await self.client.get_text(self.path + "/")
            self.path += "/"
        at = self._clock()
        return Scrape(self.client.name, at, parse_exposition(body, self.client.name, content_type))
