"""The TOML config: pydantic models, loading, environment overrides, and error reports.

One file at `$XDG_CONFIG_HOME/llmdeck/config.toml` (or `--config`, or
`LLMDECK_CONFIG`). A missing default file is not an error: defaults apply; a
file named explicitly must exist. Any setting can be overridden from the
environment as `LLMDECK_<SECTION>__<KEY>` (for example
`LLMDECK_CACHE__RETENTION_DAYS=3`; lists and tables as JSON). Every problem is
reported at once as `<file>:<line>: <key>: <message>` or
`env <VARIABLE>: <key>: <message>`.
"""

from __future__ import annotations

import bisect
import difflib
import inspect
import json
import os
import re
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails

from console import paths

ENV_PREFIX = "LLMDECK_"
CONFIG_FILE_ENV = "LLMDECK_CONFIG"

Loc = tuple[str | int, ...]

# ---------------------------------------------------------------------------
# Value checks shared by the models
# ---------------------------------------------------------------------------

_SECRET_SHAPES = re.compile(
    r"(?<![A-Za-z0-9])(?:sk-|sk_|xox[abprs]-|ghp_|github_pat_|AIza)[A-Za-z0-9_\-]{8,}"
    r"|(?<![A-Za-z0-9])AKIA[0-9A-Z]{16}"
    r"|(?=[A-Za-z_\-]*[0-9])(?=[0-9_\-]*[A-Za-z])[A-Za-z0-9_\-]{32,}"
)
_KEY_REF = re.compile(r"keyring:[^/\s]+/\S+|env:[A-Za-z_][A-Za-z0-9_]*")
SECRET_MESSAGE = (
    "looks like a literal secret; store it in the keyring and reference it "
    "(keyring:SERVICE/NAME) or use env:VAR"
)


def looks_like_secret(value: str) -> bool:
    """True when `value` has the shape of an API key or token (never echo such a value)."""
    return _SECRET_SHAPES.search(value) is not None


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
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class UiSettings(_Section):
    """How the console looks and reacts."""

    refresh_seconds: float = Field(default=5, ge=1)
    """Seconds between panel refreshes; a poll re-arms only after the previous one ends."""
    theme: str = "llmdeck-dark"
    """Textual theme name."""
    keymap: dict[str, str] = {}
    """Key remaps: binding id -> key (for example `quit = "ctrl+q"`)."""


class PrometheusSource(_Section):
    """A Prometheus-compatible HTTP API (Prometheus, Thanos, Mimir, VictoriaMetrics)."""

    name: NonEmpty
    """Label shown in panels and used to refer to this source."""
    url: HttpUrl
    """Base URL, for example `http://prometheus:9090`."""
    timeout_seconds: float = Field(default=5, gt=0)
    """Per-request timeout."""


class AlertmanagerSource(_Section):
    """An Alertmanager whose alerts and silences the console reads and writes."""

    name: NonEmpty
    """Label shown in panels and used to refer to this source."""
    url: HttpUrl
    """Base URL, for example `http://alertmanager:9093`."""


class BillingSource(_Section):
    """A provider billing/usage API read with an admin key kept outside the config."""

    name: NonEmpty
    """Label shown in panels and used to refer to this source."""
    admin_key_ref: KeyRef
    """Admin key reference: `keyring:SERVICE/NAME` or `env:VAR`; never the key itself."""


class LiteLLMSource(_Section):
    """A LiteLLM proxy: spend, model routes, and the gateway actions runbooks apply."""

    name: NonEmpty
    """Label shown in panels and used to refer to this source."""
    url: HttpUrl
    """Proxy base URL."""
    key_ref: KeyRef | None = None
    """Proxy key reference: `keyring:SERVICE/NAME` or `env:VAR`; None when the proxy is open."""


class OtlpFileSource(_Section):
    """OTLP/JSON or Collector file-exporter output picked up from disk."""

    name: NonEmpty
    """Label shown in panels and used to refer to this source."""
    path: NonEmpty
    """Glob of files to ingest, for example `/var/log/otel/*.jsonl`."""


