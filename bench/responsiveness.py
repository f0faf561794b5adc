"""Responsiveness benchmark: key press → the repaint that shows its effect, while every panel
refreshes each second on a 10M-span cache and an ingest runs in the same process.

    python bench/responsiveness.py [--workdir /work/bench-caches] [--spans 10000000]
                                   [--presses 300] [--ingest-spans 2000000] [--no-ingest]
                                   [--ingest-mapping process|thread]

Set-up. The 10M cache is copied (the ingest writes to it, and the copy keeps the
shared cache at exactly 10M spans for the other benchmarks) and opened read-write
by this process, the one owner of the file, as `llmdeck demo` does. The console
(LlmdeckApp on a Backend with the demo's 9 SLOs and 4 budgets, the clock pinned to
the end of the cached week, refresh_seconds=1) runs under `App.run_test` at
120x40, headless. An ingest of a generated Collector file (the demo traffic
generator, seed 12, spread over the last 24 h of the week, so the panels' windows
change while it runs) starts on a background thread with
`console.cache.ingest.Ingestor(cache, config, workers=1, processes=True)` on the same
Cache object: one worker process decodes and maps, the writer stores on this
process's ingest thread (DuckDB at 1 thread), leaving a core and the GIL to the UI.
`--ingest-mapping thread` decodes and maps on the ingest thread instead, sharing the
GIL with the UI (the harder case; the figures recorded before 2026-11-24's second
session were taken that way).

What is measured, per key press:
- t0: just before the key event is handed to the driver, as the Linux driver's
  input thread does (`driver.send_message(events.Key(...))`, which queues it on the
  app's event loop). Pilot.press is not used: it waits for the whole process to
  be idle (never, with an ingest running) and forces a screen update itself.
- t1: the end of the first compositor refresh whose output shows the key's effect.
  `App._display` is hooked (headless Textual skips it, so the hook also converts the
  update to the terminal bytes a real terminal would be sent: `render_segments`, a
  real cost of every repaint). Each update is applied to a virtual screen (text and
  style per cell), and a check on that screen decides whether the effect is
  visible: the cursor highlight on the next row (down/up); `/` the filter bar
  focused and its placeholder or the footer's changed key list on screen; letters
  the typed text on the filter line and the tables showing exactly the rows the
  filter leaves, Esc the same for the cleared filter; 2, 3, 1 the new screen's
  title in the status line.
The key sequence, repeated: on the overview down down up up / l a t Esc, then 2 (SLO
screen: wait for its data) down up, 3 (cost), 1 (back to the overview). Between two
presses, a think time of 50-250 ms (seeded) lets polls and ingest batches land at
any point. Data refreshes (a poll finishing) are not key presses and are not timed;
"switch → data" (2/3/1 until the new screen shows its first fetched snapshot) is
printed for information.

Goal (issue 2): p99 under 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import query  # noqa: E402
from bench.console_common import (  # noqa: E402
    AT,
    DEFAULT_WORKDIR,
    LARGE,
    SIZE,
    bench_config,
    ensure_cache,
    loadavg,
    percentile,
    summary,
)

INGEST_SEED = 12
INGEST_HOURS = 24
PROBE_TIMEOUT = 5.0
KEYS: dict[str, tuple[str, str | None]] = {
    "down": ("down", None), "up": ("up", None), "escape": ("escape", "\x1b"),
    "/": ("slash", "/"),
}


# ---------------------------------------------------------------------------
# What a terminal would show
# ---------------------------------------------------------------------------


class VirtualScreen:
    """The terminal's cells (character, style), kept up to date from compositor updates."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.chars = [[" "] * width for _ in range(height)]
        self.styles: list[list[Any]] = [[None] * width for _ in range(height)]

    def apply(self, update: Any, console: Any) -> None:
        from rich.cells import cell_len
        from rich.segment import ControlType

        x = y = 0
        for seg in update.__rich_console__(console, console.options):
            if seg.control:
                for code in seg.control:
                    if code[0] == ControlType.CURSOR_MOVE_TO:
                        x, y = code[1], code[2]
                continue
            text, style = seg.text, seg.style
            if text == "\n":
                x, y = 0, y + 1
                continue
            if not 0 <= y < self.height:
                continue
            chars, styles = self.chars[y], self.styles[y]
            for ch in text:
                if 0 <= x < self.width:
                    chars[x], styles[x] = ch, style
                x += cell_len(ch) or 1

    def line(self, y: int, x0: int = 0, x1: int | None = None) -> str:
        if not 0 <= y < self.height:
            return ""
        return "".join(self.chars[y][x0:x1])

    def style(self, x: int, y: int) -> Any:
        """How the cell looks (colours and attributes; Textual's per-cell meta left out)."""
        if 0 <= y < self.height and 0 <= x < self.width:
            s = self.styles[y][x]
            if s is not None:
                return (s.color, s.bgcolor, s.bold, s.reverse, s.underline)
        return None

    def contains(self, text: str) -> bool:
        return any(text in "".join(row) for row in self.chars)


