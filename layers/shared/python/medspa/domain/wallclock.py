"""Wall-clock arithmetic in a location's time zone.

Policies speak two kinds of time. Elapsed time ("48 hours before", "24 hours notice") is done in
UTC, so a DST change never stretches or shrinks it. Wall-clock time ("the morning of", "end of
business day", quiet hours) is done in the location's zone. A wall time that does not exist (the
spring-forward gap) or exists twice (fall-back) resolves with ``fold=0`` (PEP 495): a skipped
02:30 becomes 03:30 daylight time, the instant it names under the offset before the change, and a
repeated 01:30 is the first of the two.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from medspa.policy.schema import BusinessHours, QuietHours

_ONE_DAY = timedelta(days=1)


def local_date(moment: datetime, zone: ZoneInfo) -> date:
    return moment.astimezone(zone).date()


def at_wall_clock(day: date, wall: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, wall, tzinfo=zone).astimezone(UTC)


def in_quiet_hours(moment: datetime, quiet: QuietHours, zone: ZoneInfo) -> bool:
    return quiet.contains(moment.astimezone(zone).time())


def end_of_quiet_hours(moment: datetime, quiet: QuietHours, zone: ZoneInfo) -> datetime:
    """The first sendable instant after ``moment``, which lies inside quiet hours."""
    local = moment.astimezone(zone)
    wraps_past_midnight = quiet.starts > quiet.ends and local.time() > quiet.starts
    return at_wall_clock(local.date() + (_ONE_DAY if wraps_past_midnight else timedelta()), quiet.ends, zone)


def last_quiet_start_before(moment: datetime, quiet: QuietHours, zone: ZoneInfo) -> datetime:
    """The last sendable instant of the most recent evening before ``moment``."""
    day = local_date(moment, zone)
    candidate = at_wall_clock(day, quiet.starts, zone)
    return candidate if candidate < moment else at_wall_clock(day - _ONE_DAY, quiet.starts, zone)


def end_of_business_day_before(day: date, hours: BusinessHours, zone: ZoneInfo) -> datetime:
    """Closing time of the last business day strictly before the local ``day``."""
    for back in range(1, 367):
        previous = day - timedelta(days=back)
        if (opening := hours.on(previous)) is not None:
            return at_wall_clock(previous, opening.closes, zone)
    raise ValueError(f"no business day in the year before {day}")
