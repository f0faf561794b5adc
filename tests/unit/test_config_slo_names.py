"""SLO names are unique: status, alerts and the SLO views key SLOs by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.config import ConfigError, load_config

SLOS = """
[[slos]]
name = "availability"
kind = "availability"
objective = 0.99

[[slos]]
name = "latency"
kind = "latency"
objective = 0.99
threshold_ms = 500

[[slos]]
name = "availability"
kind = "availability"
objective = 0.999
"""


def test_two_slos_with_one_name_are_a_config_error_naming_both_entries(tmp_path: Path) -> None:
    file = tmp_path / "config.toml"
    file.write_text(SLOS, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(file, {})
    [problem] = caught.value.problems
    assert problem.where.startswith(str(file))
    assert problem.message.startswith(
        "SLO names must be unique: 'availability' names [[slos]] #1 and #3")


def test_distinct_slo_names_load(tmp_path: Path) -> None:
    file = tmp_path / "config.toml"
    strict = SLOS.replace('name = "availability"\nkind = "availability"\nobjective = 0.999',
                          'name = "availability strict"\nkind = "availability"\nobjective = 0.999')
    file.write_text(strict, encoding="utf-8")
    assert [s.name for s in load_config(file, {}).slos] == ["availability", "latency", "availability strict"]
