"""The app's side of incidents and runbook actions: keys and commands in, workers out.

`LlmdeckApp` inherits this. A key on `:incidents` posts a message; here the incident store
is written on a thread worker (SQLite never on the UI thread), the runbook picker and the
action dialog are opened, and plans and applies go through `RunbookBridge` (the desk, the
one choke point, on its own loop thread) on thread workers. What comes back is said with
`notify(..., markup=False)` through `cell`, and the screens refresh.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Protocol

from textual.app import App, SystemCommand
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from console.action_preview import ActionAsk, ActionConfirmed, ActionResult, ParamsError, parse_params
from console.action_types import ActionError, Origin
from console.incident_views import IncidentChange, apply_change
from console.runbook_actions import RunbookBridge, alert_scope, incident_scope, ranked
from console.safe_text import cell, sanitize
from panels.action_dialog import ActionDialog
from panels.messages import (
    ActionPlanned,
    ActionPlanRequested,
    IncidentChangeRequested,
    RunbookRequested,
    UndoRequested,
)
from panels.runbook_picker import RunbookPicker

if TYPE_CHECKING:
    from console.config import Config
    from console.incidents import Incident, IncidentStore
    from console.runbook_actions import Params
    from console.runbook_files import ActionSpec


class IncidentBackend(Protocol):
    """What this needs of the backend: the config and the incident store."""

    config: Config

    def incident_store(self) -> IncidentStore: ...


INCIDENT_USAGE = "usage: :incident open TITLE  (or `o` on :incidents)"


class IncidentFlow(App[None]):
    """Incident changes, the runbook picker, the action dialog, and their workers."""

    backend: IncidentBackend
    runbooks: RunbookBridge
    _attention: tuple[str, ...] = ()
    """The attention lines last said (a toast only when they change)."""

    def action_refresh_now(self) -> None:
        """Fetch the current view now (the app's poller)."""

    def runbook_scope(self, incident: Incident) -> dict[str, str]:
        """What the incident is about, for prefilling (a worker thread: it reads the timeline,
        and the app may read the cache to complete it): what its SLOs and budgets name, then
        the labels of the outside alerts that fired on it."""
        scope = incident_scope(incident, self.backend.config)
        store = self.backend.incident_store()
        try:
            found = alert_scope(store.timeline(incident.id))
        finally:
            store.close()  # this worker's thread ends here
        return {**found, **scope}

    # ---- incident changes: a / n / m / R / o, `:incident open TITLE` ------------------

    def on_incident_change_requested(self, message: IncidentChangeRequested) -> None:
        self.change_incident(message.change, message.incident_id, message.text)

    def change_incident(self, change: IncidentChange, incident_id: str, text: str = "") -> None:
        """Write one change to the incident store on a worker; say what happened."""
        store = self.backend.incident_store()

        def write() -> None:
            said = apply_change(store, change, incident_id, text)
            self.call_from_thread(self._incident_changed, said)

        self.run_worker(write, thread=True, exit_on_error=False, group="incident-change",
                        name="incident-change", description=f"incident {change}")

    def _incident_changed(self, said: str) -> None:
        self.notify(cell(said, 200), markup=False)
        self.action_refresh_now()

    def run_incident_command(self, arg: str | None) -> None:
        """`:incident open TITLE`."""
        verb, _, rest = (arg or "").strip().partition(" ")
        if verb.lower() != "open" or not rest.strip():
            self.notify(INCIDENT_USAGE, severity="warning", markup=False)
            return
        self.change_incident("open", "", rest.strip())

    # ---- runbooks: `x` -> picker -> plan -> dialog -> apply -----------------------------

    def on_runbook_requested(self, message: RunbookRequested) -> None:
        self.pick_runbook(message.incident)

    def pick_runbook(self, incident: Incident | None, origin: Origin = "key") -> None:
        """List the desk's actions on a worker (it may read runbook files), then the picker."""
        incident_id = incident.id if incident is not None else None

        def load() -> None:
            scope = self.runbook_scope(incident) if incident is not None else {}
            choices = ranked(self.runbooks.actions(), scope)
            self.call_from_thread(self._show_picker, choices, incident_id, origin)

        self.run_worker(load, thread=True, exclusive=True, exit_on_error=False, group="runbook-list",
                        name="runbook-list", description="list runbook actions")

    def _show_picker(self, choices: list[tuple[ActionSpec, Params]], incident_id: str | None,
                     origin: Origin) -> None:
        if not choices:
            self.notify("no runbook actions are defined (see `llmdeck runbook list`)",
                        severity="warning", markup=False)
            return
        self.push_screen(RunbookPicker(choices, incident_id, origin=origin), self._picked)

    def _picked(self, ask: ActionAsk | None) -> None:
        if ask is not None:
            self.open_action_dialog(ask)

    def run_runbook_command(self, arg: str | None) -> None:
        """`:runbook NAME k=v …`: plan it and show the dialog (the same desk and dialog as `x`);
        `:runbook` alone: the picker."""
        name, _, rest = (arg or "").strip().partition(" ")
        if not name:  # the picker, for the incident on screen if there is one
            current: Callable[[], Incident | None] | None = getattr(self.screen, "current_incident",
                                                                     None)
            self.pick_runbook(current() if current is not None else None, "command")
            return
        try:
            params = parse_params(rest)
        except ParamsError as exc:
            self.notify(cell(exc, 200), severity="error", markup=False)
            return
        self.open_action_dialog(ActionAsk(name, params, "command"))

    def open_action_dialog(self, ask: ActionAsk) -> None:
        """Show the dialog at once ("planning…") and plan `ask` on a worker."""
        dialog = ActionDialog(ask)
        self.push_screen(dialog, partial(self._action_confirmed, dialog))
        self._plan_action(dialog, ask)

    def on_undo_requested(self, message: UndoRequested) -> None:
        self.open_action_dialog(ActionAsk(message.action or "action", (), "undo", message.incident_id,
                                          undo_of=message.action_id))

    def on_action_plan_requested(self, message: ActionPlanRequested) -> None:
        if isinstance(message.dialog, ActionDialog):
            self._plan_action(message.dialog, message.ask)

    def _plan_action(self, dialog: ActionDialog, ask: ActionAsk) -> None:
        def plan() -> None:  # GETs only, on the desk's loop; the dialog drops a stale answer
            dialog.post_message(ActionPlanned(self.runbooks.plan(ask)))

        self.run_worker(plan, thread=True, exclusive=True, exit_on_error=False, group="action-plan",
                        name="action-plan", description=f"plan {ask.action}")

    def _action_confirmed(self, dialog: ActionDialog, confirmed: ActionConfirmed | None) -> None:
        if confirmed is None:  # Esc: the kept plan is never sent; the desk audits the cancel
            preview = dialog.preview
            if preview is not None and preview.ready:
                self.run_worker(partial(self.runbooks.cancel, preview), thread=True,
                                exit_on_error=False, group="action-cancel", name="action-cancel",
                                description=f"cancel {preview.ask.action}")
            return

        def apply() -> None:
            self.call_from_thread(self._action_applied, self.runbooks.apply(confirmed))

        self.run_worker(apply, thread=True, exit_on_error=False, group="action-apply",
                        name="action-apply", description=f"apply {confirmed.preview.ask.action}")

    def _action_applied(self, result: ActionResult) -> None:
        self.notify(cell(result.summary(), 400), severity="information" if result.ok else "error",
                    markup=False, timeout=15)
        self.action_refresh_now()

    # ---- time boxes: due reverts --------------------------------------------------------

    def run_due_reverts(self) -> None:
        """Perform reverts whose time box ended (a worker; the desk obeys read-only and role)."""
        def revert() -> None:
            results = self.runbooks.run_due_reverts()
            for result in results:
                self.call_from_thread(self._action_applied, result)
            self.call_from_thread(self._attention_seen, self.runbooks.attention())

        self.run_worker(revert, thread=True, exclusive=True, exit_on_error=False, group="action-revert",
                        name="action-revert", description="run due reverts")

    def _attention_seen(self, lines: tuple[str, ...]) -> None:
        """Say loudly, once per change, what needs a look: unknown outcomes, failed reverts."""
        if lines and lines != self._attention:
            self.notify(sanitize("\n".join(lines), max_chars=1200),
                        title="actions need attention (:incidents)",
                        severity="error", markup=False, timeout=30)
        self._attention = lines

    # ---- errors, palette ----------------------------------------------------------------

    def incident_worker_failed(self, worker: Worker[object], state: WorkerState) -> bool:
        """Say a failed incident/runbook worker's error (IncidentError, StateError, ActionError:
        their messages say what and where); whether the worker was one of these."""
        names = {"incident-change": "incident", "runbook-list": "runbooks", "action-plan": "plan",
                 "action-apply": "apply", "action-revert": "revert", "action-cancel": "cancel"}
        what = names.get(worker.group)
        if what is None:
            return False
        if state is WorkerState.ERROR:
            error = worker.error
            prefix = "" if isinstance(error, ActionError) else f"{type(error).__name__}: "
            self.notify(f"{what}: {prefix}{cell(error, 400)}", severity="error", markup=False,
                        timeout=15)
        return True

    def incident_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        """Palette entries: open an incident, run a runbook action."""
        yield SystemCommand("open an incident", "asks for a title (`o` on :incidents)",
                            self._palette_open_incident)
        yield SystemCommand("run a runbook action", "pick an action, plan it, confirm it",
                            partial(self._palette_runbook, screen))

    def _palette_open_incident(self) -> None:
        from textual.content import Content

        from panels.prompt_dialog import PromptDialog

        def titled(text: str | None) -> None:
            if text:
                self.change_incident("open", "", text)

        self.push_screen(PromptDialog(Content("Open an incident"), "title"), titled)

    def _palette_runbook(self, screen: Screen[object]) -> None:
        current: Callable[[], Incident | None] | None = getattr(screen, "current_incident", None)
        incident = current() if current is not None else None
        self.pick_runbook(incident, "palette")
