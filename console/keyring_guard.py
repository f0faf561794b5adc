"""The OS keyring behind an allowlist of real backends, each call in a daemon thread under a timeout.

Only backends that keep secrets in a real OS keyring are used (Secret Service,
libsecret, macOS Keychain, Windows, KWallet, or those members of a chainer); `fail`,
`null` and plaintext backends (`keyrings.alt`) are refused. A call that does not
answer within the timeout raises at once and leaves its thread behind as a daemon;
while such a thread is still stuck, later calls fail immediately instead of piling
up more. Problems are `KeyringProblem`s whose text never holds a secret.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from typing import Literal, TypeVar

from console.safe_text import sanitize

KEYRING_TIMEOUT = 5.0
"""Seconds a keyring call may take before the caller gets a `timeout` problem."""

ALLOWED_BACKENDS = frozenset({
    "keyring.backends.SecretService.Keyring",
    "keyring.backends.libsecret.Keyring",
    "keyring.backends.macOS.Keyring",
    "keyring.backends.Windows.WinVaultKeyring",
    "keyring.backends.kwallet.DBusKeyring",
    "keyring.backends.kwallet.DBusKeyringKWallet4",
})
"""Exact backend classes (module.qualname) that keep secrets in a real OS keyring."""

CHAINER = "keyring.backends.chainer.ChainerBackend"
_REFUSED_WHY = {
    "keyring.backends.fail.Keyring": "there is no OS keyring here (no Secret Service on this D-Bus session)",
    "keyring.backends.null.Keyring": "the null backend stores nothing and finds nothing",
}
WHAT_INSTEAD = ("use an env:VAR reference instead, run a Secret Service (gnome-keyring-daemon --unlock"
                " on this session's D-Bus), or start llmdeck with --insecure-storage")
_LOCKED_ERRORS = frozenset({"KeyringLocked", "LockedException", "PromptDismissedException"})

ProblemState = Literal["refused", "locked", "timeout", "error"]
T = TypeVar("T")


class KeyringProblem(Exception):
    """The keyring could not be used: `state` (refused, locked, timeout, error) and a secret-free text."""

    def __init__(self, state: ProblemState, detail: str) -> None:
        super().__init__(detail)
        self.state = state


def backend_name(backend: object) -> str:
    """`module.qualname` of the backend's class, e.g. keyring.backends.SecretService.Keyring."""
    cls = type(backend)
    return f"{cls.__module__}.{cls.__qualname__}"


def short_name(backend: object) -> str:
    """The backend's module's last part, e.g. SecretService."""
    return type(backend).__module__.rsplit(".", 1)[-1]


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
    if backend_name(backend) == CHAINER:
        return [b for b in getattr(backend, "backends", []) if refusal(b) is None]
    return [backend] if refusal(backend) is None else []


def _current_backends() -> list[object]:
    import keyring  # here, not at import: backend discovery talks to D-Bus

    backend = keyring.get_keyring()
    usable = usable_backends(backend)
    if not usable:
        name = backend_name(backend)
        why = refusal(backend) if name != CHAINER else "none of the backends it chains is an OS keyring"
        raise KeyringProblem("refused", f"the keyring backend {name} is refused: {why}; {WHAT_INSTEAD}")
    return usable


def _classify(exc: BaseException, secret: str) -> KeyringProblem:
    if isinstance(exc, KeyringProblem):
        return exc
    kind = type(exc).__name__
    text = sanitize(str(exc), max_chars=160, one_line=True)
    if kind in _LOCKED_ERRORS or (kind == "InitError" and re.search(r"prompt|lock", text, re.I)):
        return KeyringProblem("locked", "the keyring is locked and cannot be unlocked here (no display"
                              " for the unlock prompt); unlock it (gnome-keyring-daemon --unlock,"
                              " password on stdin)")
    if kind == "NoKeyringError":
        return KeyringProblem("refused", f"no OS keyring is available; {WHAT_INSTEAD}")
    if secret and (secret in str(exc) or secret in repr(exc.args)):
        text = "(details withheld: they held the secret)"
    return KeyringProblem("error", f"the keyring failed: {kind}: {text}")


_stuck: set[threading.Thread] = set()
_stuck_lock = threading.Lock()


def call(work: Callable[[Sequence[object]], T], *, timeout: float | None = None, secret: str = "") -> T:
    """`work(allowed backends)` in a daemon thread; KeyringProblem on refusal, failure or timeout.

    `secret` is the value being stored, if any: an error text holding it is withheld.
    """
    limit = KEYRING_TIMEOUT if timeout is None else timeout
    timed_out = KeyringProblem("timeout", f"the keyring did not answer within {limit:g} s (hung or"
                               " waiting for an unlock prompt)")
    with _stuck_lock:
        if any(t.is_alive() for t in _stuck):
            raise timed_out
        _stuck.clear()
    box: dict[str, object] = {}
    done = threading.Event()

    def run() -> None:
        try:
            box["value"] = work(_current_backends())
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc
        finally:
            done.set()

    thread = threading.Thread(target=run, name="llmdeck-keyring", daemon=True)
    thread.start()
    if not done.wait(limit):
        with _stuck_lock:
            _stuck.add(thread)
        raise timed_out
    if "error" in box:
        raise _classify(box["error"], secret)  # type: ignore[arg-type]
    return box["value"]  # type: ignore[return-value]


def stuck_threads() -> list[threading.Thread]:
    """Keyring calls that timed out and have not returned yet."""
    with _stuck_lock:
        return [t for t in _stuck if t.is_alive()]


def forget_stuck() -> None:
    """Let the next call try the keyring again even if an earlier one is still stuck (tests)."""
    with _stuck_lock:
        _stuck.clear()
