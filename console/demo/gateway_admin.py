"""The LiteLLM proxy's admin API as a state machine: keys, teams, deployments, fallbacks.

A real LiteLLM proxy cannot take admin writes here (they need a database whose driver
downloads a binary: REAL_SERVERS.md), so the demo's gateway and the tests' recording
server (tests/faults/litellm_admin_server.py) both serve this one implementation of the
documented shapes (API_SHAPES.md §4, checked against litellm 1.109's endpoint code):

- `GET /key/info?key=`, `GET /key/list?key_alias=&return_full_object=true`, `POST /key/update`
  (merge-patch: omitted fields kept, `null` clears), `POST /key/block|unblock`;
- `GET /team/info?team_id=`, `POST /team/update`, `POST /team/block|unblock`;
- `GET /model/info` (no secrets in `litellm_params`), `POST /model/update`, `PATCH /model/{id}/update`;
- `POST /fallback`, `GET|DELETE /fallback/{model}?fallback_type=`, `GET /router/settings`;
- `GET /health/liveliness|readiness` (no auth). Everything else needs the master key
  (`Authorization: Bearer` or `x-litellm-api-key`).

Errors carry the proxy's three body shapes: ProxyException `{"error": {message, type, param,
code}}`, HTTPException `{"detail": ...}`, validation `422 {"detail": [{loc, msg, type}]}`.
`LiteLLM-Changed-By` becomes the row's `updated_by`, as the proxy's audit log records it.
Every change calls `on_change(kind, before, after)` (outside the lock, in order) so the demo
can steer its traffic model. All state sits behind one lock: server threads share it.
"""

from __future__ import annotations

import copy
import hmac
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from console.demo.gateway_admin_shapes import (
    FALLBACK_KEYS,
    KEY_FIELDS,
    TEAM_FIELDS,
    AdminError,
    Reply,
    as_object,
    checked_fallback,
    delete_fallback_rule,
    fallbacks_of,
    hash_token,
    http_error,
    invalid,
    known_fields,
    merge_patch,
    patch_deployment,
    proxy_error,
    public,
    router_settings_answer,
    set_fallback_rule,
    strip_bookkeeping,
    without_stamp,
)

OnChange = Callable[[str, dict[str, Any] | None, dict[str, Any] | None], None]
"""(kind: "key" | "team" | "model" | "fallbacks", before, after) — copies, safe to keep."""
def _now() -> str:
    return datetime.now(UTC).isoformat()


