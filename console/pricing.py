"""Token pricing: the packaged price table, the user's overrides, and name normalisation.

Pure module: no Textual, no panels, no I/O except reading the packaged price
table (`console/data/prices.toml`) through `importlib.resources`.

`PriceTable.load(overrides)` builds the shipped table plus the user's
`[[pricing.overrides]]`. `PriceTable.lookup(provider, model, at)` is called once
per span on the ingest hot path, so every answer (including "unpriced") is
memoised on the raw `(provider, model, at)` arguments: a repeated lookup is one
dict hit. The slow path normalises the names:

* provider: OTel `gen_ai.provider.name` / legacy `gen_ai.system` values
  (`azure.ai.openai`, `aws.bedrock`, `gcp.vertex_ai`, `mistral_ai`, ...) map to
  short names (`azure`, `bedrock`, `vertex_ai`, `mistral`, ...).
* model: lowercase; drop routing prefixes (`openai/`, `bedrock/`,
  `meta-llama/`, ...: everything up to the last `/`), Bedrock ids
  (`us.anthropic.claude-...-v2:0`), and date/version suffixes (`-2024-07-18`,
  `-20241022`, `-latest`, `@20240620`, `-v1:0`, `-001`, `-2411`); Llama
  spellings (`Meta-Llama-3.1-8B-Instruct`, `llama3-1-8b-instruct`,
  `llama-v3p1-8b-instruct`) become `llama-3.1-8b-instruct`.
* match: exact name or alias (first on the name with its suffix, so pinned
  snapshots such as `gpt-4o-2024-05-13` can carry their own price), then the
  longest table name that is a prefix ending at a `-`/`@`/`:`/`_` boundary
  (`gpt-4o-mini-2024-07-18` -> `gpt-4o-mini`, not `gpt-4o`). A prefix match is
  refused when the rest starts with a bare version number (`claude-opus-4-7` is
  not `claude-opus-4`, `gpt-5.1` is not `gpt-5`) or a differently priced
  modality (`gpt-4o-mini-tts`, `-audio`, `-realtime`): an unknown model is left
  unpriced rather than priced wrongly.
* provider as tiebreaker: a model's entries for the span's provider if the
  table has any, else those of the first-listed provider (its list price).
* effective dating: the latest entry with `effective <= at`; none -> None.
* overrides win over the table; a provider-specific override beats one with
  no provider.

Unknown model -> None: the caller stores NULL cost and counts the span as
unpriced. A $0 price is never invented.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Final, TypeVar

if TYPE_CHECKING:
    from console.config import PriceOverride

__all__ = [
    "Price",
    "PriceTable",
    "normalise_model",
    "normalise_provider",
]

_PER_TOKEN: Final = 1e-6
"""Table prices are USD per million tokens."""

_MEMO_MAX: Final = 65_536
"""Bound on memoised lookups; the memo is dropped when full (junk model names)."""


# ---------------------------------------------------------------------------
# Price
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Price:
    """One model's price, USD per million tokens."""

    provider: str
    model: str
    input: float
    output: float
    cache_read: float | None
    effective: date
    source: str
    """`"table:<version>"` for a shipped price, `"override"` for a user override."""

    def cost(self, input_tokens: int, output_tokens: int, cache_read_tokens: int) -> float:
        """USD for one call.

        `input_tokens` INCLUDES cached tokens (OTel GenAI convention), so the
        uncached part is `input_tokens - cache_read_tokens`, floored at 0.
        Cached tokens bill at `cache_read`, or at `input` when the model has no
        cache price. Negative counts are treated as 0.
        """
        cached = cache_read_tokens if cache_read_tokens > 0 else 0
        uncached = input_tokens - cached
        if uncached < 0:
            uncached = 0
        out = output_tokens if output_tokens > 0 else 0
        cache_price = self.input if self.cache_read is None else self.cache_read
        return (uncached * self.input + cached * cache_price + out * self.output) * _PER_TOKEN


# ---------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------

