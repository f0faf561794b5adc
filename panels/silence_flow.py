"""The app's side of silences: `s` / `x` on :alerts in, the dialog, plan and apply on workers.

`LlmdeckApp` inherits this (as it does `panels.incident_flow.IncidentFlow`). A key on :alerts
posts `SilenceRequested` / `ExpireRequested`; here the dialog is opened, the plan is read on
a thread worker (GETs only) and handed to the dialog, and a confirmation is applied, or an
Esc handed to the desk as a cancel, on another: `console.silence_actions.SilenceDesk` (the
silence desk, behind the one choke point) decides what is sent. The answer is said with
`notify(..., markup=False)` through `cell`, and the screen refreshes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import App

from console.safe_text import cell
from console.silence_preview import Confirmation, SilenceAsk, SilenceResult
from panels.messages import ExpireRequested, SilencePlanned, SilencePlanRequested, SilenceRequested
from panels.silence_dialog import SilenceDialog

if TYPE_CHECKING:
    from console.silence_actions import SilenceDesk


class SilenceFlow(App[None]):
    """The silence dialog and its plan/apply/cancel workers."""

    silence_desk: SilenceDesk
    _operator: str
    """Who silences (the app looks it up once)."""

    def _schedule(self, delay: float) -> None:
        """Poll in `delay` seconds (the app's poller)."""

    def on_silence_requested(self, message: SilenceRequested) -> None:
        self._open_silence_dialog(self.silence_desk.ask_silence(message.alert, self._operator))

    def on_expire_requested(self, message: ExpireRequested) -> None:
        self._open_silence_dialog(self.silence_desk.ask_expire(message.silence))

    def _open_silence_dialog(self, ask: SilenceAsk) -> None:
        dialog = SilenceDialog(ask)
        self.push_screen(dialog, lambda confirmation: self._silence_confirmed(confirmation, dialog))
        self._plan_silence(dialog, ask)

    def on_silence_plan_requested(self, message: SilencePlanRequested) -> None:
        if isinstance(message.dialog, SilenceDialog):
            self._plan_silence(message.dialog, message.ask)

    def _plan_silence(self, dialog: SilenceDialog, ask: SilenceAsk) -> None:
        def plan() -> None:  # GETs only, on the hub's loop; the dialog drops a stale answer
            dialog.post_message(SilencePlanned(self.silence_desk.plan(ask)))
        self.run_worker(plan, thread=True, exclusive=True, exit_on_error=False, group="silence-plan",
                        name="silence-plan", description="plan a silence")

    def _silence_confirmed(self, confirmation: Confirmation | None, dialog: SilenceDialog) -> None:
        if confirmation is None:  # Esc: the kept plan goes to the desk unconfirmed (an audited cancel);
            preview = dialog.preview  # a read-only plan could not be confirmed: nothing to cancel
            if preview is not None and preview.ready and not preview.read_only:
                self.run_worker(lambda: self.silence_desk.cancel(preview), thread=True,
                                exit_on_error=False, group="silence-apply", name="silence-cancel",
                                description="cancel a silence plan")
            return
        def apply() -> None:
            self.call_from_thread(self._silence_applied, self.silence_desk.apply(confirmation))
        self.run_worker(apply, thread=True, exit_on_error=False, group="silence-apply",
                        name="silence-apply", description="apply a confirmed silence plan")

    def _silence_applied(self, result: SilenceResult) -> None:
        self.notify(cell(result.summary(), 400), severity="information" if result.ok else "error",
                    markup=False, timeout=15)
        self._schedule(0)
