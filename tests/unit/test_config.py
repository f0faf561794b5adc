"""Config loading, environment overrides, and located error reports."""

from __future__ import annotations

import io
import traceback
from pathlib import Path

import pytest

from console import paths
from console.config import (
    SECRET_MESSAGE,
    Config,
    ConfigError,
    ConfigProblem,
    load_config,
    write_json_schema,
)
from console.config_check import check, main_check

SECRET = "sk-proj-Abcdefghijklmnop1234567890"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep the developer's own config out of every test."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text.lstrip("\n"), encoding="utf-8")
    return path


def problems_of(path: Path | None, env: dict[str, str] | None = None) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env or {})
    return caught.value.problems


def test_missing_default_file_gives_defaults() -> None:
    config = load_config(None, {})
    assert config == Config()
    assert config.ui.refresh_seconds == 5
    assert config.sources.prometheus == []
    assert not paths.default_config_file().exists()


def test_default_file_under_xdg_config_home_is_read() -> None:
    file = paths.default_config_file()
    file.parent.mkdir(parents=True)
    file.write_text('[ui]\ntheme = "plain"\n', encoding="utf-8")
    assert load_config(None, {}).ui.theme == "plain"


def test_explicit_config_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    [problem] = problems_of(missing)
    assert problem == ConfigProblem(str(missing), "", "config file not found")
    assert str(problem) == f"{missing}: config file not found"


def test_llmdeck_config_variable_names_the_file(tmp_path: Path) -> None:
    file = write(tmp_path, '[ui]\ntheme = "from-env-file"\n', name="other.toml")
    assert load_config(None, {"LLMDECK_CONFIG": str(file)}).ui.theme == "from-env-file"
    [problem] = problems_of(None, {"LLMDECK_CONFIG": str(tmp_path / "gone.toml")})
    assert problem.message == "config file not found"


def test_toml_syntax_error_reports_file_and_line(tmp_path: Path) -> None:
    file = write(tmp_path, '[ui]\ntheme = "x"\n[cache\nretention_days = 3\n')
    [problem] = problems_of(file)
    assert problem.where == f"{file}:3"
    assert problem.key == ""
    assert problem.message.startswith("invalid TOML: ")
    assert str(problem).startswith(f"{file}:3: invalid TOML: ")


MANY_PROBLEMS = """
# on-call config
[ui]
refresh_seconds = 0.5

[cache]
retention_dayz = 3

[[sources.prometheus]]
name = "main"
url = "http://prometheus:9090"

[[sources.prometheus]]
name = "backup"
url = "not a url"
timeout_seconds = "abc"

[[sources.alertmanager]]
name = "am"

[pricing]
overrides = [
  { model = "gpt-4o", input = 2.5, output = 10 },
  { model = "cheap", input = -1, output = 1 },
]
"""


def test_every_problem_is_reported_with_key_path_and_line(tmp_path: Path) -> None:
    file = write(tmp_path, MANY_PROBLEMS)
    problems = problems_of(file)
    assert [str(p) for p in problems] == [
        f"{file}:3: ui.refresh_seconds: must be at least 1",
        f"{file}:6: cache.retention_dayz: unknown key (did you mean 'retention_days'?)",
        f"{file}:14: sources.prometheus[1].url: not a URL",
        f'{file}:15: sources.prometheus[1].timeout_seconds: expected a number, got "abc"',
        f"{file}:17: sources.alertmanager[0].url: missing required key",
        f"{file}:23: pricing.overrides[1].input: must be at least 0",
    ]
    error = ConfigError(problems)
    assert str(error).splitlines() == [str(p) for p in problems]


def test_lines_are_found_for_dotted_keys_inline_tables_and_nested_arrays(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        '''
cache.retention_days = -1
ui = { theme = "x", refresh_seconds = "fast" }
notes_are_not_keys = """
[fake]
url = 1
"""

[redaction]
rules = [{ name = "a", pattern = "ok" },
         { name = "b", pattern = "(" }]

[ sources ]
litellm = [
  { name = "gw", url = "ftp://gw" },
]
''',
    )
    assert [(p.where, p.key) for p in problems_of(file)] == [
        (f"{file}:1", "cache.retention_days"),
        (f"{file}:2", "ui.refresh_seconds"),
        (f"{file}:3", "notes_are_not_keys"),
        (f"{file}:10", "redaction.rules[1].pattern"),
        (f"{file}:14", "sources.litellm[0].url"),
    ]


