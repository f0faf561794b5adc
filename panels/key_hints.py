"""The key-hint line at the bottom of every screen: one widget, one line of text.

Textual's `Footer` composes a widget per key and recomposes them all whenever
the focused widget or the screen changes. Measured on a screen switch (120x40,
headless): ~25 ms of the UI thread's ~35-75 ms went to the footer. This line
renders the same hints as a single `Text`, re-rendered (not recomposed) when
the bindings change; a click on a hint presses its key.
"""

from __future__ import annotations

from typing import ClassVar

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.widget import Widget


class KeyHints(Widget, can_focus=False):
    """`key description` pairs of the screen's active bindings that have `show=True`.

    Under NARROW columns the pairs are packed tighter and the command palette's key
    is left to the help screen, so a drill-down screen's hints still end with
    `? Help` and `q Quit` at 80 columns.
    """

    NARROW = 100

    COMPONENT_CLASSES: ClassVar[set[str]] = {"key-hints--key", "key-hints--description"}

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id)
        self._hits: list[tuple[int, int, str]] = []
        """(first cell, end cell, key) of each hint as last rendered, for clicks."""

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, _screen: object) -> None:
        self.refresh()

    def hints(self) -> list[tuple[Binding, bool]]:
        """(binding, enabled) of every shown binding, one per action, in binding order."""
        seen: set[str] = set()
        out: list[tuple[Binding, bool]] = []
        for _node, binding, enabled, _tooltip in self.screen.active_bindings.values():
            if binding.show and binding.action not in seen:
                seen.add(binding.action)
                out.append((binding, enabled))
        return out

    def palette_hint(self) -> tuple[Binding, bool] | None:
        """The command palette's key (shown at the right edge, unless narrow)."""
        if self.narrow or not self.app.ENABLE_COMMAND_PALETTE:
            return None
        found = self.screen.active_bindings.get(self.app.COMMAND_PALETTE_BINDING)
        return None if found is None else (found[1], found[2])

    @property
    def narrow(self) -> bool:
        return self.size.width < self.NARROW

    def render(self) -> Text:
        narrow = self.narrow
        key_style = self.get_component_rich_style("key-hints--key")
        text_style = self.get_component_rich_style("key-hints--description")
        line = Text(no_wrap=True, overflow="ellipsis", end="")
        self._hits = []

        def add(binding: Binding, enabled: bool) -> None:
            dim = Style() if enabled else Style(dim=True)
            start = line.cell_len
            # Text.append never parses markup: key names and descriptions stay literal.
            if narrow:
                line.append(" " if start else "", text_style)
                line.append(self.app.get_key_display(binding), key_style + dim)
                line.append(f" {binding.description}", text_style + dim)
            else:
                line.append(f" {self.app.get_key_display(binding)} ", key_style + dim)
                line.append(f"{binding.description} ", text_style + dim)
            self._hits.append((start, line.cell_len, binding.key))

        for binding, enabled in self.hints():
            add(binding, enabled)
        palette = self.palette_hint()
        if palette is not None:
            binding, enabled = palette
            width = cell_len(f" {self.app.get_key_display(binding)} {binding.description} ")
            line.append(" " * max(1, self.size.width - line.cell_len - width), text_style)
            add(binding, enabled)
        return line

    def on_click(self, event: events.Click) -> None:
        for start, end, key in self._hits:
            if start <= event.x < end:
                self.app.simulate_key(key)
                return
