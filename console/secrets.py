"""Resolve secret references (`env:VAR`, `keyring:SERVICE/NAME`) to values, refusing unsafe stores.

`env:VAR` reads the environment variable as named. `keyring:SERVICE/NAME` reads the OS
keyring, but only when its backend is a real one (Secret Service, libsecret, macOS
Keychain, Windows, KWallet); the `fail`, `null` and plaintext backends (`keyrings.alt`)
are refused. Every keyring call runs in a daemon thread with a timeout, so a hung or
locked keyring costs the caller at most the timeout, and while one call is still stuck
later calls fail at once instead of piling up threads. With `--insecure-storage`
(`enable_insecure_storage()`) keyring references live in 0600 files instead
(`console/secret_store.py`) and each use warns on stderr. No message ever holds a value.
These calls block: run them off the UI thread.
"""

from __future__ import annotations

import base64
import os
import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeVar

from console import paths
from console.safe_text import sanitize
from console.secret_store import FileStore, StoreProblem

if TYPE_CHECKING:
    from console.config import HttpSource

KEYRING_TIMEOUT = 5.0
"""Seconds a keyring call may take before the caller gets a `timeout` error."""

State = Literal["found", "missing", "refused", "locked", "timeout", "invalid", "error"]
T = TypeVar("T")

# Exact backend classes that keep secrets in a real OS keyring (module.qualname).
ALLOWED_BACKENDS = frozenset({
    "keyring.backends.SecretService.Keyring",
    "keyring.backends.libsecret.Keyring",
    "keyring.backends.macOS.Keyring",
    "keyring.backends.Windows.WinVaultKeyring",
    "keyring.backends.kwallet.DBusKeyring",
    "keyring.backends.kwallet.DBusKeyringKWallet4",
})
_CHAINER = "keyring.backends.chainer.ChainerBackend"
_REFUSED_WHY = {
    "keyring.backends.fail.Keyring": "there is no OS keyring here (no Secret Service on this D-Bus session)",
    "keyring.backends.null.Keyring": "the null backend stores nothing and finds nothing",
}
_WHAT_INSTEAD = ("use an env:VAR reference instead, run a Secret Service (gnome-keyring-daemon --unlock"
                 " on this session's D-Bus), or start llmdeck with --insecure-storage")
_LOCKED_ERRORS = frozenset({"KeyringLocked", "LockedException", "PromptDismissedException"})
_HEADER_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


class SecretError(Exception):
    """A reference that did not resolve; `state` says why, the message what to do (never a value)."""

    def __init__(self, ref: str, state: State, message: str) -> None:
        super().__init__(message)
        self.ref = ref
        self.state = state


@dataclass(frozen=True)
class SecretCheck:
    """Whether one reference resolves, and where from; never the value."""

    ref: str
    state: State
    message: str
    origin: str = ""  # "env", "keyring (SecretService)", "plaintext file" when found


@dataclass(frozen=True)
class _Ref:
    text: str
    scheme: Literal["env", "keyring"]
    service: str  # the variable name for env:
    name: str = ""


def parse_ref(ref: str) -> _Ref:
    """Split a reference; SecretError (`invalid`) unless it is `env:VAR` or `keyring:SERVICE/NAME`."""
    scheme, _, rest = ref.partition(":")
    if scheme == "env" and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", rest):
        return _Ref(ref, "env", rest)
    service, _, name = rest.partition("/")
    if scheme == "keyring" and re.fullmatch(r"[^/\s]+", service) and re.fullmatch(r"\S+", name):
        return _Ref(ref, "keyring", service, name)
    shown = sanitize(ref, max_chars=60, one_line=True)
    raise SecretError(shown, "invalid", f"{shown!r} is not a key reference; use keyring:SERVICE/NAME"
                      " or env:VAR")


def env_suggestion(ref: str) -> str:
    """An `env:` reference an operator could use instead of `ref` (e.g. env:LLMDECK_OPENAI_ADMIN)."""
    tail = ref.rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    return "env:LLMDECK_" + (re.sub(r"[^A-Za-z0-9]+", "_", tail).strip("_").upper() or "SECRET")


# --- insecure storage -------------------------------------------------------------------------

_insecure: FileStore | None = None


def enable_insecure_storage(store: FileStore | None = None) -> None:
    """Keep `keyring:` references in plaintext 0600 files (the `--insecure-storage` flag is the consent)."""
    global _insecure
    _insecure = store or FileStore(paths.secrets_dir())


def disable_insecure_storage() -> None:
    """Back to the OS keyring (tests)."""
    global _insecure
    _insecure = None


def insecure_storage_in_use() -> bool:
    """True when this process keeps secrets in plaintext files (the UI shows a permanent badge)."""
    return _insecure is not None


