"""Canary test (issue 9 §3, RELIABILITY R1.4, R5.5): fake keys in every secret slot never leak.

Every HTTP source kind (Prometheus, Alertmanager, scrape) runs with a bearer token or basic
auth plus two secret headers, billing admin keys and a LiteLLM master key sit in the config,
and one `keyring:` reference lives in the `--insecure-storage` file store. Every source
meets every fault of `canary_world.FAULTS` (success, 401...529, HTML, malformed JSON,
wrong content type, reset, hang, and servers echoing the secret headers back in bodies,
titles, redirects, response headers, reason phrases, content types, API envelopes,
warnings and data). The canaries must appear in none of: CLI stdout/stderr, DEBUG log
records of every logger (httpx and httpcore included), files under the XDG dirs (logs,
state dir with audit.jsonl; only the plaintext secret file itself may hold its value,
and it is 0600), the console's cache file and WAL, screenshots and terminal bytes,
exception text and tracebacks, source statuses, readings and reader pages.

The provider billing admin keys (OpenAI `Authorization: Bearer`, Anthropic `x-api-key`,
OpenRouter's management key) meet the same faults through `llmdeck billing sync`, the
connectors called directly, `cost reconcile`, `status` and the console's cost screen:
the keys must appear in none of stdout/stderr, logs, the cache file, the rendered
screen, exception text or the sync results, while the sources that answer still store.

The receiver's bearer token (`[receiver] token`) meets exporters sending it wrong, not at
all, in other headers, the query, the path, the content type, and planted in the spans
they export: through `llmdeck receive` and the console's own receiver (next to its billing
poller), it must appear in none of the responses (status line, headers, body), stdout/
stderr, logs, the cache file, the source lines or the rendered screens.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import stat
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.canary_world import (
    KEYRING_REF,
    KEYRING_SOURCE,
    MARKER,
    READ_FAULTS,
    RECEIVER_TOKEN_ENV,
    RECEIVER_TOKEN_REF,
    SILENCE_ID,
    Attempt,
    Canaries,
    CanaryServer,
    LeakFinder,
    SourceSpec,
    billing_specs,
    build_config,
    config_dict,
    receiver_attempts,
    send_attempts,
    specs,
    toml_text,
)

ROOT = Path(__file__).resolve().parents[2]
DEBUG_LOGGERS = ("", "httpx", "httpcore", "connectors", "console", "asyncio", "textual")


# ---------------------------------------------------------------------------
# Fixtures: canaries in the environment, every log record at DEBUG, the server
# ---------------------------------------------------------------------------


@pytest.fixture
def canaries(monkeypatch: pytest.MonkeyPatch) -> Canaries:
    found = Canaries.fresh()
    for name, value in found.env.items():
        monkeypatch.setenv(name, value)
    return found


class _Records(logging.Handler):
    """Every record formatted as a log file would hold it (message, args, traceback)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception as exc:  # a record that cannot be formatted still counts
            self.lines.append(f"{record.name} unformattable {record.msg!r} {record.args!r}: {exc!r}")


@pytest.fixture
def debug_logs() -> Iterator[_Records]:
    """A root handler at DEBUG, and every logger that matters at DEBUG (httpx's too, after
    `connectors.http` quieted it at import: as if an operator turned debug logging on)."""
    import connectors.http  # noqa: F401  (its import sets httpx's level; override it after)

    handler = _Records()
    root = logging.getLogger()
    saved = {name: logging.getLogger(name).level for name in DEBUG_LOGGERS}
    root.addHandler(handler)
    for name in DEBUG_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


@pytest.fixture
def server() -> Iterator[CanaryServer]:
    with CanaryServer() as canary_server:
        yield canary_server


def xdg_base() -> Path:
    return Path(os.environ["XDG_STATE_HOME"]).parent


def scan_exception(finder: LeakFinder, where: str, exc: BaseException) -> None:
    """str, repr, the formatted traceback, and every chained exception's str and repr."""
    finder.scan(f"{where} str", str(exc))
    finder.scan(f"{where} repr", repr(exc))
    finder.scan(f"{where} traceback", "".join(traceback.format_exception(exc)))
    seen: BaseException | None = exc.__cause__ or exc.__context__
    depth = 0
    while seen is not None and depth < 8:
        finder.scan(f"{where} chained {type(seen).__name__}", f"{seen} {seen!r}")
        seen = seen.__cause__ or seen.__context__
        depth += 1


# ---------------------------------------------------------------------------
# Pollers: every exception recorded; a parser bug and a bug that quotes a header
# ---------------------------------------------------------------------------


@dataclass
class Recorded:
    """A poller whose every exception is kept (for its traceback) before the hub sees it."""

    wrapped: Any
    errors: list[tuple[str, BaseException]]
    name: str = ""
    kind: str = ""
    interval: float = 1.0
    health: Any = None

    def __post_init__(self) -> None:
        self.name, self.kind = self.wrapped.name, self.wrapped.kind
        self.interval, self.health = self.wrapped.interval, self.wrapped.health

    @property
    def inner(self) -> Any:
        return getattr(self.wrapped, "inner", self.wrapped)

    async def poll(self) -> object:
        try:
            return await self.wrapped.poll()
        except Exception as exc:
            self.errors.append((self.name, exc))
            raise

    async def aclose(self) -> None:
        await self.wrapped.aclose()


