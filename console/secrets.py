"""Resolve secret references (`env:VAR`, `keyring:SERVICE/NAME`) to values, refusing unsafe stores.

`env:VAR` reads the environment variable as named. `keyring:SERVICE/NAME` reads the OS
keyring, but only when its backend is a real one (Secret Service, libsecret, macOS
Keychain, Windows, KWallet); the `fail`, `null` and plaintext backends (`keyrings.alt`)
are refused, and every keyring call runs in a daemon thread under a timeout
(`console/keyring_guard.py`), so a hung or locked keyring costs the caller at most the
timeout, never a hang. With `--insecure-storage`
(`enable_insecure_storage()`) keyring references live in 0600 files instead
(`console/secret_store.py`) and each use warns on stderr. No message ever holds a value.
These calls block: run them off the UI thread.
"""

from __future__ import annotations

import base64
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeVar

from console import keyring_guard, paths
from console.safe_text import sanitize
from console.secret_store import FileStore, StoreProblem

if TYPE_CHECKING:
    from console.config import HttpSource

State = Literal["found", "missing", "refused", "locked", "timeout", "invalid", "error"]
T = TypeVar("T")
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
    _warn(f"--insecure-storage: {ref.text} is {action} a plaintext file under {_insecure.directory}")
    return _insecure


# --- the OS keyring, through the guard ----------------------------------------------------------

def _keyring(ref: _Ref, work: Callable[[Sequence[object]], T], timeout: float | None,
             secret: str = "") -> T:
    """Run `work` through `keyring_guard.call`; its problems become SecretErrors naming `ref`."""
    try:
        return keyring_guard.call(work, timeout=timeout, secret=secret)
    except keyring_guard.KeyringProblem as problem:
        text = f"{ref.text}: {problem}"
        if problem.state == "locked":
            text += f" or use {env_suggestion(ref.text)} instead"
        elif problem.state == "timeout":
            text += f"; use {env_suggestion(ref.text)} instead, or restart the keyring daemon"
        raise SecretError(ref.text, problem.state, text) from None


# --- the API ----------------------------------------------------------------------------------

def _lookup(ref: _Ref, timeout: float | None) -> tuple[str | None, str]:
    """(value or None, where it was looked for)."""
    if ref.scheme == "env":
        return os.environ.get(ref.service) or None, "env"
    if _insecure is not None:
        try:
            return _file_store(ref, "read from").get(ref.service, ref.name), "plaintext file"
        except (StoreProblem, OSError) as exc:
            raise SecretError(ref.text, "refused", f"{ref.text}: {exc}") from None

    def get(backends: Sequence[object]) -> tuple[str | None, str]:
        for backend in backends:
            value = backend.get_password(ref.service, ref.name)  # type: ignore[attr-defined]
            if value is not None:
                return value, f"keyring ({keyring_guard.short_name(backend)})"
        return None, "keyring"

    return _keyring(ref, get, timeout)


def _missing(ref: _Ref) -> SecretError:
    if ref.scheme == "env":
        return SecretError(ref.text, "missing", f"{ref.text}: the environment variable {ref.service} is"
                           " not set (or is empty)")
    where = "the plaintext store (--insecure-storage)" if _insecure is not None else "the keyring"
    flag = "--insecure-storage " if _insecure is not None else ""
    return SecretError(ref.text, "missing", f"{ref.text}: not found in {where}; store it with"
                       f" `llmdeck {flag}secrets set {ref.text}`")


def resolve(ref: str, *, timeout: float | None = None) -> str:
    """The secret `ref` names; SecretError (naming the ref and what to do, never a value) otherwise."""
    parsed = parse_ref(ref)
    value, _ = _lookup(parsed, timeout)
    if value is None:
        raise _missing(parsed)
    return value


def check(ref: str, *, timeout: float | None = None) -> SecretCheck:
    """Whether `ref` resolves: found, missing, refused, locked, timeout (or invalid, error)."""
    try:
        parsed = parse_ref(ref)
        value, origin = _lookup(parsed, timeout)
        if value is None:
            raise _missing(parsed)
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
            path = _file_store(parsed, "written to").set(parsed.service, parsed.name, value)
        except (StoreProblem, OSError) as exc:
            raise SecretError(ref, "refused", f"{ref}: {exc}") from None
        return f"plaintext file {path} (insecure storage)"

    def put(backends: Sequence[object]) -> str:
        backends[0].set_password(parsed.service, parsed.name, value)  # type: ignore[attr-defined]
        return f"keyring ({keyring_guard.short_name(backends[0])})"

    return _keyring(parsed, put, timeout, secret=value)


def delete(ref: str, *, timeout: float | None = None) -> bool:
    """Remove the secret a `keyring:` reference names; False when there was none."""
    parsed = storable_ref(ref, "delete")
    if _insecure is not None:
        try:
            return _file_store(parsed, "deleted from").delete(parsed.service, parsed.name)
        except (StoreProblem, OSError) as exc:
            raise SecretError(ref, "refused", f"{ref}: {exc}") from None

    def remove(backends: Sequence[object]) -> bool:
        from keyring.errors import PasswordDeleteError

        try:
            backends[0].delete_password(parsed.service, parsed.name)  # type: ignore[attr-defined]
        except PasswordDeleteError:
            return False
        return True

    return _keyring(parsed, remove, timeout)


def _header_value(ref: str, timeout: float | None, strip: bool = True) -> str:
    value = resolve(ref, timeout=timeout)
    value = value.strip() if strip else value
    if _HEADER_UNSAFE.search(value):
        raise SecretError(ref, "invalid", f"{ref}: the secret holds a line break or control character,"
                          " which no HTTP header may carry; store it again")
    return value


def header_secret(ref: str, *, timeout: float | None = None) -> str:
    """The secret `ref` names, stripped, fit for an HTTP header (a billing admin key, say);
    SecretError naming the ref (never the value) when it is missing or holds a line break."""
    return _header_value(ref, timeout)


def source_secret_headers(source: HttpSource, *, timeout: float | None = None) -> dict[str, str]:
    """The secret headers of `source`: Authorization (bearer or basic) and each of `header_refs`
    (none, without touching the keyring, for a source that names no secret)."""
    if not source.secret_refs():
        return {}
    headers = {name: _header_value(ref, timeout) for name, ref in source.header_refs.items()}
    if source.bearer_token_ref:
        headers["Authorization"] = "Bearer " + _header_value(source.bearer_token_ref, timeout)
    elif source.basic_password_ref and source.basic_username is not None:
        password = _header_value(source.basic_password_ref, timeout, strip=False)
        pair = f"{source.basic_username}:{password}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    return headers
