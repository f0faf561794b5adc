"""`:incidents` (the list, unresolved first) and one incident's detail with its timeline.

Both screens only ask: a key posts `IncidentChangeRequested` or `RunbookRequested` and the
app writes the store (SQLite) or plans the action on a worker; the next poll shows the
result. Every title, note, cause and author is untrusted text and reaches a widget only
through `panels.text` (safe_cell / template), so `[@click=app.quit]` in a title is text.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.events import Resize
from textual.widgets import DataTable, Static

from console.formatting import ago, clock
from console.incident_views import (
    IncidentChange,
    IncidentPage,
    IncidentsPage,
    IncidentsView,
    IncidentView,
    cause_scope,
)
from console.incidents import Incident, TimelineEntry
from console.safe_text import cell
from console.views import Fetched, View
from panels.base import DeckScreen
from panels.messages import IncidentChangeRequested, Navigate, RunbookRequested, UndoRequested
from panels.prompt_dialog import PromptDialog
from panels.tables import DeckTable, selected_key, sync_rows
from panels.text import safe, safe_cell, template

_STATE = {
    "open": ("✖ open", "bold reverse"),
    "acknowledged": ("▲ acked", "bold"),
    "mitigated": ("◐ mitigated", ""),
    "resolved": ("✔ resolved", "dim"),
}


UNDOABLE = ("applied", "unverified")
"""Outcomes whose captured before-state `u` can put back."""

_CHANGES: dict[str, IncidentChange] = {
    "acknowledge": "acknowledge", "mitigate": "mitigate", "resolve": "resolve"}
"""The changes a key binding may name (its action string is text)."""


def state_cell(incident: Incident) -> Text:
    """The lifecycle state as symbol + word (legible without colour)."""
    word, style = _STATE.get(incident.state, (incident.state, ""))
    return Text(word, style=style, no_wrap=True)


def severity_cell(incident: Incident) -> Text:
    """sev1/sev2 stand out (bold), sev3/sev4 plain."""
    return Text(incident.severity, style="bold" if incident.severity in ("sev1", "sev2") else "",
                no_wrap=True)


def causes_text(incident: Incident, width: int = 48) -> str:
    """The causes in at most `width` cells: the first cause and how many more
    (`slo:anthropic availability +2`); when that is too long the first one's name alone, cut
    if need be (`anthropic availa… +2`, `Anthropic…` for `alert:am/AnthropicErrorBudgetBurn`),
    or `3 causes` when it would be cut shorter than that; `by hand` when opened by hand."""
    causes = incident.causes
    if not causes:
        return "by hand"
    more = f" +{len(causes) - 1}" if len(causes) > 1 else ""
    first = cell(causes[0], 500)
    if len(first) + len(more) <= width:
        return first + more
    short = cause_scope(first)[1].rsplit("/", 1)[-1] or first
    if len(short) + len(more) <= width:
        return short + more
    room = width - len(more) - 1  # the ellipsis
    if more and room < 16:  # `anthropic… +2` says less than `3 causes`
        return f"{len(causes)} causes"
    return short[:max(room, 1)] + "…" + more


def fit(text: object, width: int) -> str:
    """Untrusted text as one line of at most `width` cells, cut with an ellipsis."""
    line = cell(text, 500)
    return line if len(line) <= width else line[:max(width - 1, 0)] + "…"


WIDE_AT = 120
"""From this many columns on, `:incidents` shows the owner and longer causes."""


class IncidentKeys(DeckScreen):
    """The keys both incident screens share; each acts on `current_incident()`."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "change('acknowledge')", "Ack", id="incidents.acknowledge"),
        Binding("n", "note", "Note", id="incidents.note"),
        Binding("m", "change('mitigate')", "Mitigated", id="incidents.mitigate"),
        Binding("R", "change('resolve')", "Resolve", id="incidents.resolve"),
        Binding("x", "runbook", "Runbook", id="incidents.runbook"),
    ]

    def current_incident(self) -> Incident | None:
        """The incident the keys act on (the list's cursor row, the detail's incident)."""
        raise NotImplementedError

    def _chosen(self) -> Incident | None:
        incident = self.current_incident()
        if incident is None:
            self.notify("no incident selected", severity="warning")
        return incident

    def action_change(self, change: str) -> None:
        """a / m / R: acknowledge, mitigate or resolve (the app writes it on a worker)."""
        known = _CHANGES.get(change)
        incident = self._chosen()
        if incident is not None and known is not None:
            self.post_message(IncidentChangeRequested(known, incident.id))

    def action_note(self) -> None:
        """n: ask for a note, then add it to the timeline."""
        incident = self._chosen()
        if incident is None:
            return
        incident_id = incident.id

        def noted(text: str | None) -> None:
            if text:
                self.post_message(IncidentChangeRequested("note", incident_id, text))

        self.app.push_screen(PromptDialog(template("Note on [b]$id[/b]", id=incident_id),
                                          "what happened, what you did"), noted)

    def action_runbook(self) -> None:
        """x: pick a runbook action for this incident (prefilled from its causes), then plan it."""
        incident = self._chosen()
        if incident is not None:
            self.post_message(RunbookRequested(incident))


