"""Demo start benchmark: `llmdeck demo` launch → overview painted with recent data, and with the week.

    python bench/demo_start.py [--repeat 3] [--load 2] [--before dd47df8^] [--workdir DIR]

Every app runs as a fresh process on the slave side of a pseudo-terminal (120x40,
TERM=xterm-256color), played by this script as bench/startup.py does (the
synchronized-output query answered, every frame's start and end timestamped).
The apps, alternated within each round so they see the same machine:

- baseline: bench/startup.py's minimal Textual app (Header, a 13-row DataTable,
  Footer); its figure is its first complete frame showing the last row;
- before (with `--before REV`): `llmdeck demo` as commit REV had it, run from a
  `git archive` of that commit (dd47df8^: the week backfilled before the console
  opened, day files oldest first);
- backfill-first: this checkout's backfill (`Simulator.backfill()`, newest first)
  run before the console opens, as `llmdeck demo` used to;
- demo: `llmdeck demo` as it is: the console at once, the history ingested
  newest first behind it (`Simulator.start_backfill()`).

Every demo child is `console.cli main(["demo", "--start", START, "--seed", "7",
"--speed", "10"])` with a fresh temp dir (no spool files reused). In the child, a
thin wrapper around the overview's `show()` writes the wall time at which the
overview took in a snapshot that is:

- "populated": every SLO has a compliance and a 1h burn rate, today's spend is
  above zero and the error-rate chart has points (the last hour and more are in);
- "week": populated and fetched after the last part of the week was ingested.

Each figure runs from just before the spawn to the end of the frame that painted
that snapshot: the first synchronized frame begun after that moment by whose end
the SLO and budget names are on the screen. `--load N` repeats every round with N
busy-loop processes running (`python -c "while True: pass"`, stopped by pid).
Goal (issue 9 §8): the populated console within 3 s of pressing Enter.
"""

from __future__ import annotations

import argparse
import math
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

backfilled = []
_init = Simulator.__init__
def init(self, *args, **kw):
    _init(self, *args, **kw)
    sims.append(self)
Simulator.__init__ = init
_backfill = Simulator.backfill
def backfill(self, progress=None):
    report = _backfill(self, progress)
    backfilled.append(self)
    return report
Simulator.backfill = backfill
if mode == "backfill-first":  # this checkout's backfill, run as `llmdeck demo` did before the console
    Simulator.start_backfill = lambda self, progress=None, hold=None: self.backfill(progress)

def week_in():
    return bool(backfilled) or any(getattr(sim, "backfill_done", False) for sim in sims)

_fetch = console.backend.Backend.fetch
def fetch(self, view):
    week = week_in()
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