# ---------------------------------------------------------------------------
# Probes: one key press and the check that its effect is on screen
# ---------------------------------------------------------------------------

Check = Callable[[Any, VirtualScreen], bool]


@dataclass
class Probe:
    key: str
    check: Check
    t0: float = 0.0
    cpu0: float = 0.0
    """The UI thread's CPU time at t0 (time.thread_time; the bench coroutine runs on that thread)."""
    cpu1: float | None = None
    first_refresh: float | None = None
    """The first compositor refresh after t0, whatever it showed."""
    done: asyncio.Event = field(default_factory=asyncio.Event)
    t1: float | None = None


@dataclass
class Recorder:
    """Hooked into the app's _display: keeps the virtual screen, completes the pending probe."""

    screen: VirtualScreen
    probe: Probe | None = None
    refreshes: int = 0
    render_ms: list[float] = field(default_factory=list)
    on_refresh: list[Callable[[float], None]] = field(default_factory=list)


def table_rows_y(table: Any) -> tuple[int, int]:
    """(x, y of row 0) of a DataTable's first cell text on screen."""
    region = table.content_region
    return region.x + 1, region.y + (table.header_height if table.show_header else 0) \
        - int(table.scroll_offset.y)


def cursor_check(table: Any, vs: VirtualScreen, old_row: int, new_row: int) -> Check:
    """The highlight moved from old_row to new_row: new_row now has the old row's style."""
    x, y0 = table_rows_y(table)
    cursor_style = vs.style(x, y0 + old_row)
    plain_style = vs.style(x, y0 + new_row)
    if cursor_style == plain_style:  # cannot tell the cursor by its style: fall back to state
        return lambda app, v: table.cursor_row == new_row and not table._repaint_required

    def check(app: Any, v: VirtualScreen) -> bool:
        xx, yy = table_rows_y(table)
        return (table.cursor_row == new_row and v.style(xx, yy + new_row) == cursor_style
                and v.style(xx, yy + old_row) != cursor_style)

    return check


def shown_rows_match(table: Any, vs: VirtualScreen) -> bool:
    """Every row the table holds now is drawn where it belongs (first cell's text)."""
    x, y0 = table_rows_y(table)
    visible = table.content_region.height - (table.header_height if table.show_header else 0)
    for i, key in enumerate(list(table.rows)[:max(visible, 0)]):
        first = table.get_row(key)[0]
        name = (first.plain if hasattr(first, "plain") else str(first)).strip()[:12]
        if name and name not in vs.line(y0 + i, x, table.content_region.right):
            return False
    return True


def filter_check(screen: Any, value: str, tables: list[Any]) -> Check:
    """The filter bar shows `value` (or is gone, for ""), and the tables show the filtered rows."""
    from panels.base import FilterBar

    bar = screen.query_one(FilterBar)

    def check(app: Any, vs: VirtualScreen) -> bool:
        if screen.filter_text != value or app.screen is not screen:
            return False
        if not value and bar.has_class("-active"):
            return False
        if value and value not in vs.line(bar.region.y):  # the filter line shows the text
            return False
        return all(shown_rows_match(t, vs) for t in tables)

    return check


