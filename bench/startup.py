"""Start-up benchmark: launch → first complete paint of the overview on a 1M-span cache,
against a minimal Textual app (Header, DataTable, Footer) started the same way in the same run.

    python bench/startup.py [--workdir /work/bench-caches] [--repeat 7] [--spans 1000000]

Both apps run as fresh `python -c` processes on the slave side of a pseudo-terminal
(120x40, TERM=xterm-256color), exactly as in a terminal: Textual's real Linux
driver, real escape sequences. This script plays the terminal: it drains the
pty, answers the synchronized-output query (`CSI ? 2026 $ p`) as a modern
terminal does, and timestamps what arrives. The figure is the time from just
before the process is spawned to the moment the terminal has received the
whole frame that first shows the data:

- llmdeck (`console.cli` → `run_console`, as `llmdeck --cache FILE` starts it;
  only the config (the demo's 9 SLOs and 4 budgets) and the clock (pinned to the
  end of the cached week) are substituted): the frame in which the overview's
  first SnapshotReady is painted, i.e. the SLO table, the budget table and the
  spend line are filled ("anthropic rate limits", "acme-corp daily",
  "Spend today" have all arrived);
- baseline: the frame showing the last row of its 13x7 table, filled in `on_mount`.

"Whole frame": the end of the synchronized update (`CSI ? 2026 l`) that holds
the last marker, or, if that frame was written before synchronized output was
switched on, the last chunk of the burst of output it arrived in.

Runs alternate (baseline, llmdeck, baseline, ...) after one unmeasured warm-up of
each, so both see the same machine load; medians of --repeat runs are compared.
Goal (issue 2): llmdeck / baseline ≤ 1.5.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import select
import signal
import statistics
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.console_common import (  # noqa: E402
    AT,
    DEFAULT_WORKDIR,
    REPO,
    SIZE,
    SMALL,
    console_env,
    ensure_cache,
    loadavg,
)

SYNC_QUERY = b"\x1b[?2026$p"
SYNC_REPLY = b"\x1b[?2026;2$y"  # "supported, currently reset", as kitty/wezterm/foot answer
SYNC_START = b"\x1b[?2026h"
SYNC_END = b"\x1b[?2026l"
QUIET_GAP = 0.02
"""Without synchronized output, a frame ends with the last chunk before this much silence."""

LLMDECK_CHILD = """
import sys
from datetime import datetime
from pathlib import Path
import console.config
import console.launch
from console.demo.config import demo_config
cache, at = Path(sys.argv[1]), datetime.fromisoformat(sys.argv[2])
console.config.load_config = lambda path=None, env=None: demo_config(cache)
console.launch.wall_clock = lambda: at
from console.cli import main
sys.exit(main(["--cache", str(cache)]))
"""
LLMDECK_MARKERS = ("anthropic rate limits", "acme-corp daily", "Spend today")

BASELINE_ROWS = 13  # as many rows as the overview's two tables (9 SLOs + 4 budgets)
BASELINE_CHILD = f"""
from textual.app import App
from textual.widgets import DataTable, Footer, Header

class Baseline(App):
    def compose(self):
        yield Header()
        yield DataTable()
        yield Footer()

    def on_mount(self):
        table = self.query_one(DataTable)
        table.add_columns("name", "state", "SLI", "budget", "burn1h", "burn5m", "exhaust")
        table.add_rows([(f"baseline row {{i}}", "✔ ok", "99.91%", "43.2%", "0.84", "1.02", "3d 4h")
                        for i in range({BASELINE_ROWS})])

Baseline().run()
"""
BASELINE_MARKERS = (f"baseline row {BASELINE_ROWS - 1}",)


@dataclass
class Paint:
    seconds: float
    """Spawn → the whole first frame showing every marker has been received."""
    marker_seconds: float
    """Spawn → the last marker's bytes arrived (the frame may still be streaming)."""
    synchronized: bool
    """Whether that frame was a synchronized update."""
    output_bytes: int


