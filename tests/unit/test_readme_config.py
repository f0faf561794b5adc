"""The README's example source config is valid, and `config check` locates what is wrong in it."""

from __future__ import annotations

import re
from pathlib import Path

from console.config import load_config
from console.config_check import check

README = Path(__file__).resolve().parents[2] / "README.md"


def example_config() -> str:
    text = README.read_text()
    found = re.search(r"<!-- example-config -->\n```toml\n(.*?)```", text, re.S)
    assert found, "the README lost its example config block"
    return found.group(1)


def test_the_readme_example_config_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(example_config())
    assert check(path, {}) == []
    config = load_config(path, {})
    assert [s.name for s in config.sources.prometheus] == ["prom"]
    assert [s.name for s in config.sources.alertmanager] == ["am"]
    assert [(s.name, s.kind) for s in config.sources.scrape] == [("gpu-vllm", "vllm")]
    assert [s.source for s in config.slos] == ["prometheus:prom", "prometheus:prom"]


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_unknown_keys_bad_urls_and_inline_secrets_are_reported_with_file_and_line(tmp_path: Path) -> None:
    text = example_config()
    text = text.replace('url = "http://127.0.0.1:9093"', 'url = "127.0.0.1:9093"')
    text = text.replace("refresh_seconds = 15", "refresh_seconds = 15\nrefresh_secs = 5")
    text = text.replace('# bearer_token_ref = "env:PROM_TOKEN"',
                        'bearer_token_ref = "sk-live-0123456789abcdefghijklmnop"')
    text = text.replace('kind = "vllm"',
                        'kind = "vllm"\nheaders = { X-Api-Key = "sk-abcdef0123456789abcdef" }')
    path = tmp_path / "config.toml"
    path.write_text(text)
    problems = {p.key: p for p in check(path, {})}
    assert problems["sources.alertmanager[0].url"].where == f"{path}:{_line_of(text, '127.0.0.1:9093')}"
    assert problems["sources.prometheus[0].refresh_secs"].where == f"{path}:{_line_of(text, 'refresh_secs')}"
    assert "did you mean 'refresh_seconds'" in problems["sources.prometheus[0].refresh_secs"].message
    secret = problems["sources.prometheus[0].bearer_token_ref"]
    assert secret.where == f"{path}:{_line_of(text, 'bearer_token_ref')}"
    assert "looks like a literal secret" in secret.message
    header = problems["sources.scrape[0].headers.X-Api-Key"]
    assert "header_refs" in header.message
    for problem in problems.values():  # the rejected values are never echoed
        assert "sk-live" not in str(problem) and "sk-abcdef" not in str(problem)


def test_a_promql_slo_naming_an_unknown_source_is_reported(tmp_path: Path) -> None:
    text = example_config().replace('source = "prom"', 'source = "thanos"', 1)
    path = tmp_path / "config.toml"
    path.write_text(text)
    problems = check(path, {})
    assert [(p.where, p.key) for p in problems] == [
        (f"{path}:{_line_of(text, 'thanos')}", "slos[0].promql.source")]
    assert "no prometheus source named 'thanos' (known: prom)" in problems[0].message


def test_two_sources_with_one_name_are_reported_at_the_second(tmp_path: Path) -> None:
    text = example_config().replace('name = "am"', 'name = "prom"')
    path = tmp_path / "config.toml"
    path.write_text(text)
    [problem] = check(path, {})
    second = [i for i, line in enumerate(text.splitlines(), 1) if line == 'name = "prom"'][1]
    assert (problem.where, problem.key) == (f"{path}:{second}", "sources.alertmanager[0].name")
    assert "source name 'prom' is used twice" in problem.message
