"""The LiteLLM admin API's documented shapes for `GatewayAdmin`: fields, error bodies, merge-patch.

Split from console/demo/gateway_admin.py (the state machine) so each stays small. Error bodies
are the proxy's three kinds (API_SHAPES.md §4): ProxyException `{"error": {message, type, param,
code}}`, HTTPException `{"detail": ...}`, validation 422 `{"detail": [{type, loc, msg, input}]}`.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

Reply = tuple[int, Any]

KEY_FIELDS = frozenset({
    "key_alias", "max_budget", "soft_budget", "budget_duration", "tpm_limit", "rpm_limit", "tpd_limit",
    "max_parallel_requests", "model_tpm_limit", "model_rpm_limit", "model_max_budget", "models", "blocked",
    "metadata", "duration", "guardrails", "tags", "team_id"})
TEAM_FIELDS = frozenset({
    "team_alias", "tpm_limit", "rpm_limit", "max_budget", "soft_budget", "budget_duration", "models",
    "blocked", "metadata", "model_rpm_limit", "model_tpm_limit", "team_member_rpm_limit",
    "team_member_tpm_limit", "team_member_budget", "router_settings"})
NON_NEGATIVE = ("tpm_limit", "rpm_limit", "tpd_limit", "max_parallel_requests")
FALLBACK_KEYS = {"general": "fallbacks", "context_window": "context_window_fallbacks",
                 "content_policy": "content_policy_fallbacks"}
SECRET_PARAMS = frozenset({"api_key", "aws_access_key_id", "aws_secret_access_key", "aws_session_token",
                           "vertex_credentials", "client_secret", "azure_ad_token"})
"""`litellm_params` the proxy strips from `/model/info` answers."""
BOOKKEEPING = frozenset({"updated_at", "updated_by"})


class AdminError(Exception):
    """An answer other than 200, in one of the proxy's documented error shapes."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def proxy_error(status: int, message: str, type_: str, param: str | None = None) -> AdminError:
    error = {"message": message, "type": type_, "param": param, "code": str(status)}
    return AdminError(status, {"error": error})


def http_error(status: int, detail: Any) -> AdminError:
    return AdminError(status, {"detail": detail})


def invalid(field: str, message: str, value: Any = None, kind: str = "value_error") -> AdminError:
    loc = ["body", *field.split(".")]
    return AdminError(422, {"detail": [{"type": kind, "loc": loc, "msg": message, "input": value}]})


def hash_token(raw: str) -> str:
    """The proxy's stored form of a virtual key (sha256 hex); a hash passes through unchanged."""
    return raw if not raw.startswith("sk-") else hashlib.sha256(raw.encode()).hexdigest()


def strip_bookkeeping(row: Mapping[str, Any], bookkeeping: bool) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in row.items() if bookkeeping or k not in BOOKKEEPING}



def as_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise AdminError(422, {"detail": [{"type": "model_attributes_type", "loc": ["body"],
                                           "msg": "Input should be a valid dictionary or object",
                                           "input": body}]})
    return body


def known_fields(fields: Mapping[str, Any], allowed: frozenset[str], what: str) -> dict[str, Any]:
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"unknown {what} field(s): {', '.join(sorted(unknown))}")
    return dict(fields)


def merge_patch(body: Mapping[str, Any], allowed: frozenset[str]) -> dict[str, Any]:
    """The merge-patch: the allowed fields present in the body (an explicit null clears one)."""
    patch = {k: v for k, v in body.items() if k in allowed}
    for name in NON_NEGATIVE:
        value = patch.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid(name, "Input should be a valid integer", value, "int_type")
        if value < 0:
            raise invalid(name, "Input should be greater than or equal to 0", value, "greater_than_equal")
    if "blocked" in patch and patch["blocked"] is not None and not isinstance(patch["blocked"], bool):
        raise invalid("blocked", "Input should be a valid boolean", patch["blocked"], "bool_type")
    return patch


def fallbacks_of(rules: Sequence[Mapping[str, Any]], model: str) -> list[str]:
    for rule in rules:
        if model in rule:
            return list(rule[model])
    return []


def public(deployment: Mapping[str, Any]) -> dict[str, Any]:
    """A deployment as `/model/info` shows it: no secret `litellm_params`."""
    out = copy.deepcopy(dict(deployment))
    out["litellm_params"] = {k: v for k, v in out["litellm_params"].items() if k not in SECRET_PARAMS}
    return out


def without_stamp(deployment: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(deployment))
    for name in BOOKKEEPING:
        out["model_info"].pop(name, None)
    return out


Change = tuple[str, dict[str, Any], dict[str, Any]]