def test_unknown_key_without_a_close_match_lists_the_known_keys(tmp_path: Path) -> None:
    file = write(tmp_path, "[ui]\nzzz = 1\n")
    [problem] = problems_of(file)
    assert problem.message == "unknown key (known keys: refresh_seconds, theme, keymap)"


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        "[cache]\nretention_days = 30\n[ui]\nrefresh_seconds = 10\n"
        '[[sources.prometheus]]\nname = "p"\nurl = "http://a:9090"\n',
    )
    env = {
        "LLMDECK_CACHE__RETENTION_DAYS": "3",
        "LLMDECK_INGEST__KEEP_BODIES": "true",
        "llmdeck_ui__refresh_seconds": "5",
        "LLMDECK_INGEST__TENANT_ATTRIBUTES": '["a", "b"]',
        "LLMDECK_UI__KEYMAP__QUIT": "ctrl+q",
        "LLMDECK_SOURCES__PROMETHEUS__0__URL": "https://b:9090",
        "LLMDECK_DEMO_SEED": "7",  # not a setting: ignored
    }
    config = load_config(file, env)
    assert config.cache.retention_days == 3
    assert config.ingest.keep_bodies is True
    assert config.ui.refresh_seconds == 5
    assert config.ingest.tenant_attributes == ["a", "b"]
    assert config.ui.keymap == {"quit": "ctrl+q"}
    assert config.sources.prometheus[0].url == "https://b:9090"


def test_load_config_reads_the_process_environment_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLMDECK_CACHE__RETENTION_DAYS", "2")
    assert load_config().cache.retention_days == 2


def test_bad_environment_value_is_reported_against_the_variable(tmp_path: Path) -> None:
    file = write(tmp_path, "[cache]\nretention_days = 30\n[ui]\nthemez = 1\n")
    problems = problems_of(
        file,
        {
            "LLMDECK_CACHE__RETENTION_DAYS": "abc",
            "LLMDECK_INGEST__ROUTE_ATTRIBUTES": "a,b",
            "LLMDECK_INGEST__FALLBACK_ATTRIBUTES": '["a"',
            "LLMDECK_NOPE__X": "1",
        },
    )
    assert [str(p) for p in problems] == [
        f"{file}:4: ui.themez: unknown key (did you mean 'theme'?)",
        'env LLMDECK_CACHE__RETENTION_DAYS: cache.retention_days: expected a number, got "abc"',
        "env LLMDECK_INGEST__FALLBACK_ATTRIBUTES: ingest.fallback_attributes: "
        "not valid JSON: Expecting ',' delimiter",
        'env LLMDECK_INGEST__ROUTE_ATTRIBUTES: ingest.route_attributes: expected a list, got "a,b"'
        ' (give it as JSON, e.g. ["a", "b"] or {"key": "value"})',
        "env LLMDECK_NOPE__X: nope: unknown key "
        "(known keys: ui, sources, cache, ingest, redaction, pricing, billing, receiver, actions, slos,"
        " budgets)",
    ]


def test_single_underscore_after_the_section_is_flagged() -> None:
    [problem] = problems_of(None, {"LLMDECK_CACHE_RETENTION_DAYS": "3"})
    assert str(problem) == (
        "env LLMDECK_CACHE_RETENTION_DAYS: separate section and key with '__': "
        "LLMDECK_CACHE__RETENTION_DAYS"
    )


def test_literal_secret_in_a_key_ref_is_rejected_without_echoing_it(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        f'[[sources.openai_billing]]\nname = "oa"\nadmin_key_ref = "{SECRET}"\n'
        f'[[sources.anthropic_billing]]\nname = "an"\nadmin_key_ref = "env:{SECRET}"\n',
    )
    env = {
        "LLMDECK_SOURCES__LITELLM": f'[{{"name": "gw", "url": "http://gw", "key_ref": "{SECRET}"}}]'
    }
    with pytest.raises(ConfigError) as caught:
        load_config(file, env)
    problems = caught.value.problems
    assert [(p.where, p.key, p.message) for p in problems] == [
        (f"{file}:3", "sources.openai_billing[0].admin_key_ref", SECRET_MESSAGE),
        (f"{file}:6", "sources.anthropic_billing[0].admin_key_ref", SECRET_MESSAGE),
        ("env LLMDECK_SOURCES__LITELLM", "sources.litellm[0].key_ref", SECRET_MESSAGE),
    ]
    shown = "".join(traceback.format_exception(caught.value))
    assert SECRET not in shown
    assert SECRET[:12] not in shown


