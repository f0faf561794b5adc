"""`llmdeck alerts` and `llmdeck silences`: what Prometheus and Alertmanager say is firing, and the silences.

`add_parsers` adds `alerts`, `silences` and (from `console/silence_cli.py`) `silence
create|expire` to the command line: one hook in `console/cli.py`.
Label and annotation text is untrusted: it reaches the terminal through `cell` only.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

from console.safe_text import cell

if TYPE_CHECKING:
    from console.alerts import ActiveAlert, Silence
    from console.config import AlertmanagerSource, Config, HttpSource

EXIT_OK = 0
EXIT_FIRING = 1
EXIT_SOURCE_FAILED = 2

ALERTS_HELP = (
    "Active alerts from every Prometheus (/api/v1/alerts) and Alertmanager (/api/v2/alerts) source,"
    " with silence and inhibit state. Exit code: 0 nothing fires unsilenced, 1 some alert fires and"
    " is neither silenced nor inhibited (when an Alertmanager here holds a Prometheus alert, its"
    " state decides), 2 a source could not be read (whatever the others say)."
)



def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """`alerts`, `silences` and `silence create|expire`."""
    al = sub.add_parser("alerts", help="active alerts from Prometheus and Alertmanager (exit 1 if firing)",
                        description=ALERTS_HELP)
    al.add_argument("--json", action="store_true", help="print one JSON object")
    al.add_argument("--source", metavar="NAME", help="only this Prometheus or Alertmanager source")

    sl = sub.add_parser("silences", help="Alertmanager silences (active and pending; --all adds expired)")
    sl.add_argument("--json", action="store_true", help="print one JSON object")
    sl.add_argument("--source", metavar="NAME", help="only this Alertmanager source")
    sl.add_argument("--all", action="store_true", help="include expired silences")

    from console.silence_cli import add_parser as add_silence_parser

    add_silence_parser(sub)

# -- shared helpers --------------------------------------------------------------------------


def when(t: datetime | None) -> str:
    return f"{t:%Y-%m-%d %H:%M}Z" if t else "-"


def iso(t: datetime | None) -> str | None:
    return t.isoformat(timespec="seconds") + "Z" if t else None


def alert_json(a: ActiveAlert) -> dict[str, Any]:
    return {"source": a.source, "origin": a.origin, "name": a.name, "state": a.state,
            "severity": a.severity, "labels": dict(a.labels), "summary": a.summary,
            "started": iso(a.started), "fingerprint": a.fingerprint, "silenced_by": list(a.silenced_by),
            "inhibited_by": list(a.inhibited_by), "value": a.value, "firing": a.firing}


def silence_json(s: Silence) -> dict[str, Any]:
    return {"source": s.source, "id": s.id, "state": s.state, "matchers": [str(m) for m in s.matchers],
            "starts": iso(s.starts), "ends": iso(s.ends), "created_by": s.created_by, "comment": s.comment}


def labels_text(labels: Sequence[tuple[str, str]], skip: Sequence[str] = ("alertname", "severity")) -> str:
    return ",".join(f"{k}={v}" for k, v in labels if k not in skip)


@dataclass(frozen=True)
class SourceAnswer:
    """One source's answer or its error text."""

    name: str
    kind: str
    rows: tuple[Any, ...]
    error: str = ""


async def _fetch(source: HttpSource, kind: str,
                 read: Callable[[Any], Awaitable[tuple[Any, ...]]]) -> SourceAnswer:
    """Build the source's client, run `read(client)`, close it; any failure becomes `error`."""
    from connectors.alertmanager import AlertmanagerClient
    from connectors.http import SourceError
    from connectors.prometheus import PrometheusClient

    headers, problem = headers_or_error(source)
    if problem:
        return SourceAnswer(source.name, kind, (), problem)
    client_type = AlertmanagerClient if kind == "alertmanager" else PrometheusClient
    client: Any = client_type.for_source(source, headers)  # type: ignore[arg-type]
    try:
        return SourceAnswer(source.name, kind, await read(client))
    except SourceError as exc:
        return SourceAnswer(source.name, kind, (), str(exc))
    finally:
        await client.aclose()


def pick_sources(config: Config, name: str | None, kinds: Sequence[str]) -> list[tuple[HttpSource, str]]:
    """(source, kind) of the configured alert sources, or of the one named; ValueError if unknown."""
    found: list[tuple[HttpSource, str]] = []
    if "prometheus" in kinds:
        found += [(s, "prometheus") for s in config.sources.prometheus if s.alerts or s.name == name]
    if "alertmanager" in kinds:
        found += [(s, "alertmanager") for s in config.sources.alertmanager]
    if name is not None:
        found = [(s, k) for s, k in found if s.name == name]
        if not found:
            raise ValueError(f"no {' or '.join(kinds)} source named {name!r} in the config")
    return found


# -- llmdeck alerts ----------------------------------------------------------------------------


def gather_alerts(config: Config, name: str | None) -> list[SourceAnswer]:
    """Every alert source read once, concurrently."""
    import asyncio

    sources = pick_sources(config, name, ("prometheus", "alertmanager"))

    async def run() -> list[SourceAnswer]:
        return list(await asyncio.gather(*(_fetch(s, k, lambda c: c.alerts()) for s, k in sources)))
    return asyncio.run(run()) if sources else []


