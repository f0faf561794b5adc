"""Drill-down from traffic to one trace: breakdown by dimension → worst requests → span tree.

Every key, id, name and attribute on these screens came from traces, so each one is
rendered through `panels.text` (inert Text/Content), never as markup.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import ClassVar, Literal

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container
from textual.content import Content
from textual.events import Resize
from textual.widgets import DataTable, Static, Tree

from console.config import ScopeFilter
from console.formatting import clock, duration, ms, pct, usd
from console.safe_text import cell
from console.snapshots import DIMENSIONS, Breakdown, BreakdownRow, Dimension, RequestRow, TraceTree
from console.views import BreakdownView, Fetched, RequestsPage, RequestsView, TraceView, View
from panels.base import DeckScreen
from panels.messages import Navigate
from panels.span_tree import SpanTree, span_fields
from panels.tables import DeckTable, selected_key, sync_rows
from panels.text import safe_cell, safe_line

WINDOWS: tuple[timedelta, ...] = (
    timedelta(minutes=5), timedelta(hours=1), timedelta(hours=6), timedelta(hours=24),
)
WIDE = 120
"""From this width the trace screen puts the attributes beside the tree, not below it."""
HEADER_CSS = "height: 1; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis;"


def next_window(window: timedelta) -> timedelta:
    """The window after `window` in 5m → 1h → 6h → 24h → 5m."""
    later = [w for w in WINDOWS if w > window]
    return later[0] if later else WINDOWS[0]


def unfiltered(flt: ScopeFilter) -> list[Dimension]:
    """The dimensions `flt` does not pin yet, in DIMENSIONS order."""
    pinned = {dim for dim, _ in flt.items()}
    return [d for d in DIMENSIONS if d not in pinned]


def dimension_after(current: Dimension, choices: list[Dimension]) -> Dimension | None:
    """The first of `choices` after `current` in DIMENSIONS order, wrapping around."""
    if not choices:
        return None
    start = DIMENSIONS.index(current)
    ordered = DIMENSIONS[start + 1:] + DIMENSIONS[:start + 1]
    return next(d for d in ordered if d in choices)


def scope_line(flt: ScopeFilter) -> Content:
    """`provider=anthropic › model=claude-sonnet-4-5` (values sanitised), or `all traffic`."""
    chips = [Content(f"{dim}=") + key_content(value) for dim, value in flt.items()]
    return Content(" › ").join(chips) if chips else Content("all traffic")


def key_content(key: str) -> Content:
    """A dimension value on one line; the empty key reads "(none)"."""
    return Content("(none)") if key == "" else safe_line(key, 40)


def key_cell(key: str) -> Text:
    """A dimension value as a table cell; the empty key reads "(none)"."""
    return Text("(none)", style="italic") if key == "" else safe_cell(key, 32)


def status_cell(row: RequestRow) -> Text:
    """`✖ 429 rate_limit_error` for a failed request, `✔ ok` otherwise."""
    if row.status != "error":
        return Text("✔ ok", no_wrap=True)
    text = Text("✖ " + (f"{row.http_status} " if row.http_status is not None else ""),
                style="bold", no_wrap=True)
    text.append_text(safe_cell(row.error_type or "error", 22, style="bold"))
    return text


def cost_cell(row: BreakdownRow) -> Text:
    """`$1.65`, or `$0.96 +267 unpriced` when some requests have no price (never a bare $0)."""
    if not row.unpriced:
        return Text(usd(row.cost_usd), no_wrap=True)
    text = Text(usd(row.cost_usd) + " ", no_wrap=True)
    text.append(f"+{row.unpriced:,} unpriced", style="bold")
    return text


def header(*parts: Content) -> Content:
    """Parts of a header line joined with ` · `."""
    return Content(" · ").join(parts)


def window_label(window: timedelta) -> Content:
    """`last 5m`, `last 1h`, `last 24h`."""
    minutes = int(window.total_seconds() // 60)
    if minutes and minutes % 60 == 0:
        return Content(f"last {minutes // 60}h")
    return Content(f"last {minutes}m" if minutes else f"last {duration(window)}")


class TracesScreen(DeckScreen):
    """Traffic in scope grouped by one dimension, worst first; Enter narrows to the selected key."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "drill", "Drill", priority=True, id="traces.drill"),
        Binding("d", "next_dimension", "Group by", id="traces.next_dimension"),
        Binding("w", "next_window", "Window", show=False, id="traces.next_window"),
        Binding("f", "requests('failed')", "Failed", id="traces.failed_requests"),
        Binding("s", "requests('slowest')", "Slowest", id="traces.slowest_requests"),
    ]
    CSS = f"#traces-header {{ {HEADER_CSS} }} #traces-table {{ height: 1fr; max-height: 100%; }}"
    screen_title = "traces"
    view_id = "traces"

    def __init__(self, view: View | None = None) -> None:
        super().__init__()
        self.breakdown_view = view if isinstance(view, BreakdownView) else BreakdownView()
        self._columns_for: Dimension | None = None

    def compose(self) -> ComposeResult:
        yield from self.compose_status()
        yield Static(id="traces-header", classes="screen-header")
        yield DeckTable(id="traces-table", cursor_type="row", fixed_columns=1)
        yield from self.compose_footer()

    def on_mount(self) -> None:
        self._show_header(None)
        self._set_columns(self.breakdown_view.dimension)

    def view(self) -> View:
        return self.breakdown_view

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "drill":  # Enter belongs to the filter bar while it has focus
            return isinstance(self.focused, DataTable)
        return True

    def show(self, fetched: Fetched) -> None:
        snap = fetched.snapshot
        if not isinstance(snap, Breakdown) or fetched.view != self.view():
            return
        table = self.query_one("#traces-table", DataTable)
        self._set_columns(snap.dimension)
        rows = [
            (f"k:{r.key}", [
                key_cell(r.key), f"{r.requests:,}", f"{r.errors:,}", pct(r.error_rate, 1),
                f"{r.rate_limited:,}", ms(r.latency_p95_ms), cost_cell(r),
            ])
            for r in snap.rows
        ]
        with self.app.batch_update():
            sync_rows(table, rows, self.filter_text, empty="no traffic in this scope and window")
            self._show_header(snap)

    def _set_columns(self, dimension: Dimension) -> None:
        if self._columns_for == dimension:
            return
        table = self.query_one("#traces-table", DataTable)
        table.clear(columns=True)
        table.add_columns(dimension, "requests", "errors", "err%", "429/529", "p95", "cost")
        self._columns_for = dimension

    def _show_header(self, snap: Breakdown | None) -> None:
        view = self.breakdown_view
        parts = [scope_line(view.filter), Content(f"by {view.dimension}"), window_label(view.window)]
        if snap is None:
            parts.append(Content("loading…"))
        else:
            parts.append(Content(f"{sum(r.requests for r in snap.rows):,} requests"))
        self.query_one("#traces-header", Static).update(header(*parts))

    def _change_view(self, view: BreakdownView) -> None:
        self.breakdown_view = view
        self.last = None  # `/` must not re-render the old view's rows under the new header
        self._show_header(None)
        self.request_refresh()

    def action_next_dimension(self) -> None:
        view = self.breakdown_view
        choices = unfiltered(view.filter)
        following = dimension_after(view.dimension, choices)
        if following is None or following == view.dimension:
            self.notify("every other dimension is already filtered", markup=False)
            return
        self.query_one("#traces-table", DataTable).clear()
        self._change_view(replace(view, dimension=following))

    def action_next_window(self) -> None:
        self._change_view(replace(self.breakdown_view, window=next_window(self.breakdown_view.window)))

    def action_drill(self) -> None:
        row_key = selected_key(self.query_one("#traces-table", DataTable))
        if row_key is None or not row_key.startswith("k:"):
            return
        view = self.breakdown_view
        narrowed = view.filter.model_copy(update={view.dimension: row_key[2:]})
        following = dimension_after(view.dimension, unfiltered(narrowed))
        if following is None:  # every dimension pinned: show the requests themselves
            self.post_message(Navigate("requests", RequestsView(narrowed, view.window, "failed")))
        else:
            self.post_message(Navigate("traces", BreakdownView(narrowed, following, view.window)))

    def action_requests(self, order: str) -> None:
        view = self.breakdown_view
        self.post_message(Navigate("requests", RequestsView(
            view.filter, view.window, "slowest" if order == "slowest" else "failed")))