def bar_open_check(screen: Any, vs: VirtualScreen) -> Check:
    """`/` focused the filter bar: its placeholder shows, or the footer's key list changed to
    the filter bar's."""
    from panels.base import FilterBar

    bar = screen.query_one(FilterBar)
    footer_before = vs.line(vs.height - 1)

    def check(app: Any, v: VirtualScreen) -> bool:
        if not (bar.has_class("-active") and app.focused is bar):
            return False
        return v.contains("filter rows (Esc clears)") or v.line(v.height - 1) != footer_before

    return check


def title_check(title: str) -> Check:
    return lambda app, vs: f"› {title}" in vs.line(0)


# ---------------------------------------------------------------------------
# The ingest running alongside
# ---------------------------------------------------------------------------


def ingest_file(workdir: Path, spans: int) -> Path:
    """A Collector file of `spans` spans over the last 24 h of the caches' week (kept for reuse)."""
    path = workdir / "generated" / f"responsiveness-ingest-{spans}.jsonl"
    done = path.with_suffix(".done")
    if path.exists() and done.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"generating {path.name} ({spans:,} spans)...", flush=True)
    start = AT - timedelta(hours=INGEST_HOURS)
    requests = query.export_requests(query.TrafficModel(seed=INGEST_SEED), query._ns(start),
                                     query._ns(AT), spans, query.SPANS_PER_LINE)
    written = query.write_chunk(path, requests, spans // query.SPANS_PER_LINE + 1)
    done.write_text(str(written))
    return path


class GcPauses:
    """Garbage collections that ran on the UI thread, and how long each took."""

    def __init__(self) -> None:
        self.thread = threading.get_ident()
        self.pauses: list[tuple[int, float]] = []
        self.cpu_ms: list[float] = []
        self.collected: list[int] = []
        self._start = 0.0
        self._cpu = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if threading.get_ident() != self.thread:
            return
        if phase == "start":
            self._start = time.perf_counter()
            self._cpu = time.thread_time()
        else:
            self.pauses.append((info["generation"], (time.perf_counter() - self._start) * 1000))
            self.cpu_ms.append((time.thread_time() - self._cpu) * 1000)
            self.collected.append(info.get("collected", 0))


def long_gc_cpu(gc_pauses: GcPauses) -> float:
    """UI-thread CPU of the collections of 20 ms or more (wall): near their wall time when
    the collector itself, not a wait for the CPU, made them long."""
    pairs = zip(gc_pauses.pauses, gc_pauses.cpu_ms, strict=True)
    return sum(cpu for (_, wall), cpu in pairs if wall >= 20)


def gc_by_generation(pauses: list[tuple[int, float]]) -> str:
    totals = {g: [0, 0.0] for g in range(3)}
    for gen, ms in pauses:
        totals[gen][0] += 1
        totals[gen][1] += ms
    return ", ".join(f"gen{g} {n}/{ms:.0f}" for g, (n, ms) in totals.items())


class IngestThread(threading.Thread):
    def __init__(self, cache: Any, config: Any, path: Path | None, mapping: str = "process") -> None:
        super().__init__(name="bench-ingest", daemon=True)
        self.cache, self.config, self.path = cache, config, path
        self.mapping = mapping
        self.report: Any = None
        self.error: BaseException | None = None
        self.started_at = self.finished_at = 0.0

    def run(self) -> None:
        from console.cache.ingest import Ingestor

        self.started_at = time.perf_counter()
        if self.path is None:  # --no-ingest
            self.finished_at = self.started_at
            return
        try:
            # "process": one worker process decodes and maps (what an ingest inside the console
            # process should do); "thread": all of it on this thread, sharing the UI's GIL.
            processes = self.mapping == "process"
            self.report = Ingestor(self.cache, self.config, workers=1,
                                   processes=processes).run([self.path])
        except BaseException as exc:
            self.error = exc
        self.finished_at = time.perf_counter()


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------


def make_app(backend: Any, recorder: Recorder) -> Any:
    from textual._compositor import CompositorUpdate

    from console.app import LlmdeckApp

    class BenchApp(LlmdeckApp):
        def _display(self, screen: Any, renderable: Any) -> None:
            batched = bool(self._batch_count)
            super()._display(screen, renderable)  # headless: writes nothing
            if batched or not isinstance(renderable, CompositorUpdate):
                return
            t = time.perf_counter()
            renderable.render_segments(self.console)  # what the terminal would be sent
            now = time.perf_counter()
            recorder.render_ms.append((now - t) * 1000)
            recorder.refreshes += 1
            recorder.screen.apply(renderable, self.console)
            for hook in recorder.on_refresh:
                hook(now)
            probe = recorder.probe
            if probe is not None and probe.t1 is None:
                if probe.first_refresh is None:
                    probe.first_refresh = now
                if probe.check(self, recorder.screen):
                    probe.cpu1 = time.thread_time()
                    probe.t1 = now
                    probe.done.set()

    return BenchApp(backend)


async def wait_until(cond: Callable[[], bool], timeout: float = 60.0) -> bool:
    deadline = time.perf_counter() + timeout
    while not cond():
        if time.perf_counter() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def drive(
    app: Any, recorder: Recorder, presses: int, rng: random.Random, ingest: IngestThread,
    log: list[str], verbose: bool = False,
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    from textual import events
    from textual.widgets import DataTable

    from panels.cost_screen import CostScreen
    from panels.overview import OverviewScreen
    from panels.slo_screen import SloScreen

    latencies: dict[str, list[float]] = {}
    info: dict[str, Any] = {"timeouts": [], "first_refresh_ms": [], "switch_to_data_ms": [],
                            "during_ingest": 0, "cpu_ms": {}}
    done = 0

    async def press(key: str, check: Check, label: str | None = None) -> None:
        nonlocal done
        name, char = KEYS.get(key, (key, key))
        probe = Probe(key, check)
        recorder.probe = probe
        event = events.Key(name, char)
        probe.cpu0 = time.thread_time()
        probe.t0 = time.perf_counter()
        app._driver.send_message(event)
        try:
            await asyncio.wait_for(probe.done.wait(), PROBE_TIMEOUT)
        except TimeoutError:
            info["timeouts"].append(f"{label or key} on {type(app.screen).__name__}")
        recorder.probe = None
        if probe.t1 is not None and probe.cpu1 is not None:
            latencies.setdefault(label or key, []).append((probe.t1 - probe.t0) * 1000)
            info["cpu_ms"].setdefault(label or key, []).append((probe.cpu1 - probe.cpu0) * 1000)
            if verbose:
                print(f"    {label or key:20} {(probe.t1 - probe.t0) * 1000:7.1f} ms", flush=True)
            if ingest.is_alive():
                info["during_ingest"] += 1
        if probe.first_refresh is not None:
            info["first_refresh_ms"].append((probe.first_refresh - probe.t0) * 1000)
        done += 1
        await asyncio.sleep(rng.uniform(0.05, 0.25))

    async def wait_for_data(screen: Any, since: float) -> None:
        """Until `screen` has painted its first fetched snapshot (not timed as a key press)."""
        painted: list[float] = []

        def hook(now: float) -> None:
            if screen.last is not None and not painted:
                painted.append(now)

        recorder.on_refresh.append(hook)
        try:
            await wait_until(lambda: bool(painted), 30)
        finally:
            recorder.on_refresh.remove(hook)
        if painted:
            info["switch_to_data_ms"].append((painted[0] - since) * 1000)

    def focused_table(screen: Any, selector: str) -> Any:
        table = screen.query_one(selector, DataTable)
        if app.focused is not table:
            table.focus()
        return table

    async def cursor_moves(table: Any, moves: list[str]) -> None:
        for key in moves:
            old = table.cursor_row
            new = old + 1 if key == "down" else old - 1
            if not 0 <= new < table.row_count:
                continue
            await press(key, cursor_check(table, recorder.screen, old, new), f"cursor {key}")

    overview = app.screen
    assert isinstance(overview, OverviewScreen)
    await wait_for_data(overview, time.perf_counter())
    cycle = 0
    while done < presses:
        cycle += 1
        # overview: cursor, then the `/` filter
        slos = focused_table(overview, "#overview-slos")
        await asyncio.sleep(0.05)
        if slos.cursor_row != 0:
            slos.move_cursor(row=0)
            await asyncio.sleep(0.05)
        await cursor_moves(slos, ["down", "down", "up", "up"])
        tables = [overview.query_one("#overview-slos", DataTable),
                  overview.query_one("#overview-budgets", DataTable)]
        await press("/", bar_open_check(overview, recorder.screen), "/ (open filter)")
        typed = ""
        for ch in "lat":
            typed += ch
            await press(ch, filter_check(overview, typed, tables), "filter typing")
        await press("escape", filter_check(overview, "", tables), "Esc (clear filter)")
        # 2: SLO screen, wait for its data, move the cursor (each move fetches the SLO's charts)
        t = time.perf_counter()
        await press("2", title_check(SloScreen.screen_title), "2 (SLO screen)")
        slo_screen = app.screen
        if isinstance(slo_screen, SloScreen):
            await wait_for_data(slo_screen, t)
            table = focused_table(slo_screen, "#slo-table")
            await asyncio.sleep(0.05)
            await cursor_moves(table, ["down", "up"] if table.cursor_row == 0 else ["up", "down"])
        t = time.perf_counter()
        await press("3", title_check(CostScreen.screen_title), "3 (cost screen)")
        if isinstance(app.screen, CostScreen):
            await wait_for_data(app.screen, t)
        await press("1", title_check(OverviewScreen.screen_title), "1 (overview)")
        if cycle == 1 or cycle % 5 == 0:
            state = "running" if ingest.is_alive() else "done"
            log.append(f"  cycle {cycle}: {done} presses, ingest {state}, load {loadavg()}")
            print(log[-1], flush=True)
    return latencies, info


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    ap.add_argument("--spans", type=int, default=LARGE, help="spans in the cache (default 10M)")
    ap.add_argument("--presses", type=int, default=300)
    ap.add_argument("--ingest-spans", type=int, default=2_000_000,
                    help="spans in the file ingested meanwhile (default 2M, so it outlasts the presses)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-ingest", action="store_true", help="no ingest alongside (for comparison)")
    ap.add_argument("--ingest-mapping", choices=("process", "thread"), default="process",
                    help="where the ingest decodes and maps spans: one worker process (default)"
                         " or this process's ingest thread, sharing the GIL with the UI")
    ap.add_argument("--verbose", action="store_true", help="print every press")
    ap.add_argument("--switch-interval", type=float, default=None, metavar="SECONDS",
                    help="experiment: sys.setswitchinterval (GIL hand-over; Python's default 0.005)")
    args = ap.parse_args()

    from console.backend import Backend
    from console.cache.store import Cache
    from console.launch import CacheProbe

    source = ensure_cache(args.workdir, args.spans)
    feed = None if args.no_ingest else ingest_file(args.workdir, args.ingest_spans)
    copy = args.workdir / f"responsiveness-{args.spans}.duckdb"
    print(f"copying {source.name} to {copy.name}...", flush=True)
    for p in (copy, Path(f"{copy}.wal")):
        p.unlink(missing_ok=True)
    shutil.copyfile(source, copy)

    config = bench_config(copy, refresh_seconds=1)
    cache = Cache.open(copy)  # read-write: this process owns the file and ingests into it
    backend = Backend(cache, config, lambda: AT, [CacheProbe(cache)])
    recorder = Recorder(VirtualScreen(*SIZE))
    app = make_app(backend, recorder)
    ingest = IngestThread(cache, config, feed, args.ingest_mapping)
    log: list[str] = []
    load_start = loadavg()
    print(f"responsiveness: {args.presses} key presses, {SIZE[0]}x{SIZE[1]}, cache {source.name}"
          f" ({args.spans:,} spans), refresh every 1 s,"
          f" {'no ingest' if feed is None else f'ingesting {feed.name} meanwhile'}"
          f" (mapping: {args.ingest_mapping});"
          f" load {load_start}", flush=True)

    async def run() -> tuple[dict[str, list[float]], dict[str, Any]]:
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            ingest.start()
            result = await drive(app, recorder, args.presses, random.Random(args.seed), ingest, log,
                                 args.verbose)
            await pilot.pause()
            return result

    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    gc_pauses = GcPauses()
    gc.callbacks.append(gc_pauses)
    try:
        started = time.perf_counter()
        latencies, info = asyncio.run(run())
        elapsed = time.perf_counter() - started
        load_end = loadavg()
        if ingest.is_alive():
            print("waiting for the ingest to finish...", flush=True)
        ingest.join()
    finally:
        cache.close()
        for p in (copy, Path(f"{copy}.wal")):
            p.unlink(missing_ok=True)
    if ingest.error is not None:
        raise SystemExit(f"bench: the ingest failed: {ingest.error!r}")

    every = [x for xs in latencies.values() for x in xs]
    if not every:
        raise SystemExit("bench: no key press was measured")
    print(f"key press → repaint showing it ({len(every)} presses in {elapsed:.0f} s,"
          f" {info['during_ingest']} while the ingest ran; {recorder.refreshes} screen refreshes):")
    for label, xs in latencies.items():
        cpu = info["cpu_ms"][label]
        print(f"  {label:20} n={len(xs):3}  {summary(xs)}   (UI-thread CPU median"
              f" {statistics.median(cpu):.1f} ms, max {max(cpu):.1f} ms)")
    print(f"  {'all':20} n={len(every):3}  {summary(every)}")
    print(f"  first compositor refresh after a press (any content): {summary(info['first_refresh_ms'])}")
    if info["switch_to_data_ms"]:
        print(f"  (info) screen switch → its first data painted: {summary(info['switch_to_data_ms'])}")
    pauses = [ms for _, ms in gc_pauses.pauses]
    print(f"  garbage collections on the UI thread: {len(pauses)},"
          f" {sum(ms >= 20 for ms in pauses)} of 20 ms or more (max {max(pauses, default=0):.0f} ms);"
          f" by generation (count, ms total): {gc_by_generation(gc_pauses.pauses)};"
          f" UI-thread CPU of the 20 ms+ ones: {long_gc_cpu(gc_pauses):.0f} ms"
          f" of {sum(w for _, w in gc_pauses.pauses if w >= 20):.0f} ms wall")
    print(f"  render_segments per refresh: median {statistics.median(recorder.render_ms):.2f} ms,"
          f" max {max(recorder.render_ms):.1f} ms")
    if info["timeouts"]:
        print(f"  {len(info['timeouts'])} presses showed no effect within {PROBE_TIMEOUT:.0f} s"
              f" (not in the figures): {', '.join(info['timeouts'][:10])}")
    rep = ingest.report
    ingest_s = ingest.finished_at - ingest.started_at
    if rep is not None:
        print(f"  ingest: {rep.spans_stored:,} spans stored in {ingest_s:.0f} s"
              f" ({rep.spans_stored / max(ingest_s, 1e-9):,.0f} spans/s while the console ran)")
    p99 = percentile(every, 0.99)
    print(f"  p99 {p99:.1f} ms (goal < 50) {'ok' if p99 < 50 else 'MISSED'}; load {load_start} → {load_end}")
    print(f"RESULT keypress_p50_ms={percentile(every, 0.5):.1f} p95_ms={percentile(every, 0.95):.1f}"
          f" p99_ms={p99:.1f} (goal<50) max_ms={max(every):.1f} presses={len(every)}"
          f" during_ingest={info['during_ingest']} timeouts={len(info['timeouts'])}"
          f" ingest={'no' if feed is None else args.ingest_spans} mapping={args.ingest_mapping}"
          f" spans={args.spans}"
          f" load_start={load_start} load_end={load_end}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