_PROVIDER_ALIASES: Final[Mapping[str, str]] = {
    # OpenAI and Azure
    "openai": "openai",
    "text-completion-openai": "openai",
    "azure": "azure",
    "azure.ai.openai": "azure",
    "az.ai.openai": "azure",
    "azure_openai": "azure",
    "azure-openai": "azure",
    "azure.ai.inference": "azure_ai",
    "az.ai.inference": "azure_ai",
    "azure_ai": "azure_ai",
    # Anthropic and AWS
    "anthropic": "anthropic",
    "aws.bedrock": "bedrock",
    "aws_bedrock": "bedrock",
    "bedrock": "bedrock",
    "bedrock_converse": "bedrock",
    "sagemaker": "sagemaker",
    # Google
    "google": "google",
    "gemini": "google",
    "gcp.gemini": "google",
    "gcp.gen_ai": "google",
    "google_ai_studio": "google",
    "gcp.vertex_ai": "vertex_ai",
    "vertex_ai": "vertex_ai",
    "vertex_ai_beta": "vertex_ai",
    "vertexai": "vertex_ai",
    "vertex": "vertex_ai",
    # Mistral
    "mistral": "mistral",
    "mistral_ai": "mistral",
    "mistralai": "mistral",
    "codestral": "mistral",
    # hosts of open-weight models
    "together": "together",
    "together_ai": "together",
    "togetherai": "together",
    "groq": "groq",
    "fireworks": "fireworks",
    "fireworks_ai": "fireworks",
    "deepinfra": "deepinfra",
    "cerebras": "cerebras",
    "hosted_vllm": "vllm",
    "vllm": "vllm",
    "ollama": "ollama",
    "ollama_chat": "ollama",
    "openrouter": "openrouter",
    "replicate": "replicate",
    # others
    "deepseek": "deepseek",
    "x_ai": "xai",
    "xai": "xai",
    "cohere": "cohere",
    "cohere_chat": "cohere",
    "perplexity": "perplexity",
    "ibm.watsonx.ai": "watsonx",
    "watsonx": "watsonx",
}


def normalise_provider(provider: str | None) -> str | None:
    """OTel / LiteLLM provider spellings -> llmdeck's short provider names.

    Unknown providers are kept (lowercased, trimmed); empty -> None.
    """
    if provider is None:
        return None
    p = provider.strip().lower()
    if not p:
        return None
    return _PROVIDER_ALIASES.get(p, p)


# `us.anthropic.claude-...`, `anthropic.claude-...`, `meta.llama3-1-...`
_BEDROCK_ID = re.compile(
    r"^(?:(?:us|eu|apac|au|ca|jp|us-gov|global)\.)?"
    r"(?:anthropic|meta|mistral|amazon|cohere|ai21|deepseek|openai|qwen|writer)\."
)
# meta-llama-3.1-8b / llama3-1-8b / llama3.1-8b / llama-v3p1-8b -> llama-3.1-8b
_LLAMA = re.compile(r"^(?:meta-)?llama-?v?(\d+)(?:[.p-](\d)(?=-))?-")
_SUFFIXES: Final = (
    re.compile(r"@.*$"),  # Vertex: claude-3-5-sonnet@20240620
    # Bedrock -v1:0, HF -v0.1; a bare -v3 is part of the name (deepseek-v3)
    re.compile(r"-v\d+(?:[.:]\d+)+$"),
    re.compile(r"-latest$"),
    re.compile(r"-\d{4}-\d{2}-\d{2}$"),  # OpenAI -2024-07-18
    re.compile(r"-\d{8}$"),  # Anthropic -20241022
    re.compile(r"-\d{3,4}$"),  # Google -001, Mistral -2411, OpenAI -0125
)
# A prefix match is refused when the rest starts with a bare version number
# (`claude-opus-4-7` is not `claude-opus-4`) or a modality variant priced
# differently (`gpt-4o-mini-tts`, `gpt-4o-audio-preview`). Used with
# Pattern.match(name, pos), so no `^`.
_REFUSED_REST = re.compile(
    r"[-_](?:\d{1,2}|tts|transcribe|audio|realtime|image|vision|search)(?:$|[-.@:_])"
)
_BOUNDARY: Final = frozenset("-@:_")


def _strip_suffixes(name: str) -> tuple[str, ...]:
    """Each stage of stripping date/version suffixes one at a time, outermost first."""
    stages: list[str] = []
    while True:
        for pattern in _SUFFIXES:
            stripped = pattern.sub("", name)
            if stripped and stripped != name:
                name = stripped
                stages.append(name)
                break
        else:
            return tuple(stages)


@dataclass(frozen=True, slots=True)
class _Names:
    exact: tuple[str, ...]
    """Candidates for exact matching, most specific first."""
    base: str
    """Prefix-matching candidate: suffixes stripped."""
    provider_hint: str | None
    """Provider implied by a routing prefix or a Bedrock id."""


def _split_model(model: str) -> _Names:
    s = model.strip().lower()
    hint: str | None = None
    if "/" in s:
        first, _, _ = s.partition("/")
        hint = _PROVIDER_ALIASES.get(first)
        s = s.rsplit("/", 1)[1]
    m = _BEDROCK_ID.match(s)
    if m is not None:
        s = s[m.end() :]
        hint = hint or "bedrock"
    m = _LLAMA.match(s)
    if m is not None:
        major, minor = m.group(1), m.group(2)
        s = f"llama-{major}{'.' + minor if minor else ''}-{s[m.end() :]}"
    stages = _strip_suffixes(s)
    return _Names((s, *stages), stages[-1] if stages else s, hint)