@dataclass
class BuggyPoller:
    """A poller with bugs: `int()` of an alert label a server filled with the echoed headers
    (the exception text quotes server text), or (`planted`) an error quoting its own headers."""

    source: Any
    planted: bool = False
    name: str = ""
    kind: str = "prometheus"
    interval: float = 1.0
    health: Any = None
    client: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        from console.sources import SourceHealth

        self.name = f"buggy-{'planted' if self.planted else 'parser'}"
        self.health = SourceHealth(self.name, self.kind)

    async def poll(self) -> object:
        from connectors.http import SourceClient
        from console.secrets import source_secret_headers

        headers = source_secret_headers(self.source)
        if self.client is None:
            self.client = SourceClient.for_source(self.source, headers)
        if self.planted:
            raise RuntimeError(f"cannot use headers {headers}")
        payload = await self.client.get_json("/api/v1/alerts")
        return int(payload["data"]["alerts"][0]["labels"]["note"])

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.aclose()


def buggy_pollers(config: Any) -> list[BuggyPoller]:
    source = next(s for s in config.sources.prometheus if s.name == "prom-echo-data-bearer")
    return [BuggyPoller(source), BuggyPoller(source, planted=True)]


# ---------------------------------------------------------------------------
# Direct connector calls: every read, and the silence plan/apply choke point
# ---------------------------------------------------------------------------


async def _drive(source: Any, kind: str, finder: LeakFinder, errors: list[tuple[str, BaseException]]) -> None:
    from connectors.alertmanager import AlertmanagerClient
    from connectors.http import SourceClient
    from connectors.prometheus import PrometheusClient
    from connectors.scrape import MetricsReader
    from console import silences
    from console.alerts import SilenceMatcher
    from console.secrets import source_secret_headers
    from console.timeutil import utc_now

    headers = source_secret_headers(source)
    now = utc_now()

    async def attempt(what: str, call: Any) -> Any:
        try:
            result = await call
        except Exception as exc:
            errors.append((f"{source.name} {what}", exc))
            return None
        finder.scan(f"{source.name} {what} result", repr(result))
        return result

    if kind == "prom":
        prom = PrometheusClient.for_source(source, headers)
        try:
            await asyncio.gather(
                attempt("query", prom.query("sum(up)", now)),
                attempt("query_range", prom.query_range("sum(up)", now - timedelta(hours=1), now)),
                attempt("alerts", prom.alerts()), attempt("rules", prom.rules("alert")))
        finally:
            await prom.aclose()
    elif kind == "am":
        am = AlertmanagerClient.for_source(source, headers)
        try:
            await asyncio.gather(attempt("alerts", am.alerts()), attempt("silences", am.silences()),
                                 attempt("silence", am.silence(SILENCE_ID)))
            finder.scan(f"{source.name} describe", am.describe_create({"comment": "x"})
                        + am.describe_expire(SILENCE_ID))
            matcher = SilenceMatcher("alertname", "AlwaysFiring", False, True)

            async def write(what: str, planning: Any) -> None:
                plan = await attempt(f"plan {what}", planning)
                if plan is not None:
                    await attempt(f"apply {what}", silences.apply(plan, am, confirm=lambda p: True,
                                                                  dry_run=False, sleep=_no_sleep))
            await asyncio.gather(
                write("create", silences.plan_create(am, [matcher], timedelta(hours=1), "canary")),
                write("expire", silences.plan_expire(am, SILENCE_ID)))
        finally:
            await am.aclose()
    else:
        client = SourceClient.for_source(source, headers)
        try:
            await attempt("scrape", MetricsReader(client, source.metrics_path).read())
        finally:
            await client.aclose()


async def _no_sleep(seconds: float) -> None:
    await asyncio.sleep(0)


