"""One trace's spans as a Textual Tree, nested under their parents, with sanitised labels."""

from __future__ import annotations

from rich.text import Text
from textual.geometry import Size
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from console.formatting import ms
from console.snapshots import TraceSpan, TraceTree
from panels.text import safe_cell

SEPARATOR = " · "


def span_label(span: TraceSpan) -> Text:
    """`chat gpt-4o · support-chatbot · 1.23s · ✖ error`, every untrusted part made inert."""
    label = Text(no_wrap=True, end="")
    label.append_text(safe_cell(span.name or "(unnamed span)", 60))
    if span.service:
        label.append(SEPARATOR)
        label.append_text(safe_cell(span.service, 30))
    label.append(SEPARATOR)
    label.append(ms(span.duration_ms))
    if span.status == "error":
        label.append(SEPARATOR)
        label.append("✖ error", style="bold")
    return label


def parent_indexes(tree: TraceTree) -> list[int | None]:
    """For each span, the index of its parent span (None at the top level).

    Uses the snapshot's depths when present (spans come depth-first), else the
    parent span ids; a span whose parent is missing from the cache sits at the top.
    """
    spans = tree.spans
    parents: list[int | None] = []
    if len(tree.depths) == len(spans):
        open_at_depth: list[int] = []
        for i, depth in enumerate(tree.depths):
            del open_at_depth[depth:]
            parents.append(open_at_depth[-1] if open_at_depth else None)
            open_at_depth.append(i)
        return parents
    index = {s.span_id: i for i, s in enumerate(spans)}
    for i, span in enumerate(spans):
        parent = index.get(span.parent_span_id or "")
        parents.append(parent if parent is not None and parent < i else None)
    return parents


def visible_lines(node: TreeNode[str]) -> int:
    """How many lines `node`'s descendants take with their current expand state."""
    return sum(1 + (visible_lines(c) if c.is_expanded else 0) for c in node.children)


def span_fields(span: TraceSpan) -> list[tuple[str, str]]:
    """The span's own fields, then every stored column and attribute (all raw, untrusted)."""
    head = [("name", span.name or ""), ("service", span.service or ""),
            ("start_time", f"{span.start_time:%Y-%m-%d %H:%M:%S.%f}"[:-3] + "Z"),
            ("duration", ms(span.duration_ms)), ("status", span.status)]
    if span.status_message:
        head.append(("status_message", span.status_message))
    head += [("span_id", span.span_id), ("parent_span_id", span.parent_span_id or "")]
    return head + list(span.attributes)


class SpanTree(Tree[str]):
    """A trace's span tree; each node's data is its span id. Rebuilt only when the spans change."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(Text("trace"), id=id)
        self.show_root = False
        self.guide_depth = 2
        self._shown: tuple[tuple[str, int | None, str], ...] | None = None
        self.spans: dict[str, TraceSpan] = {}

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        """One line per visible span, so an auto-height tree is as tall as the trace."""
        return visible_lines(self.root)

    @property
    def selected_span(self) -> TraceSpan | None:
        """The span under the cursor."""
        node = self.cursor_node
        return None if node is None or node.data is None else self.spans.get(node.data)

    def show(self, tree: TraceTree | None) -> None:
        """Render `tree` (None: nothing), keeping the cursor on the same span id."""
        spans = tree.spans if tree is not None else ()
        parents = parent_indexes(tree) if tree is not None else []
        self.spans = {s.span_id: s for s in spans}  # fresh attributes even when the shape holds
        shown = tuple((s.span_id, p, span_label(s).plain) for s, p in zip(spans, parents, strict=True))
        if shown == self._shown:
            return
        self._shown = shown
        keep = self.cursor_node.data if self.cursor_node is not None else None
        self.clear()
        with_children = {p for p in parents if p is not None}
        nodes: list[TreeNode[str]] = []
        for i, (span, parent) in enumerate(zip(spans, parents, strict=True)):
            under = self.root if parent is None else nodes[parent]
            label = span_label(span)
            if i in with_children:
                nodes.append(under.add(label, data=span.span_id, expand=True))
            else:
                nodes.append(under.add_leaf(label, data=span.span_id))
        self.root.expand()
        # An auto-height tree grows with its spans; a layout already pending when the nodes
        # were added may have measured the empty tree, so ask again after it.
        self.call_after_refresh(self.refresh, layout=True)
        target = next((n for n in nodes if n.data == keep), nodes[0] if nodes else None)
        if target is not None:
            self.call_after_refresh(self.move_cursor, target)
