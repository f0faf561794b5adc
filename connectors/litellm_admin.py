"""The LiteLLM proxy's admin API, read and written through one `SourceClient`.

Reads (GET, retried by the HTTP policy) give the state a runbook action plans from: a key
by alias or key, a team, the deployments (`/model/info`, which never carries provider
secrets), a model's fallbacks, the router settings. Writes are the documented admin calls
(API_SHAPES.md §4). Every write carries `Idempotency-Key` and `LiteLLM-Changed-By` (the
proxy records the latter in its audit log) and is sent exactly once: never retried, since
a POST that timed out may have taken. A failed write is a `SendError` naming the gateway,
the call and the HTTP status with the proxy's own message (ProxyException, HTTPException
detail or a 422's first problem); no answer after sending is `SendError(unsure=True)`.

A raw virtual key (`sk-...`) is a secret: this module addresses keys by alias or by their
sha256 hash (which the proxy accepts wherever it takes a key), so a raw key is never in a
URL, a request body, a plan's text or an error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from connectors.http import SourceClient, SourceError
from console.action_types import SendError

IDEMPOTENCY_PLACEHOLDER = "<idempotency-key>"
CHANGED_BY_PLACEHOLDER = "<operator>"
FALLBACK_TYPES = ("general", "context_window", "content_policy")


def hash_token(key: str) -> str:
    """The proxy's stored form of a virtual key (sha256 hex); anything else passes unchanged."""
    return hashlib.sha256(key.encode()).hexdigest() if key.startswith("sk-") else key


def is_raw_key(value: object) -> bool:
    return isinstance(value, str) and value.startswith("sk-")


class NotFound(Exception):
    """The key, team or deployment a read names does not exist (the message says which)."""


@dataclass(frozen=True)
class AdminWrite:
    """One admin write: method, path (query included), JSON body."""

    method: str
    path: str
    body: dict[str, Any] | None


def fallbacks_path(model: str, fallback_type: str) -> str:
    return f"/fallback/{quote(model, safe='')}?fallback_type={quote(fallback_type, safe='')}"


