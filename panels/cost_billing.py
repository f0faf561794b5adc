"""The cost screen's "Billed vs estimated" section: cells and lines from a frozen BillingSection.

Narrow terminals (under 120 columns) get fewer, shorter columns (day as MM-DD, the cause's code
only) and the highlighted row's cause detail on the line under the table; every untrusted
string (model, provider, source, cause detail) goes through `console.safe_text`, truncated
with an ellipsis, never wrapped inside a cell.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from rich.text import Text
from textual.content import Content

from console.billing_view import SETUP_HINT, STALE_POLLS, BilledRow, BillingFreshness, BillingSection
from console.formatting import duration
from console.safe_text import cell
from panels.text import safe_cell

WIDE_COLUMNS = ("day", "provider", "model", "billed", "estimated", "gap", "share", "cause", "detail")
NARROW_COLUMNS = ("day", "model", "billed", "est.", "gap", "share", "cause")
CENT = Decimal("0.01")
LINE_CAP = 400
"""Longest line before the screen's own cut (`text-overflow: ellipsis` at the terminal's width)."""
NARROW_BELOW = 120
"""Terminal width under which the narrow columns are used."""


def money(value: Decimal | None, signed: bool = False) -> str:
    """Dollars to the cent ("-" when unknown); a gap carries its sign."""
    if value is None:
        return "-"
    cents = value.quantize(CENT)
    sign = "-" if cents < 0 else "+" if signed and cents > 0 else ""
    return f"{sign}${abs(cents):,.2f}"


def share(value: Decimal | None) -> str:
    if value is None:
        return "-"
    whole = (value * 100).quantize(Decimal(1))
    return "0%" if not whole else f"{whole:+}%"


def _cause_cell(row: BilledRow, max_chars: int) -> Text:
    style = "bold" if row.flagged else "dim"
    code = row.cause + (f" +{row.more_causes}" if row.more_causes else "")
    return safe_cell(code, max_chars, style=style)


def cells(row: BilledRow, narrow: bool) -> list[Text | str]:
    """One row's cells for the narrow or wide column set."""
    amounts: list[Text | str] = [money(row.billed), money(row.estimated), money(row.gap, signed=True),
                                 share(row.share)]
    if narrow:
        return [day_text(row.day, True), safe_cell(row.model, 16), *amounts, _cause_cell(row, 14)]
    return [row.day.isoformat(), safe_cell(row.provider, 12), safe_cell(row.model, 28), *amounts,
            _cause_cell(row, 16), safe_cell(row.detail, 52)]


def source_line(s: BillingFreshness, narrow: bool = False) -> str:
    """`openai/oa fresh · synced 4m ago · days 2026-11-01..2026-11-07` (stale: and its limit)."""
    age = duration(s.age) if s.age >= timedelta(seconds=1) else "0s"
    line = (f"{cell(s.provider, 20)}/{cell(s.source, 30)} {'STALE' if s.stale else 'fresh'} · synced"
            f" {age} ago · days {day_text(s.first_day, narrow)}..{day_text(s.last_day, narrow)}")
    if s.stale:
        limit = duration(timedelta(seconds=s.poll_seconds * STALE_POLLS))
        line += f" · no sync for over {STALE_POLLS}× poll_seconds ({limit})"
    return line


def day_text(day: date, narrow: bool) -> str:
    return day.strftime("%m-%d") if narrow else day.isoformat()


def sources_text(section: BillingSection | None, narrow: bool = False) -> Content:
    """One line per billing source with its freshness, or the hint to configure one."""
    if section is None:
        return Content("billing: not available from this cache")
    if not section.synced:
        if section.configured:
            names = ", ".join(cell(n, 30) for n in section.configured)
            return Content(cell(f"run `llmdeck billing sync` for the configured {names}", LINE_CAP))
        return Content(cell(SETUP_HINT, LINE_CAP))
    lines = [source_line(s, narrow) for s in section.sources]
    if section.unconfigured:
        lines.append(section.unconfigured)
    return Content("\n".join(cell(line, LINE_CAP) for line in lines))


def detail_text(row: BilledRow | None, narrow: bool) -> Content:
    """The highlighted (else first) row's cause and detail on one line (narrow only)."""
    if row is None or not narrow:
        return Content("")
    what = f"{day_text(row.day, True)} {row.provider}/{row.model}: {row.cause} — {row.detail}"
    return Content(cell(what, LINE_CAP))


def title(section: BillingSection | None) -> str:
    if section is None:
        return "Billed vs estimated"
    if not section.synced:
        return "Billed vs estimated: no billing source has synced yet"
    flagged = sum(1 for r in section.rows if r.flagged)
    return (f"Billed vs estimated (last {section.days} completed UTC days; {flagged} gap"
            f"{'' if flagged == 1 else 's'} over {section.threshold:.0%})")
