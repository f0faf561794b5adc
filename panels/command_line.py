"""The k9s-style `:` prompt: `:slo`, `:cost`, `:traces`, `:theme light`, `:q`."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input

from panels.text import SafeInput

COMMANDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "overview": ("SLO, budget, spend and alert overview", ("o", "home")),
    "slo": ("every SLO with burn rates and charts", ("slos",)),
    "cost": ("spend, budgets, top movers", ("costs", "spend")),
    "traces": ("breakdown → worst requests → span tree", ("tr", "trace")),
    "theme": ("switch theme: :theme dark|light|high-contrast", ()),
    "refresh": ("fetch the current view now", ()),
    "help": ("every key and command", ("?", "keys")),
    "quit": ("leave llmdeck", ("q", "q!", "exit")),
}
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
        yield SafeInput(placeholder=":command (slo, cost, traces, overview, theme, help, quit)",
                        suggester=SuggestFromList(names, case_sensitive=False), id="command-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)