class SourcesSettings(_Section):
    """The outside systems llmdeck reads from; each list may hold several named sources."""

    prometheus: list[PrometheusSource] = []
    """Metrics stores."""
    alertmanager: list[AlertmanagerSource] = []
    """Alert sources."""
    openai_billing: list[BillingSource] = []
    """OpenAI organisation usage/cost APIs."""
    anthropic_billing: list[BillingSource] = []
    """Anthropic organisation usage/cost APIs."""
    litellm: list[LiteLLMSource] = []
    """LiteLLM proxies."""
    otlp_files: list[OtlpFileSource] = []
    """Trace files on disk."""


class CacheSettings(_Section):
    """Where the DuckDB trace cache lives and how long it keeps what."""

    path: Path | None = None
    """Cache file; default `$XDG_CACHE_HOME/llmdeck/cache.duckdb`."""
    retention_days: float | None = Field(default=None, gt=0)
    """Spans older than this are pruned automatically after each ingest; None keeps them."""
    rollup_retention_days: float | None = Field(default=400, gt=0)
    """Rollups outlive spans; they are pruned after this many days."""


class IngestSettings(_Section):
    """Which span attributes carry llmdeck's dimensions, and what is kept."""

    tenant_attributes: list[str] = [
        "llmdeck.tenant",
        "tenant.id",
        "tenant",
        "gen_ai.tenant.id",
        "enduser.id",
        "user.id",
    ]
    """First attribute present (span, then resource) gives the tenant."""
    route_attributes: list[str] = ["llmdeck.route", "http.route", "url.template", "route"]
    """First attribute present gives the route."""
    prompt_id_attributes: list[str] = [
        "llmdeck.prompt.id",
        "gen_ai.prompt.id",
        "gen_ai.prompt.name",
        "prompt.id",
        "prompt.name",
    ]
    """First attribute present gives the prompt id."""
    prompt_version_attributes: list[str] = [
        "llmdeck.prompt.version",
        "gen_ai.prompt.version",
        "prompt.version",
    ]
    """First attribute present gives the prompt version."""
    fallback_attributes: list[str] = ["llmdeck.fallback", "gen_ai.fallback", "fallback.used"]
    """A true value in any of these marks the call as served by a fallback."""
    keep_bodies: bool = False
    """Keep prompt/completion bodies (`gen_ai.input.messages` and friends); off by default."""
    batch_spans: int = Field(default=50_000, ge=100, le=1_000_000)
    """Spans per committed batch (one transaction each)."""


class RedactionRule(_Section):
    """A user redaction rule: a regular expression and the placeholder replacing matches."""

    name: str
    """Rule name, shown in redaction counts."""
    pattern: str
    """Python regular expression; matches are replaced."""
    placeholder: str = "[REDACTED]"
    """Replacement text."""

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"bad regular expression: {exc}") from None
        return value


class RedactionSettings(_Section):
    """PII and secret redaction applied to every attribute and event text at ingest."""

    enabled: bool = True
    """Redaction on or off."""
    builtin: list[str] = ["email", "phone", "card", "ssn", "ip", "secret"]
    """Which built-in detectors run."""
    rules: list[RedactionRule] = []
    """User rules, applied after the built-in detectors."""


class PriceOverride(_Section):
    """A user price (USD per million tokens) that wins over the shipped table."""

    model: str
    """Model name as it appears in spans."""
    provider: str | None = None
    """Provider, when the same model name is sold by several."""
    input: float = Field(ge=0)
    """USD per million input tokens."""
    output: float = Field(ge=0)
    """USD per million output tokens."""
    cache_read: float | None = Field(default=None, ge=0)
    """USD per million cached input tokens; None uses the input price."""
    effective: date = date(2000, 1, 1)
    """First day this price applies."""


class PricingSettings(_Section):
    """User prices layered over the shipped price table."""

    overrides: list[PriceOverride] = []
    """Price overrides; the latest `effective` on or before a span's day wins."""


