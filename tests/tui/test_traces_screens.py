"""Pilot tests of the drill-down screens (breakdown → requests → trace) over a real cache.

A small cache is built once from the demo traffic model (with an anthropic incident)
plus one hand-written trace whose tenant, model, status message and attributes are
hostile. A minimal harness app answers each screen's view synchronously through the
real Backend, so what the tests read is what a person would see at 80x24.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from rich.console import Console
from textual.app import App
from textual.widgets import DataTable, Static

from console.backend import Backend
from console.cache.ingest import Ingestor
from console.cache.store import Cache
from console.config import ScopeFilter
from console.demo.traffic import Incident, TrafficModel, export_requests, write_collector_jsonl
from console.snapshots import TraceSpan, TraceTree
from console.views import BreakdownView, RequestsView, TraceView
from panels.base import DeckScreen
from panels.messages import Navigate, RefreshRequested, SnapshotReady
from panels.routes import ROUTE_BY_NAME
from panels.span_tree import SpanTree, parent_indexes
from panels.traces_screen import RequestsScreen, TraceScreen, TracesScreen
from themes import STYLESHEET

END = datetime(2025, 6, 2, 14, 0)
HOSTILE_TRACE = "feedfacefeedfacefeedfacefeedface"
HOSTILE_TENANT = "[@click=app.quit]x[/]"
HOSTILE_MODEL = "\x1b]0;pwn\x07claude"


def _ns(t: datetime) -> int:
    return int(t.replace(tzinfo=UTC).timestamp() * 1e9)


def _attr(key: str, value: object) -> dict[str, Any]:
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": value}}


def _hostile_trace() -> dict[str, Any]:
    """One trace of three spans: a root, a failed LLM call with hostile strings, its HTTP child."""
    start = _ns(END - timedelta(minutes=2))

    def span(span_id: str, parent: str | None, name: str, offset_ms: int, ms: int,
             attrs: list[dict[str, Any]], status: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "traceId": HOSTILE_TRACE, "spanId": span_id, "name": name, "kind": 3,
            "startTimeUnixNano": str(start + offset_ms * 1_000_000),
            "endTimeUnixNano": str(start + (offset_ms + ms) * 1_000_000),
            "attributes": attrs, "status": status,
        }
        if parent:
            body["parentSpanId"] = parent
        return body

    llm_attrs = [
        _attr("gen_ai.operation.name", "chat"), _attr("gen_ai.provider.name", "anthropic"),
        _attr("gen_ai.request.model", HOSTILE_MODEL), _attr("llmdeck.tenant", HOSTILE_TENANT),
        _attr("http.route", "/v1/chat"), _attr("error.type", "rate_limit_error"),
        _attr("http.response.status_code", 429), _attr("[link=https://evil]k[/link]", "\x1b[31mred"),
    ]
    spans = [
        span("aaaaaaaaaaaaaaa1", None, "POST /v1/chat", 0, 2400, [_attr("http.route", "/v1/chat")], {}),
        span("aaaaaaaaaaaaaaa2", "aaaaaaaaaaaaaaa1", "chat [b]claude[/b]", 100, 2200, llm_attrs,
             {"code": 2, "message": "\x1b]0;pwn\x07 [@click=app.quit]boom[/]"}),
        span("aaaaaaaaaaaaaaa3", "aaaaaaaaaaaaaaa2", "HTTP POST", 150, 2100, [], {}),
    ]
    resource = {"attributes": [_attr("service.name", "support-chatbot")]}
    return {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": spans}]}]}


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory, make_config: Callable[..., Any]
            ) -> Iterator[Backend]:
    """A cache of 2h of demo traffic (anthropic failing for the last 40 minutes) + the hostile trace."""
    folder = tmp_path_factory.mktemp("traces")
    incident = Incident("anthropic", _ns(END - timedelta(minutes=40)), _ns(END))
    model = TrafficModel(seed=11, incidents=[incident])
    traffic = folder / "traffic.jsonl"
    write_collector_jsonl(str(traffic), export_requests(
        model, _ns(END - timedelta(hours=2)), _ns(END), 3000))
    hostile = folder / "hostile.jsonl"
    hostile.write_bytes(orjson.dumps(_hostile_trace()) + b"\n")
    config = make_config()
    cache = Cache.open(folder / "cache.duckdb")
    Ingestor(cache, config).run([traffic, hostile], "auto")
    yield Backend(cache, config, clock=lambda: END)
    cache.close()


class Harness(App[None]):
    """Pushes one screen and answers every view synchronously, as the real poller would."""

    CSS_PATH = str(STYLESHEET)

    def __init__(self, backend: Backend, first: DeckScreen) -> None:
        super().__init__()
        self.backend = backend
        self.first = first

    def on_mount(self) -> None:
        self.push_screen(self.first)
        self.answer(self.first)

    def answer(self, screen: DeckScreen) -> None:
        screen.post_message(SnapshotReady(self.backend.fetch(screen.view())))

    def on_navigate(self, message: Navigate) -> None:
        screen = ROUTE_BY_NAME[message.target].screen(message.view)
        self.push_screen(screen)
        self.answer(screen)

    def on_refresh_requested(self, message: RefreshRequested) -> None:
        if isinstance(self.screen, DeckScreen):
            self.answer(self.screen)


def screen_text(app: App[Any]) -> str:
    """The terminal's text as a person sees it (what export_screenshot draws, without styles)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True,
                      record=True, legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=[]))
    return console.export_text(styles=False)


