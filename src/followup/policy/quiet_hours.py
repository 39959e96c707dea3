"""Quiet hours in the customer's own time zone. Pure.

The window may wrap midnight (21:00–08:00) or not (12:00–14:00). A send inside the window moves
to the first minute after it, computed on the local wall clock and converted back to UTC, so a
DST change between now and then is handled by the zone database, not by adding hours.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo


def _in_window(local: dt.time, start: dt.time, end: dt.time) -> bool:
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end


def quiet_until(at: dt.datetime, *, time_zone: str, start: dt.time, end: dt.time) -> dt.datetime | None:
    """The UTC instant quiet hours end, if `at` falls inside them; None if sending is allowed."""
    zone = ZoneInfo(time_zone)
    local = at.astimezone(zone)
    if not _in_window(local.time().replace(tzinfo=None), start, end):
        return None
    release_day = local.date()
    if start > end and local.time().replace(tzinfo=None) >= start:
        release_day += dt.timedelta(days=1)
    naive = dt.datetime.combine(release_day, end)
    release = naive.replace(tzinfo=zone)
    if release <= at:
        # The end's wall time occurs twice (DST fall-back) and `at` is already in the repeated
        # hour: quiet hours end at its second occurrence, never in the past.
        release = naive.replace(tzinfo=zone, fold=1)
    # A wall time skipped by a DST jump does not exist; zoneinfo maps it past the gap, which is the
    # first real minute after quiet hours. Round-trip through UTC to normalise it.
    return release.astimezone(dt.UTC)
