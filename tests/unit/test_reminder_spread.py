"""A pack may spread an ``at_local_time`` reminder over a window (issue 13, item 2): each visit's text goes at
its own minute of the window, the same one every time it is planned, and never in quiet hours."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from medspa.domain.engine import reminder_times, spread_offset
from medspa.domain.wallclock import at_wall_clock, in_quiet_hours
from medspa.policy.loader import PACKS_DIR, PolicyPackError, load_pack
from medspa.policy.schema import Reminder, Source
from tests.support.packs import BIJOUX, PACKS, visit

IDS = [f"bijoux#apt-{n:04d}" for n in range(200)]
MORNING = BIJOUX.reminders[1]
assert MORNING.name == "morning_of" and MORNING.at_local_time == time(8, 0)


def _spread(pack, at: time, minutes: int, *, quiet: tuple[time, time] | None = None, days_before: int = 0):
    """``pack`` with its morning-of reminder at ``at`` spread over ``minutes`` (and other quiet hours)."""
    morning = Reminder.model_validate({**MORNING.model_dump(), "at_local_time": at, "spread_minutes": minutes,
                                       "days_before": days_before})
    update: dict = {"reminders": [pack.reminders[0], morning]}
    if quiet is not None:
        hours = pack.messaging.quiet_hours.model_copy(update={"starts": quiet[0], "ends": quiet[1]})
        update["messaging"] = pack.messaging.model_copy(update={"quiet_hours": hours})
    return pack.model_copy(update=update)


def _morning_of(pack, appointment_id: str, local_start: datetime, days_ahead: int = 5) -> datetime | None:
    appt = visit(pack, local_start).model_copy(update={"id": appointment_id})
    sent = {r.kind: r.send_at for r in reminder_times(pack, appt, now=appt.starts_at - timedelta(days=days_ahead))}
    return sent.get("morning_of")


def _wall(pack, moment: datetime) -> datetime:
    return moment.astimezone(pack.zone).replace(tzinfo=None)


def test_the_shipped_packs_do_not_spread():
    for location, pack in PACKS.items():
        assert all(r.spread_minutes == 0 for r in pack.reminders), location


def test_spread_zero_is_exactly_the_local_time():
    explicit = _spread(BIJOUX, time(8, 0), 0)
    for appointment_id in IDS[:20]:
        shipped = _morning_of(BIJOUX, appointment_id, datetime(2026, 6, 16, 14, 0))
        assert shipped == _morning_of(explicit, appointment_id, datetime(2026, 6, 16, 14, 0))
        assert shipped == at_wall_clock(date(2026, 6, 16), time(8, 0), BIJOUX.zone)
    assert spread_offset("bijoux#apt-0001", 0) == timedelta()


def test_a_spread_of_sixty_from_0730_sends_each_visit_at_its_own_whole_minute_of_the_window():
    pack = _spread(BIJOUX, time(7, 30), 60, quiet=(time(21, 0), time(7, 0)))  # the whole window is sendable
    start = datetime(2026, 6, 16, 14, 0)
    moments = {i: _morning_of(pack, i, start) for i in IDS}
    opens = datetime(2026, 6, 16, 7, 30)
    for appointment_id, moment in moments.items():
        wall = _wall(pack, moment)
        assert opens <= wall < opens + timedelta(minutes=60), appointment_id
        assert (wall.second, wall.microsecond) == (0, 0)
        assert wall - opens == spread_offset(appointment_id, 60)
    # The same visit lands on the same minute whenever (and however often) it is planned.
    assert all(_morning_of(pack, i, start, days_ahead=2) == moments[i] for i in IDS)
    # Different visits cover the window: 200 ids land on most of its 60 minutes (57.9 expected), none dominating.
    minutes = [int((_wall(pack, m) - opens).total_seconds() // 60) for m in moments.values()]
    assert len(set(minutes)) >= 50
    assert max(minutes.count(m) for m in set(minutes)) <= 12


def test_the_offset_is_a_stable_hash_of_the_id_not_pythons_salted_hash():
    # Pinned: every process (each Lambda invocation, the backtest) must compute the same minutes.
    assert [spread_offset(i, 60) // timedelta(minutes=1) for i in ("bijoux#apt-0000", "bijoux#apt-0001", "x")] == [
        3, 22, 3]
    for appointment_id in IDS[:20]:
        digest = int.from_bytes(hashlib.blake2b(appointment_id.encode(), digest_size=8).digest(), "big")
        assert spread_offset(appointment_id, 60) == timedelta(minutes=digest % 60)
        assert timedelta() <= spread_offset(appointment_id, 7) < timedelta(minutes=7)


def test_a_window_reaching_into_quiet_hours_never_sends_inside_them():
    pack = _spread(BIJOUX, time(7, 30), 60)  # Bijoux's quiet hours end at 08:00
    opens, quiet_ends = datetime(2026, 6, 16, 7, 30), datetime(2026, 6, 16, 8, 0)
    for appointment_id in IDS:
        moment = _morning_of(pack, appointment_id, datetime(2026, 6, 16, 14, 0))
        assert not in_quiet_hours(moment, pack.messaging.quiet_hours, pack.zone)
        planned = opens + spread_offset(appointment_id, 60)
        assert _wall(pack, moment) == max(planned, quiet_ends)  # moved to their end, else its own minute


@pytest.mark.parametrize(
    ("at", "days_before", "local_start"),
    [
        (time(20, 30), 1, datetime(2026, 6, 16, 14, 0)),  # an evening window running into 21:00
        (time(7, 30), 0, datetime(2026, 6, 16, 8, 15)),  # a window past the start itself
        (time(7, 30), 0, datetime(2026, 3, 8, 8, 10)),  # the same on the spring-forward morning
        (time(20, 30), 1, datetime(2026, 11, 2, 9, 0)),  # and the evening of the fall-back day
    ],
)
def test_no_spread_moment_is_in_quiet_hours_or_at_the_start(at, days_before, local_start):
    pack = _spread(BIJOUX, at, 60, days_before=days_before)
    start = local_start.replace(tzinfo=pack.zone).astimezone(UTC)
    for appointment_id in IDS:
        moment = _morning_of(pack, appointment_id, local_start)
        assert moment is not None and moment < start
        assert not in_quiet_hours(moment, pack.messaging.quiet_hours, pack.zone), (appointment_id, moment)


def test_spring_forward_the_window_is_laid_on_the_wall_clock_and_a_skipped_minute_moves_like_any_other():
    # 2026-03-08 in New York: 02:00 EST becomes 03:00 EDT. A window 01:30-02:30 has 02:00-02:29 skipped;
    # those minutes resolve as at_wall_clock resolves 02:30 (forward by the gap), so the real instants are
    # the hour 06:30-07:30 UTC and no two visits' minutes are merged.
    pack = _spread(BIJOUX, time(1, 30), 60, quiet=(time(22, 0), time(1, 0)))
    day = date(2026, 3, 8)
    for appointment_id in IDS:
        moment = _morning_of(pack, appointment_id, datetime(2026, 3, 8, 10, 0))
        wall = (datetime.combine(day, time(1, 30)) + spread_offset(appointment_id, 60)).time()
        assert moment == at_wall_clock(day, wall, pack.zone)
        assert datetime(2026, 3, 8, 6, 30, tzinfo=UTC) <= moment < datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
        assert _wall(pack, moment).hour != 2


def test_spring_forward_morning_window_keeps_its_local_minutes():
    pack = _spread(BIJOUX, time(8, 0), 60)
    for appointment_id in IDS[:50]:
        moment = _morning_of(pack, appointment_id, datetime(2026, 3, 8, 14, 0))
        assert _wall(pack, moment) == datetime(2026, 3, 8, 8, 0) + spread_offset(appointment_id, 60)
        assert moment.utcoffset() == timedelta() and _wall(pack, moment).date() == date(2026, 3, 8)


def test_fall_back_a_repeated_minute_is_its_first_occurrence():
    pack = _spread(BIJOUX, time(1, 0), 60, quiet=(time(22, 0), time(0, 30)))
    for appointment_id in IDS[:50]:
        moment = _morning_of(pack, appointment_id, datetime(2026, 11, 1, 10, 0))
        assert moment == datetime(2026, 11, 1, 5, 0, tzinfo=UTC) + spread_offset(appointment_id, 60)  # EDT, 01:xx


# --- the schema -------------------------------------------------------------------------------------------


def _pack_with(tmp_path: Path, morning: str) -> Path:
    text = (PACKS_DIR / "bijoux.toml").read_text(encoding="utf-8")
    old = 'name = "morning_of"\nat_local_time = 08:00:00\n'
    assert text.count(old) == 1
    target = tmp_path / "bijoux.toml"
    target.write_text(text.replace(old, morning), encoding="utf-8")
    return target


def test_a_pack_may_spread_a_local_time_reminder(tmp_path):
    pack = load_pack(_pack_with(tmp_path, 'name = "morning_of"\nat_local_time = 07:30:00\nspread_minutes = 60\n'))
    assert (pack.reminders[1].at_local_time, pack.reminders[1].spread_minutes) == (time(7, 30), 60)
    last = load_pack(_pack_with(tmp_path, 'name = "morning_of"\nat_local_time = 20:00:00\nspread_minutes = 240\n'))
    assert last.reminders[1].spread_minutes == 240  # 20:00 + 4 h ends at midnight: still that date


@pytest.mark.parametrize(
    ("reminders", "expected"),
    [
        ('name = "morning_of"\nhours_before = 6\nspread_minutes = 30\n',
         "bijoux.toml: reminders[1]: Value error, spread_minutes needs at_local_time: an hours_before reminder is "
         "not spread"),
        ('name = "morning_of"\nat_local_time = 08:00:00\nspread_minutes = 241\n',
         "bijoux.toml: reminders[1].spread_minutes: Input should be less than or equal to 240"),
        ('name = "morning_of"\nat_local_time = 08:00:00\nspread_minutes = -5\n',
         "bijoux.toml: reminders[1].spread_minutes: Input should be greater than or equal to 0"),
        ('name = "morning_of"\nat_local_time = 08:00:00\nspread_minutes = "60"\n',
         "bijoux.toml: reminders[1].spread_minutes: Input should be a valid integer"),
        ('name = "morning_of"\nat_local_time = 23:30:00\nspread_minutes = 45\n',
         "bijoux.toml: reminders[1]: Value error, at_local_time 23:30:00 plus spread_minutes 45 runs past midnight; "
         "the window must end on its local date"),
    ],
)
def test_an_invalid_spread_names_the_file_and_the_field(tmp_path, reminders, expected):
    with pytest.raises(PolicyPackError) as raised:
        load_pack(_pack_with(tmp_path, reminders))
    assert expected in str(raised.value)


def test_the_field_is_documented_in_the_schema():
    description = Reminder.model_json_schema()["properties"]["spread_minutes"]["description"]
    assert "[at_local_time, at_local_time + spread_minutes)" in description and "quiet hours" in description
    assert Reminder(name="m", at_local_time=time(8), source=Source(assumption="t")).spread_minutes == 0
    with pytest.raises(ValidationError):
        Reminder(name="m", hours_before=24, spread_minutes=10, source=Source(assumption="t"))