def badge_text() -> str | None:
    """The status-line badge while insecure storage is on, else None."""
    return "INSECURE STORAGE: secrets in plaintext files" if _insecure is not None else None


def _warn(line: str) -> None:
    sys.stderr.write(f"llmdeck: warning: {line}\n")
    sys.stderr.flush()


def _file_store(ref: _Ref, action: str) -> FileStore:
    assert _insecure is not None
    _warn(f"--insecure-storage: {action} {ref.text} a plaintext file under {_insecure.directory}")
    return _insecure


# --- the OS keyring, allow-listed and under a timeout -----------------------------------------

def backend_name(backend: object) -> str:
    cls = type(backend)
    return f"{cls.__module__}.{cls.__qualname__}"


def refusal(backend: object) -> str | None:
    """Why `backend` may not hold secrets, or None when it is a real OS keyring."""
    name = backend_name(backend)
    if name in ALLOWED_BACKENDS:
        return None
    if name in _REFUSED_WHY:
        return _REFUSED_WHY[name]
    if type(backend).__module__.startswith("keyrings.alt") or "plaintext" in name.lower():
        return "it keeps secrets in a plaintext (or merely encoded) file"
    return "it is not a known OS keyring"


def usable_backends(backend: object) -> list[object]:
    """The allowed backends `backend` stands for (a chainer's allowed members); [] if none."""
    if backend_name(backend) == _CHAINER:
        return [b for b in getattr(backend, "backends", []) if refusal(b) is None]
    return [backend] if refusal(backend) is None else []


def _keyring_backends(ref: _Ref) -> list[object]:
    import keyring

    backend = keyring.get_keyring()
    usable = usable_backends(backend)
    if not usable:
        name = backend_name(backend)
        why = refusal(backend) if name != _CHAINER else "none of the backends it chains is an OS keyring"
        raise SecretError(ref.text, "refused", f"{ref.text}: the keyring backend {name} is refused: {why};"
                          f" {_WHAT_INSTEAD}")
    return usable


_stuck: set[threading.Thread] = set()
_stuck_lock = threading.Lock()


def _timeout_error(ref: _Ref, timeout: float) -> SecretError:
    return SecretError(ref.text, "timeout", f"{ref.text}: the keyring did not answer within {timeout:g} s"
                       f" (hung or waiting for an unlock prompt); use {env_suggestion(ref.text)} instead,"
                       " or restart the keyring daemon")


def _classify(ref: _Ref, exc: BaseException) -> SecretError:
    if isinstance(exc, SecretError):
        return exc
    kind = type(exc).__name__
    text = sanitize(str(exc), max_chars=160, one_line=True)
    if kind in _LOCKED_ERRORS or (kind == "InitError" and re.search(r"prompt|lock", text, re.I)):
        return SecretError(ref.text, "locked", f"{ref.text}: the keyring is locked and cannot be unlocked"
                           " here (no display for the unlock prompt); unlock it"
                           " (gnome-keyring-daemon --unlock, password on stdin) or use"
                           f" {env_suggestion(ref.text)} instead")
    if kind == "NoKeyringError":
        return SecretError(ref.text, "refused", f"{ref.text}: no OS keyring is available; {_WHAT_INSTEAD}")
    return SecretError(ref.text, "error", f"{ref.text}: the keyring failed: {kind}: {text}")


def _in_thread(ref: _Ref, work: Callable[[], T], timeout: float | None) -> T:
    """Run one keyring call in a daemon thread; SecretError on failure or after `timeout` seconds."""
    limit = KEYRING_TIMEOUT if timeout is None else timeout
    with _stuck_lock:
        if any(t.is_alive() for t in _stuck):
            raise _timeout_error(ref, limit)
        _stuck.clear()
    box: dict[str, object] = {}
    done = threading.Event()

    def run() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc
        finally:
            done.set()

    thread = threading.Thread(target=run, name="llmdeck-keyring", daemon=True)
    thread.start()
    if not done.wait(limit):
        with _stuck_lock:
            _stuck.add(thread)
        raise _timeout_error(ref, limit)
    if "error" in box:
        raise _classify(ref, box["error"])  # type: ignore[arg-type]
    return box["value"]  # type: ignore[return-value]


# --- the API ----------------------------------------------------------------------------------

def _lookup(ref: _Ref, timeout: float | None) -> tuple[str | None, str]:
    """(value or None, where it was looked for)."""
    if ref.scheme == "env":
        return os.environ.get(ref.service) or None, "env"
    if _insecure is not None:
        try:
            return _file_store(ref, "reading from").get(ref.service, ref.name), "plaintext file"
        except (StoreProblem, OSError) as exc:
            raise SecretError(ref.text, "refused", f"{ref.text}: {exc}") from None

    def get() -> tuple[str | None, str]:
        for backend in _keyring_backends(ref):
            value = backend.get_password(ref.service, ref.name)  # type: ignore[attr-defined]
            if value is not None:
                return value, f"keyring ({backend_name(backend).rsplit('.', 2)[-2]})"
        return None, "keyring"

    return _in_thread(ref, get, timeout)


