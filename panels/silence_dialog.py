"""The silence dialog: the plan of one silence create or expire, confirmed by typing the source name.

It sends nothing and plans nothing itself: the app plans on a worker and posts
`SilencePlanned`; the dialog shows the plan (the exact request, secrets masked, and the
alerts it affects) and dismisses with a `Confirmation` only when the typed text equals
the Alertmanager source's name (Enter alone never confirms). Esc dismisses with None.
Editing the duration or comment and pressing Enter there asks for a new plan.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from console.silence_preview import Confirmation, SilenceAsk, SilencePreview
from panels.messages import SilencePlanned, SilencePlanRequested
from panels.text import SafeInput, safe, safe_line, template

READ_ONLY_NOTE = "read-only: nothing will be sent"
"""The note's prefix; the desk's own reason follows (LLMDECK_READONLY=1, --read-only, or the
environment is prod and llmdeck was started without --write)."""


class SilenceDialog(ModalScreen[Confirmation | None]):
    """Shows a silence plan; Confirm works only once the source's name is typed; Esc cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="silence.cancel"),
    ]

    DEFAULT_CSS = """
    SilenceDialog { align: center middle; background: $background 60%; }
    #silence-box {
        width: 100; max-width: 100%; height: 90%;
        border: round $error; background: $surface; padding: 0 1;
    }
    #silence-title { text-style: bold; height: auto; }
    #silence-fields { height: 1; margin-top: 1; }
    #silence-confirm-line { height: 1; }
    .silence-label { width: auto; padding: 0 1 0 0; }
    #silence-length { width: 8; margin-right: 2; }
    #silence-comment { width: 1fr; }
    #silence-plan-box { height: 1fr; margin-top: 1; background: $panel; }
    #silence-note { height: auto; margin-top: 1; }
    #silence-note.-problem { color: $error; text-style: bold; }
    #silence-prompt { height: auto; margin-top: 1; }
    #silence-typed { width: 1fr; margin-right: 1; }
    #silence-confirm-line Button { margin-left: 1; }
    """

    def __init__(self, ask: SilenceAsk, preview: SilencePreview | None = None) -> None:
        super().__init__()
        self.ask = ask
        """The ask last sent for planning; a plan for any other is stale and dropped."""
        self.preview = preview if preview is not None and preview.ask == ask else None
        self._editing = ""
        """The id of the field whose Enter asked for the plan being waited for."""

    def compose(self) -> ComposeResult:
        ask = self.ask
        with Vertical(id="silence-box"):
            if ask.action == "create":
                title = template("Silence alert [b]$name[/b] in Alertmanager $source",
                                 name=ask.target, source=ask.source or "(none)")
            else:
                title = template("Expire silence [b]$name[/b] in Alertmanager $source",
                                 name=ask.target, source=ask.source)
            yield Static(title, id="silence-title")
            if ask.action == "create":
                with Horizontal(id="silence-fields"):
                    yield Static("for", classes="silence-label")
                    yield SafeInput(ask.length, placeholder="2h", id="silence-length", compact=True)
                    yield Static("comment", classes="silence-label")
                    yield SafeInput(ask.comment, placeholder="why (required)", id="silence-comment",
                                    compact=True)
            with VerticalScroll(id="silence-plan-box"):
                yield Static(Content("planning… (reads only)"), id="silence-plan")
            yield Static("", id="silence-note")
            # the prompt has a line of its own: beside the field it left the field a few
            # columns at 80x24 and pushed the buttons off the dialog
            yield Static(template("Type the source name [b]$source[/b] to confirm:",
                                  source=ask.source or "-"), id="silence-prompt")
            with Horizontal(id="silence-confirm-line"):
                yield SafeInput(placeholder="source name", id="silence-typed", compact=True)
                yield Button("Confirm", id="silence-confirm", variant="error", compact=True,
                             disabled=True)
                yield Button("Cancel", id="silence-cancel", compact=True)

    def on_mount(self) -> None:
        self._render_state()
        if self.preview is not None and not self.preview.sendable:
            self._focus_cancel()
        else:
            self.query_one("#silence-typed", Input).focus()

    # ---- what the dialog shows ---------------------------------------------------

    def edited_ask(self) -> SilenceAsk:
        """The ask as the fields read now (a create's duration and comment may be edited)."""
        if self.ask.action != "create":
            return self.ask
        length = self.query_one("#silence-length", Input).value.strip()
        comment = self.query_one("#silence-comment", Input).value.strip()
        return replace(self.ask, length=length, comment=comment)

    def can_confirm(self) -> bool:
        """A sendable plan of the fields as they read, and the source's name typed exactly."""
        preview = self.preview
        if preview is None or not preview.sendable or self.edited_ask() != preview.ask:
            return False
        return self.query_one("#silence-typed", Input).value.strip() == preview.ask.source

    def _render_state(self) -> None:
        preview = self.preview
        plan = self.query_one("#silence-plan", Static)
        note = self.query_one("#silence-note", Static)
        problem = False
        if preview is None:
            plan.update(Content("planning… (reads only: nothing is sent until you confirm)"))
            note.update(Content("Esc cancels"))
        elif not preview.ready:
            plan.update(safe(preview.problem, 2000))
            note.update(Content("nothing can be sent: Esc closes"))
            problem = True
        else:
            plan.update(safe(preview.plan_text, 20_000))
            if preview.read_only:
                reason = preview.read_only_reason or "the desk refuses to send"
                note.update(template("$note ($reason)", note=READ_ONLY_NOTE, reason=reason))
                problem = True
            elif self.edited_ask() != preview.ask:
                note.update(Content("changed: press Enter in the field to plan again"))
            elif preview.ask.action == "create":
                note.update(template("silences $n alert(s) now · Enter in for/comment re-plans ·"
                                     " Esc: nothing sent", n=preview.affects))
            else:
                note.update(template("stops silencing $n alert(s) now · Esc cancels: nothing sent",
                                     n=preview.affects))
        note.set_class(problem, "-problem")
        typed = self.query_one("#silence-typed", Input)
        typed.disabled = preview is not None and not preview.sendable
        self.query_one("#silence-confirm", Button).disabled = not self.can_confirm()

    # ---- events -------------------------------------------------------------------

    def on_silence_planned(self, message: SilencePlanned) -> None:
        if message.preview.ask != self.ask:
            return  # a plan of fields since edited again
        self.preview = message.preview
        self._render_state()
        # after Textual has moved focus off a field that was disabled
        self.call_after_refresh(self._focus_after_plan)

    def _focus_after_plan(self) -> None:
        """Back to the field being edited; else, when nothing can be sent, on Cancel."""
        if self._editing:
            self.query_one(f"#{self._editing}", Input).focus()
        elif self.preview is not None and not self.preview.sendable:
            self._focus_cancel()

    def _focus_cancel(self) -> None:
        """Nothing can be sent: Enter anywhere now can only cancel."""
        self.query_one("#silence-cancel", Button).focus()

    @on(Input.Changed)
    def _field_changed(self) -> None:
        if self.is_mounted and self.preview is not None:
            self._render_state()

    @on(Input.Submitted, "#silence-length, #silence-comment")
    def _replan(self, event: Input.Submitted) -> None:
        ask = self.edited_ask()
        if ask == self.ask and self.preview is not None:
            return
        self.ask, self.preview, self._editing = ask, None, event.input.id or ""
        self._render_state()
        self.post_message(SilencePlanRequested(self, ask))

    @on(Input.Submitted, "#silence-typed")
    def _typed_submitted(self) -> None:
        if self.can_confirm():
            self._confirm()
        elif self.preview is not None and self.preview.sendable:
            note = self.query_one("#silence-note", Static)
            note.update(safe_line("not confirmed: type the source name exactly"))

    @on(Button.Pressed, "#silence-confirm")
    def _confirm_pressed(self) -> None:
        self._confirm()

    @on(Button.Pressed, "#silence-cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    def _confirm(self) -> None:
        preview = self.preview
        if preview is None or not self.can_confirm():
            return
        self.dismiss(Confirmation(preview, self.query_one("#silence-typed", Input).value.strip()))

    def action_cancel(self) -> None:
        self.dismiss(None)
