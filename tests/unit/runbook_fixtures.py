"""A real adapter over a real loopback server, for the choke point's tests (no mocks of the desk).

`TeamLimits` (kind `test.team_limits`) speaks the LiteLLM admin API of the recording server
in tests/faults/litellm_admin_server.py over httpx: GET /team/info to read, POST
/team/update to send, with `Idempotency-Key` and `LiteLLM-Changed-By`. It is deliberately
small and independent of the production adapters, so these tests check the desk, not them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from console import adapters
from console.action_types import ActionError, PlannedRequest, SendError
from console.adapters import AdapterContext
from console.runbook_files import ActionSpec, RunbookError, load_file

KIND = "test.team_limits"
FIELDS = ("tpm_limit", "rpm_limit")

RUNBOOK = """\
[runbook]
name = "test-throttle"
title = "Throttle a team (test adapter)"

[[action]]
name = "throttle-team"
title = "Throttle a team"
adapter = "test.team_limits"
gateway = "gw"
role = "responder"
target = "team_id"
[action.params.team_id]
type = "str"
required = true
[action.params.tpm_limit]
type = "int"
min = 0
[action.params.rpm_limit]
type = "int"
min = 0
[action.params.for]
type = "duration"

[[action]]
name = "cut-team"
title = "Cut a team to zero (dangerous, admin)"
adapter = "test.team_limits"
gateway = "gw"
role = "admin"
dangerous = true
target = "team_id"
[action.params.team_id]
type = "str"
required = true
[action.params.tpm_limit]
type = "int"
fixed = true
default = 0
"""


class TeamLimits:
    kind = KIND
    readable = True

    def __init__(self, context: AdapterContext) -> None:
        gateway = next(g for g in context.config.actions.litellm if g.name == context.gateway)
        assert context.secret is not None
        key = context.secret(gateway.admin_key_ref)
        self._split = bool(context.options.get("split"))  # one request per field: partial failures
        self._client = httpx.AsyncClient(base_url=gateway.url, headers={"Authorization": f"Bearer {key}"},
                                          timeout=httpx.Timeout(5.0), transport=context.transport)

    def target(self, params: Mapping[str, Any]) -> str:
        return str(params["team_id"])

    async def read(self, params: Mapping[str, Any]) -> dict[str, Any]:
        answer = await self._client.get("/team/info", params={"team_id": params["team_id"]})
        if answer.status_code == 404:
            raise ActionError(f"no team {params['team_id']!r}")
        answer.raise_for_status()
        info = answer.json()["team_info"]
        return {f: info.get(f) for f in FIELDS}

    def desired(self, params: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
        return {f: params[f] for f in FIELDS if f in params}

    def requests(self, params: Mapping[str, Any], current: Mapping[str, Any],
                 desired: Mapping[str, Any]) -> Sequence[PlannedRequest]:
        parts = [{f: v} for f, v in desired.items()] if self._split else [dict(desired)]
        bodies = [json.dumps({"team_id": params["team_id"], **part}, sort_keys=True) for part in parts]
        return [PlannedRequest("POST", f"POST /team/update {b}", path="/team/update", body_json=b)
                for b in bodies]

    async def send(self, request: PlannedRequest, *, idempotency_key: str, changed_by: str) -> str:
        try:
            answer = await self._client.request(
                request.method, request.path, content=request.body_json,
                headers={"Content-Type": "application/json", "Idempotency-Key": idempotency_key,
                         "LiteLLM-Changed-By": changed_by})
        except (httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise SendError(f"no answer ({type(exc).__name__})", unsure=True) from None
        except httpx.ConnectError as exc:
            raise SendError(f"cannot connect: {exc}") from None
        if answer.status_code >= 400:
            raise SendError(f"HTTP {answer.status_code}: {answer.text[:200]}", status=answer.status_code)
        return f"HTTP {answer.status_code}"

    def restore_params(self, params: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, Any] | None:
        return {"team_id": params["team_id"], **{f: before.get(f) for f in FIELDS if f in before}}

    async def aclose(self) -> None:
        await self._client.aclose()


adapters.register(KIND, TeamLimits)


def catalog(directory: Path, text: str = RUNBOOK) -> dict[str, ActionSpec]:
    """The actions of one runbook file written to `directory`."""
    file = directory / "test.toml"
    file.write_text(text)
    problems: list[str] = []
    book = load_file(file, False, problems)
    if book is None:
        raise RunbookError(problems)
    return {a.name: a for a in book.actions}
