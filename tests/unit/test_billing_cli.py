"""`llmdeck billing sync` end to end: the real CLI, config file, connectors and cache against the
loopback replay of the providers' billing APIs (tests/faults/billing_server.py, the documented
shapes; the real providers cannot be reached here).

What the user sees: per source what was stored (days, lines, total per currency, pages,
seconds); on a failure, exit 2 and one line naming the provider, the status and a clean
reason (a 401 names the admin key's reference, never its value); stored rows of a failed
source stay exactly as they were.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from console.cache import billing_store
from console.cli import main
from console.timeutil import utc_now
from tests.faults.billing_server import (
    ANTHROPIC_COSTS,
    OPENAI_COSTS,
    OPENROUTER_ACTIVITY,
    BillingServer,
    json_reply,
)
from tests.faults.fault_server import Reply

KEYS = {"LLMDECK_T_OPENAI_ADMIN": "sk-admin-canary-0a1b2c3d4e5f6a7b8c9d",
        "LLMDECK_T_ANTHROPIC_ADMIN": "sk-ant-admin01-canary-9f8e7d6c5b4a",
        "LLMDECK_T_OPENROUTER_MGMT": "sk-or-v1-canary-13579bdf2468ace0"}
TODAY = utc_now().date()
START = TODAY - timedelta(days=9)  # ten days with today


@pytest.fixture
def server() -> Iterator[BillingServer]:
    with BillingServer(start=START, days=10, page_days=3, today=TODAY) as srv:
        yield srv


@pytest.fixture
def setup(tmp_path: Path, server: BillingServer, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[[sources.openai_billing]]\nname = "oa"\nadmin_key_ref = "env:LLMDECK_T_OPENAI_ADMIN"\n'
        f'url = "{server.url}"\ntimeout_seconds = 2\n'
        f'[[sources.anthropic_billing]]\nname = "an"\nadmin_key_ref = "env:LLMDECK_T_ANTHROPIC_ADMIN"\n'
        f'url = "{server.url}"\ntimeout_seconds = 2\n'
        f'[[sources.openrouter_billing]]\nname = "or"\nadmin_key_ref = "env:LLMDECK_T_OPENROUTER_MGMT"\n'
        f'url = "{server.url}"\ntimeout_seconds = 2\n')
    return config, tmp_path / "cache.duckdb"


def run(capsys: pytest.CaptureFixture[str], config: Path, cache: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--config", str(config), "--cache", str(cache), "billing", "sync", *args])
    out, err = capsys.readouterr()
    for key in KEYS.values():  # never a key, nor a recognisable piece of one
        assert key not in out + err and key[-12:] not in out + err
    return code, out, err


def stored(cache: Path, provider: str | None = None) -> dict[str, list[tuple[Any, ...]]]:
    with duckdb.connect(str(cache), read_only=True) as con:
        where = "" if provider is None else f" WHERE provider = '{provider}'"
        return {t: con.execute(f"SELECT * FROM {t}{where} ORDER BY ALL").fetchall()
                for t in ("billing", "billing_usage", "billing_syncs")}


def expected(server: BillingServer, provider: str, start: date = START) -> Decimal:
    """What the cache holds for the provider's generated costs: each line at the stored 10 places."""
    return sum((billing_store.exact(c.dollars) for c in server.data[provider].costs
                if start <= c.day <= TODAY), Decimal(0))