class IncidentsScreen(IncidentKeys):
    """Every incident, unresolved first; Enter opens one; `o` opens a new one by hand."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("o", "open_incident", "Open new", id="incidents.open"),
    ]
    DEFAULT_CSS = """
    IncidentsScreen #incidents-table { height: 1fr; max-height: 100%; }
    """
    screen_title = "incidents"
    view_id = "incidents"

    def __init__(self) -> None:
        super().__init__()
        self._rows: dict[str, Incident] = {}
        self._page: IncidentsPage | None = None
        self._wide: bool | None = None

    def compose(self) -> ComposeResult:
        yield from self.compose_status()
        yield Static("", id="incidents-summary", classes="note")
        yield Static("", id="incidents-attention", classes="warning-line")
        yield Static("", id="incidents-reverts", classes="note")
        yield DeckTable(id="incidents-table", cursor_type="row", fixed_columns=1)
        yield from self.compose_footer()

    def on_mount(self) -> None:
        self._set_columns(self.size.width or 80)

    def on_resize(self, event: Resize) -> None:
        """Across WIDE_AT the columns change (owner shown or not): rebuild and show again."""
        if self._set_columns(event.size.width) and self._page is not None:
            self._show_page(self._page)

    def _set_columns(self, width: int) -> bool:
        """The columns for this width; True when they changed."""
        wide = width >= WIDE_AT
        if wide == self._wide:
            return False
        self._wide = wide
        table = self.query_one("#incidents-table", DataTable)
        table.clear(columns=True)
        table.add_columns("id", "sev", "state", "age", "title", "causes", *(["owner"] if wide else []))
        return True

    def view(self) -> View:
        return IncidentsView()

    def show(self, fetched: Fetched) -> None:
        page = fetched.snapshot
        if isinstance(page, IncidentsPage):
            self._page = page
            self._show_page(page)

    def _show_page(self, page: IncidentsPage) -> None:
        now = self.wall_now()
        self._rows = {i.id: i for i in page.incidents}
        width = self.size.width or 80
        rows = [(i.id, self._cells(i, now, width)) for i in page.incidents]
        with self.app.batch_update():
            self.query_one("#incidents-summary", Static).update(self._summary(page))
            attention = self.query_one("#incidents-attention", Static)
            attention.update(safe("\n".join(f"✖ {line}" for line in page.attention), 4000))
            attention.display = bool(page.attention)
            reverts = self.query_one("#incidents-reverts", Static)
            reverts.update(safe("\n".join(page.reverts), 2000))
            reverts.display = bool(page.reverts)
            sync_rows(self.query_one("#incidents-table", DataTable), rows, self.filter_text,
                      empty="no incidents: `o` opens one by hand")

    def current_incident(self) -> Incident | None:
        return self._rows.get(selected_key(self.query_one("#incidents-table", DataTable)) or "")

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a row: that incident's detail and timeline."""
        incident = self._rows.get(str(event.row_key.value))
        if incident is not None:
            self.post_message(Navigate("incident", IncidentView(incident.id)))

    def action_open_incident(self) -> None:
        """o: open an incident by hand (the title is asked for, then written on a worker)."""
        def titled(text: str | None) -> None:
            if text:
                self.post_message(IncidentChangeRequested("open", "", text))

        self.app.push_screen(PromptDialog(Content("Open an incident"), "title"), titled)

    @staticmethod
    def _summary(page: IncidentsPage) -> Content:
        if page.problem:
            return template("✖ incident store: $problem", problem=page.problem)
        unresolved = [i for i in page.incidents if i.state != "resolved"]
        opened = sum(1 for i in unresolved if i.state == "open")
        if not opened:
            return template("✔ nothing open · $active unresolved · $all listed · Enter opens one",
                            active=len(unresolved), all=len(page.incidents))
        return template("✖ $open open · $active unresolved · $all listed · Enter opens one",
                        open=opened, active=len(unresolved), all=len(page.incidents))

    @staticmethod
    def _cells(i: Incident, now: datetime, width: int = 80) -> list[object]:
        """One row fitting `width` columns: at 80 the title gets what id, sev, state, age and a
        10-cell causes summary leave (29 cells); from WIDE_AT on the owner and longer
        causes come too, and the title takes the rest (up to 60)."""
        dim = "dim" if i.state == "resolved" else ""
        wide = width >= WIDE_AT
        causes_width = 26 if wide else 10
        # id 7, sev 4, state 11, age 5, causes, owner 10: each column pads 1 each side
        # (2 per column), and 2 for the scrollbar (ids up to INC-9999 fit at 80)
        used = 7 + 4 + 11 + 5 + causes_width + (10 if wide else 0) + 2 * (7 if wide else 6) + 2
        title_width = max(10, min(60, width - used))
        return [
            safe_cell(i.id, 9, dim),
            severity_cell(i),
            state_cell(i),
            Text(ago(i.opened_at, now), style=dim, no_wrap=True),
            Text(fit(i.title, title_width), style=dim, no_wrap=True),
            Text(causes_text(i, causes_width), style=dim, no_wrap=True),
            *([Text(fit(i.owner, 10), style=dim, no_wrap=True)] if wide else []),
        ]


