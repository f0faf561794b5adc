"""The screen every llmdeck view derives from: a view to fetch, a status line, `/` filtering."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input

from console.backend import Fetched, View
from panels.messages import FetchFailed, RefreshRequested, SnapshotReady
from panels.status_line import StatusLine
from panels.text import SafeInput


class FilterBar(SafeInput):
    """`/` opens it; typing narrows the screen's tables; Enter keeps the filter, Esc clears it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "clear", "Clear filter", show=False, id="filter.clear"),
    ]

    def action_clear(self) -> None:
        self.value = ""
        self.remove_class("-active")
        self.screen.focus_next(DataTable)


class DeckScreen(Screen[None]):
    """A screen showing one view; the app's poller fetches `view()` and posts SnapshotReady."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter", id="screen.filter"),
        Binding("escape", "back", "Back", id="screen.back"),
    ]
    screen_title: ClassVar[str] = ""
    """Shown in the status line."""
    view_id: ClassVar[str] = ""
    """The `:name` that opens this screen."""

    def __init__(self) -> None:
        super().__init__()
        self.filter_text = ""
        self.last: Fetched | None = None

    def compose_status(self) -> ComposeResult:
        yield StatusLine(self.screen_title)

    def compose_footer(self) -> ComposeResult:
        yield FilterBar(placeholder="filter rows (Esc clears)", id="filter-bar")
        yield Footer()

    def view(self) -> View:
        """What to fetch now; subclasses return their current view."""
        raise NotImplementedError

    def show(self, fetched: Fetched) -> None:
        """Render a snapshot (UI thread); subclasses update their widgets in place."""
        raise NotImplementedError

    def refilter(self) -> None:
        """Re-render the last snapshot with the current filter."""
        if self.last is not None:
            self.show(self.last)

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        if message.fetched.view != self.view():
            return  # an answer to a view this screen has since left
        self.last = message.fetched
        self.show(message.fetched)
        self.query_one(StatusLine).fetched(message.fetched.at, message.fetched.sources, self.wall_now())

    def on_fetch_failed(self, message: FetchFailed) -> None:
        self.query_one(StatusLine).failed(message.error, self.wall_now())

    def wall_now(self) -> datetime:
        """The app's wall clock (pinned in tests so snapshots are stable)."""
        wall = getattr(self.app, "wall_clock", datetime.now)
        now: datetime = wall()
        return now

    def request_refresh(self) -> None:
        """The view changed: ask the app to fetch now."""
        self.post_message(RefreshRequested())

    def action_filter(self) -> None:
        bar = self.query_one(FilterBar)
        bar.add_class("-active")
        bar.focus()

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()

    @on(Input.Changed, "#filter-bar")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value
        self.refilter()

    @on(Input.Submitted, "#filter-bar")
    def _filter_submitted(self) -> None:
        self.focus_next(DataTable)