def rows(table: DataTable[Any]) -> list[list[str]]:
    """Every row's cells as plain text."""
    return [[c.plain if hasattr(c, "plain") else str(c) for c in table.get_row_at(i)]
            for i in range(table.row_count)]


def column(app: App[Any], label: str) -> list[str]:
    """One column of the requests table, by its label."""
    at = app.screen.columns.index(label)
    return [r[at] for r in rows(table(app, "#requests-table"))]


def first_cells(table: DataTable[Any]) -> list[str]:
    return [r[0] for r in rows(table)]


def header(app: App[Any]) -> str:
    return str(app.screen.query_one(".screen-header", Static).render())


def table(app: App[Any], selector: str) -> DataTable[Any]:
    return app.screen.query_one(selector, DataTable)


async def move_to(pilot: Any, tbl: DataTable[Any], first_cell: str) -> None:
    """Put the cursor on the row whose first cell is `first_cell`."""
    tbl.move_cursor(row=first_cells(tbl).index(first_cell))
    await pilot.pause()


def run(backend: Backend, screen: DeckScreen) -> Any:
    return Harness(backend, screen).run_test(size=(80, 24))


async def test_default_breakdown_groups_all_traffic_by_provider_worst_first(backend: Backend) -> None:
    async with run(backend, TracesScreen(None)) as pilot:
        await pilot.pause()
        assert header(pilot.app).startswith("all traffic · by provider · last 1h · ")
        providers = first_cells(table(pilot.app, "#traces-table"))
        assert providers[0] == "anthropic"  # the incident makes it the worst
        assert set(providers) >= {"openai", "anthropic", "gcp.gemini", "mistral_ai"}
        assert "anthropic" in screen_text(pilot.app)


async def test_drill_down_from_provider_to_model_to_failed_requests_to_trace(backend: Backend) -> None:
    async with run(backend, TracesScreen(None)) as pilot:
        app = pilot.app
        await pilot.pause()
        await move_to(pilot, table(app, "#traces-table"), "anthropic")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, TracesScreen)
        assert app.screen.view() == BreakdownView(ScopeFilter(provider="anthropic"), "model")
        assert header(app).startswith("provider=anthropic · by model · last 1h")
        await move_to(pilot, table(app, "#traces-table"), "claude-sonnet-4-5")
        await pilot.press("enter")
        await pilot.pause()
        narrowed = ScopeFilter(provider="anthropic", model="claude-sonnet-4-5")
        assert app.screen.view() == BreakdownView(narrowed, "tenant")
        assert header(app).startswith("provider=anthropic › model=claude-sonnet-4-5 · by tenant")
        await pilot.press("f")
        await pilot.pause()
        assert isinstance(app.screen, RequestsScreen)
        assert app.screen.view() == RequestsView(narrowed, timedelta(hours=1), "failed")
        assert app.screen.columns[:4] == ["time", "trace", "status", "duration"]
        assert "provider" not in app.screen.columns and "model" not in app.screen.columns
        statuses = column(app, "status")
        assert statuses and all(s.startswith(("✖ 429 ", "✖ 529 ")) for s in statuses)
        assert {r.model for r in app.screen.rows.values()} == {"claude-sonnet-4-5"}
        chosen = app.screen.selected_row()
        assert chosen is not None
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, TraceScreen)
        assert app.screen.view() == TraceView(chosen.trace_id)
        await pilot.pause()
        tree = app.screen.query_one(SpanTree)
        assert tree.selected_span is not None and tree.selected_span.span_id == chosen.span_id
        assert "✖ error" in tree.root.children[0].label.plain
        assert rows(table(app, "#trace-attributes"))
        await pilot.press("escape", "escape", "escape")
        await pilot.pause()
        assert app.screen.view() == BreakdownView(ScopeFilter(provider="anthropic"), "model")


