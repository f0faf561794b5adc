"""What every config model is built from: the frozen base section and the checked value types.

Split from `console.config` so the source models (`console.config_sources`) and the
rest of the config share them without importing each other.
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from console.config_errors import SECRET_MESSAGE, looks_like_secret

# ---------------------------------------------------------------------------
# Value checks shared by the models
# ---------------------------------------------------------------------------

_KEY_REF = re.compile(r"keyring:[^/\s]+/\S+|env:[A-Za-z_][A-Za-z0-9_]*")


def _http_url(value: str) -> str:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError("not a URL") from None
    if not parts.hostname or any(c.isspace() for c in value):
        raise ValueError("not a URL")
    if parts.scheme not in ("http", "https"):
        raise ValueError("not an http(s) URL")
    return value


def _key_ref(value: str) -> str:
    if _KEY_REF.fullmatch(value):
        return value
    if looks_like_secret(value):
        raise ValueError(SECRET_MESSAGE)
    raise ValueError("not a key reference; use keyring:SERVICE/NAME or env:VAR")


HttpUrl = Annotated[str, AfterValidator(_http_url)]
"""An absolute http:// or https:// URL, kept as text."""
KeyRef = Annotated[str, AfterValidator(_key_ref)]
"""Where a secret lives (`keyring:SERVICE/NAME` or `env:VAR`), never the secret itself."""
NonEmpty = Annotated[str, Field(min_length=1)]

# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------


class _Section(BaseModel):
    # Field docstrings become JSON Schema descriptions in `write_json_schema`, not through
    # pydantic's `use_attribute_docstrings`: that reads and parses this module's source at
    # import, ~30-50 ms of every start-up (bench/startup.py).
    model_config = ConfigDict(extra="forbid", frozen=True)