def test_pollers_hub_readers_and_connectors_leak_no_canary(
        canaries: Canaries, debug_logs: _Records, server: CanaryServer) -> None:
    from console.promql_charts import promql_detail
    from console.source_hub import SourceHub, run_pollers_once
    from console.source_readers import promql_statuses, read_alerts, read_serving, read_sources
    from console.source_setup import build_pollers

    finder = LeakFinder(canaries)
    basic = [f for f in READ_FAULTS if f == "ok" or f.startswith("echo-")]
    config = build_config(specs(READ_FAULTS, auths=("bearer",)) + specs(basic, auths=("basic",)),
                          server.url, canaries)
    errors: list[tuple[str, BaseException]] = []
    # the console's way runs meanwhile: the hub on its own thread (its readers are read below)
    fresh = [Recorded(p, errors) for p in build_pollers(config)] + \
        [Recorded(b, errors) for b in buggy_pollers(config)]
    hub = SourceHub(fresh)
    hub.start()

    try:
        # 1. the CLI's way: every poller once, concurrently
        pollers = [Recorded(p, errors) for p in build_pollers(config)] + \
            [Recorded(b, errors) for b in buggy_pollers(config)]
        for reading in run_pollers_once(pollers):
            finder.scan(f"run_pollers_once {reading.name} status", repr(reading.status))
            finder.scan(f"run_pollers_once {reading.name} snapshot", repr(reading.snapshot))
        states = {p.name: p.health.status().state for p in pollers}
        details = {p.name: p.health.status().detail for p in pollers if "-ok-" in p.name}
        ok = (states["prom-ok-bearer"], states["am-ok-basic"], states["scrape-ok-bearer"])
        assert ok == ("live", "live", "live"), details
        assert states["prom-echo-401-bearer"] == "down" and states["buggy-planted"] != "live", states

        # 2. every connector call directly, the silence writes through console.silences.apply
        async def drive_all() -> None:
            kinds = {"prometheus": "prom", "alertmanager": "am", "scrape": "scrape"}
            await asyncio.gather(*(
                _drive(source, kinds[section], finder, errors)
                for section in kinds for source in getattr(config.sources, section)))
        asyncio.run(drive_all())

        # 3. the hub's readings and every reader
        deadline = time.monotonic() + 30
        while hub.polls < len(fresh) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert hub.polls >= len(fresh), f"only {hub.polls} of {len(fresh)} sources polled"
        for status in hub.statuses():
            finder.scan(f"hub status {status.name} detail/last_error", f"{status.detail} {status.last_error}")
            finder.scan(f"hub status {status.name}", repr(status))
        finder.scan("read_sources", repr(read_sources(hub.statuses())))
        finder.scan("read_alerts", repr(read_alerts(hub)))
        finder.scan("read_serving", repr(read_serving(hub)))
        statuses = promql_statuses(hub, config)
        finder.scan("promql_statuses", repr(statuses))

        async def chart(spec: Any) -> None:  # a PromQL SLO's detail charts, as the SLO screen asks
            assert spec.promql is not None
            client = getattr(getattr(hub.poller(spec.promql.source), "inner", None), "client", None)
            if client is None:
                return
            try:
                detail = await promql_detail(client, spec, _now(), statuses[spec.name],
                                             timedelta(hours=1), 12)
            except Exception as exc:
                errors.append((f"promql_detail {spec.name}", exc))
            else:
                finder.scan(f"promql_detail {spec.name}", repr(detail))

        async def charts() -> None:
            await asyncio.gather(*(chart(spec) for spec in config.slos))
        hub.call(charts, 20)
    finally:
        hub.stop()

    assert len(errors) > 100, f"the fault paths were not exercised: {len(errors)} errors"
    for where, exc in errors:
        if "cannot use headers" in str(exc):
            continue  # the planted bug's own text; what matters is that the hub masks it (scanned above)
        scan_exception(finder, f"exception {where} ({type(exc).__name__})", exc)
    for number, line in enumerate(debug_logs.lines):
        finder.scan(f"log record {number}", line)
    assert any("httpcore" in line for line in debug_logs.lines), "httpcore DEBUG records were not captured"
    finder.scan_tree(xdg_base())
    finder.assert_clean()


def _now() -> Any:
    from console.timeutil import utc_now

    return utc_now()


# ---------------------------------------------------------------------------
# The command line, in subprocesses
# ---------------------------------------------------------------------------


DEBUG_MAIN = """\
import logging, sys
import connectors.http  # quiets httpx at import; debug logging is turned on after it
logging.basicConfig(filename=sys.argv.pop(1), level=logging.DEBUG,
                    format="%(asctime)s %(name)s %(levelname)s %(message)s")
for name in ("httpx", "httpcore"):
    logging.getLogger(name).setLevel(logging.DEBUG)
from console.cli import main
sys.exit(main(sys.argv[1:]))
"""


