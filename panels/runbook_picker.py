"""The runbook picker: the desk's actions, best fit for the incident first, params prefilled.

Choosing one (Enter) hands back an `ActionAsk`; the app then plans it on a worker and
shows the action dialog, where the parameters can still be edited. Nothing is planned or
sent from here. Action titles come from runbook files (the operator's own, but files all
the same), so they are shown through `panels.text`.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from console.action_preview import ActionAsk, params_text
from console.action_types import Origin
from console.runbook_files import ActionSpec, format_duration
from panels.text import template


class RunbookPicker(ModalScreen[ActionAsk | None]):
    """Lists actions with their prefilled parameters; Enter picks, Esc cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="picker.cancel"),
    ]

    DEFAULT_CSS = """
    RunbookPicker { align: center middle; background: $background 60%; }
    #picker-box {
        width: 100; max-width: 100%; height: auto; max-height: 90%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    #picker-title { text-style: bold; height: auto; }
    #picker-list { height: auto; max-height: 16; }
    #picker-hint { color: $foreground-muted; height: auto; }
    """

    def __init__(self, choices: list[tuple[ActionSpec, tuple[tuple[str, str], ...]]],
                 incident_id: str | None, heading: Content | None = None,
                 origin: Origin = "key") -> None:
        super().__init__()
        self.origin: Origin = origin
        """What opened the picker (a key, the palette): the audit journal records it."""
        self.choices = choices
        """(action, its prefilled params), best fit first."""
        self.incident_id = incident_id
        self.heading = heading

    def compose(self) -> ComposeResult:
        with Vertical(id="picker-box"):
            if self.heading is not None:
                yield Static(self.heading, id="picker-title")
            elif self.incident_id:
                yield Static(template("Run a runbook action for [b]$id[/b]", id=self.incident_id),
                             id="picker-title")
            else:
                yield Static(Content("Run a runbook action"), id="picker-title")
            options = [Option(self._label(choice, params), id=choice.name)
                       for choice, params in self.choices]
            yield OptionList(*options, id="picker-list")
            yield Static(Content("Enter plans it (reads only; you confirm next) · Esc cancels"),
                         id="picker-hint")

    @staticmethod
    def _label(choice: ActionSpec, params: tuple[tuple[str, str], ...]) -> Content:
        flags = " DANGEROUS" if choice.dangerous else ""
        if choice.time_box is not None:
            flags += f" for {format_duration(choice.time_box)}"
        given = {k for k, _ in params}
        needs = [p.name for p in choice.params if p.required and not p.fixed and p.default is None
                 and p.name not in given]
        shown = params_text(params)
        if needs:
            shown = f"{shown}  needs: {', '.join(needs)}".strip()
        return template("[b]$name[/b] $title[reverse]$flags[/reverse]\n  $params",
                        name=choice.name, title=choice.title, flags=flags,
                        params=shown or "(nothing to fill in)")

    def on_mount(self) -> None:
        self.query_one("#picker-list", OptionList).focus()

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        for choice, params in self.choices:
            if choice.name == event.option.id:
                self.dismiss(ActionAsk(choice.name, params, self.origin, self.incident_id))
                return

    def action_cancel(self) -> None:
        self.dismiss(None)