REQUEST_COLUMNS = ("time", "trace", "status", "duration", "model", "tenant", "service", "provider",
                   "ttft", "cost")
"""What failed and how slowly come first, so they are on screen at 80 columns."""


def request_cells(row: RequestRow) -> dict[str, Text | str]:
    """One request's cells by column name (untrusted text sanitised, capped to fit 80 columns)."""
    return {
        "time": clock(row.start_time), "trace": safe_cell(row.trace_id[:12], 12),
        "service": safe_cell(row.service, 18), "provider": safe_cell(row.provider, 12),
        "model": safe_cell(row.model, 22), "tenant": safe_cell(row.tenant, 16),
        "status": status_cell(row), "duration": ms(row.duration_ms), "ttft": ms(row.ttft_ms),
        "cost": usd(row.cost_usd),
    }


class RequestsScreen(DeckScreen):
    """The worst requests in scope (failed or slowest first); Enter opens the trace."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open_trace", "Trace", priority=True, id="requests.open_trace"),
        Binding("o", "toggle_order", "Order", id="requests.toggle_order"),
        Binding("w", "next_window", "Window", id="requests.next_window"),
        Binding("c", "copy_trace_id", "Copy id", id="requests.copy_trace_id"),
    ]
    CSS = f"#requests-header {{ {HEADER_CSS} }} #requests-table {{ height: 1fr; max-height: 100%; }}"
    screen_title = "requests"
    view_id = "requests"

    def __init__(self, view: View | None = None) -> None:
        super().__init__()
        self.requests_view = view if isinstance(view, RequestsView) else RequestsView()
        self.rows: dict[str, RequestRow] = {}
        pinned = {dim for dim, _ in self.requests_view.filter.items()}
        self.columns = [c for c in REQUEST_COLUMNS if c not in pinned]
        """The scope's pinned dimensions are in the header, so their columns are left out."""

    def compose(self) -> ComposeResult:
        yield from self.compose_status()
        yield Static(id="requests-header", classes="screen-header")
        table: DataTable[Text | str] = DeckTable(id="requests-table", cursor_type="row",
                                                 fixed_columns=2)
        table.add_columns(*self.columns)
        yield table
        yield from self.compose_footer()

    def on_mount(self) -> None:
        self._show_header(None)

    def view(self) -> View:
        return self.requests_view

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "open_trace":
            return isinstance(self.focused, DataTable)
        return True

    def show(self, fetched: Fetched) -> None:
        page = fetched.snapshot
        if not isinstance(page, RequestsPage) or fetched.view != self.view():
            return
        self.rows = {f"{r.trace_id}/{r.span_id}": r for r in page.rows}
        rows = [(key, [cells[c] for c in self.columns])
                for key, cells in ((k, request_cells(r)) for k, r in self.rows.items())]
        table = self.query_one("#requests-table", DataTable)
        with self.app.batch_update():
            sync_rows(table, rows, self.filter_text, empty=f"no {page.view.order} requests here")
            self._show_header(page)

    def _show_header(self, page: RequestsPage | None) -> None:
        view = self.requests_view
        parts = [scope_line(view.filter), Content(f"{view.order} requests"),
                 window_label(view.window)]
        parts.append(Content("loading…") if page is None else Content(f"{len(page.rows):,} shown"))
        self.query_one("#requests-header", Static).update(header(*parts))

    def _change_view(self, view: RequestsView) -> None:
        self.requests_view = view
        self.last = None
        self._show_header(None)
        self.request_refresh()

    def selected_row(self) -> RequestRow | None:
        """The request under the cursor."""
        key = selected_key(self.query_one("#requests-table", DataTable))
        return None if key is None else self.rows.get(key)

    def action_toggle_order(self) -> None:
        order: Literal["slowest", "failed"] = (
            "slowest" if self.requests_view.order == "failed" else "failed")
        self._change_view(replace(self.requests_view, order=order))

    def action_next_window(self) -> None:
        self._change_view(replace(self.requests_view, window=next_window(self.requests_view.window)))

    def action_open_trace(self) -> None:
        row = self.selected_row()
        if row is not None:
            self.post_message(Navigate("trace", TraceView(row.trace_id)))

    def action_copy_trace_id(self) -> None:
        row = self.selected_row()
        if row is not None:
            copy_trace_id(self, row.trace_id)


