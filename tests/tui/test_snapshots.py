"""SVG snapshots of every llmdeck screen at 80x24 and 160x50 over the frozen demo incident.

The data is the session's seeded demo cache with the clock frozen 15 simulated minutes into
the scripted anthropic incident, and the wall clock pinned, so each screen (charts included)
draws the same every run. Every test waits for the screen's own data (conftest `settle`)
before the screenshot. Review a changed snapshot with `pytest --snapshot-update` and the
HTML report pytest-textual-snapshot writes on failure; each docstring says what to look for.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest
from textual.widgets import Input

from console.backend import Backend
from console.snapshots import TraceTree
from console.views import Fetched, View
from panels.command_line import CommandLine
from panels.help_screen import HelpScreen
from tests.tui.conftest import DemoData, settle

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((160, 50), id="160x50")]

RunBefore = Callable[[Any], Awaitable[None]]


class PortableBackend(Backend):
    """The demo backend, with pytest's per-session temp dir shown as `/demo` in span attributes.

    Every span records the spool file it was ingested from (`source`), and that path holds
    pytest's numbered temp dir; the trace screen shows it at 160x50. It polls every 30 s:
    each screen fetches at once when opened, and nothing changes in the frozen data anyway.
    """

    def __init__(self, demo: DemoData) -> None:
        ui = demo.config.ui.model_copy(update={"refresh_seconds": 30})
        config = demo.config.model_copy(update={"ui": ui})
        super().__init__(demo.cache, config, lambda: demo.at, [demo.simulator])
        assert demo.config.cache.path is not None
        self.root = str(demo.config.cache.path.parent)

    def fetch(self, view: View) -> Fetched:
        fetched = super().fetch(view)
        tree = fetched.snapshot
        if not isinstance(tree, TraceTree):
            return fetched
        spans = tuple(
            replace(s, attributes=tuple((k, v.replace(self.root, "/demo")) for k, v in s.attributes))
            for s in tree.spans
        )
        return replace(fetched, snapshot=replace(tree, spans=spans))


@pytest.fixture
def deck(make_app: Callable[..., Any], demo_data: DemoData) -> Callable[..., Any]:
    """deck(theme=None) -> the app on the frozen demo data, ready for snap_compare."""

    def build(theme: str | None = None) -> Any:
        # no incident feed: its "INC-1 opened" toast would cover every screen (tests/tui/test_incidents*)
        return make_app(theme=theme, backend=PortableBackend(demo_data), incident_feed=False)

    return build


def after(*keys: str) -> RunBefore:
    """Wait for the first data, then press each key and wait for that screen's data."""

    async def run(pilot: Any) -> None:
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)

    return run


async def open_help(pilot: Any) -> None:
    await settle(pilot)
    await pilot.press("question_mark")
    for _ in range(100):
        if isinstance(pilot.app.screen, HelpScreen):
            break
        await pilot.pause(0.02)
    await pilot.pause()


async def type_sl(pilot: Any) -> None:
    """`:` then `sl`; wait for the suggestion `slo`, and stop the cursor blinking."""
    await settle(pilot)
    await pilot.press("colon", "s", "l")
    for _ in range(100):
        screen = pilot.app.screen
        if isinstance(screen, CommandLine):
            prompt = screen.query_one(Input)
            if prompt._suggestion == "slo":
                prompt.cursor_blink = False
                break
        await pilot.pause(0.02)
    else:
        raise AssertionError("the command line never suggested :slo")
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES)
def test_overview(snap_compare: Any, deck: Callable[..., Any], size: tuple[int, int]) -> None:
    """Overview, dark theme. 80x24: the "SLOs" table with `anthropic availability` `✖ page` on
    the top row (budget negative, exhaust `now`, burn5m in the hundreds), then the other two
    pages (support-chatbot availability, anthropic rate limits) and six `✔ ok` rows; all four
    budgets `✔ ok`; the Spend line ending `▲ … unpriced`; `Firing: ✖ 3 page · ▲ 0 ticket ·
    worst: anthropic availability` (the top row, not config order); the footer `/ Filter`,
    `esc Back`, `: :cmd`, `? Help`, `q Quit` (packed, no `^p palette` under 100 columns). The
    SLO table has focus: its cursor row bold on a strong accent; the budgets table's cursor
    row only faintly tinted. Status line: `llmdeck › overview · data 12:20:00Z
    · refreshed 0s ago · ● demo simulator live`. Every SLO name whole (`support-chatbot
    availability`), nothing cut off. 160x50 adds the error-rate (%) and p95-latency (s) charts
    under the tables, both jumping up at the right edge (the incident), ticks -6h/-3h/now."""
    assert snap_compare(deck(), terminal_size=size, run_before=after())


