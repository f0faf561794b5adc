"""The screen every llmdeck view derives from: a view to fetch, a status line, `/` filtering."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import Screen
from textual.widgets import DataTable, Input, Static

from console.safe_text import cell
from console.views import Fetched, View
from panels.key_hints import KeyHints
from panels.messages import FetchFailed, RefreshRequested, SnapshotReady
from panels.status_line import StatusLine
from panels.tables import shown_rows
from panels.text import SafeInput


class FilterBar(SafeInput):
    """`/` opens it; typing narrows the screen's tables; Enter keeps the filter, Esc clears it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "submit", "Keep filter", id="filter.keep"),
        Binding("escape", "clear", "Clear filter", id="filter.clear"),
    ]

    def watch_value(self, value: str) -> None:
        # Applied here, inside the key press's own handling, and not on Input.Changed: that
        # message is handled after the screen's first repaint, so every keystroke painted
        # twice (the typed character, then the filtered tables one 60 Hz frame later).
        screen = self.screen if self.is_attached else None
        if isinstance(screen, DeckScreen):
            screen.set_filter(value)

    def action_clear(self) -> None:
        self.close()
        self.screen.focus_next(DataTable)

    def close(self) -> None:
        """Clear the filter and hide the filter line."""
        self.value = ""
        self.show_bar(False)

    def show_bar(self, active: bool) -> None:
        """Show or hide the filter line (this input and its match count) above the footer."""
        self.set_class(active, "-active")
        if self.parent is not None:
            self.parent.set_class(active, "-active")


def match_count(rows: int) -> str:
    """What the filter line says beside the typed text."""
    if rows == 0:
        return "no rows match"
    return "1 row matches" if rows == 1 else f"{rows:,} rows match"


class PanelError(Static):
    """Above the footer while this screen's last fetch failed with a message worth reading whole
    (a corrupt cache: where, what to do); hidden otherwise."""

    DEFAULT_CSS = """
    PanelError { display: none; height: auto; max-height: 10; padding: 0 1; color: $error; }
    PanelError.-shown { display: block; }
    """

    def __init__(self) -> None:
        super().__init__(id="panel-error")

    def say(self, text: str | None) -> None:
        """Show `text` (untrusted: it passes through `cell`), or hide the line when None."""
        if text is None:
            if self.has_class("-shown"):
                self.remove_class("-shown")
                self.update("")
            return
        self.update(Content("✖ " + cell(text, 600)))
        self.add_class("-shown")


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
        # One bottom dock holding both lines, so the open filter line takes a row of its own
        # above the footer (two widgets docked bottom would be drawn over each other).
        with Vertical(id="bottom-bar"):
            yield PanelError()
            with Horizontal(id="filter-line"):
                yield Static("/", id="filter-prompt")
                yield FilterBar(placeholder="filter rows (Esc clears)", id="filter-bar")
                yield Static("", id="filter-count")
            yield KeyHints(id="footer")

    def view(self) -> View:
        """What to fetch now; subclasses return their current view."""
        raise NotImplementedError

    def show(self, fetched: Fetched) -> None:
        """Render a snapshot (UI thread); subclasses update their widgets in place."""
        raise NotImplementedError

    def refilter(self) -> None:
        """Render the last snapshot with the current filter, and count the rows it leaves."""
        if self.last is not None:
            self.show(self.last)
        self.count_matches()

    def count_matches(self) -> None:
        """Say beside the filter how many table rows the filter leaves (cleared when unfiltered)."""
        count = self.query_one("#filter-count", Static)
        if not self.filter_text.strip():
            count.update("")
            return
        count.update(match_count(sum(shown_rows(t) for t in self.query(DataTable))))

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        if message.fetched.view != self.view():
            return  # an answer to a view this screen has since left
        self.last = message.fetched
        self.refilter()
        self.query_one(StatusLine).fetched(message.fetched.at, message.fetched.sources, self.wall_now())
        self.query_one(PanelError).say(None)

    def on_fetch_failed(self, message: FetchFailed) -> None:
        check_fault = getattr(self.app, "check_fault", None)  # a cache fault: every status line
        if callable(check_fault):
            check_fault()
        self.query_one(StatusLine).failed(message.error, self.wall_now())
        self.query_one(PanelError).say(message.detail)

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
        bar.show_bar(True)
        bar.focus()

    def action_back(self) -> None:
        bar = self.query_one(FilterBar)
        if bar.has_class("-active"):  # a kept filter is cleared first, as in the bar itself
            bar.close()
            return
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()

    def set_filter(self, text: str) -> None:
        """Narrow this screen's tables to rows containing `text` (the filter bar calls this)."""
        if text == self.filter_text:
            return
        self.filter_text = text
        self.refilter()

    @on(Input.Submitted, "#filter-bar")
    def _filter_submitted(self) -> None:
        self.focus_next(DataTable)