class LiteLLMAdmin:
    """Reads and writes of one LiteLLM proxy's admin API (`http` carries the admin key)."""

    def __init__(self, http: SourceClient) -> None:
        self.http = http

    @property
    def gateway(self) -> str:
        return self.http.name

    # -- reads ------------------------------------------------------------------------------------

    async def key_info(self, key: str) -> dict[str, Any]:
        """The token row of a key (raw or hash), `token` set to its hash."""
        token = hash_token(key)
        doc = await self._get("/key/info", {"key": token}, f"key {token[:12]}")
        info = doc.get("info") if isinstance(doc, dict) else None
        if not isinstance(info, dict):
            raise NotFound(f"{self.gateway}: /key/info answered no key info for key {token[:12]}")
        return {**info, "token": token}

    async def key_by_alias(self, alias: str) -> dict[str, Any]:
        """The one key whose `key_alias` is `alias` (`/key/list?key_alias=&return_full_object=true`)."""
        doc = await self._get("/key/list", {"key_alias": alias, "return_full_object": "true"},
                              f"key alias {alias!r}")
        rows = [r for r in (doc.get("keys") if isinstance(doc, dict) else None) or []
                if isinstance(r, dict) and r.get("key_alias") == alias]
        if not rows:
            raise NotFound(f"{self.gateway}: no key with alias {alias!r}")
        if len(rows) > 1:
            raise NotFound(f"{self.gateway}: {len(rows)} keys share the alias {alias!r}; name the key itself")
        return dict(rows[0])

    async def team_info(self, team_id: str) -> dict[str, Any]:
        doc = await self._get("/team/info", {"team_id": team_id}, f"team {team_id!r}")
        info = doc.get("team_info") if isinstance(doc, dict) else None
        if not isinstance(info, dict):
            raise NotFound(f"{self.gateway}: /team/info answered no team_info for team {team_id!r}")
        return info

    async def model_info(self, model_id: str | None = None) -> list[dict[str, Any]]:
        """The deployments (`{model_name, litellm_params, model_info}`), or the one with `model_id`."""
        params = {"litellm_model_id": model_id} if model_id else None
        doc = await self._get("/model/info", params, f"model id {model_id!r}")
        data = doc.get("data") if isinstance(doc, dict) else None
        return [d for d in data or [] if isinstance(d, dict)]

    async def fallbacks(self, model: str, fallback_type: str = "general") -> list[str]:
        """`model`'s fallbacks of that type; [] when none are configured (the proxy's 404)."""
        try:
            doc = await self.http.get_json(f"/fallback/{quote(model, safe='')}",
                                           {"fallback_type": fallback_type})
        except SourceError as err:
            if err.status == 404:
                return []
            raise
        models = doc.get("fallback_models") if isinstance(doc, dict) else None
        return [str(m) for m in models or []]

    async def router_settings(self) -> dict[str, Any]:
        doc = await self.http.get_json("/router/settings")
        values = doc.get("current_values") if isinstance(doc, dict) else None
        return dict(values) if isinstance(values, dict) else {}

    async def _get(self, path: str, params: Mapping[str, str] | None, what: str) -> Any:
        try:
            return await self.http.get_json(path, params)
        except SourceError as err:
            if err.status == 404:
                raise NotFound(f"{self.gateway}: {what} not found ({err.reason})") from None
            raise

    # -- the writes, as requests (pure: plans are built from these) -------------------------------

    @staticmethod
    def update_key_request(ident: Mapping[str, str], fields: Mapping[str, Any]) -> AdminWrite:
        """`ident` is {"key": key or hash} or {"key_alias": alias}; `fields` a merge-patch (None clears)."""
        return AdminWrite("POST", "/key/update", {**_key_ident(ident), **fields})

    @staticmethod
    def block_key_request(key: str, blocked: bool = True) -> AdminWrite:
        return AdminWrite("POST", "/key/block" if blocked else "/key/unblock", {"key": hash_token(key)})

    @staticmethod
    def update_team_request(team_id: str, fields: Mapping[str, Any]) -> AdminWrite:
        return AdminWrite("POST", "/team/update", {"team_id": team_id, **fields})

    @staticmethod
    def block_team_request(team_id: str, blocked: bool = True) -> AdminWrite:
        return AdminWrite("POST", "/team/block" if blocked else "/team/unblock", {"team_id": team_id})

    @staticmethod
    def update_model_request(model_id: str, litellm_params: Mapping[str, Any]) -> AdminWrite:
        """The partial-update form: only the `litellm_params` given change (None removes one)."""
        return AdminWrite("PATCH", f"/model/{quote(model_id, safe='')}/update",
                          {"litellm_params": dict(litellm_params)})

    @staticmethod
    def set_fallbacks_request(model: str, fallback_models: Sequence[str],
                              fallback_type: str = "general") -> AdminWrite:
        return AdminWrite("POST", "/fallback", {"model": model, "fallback_models": list(fallback_models),
                                                "fallback_type": fallback_type})

    @staticmethod
    def delete_fallbacks_request(model: str, fallback_type: str = "general") -> AdminWrite:
        return AdminWrite("DELETE", fallbacks_path(model, fallback_type), None)

    # -- sending ----------------------------------------------------------------------------------

    def describe(self, method: str, path: str, body: Any, *, idempotency_key: str = IDEMPOTENCY_PLACEHOLDER,
                 changed_by: str = CHANGED_BY_PLACEHOLDER) -> str:
        """The request exactly as `admin_write` sends it, as text (the admin key masked)."""
        bare, query = _split(path)
        return self.http.describe_request(method, bare, json=body, params=query or None,
                                          headers=_write_headers(idempotency_key, changed_by))

    async def admin_write(self, method: str, path: str, body: Any, *, idempotency_key: str,
                          changed_by: str) -> Any:
        """Send one write once; its JSON answer. The one write entry point: only the desk's adapters
        (console/adapters/litellm*.py) call it (tests/unit/test_litellm_admin_guard.py).
        SendError (status, gateway, the proxy's message)."""
        if not idempotency_key or not changed_by:
            raise SendError(f"{self.gateway}: {method} {_bare(path)}: a write needs an idempotency key "
                            "and the operator's name; nothing sent")
        bare, query = _split(path)
        try:
            response = await self.http.send(method, bare, json=body, params=query or None, idempotent=False,
                                             headers=_write_headers(idempotency_key, changed_by))
        except SourceError as err:
            raise _send_error(self.gateway, method, bare, err) from None
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            return None

    async def aclose(self) -> None:
        await self.http.aclose()


def _key_ident(ident: Mapping[str, str]) -> dict[str, str]:
    if ident.get("key"):
        return {"key": hash_token(ident["key"])}
    if ident.get("key_alias"):
        return {"key_alias": ident["key_alias"]}
    raise ValueError("a key is named by 'key' or 'key_alias'")


def _write_headers(idempotency_key: str, changed_by: str) -> dict[str, str]:
    return {"Idempotency-Key": header_text(idempotency_key), "LiteLLM-Changed-By": header_text(changed_by)}


def header_text(value: str) -> str:
    """`value` as an HTTP header value: ASCII (`josé` -> `jos\\xe9`), printable only. A non-ASCII
    OS user name must neither stop the write before it leaves nor add a header line."""
    ascii_text = value.encode("ascii", "backslashreplace").decode("ascii")
    return "".join(c for c in ascii_text if c.isprintable()).strip() or "?"


def _split(path: str) -> tuple[str, list[tuple[str, str]]]:
    parts = urlsplit(path)
    return parts.path, parse_qsl(parts.query, keep_blank_values=True)


def _bare(path: str) -> str:
    return urlsplit(path).path


def _send_error(gateway: str, method: str, path: str, err: SourceError) -> SendError:
    call = f"{method} {path}"
    if err.status is not None:
        return SendError(f"LiteLLM gateway {gateway}: {call} failed: HTTP {err.status}: {err.reason}",
                         status=err.status)
    if err.maybe_sent:
        return SendError(f"LiteLLM gateway {gateway}: {call}: no answer ({err.reason}); the change may or "
                         "may not have taken: verify before trying again", unsure=True)
    return SendError(f"LiteLLM gateway {gateway}: {call} not sent: {err.reason}")
