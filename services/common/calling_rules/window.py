"""The calling window in local time, across time zones and DST changes."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo


def _local(at: datetime, zone: str) -> datetime:
    return at.astimezone(ZoneInfo(zone))


def in_window(at: datetime, zone: str, start: time, end: time) -> bool:
    """Is `at` (aware) inside [start, end) on the wall clock of `zone`?"""
    return start <= _local(at, zone).time().replace(tzinfo=None) < end


def next_window_start(at: datetime, zone: str, start: time, end: time) -> datetime:
    """The earliest instant >= `at` inside the window in `zone` (UTC)."""
    if in_window(at, zone, start, end):
        return at.astimezone(UTC)
    tz = ZoneInfo(zone)
    day = _local(at, zone).date()
    for offset in range(3):
        opening = datetime.combine(day + timedelta(days=offset), start, tzinfo=tz)
        # A wall time inside a DST gap maps to the instant just after the gap.
        instant = opening.astimezone(UTC)
        if instant >= at and in_window(instant, zone, start, end):
            return instant
        if instant >= at:
            # The opening fell in a gap that swallows the window's start: step to the first
            # whole minute inside it.
            probe = instant
            while probe < instant + timedelta(hours=3) and not in_window(probe, zone, start, end):
                probe += timedelta(minutes=1)
            if in_window(probe, zone, start, end):
                return probe
    raise ValueError(f"no calling window in {zone} after {at.isoformat()}")


def next_time_in_all(
    at: datetime, zones: Iterable[str], start: time, end: time, horizon: timedelta
) -> datetime | None:
    """The earliest instant >= `at` inside the window in every zone, within `horizon`."""
    zones = sorted(set(zones))
    limit = at + horizon
    t = at.astimezone(UTC)
    while t <= limit:
        late = [next_window_start(t, z, start, end) for z in zones]
        latest = max(late)
        if latest == t:
            return t
        t = latest
        # Now inside the latest-opening zone's window; if another zone has closed meanwhile
        # the next pass moves to its next opening. Each pass advances, so this ends.
    return None