@pytest.mark.parametrize("size", SIZES)
def test_slo_screen(snap_compare: Any, deck: Callable[..., Any], size: tuple[int, int]) -> None:
    """`2`: the SLO table worst first with the cursor on `anthropic availability` (✖ page,
    budget negative, exhaust `now`); the reason line under it names that SLO, `1h burn … and 5m
    burn … > 14.4`, scope provider=anthropic, `Enter: drill down`; three charts (burn rate,
    error rate %, p95 latency s), the first two flat then jumping up at `now`. 80x24: the table
    shows SLO…burn1h and scrolls sideways (scrollbar under it) for the other windows, target
    and kind, with SLO and state pinned at the left; the charts fit the rows left, with their
    x axis and -6h/-3h/now ticks.
    160x50: every column through `target` and `kind`, nothing cut."""
    assert snap_compare(deck(), terminal_size=size, run_before=after("2"))


@pytest.mark.parametrize("size", SIZES)
def test_cost_screen(snap_compare: Any, deck: Callable[..., Any], size: tuple[int, int]) -> None:
    """`3`: `Spend today … · week … · month … · failed/retry today …`, the `▲ … requests (…%)
    this month have no price: cost unknown, not $0` warning, the four budgets (all `✔ ok`,
    used/spent/basis (`estimated`)/limit/forecast/exhaust first), then "Spend today by
    provider" (anthropic the largest share) and "Top movers (last hour vs the hour before)"
    with a `change` column.
    80x24: spend and movers stacked, all on screen; the budgets table scrolls sideways
    (scrollbar under it) for the $/h columns and period, budget and state pinned. Only the
    budgets table (focused) has a strong cursor row; spend and movers show theirs faintly.
    160x50: spend and movers side by side, every column of every table visible."""
    assert snap_compare(deck(), terminal_size=size, run_before=after("3"))


@pytest.mark.parametrize("size", SIZES)
def test_traces_breakdown(snap_compare: Any, deck: Callable[..., Any],
                          size: tuple[int, int]) -> None:
    """`4`: `all traffic · by provider · last 1h · N requests`; anthropic first with about a
    third of its requests failed, as many 429/529, p95 ~16 s; openai, gcp.gemini, mistral_ai
    below at ~0% errors; openai's cost reads `$0.96 +54 unpriced` (not a bare dollar figure).
    Every cell at full width (not `anthropi` / `15.` cut to the header's width) at both sizes;
    the table fills the screen down to the footer, which at 80x24 ends `? Help q Quit`."""
    assert snap_compare(deck(), terminal_size=size, run_before=after("4"))


@pytest.mark.parametrize("size", SIZES)
def test_requests_failed(snap_compare: Any, deck: Callable[..., Any],
                         size: tuple[int, int]) -> None:
    """`4` then `f`: `all traffic · failed requests · last 1h · 50 shown`; newest first, each
    `✖ 429 rate_limit_error` or `✖ 529 overloaded_error` on claude models. 80x24: time, trace,
    status, duration and model fit; the table scrolls sideways for tenant…cost (time and trace
    pinned); the footer ends `? Help q Quit`. 160x50: every column, full width."""
    assert snap_compare(deck(), terminal_size=size, run_before=after("4", "f"))


