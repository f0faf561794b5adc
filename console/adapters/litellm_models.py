"""LiteLLM runbook adapters for routing: `litellm.fallbacks` (switch provider) and
`litellm.model_params` (roll back a deployment). Registered by console/adapters/litellm.py."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

from connectors.litellm_admin import FALLBACK_TYPES, LiteLLMAdmin, is_raw_key
from console.action_types import ActionError, PlannedRequest
from console.adapters.litellm_common import LiteLLMAdapter, text_param

SECRET_LITELLM_PARAMS = frozenset({"api_key", "aws_access_key_id", "aws_secret_access_key",
                                   "aws_session_token", "vertex_credentials", "client_secret",
                                   "azure_ad_token"})




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


class Fallbacks(LiteLLMAdapter):
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
        provider = text_param(params, "provider") if not model else ""
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
            write = (LiteLLMAdmin.set_fallbacks_request(group, wanted, kind) if wanted
                     else LiteLLMAdmin.delete_fallbacks_request(group, kind))
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


class ModelParams(LiteLLMAdapter):
    """A deployment's `litellm_params` (roll back a model: the upstream model, api_base, rpm...)."""

    kind = "litellm.model_params"

    def target(self, params: Mapping[str, Any]) -> str:
        name = params.get("model_name")
        return name if isinstance(name, str) and name else text_param(params, "model_id")

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
        return [self._planned(LiteLLMAdmin.update_model_request(str(current["model_id"]), changes))]

    def restore_params(self, params: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, Any] | None:
        restore: dict[str, Any] = {"model_id": before["model_id"],
                                   "litellm_params": dict(before.get("litellm_params") or {})}
        if isinstance(params.get("model_name"), str):
            restore["model_name"] = params["model_name"]
        return restore

