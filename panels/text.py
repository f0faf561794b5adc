"""Safe renderings of untrusted text for Textual widgets.

Every string that came from outside (trace text, tenant, model, error bodies)
goes through `console.safe_text` and is wrapped in an object Textual never
parses as markup: `Content` for Static/Label, `rich.text.Text` for DataTable
cells (plain `str` cells are parsed as markup and `[@click=...]` would run).
"""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.content import Content
from textual.widgets import Input

from console.safe_text import cell, sanitize


def safe(value: object, max_chars: int = 4096) -> Content:
    """Untrusted multi-line text as inert Content."""
    return Content(sanitize(value, max_chars=max_chars))


def safe_line(value: object, max_chars: int = 200) -> Content:
    """Untrusted text on one line (newlines shown as \\x0a), as inert Content."""
    return Content(cell(value, max_chars))


def safe_cell(value: object, max_chars: int = 120, style: str = "") -> Text:
    """A DataTable cell: sanitised, one line, never parsed as markup."""
    return Text(cell(value, max_chars), style=style, no_wrap=True, end="")


def template(markup: str, **values: object) -> Content:
    """Trusted markup with untrusted `$name` values substituted safely."""
    return Content.from_markup(markup, **{k: cell(v, 500) for k, v in values.items()})


MAX_INPUT_CHARS = 1000
"""Longest text the filter bar or the `:` prompt holds."""


class SafeInput(Input):
    """An Input that never holds control characters or bidi overrides.

    Text pasted into the filter bar or the `:` prompt may have been copied from a log or a
    trace, and Textual's Input writes its value to the terminal as it is (an OSC or CSI in a
    paste reached the screen). A paste is sanitised before Input inserts its first line, and
    a value set in code is sanitised too, so the prompt shows `\\x1b` where the escape was.
    """

    def _on_paste(self, event: events.Paste) -> None:
        # Runs before Input._on_paste (next in the MRO), which inserts the first line.
        event.text = "\n".join(cell(line, MAX_INPUT_CHARS) for line in event.text.splitlines())

    def validate_value(self, value: str) -> str:
        return cell(value, MAX_INPUT_CHARS)