def copy_trace_id(screen: DeckScreen, trace_id: str) -> None:
    """Put the (sanitised) trace id on the clipboard and say so."""
    text = cell(trace_id, 200)
    screen.app.copy_to_clipboard(text)
    screen.notify(f"copied trace id {text}", markup=False)


class TraceScreen(DeckScreen):
    """One trace: its span tree, and the selected span's attributes below it (beside when wide)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "copy_trace_id", "Copy id", id="trace.copy_trace_id"),
    ]
    CSS = (f"#trace-header {{ {HEADER_CSS} }}"
           " #trace-body { height: 1fr; layout: vertical; }"
           " TraceScreen.-wide #trace-body { layout: horizontal; }"
           " #trace-tree { height: auto; max-height: 50%; padding: 0 1; background: $surface; }"
           " TraceScreen.-wide #trace-tree { height: 1fr; max-height: 100%; width: 1fr; }"
           " #trace-attributes { height: 1fr; max-height: 100%; width: 1fr; }")
    screen_title = "trace"
    view_id = "trace"

    def __init__(self, view: View | None) -> None:
        super().__init__()
        if not isinstance(view, TraceView):
            raise TypeError("TraceScreen needs a TraceView (which trace to show)")
        self.trace_view = view

    def compose(self) -> ComposeResult:
        yield from self.compose_status()
        yield Static(id="trace-header", classes="screen-header")
        with Container(id="trace-body"):
            yield SpanTree(id="trace-tree")
            attributes: DataTable[Text | str] = DeckTable(id="trace-attributes", cursor_type="row",
                                                          fixed_columns=1)
            attributes.add_columns("attribute", "value")
            yield attributes
        yield from self.compose_footer()

    def on_mount(self) -> None:
        self.query_one("#trace-header", Static).update(
            header(Content("trace ") + safe_line(self.trace_view.trace_id, 40), Content("loading…")))
        self.query_one(SpanTree).focus()

    def on_resize(self, event: Resize) -> None:
        self.set_class(event.size.width >= WIDE, "-wide")

    def view(self) -> View:
        return self.trace_view

    def show(self, fetched: Fetched) -> None:
        tree = fetched.snapshot if isinstance(fetched.snapshot, TraceTree) else None
        with self.app.batch_update():
            self.query_one(SpanTree).show(tree)
            self._show_header(tree)
            self._show_attributes()

    def _show_header(self, tree: TraceTree | None) -> None:
        trace = Content("trace ") + safe_line(self.trace_view.trace_id, 40)
        if tree is None or not tree.spans:
            line = header(trace, Content("✖ trace not in the cache (pruned?)"))
        else:
            errors = sum(s.status == "error" for s in tree.spans)
            spans = len(tree.spans)
            line = header(trace, Content(f"{spans} span{'s' if spans != 1 else ''}"),
                          Content(f"✖ {errors} error{'s' if errors != 1 else ''}" if errors
                                  else "✔ no errors"),
                          Content(f"root {ms(tree.spans[0].duration_ms)}"))
        self.query_one("#trace-header", Static).update(line)

    def _show_attributes(self) -> None:
        table = self.query_one("#trace-attributes", DataTable)
        span = self.query_one(SpanTree).selected_span
        if span is None:
            sync_rows(table, [])
            return
        rows, seen = [], set[str]()
        for key, value in span_fields(span):
            row_key = key
            while row_key in seen:  # repeated keys stay separate rows
                row_key += "'"
            seen.add(row_key)
            rows.append((row_key, [safe_cell(key, 60), safe_cell(value, 300)]))
        sync_rows(table, rows, self.filter_text)

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[str]) -> None:
        self._show_attributes()

    def action_copy_trace_id(self) -> None:
        copy_trace_id(self, self.trace_view.trace_id)