@dataclass
class Cli:
    """Runs `llmdeck ARGS` with debug logging to a file under the XDG state home."""

    config: Path
    runs: list[tuple[list[str], subprocess.CompletedProcess[str]]] = field(default_factory=list)

    def many(self, *commands: tuple[str, ...]) -> list[subprocess.CompletedProcess[str]]:
        """Run independent commands at once (they read; the writes go to separate sources)."""
        with concurrent.futures.ThreadPoolExecutor(len(commands)) as pool:
            return list(pool.map(lambda args: self(*args), commands))

    def __call__(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        log = xdg_base() / "logs" / f"llmdeck-{uuid.uuid4().hex[:8]}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        argv = ["--insecure-storage", "--config", str(self.config), *args]
        done = subprocess.run([sys.executable, "-c", DEBUG_MAIN, str(log), *argv], cwd=ROOT, input=stdin,
                              capture_output=True, text=True, timeout=60, env=dict(os.environ), check=False)
        self.runs.append((argv, done))
        return done


def test_cli_commands_leak_no_canary(canaries: Canaries, server: CanaryServer, tmp_path: Path) -> None:
    finder = LeakFinder(canaries)
    faults = ("ok", "401", "429", "502", "html", "malformed", "reset", "hang", "echo-401", "echo-html",
              "echo-redirect", "echo-header", "echo-raw-reason", "echo-type", "echo-envelope",
              "echo-warnings", "echo-data")
    chosen = [*specs(faults), SourceSpec("am", "ok", "keyring"),
              *specs(("write-500-echo", "write-401-echo"), kinds=("am",))]
    config_file = tmp_path / "config.toml"
    config_file.write_text(toml_text(config_dict(chosen, server.url, canaries)))
    cli = Cli(config_file)

    stored = cli("secrets", "set", KEYRING_REF, stdin=canaries.keyring_value + "\n")
    assert stored.returncode == 0, stored.stderr
    create = ("silence", "create", "-m", "alertname=AlwaysFiring", "--for", "1h", "--comment", "canary")
    listed, check, *_, dry, _, sent1, sent2, sent3, _, _, status = cli.many(
        ("secrets", "list", "--json"),
        ("sources", "check", "--json"),
        ("sources", "check"),
        ("alerts", "--json"),
        ("alerts",),
        ("silences", "--json"),
        (*create, "--source", "am-ok-basic", "--dry-run"),
        (*create, "--source", KEYRING_SOURCE, "--dry-run", "--json"),
        (*create, "--source", "am-write-500-echo-bearer", "--yes"),
        (*create, "--source", "am-write-401-echo-basic", "--yes"),
        (*create, "--source", "am-echo-401-bearer", "--yes"),
        ("silence", "expire", SILENCE_ID, "--source", "am-write-500-echo-basic", "--yes", "--json"),
        ("silence", "expire", SILENCE_ID, "--source", "am-echo-data-bearer", "--yes"),
        ("status", "--json"),
    )
    assert '"state": "found"' in listed.stdout and "LLMDECK_T_LITELLM_MASTER" in listed.stdout, listed.stdout
    assert check.returncode == 2 and f'"name": "{KEYRING_SOURCE}"' in check.stdout, check.stderr
    assert '"state": "live"' in check.stdout, check.stdout
    assert dry.returncode == 0 and "***" in dry.stdout, dry.stdout + dry.stderr
    for sent in (sent1, sent2, sent3):
        assert sent.returncode != 0, sent.stdout
    assert '"source": "prometheus:prom-ok-bearer"' in status.stdout, status.stdout + status.stderr

    for argv, done in cli.runs:
        finder.scan(f"`llmdeck {' '.join(argv[3:8])}` stdout", done.stdout)
        finder.scan(f"`llmdeck {' '.join(argv[3:8])}` stderr", done.stderr)
        assert "Traceback" not in done.stderr, f"llmdeck {argv} crashed:\n{done.stderr}"
    secret_file = Path(os.environ["XDG_CONFIG_HOME"]) / "llmdeck" / "secrets" / "llmdeck-test%2Fam-token"
    assert secret_file.read_text() == canaries.keyring_value
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(secret_file.parent.stat().st_mode) == 0o700
    state = Path(os.environ["XDG_STATE_HOME"]) / "llmdeck"
    assert (state / "audit.jsonl").exists(), "the silence attempts were not audited"
    from console.audit import AuditJournal

    assert AuditJournal(state / "audit.jsonl").verify().ok  # the console's and CLI's writes: one chain
    files = finder.scan_tree(xdg_base(), skip=[secret_file])
    assert any(p.suffix == ".log" and p.stat().st_size > 0 for p in files), "no debug log written"
    finder.assert_clean()


# ---------------------------------------------------------------------------
# The console, on its own cache, while sources fail
# ---------------------------------------------------------------------------


CONSOLE_FAULTS = ("ok", "401", "hang", "echo-401", "echo-html", "echo-redirect", "echo-raw-reason",
                  "echo-envelope", "echo-warnings", "echo-data")
SCREENS = ("1", "2", "3", "4", "5", "6", "7", ":sources", ":alerts", ":serving")


async def _visit(pilot: Any, key: str) -> None:
    if key.startswith(":"):
        await pilot.press(":")
        await pilot.press(*key[1:])
        await pilot.press("enter")
    else:
        await pilot.press(key)
    for _ in range(6):
        await pilot.pause(0.05)


@pytest.mark.parametrize("size", [(80, 24), (160, 50)])
async def test_console_screens_leak_no_canary(canaries: Canaries, debug_logs: _Records, server: CanaryServer,
                                              tmp_path: Path, size: tuple[int, int]) -> None:
    from console.app import LlmdeckApp
    from console.backend import Backend
    from console.cache.store import Cache
    from console.launch import CacheProbe
    from console.source_hub import SourceHub
    from console.source_setup import build_pollers
    from tests.tui.screen_text import terminal_bytes

    finder = LeakFinder(canaries)
    cache_path = tmp_path / "console.duckdb"
    config = build_config(specs(CONSOLE_FAULTS, auths=("bearer",)) + specs(("echo-data",), auths=("basic",)),
                          server.url, canaries, cache_path)
    errors: list[tuple[str, BaseException]] = []
    pollers = [Recorded(p, errors) for p in build_pollers(config)] + \
        [Recorded(b, errors) for b in buggy_pollers(config)]
    hub = SourceHub(pollers)
    cache = Cache.open(cache_path)
    shots: list[tuple[str, str]] = []
    try:
        backend = Backend(cache, config, _now, [CacheProbe(cache)], hub=hub)
        app = LlmdeckApp(backend)
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            deadline = time.monotonic() + 20
            while hub.polls < len(pollers) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)  # as many polls as sources (the fast ones poll again meanwhile)
            assert hub.polls >= len(pollers), f"only {hub.polls} polls"
            for key in SCREENS:
                await _visit(pilot, key)
                shots.append((f"screen {key} at {size}", app.export_screenshot()))
                shots.append((f"terminal bytes {key} at {size}", terminal_bytes(app)))
            await _visit(pilot, "2")
            await pilot.press("enter")  # an SLO's detail: PromQL charts through the hub
            for _ in range(10):
                await pilot.pause(0.05)
            shots.append((f"SLO detail at {size}", app.export_screenshot()))
            shots.append((f"SLO detail terminal bytes at {size}", terminal_bytes(app)))
        assert not hub.running
        for status in hub.statuses():
            finder.scan(f"console source {status.name} detail/last_error",
                        f"{status.detail} {status.last_error}")
        assert {s.state for s in hub.statuses()} >= {"live", "down"}
        wal = cache_path.with_name(cache_path.name + ".wal")
        if wal.exists():
            finder.scan_file(wal, f"cache WAL (open) {wal}")
    finally:
        cache.close()
    for where, shot in shots:
        finder.scan(where, shot)
    text = "\n".join(s for w, s in shots if w.startswith("screen 5"))
    assert "prom-echo-401-bearer" in text, "the sources screen did not show the failing sources"
    for where, exc in errors:
        if "cannot use headers" not in str(exc):
            scan_exception(finder, f"console exception {where} ({type(exc).__name__})", exc)
    for number, line in enumerate(debug_logs.lines):
        finder.scan(f"console log record {number}", line)
    finder.scan_file(cache_path, f"cache file {cache_path}")
    finder.scan_tree(tmp_path)
    finder.scan_tree(xdg_base())
    finder.assert_clean()


