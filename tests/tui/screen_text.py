"""What a person sees: the current screen as plain text lines, and the raw bytes a terminal gets."""

from __future__ import annotations

from typing import Any

from rich.cells import cell_len
from rich.style import Style


def screen_lines(app: Any) -> list[str]:
    """The composited screen as text, one string per terminal row."""
    update = app.screen._compositor.render_update(full=True)
    return ["".join(strip.text for strip in line) for line in update.strips]


def screen_text(app: Any) -> str:
    return "\n".join(line.rstrip() for line in screen_lines(app))


def terminal_bytes(app: Any) -> str:
    """The full-screen update exactly as the driver would write it to the terminal."""
    update = app.screen._compositor.render_update(full=True)
    return "".join(update.render_segments(app.console))


def style_at(app: Any, x: int, y: int) -> Style:
    """The style a terminal gets for the cell at column x of row y (after every filter)."""
    update = app.screen._compositor.render_update(full=True)
    column = 0
    for strip in update.strips[y]:
        for text, style, _ in strip:
            width = cell_len(text)
            if column <= x < column + width:
                return style or Style.null()
            column += width
    raise IndexError(f"no cell at ({x}, {y})")