def normalise_model(model: str) -> str:
    """The normalised model name (prefixes and date/version suffixes removed)."""
    return _split_model(model).base


# ---------------------------------------------------------------------------
# The shipped table
# ---------------------------------------------------------------------------

_VERSION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ENTRY_KEYS: Final = frozenset(
    {"provider", "model", "input", "output", "cache_read", "effective", "aliases"}
)


@dataclass(frozen=True, slots=True)
class _Row:
    price: Price
    aliases: tuple[str, ...]


def _as_price(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{what}: expected a non-negative number, got {value!r}")
    return float(value)


def _as_date(value: Any, what: str) -> date:
    if isinstance(value, datetime):
        raise ValueError(f"{what}: expected a date, got a datetime {value!r}")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"{what}: expected a YYYY-MM-DD date, got {value!r}")


def parse_table(text: str) -> tuple[str, tuple[_Row, ...]]:
    """Parse and validate a price table document; returns (version, rows)."""
    doc = tomllib.loads(text)
    version = doc.get("version")
    if not isinstance(version, str) or not _VERSION_RE.match(version):
        raise ValueError(f'price table: version must be "YYYY-MM-DD", got {version!r}')
    _as_date(version, "price table version")
    entries = doc.get("prices")
    if not isinstance(entries, list) or not entries:
        raise ValueError("price table: no [[prices]] entries")
    rows: list[_Row] = []
    seen: set[tuple[str, str, date]] = set()
    for i, entry in enumerate(entries):
        where = f"price table entry {i + 1}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: not a table")
        unknown = set(entry) - _ENTRY_KEYS
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
        provider, model = entry.get("provider"), entry.get("model")
        if not isinstance(provider, str) or not provider.strip():
            raise ValueError(f"{where}: provider must be a non-empty string")
        if not isinstance(model, str) or not model.strip():
            raise ValueError(f"{where}: model must be a non-empty string")
        where = f"{where} ({model})"
        for key in ("input", "output", "effective"):
            if key not in entry:
                raise ValueError(f"{where}: missing {key}")
        cache_read = entry.get("cache_read")
        aliases = entry.get("aliases", [])
        if not isinstance(aliases, list) or not all(
            isinstance(a, str) and a.strip() for a in aliases
        ):
            raise ValueError(f"{where}: aliases must be a list of strings")
        price = Price(
            provider=normalise_provider(provider) or provider,
            model=model.strip().lower(),
            input=_as_price(entry["input"], f"{where}: input"),
            output=_as_price(entry["output"], f"{where}: output"),
            cache_read=None if cache_read is None else _as_price(cache_read, f"{where}: cache"),
            effective=_as_date(entry["effective"], f"{where}: effective"),
            source=f"table:{version}",
        )
        ident = (price.provider, price.model, price.effective)
        if ident in seen:
            raise ValueError(f"{where}: duplicate entry for {ident}")
        seen.add(ident)
        rows.append(_Row(price, tuple(a.strip().lower() for a in aliases)))
    return version, tuple(rows)


@cache
def _shipped() -> tuple[str, tuple[_Row, ...]]:
    text = (resources.files("console") / "data" / "prices.toml").read_text(encoding="utf-8")
    return parse_table(text)


# ---------------------------------------------------------------------------
# PriceTable
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Override:
    provider: str | None
    input: float
    output: float
    cache_read: float | None
    effective: date


_T = TypeVar("_T", Price, _Override)


def _latest(entries: Sequence[_T], at: date) -> _T | None:
    """The entry with the latest `effective <= at` (entries sorted by effective)."""
    found: _T | None = None
    for entry in entries:
        if entry.effective > at:
            break
        found = entry
    return found


