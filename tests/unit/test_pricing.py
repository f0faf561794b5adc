"""Pricing: the shipped table, model/provider normalisation, lookup rules, cost maths."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from datetime import date, datetime
from importlib import resources

import pytest

from console.config import PriceOverride
from console.pricing import Price, PriceTable, normalise_model, normalise_provider, parse_table

NOW = date(2025, 11, 1)


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.load()


def model_of(table: PriceTable, model: str, provider: str | None = None, at: date = NOW) -> str:
    price = table.lookup(provider, model, at)
    assert price is not None, f"{model!r} via {provider!r} should be priced"
    return price.model


# -- the shipped table ------------------------------------------------------------


def test_shipped_table_parses_with_positive_prices_and_valid_dates() -> None:
    text = (resources.files("console") / "data" / "prices.toml").read_text(encoding="utf-8")
    raw = tomllib.loads(text)
    version, rows = parse_table(text)
    assert version == raw["version"]
    assert date.fromisoformat(version)
    assert len(rows) == len(raw["prices"]) >= 60
    for entry in raw["prices"]:
        assert isinstance(entry["effective"], date), entry  # a TOML date literal
        assert date(2020, 1, 1) <= entry["effective"] <= date.fromisoformat(version), entry
    for row in rows:
        p = row.price
        assert p.input > 0, p
        if "embedding" in p.model:
            assert p.output == 0, p  # embeddings produce no output tokens
        else:
            assert p.output > 0, p
        assert p.cache_read is None or 0 < p.cache_read < p.input, p
        assert p.source == f"table:{version}"
        assert p.model == p.model.lower().strip()


def test_shipped_table_covers_the_mainstream_models(table: PriceTable) -> None:
    required = """
        gpt-4o gpt-4o-mini gpt-4.1 gpt-4.1-mini gpt-4.1-nano o1 o1-mini o3 o3-mini o4-mini
        gpt-5 gpt-5-mini gpt-5-nano gpt-3.5-turbo gpt-4-turbo
        text-embedding-3-small text-embedding-3-large
        claude-opus-4-1 claude-opus-4 claude-sonnet-4-5 claude-sonnet-4 claude-3-7-sonnet
        claude-3-5-sonnet claude-haiku-4-5 claude-3-5-haiku claude-3-haiku
        gemini-2.5-pro gemini-2.5-flash gemini-2.5-flash-lite gemini-2.0-flash gemini-1.5-pro
        gemini-1.5-flash
        mistral-large mistral-medium mistral-small codestral ministral-8b open-mistral-nemo
        llama-3.1-8b-instruct llama-3.1-70b-instruct llama-3.1-405b-instruct
        llama-3.3-70b-instruct llama-4-scout llama-4-maverick mixtral-8x7b
        qwen2.5-72b-instruct deepseek-v3 deepseek-r1
    """.split()
    assert set(required) <= table.models()


def test_every_shipped_name_and_alias_finds_itself(table: PriceTable) -> None:
    version, rows = parse_table(
        (resources.files("console") / "data" / "prices.toml").read_text(encoding="utf-8")
    )
    for row in rows:
        at = row.price.effective
        for name in (row.price.model, *row.aliases):
            price = table.lookup(row.price.provider, name, at)
            assert price is not None and price.model == row.price.model, name


def test_some_model_has_a_dated_price_change(table: PriceTable) -> None:
    dates: dict[str, set[date]] = {}
    for p in table.prices():
        dates.setdefault(p.model, set()).add(p.effective)
    assert any(len(d) >= 2 for d in dates.values())


def test_the_table_comment_points_at_overrides() -> None:
    text = (resources.files("console") / "data" / "prices.toml").read_text(encoding="utf-8")
    head = text[:2000].lower()
    assert "[[pricing.overrides]]" in head
    assert "not authoritative" in head
    assert "list prices" in head


@pytest.mark.parametrize(
    "bad",
    [
        'version = "2026-11"\n[[prices]]\nprovider="a"\nmodel="m"\ninput=1\noutput=1\n'
        "effective=2024-01-01\n",
        'version = "2026-11-01"\n[[prices]]\nprovider="a"\nmodel="m"\ninput=-1\noutput=1\n'
        "effective=2024-01-01\n",
        'version = "2026-11-01"\n[[prices]]\nprovider="a"\nmodel="m"\ninput=1\noutput=1\n'
        'effective="soon"\n',
        'version = "2026-11-01"\n[[prices]]\nprovider="a"\nmodel="m"\ninput=1\noutput=1\n',
        'version = "2026-11-01"\n[[prices]]\nprovider="a"\nmodel="m"\ninput=1\noutput=1\n'
        "effective=2024-01-01\nprice=3\n",
        'version = "2026-11-01"\n',
    ],
)
def test_bad_tables_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_table(bad)


# -- model normalisation and matching --------------------------------------------


def test_exact_match(table: PriceTable) -> None:
    price = table.lookup("openai", "gpt-4o-mini", NOW)
    assert price is not None
    assert (price.provider, price.model, price.input, price.output) == (
        "openai",
        "gpt-4o-mini",
        0.15,
        0.60,
    )


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),  # longest prefix, not gpt-4o
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("GPT-4o", "gpt-4o"),
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("claude-3-5-sonnet@20240620", "claude-3-5-sonnet"),  # Vertex
        ("claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),  # not claude-sonnet-4
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("gemini-1.5-pro-002", "gemini-1.5-pro"),
        ("gemini-2.0-flash-001", "gemini-2.0-flash"),
        ("gemini-2.5-flash-preview-05-20", "gemini-2.5-flash"),
        ("gemini-2.5-flash-lite-preview-06-17", "gemini-2.5-flash-lite"),
        ("mistral-large-2411", "mistral-large"),
        ("mistral-large-latest", "mistral-large"),
        ("codestral-2501", "codestral"),
        ("o3-mini-2025-01-31", "o3-mini"),
        ("o1-2024-12-17", "o1"),
        ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
        ("gpt-4-turbo-2024-04-09", "gpt-4-turbo"),
        ("gpt-4-1106-preview", "gpt-4-turbo"),  # alias
        ("claude-3.5-sonnet", "claude-3-5-sonnet"),  # alias (OpenRouter spelling)
        ("deepseek-chat", "deepseek-v3"),
    ],
)
def test_dated_suffixes_prefixes_and_aliases(table: PriceTable, raw: str, canonical: str) -> None:
    assert model_of(table, raw) == canonical


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("openai/gpt-4o", "gpt-4o"),
        ("azure/gpt-4o-mini", "gpt-4o-mini"),
        ("anthropic/claude-3-5-sonnet-20240620", "claude-3-5-sonnet"),
        ("gemini/gemini-1.5-flash", "gemini-1.5-flash"),
        ("vertex_ai/gemini-2.5-pro", "gemini-2.5-pro"),
        ("mistral/mistral-small-latest", "mistral-small"),
        ("together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo", "llama-3.3-70b-instruct"),
        ("groq/llama-3.1-8b-instant", "llama-3.1-8b-instruct"),
        (
            "fireworks_ai/accounts/fireworks/models/llama-v3p1-70b-instruct",
            "llama-3.1-70b-instruct",
        ),
        ("bedrock/anthropic.claude-3-haiku-20240307-v1:0", "claude-3-haiku"),
    ],
)
def test_litellm_prefixes(table: PriceTable, raw: str, canonical: str) -> None:
    assert model_of(table, raw) == canonical


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("anthropic.claude-3-5-sonnet-20240620-v1:0", "claude-3-5-sonnet"),
        ("anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet"),
        ("us.anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4"),
        ("eu.anthropic.claude-3-7-sonnet-20250219-v1:0", "claude-3-7-sonnet"),
        ("global.anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5"),
        ("meta.llama3-1-405b-instruct-v1:0", "llama-3.1-405b-instruct"),
        ("us.meta.llama4-maverick-17b-instruct-v1:0", "llama-4-maverick"),
        ("mistral.mistral-large-2407-v1:0", "mistral-large"),
        (
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
            "us.anthropic.claude-3-5-haiku-20241022-v1:0",
            "claude-3-5-haiku",
        ),
    ],
)
def test_bedrock_ids(table: PriceTable, raw: str, canonical: str) -> None:
    assert model_of(table, raw, provider="aws.bedrock") == canonical


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("meta-llama/Llama-3.1-8B-Instruct", "llama-3.1-8b-instruct"),
        ("meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo", "llama-3.1-70b-instruct"),
        ("meta-llama/Llama-4-Scout-17B-16E-Instruct", "llama-4-scout"),
        ("mistralai/Mixtral-8x7B-Instruct-v0.1", "mixtral-8x7b"),
        ("Qwen/Qwen2.5-72B-Instruct-Turbo", "qwen2.5-72b-instruct"),
        ("deepseek-ai/DeepSeek-V3", "deepseek-v3"),
        ("deepseek-ai/DeepSeek-R1", "deepseek-r1"),
        ("deepseek-ai/DeepSeek-V3-0324", "deepseek-v3"),
    ],
)
def test_open_weight_repo_names(table: PriceTable, raw: str, canonical: str) -> None:
    assert model_of(table, raw) == canonical


def test_normalise_model() -> None:
    assert normalise_model("meta-llama/Llama-3.1-8B-Instruct") == "llama-3.1-8b-instruct"
    assert normalise_model("anthropic.claude-3-5-sonnet-20240620-v1:0") == "claude-3-5-sonnet"
    assert normalise_model("openai/gpt-4o-mini-2024-07-18") == "gpt-4o-mini"
    assert normalise_model("gemini-1.5-pro-001") == "gemini-1.5-pro"
    assert normalise_model("deepseek-v3") == "deepseek-v3"
    assert normalise_model("us.anthropic.claude-3-5-sonnet-20241022-v2:0") == "claude-3-5-sonnet"
    assert normalise_model("claude-3-5-sonnet-v2@20241022") == "claude-3-5-sonnet-v2"


def test_pinned_snapshot_keeps_its_own_price(table: PriceTable) -> None:
    pinned = table.lookup("openai", "gpt-4o-2024-05-13", NOW)
    moving = table.lookup("openai", "gpt-4o-2024-08-06", NOW)
    assert pinned is not None and moving is not None
    assert (pinned.input, pinned.output) == (5.0, 15.0)
    assert (moving.input, moving.output) == (2.5, 10.0)


@pytest.mark.parametrize(
    "model",
    [
        "totally-unknown-model",
        "gpt-5.1",  # a new version is not its predecessor
        "deepseek-v3.1",
        "claude-opus-4-7",  # ditto, not claude-opus-4
        "claude-sonnet-4-9-20270101",
        "gpt-4o-mini-tts",  # a differently priced modality is not the chat model
        "gpt-4o-audio-preview",
        "ft:gpt-4o-mini-2024-07-18:acme::abc123",  # fine-tunes bill differently
        "azure/my-deployment",
        "",
        "   ",
    ],
)
def test_unknown_model_is_unpriced_not_free(table: PriceTable, model: str) -> None:
    assert table.lookup("openai", model, NOW) is None
    assert table.lookup(None, model, NOW) is None


def test_none_model_is_unpriced(table: PriceTable) -> None:
    assert table.lookup("openai", None, NOW) is None


# -- providers --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("openai", "openai"),
        ("azure.ai.openai", "azure"),
        ("az.ai.inference", "azure_ai"),
        ("anthropic", "anthropic"),
        ("aws.bedrock", "bedrock"),
        ("gcp.gemini", "google"),
        ("gcp.gen_ai", "google"),
        ("gcp.vertex_ai", "vertex_ai"),
        ("mistral_ai", "mistral"),
        ("together_ai", "together"),
        ("fireworks_ai", "fireworks"),
        ("groq", "groq"),
        ("deepseek", "deepseek"),
        ("x_ai", "xai"),
        ("ibm.watsonx.ai", "watsonx"),
        (" OpenAI ", "openai"),
        ("some_new_host", "some_new_host"),
        ("", None),
        (None, None),
    ],
)
def test_provider_normalisation(raw: str | None, normal: str | None) -> None:
    assert normalise_provider(raw) == normal


def test_provider_is_a_tiebreaker_not_a_requirement(table: PriceTable) -> None:
    direct = table.lookup("openai", "gpt-4o", NOW)
    for provider in ("azure.ai.openai", "some_new_host", None):
        via = table.lookup(provider, "gpt-4o", NOW)
        assert via == direct  # the OpenAI list price
    claude = table.lookup("aws.bedrock", "anthropic.claude-3-haiku-20240307-v1:0", NOW)
    assert claude is not None and claude.provider == "anthropic"


def test_provider_selects_among_hosts(table: PriceTable) -> None:
    official = table.lookup("deepseek", "deepseek-r1", NOW)
    together = table.lookup("together_ai", "deepseek-ai/DeepSeek-R1", NOW)
    default = table.lookup(None, "deepseek-r1", NOW)
    elsewhere = table.lookup("fireworks_ai", "deepseek-r1", NOW)
    assert official is not None and together is not None
    assert official.provider == "deepseek" and together.provider == "together"
    assert official.input != together.input
    assert default == official == elsewhere  # the first-listed provider is the default
    groq = table.lookup("groq", "llama-3.1-8b-instant", NOW)
    hinted = table.lookup(None, "groq/llama-3.1-8b-instant", NOW)  # LiteLLM prefix as hint
    assert groq is not None and groq.provider == "groq"
    assert hinted == groq


# -- effective dating -------------------------------------------------------------


def test_effective_dating_picks_the_latest_price_in_force(table: PriceTable) -> None:
    launch = table.lookup("openai", "o3", date(2025, 5, 1))
    cut = table.lookup("openai", "o3", date(2025, 6, 10))
    assert launch is not None and cut is not None
    assert (launch.input, launch.output) == (10.0, 40.0)
    assert (cut.input, cut.output) == (2.0, 8.0)
    assert cut.effective == date(2025, 6, 10)
    old = table.lookup("google", "gemini-1.5-pro-001", date(2024, 9, 30))
    new = table.lookup("google", "gemini-1.5-pro-002", date(2024, 10, 1))
    assert old is not None and new is not None and old.input > new.input


def test_before_the_first_entry_is_unpriced(table: PriceTable) -> None:
    assert table.lookup("openai", "gpt-5", date(2025, 8, 6)) is None
    assert table.lookup("openai", "gpt-5", date(2025, 8, 7)) is not None
    assert table.lookup("openai", "o3", date(2020, 1, 1)) is None


def test_datetime_is_treated_as_its_date(table: PriceTable) -> None:
    at = datetime(2025, 6, 10, 23, 59, 59)
    assert table.lookup("openai", "o3", at) == table.lookup("openai", "o3", date(2025, 6, 10))


def test_lookup_is_memoised(table: PriceTable) -> None:
    first = table.lookup("openai", "gpt-4o-mini-2024-07-18", NOW)
    assert table.lookup("openai", "gpt-4o-mini-2024-07-18", NOW) is first
    assert table.lookup("openai", "no-such-model", NOW) is None
    assert table.lookup("openai", "no-such-model", NOW) is None


# -- overrides --------------------------------------------------------------------


def test_overrides_win_and_are_tagged() -> None:
    overrides = [
        PriceOverride(model="gpt-4o", input=2.0, output=8.0, cache_read=1.0),
        PriceOverride(model="claude-3-5-sonnet", provider="aws.bedrock", input=2.5, output=12.5),
    ]
    table = PriceTable.load(overrides)
    shipped = PriceTable.load()
    assert table.version == f"{shipped.version}+overrides"

    ov = table.lookup("openai", "gpt-4o-2024-08-06", NOW)
    assert ov is not None
    assert (ov.input, ov.output, ov.cache_read, ov.source) == (2.0, 8.0, 1.0, "override")
    assert ov.model == "gpt-4o" and ov.provider == "openai"
    assert table.price_tag(ov) == f"{shipped.version}+overrides"

    # a provider-less override applies to every provider
    azure = table.lookup("azure.ai.openai", "azure/gpt-4o", NOW)
    assert azure is not None and azure.source == "override" and azure.provider == "azure"

    # it does not leak onto a longer model name that the table knows
    mini = table.lookup("openai", "gpt-4o-mini", NOW)
    assert mini is not None and mini.source.startswith("table:")
    assert table.price_tag(mini) == shipped.version

    # a provider-specific override applies to that provider only
    bedrock = table.lookup("aws.bedrock", "anthropic.claude-3-5-sonnet-20241022-v2:0", NOW)
    direct = table.lookup("anthropic", "claude-3-5-sonnet-20241022", NOW)
    assert bedrock is not None and direct is not None
    assert (bedrock.input, bedrock.source, bedrock.provider) == (2.5, "override", "bedrock")
    assert (direct.input, direct.source) == (3.0, f"table:{shipped.version}")


def test_provider_specific_override_beats_a_generic_one() -> None:
    table = PriceTable.load(
        [
            PriceOverride(model="gpt-4o", input=1.0, output=1.0, effective=date(2025, 1, 1)),
            PriceOverride(
                model="gpt-4o", provider="azure", input=9.0, output=9.0, effective=date(2024, 1, 1)
            ),
        ]
    )
    azure = table.lookup("azure.ai.openai", "gpt-4o", NOW)
    openai = table.lookup("openai", "gpt-4o", NOW)
    assert azure is not None and openai is not None
    assert azure.input == 9.0 and openai.input == 1.0


def test_overrides_are_effective_dated_too() -> None:
    table = PriceTable.load(
        [PriceOverride(model="gpt-4o", input=1.0, output=2.0, effective=date(2025, 1, 1))]
    )
    before = table.lookup("openai", "gpt-4o", date(2024, 12, 31))
    after = table.lookup("openai", "gpt-4o", date(2025, 1, 1))
    assert before is not None and before.source.startswith("table:") and before.input == 2.5
    assert after is not None and after.source == "override"


def test_override_can_price_a_model_the_table_does_not_know() -> None:
    table = PriceTable.load([PriceOverride(model="acme-chat-v7", input=0.5, output=1.5)])
    assert PriceTable.load().lookup(None, "acme-chat-v7", NOW) is None
    price = table.lookup("vllm", "acme-chat-v7", NOW)
    assert price is not None and price.source == "override" and price.provider == "vllm"
    alias = table.lookup(None, "ACME-Chat-v7", NOW)
    assert alias is not None and alias.input == 0.5


def test_override_through_an_alias_reaches_the_canonical_model() -> None:
    table = PriceTable.load([PriceOverride(model="claude-3.5-sonnet", input=1.0, output=1.0)])
    price = table.lookup("anthropic", "claude-3-5-sonnet-20241022", NOW)
    assert price is not None and price.source == "override"


def test_no_overrides_keeps_the_plain_version() -> None:
    table = PriceTable.load()
    assert "+" not in table.version
    price = table.lookup("openai", "gpt-4o", NOW)
    assert price is not None and table.price_tag(price) == table.version


# -- cost maths -------------------------------------------------------------------


def _price(cache_read: float | None) -> Price:
    return Price("p", "m", 2.0, 8.0, cache_read, date(2024, 1, 1), "table:test")


def test_cost_without_cache() -> None:
    assert _price(0.5).cost(1_000_000, 0, 0) == pytest.approx(2.0)
    assert _price(0.5).cost(0, 1_000_000, 0) == pytest.approx(8.0)
    assert _price(0.5).cost(1_000, 500, 0) == pytest.approx(0.002 + 0.004)
    assert _price(0.5).cost(0, 0, 0) == 0.0


def test_cost_input_includes_cached_tokens() -> None:
    # 1M input of which 400k were cache hits: 600k at 2.0 + 400k at 0.5
    assert _price(0.5).cost(1_000_000, 0, 400_000) == pytest.approx(1.2 + 0.2)


def test_cost_cached_tokens_bill_at_input_without_cache_price() -> None:
    assert _price(None).cost(1_000_000, 0, 400_000) == pytest.approx(2.0)


def test_cost_cache_read_above_input_is_floored() -> None:
    # inconsistent counts (cache reported on top of input): uncached floors at 0,
    # the cache reads still bill at the cache price
    assert _price(0.5).cost(100, 0, 150) == pytest.approx(150 * 0.5 / 1e6)
    assert _price(0.5).cost(100, 10, 150) >= 0


def test_cost_negative_counts_are_zero() -> None:
    assert _price(0.5).cost(-5, -5, -5) == 0.0


def test_cost_with_a_shipped_price(table: PriceTable) -> None:
    price = table.lookup("anthropic", "claude-sonnet-4-20250514", NOW)
    assert price is not None
    # 10k input (2k cached) + 1k output at 3 / 15 / 0.30 per million
    expected = (8_000 * 3.0 + 2_000 * 0.30 + 1_000 * 15.0) / 1e6
    assert price.cost(10_000, 1_000, 2_000) == pytest.approx(expected)


# -- module hygiene ---------------------------------------------------------------


def test_cost_module_imports_no_ui() -> None:
    code = (
        "import sys, console.pricing, console.budgets; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'panels')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
