"""`llmdeck status` without a trace cache file: PromQL SLOs shown, the missing cache said in one line."""

from __future__ import annotations

import asyncio
import io
from datetime import datetime
from pathlib import Path

from console import status_report
from console.config import Config
from console.promql_eval import evaluate
from console.promql_slo import PromqlSloResult
from tests.unit.test_promql_slo import FakeApi, vector

AT = datetime(2026, 3, 4, 10, 0)
MISSING = Path("/nowhere/llmdeck/cache.duckdb")


def config(*extra_slos: dict[str, object], budgets: bool = False) -> Config:
    slos = [{"name": "fine", "kind": "availability", "objective": 0.99,
             "promql": {"source": "prom", "good": "g", "total": "t"}}, *extra_slos]
    return Config.model_validate({
        "sources": {"prometheus": [{"name": "prom", "url": "http://127.0.0.1:9090"}]}, "slos": slos,
        "budgets": [{"name": "monthly", "limit_usd": 100}] if budgets else []})


def results(cfg: Config) -> dict[str, PromqlSloResult]:
    spec = cfg.slos[0]
    status, _ = asyncio.run(evaluate(FakeApi(lambda e: vector(10)), spec, AT))
    return {spec.name: PromqlSloResult(spec.name, spec.source, status)}


def test_promql_slos_only_exit_by_their_state_and_the_missing_cache_is_one_line() -> None:
    cfg = config()
    report = status_report.gather_without_cache(cfg, AT, MISSING, results(cfg))
    assert report.exit_code == 0 and report.groups == []
    out = io.StringIO()
    status_report.write_text(report, out)
    text = out.getvalue()
    missing = [line for line in text.splitlines() if "trace cache" in line]
    assert missing == [
        f"trace cache missing ({MISSING}): no traffic figures; run `llmdeck ingest` to fill it"]
    assert "fine: availability 99% over 28d, PromQL [prometheus:prom]" in text and "WIN" not in text
    doc = status_report.as_json(report)
    assert doc["trace_cache"] == {"state": "missing", "path": str(MISSING)}
    assert [s["state"] for s in doc["slos"]] == ["ok"] and doc["groups"] == []  # type: ignore[attr-defined]


def test_cache_slos_and_budgets_without_the_cache_are_unknown() -> None:
    cfg = config({"name": "cached", "kind": "availability", "objective": 0.99}, budgets=True)
    report = status_report.gather_without_cache(cfg, AT, MISSING, results(cfg))
    assert report.exit_code == 1
    doc = status_report.as_json(report)
    fine, cached = doc["slos"]  # type: ignore[misc]
    assert fine["state"] == "ok" and cached["state"] == "unknown"
    assert cached["error"] == f"no trace cache at {MISSING}"
    assert doc["budgets"] == [{"name": "monthly", "state": "unknown", "error": "no trace cache"}]
    out = io.StringIO()
    status_report.write_text(report, out)
    assert "? unknown monthly: no trace cache" in out.getvalue()
