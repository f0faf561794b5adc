"""Updating DataTables in place from snapshot rows (no flicker, cursor kept)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.widgets import DataTable
from textual.widgets.data_table import RowKey

Row = tuple[str, Sequence[object]]
"""(row key, cells): `Text` cells as they are; anything else becomes plain text, never markup.
Untrusted values must already be `panels.text.safe_cell(...)`."""


def _text(value: object) -> Text:
    return value if isinstance(value, Text) else Text(str(value), no_wrap=True, end="")


def _plain(value: object) -> str:
    return value.plain if isinstance(value, Text) else str(value)


def row_text(cells: Sequence[object]) -> str:
    """All of a row's visible text, for `/` filtering."""
    return " ".join(_plain(c) for c in cells).casefold()


class DeckTable(DataTable[Text | str]):
    """A row-cursor table that scrolls sideways a whole column per ← / →.

    Tables wider than the terminal keep their name columns pinned (`fixed_columns`) and
    scroll the rest; DataTable's own ← → move a row cursor one cell, so reaching the last
    column at 80 columns took dozens of presses. Home and End jump to the first and last.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("right", "cursor_right", "Scroll a column right", show=False),
        Binding("left", "cursor_left", "Scroll a column left", show=False),
        Binding("home", "scroll_home", "First columns", show=False),
        Binding("end", "scroll_end", "Last columns", show=False),
    ]

    CELL_CACHE_SIZE: ClassVar[int] = 4096
    """Rendered cells kept across updates (a 160x50 screen shows a few hundred)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._cell_lines: LRUCache[tuple[object, ...], list[list[Segment]]] = LRUCache(
            self.CELL_CACHE_SIZE)

    def _render_cell(self, row_index: int, column_index: int, base_style: Style, width: int,
                     cursor: bool = False, hover: bool = False) -> list[list[Segment]]:
        """DataTable's cell rendering, cached by what the cell shows instead of by update.

        Textual keys its cell cache on a counter that every `update_cell`, `add_row` and
        `clear` bumps, so one changed cell in a poll, or a `/` keystroke (which re-adds the
        matching rows), rendered every visible cell again through Rich. Here the key is what
        the rendering depends on: the cell's text and styles, its position (it is in the
        segments' mouse metadata), width, and the styles DataTable would apply to it (from
        its own memo, which CSS and theme changes clear).
        """
        value = self._shown_value(row_index, column_index)
        if value is None:  # the header, row labels, multi-line rows: Textual's own cache
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        styles = self._get_styles_to_render_cell(
            False, False, row_index < self.fixed_rows or column_index < self.fixed_columns,
            hover, cursor, self.show_cursor, self._show_hover_cursor,
            self.cursor_foreground_priority == "css", self.cursor_background_priority == "css")
        key = (row_index, column_index, value, base_style, styles, width, self.cell_padding)
        lines = self._cell_lines.get(key)
        if lines is None:
            lines = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
            self._cell_lines[key] = lines
        return lines

    def _shown_value(self, row_index: int, column_index: int) -> object | None:
        """What a one-line data cell shows, as a hashable value; None for any other cell."""
        if row_index < 0 or column_index < 0:
            return None
        row_key = self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        if row_key is None or column_key is None:
            return None
        row = self.rows.get(row_key)
        if row is None or row.height != 1:
            return None
        value = self._data.get(row_key, {}).get(column_key)
        if isinstance(value, Text):
            return (value.plain, value.style, tuple(value.spans), value.justify, value.overflow,
                    value.no_wrap)
        return None if value is None else str(value)

    def column_edges(self) -> list[int]:
        """Horizontal scroll offsets at which a scrolling (unpinned) column starts."""
        edges, x = [], 0
        for column in self.ordered_columns[self.fixed_columns:]:
            edges.append(x)
            x += column.get_render_width(self)
        return edges

    def action_cursor_right(self) -> None:
        if self.cursor_type != "row":
            super().action_cursor_right()
            return
        later = [e for e in self.column_edges() if e > round(self.scroll_x)]
        self.scroll_to(x=min(later[0] if later else self.max_scroll_x, self.max_scroll_x),
                       animate=False)

    def action_cursor_left(self) -> None:
        if self.cursor_type != "row":
            super().action_cursor_left()
            return
        earlier = [e for e in self.column_edges() if e < round(self.scroll_x)]
        self.scroll_to(x=earlier[-1] if earlier else 0, animate=False)


EMPTY_KEY = "none"
"""Row key of the one-row message an empty table shows (`selected_key` never returns it)."""


def sync_rows(table: DataTable[Text | str], rows: Sequence[Row], filter_text: str = "",
              empty: str | None = None) -> None:
    """Make `table` show `rows` (matching `filter_text`), updating cells in place when keys match.

    With no rows at all and an `empty` message, the table shows that message as its one row.
    """
    if not rows and empty is not None:
        rows = [(EMPTY_KEY, [Text(empty), *[""] * (len(table.columns) - 1)])]
        filter_text = ""
    needle = filter_text.casefold().strip()
    wanted = [r for r in rows if not needle or needle in row_text(r[1])]
    wanted_keys = [k for k, _ in wanted]
    current = [str(k.value) for k in table.rows]
    cells_trusted = [[_text(c) for c in cells] for _, cells in wanted]
    if current == wanted_keys:
        columns = list(table.columns)
        changed: list[str] = []
        for (key, _), cells in zip(wanted, cells_trusted, strict=True):
            for col, value in zip(columns, cells, strict=False):
                if _plain(table.get_cell(key, col)) != value.plain:
                    table.update_cell(key, col, value)
                    changed.append(key)
        _measure_now(table, changed)
        return
    cursor_key = selected_key(table)
    table.clear()
    for column in table.columns.values():  # fit the new rows, not the ones they replace
        if column.auto_width:  # (a wide "no … here" message must not keep its column wide)
            column.content_width = column.label.cell_len
    for (key, _), cells in zip(wanted, cells_trusted, strict=True):
        table.add_row(*cells, key=key)
    _measure_now(table, wanted_keys)
    if cursor_key in wanted_keys:
        table.move_cursor(row=wanted_keys.index(cursor_key))


def _measure_now(table: DataTable[Text | str], keys: Sequence[str]) -> None:
    """Widen the columns to fit these rows' cells now, before anything paints.

    Textual's DataTable measures new cells on idle but caches rendered cells without their
    column width, so a paint in between kept header-wide cells ("anthropi" under "provider")
    for good on a table whose own size does not change (height: 1fr). Widths only grow here,
    as they do on idle.
    """
    if keys:
        table._update_dimensions([RowKey(k) for k in dict.fromkeys(keys)])


def shown_rows(table: DataTable[Text | str]) -> int:
    """How many data rows the table shows (its one-row empty message is not one)."""
    return sum(1 for key in table.rows if key.value != EMPTY_KEY)


def selected_key(table: DataTable[Text | str]) -> str | None:
    """The row key under the cursor; None for an empty table or its one-row empty message."""
    if not table.row_count:
        return None
    key = str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
    return None if key == EMPTY_KEY else key
