"""Secret references resolve from the environment, an allow-listed keyring or the opt-in plaintext store."""

from __future__ import annotations

import base64
import io
import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.errors
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail, null

from console import keyring_guard, paths, secrets
from console.cli import main
from console.config import AlertmanagerSource, PrometheusSource
from console.secret_store import FileStore
from console.secrets import SecretError
from tests.conftest import ROOT

CANARY = "sk-CANARY-7f3a9e-do-not-print"


class MemoryKeyring(KeyringBackend):
    """An in-memory stand-in for a real OS keyring (allow-listed by the `allowed` fixture)."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.items.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError("No such password!")


class RaisingKeyring(MemoryKeyring):
    """A keyring whose every call raises `error`."""

    error: Exception = RuntimeError()

    def get_password(self, service: str, username: str) -> str | None:
        raise self.error

    def set_password(self, service: str, username: str, password: str) -> None:
        raise self.error

    def delete_password(self, service: str, username: str) -> None:
        raise self.error


class HangingKeyring(MemoryKeyring):
    """A keyring whose calls block until the test releases them."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.calls = 0

    def get_password(self, service: str, username: str) -> str | None:
        self.calls += 1
        self.release.wait()
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        self.get_password(service, username)


PlaintextFile = type("PlaintextKeyring", (MemoryKeyring,), {"__module__": "keyrings.alt.file"})


@pytest.fixture(autouse=True)
def _clean_state() -> Iterator[None]:
    """Each test starts with the process keyring untouched, no insecure store and no stuck call."""
    before = keyring.get_keyring()
    yield
    keyring.set_keyring(before)
    secrets.disable_insecure_storage()
    keyring_guard.forget_stuck()


def use(backend: KeyringBackend, monkeypatch: pytest.MonkeyPatch, allow: bool = True) -> KeyringBackend:
    """Make `backend` the process keyring, allow-listed as if it were a real OS keyring."""
    if allow:
        monkeypatch.setattr(keyring_guard, "ALLOWED_BACKENDS",
                            keyring_guard.ALLOWED_BACKENDS | {keyring_guard.backend_name(backend)})
    keyring.set_keyring(backend)
    return backend


def test_env_reference_reads_the_variable_as_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMDECK_TEST_TOKEN", CANARY)
    assert secrets.resolve("env:LLMDECK_TEST_TOKEN") == CANARY
    assert secrets.check("env:LLMDECK_TEST_TOKEN").state == "found"
    assert secrets.check("env:LLMDECK_TEST_TOKEN").origin == "env"