def patch_deployment(row: dict[str, Any], body: Mapping[str, Any], clock: Callable[[], str],
                     by: str | None) -> Change | None:
    """`PATCH /model/{id}/update` on one deployment row, in place: `model_name`, `blocked`, and
    `litellm_params` merged (a `null` value removes that param). A patch that would leave no
    `litellm_params.model` is refused and the params kept. The change (secrets hidden), or None."""
    params = body.get("litellm_params")
    if params is not None and not isinstance(params, dict):
        raise invalid("litellm_params", "Input should be a valid dictionary", params, "dict_type")
    before = copy.deepcopy(row)
    if isinstance(body.get("model_name"), str) and body["model_name"]:
        row["model_name"] = body["model_name"]
    for name, value in (params or {}).items():
        if value is None:
            row["litellm_params"].pop(name, None)
        else:
            row["litellm_params"][name] = value
    if "model" not in row["litellm_params"]:
        row["litellm_params"] = before["litellm_params"]
        raise invalid("litellm_params.model", "Field required", params, "missing")
    if "blocked" in body:
        row["model_info"]["blocked"] = body["blocked"]
    row["model_info"]["updated_at"], row["model_info"]["updated_by"] = clock(), by
    if without_stamp(before) != without_stamp(row):
        return ("model", public(before), public(row))
    return None


def checked_fallback(body: Mapping[str, Any], known: Sequence[str]) -> tuple[str, list[str], str]:
    """(model, fallback_models, fallback_type) of a `POST /fallback` body, or the proxy's error."""
    model, models = body.get("model"), body.get("fallback_models")
    kind = body.get("fallback_type", "general")
    if not isinstance(model, str) or not model.strip():
        raise invalid("model", "Value error, model must not be empty", model)
    if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
        raise invalid("fallback_models", "Value error, fallback_models must contain at least one model",
                      models)
    if len(models) != len(set(models)):
        raise invalid("fallback_models", "Value error, fallback_models must not contain duplicates", models)
    if kind not in FALLBACK_KEYS:
        raise invalid("fallback_type", "Input should be 'general', 'context_window' or 'content_policy'",
                      kind, "literal_error")
    if model not in known:
        raise http_error(404, {"error": f"Model '{model}' not found in router",
                               "available_models": list(known)})
    bad = [m for m in models if m not in known]
    if bad:
        raise http_error(400, {"error": f"Invalid fallback models: {bad}", "available_models": list(known)})
    if model in models:
        raise http_error(400, {"error": f"Model '{model}' cannot be its own fallback"})
    return model, list(models), str(kind)


def _fallback_change(model: str, kind: str, before: list[str], after: list[str]) -> Change:
    return ("fallbacks", {"model": model, "fallback_type": kind, "fallback_models": before},
            {"model": model, "fallback_type": kind, "fallback_models": after})


def set_fallback_rule(router: dict[str, Any], model: str, models: list[str],
                      kind: str) -> tuple[tuple[int, Any], Change | None]:
    """Replace `model`'s rule in place, or append one (as the proxy does); the answer and the change."""
    rules = router[FALLBACK_KEYS[kind]]
    before = fallbacks_of(rules, model)
    updated = bool(before)
    router[FALLBACK_KEYS[kind]] = ([{model: list(models)} if model in r else r for r in rules]
                                   if updated else [*rules, {model: list(models)}])
    change = _fallback_change(model, kind, before, list(models)) if before != models else None
    said = f"Fallback configuration {'updated' if updated else 'created'} successfully"
    answer = {"model": model, "fallback_models": list(models), "fallback_type": kind, "message": said}
    return (200, answer), change


def delete_fallback_rule(router: dict[str, Any], model: str, kind: str) -> tuple[tuple[int, Any], Change]:
    rules = router[FALLBACK_KEYS[kind]]
    kept = [r for r in rules if model not in r]
    if len(kept) == len(rules):
        raise http_error(404, {"error": f"No {kind} fallbacks configured for model '{model}'"})
    before = fallbacks_of(rules, model)
    router[FALLBACK_KEYS[kind]] = kept
    answer = {"model": model, "fallback_type": kind, "message": "Fallback configuration deleted successfully"}
    return (200, answer), _fallback_change(model, kind, before, [])


def router_settings_answer(router: Mapping[str, Any]) -> dict[str, Any]:
    """`GET /router/settings`: `fields` (name, type, value...) and `current_values`."""
    fields = [{"field_name": name, "field_type": type(value).__name__, "field_value": copy.deepcopy(value),
               "field_description": "", "field_default": None,
               "ui_field_name": name.replace("_", " ").title()} for name, value in router.items()]
    return {"fields": fields, "current_values": copy.deepcopy(dict(router))}
