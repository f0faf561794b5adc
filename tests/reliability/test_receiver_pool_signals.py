"""`llmdeck receive` decodes and maps in worker processes: none of them outlives it, whatever signal
ends it (one stop signal, a second one that stops it at once, a signal to its whole process group
as a terminal sends; kill -9 is in test_receiver_faults), and a group signal stops it once, not
its workers first."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.faultkit import DEADLINE, children, cmdline, wait_gone
from tests.reliability.test_receiver_faults import ReceiverProcess, free_port

EXIT = {signal.SIGTERM: 143, signal.SIGINT: 130, signal.SIGHUP: 129}


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[ReceiverProcess]:
    r = ReceiverProcess(tmp_path / "cache.duckdb", free_port())
    yield r
    r.cleanup()


def workers(receiver: ReceiverProcess) -> dict[int, int]:
    """The receiver's mapping workers, once they run (spawned at start)."""
    assert receiver.proc is not None
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        found = {pid: start for pid, start in children(receiver.proc.pid, receiver.seen).items()
                 if "llmdeck-map-worker" in cmdline(pid)}
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("llmdeck receive started no mapping worker")


@pytest.mark.parametrize(("signals", "group"), [
    ((signal.SIGTERM,), False),
    ((signal.SIGTERM, signal.SIGTERM), False),
    ((signal.SIGINT,), True),
    ((signal.SIGHUP,), True),
], ids=["term", "term-twice", "int-to-group", "hup-to-group"])
def test_no_worker_outlives_the_receiver(receiver: ReceiverProcess, signals: tuple[signal.Signals, ...],
                                         group: bool) -> None:
    receiver.start()
    assert receiver.proc is not None
    found = workers(receiver)
    tree = children(receiver.proc.pid, receiver.seen)
    for signum in signals:
        if group:
            os.killpg(receiver.proc.pid, signum)  # its own session: the pid is the group's id
        else:
            receiver.proc.send_signal(signum)
        time.sleep(0.05)
    _, err = receiver.proc.communicate(timeout=60)
    assert receiver.proc.returncode == EXIT[signals[0]], err
    assert wait_gone({**tree, **found}) == {}
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert ("stopped at once" in last) if len(signals) > 1 else ("stopped by" in last), err