@pytest.mark.parametrize("value", [None, ""])
def test_missing_or_empty_env_variable_names_the_ref_and_the_variable(
        monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("NO_SUCH_TOKEN", raising=False)
    else:
        monkeypatch.setenv("NO_SUCH_TOKEN", value)
    with pytest.raises(SecretError) as err:
        secrets.resolve("env:NO_SUCH_TOKEN")
    assert err.value.state == "missing"
    assert "env:NO_SUCH_TOKEN" in str(err.value) and "variable NO_SUCH_TOKEN" in str(err.value)


def test_a_malformed_reference_is_invalid_not_looked_up() -> None:
    with pytest.raises(SecretError) as err:
        secrets.resolve("vault:x")
    assert err.value.state == "invalid"
    assert "keyring:SERVICE/NAME or env:VAR" in str(err.value)


def test_an_allowed_keyring_stores_resolves_and_deletes(monkeypatch: pytest.MonkeyPatch) -> None:
    kr = use(MemoryKeyring(), monkeypatch)
    assert "keyring" in secrets.store("keyring:llmdeck/x", CANARY)
    assert kr.items == {("llmdeck", "x"): CANARY}  # type: ignore[attr-defined]
    assert secrets.resolve("keyring:llmdeck/x") == CANARY
    assert secrets.delete("keyring:llmdeck/x") is True
    assert secrets.delete("keyring:llmdeck/x") is False
    missing = secrets.check("keyring:llmdeck/x")
    assert missing.state == "missing" and "llmdeck secrets set keyring:llmdeck/x" in missing.message


@pytest.mark.parametrize("backend", [fail.Keyring(), null.Keyring(),
                                     PlaintextFile()], ids=["fail", "null", "keyrings.alt"])
def test_fail_null_and_plaintext_backends_are_refused_with_what_to_do(
        monkeypatch: pytest.MonkeyPatch, backend: KeyringBackend) -> None:
    keyring.set_keyring(backend)
    for call in (lambda: secrets.resolve("keyring:llmdeck/x"),
                 lambda: secrets.store("keyring:llmdeck/x", CANARY),
                 lambda: secrets.delete("keyring:llmdeck/x")):
        with pytest.raises(SecretError) as err:
            call()
        assert err.value.state == "refused"
        message = str(err.value)
        assert "keyring:llmdeck/x" in message and keyring_guard.backend_name(backend) in message
        assert "env:VAR" in message and "Secret Service" in message and "--insecure-storage" in message
    assert getattr(backend, "items", {}) == {}  # nothing was written to a refused backend


def test_a_keyrings_alt_backend_is_refused_as_plaintext() -> None:
    assert "plaintext" in (keyring_guard.refusal(PlaintextFile()) or "")
    assert keyring_guard.refusal(MemoryKeyring()) == "it is not a known OS keyring"


def test_a_chainer_uses_only_its_allowed_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    from keyring.backends.chainer import ChainerBackend

    real, plain = MemoryKeyring(), PlaintextFile()
    plain.items[("llmdeck", "x")] = "from-the-plaintext-file"
    # monkeypatch reads ChainerBackend.backends before replacing it, and that class property
    # asks every installed backend for its priority: the Secret Service one raises once an
    # earlier test's private D-Bus is gone. An empty installed list keeps that read harmless.
    monkeypatch.setattr(keyring.backend, "get_all_keyring", lambda: [])
    monkeypatch.setattr(ChainerBackend, "backends", [plain, real])
    use(real, monkeypatch)  # allow-lists MemoryKeyring
    keyring.set_keyring(ChainerBackend())
    assert secrets.check("keyring:llmdeck/x").state == "missing"  # the plaintext member is skipped
    secrets.store("keyring:llmdeck/x", CANARY)
    assert real.items == {("llmdeck", "x"): CANARY}
    monkeypatch.setattr(ChainerBackend, "backends", [plain])
    refused = secrets.check("keyring:llmdeck/x")
    assert refused.state == "refused" and "none of the backends it chains" in refused.message


@pytest.mark.parametrize("backend", ["keyring.backends.fail.Keyring", "keyring.backends.null.Keyring"])
def test_python_keyring_backend_env_selecting_fail_or_null_is_refused_by_the_cli(backend: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "console.cli", "secrets", "set", "keyring:llmdeck/x"],
        input=CANARY + "\n", capture_output=True, text=True, cwd=ROOT, timeout=60,
        env={**os.environ, "PYTHON_KEYRING_BACKEND": backend}, check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert f"the keyring backend {backend} is refused" in proc.stderr
    assert CANARY not in proc.stdout + proc.stderr


def test_a_hung_keyring_times_out_and_later_calls_fail_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    kr = use(HangingKeyring(), monkeypatch)
    try:
        with pytest.raises(SecretError) as err:
            secrets.resolve("keyring:llmdeck/x", timeout=0.05)
        assert err.value.state == "timeout"
        assert "keyring:llmdeck/x: the keyring did not answer within 0.05 s" in str(err.value)
        assert "env:LLMDECK_X" in str(err.value)
        second = secrets.check("keyring:llmdeck/other", timeout=0.05)
        assert second.state == "timeout"
        assert kr.calls == 1  # no second thread piled up behind the stuck one
    finally:
        kr.release.set()
    for thread in keyring_guard.stuck_threads():
        thread.join()
    assert secrets.check("keyring:llmdeck/x").state == "missing"  # answers again once unstuck


@pytest.mark.parametrize("error", [keyring.errors.KeyringLocked("Failed to unlock the collection!"),
                                   keyring.errors.InitError("Prompt dismissed.")])
def test_a_locked_keyring_names_the_ref_and_the_env_alternative(
        monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    kr = RaisingKeyring()
    kr.error = error
    use(kr, monkeypatch)
    result = secrets.check("keyring:llmdeck/openai-admin")
    assert result.state == "locked"
    assert result.message.startswith("keyring:llmdeck/openai-admin: the keyring is locked")
    assert "env:LLMDECK_OPENAI_ADMIN" in result.message


def test_storing_a_short_value_leaves_the_message_intact(monkeypatch: pytest.MonkeyPatch) -> None:
    kr = use(HangingKeyring(), monkeypatch)
    try:
        with pytest.raises(SecretError) as err:
            secrets.store("keyring:llmdeck/x", "e", timeout=0.05)
    finally:
        kr.release.set()
    assert str(err.value).endswith("; use env:LLMDECK_X instead, or restart the keyring daemon")


def test_an_unexpected_keyring_error_never_carries_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    kr = RaisingKeyring()
    kr.error = keyring.errors.PasswordSetError(f"could not store {CANARY}")
    use(kr, monkeypatch)
    with pytest.raises(SecretError) as err:
        secrets.store("keyring:llmdeck/x", CANARY)
    assert str(err.value) == ("keyring:llmdeck/x: the keyring failed: PasswordSetError: (details withheld:"
                              " they held the secret)")
    assert err.value.state == "error" and CANARY not in repr(err.value.args)


def test_secret_headers_for_bearer_basic_and_header_refs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROM_TOKEN", f"  {CANARY}\n")
    monkeypatch.setenv("ORG_KEY", "org-key")
    monkeypatch.setenv("AM_PASSWORD", "pä ss")
    prom = PrometheusSource(name="p", url="http://127.0.0.1:9090", bearer_token_ref="env:PROM_TOKEN",
                            header_refs={"X-Api-Key": "env:ORG_KEY"})
    assert secrets.source_secret_headers(prom) == {"Authorization": f"Bearer {CANARY}",
                                                   "X-Api-Key": "org-key"}
    am = AlertmanagerSource(name="a", url="http://127.0.0.1:9093", basic_username="ops",
                            basic_password_ref="env:AM_PASSWORD")
    auth = secrets.source_secret_headers(am)["Authorization"]
    assert base64.b64decode(auth.removeprefix("Basic ")).decode() == "ops:pä ss"
    assert secrets.source_secret_headers(PrometheusSource(name="o", url="http://127.0.0.1:1")) == {}


def test_a_secret_with_a_line_break_is_refused_as_a_header_without_showing_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROM_TOKEN", f"{CANARY}\r\nX-Evil: 1")
    prom = PrometheusSource(name="p", url="http://127.0.0.1:9090", bearer_token_ref="env:PROM_TOKEN")
    with pytest.raises(SecretError) as err:
        secrets.source_secret_headers(prom)
    assert "env:PROM_TOKEN" in str(err.value) and "line break" in str(err.value)
    assert CANARY not in str(err.value)


def test_insecure_store_is_0600_files_in_a_0700_dir_even_under_umask_000(
        capsys: pytest.CaptureFixture[str]) -> None:
    old = os.umask(0)
    try:
        secrets.enable_insecure_storage()
        secrets.store("keyring:llmdeck/team/openai:admin", CANARY)
    finally:
        os.umask(old)
    directory = paths.secrets_dir()
    files = list(directory.iterdir())
    assert [f.name for f in files] == ["llmdeck%2Fteam%2Fopenai%3Aadmin"]
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert secrets.resolve("keyring:llmdeck/team/openai:admin") == CANARY
    assert secrets.insecure_storage_in_use() and "INSECURE" in (secrets.badge_text() or "")
    warnings = capsys.readouterr().err.splitlines()
    assert len(warnings) == 2 and all("--insecure-storage" in w for w in warnings)
    assert CANARY not in "".join(warnings)


def test_insecure_store_overwrites_by_replacing_and_keeps_0600(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "s")
    store.set("svc", "n", "one")
    store.set("svc", "n", "two")
    assert store.get("svc", "n") == "two"
    assert [p.name for p in (tmp_path / "s").iterdir()] == ["svc%2Fn"]
    assert stat.S_IMODE((tmp_path / "s" / "svc%2Fn").stat().st_mode) == 0o600


@pytest.mark.parametrize(("target", "mode"), [("file", 0o644), ("file", 0o640), ("dir", 0o755)])
def test_insecure_store_refuses_a_file_or_dir_others_can_reach(target: str, mode: int) -> None:
    secrets.enable_insecure_storage()
    secrets.store("keyring:llmdeck/x", CANARY)
    path = paths.secrets_dir() / "llmdeck%2Fx" if target == "file" else paths.secrets_dir()
    path.chmod(mode)
    result = secrets.check("keyring:llmdeck/x")
    assert result.state == "refused"
    assert f"{path} is mode {mode:04o}" in result.message
    assert f"chmod {'600' if target == 'file' else '700'}" in result.message
    assert CANARY not in result.message


def test_insecure_mode_never_consults_the_os_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    kr = use(MemoryKeyring(), monkeypatch)
    kr.items[("llmdeck", "x")] = "in-the-keyring"  # type: ignore[attr-defined]
    secrets.enable_insecure_storage()
    assert secrets.check("keyring:llmdeck/x").state == "missing"


# --- the CLI, in process ------------------------------------------------------------------------


def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str,
        stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


CONFIG = """
[[sources.prometheus]]
name = "prom"
url = "http://127.0.0.1:9090"
bearer_token_ref = "env:PROM_TOKEN"
[[sources.anthropic_billing]]
name = "anthropic"
admin_key_ref = "keyring:llmdeck/anthropic-admin"
[[sources.litellm]]
name = "gateway"
url = "http://127.0.0.1:4000"
key_ref = "keyring:llmdeck/litellm"
"""


def test_cli_set_refuses_env_refs_and_says_to_export(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(monkeypatch, capsys, "secrets", "set", "env:PROM_TOKEN", stdin=CANARY)
    assert code == 2 and out == ""
    assert err == ("llmdeck: env:PROM_TOKEN is an environment variable, which llmdeck does not store;"
                   " export PROM_TOKEN in the environment that runs llmdeck instead\n")


def test_cli_set_reads_one_stdin_line_and_list_delete_follow(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)
    monkeypatch.setenv("PROM_TOKEN", "t")
    code, out, err = cli(monkeypatch, capsys, "--insecure-storage", "secrets", "set",
                         "keyring:llmdeck/anthropic-admin", stdin=CANARY + "\nignored\n")
    assert code == 0 and out.startswith("stored keyring:llmdeck/anthropic-admin in the plaintext file")
    assert (paths.secrets_dir() / "llmdeck%2Fanthropic-admin").read_text() == CANARY
    code, out, err = cli(monkeypatch, capsys, "--insecure-storage", "--config", str(config),
                         "secrets", "list", "--json")
    rows = json.loads(out)["secrets"]
    assert code == 1 and json.loads(out)["insecure_storage"] is True
    assert [(r["source"], r["setting"], r["state"]) for r in rows] == [
        ("prom", "bearer_token_ref", "found"), ("anthropic", "admin_key_ref", "found"),
        ("gateway", "key_ref", "missing")]
    code, out, err = cli(monkeypatch, capsys, "secrets", "set", "keyring:llmdeck/litellm",
                         "--insecure-storage", stdin="gw-key\n")
    code, out, err = cli(monkeypatch, capsys, "--insecure-storage", "--config", str(config),
                         "secrets", "list")
    assert code == 0 and "gateway (litellm)" in out and "found (plaintext file)" in out
    code, out, err = cli(monkeypatch, capsys, "--insecure-storage", "secrets", "delete",
                         "keyring:llmdeck/litellm")
    assert code == 0 and out == "deleted keyring:llmdeck/litellm\n"
    code, out, err = cli(monkeypatch, capsys, "--insecure-storage", "secrets", "delete",
                         "keyring:llmdeck/litellm")
    assert code == 1 and "nothing stored under this reference" in err


def test_cli_set_with_no_value_stores_nothing(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(monkeypatch, capsys, "--insecure-storage", "secrets", "set",
                         "keyring:llmdeck/x", stdin="\n")
    assert code == 2 and "no value given for keyring:llmdeck/x" in err
    assert not (paths.secrets_dir() / "llmdeck%2Fx").exists()


def test_cli_list_shows_states_and_never_a_value(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)
    monkeypatch.setenv("PROM_TOKEN", CANARY)
    keyring.set_keyring(fail.Keyring())
    code, out, err = cli(monkeypatch, capsys, "--config", str(config), "secrets", "list")
    assert code == 1 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["REFERENCE", "SOURCE", "SETTING", "STATE"]
    assert lines[1].split() == ["env:PROM_TOKEN", "prom", "(prometheus)", "bearer_token_ref", "found",
                                "(env)"]
    assert lines[2].endswith("backend refused") and lines[3].endswith("backend refused")
    assert lines[4].startswith("keyring:llmdeck/anthropic-admin, keyring:llmdeck/litellm: the keyring"
                               " backend keyring.backends.fail.Keyring is refused")
    assert CANARY not in out


def test_cli_list_with_no_references_exits_0(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("")
    code, out, _ = cli(monkeypatch, capsys, "--config", str(config), "secrets", "list")
    assert (code, out) == (0, "the config refers to no secrets\n")