def main_alerts(config: Config, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from console.alerts import loud, muted_upstream
    from console.source_views import alerts_in_order

    try:
        fetched = gather_alerts(config, args.source)
    except ValueError as exc:
        err.write(f"llmdeck: alerts: {exc}\n")
        return EXIT_SOURCE_FAILED
    alerts = alerts_in_order([a for f in fetched for a in f.rows])
    paging = loud(alerts)
    failed = [f for f in fetched if f.error]
    code = EXIT_SOURCE_FAILED if failed else EXIT_FIRING if paging else EXIT_OK
    if args.json:
        out.write(json.dumps({
            "alerts": [alert_json(a) | {"pages": a in paging} for a in alerts],
            "sources": [{"name": f.name, "kind": f.kind, "ok": not f.error, "error": f.error or None}
                        for f in fetched],
            "firing": len(paging), "exit_code": code,
        }) + "\n")
        return code
    if not fetched:
        out.write("no alert sources: add [[sources.prometheus]] or [[sources.alertmanager]] to the config\n")
    if alerts:
        out.write(f"{'STATE':<11}  {'ALERT':<28}  {'SEVERITY':<9}  {'SINCE':<17}  {'SOURCE':<12}"
                  f"  {'SILENCED BY':<20}  SUMMARY / LABELS\n")
    for a in alerts:
        state = a.state
        muted = ",".join(i[:8] for i in a.silenced_by) or (
            "inhibited" if a.inhibited_by else "")
        if muted_upstream(a, alerts):
            muted = "in alertmanager"
        detail = a.summary or labels_text(a.labels)
        out.write(f"{state:<11}  {cell(a.name, 28):<28}  {cell(a.severity, 9):<9}  {when(a.started):<17}"
                  f"  {cell(a.source, 12):<12}  {muted:<20}  {cell(detail, 100)}\n")
    muted_count = sum(1 for a in alerts if a.state == "suppressed")
    pending = sum(1 for a in alerts if a.state in ("pending", "unprocessed"))
    out.write(f"{len(paging)} firing (each alert once), {muted_count} silenced or inhibited,"
              f" {pending} pending\n")
    for f in failed:
        err.write(f"llmdeck: {cell(f.error, 300)}\n")
    return code


# -- llmdeck silences --------------------------------------------------------------------------


def main_silences(config: Config, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    import asyncio

    try:
        sources = pick_sources(config, args.source, ("alertmanager",))
    except ValueError as exc:
        err.write(f"llmdeck: silences: {exc}\n")
        return EXIT_SOURCE_FAILED

    async def run() -> list[SourceAnswer]:
        return list(await asyncio.gather(*(_fetch(s, k, lambda c: c.silences()) for s, k in sources)))
    fetched = asyncio.run(run()) if sources else []
    rows: list[Silence] = [s for f in fetched for s in f.rows if args.all or s.state != "expired"]
    rows.sort(key=lambda s: (s.state == "expired", s.ends))
    failed = [f for f in fetched if f.error]
    code = EXIT_SOURCE_FAILED if failed else EXIT_OK
    if args.json:
        out.write(json.dumps({"silences": [silence_json(s) for s in rows],
                              "sources": [{"name": f.name, "ok": not f.error, "error": f.error or None}
                                          for f in fetched]}) + "\n")
        return code
    if not sources:
        out.write("no Alertmanager sources: add [[sources.alertmanager]] to the config\n")
    if rows:
        out.write(f"{'STATE':<8}  {'ID':<36}  {'ENDS':<17}  {'SOURCE':<12}  {'BY':<12}  MATCHERS / COMMENT\n")
    for s in rows:
        matchers = " ".join(str(m) for m in s.matchers)
        out.write(f"{s.state:<8}  {cell(s.id, 36):<36}  {when(s.ends):<17}  {cell(s.source, 12):<12}"
                  f"  {cell(s.created_by, 12):<12}  {cell(matchers, 80)}  # {cell(s.comment, 80)}\n")
    if sources and not rows and not failed:
        out.write("no active or pending silences\n")
    for f in failed:
        err.write(f"llmdeck: {cell(f.error, 300)}\n")
    return code


def one_alertmanager(config: Config, name: str | None) -> AlertmanagerSource:
    """The Alertmanager a silence goes to: the one named, or the only one; ValueError otherwise."""
    sources = config.sources.alertmanager
    if name is not None:
        for s in sources:
            if s.name == name:
                return s
        raise ValueError(f"no [[sources.alertmanager]] named {name!r} in the config")
    if not sources:
        raise ValueError("no [[sources.alertmanager]] in the config")
    if len(sources) > 1:
        names = ", ".join(s.name for s in sources)
        raise ValueError(f"several Alertmanager sources ({names}): choose one with --source")
    return sources[0]


def headers_or_error(source: HttpSource) -> tuple[Mapping[str, str], str]:
    from console.secrets import SecretError, source_secret_headers

    try:
        return source_secret_headers(source), ""
    except SecretError as exc:
        return {}, f"{source.name}: {exc}"