# ---------------------------------------------------------------------------
# Provider billing: admin keys through the sync, the connectors, reconcile and the cost screen
# ---------------------------------------------------------------------------


BILLING_FAULTS = ("ok", "401", "403", "429", "500", "html", "malformed", "wrong-type", "reset", "hang",
                  "echo-401", "echo-403", "echo-500", "echo-html", "echo-redirect", "echo-header",
                  "echo-raw-reason", "echo-type", "echo-envelope", "echo-data", "echo-ok-headers")
STORING = ("ok", "echo-data", "echo-ok-headers")
"""The faults under which a billing source still answers data (and stores it)."""


def _billing_config(server: CanaryServer, canaries: Canaries, cache_path: Path) -> dict[str, Any]:
    return config_dict([], server.url, canaries, cache_path, billing_specs(BILLING_FAULTS))


def _scan_cache(finder: LeakFinder, cache_path: Path) -> None:
    finder.scan_file(cache_path, f"cache file {cache_path}")
    wal = cache_path.with_name(cache_path.name + ".wal")
    if wal.exists():
        finder.scan_file(wal, f"cache WAL {wal}")


def _scan_urls(finder: LeakFinder, server: CanaryServer) -> None:
    """The URL (path and query) of every request the billing connectors sent: keys go in headers only."""
    assert server.requests, "no request reached the server"
    for r in server.requests:
        finder.scan(f"request URL {r.method} {r.path}", f"{r.path}?{r.query}")


def _planted_rows(cache_path: Path) -> list[tuple[str, str]]:
    """(source, text) of every stored billing name the echo-data servers filled with their headers."""
    import duckdb

    with duckdb.connect(str(cache_path), read_only=True) as con:
        rows = con.execute(
            "SELECT source, concat_ws(' ', model, line_item, project) FROM billing"
            " WHERE source LIKE '%-echo-data'").fetchall()
    return [(str(a), str(b)) for a, b in rows]


