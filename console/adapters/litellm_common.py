"""What the LiteLLM runbook adapters share: the base class, parameter checks, the admin client.

Split from console/adapters/litellm.py (which registers the kinds) to keep each module small;
see that module for the kinds and the rules on raw keys and provider secrets.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from connectors.http import HttpPolicy, SourceClient, SourceError
from connectors.litellm_admin import AdminWrite, LiteLLMAdmin, NotFound, is_raw_key
from console.action_types import ActionError, PlannedRequest
from console.adapters import AdapterContext


class LiteLLMAdapter:
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
        answer = await self.admin.admin_write(request.method, request.path, request.body,
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
            said = str(err).removeprefix(f"{self.gateway}: ")  # SourceError text starts with the name
            raise ActionError(f"cannot read the current state from LiteLLM gateway {self.gateway}: "
                              f"{said}") from None

    async def aclose(self) -> None:
        await self.admin.aclose()


# -- parameters -----------------------------------------------------------------------------------


def text_param(params: Mapping[str, Any], name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ActionError(f"param {name!r} is required")
    return value


def no_raw_key(params: Mapping[str, Any], *names: str) -> None:
    for name in names:
        if is_raw_key(params.get(name)):
            raise ActionError(f"param {name!r} looks like a raw key (sk-...): name a key by 'key_alias', "
                              "or pass it as 'key' (a secret param)")


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
