"""When a periodic strategy fires: cron expressions read on the wall clock of a time zone.

croniter walks the wall clock (naive local times); each firing is then placed on the time line
with the zone's rules. That is what makes daylight saving time come out right:
- a firing inside a spring-forward gap (02:30 on the night clocks jump from 02:00 to 03:00) is
  placed where that wall time would have been with the old offset, i.e. just after the jump, and
  fires once; when two wall times land on one instant (an hourly schedule's 02:00 and 03:00 that
  night), the instant fires once;
- a wall time the fall-back repeats (01:30 twice) fires once, at its first occurrence.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

from croniter import croniter

MIN_INTERVAL = dt.timedelta(hours=1)  # waves closer than this would flood customers, not survey them
_CHECKED_FIRINGS = 60  # firings looked at to find a schedule's shortest interval


def check_cron(expression: str) -> str:
    """A cron expression of five fields (minute hour day-of-month month day-of-week), or ValueError."""
    fields = expression.split()
    if len(fields) != 5 or not croniter.is_valid(" ".join(fields)):
        raise ValueError(
            f"{expression[:64]!r} is not a cron expression of five fields (minute hour day month weekday), "
            "e.g. '0 10 1 * *' for 10:00 on the first of each month"
        )
    return " ".join(fields)


def next_firing(expression: str, time_zone: str, after: dt.datetime) -> dt.datetime:
    """The first firing strictly after `after` (UTC in, UTC out)."""
    zone = zoneinfo.ZoneInfo(time_zone)
    local = after.astimezone(zone)
    walker = croniter(expression, local.replace(tzinfo=None, fold=0))
    for _ in range(10_000):
        wall: dt.datetime = walker.get_next(dt.datetime)
        # fold=0: a repeated wall time is its first occurrence; a missing one takes the old offset.
        instant = wall.replace(tzinfo=zone, fold=0).astimezone(dt.UTC)
        if instant > after:
            return instant
    raise ValueError(f"the schedule '{expression}' does not fire after {after.isoformat()}")


def shortest_interval(expression: str, time_zone: str, start: dt.datetime) -> dt.timedelta:
    """The shortest time between two firings over the next firings from `start`."""
    shortest: dt.timedelta | None = None
    previous = next_firing(expression, time_zone, start)
    for _ in range(_CHECKED_FIRINGS):
        current = next_firing(expression, time_zone, previous)
        gap = current - previous
        shortest = gap if shortest is None or gap < shortest else shortest
        previous = current
    assert shortest is not None  # noqa: S101 - the loop runs at least once
    return shortest


def due_firing(expression: str, time_zone: str, due: dt.datetime, now: dt.datetime) -> tuple[dt.datetime, int]:
    """The firing to run now, when the one at `due` has come: the latest at or before `now`, and
    how many earlier ones it stands for (a worker that was down catches up once, not per firing)."""
    latest, missed = due, 0
    while True:
        following = next_firing(expression, time_zone, latest)
        if following > now:
            return latest, missed
        latest, missed = following, missed + 1