def test_billing_cli_leaks_no_admin_key(canaries: Canaries, server: CanaryServer, tmp_path: Path) -> None:
    finder = LeakFinder(canaries)
    cache_path = tmp_path / "billing.duckdb"
    config_file = tmp_path / "config.toml"
    config_file.write_text(toml_text(_billing_config(server, canaries, cache_path)))
    cli = Cli(config_file)

    synced = cli("billing", "sync", "--json")
    assert synced.returncode == 2, synced.stdout + synced.stderr
    doc = json.loads(synced.stdout)
    ok = {s["source"] for s in doc["sources"] if s["ok"]}
    assert {f"{p}-{f}" for p in ("openai", "anthropic") for f in STORING} <= ok, ok
    assert "openrouter-ok" in ok and not any(f"-{f}" in name for name in ok for f in ("401", "500", "reset"))
    failed = [line for line in synced.stderr.splitlines() if line.startswith("llmdeck: billing sync: ")]
    assert len(failed) == len(doc["sources"]) - len(ok) >= 40, synced.stderr
    assert any("HTTP 401" in line and "env:LLMDECK_T_ANTHROPIC_ADMIN" in line for line in failed), failed
    planted = _planted_rows(cache_path)
    assert planted and all("***" in text and MARKER not in text for _, text in planted), planted

    again, anthropic, reconciled, reconciled_json, status = (
        cli("billing", "sync"), cli("billing", "sync", "--provider", "anthropic"),
        *cli.many(("cost", "reconcile", "--days", "9"), ("cost", "reconcile", "--days", "9", "--json"),
                  ("status", "--json")))
    assert again.returncode == anthropic.returncode == 2, again.stderr
    assert "openai-echo-data" in again.stdout and "anthropic-echo-data" in anthropic.stdout
    assert reconciled.returncode in (0, 1) and "openai" in reconciled.stdout, reconciled.stderr
    assert json.loads(reconciled_json.stdout)["rows"], reconciled_json.stdout
    assert '"reconciliation"' in status.stdout, status.stdout + status.stderr

    for argv, done in cli.runs:
        finder.scan(f"`llmdeck {' '.join(argv[3:])}` stdout", done.stdout)
        finder.scan(f"`llmdeck {' '.join(argv[3:])}` stderr", done.stderr)
        assert "Traceback" not in done.stderr, f"llmdeck {argv} crashed:\n{done.stderr}"
    _scan_cache(finder, cache_path)
    _scan_urls(finder, server)
    files = finder.scan_tree(xdg_base())
    assert any(p.suffix == ".log" and p.stat().st_size > 0 for p in files), "no debug log written"
    finder.scan_tree(tmp_path)
    finder.assert_clean()


async def _fetch_billing(source: Any, finder: LeakFinder, errors: list[tuple[str, BaseException]]) -> None:
    """Each connector's fetch (and OpenRouter's balance) called directly, as the sync builds its client."""
    from console.billing_sync import _client, connector
    from console.secrets import header_secret

    today = _now().date()
    client = _client(source, header_secret(source.admin_key_ref, timeout=10.0), None)
    calls: list[tuple[str, Any]] = [("fetch", connector(source.provider)(client, source.name,
                                                                         today - timedelta(days=5), today))]
    if source.provider == "openrouter":
        from connectors.billing_openrouter import balance

        calls.append(("balance", balance(client)))
    try:
        for what, call in calls:
            try:
                result = await call
            except Exception as exc:
                errors.append((f"{source.name} {what}", exc))
            else:
                finder.scan(f"{source.name} {what} result", repr(result))
    finally:
        await client.aclose()


async def _cost_screen(pilot: Any) -> None:
    await pilot.press("3")
    for _ in range(20):
        await pilot.pause(0.05)
    pilot.app.screen.query_one("#cost-billing").focus()
    for _ in range(4):
        await pilot.pause(0.05)


async def test_billing_sync_connectors_and_cost_screen_leak_no_admin_key(
        canaries: Canaries, debug_logs: _Records, server: CanaryServer, tmp_path: Path) -> None:
    from console.app import LlmdeckApp
    from console.backend import Backend
    from console.billing_sync import sync
    from console.cache.store import Cache
    from console.config import Config
    from console.launch import CacheProbe
    from tests.tui.screen_text import screen_text, terminal_bytes

    finder = LeakFinder(canaries)
    cache_path = tmp_path / "console.duckdb"
    config = Config.model_validate(_billing_config(server, canaries, cache_path))
    errors: list[tuple[str, BaseException]] = []
    await asyncio.gather(*(_fetch_billing(s, finder, errors) for s in config.sources.billing()))
    assert len(errors) >= 40, f"the fault paths were not exercised: {len(errors)} errors"

    shots: list[tuple[str, str]] = []
    cache = Cache.open(cache_path)
    try:
        results = await asyncio.to_thread(sync, config, cache)
        assert {r.source for r in results if r.ok} >= {"openai-ok", "anthropic-echo-data", "openrouter-ok"}
        for r in results:
            finder.scan(f"sync result {r.source}", f"{r!r} {r.error}")
        for size in ((80, 24), (160, 50)):
            app = LlmdeckApp(Backend(cache, config, _now, [CacheProbe(cache)]))
            async with app.run_test(size=size) as pilot:
                await _cost_screen(pilot)
                table = app.screen.query_one("#cost-billing")
                assert table.row_count > 0, screen_text(app)
                for row in range(table.row_count):  # each row's detail line (80x24) under the table
                    table.move_cursor(row=row)
                    await pilot.pause()
                    shots.append((f"cost screen row {row} at {size}", screen_text(app)))
                shots.append((f"cost screen at {size}", app.export_screenshot()))
                shots.append((f"cost screen terminal bytes at {size}", terminal_bytes(app)))
        wide = "\n".join(s for w, s in shots if w.startswith("cost screen row") and "160" in w)
        assert "anthropic/anthropic-echo-data fresh" in wide and "x-api-key: ***" in wide, wide
    finally:
        cache.close()
    for where, shot in shots:
        finder.scan(where, shot)
    for where, exc in errors:
        scan_exception(finder, f"billing exception {where} ({type(exc).__name__})", exc)
    for number, line in enumerate(debug_logs.lines):
        finder.scan(f"billing log record {number}", line)
    assert any("httpcore" in line for line in debug_logs.lines), "httpcore DEBUG records were not captured"
    _scan_cache(finder, cache_path)
    _scan_urls(finder, server)
    finder.scan_tree(tmp_path)
    finder.scan_tree(xdg_base())
    finder.assert_clean()


