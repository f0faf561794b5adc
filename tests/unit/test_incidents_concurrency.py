"""Several PROCESSES on one state file: two store/feed writers in a loop and the real CLI at the
same time (all writes land, ids unique, one incident per cause, the feed announces each change
once), and a console-like reader holding a read transaction while the CLI writes.

Processes are started, told "go" through a pipe once both are ready, and stopped through a file
after the CLI calls are done: the writers provably overlap each other and the CLI, with no
timing in the test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from console import state_db
from console.incidents import IncidentStore

ROOT = Path(__file__).resolve().parents[2]

WRITER = r"""
import json, sys, time
from datetime import timedelta
from pathlib import Path
from console.incident_feed import IncidentFeed
from console.incidents import IncidentStore
from console.snapshots import Alert
from console.timeutil import utc_now

path, tag, stop, phase = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
store = IncidentStore(path)
feed = IncidentFeed(store, resolve_after=timedelta(0))  # every change counts: the most flips
page = Alert(2, "slo", "feed-slo", "burning")
store.list()  # schema in place before "go"
print("ready", flush=True)
sys.stdin.readline()
opened, notes, i = [], 0, 0
while i < 20 or not stop.exists():
    opened.append(store.open(f"{tag}-{i}")[0].id)
    store.open(f"{tag} sees c{i % 7}", cause=f"slo:c{i % 7}")
    store.note("INC-1", f"{tag}-{i}")
    notes += 1
    feed.observe([page] if ((i + phase) // 3) % 2 == 0 else [], [], utc_now())
    i += 1
    time.sleep(0.002)  # pacing only: lets the other writer (and the CLI) take the lock more often
print(json.dumps({"opened": opened, "notes": notes, "rounds": i}), flush=True)
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "console.cli", "incidents", *argv], env=_env(),
                          capture_output=True, text=True, check=False)


def _start_writers(path: Path, stop: Path) -> list[subprocess.Popen[str]]:
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), tag, str(stop), str(phase)],
                              env=_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for tag, phase in (("A", 0), ("B", 1))]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline() == "ready\n"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    return procs


def _finish(procs: list[subprocess.Popen[str]]) -> list[dict[str, Any]]:
    reports = []
    for p in procs:
        out, err = p.communicate()
        assert p.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return reports


def test_two_processes_and_the_cli_write_at_once() -> None:
    path = state_db.default_state_db()  # the CLI's file: the test's XDG_STATE_HOME
    stop = path.parent / "stop"
    store = IncidentStore(path)
    store.open("the shared incident", owner="lead")  # INC-1: everyone notes on it
    procs = _start_writers(path, stop)
    try:
        cli_runs = [_cli("note", "1", f"cli-{k}") for k in range(3)]
        cli_runs.append(_cli("open", "--title", "cli sees c0", "--cause", "slo:c0", "--json"))
        cli_runs.append(_cli("open", "--title", "cli by hand", "--json"))
    finally:
        stop.touch()
        reports = _finish(procs)
    for done in cli_runs:
        assert done.returncode == 0, done.stderr
    cli_id = json.loads(cli_runs[-1].stdout)["incident"]["id"]

    everything = store.list(limit=100_000)
    ids = [i.id for i in everything]
    assert len(ids) == len(set(ids))
    assert sorted(int(i.split("-")[1]) for i in ids) == list(range(1, len(ids) + 1))  # no gaps
    # every hand-opened incident landed, once, under the id its process was given
    hand = {i.id: i.title for i in everything if not i.causes and i.id not in ("INC-1", cli_id)}
    reported = [(rid, r) for r in reports for rid in r["opened"]]
    assert len(reported) == len(hand)
    assert {rid for rid, _ in reported} == set(hand)
    # one incident per cause, whoever asked first
    per_cause = Counter(c for i in everything for c in i.causes)
    assert per_cause == Counter({f"slo:c{k}": 1 for k in range(7)} | {"slo:feed-slo": 1})
    # every note on INC-1 landed, seqs contiguous
    timeline = store.timeline("INC-1")
    assert [e.seq for e in timeline] == list(range(1, len(timeline) + 1))
    notes = [e.text for e in timeline if e.kind == "note"]
    assert len(notes) == sum(r["notes"] for r in reports) + 3
    assert {"cli-0", "cli-1", "cli-2"} <= set(notes)
    # two consoles' feeds disagreeing all along: each firing/resolved change written once, in turn
    [feed_incident] = [i for i in everything if "slo:feed-slo" in i.causes]
    kinds = [e.kind for e in store.timeline(feed_incident.id)
             if e.kind in ("alert_firing", "alert_resolved")]
    # both start seeing it fire and each later sees it stop: at least one change each way
    assert kinds[0] == "alert_firing" and "alert_resolved" in kinds
    assert all(a != b for a, b in zip(kinds, kinds[1:], strict=False)), kinds
    assert min(r["rounds"] for r in reports) >= 20


def test_a_reader_holding_a_read_transaction_does_not_block_the_cli() -> None:
    path = state_db.default_state_db()
    store = IncidentStore(path)
    store.open("before")
    reader = state_db.connect(path)
    with state_db.read(reader):
        assert reader.execute("SELECT count(*) FROM incidents").fetchone()[0] == 1
        rows = reader.execute("SELECT incident_id FROM incident_timeline")  # an open statement, too
        assert rows.fetchone() is not None
        # were the CLI blocked it would wait busy_timeout and fail (exit 2): the reader never lets go
        opened = _cli("open", "--title", "during the read", "--json")
        assert opened.returncode == 0, opened.stderr
        for argv in (("note", "2", "while a console reads"), ("ack", "2"), ("resolve", "1")):
            done = _cli(*argv)
            assert done.returncode == 0, done.stderr
        # the reader still sees its snapshot
        assert reader.execute("SELECT count(*) FROM incidents").fetchone()[0] == 1
        assert reader.execute("SELECT state FROM incidents WHERE id = 'INC-1'").fetchone()[0] == "open"
    assert reader.execute("SELECT count(*) FROM incidents").fetchone()[0] == 2
    assert [e.kind for e in store.timeline("2")] == ["opened", "note", "state"]
    assert store.get("1").state == "resolved"


HOLDER = r"""
import sys
from pathlib import Path
from console import state_db
from console.incidents import IncidentStore

store = IncidentStore(Path(sys.argv[1]))
with store.batch():
    store.open("half-written: must never appear", cause="slo:crash")
    print("holding", flush=True)
    sys.stdin.readline()  # killed here, inside the write transaction
"""


def test_a_writer_killed_mid_transaction_leaves_nothing_and_frees_the_lock() -> None:
    import signal

    path = state_db.default_state_db()
    IncidentStore(path).open("before")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], env=_env(),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    done = _cli("open", "--title", "after the crash", "--cause", "slo:crash", "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["created"] is True and answer["incident"]["id"] == "INC-2"
    titles = [i.title for i in IncidentStore(path).list()]
    assert sorted(titles) == ["after the crash", "before"]
    check = state_db.connect(path)
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
