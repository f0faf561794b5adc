"""`?`: every key binding (with its id, for remapping) and every `:` command."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from panels.command_line import COMMANDS


class HelpScreen(ModalScreen[None]):
    """Keys of the screen underneath and of the app, then the commands; Esc or ? closes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "close", "Close", id="help.close"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(self._keys(), id="help-keys")

    def _keys(self) -> Table:
        table = Table(title=Text("llmdeck keys (remap by id under [ui.keymap])"), expand=True,
                      show_edge=False, pad_edge=False)
        table.add_column("key", no_wrap=True)
        table.add_column("does")
        table.add_column("id", no_wrap=True)
        stack = self.app.screen_stack
        below = stack[-2] if len(stack) > 1 else stack[-1]
        seen: set[str] = set()
        named: list[tuple[Text, Text, Text]] = []
        generic: list[tuple[Text, Text, Text]] = []
        nodes = [below, *([below.focused] if below.focused else []), self.app]
        for node in nodes:
            for key, bindings in node._bindings.key_to_bindings.items():
                for binding in bindings:
                    ident = binding.id or binding.action
                    if ident in seen:
                        continue
                    seen.add(ident)
                    # llmdeck's own keys (they have ids) first: at 80x24 they fit above the fold
                    (named if binding.id else generic).append(
                        (Text(self.app.get_key_display(binding) or key),
                         Text(binding.description or binding.action), Text(binding.id or "-")))
        for row in (*named, *generic):
            table.add_row(*row)
        table.add_row(Text(""), Text(""), Text(""))
        for name, (help_text, aliases) in COMMANDS.items():
            alias = f" ({', '.join(':' + a for a in aliases)})" if aliases else ""
            table.add_row(Text(f":{name}"), Text(help_text + alias), Text(""))
        table.add_row(Text("ctrl+p"), Text("command palette: every command, themes"), Text(""))
        return table

    def action_close(self) -> None:
        self.dismiss(None)