# ---------------------------------------------------------------------------
# The receiver's bearer token: `llmdeck receive`, and the console's own receiver
# ---------------------------------------------------------------------------


def _scan_answers(finder: LeakFinder, answers: list[tuple[Attempt, Any]], where: str) -> None:
    """Every answer's status line, headers and body; each attempt got the status it must."""
    got = [(a.what, r.status_code) for a, r in answers]
    assert got == [(a.what, a.expect) for a, _ in answers], got
    for a, r in answers:
        finder.scan(f"{where} answer to {a.what!r}: status line and headers",
                    f"{r.http_version} {r.status_code} {r.reason_phrase}\n"
                    + "\n".join(f"{k}: {v}" for k, v in r.headers.multi_items()))
        finder.scan(f"{where} answer to {a.what!r}: body", r.content)
        if a.expect == 401:
            assert "www-authenticate" in r.headers or r.content, f"401 to {a.what!r} says nothing"


def _stored_spans(cache_path: Path) -> int:
    import duckdb

    with duckdb.connect(str(cache_path), read_only=True) as con:
        found = con.execute("SELECT count(*) FROM spans").fetchone()
    return int(found[0]) if found else 0


ACCEPTED_SPANS = 2 * sum(1 for a in receiver_attempts("t") if a.expect == 200)


@dataclass
class Received:
    """One run of `llmdeck receive` (debug logging to a file) that was sent `attempts`, then SIGTERM."""

    answers: list[tuple[Attempt, Any]]
    out: str
    err: str
    code: int
    cache_path: Path
    log: Path


def _receive(tmp_path: Path, token: str, attempts: list[Attempt]) -> Received:
    import re
    import signal

    from tests.reliability.faultkit import kill_tree, readline

    cache_path = tmp_path / "receive.duckdb"
    config_file = tmp_path / "config.toml"
    config_file.write_text(f'[cache]\npath = "{cache_path}"\n[receiver]\ntoken = "{RECEIVER_TOKEN_REF}"\n')
    log = xdg_base() / "logs" / "llmdeck-receive.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-c", DEBUG_MAIN, str(log), "--config", str(config_file), "receive",
         "--listen", "127.0.0.1:0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        assert proc.stdout is not None
        first = readline(proc.stdout, 60)
        found = re.search(r"on (http://127\.0\.0\.1:\d+)/v1/traces \(bearer token required\)", first)
        assert found, first
        answers = asyncio.run(send_attempts(found[1], attempts))
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            kill_tree(proc.pid)
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err, err
    return Received(answers, first + out, err, proc.returncode, cache_path, log)


def test_receive_leaks_no_token(canaries: Canaries, tmp_path: Path) -> None:
    finder = LeakFinder(canaries)
    got = _receive(tmp_path, canaries.env[RECEIVER_TOKEN_ENV],
                   receiver_attempts(canaries.env[RECEIVER_TOKEN_ENV]))
    assert f"{ACCEPTED_SPANS} spans stored" in got.err, got.err
    assert _stored_spans(got.cache_path) == ACCEPTED_SPANS

    _scan_answers(finder, got.answers, "llmdeck receive")
    finder.scan("llmdeck receive stdout", got.out)
    finder.scan("llmdeck receive stderr", got.err)
    assert got.log.stat().st_size > 0, "no debug log written"
    _scan_cache(finder, got.cache_path)
    finder.scan_tree(xdg_base())
    finder.scan_tree(tmp_path)
    finder.assert_clean()


async def _console_receiver(tmp_path: Path,
                            attempts: list[Attempt]) -> tuple[list[tuple[Attempt, Any]], Path]:
    """The console's own receiver ([receiver] listen + token, ConsoleWriters) sent `attempts`."""
    from console.cache.store import Cache
    from console.config import Config
    from console.launch import ConsoleWriters

    cache_path = tmp_path / "console-receiver.duckdb"
    config = Config.model_validate({"cache": {"path": str(cache_path)},
                                    "receiver": {"listen": "127.0.0.1:0", "token": RECEIVER_TOKEN_REF}})
    cache = Cache.open(cache_path)
    writers = ConsoleWriters.build(cache, config, None)
    try:
        writers.start()
        assert writers.receiver is not None
        answers = await send_attempts(writers.receiver.url.removesuffix("/v1/traces"), attempts)
    finally:
        writers.close()
        cache.close()
    return answers, cache_path


