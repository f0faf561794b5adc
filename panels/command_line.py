"""The k9s-style `:` prompt: `:slo`, `:cost`, `:traces`, `:theme light`, `:q`."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input

from panels.routes import HOME, ROUTES
from panels.text import SafeInput

APP_COMMANDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "theme": ("switch theme: :theme dark|light|high-contrast", ()),
    "refresh": ("fetch the current view now", ()),
    "incident": ("open an incident: :incident open TITLE", ()),
    "runbook": ("plan a runbook action: :runbook NAME name=value …", ("rb",)),
    "help": ("every key and command", ("?", "keys")),
    "quit": ("leave llmdeck", ("q", "q!", "exit")),
}
"""Commands that are not screens (the app runs them)."""
COMMANDS: dict[str, tuple[str, tuple[str, ...]]] = {
    **{route.name: (route.help, route.aliases) for route in ROUTES if route.is_command},
    **APP_COMMANDS,
}
"""Every `:` command -> (help, aliases): the screens of `panels.routes`, then the app's own."""
PROMPTED: tuple[str, ...] = (
    *(route.name for route in ROUTES if route.is_command and route.name != HOME),
    HOME, "theme", "help", "quit",
)
"""The commands the empty prompt names: the screens (home last), then theme, help, quit."""
_ALIASES = {alias: name for name, (_, aliases) in COMMANDS.items() for alias in aliases}


def parse_command(text: str) -> tuple[str, str | None] | None:
    """`"theme light"` -> ("theme", "light"); unknown -> None."""
    words = text.strip().lstrip(":").split(maxsplit=1)
    if not words:
        return None
    name = words[0].lower()
    name = _ALIASES.get(name, name)
    if name not in COMMANDS:
        return None
    return name, (words[1].strip() if len(words) > 1 else None)


class CommandLine(ModalScreen[str | None]):
    """A one-line prompt at the bottom; Enter runs, Esc cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="command.cancel"),
    ]

    def compose(self) -> ComposeResult:
        names = list(COMMANDS) + [f"theme {t}" for t in ("dark", "light", "high-contrast")]
        yield SafeInput(placeholder=f":command ({', '.join(PROMPTED)})",
                        suggester=SuggestFromList(names, case_sensitive=False), id="command-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)
