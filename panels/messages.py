"""Typed messages between the app's workers and the screens, and the screens' intents."""

from __future__ import annotations

from textual.message import Message

from console.action_preview import ActionAsk, ActionPreview
from console.alerts import ActiveAlert, Silence
from console.incident_views import IncidentChange
from console.incidents import Incident
from console.silence_preview import SilenceAsk, SilencePreview
from console.views import Fetched, View


class SnapshotReady(Message):
    """A worker fetched a view; the screen that asked renders it."""

    def __init__(self, fetched: Fetched) -> None:
        super().__init__()
        self.fetched = fetched


class FetchFailed(Message):
    """A worker could not fetch a view; the screen keeps its last data and says so."""

    def __init__(self, view: View, error: str, detail: str | None = None) -> None:
        super().__init__()
        self.view = view
        self.error = error
        """A few words for the status line."""
        self.detail = detail
        """The whole message for the panel itself (a corrupt cache: where, what to do), if any."""


class RefreshRequested(Message):
    """A screen's view changed (new filter, selection): fetch it now, not at the next tick."""


class Navigate(Message):
    """Open another screen with a view (drill-down), e.g. `Navigate("traces", view)`."""

    def __init__(self, target: str, view: View | None = None) -> None:
        super().__init__()
        self.target = target
        self.view = view


class SilenceRequested(Message):
    """`s` on `:alerts`: silence this alert (the app opens the silence dialog and plans it)."""

    def __init__(self, alert: ActiveAlert) -> None:
        super().__init__()
        self.alert = alert


class ExpireRequested(Message):
    """`x` on `:alerts`: expire this silence (the app opens the silence dialog and plans it)."""

    def __init__(self, silence: Silence) -> None:
        super().__init__()
        self.silence = silence


class SilencePlanRequested(Message):
    """The silence dialog's duration or comment changed: plan `ask` again for `dialog`."""

    def __init__(self, dialog: object, ask: SilenceAsk) -> None:
        super().__init__()
        self.dialog = dialog
        self.ask = ask


class SilencePlanned(Message):
    """A worker planned an ask: the silence dialog shows the plan (or why there is none)."""

    def __init__(self, preview: SilencePreview) -> None:
        super().__init__()
        self.preview = preview


class IncidentChangeRequested(Message):
    """A key on `:incidents` or an incident: open one, acknowledge, mitigate, resolve or add a
    note (the app writes the incident store on a worker; the next poll shows it)."""

    def __init__(self, change: IncidentChange, incident_id: str, text: str = "") -> None:
        super().__init__()
        self.change = change
        self.incident_id = incident_id
        """"" for `open`."""
        self.text = text
        """The note, or the new incident's title."""


class RunbookRequested(Message):
    """`x` on an incident: pick a runbook action (prefilled from the incident's causes)."""

    def __init__(self, incident: Incident | None) -> None:
        super().__init__()
        self.incident = incident


class UndoRequested(Message):
    """`u` on an applied action's timeline entry: plan putting back the state before it."""

    def __init__(self, action_id: str, action: str, incident_id: str) -> None:
        super().__init__()
        self.action_id = action_id
        self.action = action
        self.incident_id = incident_id


class ActionPlanRequested(Message):
    """The action dialog's parameters changed: plan `ask` again for `dialog`."""

    def __init__(self, dialog: object, ask: ActionAsk) -> None:
        super().__init__()
        self.dialog = dialog
        self.ask = ask


class ActionPlanned(Message):
    """A worker planned an ask through the desk: the action dialog shows it (or why not)."""

    def __init__(self, preview: ActionPreview) -> None:
        super().__init__()
        self.preview = preview