async def test_d_cycles_through_dimensions_not_already_filtered(backend: Backend) -> None:
    view = BreakdownView(ScopeFilter(provider="anthropic"), "model")
    async with run(backend, TracesScreen(view)) as pilot:
        seen = []
        for _ in range(5):
            await pilot.press("d")
            await pilot.pause()
            seen.append(pilot.app.screen.view().dimension)
            assert table(pilot.app, "#traces-table").columns  # rebuilt for the new dimension
        assert seen == ["tenant", "route", "prompt_version", "service", "model"]
        assert header(pilot.app).startswith("provider=anthropic · by model")


async def test_w_cycles_the_window_and_keeps_the_cursor_on_the_same_key(backend: Backend) -> None:
    async with run(backend, TracesScreen(None)) as pilot:
        await pilot.pause()
        tbl = table(pilot.app, "#traces-table")
        await move_to(pilot, tbl, "gcp.gemini")
        windows = []
        for _ in range(4):
            await pilot.press("w")
            await pilot.pause()
            windows.append(pilot.app.screen.view().window)
            assert first_cells(tbl)[tbl.cursor_row] == "gcp.gemini"
        assert windows == [timedelta(hours=6), timedelta(hours=24), timedelta(minutes=5),
                           timedelta(hours=1)]
        assert "last 1h" in header(pilot.app)


async def test_refresh_keeps_the_cursor_row(backend: Backend) -> None:
    async with run(backend, TracesScreen(None)) as pilot:
        await pilot.pause()
        tbl = table(pilot.app, "#traces-table")
        await move_to(pilot, tbl, "mistral_ai")
        pilot.app.screen.request_refresh()
        await pilot.pause()
        assert first_cells(tbl)[tbl.cursor_row] == "mistral_ai"


async def test_slash_filter_narrows_rows_and_typed_letters_are_not_shortcuts(backend: Backend) -> None:
    async with run(backend, TracesScreen(None)) as pilot:
        await pilot.pause()
        await pilot.press("slash", "o", "p", "e", "n", "d")  # "d" must not change dimension
        await pilot.pause()
        assert pilot.app.screen.view().dimension == "provider"
        assert pilot.app.screen.filter_text == "opend"
        assert first_cells(table(pilot.app, "#traces-table")) == []
        await pilot.press("backspace", "enter")
        await pilot.pause()
        assert first_cells(table(pilot.app, "#traces-table")) == ["openai"]
        assert isinstance(pilot.app.screen, TracesScreen)  # Enter in the bar did not drill


async def test_s_opens_the_slowest_requests_and_o_toggles_the_order(backend: Backend) -> None:
    async with run(backend, TracesScreen(None)) as pilot:
        await pilot.pause()
        await pilot.press("s")
        await pilot.pause()
        app = pilot.app
        assert app.screen.view() == RequestsView(ScopeFilter(), timedelta(hours=1), "slowest")
        assert "slowest requests" in header(app)
        durations = [r.duration_ms or 0 for r in app.screen.rows.values()]
        assert durations == sorted(durations, reverse=True) and len(durations) == 50
        await pilot.press("o")
        await pilot.pause()
        assert app.screen.view().order == "failed"
        assert "failed requests" in header(app)
        assert all(s.startswith("✖ ") for s in column(app, "status"))
        await pilot.press("o")
        await pilot.pause()
        assert app.screen.view().order == "slowest"


async def test_c_copies_the_selected_trace_id_and_says_so(backend: Backend) -> None:
    async with run(backend, RequestsScreen(RequestsView(order="failed"))) as pilot:
        await pilot.pause()
        row = pilot.app.screen.selected_row()
        assert row is not None
        await pilot.press("c")
        await pilot.pause()
        assert pilot.app.clipboard == row.trace_id
        assert any(row.trace_id in n.message for n in pilot.app._notifications)
    async with run(backend, TraceScreen(TraceView(HOSTILE_TRACE))) as pilot:
        await pilot.pause()
        await pilot.press("c")
        assert pilot.app.clipboard == HOSTILE_TRACE


async def test_trace_missing_from_the_cache_says_so(backend: Backend) -> None:
    async with run(backend, TraceScreen(TraceView("0" * 32))) as pilot:
        await pilot.pause()
        assert "trace not in the cache (pruned?)" in screen_text(pilot.app)
        assert not pilot.app.screen.query_one(SpanTree).root.children