class IncidentScreen(IncidentKeys):
    """One incident: who owns it, since when, its causes, and the timeline as it was written."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("u", "undo", "Undo action", id="incident.undo"),
    ]
    DEFAULT_CSS = """
    IncidentScreen #timeline-table { height: 1fr; max-height: 100%; }
    IncidentScreen #incident-title { height: auto; padding: 0 1; }
    IncidentScreen #timeline-entry { height: auto; max-height: 4; }
    """
    screen_title = "incident"
    view_id = "incident"

    def __init__(self, view: View | None = None) -> None:
        super().__init__()
        self.incident_view = view if isinstance(view, IncidentView) else IncidentView("")
        self.incident: Incident | None = None
        self._entries: dict[str, TimelineEntry] = {}

    def compose(self) -> ComposeResult:
        yield from self.compose_status()
        yield Static(Content("loading…"), id="incident-header", classes="note")
        yield Static("", id="incident-title")
        yield Static("", id="incident-causes", classes="note")
        yield Static("Timeline, newest first", classes="section-title")
        table: DataTable[Text | str] = DeckTable(id="timeline-table", cursor_type="row")
        table.add_columns("ago", "kind", "author", "what")
        yield table
        yield Static("", id="timeline-entry", classes="note")
        yield from self.compose_footer()

    def view(self) -> View:
        return self.incident_view

    def current_incident(self) -> Incident | None:
        return self.incident

    def show(self, fetched: Fetched) -> None:
        page = fetched.snapshot
        if not isinstance(page, IncidentPage):
            return
        self.incident = page.incident
        with self.app.batch_update():
            header = self.query_one("#incident-header", Static)
            if page.incident is None:
                header.update(template("✖ $id: $problem", id=page.view.incident_id,
                                       problem=page.problem))
                return
            i = page.incident
            now = self.wall_now()
            header.update(template(
                "[b]$id[/b] · $sev · [reverse]$state[/reverse] · owner $owner · opened $ago ago"
                " ($opened wall clock)", id=i.id, sev=i.severity, state=i.state, owner=i.owner,
                opened=f"{clock(i.opened_at)}Z", ago=ago(i.opened_at, now)))
            self.query_one("#incident-title", Static).update(
                template("[b]$title[/b]", title=i.title))
            self.query_one("#incident-causes", Static).update(
                template("causes: $causes", causes=", ".join(i.causes) or "opened by hand"))
            self._entries = {f"{e.seq}": e for e in page.timeline}
            rows = [(f"{e.seq}", self._entry_cells(e, now)) for e in reversed(page.timeline)]
            table = self.query_one("#timeline-table", DataTable)
            sync_rows(table, rows, self.filter_text, empty="nothing on the timeline yet")
            self._show_entry(selected_key(table))

    def action_undo(self) -> None:
        """u: undo the applied action under the cursor (plan, then confirm, as any action)."""
        entry = self._entries.get(selected_key(self.query_one("#timeline-table", DataTable)) or "")
        data = entry.data if entry is not None else {}
        action_id = data.get("action_id")
        if entry is None or entry.kind != "action_outcome" or not isinstance(action_id, str) \
                or data.get("status") not in UNDOABLE:
            self.notify("move to an applied action's outcome on the timeline to undo it",
                        severity="warning")
            return
        self.post_message(UndoRequested(action_id, str(data.get("action", "")), entry.incident_id))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """The entry under the cursor, whole, below the table (its column is cut at 80)."""
        self._show_entry(str(event.row_key.value))

    def _show_entry(self, key: str | None) -> None:
        entry = self._entries.get(key or "")
        line = self.query_one("#timeline-entry", Static)
        if entry is None:
            line.update("")
        else:
            line.update(template("$kind by $author at $at wall clock: $text",
                                 kind=entry.kind.replace("_", " "), author=entry.author,
                                 at=f"{clock(entry.at)}Z", text=entry.text))

    @staticmethod
    def _entry_cells(e: TimelineEntry, now: datetime) -> list[object]:
        """Ages, not clock times: entries are stamped with the wall clock, while the status
        line's `data HH:MMZ` is the data's clock (in the demo, simulated and hours apart); the
        entry line below the table gives the wall-clock time, labelled."""
        loud = "bold" if e.kind in ("alert_firing", "action_outcome", "revert") else ""
        return [
            Text(ago(e.at, now), no_wrap=True),
            Text(e.kind.replace("_", " "), style=loud, no_wrap=True),
            safe_cell(e.author, 14),
            safe_cell(e.text, 300),
        ]
