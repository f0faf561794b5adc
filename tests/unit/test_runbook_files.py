"""Runbook TOML and the [actions] config: every problem at file:line, params typed and checked."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest

from console.action_types import ActionError
from console.config import ConfigError, load_config
from console.config_actions import ActionsSettings
from console.runbook_files import RunbookError, load_catalog, parse_duration
from tests.unit.runbook_fixtures import RUNBOOK, catalog

GOOD = """\
[runbook]
name = "mine"

[[action]]
name = "throttle-team"
title = "My throttle"
adapter = "litellm.team_limits"
target = "team_id"
[action.params.team_id]
type = "str"
required = true
"""


def problems_of(tmp_path: Path, text: str) -> list[str]:
    (tmp_path / "bad.toml").write_text(text)
    with pytest.raises(RunbookError) as caught:
        load_catalog(tmp_path)
    return caught.value.problems


def test_each_problem_is_reported_at_its_file_and_line(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, """\
[runbook]
name = "bad"

[[action]]
name = "x"
adapter = "litellm.team_limits"
role = "root"
for = "soon"
colour = "red"
target = "nope"
[action.params.limit]
type = "integer"
[action.params.rate]
type = "int"
min = 10
default = 3
""")
    where = str(tmp_path / "bad.toml")
    assert f"{where}:7: action[0].role: expected one of viewer, responder, admin, got 'root'" in problems
    assert any(p.startswith(f"{where}:8: action[0].for: not a duration: 'soon'") for p in problems)
    assert any(p.startswith(f"{where}:9: action[0].colour: unknown key") for p in problems)
    assert any(p.startswith(f"{where}:10: action[0].target: no param 'nope'") for p in problems)
    assert any(p.startswith(f"{where}:12: action[0].params.limit.type: expected one of str, int")
               for p in problems)
    assert f"{where}:16: action[0].params.rate.default: param 'rate': 3 is below the minimum 10" in problems


def test_invalid_toml_and_duplicates_name_the_place(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path, "[runbook]\nname = \n")
    assert problem.startswith(f"{tmp_path / 'bad.toml'}:2: invalid TOML")
    (tmp_path / "bad.toml").write_text(GOOD)
    (tmp_path / "copy.toml").write_text(GOOD.replace('name = "mine"', 'name = "copy"'))
    with pytest.raises(RunbookError) as caught:
        load_catalog(tmp_path)
    [dup] = caught.value.problems
    assert dup.startswith(f"{tmp_path / 'copy.toml'}:4: action.name: action 'throttle-team' is also defined"
                          f" at {tmp_path / 'bad.toml'}:4")


def test_a_user_file_overrides_a_builtin_by_action_name(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text(GOOD)
    found = load_catalog(tmp_path)
    assert found["throttle-team"].title == "My throttle" and not found["throttle-team"].builtin
    assert found["block-key"].builtin


def test_params_are_converted_and_checked_with_their_name(tmp_path: Path) -> None:
    spec = catalog(tmp_path)["throttle-team"]
    assert spec.validate({"team_id": "a", "tpm_limit": "100", "for": "1h30m"}) == \
        {"team_id": "a", "tpm_limit": 100, "for": 5400}
    assert spec.time_box_for({"for": 5400}) == timedelta(minutes=90)
    with pytest.raises(ActionError, match=r"param 'tpm_limit': expected an integer, got 'lots'"):
        spec.validate({"team_id": "a", "tpm_limit": "lots"})
    with pytest.raises(ActionError, match=r"param 'tpm_limit': -1 is below the minimum 0"):
        spec.validate({"team_id": "a", "tpm_limit": -1})
    with pytest.raises(ActionError, match=r"unknown param 'tmp_limit' \(known: for, rpm_limit, team_id"):
        spec.validate({"team_id": "a", "tmp_limit": 5})
    with pytest.raises(ActionError, match=r"param 'team_id' is required"):
        spec.validate({})
    with pytest.raises(ActionError, match=r"control or bidi"):
        spec.validate({"team_id": "a\x1b[31m"})
    cut = catalog(tmp_path)["cut-team"]
    assert cut.validate({"team_id": "a"})["tpm_limit"] == 0
    with pytest.raises(ActionError, match=r"param 'tpm_limit' is fixed"):
        cut.validate({"team_id": "a", "tpm_limit": 5})
    assert spec.masked({"team_id": "sk-forgot-to-declare-secret-0123456789", "tpm_limit": None}) == \
        {"team_id": "***", "tpm_limit": None}
    assert RUNBOOK  # the fixture's file is the one these specs came from


def test_durations() -> None:
    assert parse_duration("15m") == timedelta(minutes=15)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    for bad in ("", "15", "m", "-5m", "0s", "1h 30x"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_actions_config_errors_at_file_line_and_roles(tmp_path: Path) -> None:
    file = tmp_path / "config.toml"
    file.write_text("""\
[actions]
prod = true
default_role = "god"

[[actions.litellm]]
name = "gw"
url = "http://127.0.0.1:4000"
admin_key_ref = "sk-literal-secret-0123456789abcdef0123"
""")
    with pytest.raises(ConfigError) as caught:
        load_config(file, {})
    text = str(caught.value)
    assert f"{file}:3: actions.default_role:" in text
    assert f"{file}:8: actions.litellm[0].admin_key_ref: looks like a literal secret" in text
    assert "sk-literal" not in text
    settings = ActionsSettings(default_role="viewer", roles={"alice": "responder", "group:sre": "admin"})
    assert settings.role_of("alice", ["users"]) == "responder"
    assert settings.role_of("alice", ["sre"]) == "admin"
    assert settings.role_of("bob", []) == "viewer"


def test_config_check_reports_runbook_problems_at_file_and_line(tmp_path: Path) -> None:
    from console.config_check import main_check

    books = tmp_path / "books"
    books.mkdir()
    (books / "bad.toml").write_text('[runbook]\nname = "bad"\n\n[[action]]\nname = "x"\n'
                                    'adapter = "litellm.team_limits"\nrole = "root"\n')
    config = tmp_path / "config.toml"
    config.write_text(f'[actions]\nrunbook_dir = "{books}"\n')
    out = io.StringIO()
    assert main_check(config, {}, out) == 1
    assert f"{books / 'bad.toml'}:7: action[0].role: expected one of viewer, responder, admin, got 'root'" \
        in out.getvalue().splitlines()

    (books / "bad.toml").unlink()
    out = io.StringIO()
    assert main_check(config, {}, out) == 0 and out.getvalue().startswith(f"ok: {config}")
