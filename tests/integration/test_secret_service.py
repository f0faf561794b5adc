"""`llmdeck secrets` against a real Secret Service: gnome-keyring-daemon on a private D-Bus session bus."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import keyring
import pytest

from console import secrets
from tests.conftest import ROOT
from tests.integration.servers import ServerProcess, require_binary

CANARY = "sk-ant-admin-CANARY-51c2-never-shown"
Run = Callable[..., subprocess.CompletedProcess[str]]


# A process that owns org.freedesktop.secrets on the bus and never answers a call: a hung keyring.
MUTE_SERVICE = """
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import open_dbus_connection
conn = open_dbus_connection(bus="SESSION")
conn.send_and_get_reply(message_bus.RequestName("org.freedesktop.secrets"))
while True:
    conn.receive()
"""
Mode = Literal["unlocked", "locked", "mute"]


class SecretService:
    """A private session bus with gnome-keyring (or a mute stand-in) owning the secrets name."""

    def __init__(self, tmp: Path, mode: Mode) -> None:
        dbus = require_binary("dbus-daemon")
        self.dbus_send = require_binary("dbus-send")
        run_dir = tmp / "run"
        run_dir.mkdir(mode=0o700, parents=True)
        run_dir.chmod(0o700)
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("DISPLAY", "WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS",
                                 "PYTHON_KEYRING_BACKEND")}
        self.env.update(HOME=str(tmp / "home"), XDG_DATA_HOME=str(tmp / "data"),
                        XDG_RUNTIME_DIR=str(run_dir))
        self.bus = ServerProcess([dbus, "--session", "--nofork", "--print-address=1"], tmp / "dbus.log",
                                 env=self.env)
        self.bus.wait_ready(lambda: "unix:" in self.bus.log(), 10, "dbus-daemon's address")
        self.env["DBUS_SESSION_BUS_ADDRESS"] = self.bus.log().splitlines()[0].strip()
        if mode == "mute":
            argv = [sys.executable, "-c", MUTE_SERVICE]
        else:
            argv = [require_binary("gnome-keyring-daemon"), "--foreground", "--components=secrets",
                    *(["--unlock"] if mode == "unlocked" else [])]
        self.keyring = ServerProcess(argv, tmp / "secret-service.log", env=self.env,
                                     stdin_text="llmdeck-test-password" if mode == "unlocked" else None)
        self.keyring.wait_ready(self.on_bus, 20, "org.freedesktop.secrets on the bus")

    def on_bus(self) -> bool:
        reply = subprocess.run(
            [self.dbus_send, "--session", "--print-reply", "--dest=org.freedesktop.DBus",
             "/org/freedesktop/DBus", "org.freedesktop.DBus.NameHasOwner",
             "string:org.freedesktop.secrets"],
            env=self.env, capture_output=True, text=True, timeout=5, check=False)
        return "boolean true" in reply.stdout

    def stop(self) -> None:
        self.keyring.stop()
        self.bus.stop()


@pytest.fixture
def make_service(tmp_path: Path) -> Iterator[Callable[[Mode], SecretService]]:
    started: list[SecretService] = []

    def make(mode: Mode) -> SecretService:
        service = SecretService(tmp_path / f"svc{len(started)}", mode)
        started.append(service)
        return service

    yield make
    for service in started:
        service.stop()


def llmdeck(service: SecretService) -> Run:
    """run(*args, stdin=...) runs `python -m console.cli ARGS` inside the service's D-Bus session."""

    def run(*args: str | Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "console.cli", *map(str, args)], cwd=ROOT,
                              input=stdin, capture_output=True, text=True, timeout=60,
                              env=service.env, check=False)

    return run


CONFIG = """
[[sources.anthropic_billing]]
name = "anthropic"
admin_key_ref = "keyring:llmdeck/anthropic-admin"
[[sources.alertmanager]]
name = "am"
url = "http://127.0.0.1:9093"
basic_username = "ops"
basic_password_ref = "keyring:llmdeck/alertmanager"
"""


def secret_tool(service: SecretService, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_binary("secret-tool"), *args], env=service.env, capture_output=True,
                          text=True, timeout=10, check=False)