def run_demo_in_pty(mode: str, env: dict[str, str], workdir: Path, timeout: float = 180.0,
                    tree: Path = REPO, until: str = "week") -> DemoPaint:
    """Spawn the demo child (the code in `tree`) on a pty; time the frames that painted the milestones."""
    import fcntl
    import pty
    import struct
    import termios

    marks = workdir / f"marks-{mode}-{time.time_ns()}.txt"
    master, slave = pty.openpty()
    cols, rows = SIZE
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    buf = bytearray()
    frames: list[tuple[float, float, int]] = []
    """(wall time its start arrived, wall time its end arrived, its end in `buf`) of every
    synchronized frame."""
    frame_start: float | None = None
    started_wall = time.time()
    started = time.perf_counter()
    if tree != REPO:
        env = {**env, "PYTHONPATH": os.pathsep.join([str(tree), env.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", DEMO_CHILD, str(marks), mode, START],
                            stdin=slave, stdout=slave, stderr=slave, env=env, cwd=tree,
                            close_fds=True, start_new_session=True)
    os.close(slave)
    try:
        while True:
            if time.perf_counter() - started > timeout:
                raise SystemExit(f"bench: {mode}: no week painted after {timeout:.0f} s; the pty showed:\n"
                                 + bytes(buf[-3000:]).decode(errors="replace"))
            got = _marks(marks)
            if until in got and _painted(frames, got[until], buf) is not None:
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
            for kind, at in _sync_marks(buf, scan_from):
                if kind == "start":
                    frame_start = now
                elif frame_start is not None:
                    frames.append((frame_start, now, at))
                    frame_start = None
    finally:
        _stop(proc, master)
        marks.with_suffix(".pty").write_bytes(bytes(buf))  # what the terminal received, to inspect
    for marker in SCREEN_MARKERS:
        if marker not in buf:
            raise SystemExit(f"bench: {mode}: {marker.decode()!r} never reached the screen"
                             f" (see {marks.with_suffix('.pty')})")
    got = _marks(marks)
    painted = [_painted(frames, got[name], buf) if name in got else None for name in ("populated", "week")]
    return DemoPaint(*(t - started_wall if t is not None else math.nan for t in painted))


def _painted(frames: list[tuple[float, float, int]], mark: float, buf: bytearray) -> float | None:
    """When the frame that painted a snapshot the overview took in at `mark` ended.

    That is the first frame begun after `mark` by the end of which the SLO and budget
    names are on the screen (a table's new rows may come one frame after its other changes).
    """
    found = [buf.find(m) for m in SCREEN_MARKERS]
    if min(found) < 0:
        return None
    shown = max(found)
    return next((end for begun, end, at in frames if begun >= mark and at >= shown), None)


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


@dataclass(frozen=True)
class App:
    """One of the apps a round launches: its name, the demo child's mode and the code it runs."""

    name: str
    mode: str
    tree: Path = REPO


def measure(label: str, apps: list[App], repeat: int, env: dict[str, str],
            workdir: Path, until: str = "week") -> dict[str, list[DemoPaint]]:
    """`repeat` rounds of the baseline and every app, alternated; every run printed."""
    times: dict[str, list[DemoPaint]] = {"baseline": [], **{app.name: [] for app in apps}}
    for i in range(repeat):
        load = loadavg()
        base = run_in_pty(BASELINE_CHILD, [], BASELINE_MARKERS, env).seconds
        times["baseline"].append(DemoPaint(base, base))
        line = [f"  {label} run {i + 1}: baseline {base:.2f} s"]
        for app in apps:
            paint = run_demo_in_pty(app.mode, env, workdir, tree=app.tree, until=until)
            times[app.name].append(paint)
            line.append(f"{app.name} populated {paint.populated:.2f} s, week {paint.week:.2f} s")
        print("; ".join(line) + f"  (load before {load})", flush=True)
    return times


def report(label: str, times: dict[str, list[DemoPaint]]) -> str:
    """Medians, worst runs and ratios of one machine state; the RESULT fields."""
    populated = {k: statistics.median(p.populated for p in v) for k, v in times.items()}
    week = {k: statistics.median(p.week for p in v) for k, v in times.items()}
    worst = max(p.populated for p in times["demo"])
    base = populated["baseline"]
    old = "before" if "before" in times else "backfill-first" if "backfill-first" in times else "demo"
    print(f"  {label} medians: baseline {base:.2f} s; "
          + "; ".join(f"{k} populated {populated[k]:.2f} s ({populated[k] / base:.1f}x baseline),"
                      f" week {week[k]:.2f} s" for k in times if k != "baseline")
          + f"\n  {label}: demo populated worst {worst:.2f} s (goal ≤ 3 s);"
          f" demo populated / {old} populated {populated['demo'] / populated[old]:.2f},"
          f" demo week / {old} week {week['demo'] / week[old]:.2f}", flush=True)
    return (f"{label}_baseline_s={base:.2f} {label}_{old}_s={populated[old]:.2f}"
            f" {label}_populated_s={populated['demo']:.2f} {label}_populated_worst_s={worst:.2f}"
            f" {label}_populated_vs_baseline={populated['demo'] / base:.1f}"
            f" {label}_week_s={week['demo']:.2f} {label}_week_vs_{old}={week['demo'] / week[old]:.2f}")


def checkout(rev: str, workdir: Path) -> Path:
    """The tree of commit `rev` (git archive), to run the demo as it was."""
    tree = workdir / f"tree-{rev.replace('/', '_')}"
    if not tree.exists():
        tree.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", rev], cwd=REPO, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="rounds per machine state")
    ap.add_argument("--load", type=int, default=2, help="busy-loop processes for the loaded rounds (0: skip)")
    ap.add_argument("--before", default=None, metavar="REV",
                    help="also run `llmdeck demo` as commit REV had it (e.g. dd47df8^, before this change)")
    ap.add_argument("--populated-only", action="store_true",
                    help="stop each run at the populated paint; skip backfill-first (quick A/B runs)")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    until = "populated" if args.populated_only else "week"
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="llmdeck-demo-start-"))
    workdir.mkdir(parents=True, exist_ok=True)
    env = console_env(workdir)
    apps = [App("demo", "demo")] if args.populated_only else [
        App("backfill-first", "backfill-first"), App("demo", "demo")]
    if args.before:
        apps.insert(0, App("before", "demo", checkout(args.before, workdir)))
    print(f"demo start → overview painted, {SIZE[0]}x{SIZE[1]} pty, {os.cpu_count()} cores,"
          f" start {START}; apps: baseline, {', '.join(a.name for a in apps)}; load {loadavg()}", flush=True)
    run_in_pty(BASELINE_CHILD, [], BASELINE_MARKERS, env)  # warm-up: file cache, .pyc files
    for app in apps:
        run_demo_in_pty(app.mode, env, workdir, tree=app.tree, until=until)
    results = [report("quiet", measure("quiet", apps, args.repeat, env, workdir, until))]
    if args.load:
        procs = start_load(args.load)
        try:
            time.sleep(1.0)
            label = f"load{args.load}"
            results.append(report(label, measure(label, apps, args.repeat, env, workdir, until)))
        finally:
            stop_load(procs)
    print("RESULT " + " ".join(results) + f" runs={args.repeat} load_end={loadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