class PriceTable:
    """The shipped price table plus user overrides, with a memoised lookup."""

    __slots__ = (
        "version",
        "_base_version",
        "_names",
        "_prefixes",
        "_table",
        "_default",
        "_overrides",
        "_memo",
        "_rows",
    )

    version: str
    """Shipped table version, or `"<version>+overrides"` when overrides are present."""

    def __init__(
        self,
        version: str,
        rows: Sequence[_Row],
        overrides: Sequence[PriceOverride] = (),
    ) -> None:
        self._base_version = version
        self.version = f"{version}+overrides" if overrides else version
        self._rows = tuple(rows)
        self._names: dict[str, str] = {}
        self._table: dict[str, dict[str, list[Price]]] = {}
        self._default: dict[str, str] = {}
        for row in rows:
            key = row.price.model
            for name in (key, *row.aliases):
                owner = self._names.setdefault(name, key)
                if owner != key:
                    raise ValueError(f"price table: name {name!r} used by {owner!r} and {key!r}")
            self._table.setdefault(key, {}).setdefault(row.price.provider, []).append(row.price)
            self._default.setdefault(key, row.price.provider)
        for by_provider in self._table.values():
            for prices in by_provider.values():
                prices.sort(key=lambda p: p.effective)

        self._overrides: dict[str, dict[str | None, list[_Override]]] = {}
        for ov in overrides:
            if not ov.model.strip():
                raise ValueError("pricing override: model must not be empty")
            names = _split_model(ov.model)
            key = self._exact(names) or names.exact[0]
            self._names.setdefault(key, key)
            item = _Override(
                provider=normalise_provider(ov.provider),
                input=float(ov.input),
                output=float(ov.output),
                cache_read=None if ov.cache_read is None else float(ov.cache_read),
                effective=ov.effective,
            )
            self._overrides.setdefault(key, {}).setdefault(item.provider, []).append(item)
        for by_provider_ov in self._overrides.values():
            for items in by_provider_ov.values():
                items.sort(key=lambda o: o.effective)

        # longest first, so the first boundary-respecting hit is the longest prefix
        self._prefixes = sorted(self._names, key=len, reverse=True)
        self._memo: dict[tuple[str | None, str | None, date], Price | None] = {}

    @classmethod
    def load(cls, overrides: Sequence[PriceOverride] = ()) -> PriceTable:
        """The packaged table (`console/data/prices.toml`) plus `overrides`."""
        version, rows = _shipped()
        return cls(version, rows, overrides)

    # -- queries --------------------------------------------------------------

    def lookup(self, provider: str | None, model: str | None, at: date) -> Price | None:
        """The price for `model` (served by `provider`) on `at`, or None if unpriced.

        Memoised on the raw arguments: a repeated call is a single dict hit.
        """
        key = (provider, model, at)
        try:
            return self._memo[key]
        except KeyError:
            pass
        if isinstance(at, datetime):  # would make every span its own memo key
            return self.lookup(provider, model, at.date())
        price = self._resolve(provider, model, at)
        if len(self._memo) >= _MEMO_MAX:
            self._memo.clear()
        self._memo[key] = price
        return price

    def price_tag(self, price: Price) -> str:
        """The price-table version to store with a span priced by `price`.

        A shipped price is tagged with the shipped table version (`"2026-11-01"`);
        a user override with `"<version>+overrides"`.
        """
        if price.source == "override":
            return f"{self._base_version}+overrides"
        return price.source.removeprefix("table:")

    def prices(self) -> tuple[Price, ...]:
        """Every shipped entry, in table order (for listings and tests)."""
        return tuple(row.price for row in self._rows)

    def models(self) -> frozenset[str]:
        """The canonical model names in the shipped table."""
        return frozenset(self._table)

    # -- the slow path --------------------------------------------------------

    def _exact(self, names: _Names) -> str | None:
        for candidate in names.exact:
            key = self._names.get(candidate)
            if key is not None:
                return key
        return None

    def _prefix(self, base: str) -> str | None:
        """The key of the longest name that `base` extends at a boundary.

        If the rest after that longest name is refused (a version number or a
        modality variant), the answer is None: a shorter name would be an even
        looser guess.
        """
        for name in self._prefixes:
            n = len(name)
            if n < len(base) and base[n] in _BOUNDARY and base.startswith(name):
                if _REFUSED_REST.match(base, n):
                    return None
                return self._names[name]
        return None

    def _resolve(self, provider: str | None, model: str | None, at: date) -> Price | None:
        if model is None or not model.strip():
            return None
        names = _split_model(model)
        key = self._exact(names) or self._prefix(names.base)
        if key is None:
            return None
        table = self._table.get(key, {})
        effective_provider = (
            normalise_provider(provider) or names.provider_hint or self._default.get(key)
        )

        overrides = self._overrides.get(key)
        if overrides:
            # a provider-specific override beats one that applies to every provider
            order = (None,) if effective_provider is None else (effective_provider, None)
            for who in order:
                found = _latest(overrides.get(who, ()), at)
                if found is not None:
                    return Price(
                        provider=found.provider or effective_provider or "unknown",
                        model=key,
                        input=found.input,
                        output=found.output,
                        cache_read=found.cache_read,
                        effective=found.effective,
                        source="override",
                    )

        if effective_provider is not None and effective_provider in table:
            price = _latest(table[effective_provider], at)
            if price is not None:
                return price
        default = self._default.get(key)
        if default is None or default == effective_provider:
            return None
        return _latest(table[default], at)