def test_set_list_delete_through_the_cli_against_gnome_keyring(
        make_service: Callable[[Mode], SecretService], tmp_path: Path) -> None:
    service = make_service("unlocked")
    run = llmdeck(service)
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)

    done = run("secrets", "set", "keyring:llmdeck/anthropic-admin", stdin=CANARY + "\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "stored keyring:llmdeck/anthropic-admin in the keyring (SecretService)\n"
    # libsecret's own client reads what llmdeck stored (keyring's attributes: service, username)
    found = secret_tool(service, "lookup", "service", "llmdeck", "username", "anthropic-admin")
    assert found.stdout == CANARY

    listed = run("--config", config, "secrets", "list", "--json")
    assert listed.returncode == 1
    states = {r["reference"]: (r["state"], r["origin"]) for r in json.loads(listed.stdout)["secrets"]}
    assert states == {"keyring:llmdeck/anthropic-admin": ("found", "keyring (SecretService)"),
                      "keyring:llmdeck/alertmanager": ("missing", None)}

    assert run("secrets", "set", "keyring:llmdeck/alertmanager", stdin="am-pass\n").returncode == 0
    listed = run("--config", config, "secrets", "list")
    assert listed.returncode == 0
    assert listed.stdout.count("found (keyring (SecretService))") == 2

    deleted = run("secrets", "delete", "keyring:llmdeck/anthropic-admin")
    assert (deleted.returncode, deleted.stdout) == (0, "deleted keyring:llmdeck/anthropic-admin\n")
    again = run("secrets", "delete", "keyring:llmdeck/anthropic-admin")
    assert again.returncode == 1 and "nothing stored under this reference" in again.stderr
    assert secret_tool(service, "lookup", "service", "llmdeck", "username", "anthropic-admin").stdout == ""
    listed = run("--config", config, "secrets", "list")
    assert listed.returncode == 1 and "not found in the keyring" in listed.stdout
    for proc in (done, listed, deleted, again):
        assert CANARY not in proc.stdout + proc.stderr and "Traceback" not in proc.stderr


def test_in_process_resolve_and_headers_use_the_secret_service(
        make_service: Callable[[Mode], SecretService], monkeypatch: pytest.MonkeyPatch) -> None:
    from keyring.backends import SecretService as SecretServiceBackend

    from console.config import AlertmanagerSource

    service = make_service("unlocked")
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", service.env["DBUS_SESSION_BUS_ADDRESS"])
    before = keyring.get_keyring()
    keyring.set_keyring(SecretServiceBackend.Keyring())
    try:
        secrets.store("keyring:llmdeck/alertmanager", CANARY)
        assert secrets.resolve("keyring:llmdeck/alertmanager") == CANARY
        am = AlertmanagerSource(name="am", url="http://127.0.0.1:9093", basic_username="ops",
                                basic_password_ref="keyring:llmdeck/alertmanager")
        assert set(secrets.source_secret_headers(am)) == {"Authorization"}
        assert secrets.delete("keyring:llmdeck/alertmanager") is True
        assert secrets.check("keyring:llmdeck/alertmanager").state == "missing"
    finally:
        keyring.set_keyring(before)


def test_a_locked_keyring_gives_a_clean_message_naming_the_ref_and_env_alternative(
        make_service: Callable[[Mode], SecretService], tmp_path: Path) -> None:
    service = make_service("locked")  # no --unlock and no display: the unlock prompt cannot be shown
    run = llmdeck(service)
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)

    started = time.monotonic()
    done = run("secrets", "set", "keyring:llmdeck/anthropic-admin", stdin=CANARY + "\n")
    assert time.monotonic() - started < 15  # an answer, not a hang (the keyring timeout is 5 s)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("llmdeck: keyring:llmdeck/anthropic-admin: the keyring is locked")
    assert "use env:LLMDECK_ANTHROPIC_ADMIN instead" in done.stderr

    listed = run("--config", config, "secrets", "list")
    assert listed.returncode == 1 and listed.stderr == ""
    assert listed.stdout.count("keyring locked") == 2
    assert "keyring:llmdeck/anthropic-admin: the keyring is locked" in listed.stdout
    assert "use env:LLMDECK_ALERTMANAGER instead" in listed.stdout
    for proc in (done, listed):
        assert CANARY not in proc.stdout + proc.stderr


def test_a_secret_service_that_never_answers_times_out_once_without_a_hang(
        make_service: Callable[[Mode], SecretService], tmp_path: Path) -> None:
    service = make_service("mute")
    run = llmdeck(service)
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)

    started = time.monotonic()
    done = run("secrets", "set", "keyring:llmdeck/anthropic-admin", stdin=CANARY + "\n")
    assert time.monotonic() - started < 15  # the 5 s keyring timeout, then the process exits
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr == ("llmdeck: keyring:llmdeck/anthropic-admin: the keyring did not answer within"
                           " 5 s (hung or waiting for an unlock prompt); use env:LLMDECK_ANTHROPIC_ADMIN"
                           " instead, or restart the keyring daemon\n")

    started = time.monotonic()
    listed = run("--config", config, "secrets", "list", "--json")
    assert time.monotonic() - started < 15  # one timeout for both references, not one each
    assert listed.returncode == 1
    assert [r["state"] for r in json.loads(listed.stdout)["secrets"]] == ["timeout", "timeout"]