def test_key_refs_name_the_keyring_or_an_environment_variable(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        '[[sources.openai_billing]]\nname = "oa"\nadmin_key_ref = "keyring:llmdeck/openai-admin"\n'
        '[[sources.anthropic_billing]]\nname = "an"\nadmin_key_ref = "env:ANTHROPIC_ADMIN_KEY"\n'
        '[[sources.litellm]]\nname = "gw"\nurl = "http://gw:4000"\nkey_ref = "plain words"\n',
    )
    [problem] = problems_of(file)
    assert str(problem) == (
        f"{file}:10: sources.litellm[0].key_ref: "
        "not a key reference; use keyring:SERVICE/NAME or env:VAR"
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [("prometheus:9090", "not a URL"), ("http://", "not a URL"), ("ftp://h", "not an http(s) URL")],
)
def test_source_urls_must_be_http(tmp_path: Path, url: str, message: str) -> None:
    file = write(tmp_path, f'[[sources.alertmanager]]\nname = "am"\nurl = "{url}"\n')
    [problem] = problems_of(file)
    assert (problem.where, problem.key, problem.message) == (
        f"{file}:3",
        "sources.alertmanager[0].url",
        message,
    )


def test_redaction_pattern_must_compile(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        '[[redaction.rules]]\nname = "ok"\npattern = "acct-[0-9]+"\n'
        '[[redaction.rules]]\nname = "broken"\npattern = "[a-"\n',
    )
    [problem] = problems_of(file)
    assert problem.where == f"{file}:6"
    assert problem.key == "redaction.rules[1].pattern"
    assert problem.message.startswith("bad regular expression: unterminated character set")


def test_check_lists_problems_and_is_empty_for_a_good_file(tmp_path: Path) -> None:
    good = write(tmp_path, "[ui]\nrefresh_seconds = 2\n", name="good.toml")
    bad = write(tmp_path, "[ui]\nrefresh_seconds = 0\n", name="bad.toml")
    assert check(good, {}) == []
    assert check(bad, {}) == [ConfigProblem(f"{bad}:2", "ui.refresh_seconds", "must be at least 1")]


def test_main_check_exit_codes_and_output(tmp_path: Path) -> None:
    good = write(tmp_path, "[ui]\nrefresh_seconds = 2\n[cache]\nretention_days = 7\n")
    out = io.StringIO()
    assert main_check(good, {}, out) == 0
    assert out.getvalue() == f"ok: {good} (2 sections)\n"

    out = io.StringIO()
    assert main_check(good, {"LLMDECK_INGEST__KEEP_BODIES": "1"}, out) == 0
    assert out.getvalue().splitlines()[1] == "environment overrides: LLMDECK_INGEST__KEEP_BODIES"

    out = io.StringIO()
    assert main_check(None, {}, out) == 0
    assert out.getvalue() == f"no config file at {paths.default_config_file()}; defaults apply\n"

    bad = write(tmp_path, "[ui]\nrefresh_seconds = 0\ntheme = 3\n", name="bad.toml")
    out = io.StringIO()
    assert main_check(bad, {}, out) == 1
    assert out.getvalue().splitlines() == [
        f"{bad}:2: ui.refresh_seconds: must be at least 1",
        f"{bad}:3: ui.theme: expected a string, got 3",
    ]

    out = io.StringIO()
    assert main_check(tmp_path / "missing.toml", {}, out) == 1


def test_json_schema_carries_field_docstrings() -> None:
    schema = write_json_schema()
    assert schema["additionalProperties"] is False
    ui = schema["$defs"]["UiSettings"]["properties"]
    assert ui["refresh_seconds"]["minimum"] == 1
    assert "refresh" in ui["refresh_seconds"]["description"]