def resolve(ref: str, *, timeout: float | None = None) -> str:
    """The secret `ref` names; SecretError (naming the ref and what to do, never a value) otherwise."""
    parsed = parse_ref(ref)
    value, _ = _lookup(parsed, timeout)
    if value is not None:
        return value
    if parsed.scheme == "env":
        raise SecretError(ref, "missing", f"{ref}: the environment variable {parsed.service} is not set"
                          " (or is empty)")
    where = "the plaintext store (--insecure-storage)" if _insecure is not None else "the keyring"
    raise SecretError(ref, "missing", f"{ref}: not found in {where}; store it with"
                      f" `llmdeck {'--insecure-storage ' if _insecure else ''}secrets set {ref}`")


def check(ref: str, *, timeout: float | None = None) -> SecretCheck:
    """Whether `ref` resolves: found, missing, refused, locked, timeout (or invalid, error)."""
    try:
        parsed = parse_ref(ref)
        value, origin = _lookup(parsed, timeout)
        if value is None:
            resolve(ref, timeout=timeout)  # raises the "missing" error with its message
    except SecretError as exc:
        return SecretCheck(ref, exc.state, str(exc))
    return SecretCheck(ref, "found", f"{ref}: found ({origin})", origin)


def storable_ref(ref: str, action: Literal["set", "delete"]) -> _Ref:
    """The parsed `keyring:` reference; SecretError (`invalid`) for `env:`, which llmdeck never stores."""
    parsed = parse_ref(ref)
    if parsed.scheme == "env":
        todo = "export" if action == "set" else "unset"
        raise SecretError(ref, "invalid", f"{ref} is an environment variable, which llmdeck does not"
                          f" store; {todo} {parsed.service} in the environment that runs llmdeck instead")
    return parsed


def store(ref: str, value: str, *, timeout: float | None = None) -> str:
    """Save `value` under a `keyring:` reference; returns where it went. SecretError otherwise."""
    parsed = storable_ref(ref, "set")
    if _insecure is not None:
        try:
            path = _file_store(parsed, "writing to").set(parsed.service, parsed.name, value)
        except (StoreProblem, OSError) as exc:
            raise SecretError(ref, "refused", f"{ref}: {exc}".replace(value, "***")) from None
        return f"plaintext file {path} (insecure storage)"

    def put() -> str:
        backend = _keyring_backends(parsed)[0]
        backend.set_password(parsed.service, parsed.name, value)  # type: ignore[attr-defined]
        return f"keyring ({backend_name(backend).rsplit('.', 2)[-2]})"

    try:
        return _in_thread(parsed, put, timeout)
    except SecretError as exc:
        raise SecretError(ref, exc.state, str(exc).replace(value, "***") if value else str(exc)) from None


def delete(ref: str, *, timeout: float | None = None) -> bool:
    """Remove the secret a `keyring:` reference names; False when there was none."""
    parsed = storable_ref(ref, "delete")
    if _insecure is not None:
        try:
            return _file_store(parsed, "deleting from").delete(parsed.service, parsed.name)
        except (StoreProblem, OSError) as exc:
            raise SecretError(ref, "refused", f"{ref}: {exc}") from None

    def remove() -> bool:
        from keyring.errors import PasswordDeleteError

        backend = _keyring_backends(parsed)[0]
        try:
            backend.delete_password(parsed.service, parsed.name)  # type: ignore[attr-defined]
        except PasswordDeleteError:
            return False
        return True

    return _in_thread(parsed, remove, timeout)


def _header_value(ref: str, timeout: float | None, strip: bool = True) -> str:
    value = resolve(ref, timeout=timeout)
    value = value.strip() if strip else value
    if _HEADER_UNSAFE.search(value):
        raise SecretError(ref, "invalid", f"{ref}: the secret holds a line break or control character,"
                          " which no HTTP header may carry; store it again")
    return value


def source_secret_headers(source: HttpSource, *, timeout: float | None = None) -> dict[str, str]:
    """The secret headers of `source`: Authorization (bearer or basic) and each of `header_refs`."""
    headers = {name: _header_value(ref, timeout) for name, ref in source.header_refs.items()}
    if source.bearer_token_ref:
        headers["Authorization"] = "Bearer " + _header_value(source.bearer_token_ref, timeout)
    elif source.basic_password_ref and source.basic_username is not None:
        password = _header_value(source.basic_password_ref, timeout, strip=False)
        pair = f"{source.basic_username}:{password}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    return headers
