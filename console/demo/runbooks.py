"""The demo's own runbook: switch-provider as the scripted incident needs it.

The built-in `switch-provider` (console/data/runbooks/) asks for the model group and its
fallbacks, which a real gateway's operator knows and the console cannot guess. In the
demo the incident is scoped to a provider (the anthropic SLOs page), and anthropic
serves two model groups; so the demo overrides the action (the desk lets a user runbook
directory override a built-in by name) with one that takes the provider, prefilled from
the incident, and falls back to `gpt-4o` unless told otherwise: one action moves every
anthropic group (L's `litellm.fallbacks` plans one POST /fallback per group). It is
dangerous, so the confirmation asks for the provider's name typed out.

The file is written into the demo's own directory (`write_demo_runbooks`), named by the
demo config's `[actions] runbook_dir`; nothing is written to the user's config dir.
"""

from __future__ import annotations

from pathlib import Path

RUNBOOK_FILE = "demo-routing.toml"
DEMO_FALLBACK = "gpt-4o"
"""Where the demo's switch-provider sends a failing provider's groups (an OpenAI group)."""

DEMO_RUNBOOK = f"""\
# llmdeck demo: switch every model group of a failing provider to a fallback group.
# Written by `llmdeck demo` into its own directory; overrides the built-in switch-provider.

[runbook]
name = "demo-routing"
title = "Demo: move traffic off a failing provider"
description = "Set general fallbacks on the demo gateway for every model group the provider serves."
tags = ["demo", "litellm", "provider"]

[[action]]
name = "switch-provider"
title = "Switch a provider's model groups to fallbacks"
description = \"""POST /fallback for each model group with a deployment on the provider: \\
while it fails, the gateway serves them from the fallbacks. Undo removes them.\"""
adapter = "litellm.fallbacks"
role = "responder"
dangerous = true
target = "provider"
[action.params.provider]
type = "str"
required = true
help = "the failing provider (anthropic, openai, gemini, mistral)"
[action.params.fallback_models]
type = "list"
default = ["{DEMO_FALLBACK}"]
help = "model groups to fall back to, in order (a,b)"
[action.params.fallback_type]
type = "enum"
choices = ["general", "context_window", "content_policy"]
default = "general"
"""


def write_demo_runbooks(directory: Path) -> Path:
    """Write the demo's runbook into `directory` (created 0700 if missing); the file's path."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / RUNBOOK_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(DEMO_RUNBOOK, encoding="utf-8")
    tmp.replace(path)
    return path
