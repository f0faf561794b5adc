"""Keeping secrets out of the audit journal: parameter values, targets and detail text.

A parameter is masked when it is declared secret, when its name says so (api_key, token,
password, authorization...), or when its value has the shape of a key or token
(`console.config_errors.looks_like_secret`, `sk-...`, `Bearer ...`). Free text (a target,
an error body in a detail) is masked word by word. Canonical UUIDs and words made only of hex
digits (a LiteLLM deployment id, a key's sha256 hash, a commit SHA) are identifiers, not secrets:
masking them would leave an action that named one unverifiable and its target unknowable in the
journal (review finding 2). A declared-secret param is masked whatever its value.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from console.config_errors import looks_like_secret

MASK = "***"

# Parameter names that hold secrets whatever their value looks like (split on _ - . and case).
_SECRET_WORDS = frozenset({"secret", "password", "passwd", "token", "apikey", "authorization",
                           "credential", "credentials", "bearer", "cookie"})
_SECRET_PAIRS = frozenset({("api", "key"), ("master", "key"), ("admin", "key"), ("private", "key"),
                           ("secret", "key"), ("access", "key")})
_WORD = re.compile(r"[A-Za-z0-9]+")
_TOKEN = re.compile(r"\S+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX = re.compile(r"[0-9a-fA-F]+")
_PUNCTUATION = ".,;:!?()[]{}<>\"'`"


def _secret_name(name: str) -> bool:
    words = [w.lower() for w in _WORD.findall(name)]
    if any(w in _SECRET_WORDS for w in words):
        return True
    return any(pair in _SECRET_PAIRS for pair in zip(words, words[1:], strict=False))


def _secret_value(value: str) -> bool:
    """Shaped like a key or token. A canonical UUID (a silence id, an action id) or a word made
    only of hex digits (a sha256 model id or key hash, a commit SHA) is an id, not a secret;
    longer mixed letters-and-digits words (base64-ish) are masked."""
    text = value.strip()
    word = text.strip(_PUNCTUATION)  # "deployment <sha>," in free text: the comma is not the id
    if _UUID.fullmatch(word) or _HEX.fullmatch(word):
        return False
    return looks_like_secret(text) or text.startswith("sk-") or text.lower().startswith("bearer ")


def scrub(text: str) -> str:
    """`text` with every whitespace-separated word that looks like a secret replaced by ***."""
    return _TOKEN.sub(lambda m: MASK if _secret_value(m.group()) else m.group(), text)


def _redact(value: Any, secret: bool) -> Any:
    if secret:
        return MASK
    if isinstance(value, Mapping):
        return {str(k): _redact(v, _secret_name(str(k))) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v, False) for v in value]
    if isinstance(value, str):
        return MASK if value.strip().lower().startswith(("bearer ", "basic ")) else scrub(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return _redact(str(value), False)


def redact_params(params: Mapping[str, Any], secret_names: Collection[str] = ()) -> dict[str, Any]:
    """`params` safe to keep: declared secret params, secret-named keys (api_key, token,
    password...) and any value shaped like a key or token become ***, at any depth."""
    return {str(k): _redact(v, str(k) in secret_names or _secret_name(str(k)))
            for k, v in params.items()}