@pytest.mark.parametrize("size", SIZES)
def test_trace_span_tree(snap_compare: Any, deck: Callable[..., Any],
                         size: tuple[int, int]) -> None:
    """`4`, `f`, Enter: the newest failed request's trace, header `trace … · N spans · ✖ M
    errors · root …`; the tree lists its `chat claude-… · <service> · <duration> · ✖ error`
    calls, cursor on the first; the attributes of that span: status `error`, status_message
    `429 rate_limit_error` or `529 overloaded_error`, provider anthropic, http_status.
    80x24: tree above, attributes below (scrolling); 160x50: side by side, every attribute,
    `source` reads `/demo/spool/…` (the temp dir is normalised)."""
    assert snap_compare(deck(), terminal_size=size, run_before=after("4", "f", "enter"))


async def filter_anth(pilot: Any) -> None:
    """`4` then `/` and `anth`; stop the cursor blinking."""
    await settle(pilot)
    await pilot.press("4")
    await settle(pilot)
    await pilot.press("slash", *"anth")
    pilot.app.screen.query_one(Input).cursor_blink = False
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES)
def test_filter_line(snap_compare: Any, deck: Callable[..., Any], size: tuple[int, int]) -> None:
    """`4`, `/`, `anth`: the breakdown narrowed to its one `anthropic` row; on its own line
    right above the footer, `/ anth` with the cursor after it and `1 row matches` at the right
    edge; the footer below reads `⏎ Keep filter`, `esc Clear filter`. Nothing is drawn over
    the table (it ends above the filter line)."""
    assert snap_compare(deck(), terminal_size=size, run_before=filter_anth)


@pytest.mark.parametrize("size", SIZES)
def test_help(snap_compare: Any, deck: Callable[..., Any], size: tuple[int, int]) -> None:
    """`?` over the overview: a rounded box titled `llmdeck keys (remap by id under
    [ui.keymap])` (the brackets shown, not eaten as markup); llmdeck's own keys with their
    ids first — `/ screen.filter`, `esc screen.back`, `⏎ overview.open`, `: app.command`,
    `? app.help`, `1`–`4`, `r`, `^t`, `q app.quit` — then Textual's generic keys (no id).
    80x24: the list scrolls (scrollbar on the right); 160x50: the `:` commands are visible
    below the keys."""
    assert snap_compare(deck(), terminal_size=size, run_before=open_help)


@pytest.mark.parametrize("size", SIZES)
def test_command_line(snap_compare: Any, deck: Callable[..., Any],
                      size: tuple[int, int]) -> None:
    """`:` then `sl` over the overview: the bottom line (where the footer was) is the prompt
    reading `sl` with the suggestion `o` after it (`slo`) and the cursor on it; the overview
    stays visible above, unchanged."""
    assert snap_compare(deck(), terminal_size=size, run_before=type_sl)


@pytest.mark.parametrize("size", SIZES)
def test_overview_light_theme(snap_compare: Any, deck: Callable[..., Any],
                              size: tuple[int, int]) -> None:
    """The overview of test_overview in llmdeck-light: dark text on a near-white background,
    blue section titles and headers readable, the cursor row tinted; same content and layout
    as the dark snapshot (states still read `✖ page` / `✔ ok`)."""
    assert snap_compare(deck(theme="light"), terminal_size=size, run_before=after())


@pytest.mark.parametrize("size", SIZES)
def test_overview_high_contrast_theme(snap_compare: Any, deck: Callable[..., Any],
                                      size: tuple[int, int]) -> None:
    """The overview of test_overview in llmdeck-high-contrast: white on pure black, cyan
    headers, yellow footer keys; same content and layout as the dark snapshot."""
    assert snap_compare(deck(theme="high-contrast"), terminal_size=size, run_before=after())
