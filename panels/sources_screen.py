"""`:sources`: every source the console reads, whether it is live, and why not."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from console.formatting import ago, clock
from console.source_views import SourcesPage, SourcesView
from console.sources import STATE_ORDER, SourceStatus
from console.views import Fetched, View
from panels.base import DeckScreen
from panels.tables import DeckTable, selected_key, sync_rows
from panels.text import safe_cell

STATE_MARK = {"live": "● live", "stale": "▲ stale", "down": "✖ down"}


def source_state_cell(status: SourceStatus) -> Text:
    """The state as symbol + word, emphasised by severity (never by colour alone)."""
    style = ("", "bold", "bold reverse")[STATE_ORDER[status.state]]
    return Text(STATE_MARK[status.state], style=style, no_wrap=True)


class SourcesScreen(DeckScreen):
    """Is every source answering? Kind, state, last success, latency and the last error."""

    screen_title = "sources"
    view_id = "sources"

    def __init__(self) -> None:
        super().__init__()
        self.by_key: dict[str, SourceStatus] = {}

    def compose(self) -> ComposeResult:
        yield from self.compose_status()
        yield Static("", id="sources-summary", classes="note")
        table: DataTable[Text | str] = DeckTable(id="sources-table", cursor_type="row",
                                                 fixed_columns=1)
        table.add_columns("source", "kind", "state", "since", "last ok", "latency", "detail",
                          "last error")
        yield table
        yield Static("", id="sources-detail", classes="note")
        yield from self.compose_footer()

    def view(self) -> View:
        return SourcesView()

    def show(self, fetched: Fetched) -> None:
        page = fetched.snapshot
        if not isinstance(page, SourcesPage):
            return
        now = self.wall_now()
        ordered = sorted(page.statuses, key=lambda s: -STATE_ORDER[s.state])
        self.by_key = {f"{i}:{s.name}": s for i, s in enumerate(ordered)}
        rows = [(key, self._cells(s, now)) for key, s in self.by_key.items()]
        with self.app.batch_update():
            counts = {state: sum(1 for s in page.statuses if s.state == state)
                      for state in ("live", "stale", "down")}
            self.query_one("#sources-summary", Static).update(Text(
                f"{len(page.statuses)} sources · ● {counts['live']} live · ▲ {counts['stale']}"
                f" stale · ✖ {counts['down']} down"))
            table = self.query_one("#sources-table", DataTable)
            sync_rows(table, rows, self.filter_text,
                      empty="no sources: add [[sources.prometheus]], [[sources.alertmanager]]"
                            " or [[sources.scrape]] to the config")
            self._show_detail(selected_key(table))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail(selected_key(event.data_table))

    def _show_detail(self, key: str | None) -> None:
        """The whole story of the source under the cursor, wrapped (the table cuts it at 80
        columns): its state, since when, and the error."""
        status = self.by_key.get(key) if key is not None else None
        line = Text()
        if status is not None:
            line.append_text(safe_cell(status.name, 40))
            line.append(f" {STATE_MARK[status.state]}")
            if status.since is not None and status.state != "live":
                line.append(f" since {clock(status.since)}Z")
            if status.detail:
                line.append(" · ")
                line.append_text(safe_cell(status.detail, 300))
            if status.last_error and status.last_error != status.detail:
                line.append(" · last error: ")
                line.append_text(safe_cell(status.last_error, 300))
        self.query_one("#sources-detail", Static).update(line)

    @staticmethod
    def _cells(s: SourceStatus, now: datetime) -> list[object]:
        latency = "-" if s.latency_ms is None else f"{s.latency_ms:,.0f}ms"
        since = f"{clock(s.since)}Z" if s.since is not None and s.state != "live" else ""
        error = ""
        if s.last_error:
            error = f"{ago(s.last_error_at, now)} ago: {s.last_error}" if s.last_error_at else s.last_error
        return [
            safe_cell(s.name, 28),
            safe_cell(s.kind, 14),
            source_state_cell(s),
            since,
            ago(s.last_ok, now) if s.last_ok else "never",
            latency,
            safe_cell(s.detail, 80),
            safe_cell(error, 80),
        ]
