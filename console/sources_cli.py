"""`llmdeck sources check`: read every configured source once and say how each is doing."""

from __future__ import annotations

import json
from typing import TextIO

from console.config import Config
from console.formatting import clock
from console.safe_text import cell
from console.source_hub import Reading, run_pollers_once
from console.source_setup import build_pollers
from console.sources import STATE_ORDER, SourceStatus


def check(config: Config, deadline: float = 30.0) -> list[Reading]:
    """Poll every configured HTTP source once, concurrently."""
    return run_pollers_once(build_pollers(config), deadline)


def exit_code(statuses: list[SourceStatus]) -> int:
    """0 all live, 1 some stale, 2 some down."""
    return max((STATE_ORDER[s.state] for s in statuses), default=0)


def as_json(readings: list[Reading]) -> dict[str, object]:
    return {"sources": [
        {
            "name": r.status.name,
            "kind": r.status.kind,
            "state": r.status.state,
            "latency_ms": None if r.status.latency_ms is None else round(r.status.latency_ms, 1),
            "last_ok": r.status.last_ok.isoformat() + "Z" if r.status.last_ok else None,
            "detail": r.status.detail,
            "error": r.status.last_error or None,
        }
        for r in readings
    ]}


def write_text(readings: list[Reading], out: TextIO) -> None:
    if not readings:
        out.write("no sources configured: add [[sources.prometheus]], [[sources.alertmanager]]"
                  " or [[sources.scrape]] to the config\n")
        return
    names = max(6, *(len(cell(r.name, 30)) for r in readings))
    out.write(f"{'SOURCE':<{names}}  {'KIND':<12}  {'STATE':<5}  {'LATENCY':>8}  DETAIL\n")
    for r in readings:
        s = r.status
        latency = "-" if s.latency_ms is None else f"{s.latency_ms:,.0f} ms"
        detail = s.detail
        if s.state != "live" and s.since is not None:
            detail = f"since {clock(s.since)}Z: {detail}"
        out.write(f"{cell(s.name, 30):<{names}}  {s.kind:<12}  {s.state:<5}  {latency:>8}"
                  f"  {cell(detail, 200)}\n")


def main_check(config: Config, as_json_output: bool, out: TextIO) -> int:
    readings = check(config)
    if as_json_output:
        out.write(json.dumps(as_json(readings)) + "\n")
    else:
        write_text(readings, out)
    return exit_code([r.status for r in readings])