def run_in_pty(code: str, args: list[str], markers: tuple[str, ...], env: dict[str, str],
               size: tuple[int, int] = SIZE, timeout: float = 120.0) -> Paint:
    """Spawn `python -c code args...` on a fresh pty and time its first frame showing `markers`."""
    master, slave = pty.openpty()
    cols, rows = size
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    wanted = [m.encode() for m in markers]
    buf = bytearray()
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdin=slave, stdout=slave,
                            stderr=slave, env=env, cwd=REPO, close_fds=True, start_new_session=True)
    os.close(slave)
    marker_at: float | None = None  # when the last marker arrived
    marker_end = 0  # buffer offset just past the last marker
    sync_open_at_marker = False
    last_chunk_at = started
    done: Paint | None = None
    try:
        while done is None:
            now = time.perf_counter()
            if now - started > timeout:
                raise SystemExit(f"bench: no complete paint after {timeout:.0f} s; the pty showed:\n"
                                 + bytes(buf[-3000:]).decode(errors="replace"))
            wait = QUIET_GAP if marker_at is not None else 1.0
            ready, _, _ = select.select([master], [], [], wait)
            if not ready:
                if marker_at is not None and not sync_open_at_marker:
                    done = Paint(last_chunk_at - started, marker_at - started, False, len(buf))
                continue
            try:
                chunk = os.read(master, 1 << 16)
            except OSError:  # EIO: the child closed the pty (it exited)
                chunk = b""
            got_at = time.perf_counter()
            if not chunk:
                raise SystemExit("bench: the app exited before painting; the pty showed:\n"
                                 + bytes(buf[-3000:]).decode(errors="replace"))
            scan_from = max(0, len(buf) - 64)
            buf += chunk
            last_chunk_at = got_at
            if buf.find(SYNC_QUERY, scan_from) >= 0:
                os.write(master, SYNC_REPLY)
            if marker_at is None:
                ends = [buf.find(m) for m in wanted]
                if all(e >= 0 for e in ends):
                    marker_at = got_at
                    marker_end = max(e + len(m) for e, m in zip(ends, wanted, strict=True))
                    opened = buf.rfind(SYNC_START, 0, marker_end)
                    sync_open_at_marker = opened > buf.rfind(SYNC_END, 0, marker_end)
            if marker_at is not None and sync_open_at_marker and buf.find(SYNC_END, marker_end) >= 0:
                done = Paint(got_at - started, marker_at - started, True, len(buf))
    finally:
        _stop(proc, master)
    return done


def _stop(proc: subprocess.Popen[bytes], master: int) -> None:
    """Quit the app (ctrl+q, then a signal), draining the pty so it never blocks on output."""
    try:
        os.write(master, b"\x11")  # ctrl+q: Textual's quit
    except OSError:
        pass
    deadline = time.monotonic() + 10
    while proc.poll() is None and time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.05)
        if ready:
            try:
                os.read(master, 1 << 16)
            except OSError:
                break
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    os.close(master)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    ap.add_argument("--spans", type=int, default=SMALL, help="spans in the cache (default 1M)")
    ap.add_argument("--repeat", type=int, default=7, help="measured runs of each app (≥5)")
    args = ap.parse_args()

    cache = ensure_cache(args.workdir, args.spans)
    env = console_env(args.workdir)
    apps = {
        "baseline": (BASELINE_CHILD, [], BASELINE_MARKERS),
        "llmdeck": (LLMDECK_CHILD, [str(cache), AT.isoformat()], LLMDECK_MARKERS),
    }
    print(f"start-up → first complete paint, {SIZE[0]}x{SIZE[1]} pty, cache {cache.name}"
          f" ({args.spans:,} spans), clock {AT:%Y-%m-%d %H:%M}Z; load {loadavg()}", flush=True)
    for code, argv, markers in apps.values():  # warm-up: file cache, .pyc files
        run_in_pty(code, argv, markers, env)
    times: dict[str, list[float]] = {name: [] for name in apps}
    loads = []
    for i in range(args.repeat):
        for name, (code, argv, markers) in apps.items():
            load = loadavg()
            loads.append(load)
            paint = run_in_pty(code, argv, markers, env)
            times[name].append(paint.seconds)
            print(f"  run {i + 1} {name:8} {paint.seconds * 1000:7.0f} ms"
                  f" (markers {paint.marker_seconds * 1000:.0f} ms,"
                  f" {'synchronized' if paint.synchronized else 'unsynchronized'} frame,"
                  f" {paint.output_bytes:,} bytes)  load {load}", flush=True)
    base = statistics.median(times["baseline"])
    deck = statistics.median(times["llmdeck"])
    ratio = deck / base
    verdict = "ok" if ratio <= 1.5 else "MISSED"
    print(f"  median baseline {base * 1000:.0f} ms (min {min(times['baseline']) * 1000:.0f}),"
          f" llmdeck {deck * 1000:.0f} ms (min {min(times['llmdeck']) * 1000:.0f});"
          f" ratio {ratio:.2f} (goal ≤ 1.5) {verdict}")
    print(f"RESULT startup_llmdeck_ms={deck * 1000:.0f} startup_baseline_ms={base * 1000:.0f}"
          f" ratio={ratio:.2f} (goal<=1.5) runs={args.repeat} spans={args.spans}"
          f" load_start={loads[0]} load_end={loadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