class Config(_Section):
    """The whole llmdeck configuration."""

    ui: UiSettings = UiSettings()
    sources: SourcesSettings = SourcesSettings()
    cache: CacheSettings = CacheSettings()
    ingest: IngestSettings = IngestSettings()
    redaction: RedactionSettings = RedactionSettings()
    pricing: PricingSettings = PricingSettings()

    def cache_file(self, override: Path | None = None) -> Path:
        """The cache file: `--cache`, then config, then the XDG default."""
        return override or self.cache.path or paths.default_cache_file()


def write_json_schema() -> dict[str, Any]:
    """The JSON Schema of the config file (field docstrings become descriptions)."""
    return Config.model_json_schema()


# ---------------------------------------------------------------------------
# Problems
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with the config, located for a human to fix."""

    where: str
    """`<file>:<line>`, `<file>`, or `env <VARIABLE>`."""
    key: str
    """Dotted key path with list indices (`sources.prometheus[0].url`); empty for the file."""
    message: str

    def __str__(self) -> str:
        if not self.key:
            return f"{self.where}: {self.message}"
        return f"{self.where}: {self.key}: {self.message}"


class ConfigError(Exception):
    """The config cannot be used; `problems` lists everything wrong, one per line in str()."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


def dotted_key(loc: Loc) -> str:
    """`("sources", "prometheus", 0, "url")` -> `sources.prometheus[0].url`."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            bare = re.fullmatch(r"[A-Za-z0-9_-]+", part)
            text += ("." if text else "") + (part if bare else json.dumps(part))
    return text


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config and where it came from (what `llmdeck config check` reports)."""

    config: Config
    file: Path
    file_found: bool
    file_sections: tuple[str, ...]
    """Top-level keys present in the file."""
    env_overrides: tuple[str, ...]
    """Environment variables that overrode a setting."""


def config_file(path: Path | None, env: Mapping[str, str]) -> tuple[Path, bool]:
    """The file to read, and whether it was named (`--config`, `LLMDECK_CONFIG`) so must exist."""
    if path is not None:
        return path.expanduser(), True
    for name, value in env.items():
        if name.upper() == CONFIG_FILE_ENV and value:
            return Path(value).expanduser(), True
    return paths.default_config_file(), False


