"""`llmdeck status` shows SLO and budget states from the config and exits 0/1/2 on them."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from console.cache.ingest import Ingestor
from console.cache.store import Cache
from console.cli import main
from console.demo.traffic import Incident, TrafficModel, export_requests, write_collector_jsonl
from tests.unit.otlp_spans import ns

END = datetime(2026, 3, 4, 10, 17, 23)


def build(tmp: Path, make_config: Any, incidents: list[Incident]) -> Path:
    end_ns = ns(END)
    path = tmp / "traffic.jsonl"
    write_collector_jsonl(str(path), export_requests(
        TrafficModel(seed=9, incidents=incidents), end_ns - 26 * 3600 * 10**9, end_ns, 12_000))
    with Cache.open(tmp / "cache.duckdb") as cache:
        Ingestor(cache, make_config()).run([path])
    return tmp / "cache.duckdb"


@pytest.fixture(scope="module")
def quiet(tmp_path_factory: pytest.TempPathFactory, make_config: Any) -> Path:
    return build(tmp_path_factory.mktemp("quiet"), make_config, [])


@pytest.fixture(scope="module")
def incident(tmp_path_factory: pytest.TempPathFactory, make_config: Any) -> Path:
    end_ns = ns(END)
    return build(tmp_path_factory.mktemp("incident"), make_config,
                 [Incident("anthropic", end_ns - 3600 * 10**9, end_ns)])


def spent_today(cache: Path) -> float:
    with Cache.open(cache, read_only=True) as c:
        return float(c.cursor().execute(
            "SELECT sum(cost_usd) FROM spans WHERE epoch_ns(start_time) >= ?",
            [ns(datetime(2026, 3, 4))]).fetchall()[0][0])


SLO = """
[[slos]]
name = "anthropic availability"
kind = "availability"
objective = 0.98
filter = { provider = "anthropic" }
"""
BUDGET = """
[[budgets]]
name = "{name}"
period = "day"
limit_usd = {limit}
"""


def status(tmp_path: Path, cache: Path, config: str, capsys: pytest.CaptureFixture[str],
           *extra: str) -> tuple[int, str]:
    cfg = tmp_path / "config.toml"
    cfg.write_text(config, encoding="utf-8")
    code = main(["--config", str(cfg), "--cache", str(cache), "status", "--at", END.isoformat(),
                 *extra])
    out = capsys.readouterr().out
    return code, out


def test_status_exits_0_and_says_ok_when_slos_and_budgets_are_fine(tmp_path, quiet, capsys):
    code, out = status(tmp_path, quiet, SLO + BUDGET.format(name="daily", limit=1e6), capsys)
    assert code == 0
    slos, budgets = out.split("\nSLOs\n")[1].split("\nBudgets\n")
    assert "✔ ok" in slos and "anthropic availability" in slos and "provider=anthropic" in slos
    assert "ok: no burn-rate rule fires" in slos
    assert "✔ ok" in budgets and "daily" in budgets and "ok: 0% of $1,000,000.00 spent" in budgets


def test_status_exits_1_on_a_budget_warning(tmp_path, quiet, capsys):
    limit = round(spent_today(quiet) / 0.8, 2)  # 80%: past the warning share, short of critical
    code, out = status(tmp_path, quiet, SLO + BUDGET.format(name="daily", limit=limit), capsys,
                       "--json")
    assert code == 1
    (budget,) = json.loads(out)["budgets"]
    assert budget["state"] == "warning" and budget["reason"].startswith("warning: 80% of $")
    assert budget["used"] == pytest.approx(0.8, abs=1e-3)


def test_status_exits_2_on_a_critical_budget(tmp_path, quiet, capsys):
    limit = round(spent_today(quiet) / 0.95, 2)
    code, out = status(tmp_path, quiet, BUDGET.format(name="daily", limit=limit), capsys)
    assert code == 2
    assert "✖ critical daily" in out and "critical: 95% of $" in out


def test_status_exits_2_when_an_incident_pages(tmp_path, incident, capsys):
    code, out = status(tmp_path, incident, SLO, capsys)
    assert code == 2
    slos = out.split("\nSLOs\n")[1]
    assert "✖ page    anthropic availability" in slos and "page: 1h burn" in slos
    assert "none configured (add [[budgets]] to the config)" in out


def test_status_json_carries_slo_and_budget_fields(tmp_path, incident, capsys):
    code, out = status(tmp_path, incident, SLO + BUDGET.format(name="daily", limit=1e6), capsys,
                       "--json")
    doc = json.loads(out)
    assert code == 2
    assert doc["at"] == END.isoformat() + "Z" and doc["groups"]
    (slo,) = doc["slos"]
    assert {"name", "kind", "objective", "window_days", "filter", "compliance", "budget_remaining",
            "time_to_exhaustion_seconds", "burn_rates", "state", "reason"} <= set(slo)
    assert slo["filter"] == {"provider": "anthropic"} and slo["state"] == "page"
    assert list(slo["burn_rates"]) == ["5m", "30m", "1h", "2h", "6h", "24h", "3d"]
    assert slo["burn_rates"]["1h"] > 14.4 and slo["window_days"] == 28
    (budget,) = doc["budgets"]
    assert {"name", "scope", "match", "period", "limit_usd", "spent_usd", "remaining_usd", "used",
            "burn_usd_per_hour", "forecast_usd", "time_to_exhaustion_seconds", "state", "reason",
            "unpriced_requests"} <= set(budget)
    assert list(budget["burn_usd_per_hour"]) == ["1h", "6h", "24h"]
    assert budget["state"] == "ok" and budget["unpriced_requests"] > 0
    assert budget["remaining_usd"] == pytest.approx(budget["limit_usd"] - budget["spent_usd"],
                                                    abs=1e-5)


def test_status_without_slos_or_budgets_exits_0_and_says_none_configured(tmp_path, incident, capsys):
    code, out = status(tmp_path, incident, "", capsys)
    assert code == 0
    assert "none configured (add [[slos]] to the config)" in out


def test_status_writes_config_and_data_strings_through_safe_text(tmp_path, incident, capsys):
    config = SLO.replace('"anthropic availability"', '"evil\\u001b]0;owned\\u0007 slo"')
    code, out = status(tmp_path, incident, config, capsys)
    assert code == 2
    assert "\x1b" not in out and "\x07" not in out
    assert "evil\\x1b]0;owned\\x07 slo" in out


def test_status_at_a_quiet_time_has_no_traffic_and_nothing_fires(tmp_path, incident, capsys):
    cfg = tmp_path / "config.toml"
    cfg.write_text(SLO, encoding="utf-8")
    at = (END + timedelta(days=40)).isoformat()
    code = main(["--config", str(cfg), "--cache", str(incident), "status", "--at", at, "--json"])
    (slo,) = json.loads(capsys.readouterr().out)["slos"]
    assert code == 0 and slo["compliance"] is None and slo["state"] == "ok"
