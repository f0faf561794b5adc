"""The one-line header of every screen: where you are, data time, freshness of each source."""

from __future__ import annotations

import math
from datetime import datetime

from textual.content import Content
from textual.widgets import Static

from console.formatting import ago, clock
from console.safe_text import cell
from console.sources import SourceStatus

_MARK = {"live": "●", "stale": "▲", "down": "✖"}


class StatusLine(Static):
    """`llmdeck › SLOs · data 12:00:03Z · refreshed 1s ago · ● demo simulator live`."""

    def __init__(self, title: str) -> None:
        super().__init__(id="status-line")
        self.title = title
        self.data_at: datetime | None = None
        self.refreshed: datetime | None = None
        self.sources: tuple[SourceStatus, ...] = ()
        self.error: str | None = None
        self.error_since: datetime | None = None
        self.now: datetime | None = None
        """The wall clock at the last tick (ages are shown relative to it)."""
        self.stale_after = math.inf
        """Seconds without a refresh after which the view is marked stale."""

    def on_mount(self) -> None:
        self._render_line()

    def fetched(self, at: datetime, sources: tuple[SourceStatus, ...], now: datetime) -> None:
        """A refresh succeeded."""
        self.data_at, self.sources, self.refreshed = at, sources, now
        self.error = self.error_since = None
        self._render_line()

    def failed(self, error: str, now: datetime) -> None:
        """A refresh failed: keep the last data, say since when it is stale."""
        if self.error_since is None:
            self.error_since = now
        self.error = error
        self._render_line()

    def tick(self, now: datetime, stale_after_seconds: float) -> None:
        """Re-render ages; mark the view stale when refreshes stopped arriving."""
        self.now = now
        self.stale_after = stale_after_seconds
        self._render_line()

    def _render_line(self) -> None:
        now = self.now or self.refreshed or datetime.now()
        parts = [Content.from_markup("[b]llmdeck[/b] › $title", title=self.title)]
        badge = getattr(self.app, "status_badge", None) if self.is_attached else None
        if badge:  # permanent, first: e.g. secrets kept in plaintext files
            parts.append(Content.from_markup("[reverse]▲ $badge[/]", badge=cell(badge, 60)))
        fault = getattr(self.app, "status_fault", None) if self.is_attached else None
        if fault:  # the cache file's fault (a failed write, a corrupt block): before the rest
            parts.append(Content.from_markup("[$error]✖ $fault[/]", fault=cell(fault, 70)))
        if self.data_at is not None:
            parts.append(Content(f"data {clock(self.data_at)}Z"))
        if self.error is not None and self.error == fault:
            parts.append(Content.from_markup("[$error]stale since $since[/]",
                                             since=clock(self.error_since)))
        elif self.error is not None:
            parts.append(Content.from_markup(
                "[$error]✖ stale since $since[/]: $err",
                since=clock(self.error_since), err=cell(self.error, 80),
            ))
        # A source that is not live matters more than the refresh age: it comes first, so a
        # line cut at 80 columns still reads "✖ collector files down since …".
        troubled = [s for s in self.sources if s.state != "live"]
        parts.extend(self._source(s) for s in troubled)
        if self.error is None and self.refreshed is not None:
            age = (now - self.refreshed).total_seconds()
            stale = age > self.stale_after
            mark = "▲ stale, refreshed" if stale else "refreshed"
            parts.append(Content(f"{mark} {ago(self.refreshed, now)} ago"))
        elif self.error is None:
            parts.append(Content("loading…"))
        parts.extend(self._source(s) for s in self.sources if s.state == "live")
        # One line (CSS height: 1): a new text never changes the layout, so only this line is
        # repainted, not the whole screen re-laid out on every tick and refresh.
        self.update(Content(" · ").join(parts), layout=False)

    @staticmethod
    def _source(source: SourceStatus) -> Content:
        since = f" since {clock(source.since)}" if source.state != "live" and source.since else ""
        return Content(f"{_MARK[source.state]} {cell(source.name, 30)} {source.state}{since}")