def load_config(path: Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read, merge with the environment and validate the config; raises ConfigError."""
    return read_config(path, env).config


def read_config(path: Path | None = None, env: Mapping[str, str] | None = None) -> LoadedConfig:
    """Like `load_config`, also saying which file and environment variables were used."""
    env = os.environ if env is None else env
    file, explicit = config_file(path, env)
    text, data, file_problem = _read_toml(file, explicit)
    problems = [] if file_problem is None else [file_problem]
    merged = dict(data or {})
    origins, env_problems = _apply_env(merged, env)
    problems += [((1, 0, problem.where), problem) for problem in env_problems]
    errors: list[ErrorDetails] = []
    if file_problem is None:
        try:
            config = Config.model_validate(merged)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
        else:
            if not problems:
                sections = tuple(data or ())
                found = text is not None
                return LoadedConfig(config, file, found, sections, tuple(origins.values()))
    # Built outside the except block so no traceback carries the rejected input.
    lines = None if text is None else _TomlLines(text)
    for error in errors:
        loc = tuple(error["loc"])
        order, where = _where(loc, file, lines, origins)
        problems.append((order, ConfigProblem(where, dotted_key(loc), _message(error, where))))
    problems.sort(key=lambda item: item[0])
    raise ConfigError([problem for _, problem in problems])


_Order = tuple[int, int, str]
"""Problems sort by line in the file, then by environment variable."""
_Problem = tuple[_Order, ConfigProblem]


def _read_toml(
    file: Path, explicit: bool
) -> tuple[str | None, dict[str, Any] | None, _Problem | None]:
    """The file's text (None when absent) and parsed table, or the problem reading it."""
    try:
        text = file.read_bytes().decode("utf-8")
    except FileNotFoundError:
        if not explicit:
            return None, {}, None
        return None, None, ((0, 0, ""), ConfigProblem(str(file), "", "config file not found"))
    except UnicodeDecodeError as exc:
        return (
            None,
            None,
            ((0, 0, ""), ConfigProblem(str(file), "", f"not UTF-8 text ({exc.reason})")),
        )
    except OSError as exc:
        return (
            None,
            None,
            ((0, 0, ""), ConfigProblem(str(file), "", f"cannot read: {exc.strerror}")),
        )
    try:
        return text, tomllib.loads(text), None
    except tomllib.TOMLDecodeError as exc:
        line, message = _toml_error(exc, text)
        return text, None, ((0, line, ""), ConfigProblem(f"{file}:{line}", "", message))


def _toml_error(exc: tomllib.TOMLDecodeError, text: str) -> tuple[int, str]:
    message = str(exc)
    at = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
    if at:
        return int(at[1]), f"invalid TOML: {message[: at.start()]} (column {at[2]})"
    end = re.search(r"\s*\(at end of document\)$", message)
    if end:
        return text.count("\n") + 1, f"invalid TOML: {message[: end.start()]} (at end of file)"
    return 1, f"invalid TOML: {message}"


def _apply_env(
    data: dict[str, Any], env: Mapping[str, str]
) -> tuple[dict[Loc, str], list[ConfigProblem]]:
    """Merge `LLMDECK_<SECTION>__<KEY>` variables into `data`; returns which key came from where."""
    sections = Config.model_fields
    overrides: list[tuple[list[str], str, str]] = []
    problems: list[ConfigProblem] = []
    for name, value in env.items():
        if not name.upper().startswith(ENV_PREFIX) or name.upper() == CONFIG_FILE_ENV:
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        parts = rest.split("__")
        if len(parts) == 1:
            # Other LLMDECK_ variables belong to other features; flag only a clear slip
            # such as LLMDECK_CACHE_RETENTION_DAYS.
            section, _, field = rest.partition("_")
            model = _model_in(sections[section].annotation) if section in sections else None
            if model is not None and field in model.model_fields:
                fix = f"{ENV_PREFIX}{section}__{field}".upper()
                problems.append(
                    ConfigProblem(f"env {name}", "", f"separate section and key with '__': {fix}")
                )
            continue
        if "" in parts:
            problems.append(ConfigProblem(f"env {name}", "", "empty key between '__'"))
            continue
        overrides.append((parts, name, value))
    origins: dict[Loc, str] = {}
    for parts, name, value in sorted(overrides, key=lambda o: (len(o[0]), o[1])):
        key = dotted_key(tuple(int(p) if p.isdigit() else p for p in parts))
        parsed: Any = value
        if value.strip()[:1] in ("[", "{"):
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError as exc:
                problems.append(ConfigProblem(f"env {name}", key, f"not valid JSON: {exc.msg}"))
                continue
        loc = _set_path(data, parts, parsed)
        if isinstance(loc, str):
            problems.append(ConfigProblem(f"env {name}", key, loc))
        else:
            origins[loc] = name
    return origins, problems


def _set_path(data: dict[str, Any], parts: list[str], value: Any) -> Loc | str:
    """Set `value` at `parts` (list indices by number); the loc set, or why it could not be."""
    node: dict[Any, Any] | list[Any] = data
    loc: list[str | int] = []
    for i, part in enumerate(parts):
        key: Any = part
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                return f"no element [{part}] in the list (give the whole list as JSON)"
            key = int(part)
        loc.append(key)
        if i == len(parts) - 1:
            node[key] = value
            break
        child = node[key] if isinstance(node, list) else node.get(key)
        if not isinstance(child, dict | list):
            child = {}
            node[key] = child
        node = child
    return tuple(loc)


def _where(
    loc: Loc, file: Path, lines: _TomlLines | None, origins: Mapping[Loc, str]
) -> tuple[_Order, str]:
    for end in range(len(loc), 0, -1):
        name = origins.get(loc[:end])
        if name is not None:
            return (1, 0, f"env {name}"), f"env {name}"
    if lines is None or loc not in lines.lines:
        # An unknown section or key the environment introduced (`LLMDECK_FOO__BAR`).
        name = next((n for o, n in origins.items() if o[: len(loc)] == loc), None)
        if name is not None:
            return (1, 0, f"env {name}"), f"env {name}"
    if lines is None:
        return (0, 0, ""), str(file)
    line = lines.line_of(loc) or 1
    return (0, line, ""), f"{file}:{line}"


# ---------------------------------------------------------------------------
# Pydantic errors -> human messages
# ---------------------------------------------------------------------------

_EXPECTED = {
    "float_parsing": "a number",
    "float_type": "a number",
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "date_parsing": "a date (YYYY-MM-DD)",
    "date_type": "a date (YYYY-MM-DD)",
    "date_from_datetime_parsing": "a date (YYYY-MM-DD)",
    "date_from_datetime_inexact": "a date without a time",
    "path_type": "a path",
}
_BOUNDS = {
    "greater_than": ("gt", "must be greater than"),
    "greater_than_equal": ("ge", "must be at least"),
    "less_than": ("lt", "must be less than"),
    "less_than_equal": ("le", "must be at most"),
}


def _message(error: ErrorDetails, where: str) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return _unknown_key(tuple(error["loc"]))
    if kind == "missing":
        return "missing required key"
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    if kind == "string_too_short":
        return "must not be empty"
    if kind in _BOUNDS:
        name, text = _BOUNDS[kind]
        bound = ctx[name]
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)
        return f"{text} {bound}"
    if kind in _EXPECTED:
        message = f"expected {_EXPECTED[kind]}, got {_shown(error.get('input'))}"
        if where.startswith("env ") and kind in ("list_type", "dict_type", "model_type"):
            message += ' (give it as JSON, e.g. ["a", "b"] or {"key": "value"})'
        return message
    return str(error["msg"])


