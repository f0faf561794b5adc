"""XDG locations for llmdeck's config, cache and state files, in one place."""

from __future__ import annotations

import os
from pathlib import Path

APP = "llmdeck"


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var)
    if value and os.path.isabs(value):
        return Path(value)
    return Path.home() / fallback


def config_dir() -> Path:
    """`$XDG_CONFIG_HOME/llmdeck` (default `~/.config/llmdeck`)."""
    return _xdg("XDG_CONFIG_HOME", ".config") / APP


def cache_dir() -> Path:
    """`$XDG_CACHE_HOME/llmdeck` (default `~/.cache/llmdeck`)."""
    return _xdg("XDG_CACHE_HOME", ".cache") / APP


def state_dir() -> Path:
    """`$XDG_STATE_HOME/llmdeck`: audit journal, incidents; never only inside the cache."""
    return _xdg("XDG_STATE_HOME", ".local/state") / APP


def default_config_file() -> Path:
    return config_dir() / "config.toml"


def default_cache_file() -> Path:
    return cache_dir() / "cache.duckdb"


def secrets_dir() -> Path:
    """`$XDG_CONFIG_HOME/llmdeck/secrets`: the plaintext store, used only with `--insecure-storage`."""
    return config_dir() / "secrets"