def test_sync_stores_every_provider_exactly(capsys: pytest.CaptureFixture[str], setup: tuple[Path, Path],
                                            server: BillingServer) -> None:
    config, cache = setup
    code, out, err = run(capsys, config, cache, "--since", START.isoformat(), "--json")
    assert (code, err) == (0, "")
    doc = json.loads(out)
    by = {s["provider"]: s for s in doc["sources"]}
    assert set(by) == {"openai", "anthropic", "openrouter"} and doc["exit_code"] == 0
    for provider in ("openai", "anthropic"):
        s = by[provider]
        assert (s["ok"], s["start"], s["end"], s["days"]) == (True, START.isoformat(),
                                                              (TODAY + timedelta(days=1)).isoformat(), 10)
        assert s["lines"] == server.expected_lines(provider)
        assert Decimal(s["totals"]["USD"]) == expected(server, provider)
        assert s["pages"] >= 4  # 10 days at 3 days a page, two endpoints
    assert Decimal(by["openrouter"]["totals"]["USD"]) == expected(server, "openrouter")
    with duckdb.connect(str(cache), read_only=True) as con:
        for provider in ("openai", "anthropic", "openrouter"):
            total = sum((b.amount for b in billing_store.billed(con, START, TODAY + timedelta(days=1),
                                                                provider=provider)), Decimal(0))
            assert total == expected(server, provider), provider
    # the keys went in headers only, as each provider documents
    sent = {r.path: r for r in server.requests}
    assert sent[OPENAI_COSTS].headers["authorization"] == "Bearer " + KEYS["LLMDECK_T_OPENAI_ADMIN"]
    assert sent[ANTHROPIC_COSTS].headers["x-api-key"] == KEYS["LLMDECK_T_ANTHROPIC_ADMIN"]
    assert sent[ANTHROPIC_COSTS].headers["anthropic-version"] == "2023-06-01"
    assert sent[OPENROUTER_ACTIVITY].headers["authorization"] == "Bearer " + KEYS["LLMDECK_T_OPENROUTER_MGMT"]
    assert not any(k in r.path + str(r.query) for r in server.requests for k in KEYS.values())


def test_text_output_and_an_incremental_resync(capsys: pytest.CaptureFixture[str], setup: tuple[Path, Path],
                                               server: BillingServer) -> None:
    config, cache = setup
    code, out, err = run(capsys, config, cache, "--provider", "openai", "--since", START.isoformat())
    assert (code, err) == (0, "")
    [line] = out.splitlines()
    total = f"{expected(server, 'openai'):,f}".rstrip("0")
    assert line.startswith("openai") and " oa " in line and f"{START}..{TODAY}" in line
    assert " 10 days" in line and f"{server.expected_lines('openai')} lines" in line
    assert f"USD {total}" in line and " pages " in line and line.endswith(" s")
    first = stored(cache, "openai")

    # the next sync reads only the last refetch_days (3) again, and replaces them: no duplicates
    before = len(server.requests_to(OPENAI_COSTS))
    code, out, _ = run(capsys, config, cache, "--provider", "openai")
    assert code == 0 and " 3 days" in out
    again = server.requests_to(OPENAI_COSTS)[before:]
    assert again and all(dict(r.query)["start_time"] == str(_unix(TODAY - timedelta(days=2))) for r in again)
    now = stored(cache, "openai")
    assert [r for r in now["billing"] if r[2] < TODAY - timedelta(days=2)] == [
        r for r in first["billing"] if r[2] < TODAY - timedelta(days=2)]
    assert len(now["billing"]) == len(first["billing"])
    assert len(now["billing_syncs"]) == 2


def _unix(day: date) -> int:
    from datetime import UTC, datetime

    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def test_a_401_names_the_secret_to_check_and_keeps_what_was_stored(
        capsys: pytest.CaptureFixture[str], setup: tuple[Path, Path], server: BillingServer) -> None:
    config, cache = setup
    assert run(capsys, config, cache, "--since", START.isoformat())[0] == 0
    kept = stored(cache, "anthropic")
    server.replace(ANTHROPIC_COSTS, json_reply({"type": "error", "error": {
        "type": "authentication_error", "message": "invalid x-api-key"}, "request_id": "req_1"}, 401))
    code, out, err = run(capsys, config, cache)
    assert code == 2
    [line] = err.splitlines()
    assert line.startswith("llmdeck: billing sync: anthropic (source 'an'): HTTP 401: ")
    assert "invalid x-api-key" in line and "env:LLMDECK_T_ANTHROPIC_ADMIN" in line
    assert "openai" in out and "openrouter" in out and "anthropic" not in out  # the others stored
    assert stored(cache, "anthropic") == kept


