"""Demo start benchmark: `llmdeck demo` launch → overview painted with recent data, and with the week.

    python bench/demo_start.py [--repeat 3] [--load 2] [--workdir /tmp/demo-start]

Every app runs as a fresh process on the slave side of a pseudo-terminal (120x40,
TERM=xterm-256color), played by this script as bench/startup.py does (the
synchronized-output query answered, every frame's end timestamped). Three apps,
alternated within each round so they see the same machine:

- baseline: bench/startup.py's minimal Textual app (Header, a 13-row DataTable,
  Footer); the figure is its first complete frame showing the last row;
- backfill-first: `llmdeck demo` as it started before this benchmark's change:
  the whole week backfilled (`Simulator.backfill()`), then the console opened;
- demo: `llmdeck demo` as it is: the console at once, the history ingested
  newest first behind it (`Simulator.start_backfill()`).

Both demo children are `console.cli main(["demo", "--start", START])` with a
fresh temp dir (no spool files reused), seed 7, speed 10. In the child, a thin
wrapper around the overview's `show()` writes the wall time at which the
overview took in a snapshot that is:

- "populated": every SLO has a compliance and a 1h burn rate, today's spend is
  above zero and the error-rate chart has points (the last hour and more are in);
- "week": fetched after the last part of the week was ingested
  (`Simulator.backfill_done` when the fetch began).

The figure for each is from just before the spawn to the end of the first
complete (synchronized) frame the terminal received after that moment, i.e.
the frame that painted it. The run also checks that the pty showed the SLO
names. `--load N` repeats every round with N busy-loop processes running
(`python -c "while True: pass"`, stopped by pid afterwards).
"""

from __future__ import annotations

import argparse
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.console_common import REPO, SIZE, console_env, loadavg  # noqa: E402
from bench.startup import (  # noqa: E402
    BASELINE_CHILD,
    BASELINE_MARKERS,
    SYNC_END,
    SYNC_QUERY,
    SYNC_REPLY,
    SYNC_START,
    _stop,
    run_in_pty,
)

START = "2026-03-04T15:00:00Z"
"""The demo's simulated start: a weekday afternoon, the diurnal peak (the most spans per hour)."""
SCREEN_MARKERS = (b"anthropic rate limits", b"acme-corp daily")

DEMO_CHILD = """
import sys, time
from pathlib import Path
marks_path, mode, start = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
import console.backend
from console.demo.simulator import Simulator
from panels.overview import OverviewScreen

sims = []
fetched_after_week = set()

def mark(name):
    with open(marks_path, "a") as f:
        f.write(f"{name} {time.time():.6f}\\n")

if mode == "backfill-first":
    def start_backfill(self, progress=None):
        sims.append(self)
        self.backfill(progress)
else:
    _start = Simulator.start_backfill
    def start_backfill(self, progress=None):
        sims.append(self)
        _start(self, progress)
Simulator.start_backfill = start_backfill

_fetch = console.backend.Backend.fetch
def fetch(self, view):
    week = bool(sims) and sims[0].backfill_done
    fetched = _fetch(self, view)
    if week:
        fetched_after_week.add(id(fetched))
    return fetched
console.backend.Backend.fetch = fetch

_show = OverviewScreen.show
seen = set()
def show(self, fetched):
    _show(self, fetched)
    snap = fetched.snapshot
    spend = dict(snap.spend).get("today") or 0
    populated = (all(s.compliance is not None and s.burn("1h") is not None for s in snap.slos)
                 and spend > 0 and len(snap.error_rate.points) > 1)
    if populated and "populated" not in seen:
        seen.add("populated")
        mark("populated")
    if id(fetched) in fetched_after_week and populated and "week" not in seen:
        seen.add("week")
        mark("week")
OverviewScreen.show = show

from console.cli import main
sys.exit(main(["demo", "--start", start, "--seed", "7", "--speed", "10"]))
"""


@dataclass
class DemoPaint:
    populated: float
    """Spawn → end of the frame that painted the first populated overview."""
    week: float
    """Spawn → end of the frame that painted an overview fetched after the week was in."""