@pytest.mark.parametrize("where", ["llmdeck receive", "console"])
async def test_a_token_sent_inside_the_spans_is_not_stored(
        canaries: Canaries, debug_logs: _Records, tmp_path: Path, where: str) -> None:
    """An exporter whose spans carry the receiver's token (an app recording its exporter's headers,
    or the token in a service or span name): the receiver knows the value; it must not store it."""
    finder = LeakFinder(canaries)
    token = canaries.env[RECEIVER_TOKEN_ENV]
    attempts = [a for a in receiver_attempts(token, planted=True) if a.expect == 200]
    if where == "console":
        answers, cache_path = await _console_receiver(tmp_path, attempts)
    else:
        got = await asyncio.to_thread(_receive, tmp_path, token, attempts)
        answers, cache_path = got.answers, got.cache_path
        finder.scan("llmdeck receive stderr", got.err)
    _scan_answers(finder, answers, where)
    assert _stored_spans(cache_path) == ACCEPTED_SPANS
    import duckdb

    with duckdb.connect(str(cache_path), read_only=True) as con:  # stored, the token masked
        services = {r[0] for r in con.execute("SELECT DISTINCT service FROM spans").fetchall()}
    assert services == {"svc [SECRET]", "svc"}, services
    for number, line in enumerate(debug_logs.lines):
        finder.scan(f"log record {number}", line)
    _scan_cache(finder, cache_path)
    finder.assert_clean()


CONSOLE_BILLING_FAULTS = ("ok", "401", "echo-401", "echo-403", "echo-html", "echo-header", "echo-raw-reason",
                          "echo-redirect", "echo-data", "reset")


async def test_console_receiver_and_billing_lines_leak_no_secret(
        canaries: Canaries, debug_logs: _Records, server: CanaryServer, tmp_path: Path) -> None:
    """The console as writer: its receiver ([receiver] listen + token) and its billing poller
    (every source's line, a failed fetch's reason) behind one gate, on the sources screen."""
    from console.app import LlmdeckApp
    from console.backend import Backend
    from console.cache.store import Cache
    from console.config import Config
    from console.launch import CacheProbe, ConsoleWriters
    from tests.tui.screen_text import screen_text, terminal_bytes

    finder = LeakFinder(canaries)
    token = canaries.env[RECEIVER_TOKEN_ENV]
    cache_path = tmp_path / "console.duckdb"
    data = config_dict([], server.url, canaries, cache_path, billing_specs(CONSOLE_BILLING_FAULTS))
    data["receiver"] = {"listen": "127.0.0.1:0", "token": RECEIVER_TOKEN_REF}
    config = Config.model_validate(data)
    cache = Cache.open(cache_path)
    writers = ConsoleWriters.build(cache, config, None, first_delay=3600)  # synced below, not by its timer
    shots: list[tuple[str, str]] = []
    statuses: list[Any] = []
    try:
        writers.start()
        assert writers.receiver is not None and writers.billing is not None
        base = writers.receiver.url.removesuffix("/v1/traces")
        answers = await send_attempts(base, receiver_attempts(token))
        results = await asyncio.to_thread(writers.billing.sync_once)
        assert {r.source for r in results if r.ok} >= {"openai-ok", "anthropic-echo-data"}
        backend = Backend(cache, config, _now, [CacheProbe(cache), *writers.probes()])
        app = LlmdeckApp(backend)
        async with app.run_test(size=(160, 50)) as pilot:
            for key in (*SCREENS, "3"):
                await _visit(pilot, key)
                shots.append((f"screen {key}", app.export_screenshot()))
                shots.append((f"screen text {key}", screen_text(app)))
                shots.append((f"terminal bytes {key}", terminal_bytes(app)))
        statuses = [p.source_status() for p in writers.probes()]
    finally:
        writers.close()
        cache.close()
    _scan_answers(finder, answers, "console receiver")
    assert _stored_spans(cache_path) == ACCEPTED_SPANS
    states = {s.name: s.state for s in statuses}
    assert states["otlp receiver"] == "live" and states["openai-ok"] == "live", states
    assert states["anthropic-echo-401"] == "down", states
    for status in statuses:
        finder.scan(f"source line {status.name}", f"{status!r} {status.detail} {status.last_error}")
    sources = "\n".join(s for w, s in shots if w == "screen text :sources")
    assert "anthropic-echo-401" in sources and "otlp receiver" in sources, sources
    for where, shot in shots:
        finder.scan(where, shot)
    for number, line in enumerate(debug_logs.lines):
        finder.scan(f"console log record {number}", line)
    _scan_cache(finder, cache_path)
    finder.scan_tree(tmp_path)
    finder.scan_tree(xdg_base())
    finder.assert_clean()
