"""The `[actions]` section: where runbook actions may act, who may run them, and when not to.

Read by the choke point (`console.runbooks.ActionDesk`) on every apply, never by panels
to decide anything: `prod = true` makes the desk read-only unless started with `--write`;
roles map the OS user (or one of its groups, `group:<name>`) to viewer, responder or
admin, the highest mapping winning. The systems actions act on are named here once
(`[[actions.litellm]]`, `[[actions.http]]`) with their secrets by reference only.
Re-exported by `console.config`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TypeVar

from pydantic import Field, field_validator

from console.action_types import ROLE_ORDER
from console.config_base import HttpUrl, KeyRef, NonEmpty, _Section
from console.config_sources import PlainHeader

RoleName = Literal["viewer", "responder", "admin"]


class LiteLLMGateway(_Section):
    """A LiteLLM proxy whose admin API the built-in actions change (keys, teams, models, fallbacks)."""

    name: NonEmpty
    """Named by runbook actions (`gateway = "..."`) and shown in every plan."""
    url: HttpUrl
    """Base URL of the proxy, for example `http://litellm:4000`."""
    admin_key_ref: KeyRef
    """Where the admin key lives (`keyring:SERVICE/NAME` or `env:VAR`), sent as
    `Authorization: Bearer`; prefer a scoped key over the master key."""
    timeout_seconds: float = Field(default=10, gt=0, le=120)
    """Per-request timeout; a mutating request that times out is never retried (its outcome
    is "unknown" until verified)."""


class HttpTarget(_Section):
    """A system templated `http.request` actions send to (a prompt registry, feature flags, paging)."""

    name: NonEmpty
    """Named by runbook actions (`gateway = "..."`)."""
    url: HttpUrl
    """Base URL; an action's path template is relative to it."""
    headers: dict[str, PlainHeader] = {}
    """Request headers that are not secrets."""
    header_refs: dict[str, KeyRef] = {}
    """Headers whose values are secrets: header name -> key reference."""
    timeout_seconds: float = Field(default=10, gt=0, le=120)
    """Per-request timeout."""


class ShellSettings(_Section):
    """Allowlisted commands (`shell.exec` actions); off unless enabled and the argv is allowed."""

    enabled: bool = False
    """Run allowlisted commands at all."""
    allow: list[list[NonEmpty]] = []
    """Allowed argv prefixes, for example `[["kubectl", "rollout", "undo"]]`; a command runs only
    when its argument list (after substitution) starts with one of them."""
    timeout_seconds: float = Field(default=60, gt=0, le=3600)
    """A command still running after this is killed (its outcome is "unknown")."""

    @field_validator("allow")
    @classmethod
    def _prefixes(cls, value: list[list[str]]) -> list[list[str]]:
        for i, prefix in enumerate(value):
            if not prefix:
                raise ValueError(f"allow[{i}] is empty: it would allow every command")
        return value


_Named = TypeVar("_Named", LiteLLMGateway, HttpTarget)


class ActionsSettings(_Section):
    """Runbook actions: the environment, read-only by default in prod, roles and target systems."""

    environment: NonEmpty = "unnamed"
    """The environment's name, shown in every plan and confirmation (`prod`, `staging`)."""
    prod: bool = False
    """A production environment: the desk is read-only unless llmdeck was started with `--write`."""
    runbook_dir: str = ""
    """Directory of user runbook files (`*.toml`); default `$XDG_CONFIG_HOME/llmdeck/runbooks`."""
    default_role: RoleName = "viewer"
    """The role of a user no entry in `roles` names (viewers can plan, not apply)."""
    roles: dict[str, RoleName] = {}
    """OS user -> role, or `"group:<name>"` -> role; the highest role that applies wins."""
    litellm: list[LiteLLMGateway] = []
    """LiteLLM proxies actions act on (`[[actions.litellm]]`)."""
    http: list[HttpTarget] = []
    """Systems templated HTTP actions act on (`[[actions.http]]`)."""
    shell: ShellSettings = ShellSettings()
    """Allowlisted commands (`[actions.shell]`)."""

    @field_validator("roles")
    @classmethod
    def _role_keys(cls, value: dict[str, str]) -> dict[str, str]:
        for who in value:
            if not who.strip() or who.strip() == "group:":
                raise ValueError(f"empty user or group name in roles: {who!r}")
        return value

    @field_validator("litellm", "http")
    @classmethod
    def _unique(cls, value: list[_Named]) -> list[_Named]:
        seen: set[str] = set()
        for entry in value:
            if entry.name in seen:
                raise ValueError(f"name {entry.name!r} is used twice; names must be unique")
            seen.add(entry.name)
        return value

    def role_of(self, user: str, groups: Sequence[str]) -> RoleName:
        """The highest role `roles` gives `user` or any of its `groups`, else `default_role`."""
        found: list[RoleName] = [self.default_role]
        if user in self.roles:
            found.append(self.roles[user])
        found += [self.roles[f"group:{g}"] for g in groups if f"group:{g}" in self.roles]
        return max(found, key=lambda role: ROLE_ORDER[role])

    def gateway_names(self, kind: str) -> list[str]:
        """The configured names for an adapter family (`litellm`, `http`); none for others."""
        if kind == "litellm":
            return [g.name for g in self.litellm]
        if kind == "http":
            return [h.name for h in self.http]
        return []