def test_a_fetch_failing_on_a_later_page_stores_nothing(
        capsys: pytest.CaptureFixture[str], setup: tuple[Path, Path], server: BillingServer) -> None:
    config, cache = setup
    assert run(capsys, config, cache, "--provider", "openai", "--since", START.isoformat())[0] == 0
    kept = stored(cache)
    # page 1 of the re-fetch is fine, then the provider keeps failing
    server.fault(OPENAI_COSTS, *[Reply(500, {"error": {"message": "internal", "type": "server_error",
                                                       "param": None, "code": None}})] * 5, after=1)
    code, out, err = run(capsys, config, cache, "--provider", "openai", "--since", START.isoformat(),
                         "--json")
    assert code == 2
    [source] = json.loads(out)["sources"]
    assert (source["ok"], source["status"], source["kind"]) == (False, 500, "http")
    assert err.startswith("llmdeck: billing sync: openai (source 'oa'): HTTP 500: ")
    assert stored(cache) == kept


def test_a_missing_key_and_no_sources(capsys: pytest.CaptureFixture[str], setup: tuple[Path, Path],
                                      monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config, cache = setup
    monkeypatch.delenv("LLMDECK_T_OPENROUTER_MGMT")
    code, _, err = run(capsys, config, cache, "--provider", "openrouter")
    assert code == 2
    assert "openrouter (source 'or'): env:LLMDECK_T_OPENROUTER_MGMT: the environment variable" in err
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    code, _, err = run(capsys, empty, cache)
    assert code == 1 and "no billing source configured" in err


def test_billing_config_problems_name_file_and_line(capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[[sources.openai_billing]]\nname = "oa"\nadmin_key_ref = "env:K"\npoll_seconds = 30\n'
                      '[[sources.anthropic_billing]]\nname = "an"\nadmin_key_ref = "env:K"\n'
                      'url = "api.anthropic.com"\n')
    code, _, err = run(capsys, config, tmp_path / "c.duckdb")
    assert code == 1
    assert f"{config}:4: sources.openai_billing[0].poll_seconds: must be at least 60" in err
    assert f"{config}:8: sources.anthropic_billing[0].url: not a URL" in err


def test_billing_defaults() -> None:
    from console.config import Config

    c = Config(sources={"openai_billing": [{"name": "a", "admin_key_ref": "env:A"}],
                        "anthropic_billing": [{"name": "b", "admin_key_ref": "env:B"}],
                        "openrouter_billing": [{"name": "c", "admin_key_ref": "env:C"}]})
    a, b, o = c.sources.billing()
    assert (a.url, b.url, o.url) == ("https://api.openai.com", "https://api.anthropic.com",
                                     "https://openrouter.ai")
    assert (a.provider, b.provider, o.provider) == ("openai", "anthropic", "openrouter")
    assert (a.poll_seconds, a.refetch_days, a.since_days, o.since_days) == (300, 3, 35, 31)


def test_a_429_with_retry_after_is_waited_out(capsys: pytest.CaptureFixture[str], setup: tuple[Path, Path],
                                              server: BillingServer) -> None:
    config, cache = setup
    server.fault(OPENAI_COSTS, Reply(429, {"error": {"message": "Rate limit reached", "type": "requests",
                                                     "param": None, "code": "rate_limit_exceeded"}},
                                     headers={"Retry-After": "1"}), after=1)
    code, out, err = run(capsys, config, cache, "--provider", "openai", "--since", START.isoformat(),
                         "--json")
    assert (code, err) == (0, "")
    [source] = json.loads(out)["sources"]
    assert source["ok"] and source["seconds"] >= 1.0
    assert Decimal(source["totals"]["USD"]) == expected(server, "openai")


def test_a_403_and_a_hang_each_say_what_happened(capsys: pytest.CaptureFixture[str], setup: tuple[Path, Path],
                                                 server: BillingServer) -> None:
    from tests.faults.fault_server import Hang

    config, cache = setup
    server.replace(OPENAI_COSTS, json_reply({"error": {
        "message": "You have insufficient permissions for this operation. Missing scopes: api.usage.read.",
        "type": "invalid_request_error", "param": None, "code": None}}, 403))
    server.replace(ANTHROPIC_COSTS, Hang())
    code, out, err = run(capsys, config, cache, "--since", START.isoformat())
    assert code == 2 and "openrouter" in out
    anthropic, openai = sorted(err.splitlines())  # one line each, the others stored
    assert openai.startswith("llmdeck: billing sync: openai (source 'oa'): HTTP 403: ")
    assert "insufficient permissions" in openai and "check the secret env:LLMDECK_T_OPENAI_ADMIN" in openai
    assert anthropic.startswith("llmdeck: billing sync: anthropic (source 'an'): timeout: ")
