"""Naive-UTC time helpers shared by every module (the cache stores naive UTC)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1)


def utc_now() -> datetime:
    """Naive-UTC now (the wall clock)."""
    return datetime.now(UTC).replace(tzinfo=None)


def naive_utc(dt: datetime) -> datetime:
    """`dt` as naive UTC (an aware time is converted, a naive one is taken as UTC)."""
    return dt if dt.tzinfo is None else dt.astimezone(UTC).replace(tzinfo=None)


def from_unix(seconds: float) -> datetime:
    """Unix seconds -> naive UTC."""
    return EPOCH + timedelta(seconds=seconds)


def to_unix(dt: datetime) -> float:
    """Naive UTC (or aware) -> unix seconds."""
    return (naive_utc(dt) - EPOCH).total_seconds()


def floor_to(t: datetime, unit: timedelta) -> datetime:
    """The start of the `unit` bucket holding `t` (buckets aligned on the unix epoch)."""
    step = int(unit.total_seconds() * 1_000_000)
    offset = (t - EPOCH) // timedelta(microseconds=1)
    return EPOCH + timedelta(microseconds=offset - offset % step)


def ceil_to(t: datetime, unit: timedelta) -> datetime:
    """The end of the `unit` bucket holding `t`; `t` itself when it is on a boundary."""
    floored = floor_to(t, unit)
    return floored if floored == t else floored + unit
