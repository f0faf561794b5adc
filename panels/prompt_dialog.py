"""A one-field prompt (an incident's note, a new incident's title): Enter hands the text back.

The field is a `SafeInput` (a paste with escape sequences arrives as visible text); Enter
on an empty field keeps the prompt open, Esc dismisses with None. The caller writes the
text on a worker: this dialog does no I/O.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from panels.text import SafeInput


class PromptDialog(ModalScreen[str | None]):
    """Asks for one line of text; Enter with text dismisses with it, Esc with None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="prompt.cancel"),
    ]

    DEFAULT_CSS = """
    PromptDialog { align: center middle; background: $background 60%; }
    #prompt-box {
        width: 72; max-width: 100%; height: auto;
        border: round $primary; background: $surface; padding: 0 1;
    }
    #prompt-title { text-style: bold; height: auto; }
    #prompt-input { margin-top: 1; }
    #prompt-hint { color: $foreground-muted; height: auto; }
    """

    def __init__(self, title: Content, placeholder: str) -> None:
        super().__init__()
        self.prompt_title = title
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt-box"):
            yield Static(self.prompt_title, id="prompt-title")
            yield SafeInput(placeholder=self.placeholder, id="prompt-input", compact=True)
            yield Static(Content("Enter saves · Esc cancels"), id="prompt-hint")

    def on_mount(self) -> None:
        self.query_one("#prompt-input", Input).focus()

    @on(Input.Submitted, "#prompt-input")
    def _submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if text:
            self.dismiss(text)

    def action_cancel(self) -> None:
        self.dismiss(None)
