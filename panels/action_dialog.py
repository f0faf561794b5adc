"""The action dialog: one runbook action's plan, applied only after a typed confirmation.

It sends nothing and plans nothing itself: the app plans on a worker through the desk and
posts `ActionPlanned`; the dialog shows the environment and mode (READ-ONLY / DRY RUN in
reverse video), the target, the diff, the exact requests (secrets masked) and the desk's
notes, and dismisses with an `ActionConfirmed` only when the typed text confirms the plan:
a dangerous action's target, else `y`. Enter on an empty or wrong field never confirms;
Esc dismisses with None. The desk checks the confirmation again (the choke point); this is
the operator's half. Editing the parameters and pressing Enter there plans again.
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

from console.action_preview import (
    ActionAsk,
    ActionConfirmed,
    ActionPreview,
    ParamsError,
    params_text,
    parse_params,
)
from console.safe_text import cell, sanitize
from panels.messages import ActionPlanned, ActionPlanRequested
from panels.text import SafeInput, safe, safe_line, template

TRANSPORT_HEADERS = frozenset({"host", "accept", "accept-encoding", "connection", "user-agent",
                               "content-length"})
"""Headers every request carries: named on one line, so the body fits at 80x24."""


def request_lines(text: str) -> list[str]:
    """One planned request as the dialog shows it: the method and URL, the headers that say
    something (authorization ***, Idempotency-Key, LiteLLM-Changed-By, content-type), the
    transport headers named on one line, then the body."""
    lines = sanitize(text, max_chars=4000).splitlines()
    shown = lines[:1]
    transport: list[str] = []
    for i, line in enumerate(lines[1:], 1):
        if not line.strip():  # the blank line before the body: the rest is the body
            shown += [f"(+ {', '.join(transport)})"] if transport else []
            return shown + lines[i:]
        name = line.split(":", 1)[0].strip().lower()
        if name in TRANSPORT_HEADERS:
            transport.append(name)
        else:
            shown.append(line)
    return shown + ([f"(+ {', '.join(transport)})"] if transport else [])


def plan_body(preview: ActionPreview) -> str:
    """The plan as plain text (rendered through `safe`): diff, requests, notes."""
    lines: list[str] = []
    if preview.diff:
        lines.append("changes:")
        width = max(len(d.field) for d in preview.diff)
        lines += [f"  {d.field:<{width}}  {d.before} → {d.after}" for d in preview.diff]
    else:
        lines.append("changes: none shown (see the notes)")
    lines.append("")
    lines.append(f"requests ({len(preview.requests)}):" if preview.requests else "requests: none")
    for text in preview.requests:
        lines += ["  " + line for line in request_lines(text)]
    if preview.notes:
        lines.append("")
        lines += [f"note: {n}" for n in preview.notes]
    return "\n".join(lines)


class ActionDialog(ModalScreen[ActionConfirmed | None]):
    """Shows one action's plan; applies only once the confirmation is typed; Esc cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="action.cancel"),
    ]

    DEFAULT_CSS = """
    ActionDialog { align: center middle; background: $background 60%; }
    #action-box {
        width: 100; max-width: 100%; height: 100%; max-height: 40;
        border: round $error; background: $surface; padding: 0 1;
    }
    #action-title { text-style: bold; height: auto; }
    #action-mode { height: auto; }
    #action-target { height: auto; }
    #action-params-line { height: 1; margin-top: 1; }
    .action-label { width: auto; padding: 0 1 0 0; }
    #action-params { width: 1fr; }
    #action-plan-box { height: 1fr; margin-top: 1; background: $panel; }
    #action-note { height: auto; }
    #action-note.-problem { color: $error; text-style: bold; }
    #action-prompt { height: auto; }
    #action-confirm-line { height: 1; }
    #action-typed { width: 1fr; margin-right: 1; }
    #action-confirm-line Button { margin-left: 1; }
    /* Textual gives a disabled button a tall border !important in ANSI mode (NO_COLOR), which
       hides the label on this one-row line: say "Apply" there, struck through instead */
    #action-confirm-line Button:disabled { border: none !important; text-style: dim strike; }
    """

    def __init__(self, ask: ActionAsk, preview: ActionPreview | None = None) -> None:
        super().__init__()
        self.ask = ask
        """The ask last sent for planning; a plan of any other is stale and dropped."""
        self.preview = preview if preview is not None and preview.ask == ask else None
        self._replanning = False

    def compose(self) -> ComposeResult:
        with Vertical(id="action-box"):
            if self.ask.undo_of:
                yield Static(template("Undo [b]$action[/b] ($id): put back the state before it",
                                      action=self.ask.action, id=self.ask.undo_of), id="action-title")
            else:
                yield Static(template("Run [b]$action[/b]", action=self.ask.action), id="action-title")
            yield Static(Content("mode: planning…"), id="action-mode")
            yield Static("", id="action-target")
            with Horizontal(id="action-params-line"):
                yield Static("params", classes="action-label")
                yield SafeInput(params_text(self.ask.params), placeholder="name=value …",
                                id="action-params", compact=True)
            with VerticalScroll(id="action-plan-box"):
                yield Static(Content("planning… (reads only)"), id="action-plan")
            yield Static("", id="action-note")
            yield Static("", id="action-prompt")
            with Horizontal(id="action-confirm-line"):
                yield SafeInput(placeholder="confirmation", id="action-typed", compact=True)
                yield Button("Apply", id="action-confirm", variant="error", compact=True,
                             disabled=True)
                yield Button("Cancel", id="action-cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#action-params-line").display = not self.ask.undo_of  # nothing to edit
        self._render_state()
        self._focus_after_plan()

    # ---- what the dialog shows ---------------------------------------------------

    def edited_ask(self) -> ActionAsk | str:
        """The ask as the params field reads now, or why it does not parse."""
        try:
            params = parse_params(self.query_one("#action-params", Input).value)
        except ParamsError as exc:
            return str(exc)
        return replace(self.ask, params=params)

    def can_confirm(self) -> bool:
        """A sendable plan of the params as they read, and its confirmation typed exactly."""
        preview = self.preview
        if preview is None or self.edited_ask() != preview.ask:
            return False
        return preview.confirms(self.query_one("#action-typed", Input).value)

    def _render_state(self) -> None:
        preview = self.preview
        plan = self.query_one("#action-plan", Static)
        note = self.query_one("#action-note", Static)
        prompt = self.query_one("#action-prompt", Static)
        self.query_one("#action-mode", Static).update(self._mode_line())
        self.query_one("#action-target", Static).update(self._target_line())
        problem = False
        if preview is None:
            plan.update(Content("planning… (reads only: nothing is sent until you confirm)"))
            note.update(Content("Esc cancels"))
            prompt.update("")
        elif not preview.ready:
            plan.update(safe(preview.problem, 2000))
            note.update(Content("no plan (see above): edit the params and press Enter there · Esc"
                                " closes"))
            prompt.update("")
            problem = True
        else:
            plan.update(safe(plan_body(preview), 40_000))
            if not preview.sendable:
                note.update(Content("read-only: nothing can be sent from here · Esc closes"))
                prompt.update("")
                problem = True
            elif self.edited_ask() != preview.ask:
                note.update(Content("params changed: press Enter in the params field to plan again"))
            elif preview.mode is not None and preview.mode.dry_run:
                note.update(Content("dry run: confirming records it and sends nothing · Esc cancels"))
            else:
                note.update(Content("nothing is sent until you confirm · Esc cancels"))
            if preview.sendable and preview.dangerous:
                prompt.update(template("dangerous: type [b]$target[/b] to confirm, then Enter",
                                       target=preview.target))
            elif preview.sendable:
                prompt.update(Content.from_markup("type [b]y[/b] to apply, then Enter"))
        note.set_class(problem, "-problem")
        self.query_one("#action-typed", Input).disabled = (
            preview is not None and not preview.sendable)
        self.query_one("#action-confirm", Button).disabled = not self.can_confirm()

    def _mode_line(self) -> Content:
        mode = self.preview.mode if self.preview is not None else None
        if mode is None:
            return Content("mode: planning…")
        line = template("environment [b]$env[/b] · $user as $role", env=mode.environment or "-",
                        user=mode.user, role=mode.role)
        if mode.read_only:
            line += Content(" ") + template("[reverse] READ-ONLY [/reverse] $why",
                                            why=mode.reason or "nothing is sent")
        if mode.dry_run:
            line += Content(" ") + Content.from_markup("[reverse] DRY RUN [/reverse] nothing is sent")
        return line

    def _target_line(self) -> Content:
        preview = self.preview
        if preview is None or not preview.ready:
            return Content("")
        extra = []
        if preview.gateway:
            extra.append(f"on {cell(preview.gateway, 40)}")
        if preview.time_box:
            extra.append(f"reverts after {preview.time_box}")
        if preview.ask.incident_id:
            extra.append(f"for {cell(preview.ask.incident_id, 20)}")
        line = template("target [b]$target[/b]", target=preview.target or "-")
        if preview.dangerous:
            line += Content(" ") + Content.from_markup("[reverse] DANGEROUS [/reverse]")
        if extra:
            line += Content(" · " + " · ".join(extra))
        return line

    # ---- events -------------------------------------------------------------------

    def on_action_planned(self, message: ActionPlanned) -> None:
        if message.preview.ask != self.ask:
            return  # a plan of params since edited again
        self.preview = message.preview
        self._render_state()
        # after Textual has moved focus off a field that was disabled
        self.call_after_refresh(self._focus_after_plan)

    def _focus_after_plan(self) -> None:
        """The params field when there is no plan; Cancel when nothing can be sent; else the
        confirmation field (never a button that applies: Enter alone must not apply)."""
        preview = self.preview
        if preview is None:
            return
        if not preview.ready:
            self.query_one("#action-params", Input).focus()
        elif not preview.sendable:
            self.query_one("#action-cancel", Button).focus()
        elif not self._replanning or self.focused is None:
            self.query_one("#action-typed", Input).focus()
        self._replanning = False

    @on(Input.Changed)
    def _field_changed(self) -> None:
        if self.is_mounted and self.preview is not None:
            self._render_state()

    @on(Input.Submitted, "#action-params")
    def _replan(self) -> None:
        ask = self.edited_ask()
        if isinstance(ask, str):
            self.query_one("#action-note", Static).update(safe_line(ask))
            self.query_one("#action-note", Static).set_class(True, "-problem")
            return
        if ask == self.ask and self.preview is not None:
            return
        self.ask, self.preview, self._replanning = ask, None, True
        self._render_state()
        self.post_message(ActionPlanRequested(self, ask))

    @on(Input.Submitted, "#action-typed")
    def _typed_submitted(self) -> None:
        if self.can_confirm():
            self._confirm()
        elif self.preview is not None and self.preview.sendable:
            note = self.query_one("#action-note", Static)
            note.update(template("not confirmed: type $word exactly (Esc cancels)",
                                 word=self.preview.confirm_word))
            note.set_class(True, "-problem")

    @on(Button.Pressed, "#action-confirm")
    def _confirm_pressed(self) -> None:
        self._confirm()

    @on(Button.Pressed, "#action-cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    def _confirm(self) -> None:
        preview = self.preview
        if preview is None or not self.can_confirm():
            return
        self.dismiss(ActionConfirmed(preview, self.query_one("#action-typed", Input).value.strip()))

    def action_cancel(self) -> None:
        self.dismiss(None)
