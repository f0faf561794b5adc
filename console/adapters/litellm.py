"""Runbook adapters for a LiteLLM proxy's admin API: limits, blocks, fallbacks, model params.

Six kinds, each registered with `console.adapters.register`:

- `litellm.key_limits`   (key_alias | key, tpm_limit, rpm_limit, max_parallel_requests) → /key/update
- `litellm.team_limits`  (team_id, tpm_limit, rpm_limit) → /team/update
- `litellm.key_block`    (key_alias | key, blocked) → /key/block | /key/unblock
- `litellm.team_block`   (team_id, blocked) → /team/block | /team/unblock
- `litellm.fallbacks`    (model | provider, fallback_models, fallback_type) → POST /fallback,
  DELETE /fallback/{model}                                   (in console/adapters/litellm_models.py)
- `litellm.model_params` (model_id | model_name, litellm_params) → PATCH /model/{id}/update  (same)

Adapters read (GET only) and describe; only the choke point calls `send`. A limit param
present with None means "clear it" (the proxy's merge-patch null), absent means "leave it":
that is how a restore puts back a limit that was unset. A raw `sk-` key is a secret: the
adapters turn it into its sha256 hash (which the proxy accepts) before it reaches a target,
a request, a before/desired state or a restore param. Provider secrets in `litellm_params`
(api_key and the like) cannot be changed here: the proxy never shows them, so a change
could be neither verified nor undone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from connectors.litellm_admin import LiteLLMAdmin, hash_token, is_raw_key
from console.action_types import ActionError, Adapter, PlannedRequest
from console.adapters import AdapterContext, register
from console.adapters.litellm_common import LiteLLMAdapter, admin_for, no_raw_key, text_param
from console.adapters.litellm_models import Fallbacks, ModelParams


def _limit(params: Mapping[str, Any], name: str) -> int | None:
    value = params[name]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ActionError(f"param {name!r}: expected a whole number >= 0 (or none to clear), got {value!r}")
    return value


MASKED = frozenset({"***", "****"})
"""What the desk keeps of a secret param (a raw key): never usable to name the key again."""


def _key_ident(params: Mapping[str, Any]) -> dict[str, str]:
    """{"key": sha256 hash} or {"key_alias": alias}: never the raw key. A key is named by
    `key_alias`, `key` (raw, a secret param: only its hash is used) or `key_hash` (restores)."""
    no_raw_key(params, "key_alias", "key_hash")
    key = params.get("key")
    if isinstance(key, str) and key:
        if key in MASKED:
            raise ActionError("param 'key' is masked (llmdeck never stores a raw key): name the key by "
                              "'key_alias' or 'key_hash'")
        return {"key": hash_token(key)}
    for name, field in (("key_hash", "key"), ("key_alias", "key_alias")):
        value = params.get(name)
        if isinstance(value, str) and value and value not in MASKED:
            return {field: value}
    raise ActionError("param 'key_alias' (or 'key') is required")


def _restore_ident(params: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, str]:
    """How a restore names the key: its alias if the action used one, else the hash read before
    (so an action given a raw key, stored masked, can still be undone)."""
    alias = params.get("key_alias")
    if isinstance(alias, str) and alias and alias not in MASKED:
        return {"key_alias": alias}
    token = before.get("token")
    if isinstance(token, str) and token and token not in MASKED and not is_raw_key(token):
        return {"key_hash": token}
    ident = _key_ident(params)
    return {"key_hash": ident["key"]} if "key" in ident else ident


def _key_target(params: Mapping[str, Any]) -> str:
    ident = _key_ident(params)
    return ident.get("key_alias") or f"key {ident['key'][:16]}"


def _token_of(row: Mapping[str, Any], params: Mapping[str, Any], adapter: LiteLLMAdapter) -> str:
    """The key's sha256 hash (the proxy's `token`): what a block and a restore name it by."""
    token = row.get("token") or _key_ident(params).get("key")
    if not isinstance(token, str) or not token:
        raise ActionError(f"LiteLLM gateway {adapter.gateway} did not say which key {_key_target(params)} is")
    return hash_token(token)


async def _key_row(admin: LiteLLMAdmin, params: Mapping[str, Any]) -> dict[str, Any]:
    ident = _key_ident(params)
    if "key" in ident:
        return await admin.key_info(ident["key"])
    return await admin.key_by_alias(ident["key_alias"])


# -- limits ---------------------------------------------------------------------------------------


class _Limits(LiteLLMAdapter):
    fields: tuple[str, ...] = ()

    def desired(self, params: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
        wanted = {f: _limit(params, f) for f in self.fields if f in params}
        if not wanted:
            raise ActionError(f"give at least one of {', '.join(self.fields)}")
        return {**current, **{f: current.get(f) for f in self.fields}, **wanted}

    def _changes(self, current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
        return {f: desired[f] for f in self.fields if f in desired and desired[f] != current.get(f)}


class KeyLimits(_Limits):
    kind = "litellm.key_limits"
    fields = ("tpm_limit", "rpm_limit", "max_parallel_requests")

    def target(self, params: Mapping[str, Any]) -> str:
        return _key_target(params)

    async def read(self, params: Mapping[str, Any]) -> dict[str, Any]:
        row = await self._read(lambda: _key_row(self.admin, params))
        return {**{f: row.get(f) for f in self.fields}, "token": _token_of(row, params, self)}

    def requests(self, params: Mapping[str, Any], current: Mapping[str, Any],
                 desired: Mapping[str, Any]) -> Sequence[PlannedRequest]:
        changes = self._changes(current, desired)
        write = LiteLLMAdmin.update_key_request(_key_ident(params), changes)
        return [self._planned(write)] if changes else []

    def restore_params(self, params: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, Any] | None:
        return {**_restore_ident(params, before), **{f: before.get(f) for f in self.fields}}


class TeamLimits(_Limits):
    kind = "litellm.team_limits"
    fields = ("tpm_limit", "rpm_limit")

    def target(self, params: Mapping[str, Any]) -> str:
        return text_param(params, "team_id")

    async def read(self, params: Mapping[str, Any]) -> dict[str, Any]:
        no_raw_key(params, "team_id")
        row = await self._read(lambda: self.admin.team_info(text_param(params, "team_id")))
        return {f: row.get(f) for f in self.fields}

    def requests(self, params: Mapping[str, Any], current: Mapping[str, Any],
                 desired: Mapping[str, Any]) -> Sequence[PlannedRequest]:
        changes = self._changes(current, desired)
        team = text_param(params, "team_id")
        return [self._planned(LiteLLMAdmin.update_team_request(team, changes))] if changes else []

    def restore_params(self, params: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, Any] | None:
        return {"team_id": text_param(params, "team_id"), **{f: before.get(f) for f in self.fields}}


# -- blocks ---------------------------------------------------------------------------------------


def _blocked(params: Mapping[str, Any]) -> bool:
    value = params.get("blocked", True)
    if not isinstance(value, bool):
        raise ActionError(f"param 'blocked': expected true or false, got {value!r}")
    return value


class KeyBlock(LiteLLMAdapter):
    kind = "litellm.key_block"

    def target(self, params: Mapping[str, Any]) -> str:
        return _key_target(params)

    async def read(self, params: Mapping[str, Any]) -> dict[str, Any]:
        row = await self._read(lambda: _key_row(self.admin, params))
        return {"blocked": bool(row.get("blocked")), "token": _token_of(row, params, self)}

    def desired(self, params: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
        return {**current, "blocked": _blocked(params)}

    def requests(self, params: Mapping[str, Any], current: Mapping[str, Any],
                 desired: Mapping[str, Any]) -> Sequence[PlannedRequest]:
        if bool(current.get("blocked")) == desired["blocked"]:
            return []
        write = LiteLLMAdmin.block_key_request(str(current["token"]), bool(desired["blocked"]))
        return [self._planned(write)]

    def restore_params(self, params: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, Any] | None:
        return {**_restore_ident(params, before), "blocked": bool(before.get("blocked"))}


class TeamBlock(LiteLLMAdapter):
    kind = "litellm.team_block"

    def target(self, params: Mapping[str, Any]) -> str:
        return text_param(params, "team_id")

    async def read(self, params: Mapping[str, Any]) -> dict[str, Any]:
        no_raw_key(params, "team_id")
        row = await self._read(lambda: self.admin.team_info(text_param(params, "team_id")))
        return {"blocked": bool(row.get("blocked"))}

    def desired(self, params: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
        return {"blocked": _blocked(params)}

    def requests(self, params: Mapping[str, Any], current: Mapping[str, Any],
                 desired: Mapping[str, Any]) -> Sequence[PlannedRequest]:
        if bool(current.get("blocked")) == desired["blocked"]:
            return []
        team = text_param(params, "team_id")
        return [self._planned(LiteLLMAdmin.block_team_request(team, bool(desired["blocked"])))]

    def restore_params(self, params: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, Any] | None:
        return {"team_id": text_param(params, "team_id"), "blocked": bool(before.get("blocked"))}


# -- registering ----------------------------------------------------------------------------------


def _factory(cls: type[LiteLLMAdapter]) -> Callable[[AdapterContext], Adapter]:
    def build(context: AdapterContext) -> Adapter:
        adapter: Adapter = cls(admin_for(context))  # type: ignore[assignment]
        return adapter
    return build


KINDS: tuple[type[LiteLLMAdapter], ...] = (KeyLimits, TeamLimits, KeyBlock, TeamBlock, Fallbacks,
                                            ModelParams)
for _cls in KINDS:
    register(_cls.kind, _factory(_cls))
