"""The demo gateway's world: what its admin state is seeded with, and how changes move the levers.

The demo's LiteLLM admin API (console/demo/gateway_admin.py, served by
console/demo/endpoints.py) starts from the simulator's own world: one team per tenant
(`team_id` = the tenant's name, the name the spans carry), one virtual key per tenant
(alias `<tenant>-key`), one deployment per model group (`demo-<group>`, its
`litellm_params.model` the upstream the traffic model serves it with), no general
fallbacks at the gateway (the demo's application falls back on its own, after its
retries). Each admin change the API accepts comes here (`GatewayWorld.on_change`) and
becomes a new lever state (console/demo/levers.py) from the current chunk of simulated
time on, which no traffic reader has drawn yet:

* team or key limits (`rpm_limit`, `tpm_limit`) cut the tenant's share of its usual
  requests to what the limit lets through at this time of day; `blocked` cuts it to 0;
* general fallbacks for a group route it to the first fallback while its provider fails;
* a deployment's `litellm_params.model` sets the group's upstream (provider, latency).
"""

from __future__ import annotations

import math
import os
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from console.demo import generate
from console.demo.clock import naive_utc
from console.demo.gateway_admin import GatewayAdmin
from console.demo.incident import to_ns
from console.demo.levers import Levers, LeverState
from console.demo.traffic import MODELS, TENANTS, diurnal_rate, litellm_model, model_group_index, upstream_for

ENV_MASTER_KEY = "LLMDECK_DEMO_LITELLM_MASTER_KEY"
"""The environment variable the demo config's `[[actions.litellm]]` names (`env:VAR`)."""
MEAN_TOKENS_PER_REQUEST = (900 * math.exp(0.8**2 / 2) + 20) + (220 * math.exp(0.7**2 / 2) + 5)
"""Mean input + output tokens of a demo call (the traffic model's log-normals), for `tpm_limit`."""


@dataclass(frozen=True)
class SeedTeam:
    team_id: str
    team_alias: str


@dataclass(frozen=True)
class SeedKey:
    key_alias: str
    team_id: str


@dataclass(frozen=True)
class SeedDeployment:
    model_name: str
    model_id: str
    litellm_model: str


def seed_teams() -> list[SeedTeam]:
    """One team per tenant of the traffic model (team_id = the tenant's name in the spans)."""
    return [SeedTeam(name, name) for name, _ in TENANTS]


def seed_keys() -> list[SeedKey]:
    """One virtual key per tenant, named by its alias (the raw key is generated per run)."""
    return [SeedKey(key_alias(name), name) for name, _ in TENANTS]


def seed_deployments() -> list[SeedDeployment]:
    """One deployment per model group, served by the traffic model's own upstream."""
    return [SeedDeployment(m[1], deployment_id(m[1]), litellm_model(i)) for i, m in enumerate(MODELS)]


def key_alias(tenant: str) -> str:
    return f"{tenant}-key"


def deployment_id(group: str) -> str:
    return f"demo-{group}"


_WEIGHTS = {name: weight / sum(w for _, w in TENANTS) for name, weight in TENANTS}


@dataclass(frozen=True)
class _Limits:
    rpm: float | None = None
    tpm: float | None = None
    blocked: bool = False


