"""Real servers for integration tests: free loopback ports, start, wait by polling, stop by pid.

Every server binds 127.0.0.1 on a free port with its data in a temp dir. A missing
binary skips the test on a developer machine and fails it in CI (`CI=true`), where
`.ci/run` installs every server.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
import pytest


def require_binary(name: str) -> str:
    """The path of `name`; skips the test when it is missing, fails it in CI."""
    path = shutil.which(name)
    if path is None:
        reason = f"{name} is not installed (.ci/run installs it with apt-get)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"in CI nothing skips: {reason}")
        pytest.skip(reason)
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll `check` until it is true; fail the test naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # not up yet
            pass
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def http_ok(url: str) -> Callable[[], bool]:
    """A check for `wait_until`: `url` answers 2xx."""
    def check() -> bool:
        return httpx.get(url, timeout=1.0).is_success
    return check


class ServerProcess:
    """A server process started in its own session, logs in a file, stopped by its pid."""

    def __init__(self, argv: Sequence[str], log: Path, env: dict[str, str] | None = None,
                 stdin_text: str | None = None) -> None:
        self.argv = list(argv)
        self.log_path = log
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.argv, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
            env=env, start_new_session=True,
        )
        if stdin_text is not None and self.proc.stdin is not None:
            self.proc.stdin.write(stdin_text.encode())
            self.proc.stdin.close()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        """What the server wrote so far (for failure messages)."""
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def wait_ready(self, check: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
        """Poll `check` until true; fail with the server's log if it exits or times out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"{self.argv[0]} exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if check():
                    return
            except Exception:
                pass
            time.sleep(0.05)
        pytest.fail(f"{what or self.argv[0]} not ready after {timeout:.0f} s:\n{self.log()}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group by pid, SIGKILL if it lingers."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


ALERTMANAGER_CONFIG = """\
route:
  receiver: "null"
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: "null"
"""
"""Every alert to a receiver that drops it, grouped at once (alerts show in the API at once)."""


def start_alertmanager(d: Path) -> tuple[ServerProcess, str]:
    """A real Alertmanager on a free loopback port with its data in `d`, ready; (process, URL)."""
    binary = require_binary("prometheus-alertmanager")
    port = free_port()
    (d / "am.yml").write_text(ALERTMANAGER_CONFIG)
    url = f"http://127.0.0.1:{port}"
    # an empty --cluster.listen-address, or it also listens on 0.0.0.0:9094
    am = ServerProcess([binary, f"--config.file={d / 'am.yml'}", f"--storage.path={d / 'am'}",
                        f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                       d / "am.log")
    try:
        am.wait_ready(http_ok(f"{url}/-/ready"), what="alertmanager")
    except BaseException:
        am.stop()
        raise
    return am, url


def start_prometheus(d: Path, config: str, port: int | None = None) -> tuple[ServerProcess, str]:
    """A real Prometheus on loopback with `config` (its prom.yml; rule files go beside it in `d`),
    ready; alerts resent every second (its first notification can go out before it has found
    the Alertmanager, and the next try would be a minute later)."""
    binary = require_binary("prometheus")
    port = port or free_port()
    (d / "prom.yml").write_text(config)
    url = f"http://127.0.0.1:{port}"
    prom = ServerProcess([binary, f"--config.file={d / 'prom.yml'}", f"--storage.tsdb.path={d / 'prom'}",
                          f"--web.listen-address=127.0.0.1:{port}", "--rules.alert.resend-delay=1s"],
                         d / "prom.log")
    try:
        prom.wait_ready(http_ok(f"{url}/-/ready"), what="prometheus")
    except BaseException:
        prom.stop()
        raise
    return prom, url
