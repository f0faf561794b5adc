"""What a user types for a silence: matchers and `--for`, with errors that say what is wrong."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from console.alerts import SilenceMatcher
from console.silence_input import (
    SilenceInputError,
    check_comment,
    parse_for,
    parse_matcher,
    parse_matchers,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alertname=HighErrorRate", SilenceMatcher("alertname", "HighErrorRate")),
        ("env!=prod", SilenceMatcher("env", "prod", is_regex=False, is_equal=False)),
        ("model=~gpt-4.*", SilenceMatcher("model", "gpt-4.*", is_regex=True, is_equal=True)),
        ("team!~a|b", SilenceMatcher("team", "a|b", is_regex=True, is_equal=False)),
        ('summary="has = and != inside"', SilenceMatcher("summary", "has = and != inside")),
        ("path=/v1/chat", SilenceMatcher("path", "/v1/chat")),
        ("_x=", SilenceMatcher("_x", "")),
    ],
)
def test_matcher_operators_parse_to_the_alertmanager_fields(text: str, expected: SilenceMatcher) -> None:
    assert parse_matcher(text) == expected
    if '"' not in text:
        assert str(expected) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1abc=x", "must start with a label name"),
        ("=x", "must start with a label name"),
        ("alertname", "comes =, !=, =~ or !~"),
        ("alert-name=x", "comes =, !=, =~ or !~"),
        ("model=~(", "not a valid regular expression"),
    ],
)
def test_bad_matchers_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(SilenceInputError, match=message) as info:
        parse_matcher(text)
    assert repr(text) in str(info.value)


def test_a_silence_needs_a_matcher() -> None:
    with pytest.raises(SilenceInputError, match="at least one --matcher"):
        parse_matchers([])


@pytest.mark.parametrize("texts", [["env="], ["env=~.*"], ["env!=prod"], ["env!=prod", "x=~.*"]])
def test_matchers_that_would_mute_everything_are_refused(texts: list[str]) -> None:
    with pytest.raises(SilenceInputError, match="mute\\s+everything"):
        parse_matchers(texts)


def test_one_label_requiring_matcher_is_enough() -> None:
    assert len(parse_matchers(["alertname=Up", "env!=prod"])) == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2h", timedelta(hours=2)),
        ("90m", timedelta(minutes=90)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d", timedelta(days=1)),
        ("1w", timedelta(weeks=1)),
        ("45s", timedelta(seconds=45)),
        ("1.5h", timedelta(minutes=90)),
        (" 2h ", timedelta(hours=2)),
    ],
)
def test_for_durations(text: str, expected: timedelta) -> None:
    assert parse_for(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not a duration"),
        ("2", "not a duration"),
        ("2 hours", "not a duration"),
        ("-2h", "not a duration"),
        ("2h-", "not a duration"),
        ("0m", "longer than zero"),
        ("400d", "longer than 366 days"),
    ],
)
def test_bad_for_durations_say_what_to_type(text: str, message: str) -> None:
    with pytest.raises(SilenceInputError, match=message):
        parse_for(text)


def test_a_comment_is_required() -> None:
    assert check_comment("  rollout in progress ") == "rollout in progress"
    with pytest.raises(SilenceInputError, match="--comment must say why"):
        check_comment("   ")


def test_one_role_for_silencing_at_every_door(tmp_path: Path) -> None:
    """`s`/`x` in the console and `llmdeck silence` (silence.create / silence.expire) require the
    same role as the built-in runbook's silence-alert / expire-silence (review finding 8)."""
    from console.runbook_files import load_catalog
    from console.silence_desk import ROLE, silence_catalog

    builtins = load_catalog(tmp_path / "no-user-runbooks")
    doors = {**silence_catalog("am"), **{n: builtins[n] for n in ("silence-alert", "expire-silence")}}
    assert {name: spec.role for name, spec in doors.items()} == dict.fromkeys(doors, ROLE)
