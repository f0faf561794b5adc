"""Runbook adapters for a LiteLLM proxy's admin API: limits, blocks, fallbacks, model params.

Six kinds, each registered with `console.adapters.register`:

- `litellm.key_limits`   (key_alias | key, tpm_limit, rpm_limit, max_parallel_requests) → /key/update
- `litellm.team_limits`  (team_id, tpm_limit, rpm_limit) → /team/update
- `litellm.key_block`    (key_alias | key, blocked) → /key/block | /key/unblock
- `litellm.team_block`   (team_id, blocked) → /team/block | /team/unblock
- `litellm.fallbacks`    (model, fallback_models, fallback_type) → POST /fallback, DELETE /fallback/{model}
- `litellm.model_params` (model_id | model_name, litellm_params) → PATCH /model/{id}/update

Adapters read (GET only) and describe; only the choke point calls `send`. A limit param
present with None means "clear it" (the proxy's merge-patch null), absent means "leave it":
that is how a restore puts back a limit that was unset. A raw `sk-` key is a secret: the
adapters turn it into its sha256 hash (which the proxy accepts) before it reaches a target,
a request, a before/desired state or a restore param. Provider secrets in `litellm_params`
(api_key and the like) cannot be changed here: the proxy never shows them, so a change
could be neither verified nor undone.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from connectors.http import HttpPolicy, SourceClient, SourceError
from connectors.litellm_admin import (
    FALLBACK_TYPES,
    AdminWrite,
    LiteLLMAdmin,
    NotFound,
    hash_token,
    is_raw_key,
)
from console.action_types import ActionError, Adapter, PlannedRequest
from console.adapters import AdapterContext, register

SECRET_LITELLM_PARAMS = frozenset({"api_key", "aws_access_key_id", "aws_secret_access_key",
                                   "aws_session_token", "vertex_credentials", "client_secret",
                                   "azure_ad_token"})


class _LiteLLMAdapter:
    """What every LiteLLM kind shares: the admin client, plan text, sending, closing."""

    kind = ""
    readable = True

    def __init__(self, admin: LiteLLMAdmin) -> None:
        self.admin = admin

    @property
    def gateway(self) -> str:
        return self.admin.gateway

    def _planned(self, write: AdminWrite) -> PlannedRequest:
        body = "" if write.body is None else json.dumps(write.body, sort_keys=True, separators=(",", ":"))
        text = self.admin.describe(write.method, write.path, write.body)
        return PlannedRequest(method=write.method, text=text, path=write.path, body_json=body)

    async def send(self, request: PlannedRequest, *, idempotency_key: str, changed_by: str) -> str:
        answer = await self.admin.write(request.method, request.path, request.body,
                                        idempotency_key=idempotency_key, changed_by=changed_by)
        message = answer.get("message") if isinstance(answer, dict) else None
        said = f": {message}" if isinstance(message, str) and message else ""
        return f"{self.gateway}: {request.method} {request.path.split('?')[0]} accepted{said}"

    async def _read(self, what: Callable[[], Any]) -> Any:
        """A read, its failures as ActionError (the plan cannot be made)."""
        try:
            return await what()
        except NotFound as err:
            raise ActionError(str(err)) from None
        except SourceError as err:
            raise ActionError(f"cannot read the current state from LiteLLM gateway {self.gateway}: "
                              f"{err}") from None

    async def aclose(self) -> None:
        await self.admin.aclose()


# -- parameters -----------------------------------------------------------------------------------


def _text(params: Mapping[str, Any], name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ActionError(f"param {name!r} is required")
    return value


def _no_raw_key(params: Mapping[str, Any], *names: str) -> None:
    for name in names:
        if is_raw_key(params.get(name)):
            raise ActionError(f"param {name!r} looks like a raw key (sk-...): name a key by 'key_alias', "
                              "or pass it as 'key' (a secret param)")


def _limit(params: Mapping[str, Any], name: str) -> int | None:
    value = params[name]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ActionError(f"param {name!r}: expected a whole number >= 0 (or none to clear), got {value!r}")
    return value


def _key_ident(params: Mapping[str, Any]) -> dict[str, str]:
    """{"key": sha256 hash} or {"key_alias": alias}: never the raw key."""
    _no_raw_key(params, "key_alias")
    key = params.get("key")
    if isinstance(key, str) and key:
        return {"key": hash_token(key)}
    if isinstance(params.get("key_alias"), str) and params["key_alias"]:
        return {"key_alias": params["key_alias"]}
    raise ActionError("param 'key_alias' (or 'key') is required")


def _key_target(params: Mapping[str, Any]) -> str:
    ident = _key_ident(params)
    return ident.get("key_alias") or f"key {ident['key'][:16]}"


async def _key_row(admin: LiteLLMAdmin, params: Mapping[str, Any]) -> dict[str, Any]:
    ident = _key_ident(params)
    if "key" in ident:
        return await admin.key_info(ident["key"])
    return await admin.key_by_alias(ident["key_alias"])


# -- limits ---------------------------------------------------------------------------------------


class _Limits(_LiteLLMAdapter):
    fields: tuple[str, ...] = ()

    def desired(self, params: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
        wanted = {f: _limit(params, f) for f in self.fields if f in params}
        if not wanted:
            raise ActionError(f"give at least one of {', '.join(self.fields)}")
        return {**{f: current.get(f) for f in self.fields}, **wanted}

    def _changes(self, current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
        return {f: desired[f] for f in self.fields if f in desired and desired[f] != current.get(f)}


class KeyLimits(_Limits):
    kind = "litellm.key_limits"
    fields = ("tpm_limit", "rpm_limit", "max_parallel_requests")

    def target(self, params: Mapping[str, Any]) -> str:
        return _key_target(params)

    async def read(self, params: Mapping[str, Any]) -> dict[str, Any]:
        row = await self._read(lambda: _key_row(self.admin, params))
        return {f: row.get(f) for f in self.fields}

    def requests(self, params: Mapping[str, Any], current: Mapping[str, Any],
                 desired: Mapping[str, Any]) -> Sequence[PlannedRequest]:
        changes = self._changes(current, desired)
        return [self._planned(LiteLLMAdmin.update_key(_key_ident(params), changes))] if changes else []

    def restore_params(self, params: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, Any] | None:
        return {**_key_ident(params), **{f: before.get(f) for f in self.fields}}


class TeamLimits(_Limits):
    kind = "litellm.team_limits"
    fields = ("tpm_limit", "rpm_limit")

    def target(self, params: Mapping[str, Any]) -> str:
        return _text(params, "team_id")

    async def read(self, params: Mapping[str, Any]) -> dict[str, Any]:
        _no_raw_key(params, "team_id")
        row = await self._read(lambda: self.admin.team_info(_text(params, "team_id")))
        return {f: row.get(f) for f in self.fields}

    def requests(self, params: Mapping[str, Any], current: Mapping[str, Any],
                 desired: Mapping[str, Any]) -> Sequence[PlannedRequest]:
        changes = self._changes(current, desired)
        return [self._planned(LiteLLMAdmin.update_team(_text(params, "team_id"), changes))] if changes else []

    def restore_params(self, params: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, Any] | None:
        return {"team_id": _text(params, "team_id"), **{f: before.get(f) for f in self.fields}}


# -- blocks ---------------------------------------------------------------------------------------


def _blocked(params: Mapping[str, Any]) -> bool:
    value = params.get("blocked", True)
    if not isinstance(value, bool):
        raise ActionError(f"param 'blocked': expected true or false, got {value!r}")
    return value


class KeyBlock(_LiteLLMAdapter):
    kind = "litellm.key_block"

    def target(self, params: Mapping[str, Any]) -> str:
        return _key_target(params)

    async def read(self, params: Mapping[str, Any]) -> dict[str, Any]:
        row = await self._read(lambda: _key_row(self.admin, params))
        token = row.get("token") or _key_ident(params).get("key")
        if not isinstance(token, str) or not token:
            raise ActionError(f"LiteLLM gateway {self.gateway} did not say which key "
                              f"{self.target(params)} is")
        return {"blocked": bool(row.get("blocked")), "token": hash_token(token)}

    def desired(self, params: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
        return {**current, "blocked": _blocked(params)}

    def requests(self, params: Mapping[str, Any], current: Mapping[str, Any],
                 desired: Mapping[str, Any]) -> Sequence[PlannedRequest]:
        if bool(current.get("blocked")) == desired["blocked"]:
            return []
        return [self._planned(LiteLLMAdmin.block_key(str(current["token"]), bool(desired["blocked"])))]

    def restore_params(self, params: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, Any] | None:
        return {**_key_ident(params), "blocked": bool(before.get("blocked"))}


class TeamBlock(_LiteLLMAdapter):
    kind = "litellm.team_block"

    def target(self, params: Mapping[str, Any]) -> str:
        return _text(params, "team_id")

    async def read(self, params: Mapping[str, Any]) -> dict[str, Any]:
        _no_raw_key(params, "team_id")
        row = await self._read(lambda: self.admin.team_info(_text(params, "team_id")))
        return {"blocked": bool(row.get("blocked"))}

    def desired(self, params: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
        return {"blocked": _blocked(params)}

    def requests(self, params: Mapping[str, Any], current: Mapping[str, Any],
                 desired: Mapping[str, Any]) -> Sequence[PlannedRequest]:
        if bool(current.get("blocked")) == desired["blocked"]:
            return []
        return [self._planned(LiteLLMAdmin.block_team(_text(params, "team_id"), bool(desired["blocked"])))]

    def restore_params(self, params: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, Any] | None:
        return {"team_id": _text(params, "team_id"), "blocked": bool(before.get("blocked"))}


# -- fallbacks and model params -------------------------------------------------------------------


def _fallback_type(params: Mapping[str, Any]) -> str:
    kind = params.get("fallback_type") or "general"
    if kind not in FALLBACK_TYPES:
        raise ActionError(f"param 'fallback_type': expected one of {', '.join(FALLBACK_TYPES)}, got {kind!r}")
    return str(kind)


def _models(params: Mapping[str, Any]) -> list[str]:
    value = params.get("fallback_models", [])
    if not isinstance(value, list | tuple) or not all(isinstance(m, str) and m for m in value):
        raise ActionError(f"param 'fallback_models': expected a list of model names, got {value!r}")
    if len(set(value)) != len(value):
        raise ActionError("param 'fallback_models': a model is named twice")
    return list(value)


def _provider_of(deployment: Mapping[str, Any]) -> str:
    """The provider a deployment calls: `custom_llm_provider`, else the `provider/` prefix of its model."""
    params = deployment.get("litellm_params") or {}
    explicit = params.get("custom_llm_provider")
    if isinstance(explicit, str) and explicit:
        return explicit
    model = params.get("model")
    return model.split("/", 1)[0] if isinstance(model, str) and "/" in model else ""


class Fallbacks(_LiteLLMAdapter):
    """Model groups' fallbacks: set (switch provider) or, with an empty list, removed.

    Names one `model` group, or a `provider` (every group with a deployment on it: an incident
    scoped to a provider is mitigated in one action, one request per group). A restore names
    each group's own list (`groups`, from the state read before), since they may differ.
    """

    kind = "litellm.fallbacks"

    def target(self, params: Mapping[str, Any]) -> str:
        for name in ("model", "provider"):
            value = params.get(name)
            if isinstance(value, str) and value:
                return value
        groups = params.get("groups")
        if isinstance(groups, Mapping) and groups:
            return ",".join(sorted(groups))
        raise ActionError("param 'model' (or 'provider') is required")

    async def read(self, params: Mapping[str, Any]) -> dict[str, Any]:
        kind = _fallback_type(params)
        deployments = await self._read(self.admin.model_info)
        known = {str(d.get("model_name")) for d in deployments}
        wanted = self._wanted(params, deployments)
        for group, models in wanted.items():
            unknown = [m for m in (group, *models) if m not in known]
            if unknown:
                raise ActionError(f"LiteLLM gateway {self.gateway} has no model group {unknown[0]!r} "
                                  f"(known: {', '.join(sorted(known)) or 'none'})")
            if group in models:
                raise ActionError(f"param 'fallback_models': {group!r} cannot be its own fallback")
        current: dict[str, list[str]] = {}
        for group in sorted(wanted):
            current[group] = await self._read(functools.partial(self.admin.fallbacks, group, kind))
        return {"fallbacks": current}

    def _wanted(self, params: Mapping[str, Any],
                deployments: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
        groups = params.get("groups")
        if isinstance(groups, Mapping) and groups:
            return {str(g): _models({"fallback_models": m}) for g, m in groups.items()}
        models = _models(params)
        model = params.get("model")
        if isinstance(model, str) and model:
            return {model: models}
        provider = _text(params, "provider") if not model else ""
        on_it = sorted({str(d.get("model_name")) for d in deployments if _provider_of(d) == provider})
        if not on_it:
            raise ActionError(f"LiteLLM gateway {self.gateway} has no model group on provider {provider!r}")
        clash = [m for m in models if m in on_it]
        if clash:
            raise ActionError(f"param 'fallback_models': {clash[0]!r} is itself on provider {provider!r}")
        return {group: models for group in on_it}

    def desired(self, params: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
        groups = params.get("groups")
        explicit = groups if isinstance(groups, Mapping) else {}
        return {"fallbacks": {g: _models({"fallback_models": explicit[g]} if g in explicit else params)
                              for g in current.get("fallbacks", {})}}

    def requests(self, params: Mapping[str, Any], current: Mapping[str, Any],
                 desired: Mapping[str, Any]) -> Sequence[PlannedRequest]:
        kind, now = _fallback_type(params), current.get("fallbacks", {})
        planned = []
        for group, wanted in sorted(desired["fallbacks"].items()):
            if list(wanted) == list(now.get(group) or []):
                continue
            write = (LiteLLMAdmin.set_fallbacks(group, wanted, kind) if wanted
                     else LiteLLMAdmin.delete_fallbacks(group, kind))
            planned.append(self._planned(write))
        return planned

    def restore_params(self, params: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, Any] | None:
        restore: dict[str, Any] = {"fallback_type": _fallback_type(params),
                                   "groups": {g: list(m) for g, m in before.get("fallbacks", {}).items()}}
        for name in ("model", "provider"):
            if isinstance(params.get(name), str) and params[name]:
                restore[name] = params[name]
        return restore


def _litellm_params(params: Mapping[str, Any]) -> dict[str, Any]:
    value = params.get("litellm_params")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ActionError("param 'litellm_params': expected a JSON object") from None
    if not isinstance(value, dict) or not value:
        raise ActionError("param 'litellm_params': expected a non-empty table of changes")
    secret = sorted(k for k in value if k in SECRET_LITELLM_PARAMS or is_raw_key(value[k]))
    if secret:
        raise ActionError(f"param 'litellm_params': {', '.join(secret)} cannot be changed by a runbook "
                          "(the proxy never shows it, so the change could be neither verified nor undone)")
    if "model" in value and not value["model"]:
        raise ActionError("param 'litellm_params': 'model' cannot be removed")
    return dict(value)


class ModelParams(_LiteLLMAdapter):
    """A deployment's `litellm_params` (roll back a model: the upstream model, api_base, rpm...)."""

    kind = "litellm.model_params"

    def target(self, params: Mapping[str, Any]) -> str:
        name = params.get("model_name")
        return name if isinstance(name, str) and name else _text(params, "model_id")

    async def read(self, params: Mapping[str, Any]) -> dict[str, Any]:
        changes = _litellm_params(params)
        model_id, name = params.get("model_id"), params.get("model_name")
        wanted = model_id if isinstance(model_id, str) and model_id else None
        rows = await self._read(lambda: self.admin.model_info(wanted))
        if model_id:
            rows = [r for r in rows if (r.get("model_info") or {}).get("id") == model_id]
        elif isinstance(name, str) and name:
            rows = [r for r in rows if r.get("model_name") == name]
        else:
            raise ActionError("param 'model_id' or 'model_name' is required")
        if len(rows) != 1:
            ids = ", ".join(str((r.get("model_info") or {}).get("id")) for r in rows)
            raise ActionError(f"LiteLLM gateway {self.gateway}: {self.target(params)!r} names "
                              f"{len(rows)} deployments{f' ({ids}): give model_id' if rows else ''}")
        row = rows[0]
        shown = row.get("litellm_params") or {}
        return {"model_id": str((row.get("model_info") or {}).get("id")), "model_name": row.get("model_name"),
                "litellm_params": {k: shown.get(k) for k in sorted(changes)}}

    def desired(self, params: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
        return {**current, "litellm_params": {**current.get("litellm_params", {}), **_litellm_params(params)}}

    def requests(self, params: Mapping[str, Any], current: Mapping[str, Any],
                 desired: Mapping[str, Any]) -> Sequence[PlannedRequest]:
        now = current.get("litellm_params") or {}
        changes = {k: v for k, v in desired["litellm_params"].items() if now.get(k) != v}
        if not changes:
            return []
        return [self._planned(LiteLLMAdmin.update_model(str(current["model_id"]), changes))]

    def restore_params(self, params: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, Any] | None:
        restore: dict[str, Any] = {"model_id": before["model_id"],
                                   "litellm_params": dict(before.get("litellm_params") or {})}
        if isinstance(params.get("model_name"), str):
            restore["model_name"] = params["model_name"]
        return restore


# -- building -------------------------------------------------------------------------------------


def admin_for(context: AdapterContext) -> LiteLLMAdmin:
    """The admin client for the `[[actions.litellm]]` gateway the action names (or the only one)."""
    gateways = context.config.actions.litellm
    names = ", ".join(g.name for g in gateways) or "none configured"
    if context.gateway:
        found = [g for g in gateways if g.name == context.gateway]
        if not found:
            raise ActionError(f"no [[actions.litellm]] gateway named {context.gateway!r} (known: {names})")
        gateway = found[0]
    elif len(gateways) == 1:
        gateway = gateways[0]
    else:
        raise ActionError(f"name the LiteLLM gateway with gateway = \"...\" (known: {names})")
    secret = context.secret
    if secret is None:
        from console.secrets import header_secret
        secret = header_secret
    try:
        key = secret(gateway.admin_key_ref)
    except Exception as exc:  # SecretError (or a test's resolver): its text names the ref, never the value
        raise ActionError(f"LiteLLM gateway {gateway.name}: admin_key_ref: {exc}") from None
    policy = HttpPolicy(read_timeout=gateway.timeout_seconds, deadline=3 * gateway.timeout_seconds)
    client = SourceClient(gateway.name, str(gateway.url), secret_headers={"Authorization": f"Bearer {key}"},
                          policy=policy, transport=context.transport)
    return LiteLLMAdmin(client)


def _factory(cls: type[_LiteLLMAdapter]) -> Callable[[AdapterContext], Adapter]:
    def build(context: AdapterContext) -> Adapter:
        adapter: Adapter = cls(admin_for(context))  # type: ignore[assignment]
        return adapter
    return build


KINDS: tuple[type[_LiteLLMAdapter], ...] = (KeyLimits, TeamLimits, KeyBlock, TeamBlock, Fallbacks,
                                            ModelParams)
for _cls in KINDS:
    register(_cls.kind, _factory(_cls))