class GatewayWorld:
    """Turns the demo gateway's accepted admin changes into lever states (thread-safe).

    `on_change` is called by the admin API's handler thread (after GatewayAdmin released
    its lock); it reads only the row it is given and this object's own record of limits,
    routes and deployments, then adds one whole state to `levers` (under this object's lock,
    so two changes at once each leave a state that holds both).
    """

    def __init__(self, levers: Levers, rate: float, clock: Callable[[], datetime]) -> None:
        self.levers = levers
        self.rate = rate
        """The plan's mean user requests per second (a tenant's usual rate is its share of it)."""
        self.clock = clock
        self._lock = threading.Lock()
        self._teams: dict[str, _Limits] = {}
        self._keys: dict[str, _Limits] = {}  # by tenant
        self._fallbacks: dict[str, str] = {}
        self._upstreams: dict[str, str] = {}

    def on_change(self, kind: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
        """GatewayAdmin's callback: one accepted change (kind "key" | "team" | "model" | "fallbacks")."""
        if kind == "team":
            self.team_changed(after)
        elif kind == "key":
            self.key_changed(after)
        elif kind == "model":
            self.deployment_changed(after)
        elif kind == "fallbacks" and after is not None:
            models = after.get("fallback_models")
            self.fallbacks_changed(str(after.get("model", "")),
                                   [str(m) for m in models] if isinstance(models, list) else None,
                                   str(after.get("fallback_type") or "general"))

    # -- what the admin API reports -------------------------------------------------

    def team_changed(self, row: Mapping[str, Any] | None) -> None:
        """A team row after a change (`team_id`, `rpm_limit`, `tpm_limit`, `blocked`)."""
        if row is None or str(row.get("team_id", "")) not in _WEIGHTS:
            return
        with self._lock:
            self._teams[str(row["team_id"])] = _limits(row)
            self._apply()

    def key_changed(self, row: Mapping[str, Any] | None) -> None:
        """A key row after a change; its tenant is its `team_id` (or its alias `<tenant>-key`)."""
        if row is None:
            return
        tenant = str(row.get("team_id") or "")
        if tenant not in _WEIGHTS:
            tenant = str(row.get("key_alias") or "").removesuffix("-key")
        if tenant not in _WEIGHTS:
            return
        with self._lock:
            self._keys[tenant] = _limits(row)
            self._apply()

    def fallbacks_changed(self, model: str, fallback_models: list[str] | None,
                          fallback_type: str = "general") -> None:
        """A group's general fallbacks set (or deleted: None / []): the route to the first one."""
        if fallback_type != "general" or model_group_index(model) is None:
            return
        with self._lock:
            targets = [m for m in fallback_models or [] if model_group_index(m) is not None]
            if targets:
                self._fallbacks[model] = targets[0]
            else:
                self._fallbacks.pop(model, None)
            self._apply()

    def deployment_changed(self, row: Mapping[str, Any] | None) -> None:
        """A deployment after a change: its group (`model_name`) is served by its `litellm_params.model`."""
        if row is None:
            return
        group = str(row.get("model_name") or "")
        params = row.get("litellm_params")
        if model_group_index(group) is None or not isinstance(params, Mapping):
            return
        with self._lock:
            self._upstreams[group] = str(params.get("model") or "")
            self._apply()

    # -- internals -------------------------------------------------------------------

    def _apply(self) -> None:
        now = naive_utc(self.clock())
        t_ns = to_ns(now)
        state = LeverState()
        for tenant in sorted(set(self._teams) | set(self._keys)):
            share = min(self._share(tenant, self._teams.get(tenant), t_ns),
                        self._share(tenant, self._keys.get(tenant), t_ns))
            state = state.with_share(tenant, share)
        for group, to in sorted(self._fallbacks.items()):
            state = state.with_route(group, to)
        for group, model in sorted(self._upstreams.items()):
            index = model_group_index(group)
            if index is None or model == litellm_model(index):
                continue  # its own deployment: the traffic model's own profile
            state = state.with_upstream(group, upstream_for(model, MODELS[index][3]))
        # from the chunk holding `now`: every reader has drawn only chunks before its own now
        self.levers.change(generate.chunk_start_ns(generate.chunk_of(t_ns)), state)

    def _share(self, tenant: str, limits: _Limits | None, t_ns: int) -> float:
        if limits is None:
            return 1.0
        if limits.blocked:
            return 0.0
        rpm = self.rate * diurnal_rate(t_ns) * 60 * _WEIGHTS[tenant]  # its usual requests a minute
        share = 1.0
        if limits.rpm is not None:
            share = min(share, limits.rpm / rpm)
        if limits.tpm is not None:
            share = min(share, limits.tpm / (rpm * MEAN_TOKENS_PER_REQUEST))
        return max(0.0, min(1.0, share))


def _limits(row: Mapping[str, Any]) -> _Limits:
    def number(name: str) -> float | None:
        value = row.get(name)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    return _Limits(number("rpm_limit"), number("tpm_limit"), row.get("blocked") is True)


def build_admin(world: GatewayWorld, master_key: str) -> GatewayAdmin:
    """The demo gateway's admin API, seeded with the simulator's world, its changes moving `world`.

    The tenants' raw virtual keys are made here and kept nowhere else: actions name keys by
    alias, and nothing in the demo calls the gateway with a tenant's key.
    """
    admin = GatewayAdmin(master_key, on_change=world.on_change)
    for team in seed_teams():
        admin.add_team(team.team_id, team_alias=team.team_alias)
    for key in seed_keys():
        admin.add_key(f"sk-{secrets.token_urlsafe(18)}", key_alias=key.key_alias, team_id=key.team_id)
    for dep in seed_deployments():
        admin.add_deployment(dep.model_name, {"model": dep.litellm_model}, model_id=dep.model_id)
    return admin


def install_master_key() -> str:
    """A fresh random master key in this process's environment (the config's `env:` ref); never printed."""
    key = f"sk-demo-{secrets.token_urlsafe(24)}"
    os.environ[ENV_MASTER_KEY] = key
    return key


def forget_master_key(key: str) -> None:
    """Take `install_master_key`'s key out of the environment again (if it still holds it)."""
    if os.environ.get(ENV_MASTER_KEY) == key:
        del os.environ[ENV_MASTER_KEY]