def _shown(value: object) -> str:
    """A short rendering of a rejected value; secret-shaped text is never shown."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        if looks_like_secret(value):
            return "a value that looks like a secret"
        return json.dumps(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, date):
        return "a date"
    return type(value).__name__


def _unknown_key(loc: Loc) -> str:
    model = _model_at(loc[:-1])
    key = loc[-1]
    if model is None or not isinstance(key, str):
        return "unknown key"
    known = list(model.model_fields)
    close = difflib.get_close_matches(key.lower(), known, n=1, cutoff=0.6)
    if close:
        return f"unknown key (did you mean '{close[0]}'?)"
    return f"unknown key (known keys: {', '.join(known)})"


def _model_at(loc: Loc) -> type[BaseModel] | None:
    model: type[BaseModel] | None = Config
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None or part not in model.model_fields:
            return None
        model = _model_in(model.model_fields[part].annotation)
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


# ---------------------------------------------------------------------------
# Locating a key path in TOML text
# ---------------------------------------------------------------------------


class _TomlLines:
    """Line numbers of key paths in TOML text that tomllib already accepted (best effort).

    Tracks `[table]` and `[[array]]` headers (counting array elements), `key =` lines
    with dotted and quoted keys, and arrays and inline tables inside values.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0
        self._newlines = [i for i, c in enumerate(text) if c == "\n"]
        self._arrays: dict[Loc, int] = {}
        self.lines: dict[Loc, int] = {}
        try:
            self._document()
        except (IndexError, ValueError):
            pass  # keep what was found so far

    def line_of(self, loc: Loc) -> int | None:
        """Line of `loc`, else of its nearest enclosing key or table found."""
        for end in range(len(loc), 0, -1):
            line = self.lines.get(loc[:end])
            if line is not None:
                return line
        return None

    def _record(self, loc: Loc, at: int) -> None:
        line = bisect.bisect_left(self._newlines, at) + 1
        for end in range(1, len(loc) + 1):
            self.lines.setdefault(loc[:end], line)

    def _document(self) -> None:
        table: Loc = ()
        text = self._text
        while True:
            self._skip(newlines=True)
            if self._pos >= len(text):
                return
            start = self._pos
            if text.startswith("[[", self._pos):
                self._pos += 2
                keys = self._keys()
                self._expect("]]")
                parent = self._resolve(keys[:-1])
                array = (*parent, keys[-1])
                index = self._arrays.get(array, 0)
                self._arrays[array] = index + 1
                table = (*array, index)
                self._record(table, start)
            elif text[self._pos] == "[":
                self._pos += 1
                table = self._resolve(self._keys())
                self._expect("]")
                self._record(table, start)
            else:
                self._pair(table)
            if self._pos <= start:
                raise ValueError("no progress")

    def _resolve(self, keys: list[str]) -> Loc:
        loc: Loc = ()
        for key in keys:
            loc = (*loc, key)
            count = self._arrays.get(loc)
            if count is not None:
                loc = (*loc, count - 1)
        return loc

    def _pair(self, table: Loc) -> None:
        start = self._pos
        loc = (*table, *self._keys())
        self._expect("=")
        self._record(loc, start)
        self._value(loc)

    def _value(self, loc: Loc) -> None:
        self._skip(newlines=False)
        text = self._text
        for quote in ('"""', "'''"):
            if text.startswith(quote, self._pos):
                end = self._pos + 3
                while not text.startswith(quote, end) or (quote == '"""' and _escaped(text, end)):
                    end += 1
                    if end >= len(text):
                        raise ValueError("unterminated string")
                self._pos = end + 3
                while self._pos < len(text) and text[self._pos] == quote[0]:
                    self._pos += 1
                return
        char = text[self._pos]
        if char in "\"'":
            self._string()
        elif char == "[":
            self._pos += 1
            index = 0
            while True:
                self._skip(newlines=True)
                if text[self._pos] == "]":
                    self._pos += 1
                    return
                self._record((*loc, index), self._pos)
                self._value((*loc, index))
                self._skip(newlines=True)
                if text[self._pos] == ",":
                    self._pos += 1
                    index += 1
        elif char == "{":
            self._pos += 1
            while True:
                self._skip(newlines=True)
                if text[self._pos] == "}":
                    self._pos += 1
                    return
                self._pair(loc)
                self._skip(newlines=True)
                if text[self._pos] == ",":
                    self._pos += 1
        else:
            match = re.compile(r"[^,\]}\n#]+").match(text, self._pos)
            if match is None:
                raise ValueError("no value")
            self._pos = match.end()

    def _keys(self) -> list[str]:
        keys: list[str] = []
        while True:
            self._skip(newlines=False)
            if self._text[self._pos] in "\"'":
                keys.append(self._string())
            else:
                match = re.compile(r"[A-Za-z0-9_-]+").match(self._text, self._pos)
                if match is None:
                    raise ValueError("no key")
                keys.append(match[0])
                self._pos = match.end()
            self._skip(newlines=False)
            if self._text[self._pos] != ".":
                return keys
            self._pos += 1

    def _string(self) -> str:
        text = self._text
        quote = text[self._pos]
        end = self._pos + 1
        while text[end] != quote or (quote == '"' and _escaped(text, end)):
            end += 1
        raw = text[self._pos + 1 : end]
        self._pos = end + 1
        if quote == '"' and "\\" in raw:
            try:
                return str(json.loads(f'"{raw}"'))
            except json.JSONDecodeError:
                return raw
        return raw

    def _expect(self, token: str) -> None:
        self._skip(newlines=False)
        if not self._text.startswith(token, self._pos):
            raise ValueError(f"expected {token}")
        self._pos += len(token)

    def _skip(self, *, newlines: bool) -> None:
        text = self._text
        while self._pos < len(text):
            char = text[self._pos]
            if char in " \t\r" or (newlines and char == "\n"):
                self._pos += 1
            elif char == "#":
                end = text.find("\n", self._pos)
                self._pos = len(text) if end < 0 else end
            else:
                return


def _escaped(text: str, index: int) -> bool:
    """True when the character at `index` is preceded by an odd number of backslashes."""
    count = 0
    while index - count - 1 >= 0 and text[index - count - 1] == "\\":
        count += 1
    return count % 2 == 1
