"""Updating DataTables in place from snapshot rows (no flicker, cursor kept)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
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


EMPTY_KEY = "none"
"""Row key of the one-row message an empty table shows; drill actions ignore it."""


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
    cursor_key = None
    if table.row_count and 0 <= table.cursor_row < table.row_count:
        cursor_key = str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
    table.clear()
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


def selected_key(table: DataTable[Text | str]) -> str | None:
    """The row key under the cursor, or None for an empty table."""
    if not table.row_count:
        return None
    return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