async def test_hostile_strings_render_inert_everywhere(backend: Backend) -> None:
    view = BreakdownView(ScopeFilter(provider="anthropic"), "tenant")
    async with run(backend, TracesScreen(view)) as pilot:
        app = pilot.app
        await pilot.pause()
        tenants = first_cells(table(app, "#traces-table"))
        assert HOSTILE_TENANT in tenants
        # clicking the hostile cell itself runs no action (the text is not markup)
        await pilot.click("#traces-table", offset=(3, 1 + tenants.index(HOSTILE_TENANT)))
        await pilot.pause()
        assert app.is_running and app.screen.view() == view
        await move_to(pilot, table(app, "#traces-table"), HOSTILE_TENANT)
        await pilot.press("enter")  # narrow to the hostile tenant: it shows in the header chip
        await pilot.pause()
        assert f"tenant={HOSTILE_TENANT}" in header(app)
        await pilot.press("f")
        await pilot.pause()
        assert column(app, "trace") == [HOSTILE_TRACE[:12]]
        assert column(app, "model") == ["\\x1b]0;pwn\\x07claude"]
        await pilot.press("enter")
        await pilot.pause()
        await pilot.pause()
        tree = app.screen.query_one(SpanTree)
        labels = [n.label.plain for n in (tree.root.children[0], *tree.root.children[0].children)]
        assert labels[0] == "POST /v1/chat · support-chatbot · 2.40s"
        assert labels[1] == "chat [b]claude[/b] · support-chatbot · 2.20s · ✖ error"
        tree.move_cursor(tree.root.children[0].children[0])
        await pilot.pause()
        attributes = dict((k, v) for k, v in rows(table(app, "#trace-attributes")))
        assert attributes["tenant"] == HOSTILE_TENANT
        assert attributes["status_message"] == "\\x1b]0;pwn\\x07 [@click=app.quit]boom[/]"
        assert attributes["[link=https://evil]k[/link]"] == "\\x1b[31mred"
        text = screen_text(app)
        assert "\x1b" not in text and "\x07" not in text
        assert "[@click=app.quit]boom[/]" in text and "chat [b]claude[/b]" in text
        assert app.is_running and isinstance(app.screen, TraceScreen)


async def test_screens_fit_80x24_with_tables_filling_the_rest(backend: Backend) -> None:
    async with run(backend, TracesScreen(None)) as pilot:
        await pilot.pause()
        assert table(pilot.app, "#traces-table").size.height == 24 - 3
        await pilot.press("f")
        await pilot.pause()
        assert table(pilot.app, "#requests-table").size.height == 24 - 3
    async with run(backend, TraceScreen(TraceView(HOSTILE_TRACE))) as pilot:
        await pilot.pause()
        tree = pilot.app.screen.query_one(SpanTree)
        attributes = table(pilot.app, "#trace-attributes")
        assert tree.region.y < attributes.region.y  # stacked at 80 columns
        assert tree.size.height + attributes.size.height >= 24 - 3 - 1
        await pilot.resize_terminal(140, 30)
        await pilot.pause()
        assert tree.region.y == attributes.region.y and tree.region.x < attributes.region.x


async def test_d_says_so_when_every_other_dimension_is_filtered(backend: Backend) -> None:
    pinned = ScopeFilter(service="support-chatbot", provider="openai", model="gpt-4o",
                         tenant="globex", route="/v1/chat")
    async with run(backend, TracesScreen(BreakdownView(pinned, "prompt_version"))) as pilot:
        await pilot.pause()
        await pilot.press("d")
        await pilot.pause()
        assert pilot.app.screen.view().dimension == "prompt_version"
        assert any("already filtered" in n.message for n in pilot.app._notifications)


def test_span_tree_nests_by_parent_id_when_depths_are_missing() -> None:
    def span(span_id: str, parent: str | None) -> TraceSpan:
        return TraceSpan(span_id, parent, span_id, None, END, 1.0, "ok", None, ())

    tree = TraceTree("t", (span("a", None), span("b", "a"), span("c", "b"), span("d", "gone")))
    assert parent_indexes(tree) == [None, 0, 1, None]
    with_depths = TraceTree("t", tree.spans, depths=(0, 1, 2, 0))
    assert parent_indexes(with_depths) == [None, 0, 1, None]


async def test_trace_refresh_keeps_the_selected_span_and_its_attributes(backend: Backend) -> None:
    async with run(backend, TraceScreen(TraceView(HOSTILE_TRACE))) as pilot:
        await pilot.pause()
        await pilot.press("down", "down")
        await pilot.pause()
        tree = pilot.app.screen.query_one(SpanTree)
        assert tree.selected_span is not None and tree.selected_span.name == "HTTP POST"
        pilot.app.screen.request_refresh()
        await pilot.pause()
        assert tree.selected_span.name == "HTTP POST"
        assert dict(rows(table(pilot.app, "#trace-attributes")))["name"] == "HTTP POST"
