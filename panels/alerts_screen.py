"""`:alerts`: what Prometheus and Alertmanager say is firing, and the silences in force."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Static

from console.alerts import ActiveAlert, Silence
from console.formatting import ago, clock, duration
from console.source_views import AlertsPage, AlertsView, alerts_in_order
from console.views import Fetched, View
from panels.base import DeckScreen
from panels.messages import ExpireRequested, SilenceRequested
from panels.tables import DeckTable, selected_key, sync_rows
from panels.text import safe_cell

_STATE = {
    "firing": ("✖ firing", "bold reverse"),
    "active": ("✖ firing", "bold reverse"),
    "pending": ("▲ pending", "bold"),
    "unprocessed": ("▲ new", "bold"),
    "suppressed": ("◌ silenced", "dim"),
}


def alert_state_cell(alert: ActiveAlert) -> Text:
    """Firing / pending / silenced / inhibited as symbol + word."""
    known = _STATE.get(alert.state)
    if known is None:  # a state this console does not know: the source's text, made inert
        return safe_cell(alert.state, 12)
    word, style = known
    if alert.state == "suppressed" and alert.inhibited_by and not alert.silenced_by:
        word = "◌ inhibited"
    return Text(word, style=style, no_wrap=True)


class AlertsScreen(DeckScreen):
    """Every alert from Prometheus rules and Alertmanager, firing first, and the silences.

    `s` silences the selected alert and `x` expires the selected silence: each only asks the
    app (a message), which shows the plan and sends nothing until the source's name is typed.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "silence", "Silence", id="alerts.silence"),
        Binding("x", "expire", "Expire", id="alerts.expire"),
    ]

    screen_title = "alerts"
    view_id = "alerts"

    def __init__(self) -> None:
        super().__init__()
        self._alert_rows: dict[str, ActiveAlert] = {}
        self._silence_rows: dict[str, Silence] = {}

    def compose(self) -> ComposeResult:
        yield from self.compose_status()
        yield Static("", id="alerts-summary", classes="note")
        alerts: DataTable[Text | str] = DeckTable(id="alerts-table", cursor_type="row",
                                                  fixed_columns=2)
        alerts.add_columns("state", "alert", "severity", "for", "summary", "source", "labels")
        yield alerts
        yield Static("Silences", classes="section-title")
        silences: DataTable[Text | str] = DeckTable(id="silences-table", cursor_type="row")
        silences.add_columns("state", "matchers", "ends", "by", "comment", "id", "source")
        yield silences
        yield from self.compose_footer()

    def view(self) -> View:
        return AlertsView()

    def show(self, fetched: Fetched) -> None:
        page = fetched.snapshot
        if not isinstance(page, AlertsPage):
            return
        now = self.wall_now()  # alerts carry wall-clock times (the demo's data clock is simulated)
        alerts = alerts_in_order(page.alerts)
        live = {s.name for s in page.sources if s.state == "live"}
        with self.app.batch_update():
            self.query_one("#alerts-summary", Static).update(self._summary(page))
            keyed = {f"{a.source}:{a.fingerprint}:{i}": a for i, a in enumerate(alerts)}
            self._alert_rows = keyed
            rows = [(key, self._alert_cells(a, now, a.source in live)) for key, a in keyed.items()]
            sync_rows(self.query_one("#alerts-table", DataTable), rows, self.filter_text,
                      empty=self._empty_alerts(page))
            current = [s for s in page.silences if s.state != "expired"]
            self._silence_rows = {f"{s.source}:{s.id}": s for s in current}
            silence_rows = [(key, self._silence_cells(s, now)) for key, s in self._silence_rows.items()]
            sync_rows(self.query_one("#silences-table", DataTable), silence_rows,
                      self.filter_text, empty="no active or pending silences")

    def action_silence(self) -> None:
        """Silence the alert under the alerts table's cursor (the app plans it, you confirm)."""
        alert = self._alert_rows.get(selected_key(self.query_one("#alerts-table", DataTable)) or "")
        if alert is None:
            self.notify("no alert selected: move to one in the alerts table", severity="warning")
            return
        self.post_message(SilenceRequested(alert))

    def action_expire(self) -> None:
        """Expire the silence under the silences table's cursor (the app plans it, you confirm)."""
        key = selected_key(self.query_one("#silences-table", DataTable)) or ""
        silence = self._silence_rows.get(key)
        if silence is None:
            self.notify("no silence selected: move to one in the silences table", severity="warning")
            return
        self.post_message(ExpireRequested(silence))

    @staticmethod
    def _summary(page: AlertsPage) -> Text:
        firing = sum(1 for a in page.alerts if a.firing)
        silenced = sum(1 for a in page.alerts if a.state == "suppressed")
        pending = len(page.alerts) - firing - silenced
        line = Text(f"✖ {firing} firing · ▲ {pending} pending · ◌ {silenced} silenced")
        troubled = [s for s in page.sources if s.state != "live"]
        for s in troubled:
            line.append(" · ")
            line.append_text(safe_cell(f"{s.name} {s.state}: {s.detail}", 60))
        return line

    @staticmethod
    def _empty_alerts(page: AlertsPage) -> str:
        if not page.sources:
            return "no alert sources: add [[sources.prometheus]] or [[sources.alertmanager]]"
        if all(s.state == "down" for s in page.sources):
            return "no alert source answers: nothing is known about alerts (see :sources)"
        return "nothing firing"

    @staticmethod
    def _alert_cells(a: ActiveAlert, now: datetime, live: bool) -> list[object]:
        """One alert; an alert from a source that is not live any more is its last word,
        dimmed (the summary line says since when the source is stale)."""
        labels = " ".join(f"{k}={v}" for k, v in a.labels
                          if k not in ("alertname", "severity"))
        dim = "" if live else "dim"
        state = alert_state_cell(a)
        if not live:
            state.stylize("dim")
        return [
            state,
            safe_cell(a.name, 32, dim),
            safe_cell(a.severity or "-", 10, dim),
            Text(ago(a.started, now) if a.started else "-", style=dim, no_wrap=True),
            safe_cell(a.summary, 60, dim),
            safe_cell(a.source, 20, dim),
            safe_cell(labels, 80, dim),
        ]

    @staticmethod
    def _silence_cells(s: Silence, now: datetime) -> list[object]:
        ends = f"in {duration(s.ends - now)}" if s.ends > now else f"{clock(s.ends)}Z"
        return [
            Text(s.state, no_wrap=True),
            safe_cell(" ".join(str(m) for m in s.matchers), 50),
            ends,
            safe_cell(s.created_by, 16),
            safe_cell(s.comment, 40),
            safe_cell(s.id[:8], 8),
            safe_cell(s.source, 20),
        ]
