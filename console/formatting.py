"""Compact, colour-free renderings of numbers shared by the console and the CLI."""

from __future__ import annotations

import math
from datetime import datetime, timedelta


def pct(fraction: float | None, digits: int = 2) -> str:
    """0.99873 -> "99.87%"; None -> "-"."""
    if fraction is None or math.isnan(fraction):
        return "-"
    if math.isinf(fraction):
        return "-∞%" if fraction < 0 else "∞%"
    return f"{100 * fraction:.{digits}f}%"


def usd(value: float | None, *, cents: bool = True) -> str:
    """$1,234.56 (or $1,235 without cents; $1.2M above a million)."""
    if value is None:
        return "n/a"
    if abs(value) >= 1e6:
        return f"${value / 1e6:,.1f}M"
    if not cents or abs(value) >= 10_000:
        return f"${value:,.0f}"
    return f"${value:,.2f}"


def ms(value: float | None) -> str:
    """830ms, 2.41s, 1m05s."""
    if value is None:
        return "-"
    if value < 1000:
        return f"{value:.0f}ms"
    if value < 60_000:
        return f"{value / 1000:.2f}s"
    return f"{int(value // 60_000)}m{int(value % 60_000 // 1000):02d}s"


def burn(value: float | None) -> str:
    """A burn rate: 0.42, 14.4, 120; "-" without traffic."""
    if value is None:
        return "-"
    if math.isinf(value):
        return "∞"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def duration(value: timedelta | None) -> str:
    """3d4h, 5h12m, 7m, "now" for zero, "-" for None (not burning)."""
    if value is None:
        return "-"
    seconds = int(value.total_seconds())
    if value >= timedelta(days=3650):
        return ">10y"
    if seconds <= 0:
        return "now"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m" if minutes else f"{seconds}s"


def count(value: int) -> str:
    """12,345 or 1.2M."""
    return f"{value / 1e6:.1f}M" if value >= 10_000_000 else f"{value:,}"


def clock(t: datetime | None) -> str:
    """HH:MM:SS (UTC), "-" for None."""
    return "-" if t is None else t.strftime("%H:%M:%S")


def ago(then: datetime | None, now: datetime) -> str:
    """How long ago: 3s, 2m, 1h05m; "never" for None."""
    if then is None:
        return "never"
    return duration(now - then) if now - then >= timedelta(seconds=1) else "0s"