def run_demo_in_pty(mode: str, env: dict[str, str], workdir: Path, timeout: float = 180.0) -> DemoPaint:
    """Spawn the demo child on a fresh pty; time the frames that painted the two milestones."""
    import fcntl
    import pty
    import struct
    import termios

    marks = workdir / f"marks-{mode}-{time.time_ns()}.txt"
    master, slave = pty.openpty()
    cols, rows = SIZE
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    buf = bytearray()
    frames: list[tuple[float, float]] = []
    """(wall time its start arrived, wall time its end arrived) of every synchronized frame."""
    frame_start: float | None = None
    started_wall = time.time()
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", DEMO_CHILD, str(marks), mode, START],
                            stdin=slave, stdout=slave, stderr=slave, env=env, cwd=REPO,
                            close_fds=True, start_new_session=True)
    os.close(slave)
    try:
        while True:
            if time.perf_counter() - started > timeout:
                raise SystemExit(f"bench: {mode}: no week painted after {timeout:.0f} s; the pty showed:\n"
                                 + bytes(buf[-3000:]).decode(errors="replace"))
            got = _marks(marks)
            if "week" in got and any(begun >= got["week"] for begun, _ in frames):
                break
            ready, _, _ = select.select([master], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(master, 1 << 16)
            except OSError:
                chunk = b""
            now = time.time()
            if not chunk:
                raise SystemExit(f"bench: {mode}: the demo exited; the pty showed:\n"
                                 + bytes(buf[-3000:]).decode(errors="replace"))
            scan_from = max(0, len(buf) - 16)
            buf += chunk
            if buf.find(SYNC_QUERY, scan_from) >= 0:
                os.write(master, SYNC_REPLY)
            for kind, _ in _sync_marks(buf, scan_from):
                if kind == "start":
                    frame_start = now
                elif frame_start is not None:
                    frames.append((frame_start, now))
                    frame_start = None
    finally:
        _stop(proc, master)
        marks.with_suffix(".pty").write_bytes(bytes(buf))  # what the terminal received, to inspect
    for marker in SCREEN_MARKERS:
        if marker not in buf:
            raise SystemExit(f"bench: {mode}: {marker.decode()!r} never reached the screen"
                             f" (see {marks.with_suffix('.pty')})")
    got = _marks(marks)
    # The frame that painted a snapshot is the first one begun after the overview took it in.
    return DemoPaint(*(min(end for begun, end in frames if begun >= got[name]) - started_wall
                       for name in ("populated", "week")))


def _sync_marks(buf: bytearray, scan_from: int) -> list[tuple[str, int]]:
    """Synchronized-update starts and ends at or after `scan_from`, in order."""
    found = []
    for kind, seq in (("start", SYNC_START), ("end", SYNC_END)):
        at = buf.find(seq, scan_from)
        while at >= 0:
            found.append((kind, at))
            at = buf.find(seq, at + 1)
    return sorted(found, key=lambda item: item[1])


def _marks(path: Path) -> dict[str, float]:
    try:
        lines = path.read_text().split("\n")
    except OSError:
        return {}
    return {name: float(t) for name, t in (line.split() for line in lines if line.strip())}


def start_load(n: int) -> list[subprocess.Popen[bytes]]:
    """N busy-loop processes, the 'loaded machine'."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def stop_load(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.kill()
        p.wait()


def measure(label: str, repeat: int, env: dict[str, str], workdir: Path) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"baseline": [], "backfill-first populated": [],
                                     "backfill-first week": [], "demo populated": [], "demo week": []}
    for i in range(repeat):
        load = loadavg()
        base = run_in_pty(BASELINE_CHILD, [], BASELINE_MARKERS, env).seconds
        old = run_demo_in_pty("backfill-first", env, workdir)
        new = run_demo_in_pty("demo", env, workdir)
        times["baseline"].append(base)
        times["backfill-first populated"].append(old.populated)
        times["backfill-first week"].append(old.week)
        times["demo populated"].append(new.populated)
        times["demo week"].append(new.week)
        print(f"  {label} run {i + 1}: baseline {base:.2f} s; backfill-first populated"
              f" {old.populated:.2f} s, week {old.week:.2f} s; demo populated {new.populated:.2f} s,"
              f" week {new.week:.2f} s  (load before {load})", flush=True)
    return times


def report(label: str, times: dict[str, list[float]]) -> str:
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["baseline"]
    print(f"  {label} medians: baseline {base:.2f} s; backfill-first {med['backfill-first populated']:.2f} s"
          f" ({med['backfill-first populated'] / base:.1f}x baseline); demo populated"
          f" {med['demo populated']:.2f} s ({med['demo populated'] / base:.1f}x baseline,"
          f" worst {max(times['demo populated']):.2f} s, goal ≤ 3 s), demo week {med['demo week']:.2f} s"
          f" ({med['demo week'] / med['backfill-first week']:.2f}x backfill-first's week)", flush=True)
    return (f"{label}_baseline_s={base:.2f} {label}_old_s={med['backfill-first populated']:.2f}"
            f" {label}_populated_s={med['demo populated']:.2f}"
            f" {label}_populated_worst_s={max(times['demo populated']):.2f}"
            f" {label}_populated_ratio={med['demo populated'] / base:.1f}"
            f" {label}_week_s={med['demo week']:.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="rounds per machine state")
    ap.add_argument("--load", type=int, default=2, help="busy-loop processes for the loaded rounds (0: skip)")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="llmdeck-demo-start-"))
    workdir.mkdir(parents=True, exist_ok=True)
    env = console_env(workdir)
    print(f"demo start → overview painted, {SIZE[0]}x{SIZE[1]} pty, {os.cpu_count()} cores,"
          f" start {START}; load {loadavg()}", flush=True)
    run_in_pty(BASELINE_CHILD, [], BASELINE_MARKERS, env)  # warm-up: file cache, .pyc files
    run_demo_in_pty("demo", env, workdir)
    results = [report("quiet", measure("quiet", args.repeat, env, workdir))]
    if args.load:
        procs = start_load(args.load)
        try:
            time.sleep(1.0)
            results.append(report(f"load{args.load}", measure(f"load{args.load}", args.repeat, env,
                                                               workdir)))
        finally:
            stop_load(procs)
    print("RESULT " + " ".join(results) + f" runs={args.repeat} load_end={loadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