class GatewayAdmin:
    """The admin API's state; `handle` answers one request (any thread)."""

    def __init__(self, master_key: str, *, on_change: OnChange | None = None,
                 clock: Callable[[], str] = _now) -> None:
        if not master_key:
            raise ValueError("GatewayAdmin needs a master key")
        self._master = master_key.encode()
        self.on_change = on_change
        self._clock = clock
        self._lock = threading.RLock()
        self._keys: dict[str, dict[str, Any]] = {}       # by token hash
        self._teams: dict[str, dict[str, Any]] = {}
        self._models: dict[str, dict[str, Any]] = {}     # by model_info.id, in insertion order
        self._router: dict[str, Any] = {key: [] for key in FALLBACK_KEYS.values()}
        self._router.update(num_retries=0, timeout=None, routing_strategy="simple-shuffle")

    # -- seeding (the demo's world, a test's fixture) -------------------------------------------

    def add_key(self, raw_key: str, *, key_alias: str | None = None, team_id: str | None = None,
                **fields: Any) -> str:
        """Add a virtual key; returns its hash (the `token` the proxy stores)."""
        token = hash_token(raw_key)
        row: dict[str, Any] = {
            "token": token, "key_alias": key_alias, "key_name": f"sk-...{raw_key[-4:]}", "team_id": team_id,
            "models": [], "spend": 0.0, "max_budget": None, "soft_budget": None, "budget_duration": None,
            "tpm_limit": None, "rpm_limit": None, "tpd_limit": None, "max_parallel_requests": None,
            "model_tpm_limit": None, "model_rpm_limit": None, "model_max_budget": None, "blocked": None,
            "metadata": {}, "budget_reset_at": None, "expires": None, "created_at": self._clock(),
            "updated_at": self._clock(), "updated_by": None}
        row.update(known_fields(fields, KEY_FIELDS, "key"))
        with self._lock:
            self._keys[token] = row
        return token

    def add_team(self, team_id: str, *, team_alias: str | None = None, **fields: Any) -> None:
        row: dict[str, Any] = {
            "team_id": team_id, "team_alias": team_alias, "models": [], "spend": 0.0, "max_budget": None,
            "tpm_limit": None, "rpm_limit": None, "blocked": False, "metadata": {}, "members_with_roles": [],
            "created_at": self._clock(), "updated_at": self._clock(), "updated_by": None}
        row.update(known_fields(fields, TEAM_FIELDS, "team"))
        with self._lock:
            self._teams[team_id] = row

    def add_deployment(self, model_name: str, litellm_params: Mapping[str, Any], *,
                       model_id: str | None = None, model_info: Mapping[str, Any] | None = None) -> str:
        """Add a deployment (`litellm_params.model` required, as `/model/new`); returns its id."""
        if "model" not in litellm_params:
            raise ValueError("litellm_params needs 'model'")
        with self._lock:
            ident = model_id or f"model-{len(self._models) + 1}"
            info = {"id": ident, "db_model": True, **(model_info or {})}
            self._models[ident] = {"model_name": model_name, "litellm_params": dict(litellm_params),
                                   "model_info": info}
        return ident

    def set_fallbacks(self, model: str, fallback_models: Sequence[str],
                      fallback_type: str = "general") -> None:
        with self._lock:
            rules = [r for r in self._router[FALLBACK_KEYS[fallback_type]] if model not in r]
            self._router[FALLBACK_KEYS[fallback_type]] = [*rules, {model: list(fallback_models)}]

    # -- reading the state (tests, the demo) -----------------------------------------------------

    def snapshot(self, *, bookkeeping: bool = False) -> dict[str, Any]:
        """A deep copy of everything; without `updated_at`/`updated_by` unless `bookkeeping`, and
        fallback rules sorted by model (their order across models means nothing; the proxy appends
        a re-created rule), so "apply then restore" compares equal to the state before."""
        with self._lock:
            return {"keys": {t: strip_bookkeeping(r, bookkeeping) for t, r in self._keys.items()},
                    "teams": {t: strip_bookkeeping(r, bookkeeping) for t, r in self._teams.items()},
                    "models": {i: copy.deepcopy(m) if bookkeeping else without_stamp(m)
                               for i, m in self._models.items()},
                    "router_settings": _sorted_rules(self._router)}

    def key(self, alias_or_key: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._find_key(alias_or_key))

    def team(self, team_id: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._find_team(team_id))

    def deployment(self, model_id: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._find_model(model_id))

    def fallbacks(self, model: str, fallback_type: str = "general") -> list[str]:
        with self._lock:
            return fallbacks_of(self._router[FALLBACK_KEYS[fallback_type]], model)

    # -- one request ---------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: Mapping[str, Any], headers: Any, body: Any) -> Reply:
        """(status, JSON document) for one request. `query` values may be strings or lists (parse_qs);
        `headers` any mapping with `.items()` (an http.server message too)."""
        method = method.upper()
        q = {k: (v[0] if isinstance(v, list | tuple) and v else v) for k, v in query.items()}
        h = {str(k).lower(): str(v) for k, v in headers.items()}
        changes: list[tuple[str, dict[str, Any] | None, dict[str, Any] | None]] = []
        try:
            if path == "/health/liveliness" and method == "GET":
                return 200, "I'm alive!"
            if path == "/health/readiness" and method == "GET":
                return 200, {"status": "healthy", "db": "connected"}
            self._authenticate(h)
            with self._lock:
                reply = self._route(method, path, q, h.get("litellm-changed-by"), body, changes)
        except AdminError as err:
            return err.status, err.body
        callback = self.on_change
        for kind, before, after in changes if callback is not None else ():
            callback(kind, before, after)  # type: ignore[misc]
        return reply

    def _authenticate(self, headers: Mapping[str, str]) -> None:
        auth = headers.get("authorization", "")
        bearer = auth.lower().startswith("bearer ")
        given = auth[7:].strip() if bearer else headers.get("x-litellm-api-key", "")
        if not given:
            raise proxy_error(401, "Authentication Error, No api key passed in.", "auth_error", "None")
        if not hmac.compare_digest(given.encode(), self._master):
            raise proxy_error(401, "Authentication Error, Invalid proxy server token passed. "
                              "Key Hash (Token) =" + hash_token(given)[:8] + "...",
                              "auth_error", "None")

    def _route(self, method: str, path: str, q: Mapping[str, str], by: str | None, body: Any,
               changes: list[tuple[str, dict[str, Any] | None, dict[str, Any] | None]]) -> Reply:
        gets: dict[str, Callable[[Mapping[str, str]], Reply]] = {
            "/key/info": self._key_info, "/key/list": self._key_list, "/team/info": self._team_info,
            "/model/info": self._model_info, "/v1/model/info": self._model_info,
            "/router/settings": self._router_settings}
        posts: dict[str, Callable[[dict[str, Any], str | None, list[Any]], Reply]] = {
            "/key/update": self._key_update, "/key/block": self._key_block, "/key/unblock": self._key_unblock,
            "/team/update": self._team_update, "/team/block": self._team_block,
            "/team/unblock": self._team_unblock, "/model/update": self._model_update,
            "/fallback": self._fallback_set}
        if path in gets or path in posts:
            if method == "GET" and path in gets:
                return gets[path](q)
            if method == "POST" and path in posts:
                return posts[path](as_object(body), by, changes)
            raise http_error(405, "Method Not Allowed")
        if path.startswith("/fallback/") and len(path) > len("/fallback/"):
            model = unquote(path.removeprefix("/fallback/"))
            kind = q.get("fallback_type", "general")
            if kind not in FALLBACK_KEYS:
                raise AdminError(422, {"detail": [{"type": "literal_error", "loc": ["query", "fallback_type"],
                                                   "msg": "Input should be 'general', 'context_window' or "
                                                          "'content_policy'", "input": kind}]})
            if method == "GET":
                return self._fallback_get(model, kind)
            if method == "DELETE":
                return self._fallback_delete(model, kind, changes)
            raise http_error(405, "Method Not Allowed")
        if path.startswith("/model/") and path.endswith("/update") and method == "PATCH":
            model_id = unquote(path[len("/model/"):-len("/update")])
            return self._model_patch(model_id, as_object(body), by, changes)
        raise http_error(404, "Not Found")

    # -- keys -----------------------------------------------------------------------------------

    def _find_key(self, key: str) -> dict[str, Any]:
        row = self._keys.get(hash_token(key))
        if row is None:
            raise proxy_error(404, "Key not found.", "not_found_error", "key")
        return row

    def _key_by(self, body: Mapping[str, Any]) -> dict[str, Any]:
        key, alias = body.get("key"), body.get("key_alias")
        if isinstance(key, str) and key:
            return self._find_key(key)
        if not isinstance(alias, str) or not alias:
            raise proxy_error(400, "either key or key_alias must be provided", "bad_request_error", "key")
        rows = [r for r in self._keys.values() if r["key_alias"] == alias]
        if not rows:
            raise proxy_error(404, f"Key not found. No key with key_alias='{alias}'.", "not_found_error",
                              "key_alias")
        if len(rows) > 1:
            raise proxy_error(400, f"Multiple keys share key_alias='{alias}', so it cannot be used as an "
                              "identifier.", "bad_request_error", "key_alias")
        return rows[0]

    def _key_info(self, q: Mapping[str, str]) -> Reply:
        key = q.get("key")
        if not key:
            raise proxy_error(400, "key is required", "bad_request_error", "key")
        info = copy.deepcopy(self._find_key(key))
        info.pop("token", None)
        return 200, {"key": key, "info": info}

    def _key_list(self, q: Mapping[str, str]) -> Reply:
        rows = [r for r in self._keys.values()
                if (not q.get("key_alias") or r["key_alias"] == q["key_alias"])
                and (not q.get("team_id") or r["team_id"] == q["team_id"])
                and (not q.get("key_hash") or r["token"] == q["key_hash"])]
        full = q.get("return_full_object", "false").lower() == "true"
        keys = [copy.deepcopy(r) for r in rows] if full else [r["token"] for r in rows]
        return 200, {"keys": keys, "total_count": len(rows), "current_page": 1,
                     "total_pages": 1 if rows else 0}

    def _key_update(self, body: dict[str, Any], by: str | None, changes: list[Any]) -> Reply:
        row = self._key_by(body)
        patch = merge_patch(body, KEY_FIELDS - {"key_alias"} if "key" not in body else KEY_FIELDS)
        self._apply("key", row, patch, by, changes)
        return 200, {"key": body.get("key") or row["token"], **copy.deepcopy(patch)}

    def _key_block(self, body: dict[str, Any], by: str | None, changes: list[Any]) -> Reply:
        return self._key_blocked(body, True, by, changes)

    def _key_unblock(self, body: dict[str, Any], by: str | None, changes: list[Any]) -> Reply:
        return self._key_blocked(body, False, by, changes)

    def _key_blocked(self, body: dict[str, Any], blocked: bool, by: str | None, changes: list[Any]) -> Reply:
        key = body.get("key")
        if not isinstance(key, str) or not key:
            raise invalid("key", "Field required", body, "missing")
        row = self._find_key(key)
        self._apply("key", row, {"blocked": blocked}, by, changes)
        return 200, copy.deepcopy(row)

    # -- teams ----------------------------------------------------------------------------------

    def _find_team(self, team_id: str) -> dict[str, Any]:
        row = self._teams.get(team_id)
        if row is None:
            raise http_error(404, {"error": f"Team not found, passed team_id={team_id}"})
        return row

    def _team_id(self, body: Mapping[str, Any]) -> str:
        team_id = body.get("team_id")
        if not isinstance(team_id, str) or not team_id:
            raise invalid("team_id", "Field required", dict(body), "missing")
        return team_id

    def _team_info(self, q: Mapping[str, str]) -> Reply:
        team_id = q.get("team_id")
        if not team_id:
            raise http_error(422, {"error": "Malformed request. No team id passed in."})
        row = copy.deepcopy(self._find_team(team_id))
        keys = [copy.deepcopy(r) for r in self._keys.values() if r["team_id"] == team_id]
        return 200, {"team_id": team_id, "team_info": row, "keys": keys, "team_memberships": []}

    def _team_update(self, body: dict[str, Any], by: str | None, changes: list[Any]) -> Reply:
        row = self._find_team(self._team_id(body))
        self._apply("team", row, merge_patch(body, TEAM_FIELDS), by, changes)
        return 200, {"team_id": row["team_id"], "data": copy.deepcopy(row)}

    def _team_block(self, body: dict[str, Any], by: str | None, changes: list[Any]) -> Reply:
        row = self._find_team(self._team_id(body))
        self._apply("team", row, {"blocked": True}, by, changes)
        return 200, copy.deepcopy(row)

    def _team_unblock(self, body: dict[str, Any], by: str | None, changes: list[Any]) -> Reply:
        row = self._find_team(self._team_id(body))
        self._apply("team", row, {"blocked": False}, by, changes)
        return 200, copy.deepcopy(row)

    # -- models ---------------------------------------------------------------------------------

    def _find_model(self, model_id: str) -> dict[str, Any]:
        row = self._models.get(model_id)
        if row is None:
            raise proxy_error(400, f"Model with id={model_id} not found in db", "bad_request_error",
                              "model_id")
        return row

    def _model_info(self, q: Mapping[str, str]) -> Reply:
        wanted = q.get("litellm_model_id")
        rows = [public(m) for i, m in self._models.items() if not wanted or i == wanted]
        return 200, {"data": rows}

    def _model_update(self, body: dict[str, Any], by: str | None, changes: list[Any]) -> Reply:
        info = body.get("model_info")
        model_id = info.get("id") if isinstance(info, dict) else None
        if not isinstance(model_id, str) or not model_id:
            raise invalid("model_info.id", "Field required", info, "missing")
        return self._model_patch(model_id, body, by, changes)

    def _model_patch(self, model_id: str, body: dict[str, Any], by: str | None, changes: list[Any]) -> Reply:
        row = self._find_model(model_id)
        change = patch_deployment(row, body, self._clock, by)
        changes.extend([change] if change else [])
        return 200, public(row)

    # -- fallbacks and router settings ----------------------------------------------------------

    def _fallback_set(self, body: dict[str, Any], by: str | None, changes: list[Any]) -> Reply:
        known = sorted({m["model_name"] for m in self._models.values()})
        model, models, kind = checked_fallback(body, known)
        reply, change = set_fallback_rule(self._router, model, models, kind)
        changes.extend([change] if change else [])
        return reply

    def _fallback_get(self, model: str, kind: str) -> Reply:
        models = fallbacks_of(self._router[FALLBACK_KEYS[kind]], model)
        if not models:
            raise http_error(404, {"error": f"No {kind} fallbacks configured for model '{model}'"})
        return 200, {"model": model, "fallback_models": models, "fallback_type": kind}

    def _fallback_delete(self, model: str, kind: str, changes: list[Any]) -> Reply:
        reply, change = delete_fallback_rule(self._router, model, kind)
        changes.append(change)
        return reply

    def _router_settings(self, q: Mapping[str, str]) -> Reply:
        return 200, router_settings_answer(self._router)

    # -- shared ---------------------------------------------------------------------------------

    def _apply(self, kind: str, row: dict[str, Any], patch: Mapping[str, Any], by: str | None,
               changes: list[Any]) -> None:
        before = copy.deepcopy(row)
        row.update(copy.deepcopy(dict(patch)))
        row["updated_at"], row["updated_by"] = self._clock(), by
        if any(before.get(k) != row.get(k) for k in patch):
            changes.append((kind, strip_bookkeeping(before, False), strip_bookkeeping(row, False)))


def _sorted_rules(router: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(router))
    for key in FALLBACK_KEYS.values():
        out[key] = sorted(out.get(key) or [], key=lambda rule: sorted(rule))
    return out
