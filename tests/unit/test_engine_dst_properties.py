"""Properties of the time rules across DST changes in every zone a pack uses.

Start times are drawn near each zone's transitions, both as UTC instants and as local wall times
(including the skipped and repeated hours, with either fold), with ``now`` anywhere from ten days
before to an hour after the start. Derandomized so that every run checks the same cases.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medspa.domain.appointment import Appointment, PaymentContext, Service
from medspa.domain.engine import (
    classify_cancellation,
    confirmation_schedule,
    dunning_schedule,
    late_arrival_outcome,
    no_show_decision_time,
    reminder_times,
)
from medspa.money import Money
from medspa.domain.wallclock import at_wall_clock, in_quiet_hours, local_date
from medspa.policy.loader import load_packs

PACKS = load_packs()
PACK_LIST = [PACKS[k] for k in sorted(PACKS)]
ZONES_UNDER_TEST = {"America/New_York", "America/Denver", "America/Chicago", "America/Phoenix", "Asia/Hong_Kong"}
US_CHANGES = [datetime(2026, 3, 8, 8, 0, tzinfo=UTC), datetime(2026, 11, 1, 7, 0, tzinfo=UTC)]
PROPERTY = settings(derandomize=True, max_examples=200, deadline=None, database=None)


def _transitions(zone) -> list[datetime]:
    found, moment = [], datetime(2026, 1, 1, tzinfo=UTC)
    offset = moment.astimezone(zone).utcoffset()
    while moment.year == 2026:
        moment += timedelta(hours=1)
        if (now_offset := moment.astimezone(zone).utcoffset()) != offset:
            found.append(moment)
            offset = now_offset
    return found or US_CHANGES


TRANSITIONS = {p.location_id: _transitions(p.zone) for p in PACK_LIST}


def test_every_pack_zone_is_under_test():
    assert {p.location.time_zone for p in PACK_LIST} <= ZONES_UNDER_TEST
    assert all(len(TRANSITIONS[k]) == 2 for k in TRANSITIONS)


@st.composite
def bookings(draw):
    pack = draw(st.sampled_from(PACK_LIST))
    change = draw(st.sampled_from(TRANSITIONS[pack.location_id]))
    if draw(st.booleans()):
        starts_at = change + timedelta(minutes=draw(st.integers(-4 * 24 * 60, 4 * 24 * 60)))
    else:
        day = local_date(change, pack.zone) + timedelta(days=draw(st.integers(-2, 2)))
        wall = time(draw(st.integers(0, 23)), draw(st.sampled_from([0, 1, 15, 30, 45, 59])))
        starts_at = datetime.combine(day, wall, tzinfo=pack.zone).replace(fold=draw(st.integers(0, 1)))
    appt = Appointment(
        id="appt-p",
        client_id="client-p",
        location_id=pack.location_id,
        policy_version=pack.policy_version,
        service=Service(
            name="service",
            category=draw(st.sampled_from(["injection_laser", "esthetician", "massage"])),
            duration_minutes=draw(st.sampled_from([15, 30, 45, 60, 90])),
            price=Money(amount=draw(st.integers(0, 100_000)), currency=pack.currency),
        ),
        starts_at=starts_at,
        party_size=draw(st.integers(1, 6)),
        payment=PaymentContext(
            card_on_file=draw(st.booleans()),
            prepaid=draw(st.none() | st.builds(lambda a: Money(amount=a, currency=pack.currency), st.integers(0, 50_000))),
        ),
    )
    now = appt.starts_at - timedelta(minutes=draw(st.integers(-60, 10 * 24 * 60)))
    return pack, appt, now


def _quiet(pack, moment):
    return in_quiet_hours(moment, pack.messaging.quiet_hours, pack.zone)


@PROPERTY
@given(bookings())
def test_reminders_are_after_now_before_start_and_outside_quiet_hours(booking):
    pack, appt, now = booking
    reminders = reminder_times(pack, appt, now)
    sends = [r.send_at for r in reminders]
    assert sends == sorted(set(sends))
    for send_at in sends:
        assert now <= send_at < appt.starts_at
        assert not _quiet(pack, send_at)


@PROPERTY
@given(bookings())
def test_hours_before_reminders_are_exact_elapsed_hours_when_sendable(booking):
    pack, appt, now = booking
    sends = {r.send_at for r in reminder_times(pack, appt, now)}
    for reminder in pack.reminders:
        if reminder.hours_before is None:
            continue
        candidate = appt.starts_at - timedelta(hours=reminder.hours_before)
        if candidate >= now and not _quiet(pack, candidate):
            assert candidate in sends
            assert (appt.starts_at - candidate).total_seconds() == reminder.hours_before * 3600


@PROPERTY
@given(bookings())
def test_morning_of_keeps_its_wall_clock_on_the_local_date(booking):
    pack, appt, now = booking
    by_kind = {r.kind: r.send_at for r in reminder_times(pack, appt, now)}
    for reminder in pack.reminders:
        if reminder.at_local_time is None:
            continue
        day = local_date(appt.starts_at, pack.zone) - timedelta(days=reminder.days_before)
        candidate = at_wall_clock(day, reminder.at_local_time, pack.zone)
        if now <= candidate < appt.starts_at and not _quiet(pack, candidate):
            sent = by_kind[reminder.name].astimezone(pack.zone)
            assert (sent.date(), sent.time()) == (day, reminder.at_local_time)


@PROPERTY
@given(bookings())
def test_confirmation_deadline_is_a_business_close_before_start(booking):
    pack, appt, now = booking
    schedule = confirmation_schedule(pack, appt, now)
    if pack.confirmation is None:
        assert schedule.request_at is schedule.deadline is None and not schedule.auto_cancel
        return
    deadline = schedule.deadline.astimezone(pack.zone)
    assert schedule.deadline < appt.starts_at
    assert deadline.date() < local_date(appt.starts_at, pack.zone)
    opening = pack.business_hours.on(deadline.date())
    assert opening is not None and deadline.time() == opening.closes
    if schedule.request_at is not None:
        assert now <= schedule.request_at < appt.starts_at and not _quiet(pack, schedule.request_at)
    if schedule.auto_cancel:
        assert schedule.request_at <= schedule.deadline - timedelta(hours=pack.confirmation.min_reply_hours)


@PROPERTY
@given(bookings(), st.integers(-6 * 24 * 60, 120), st.integers(0, 6 * 24 * 60), st.sampled_from(["cancel", "reschedule"]))
def test_classification_is_monotonic_in_cancelled_at(booking, minutes_before_start, gap, kind):
    pack, appt, _ = booking
    earlier = appt.starts_at - timedelta(minutes=minutes_before_start + gap)
    later = appt.starts_at - timedelta(minutes=minutes_before_start)
    first = classify_cancellation(pack, appt, earlier, kind=kind)
    second = classify_cancellation(pack, appt, later, kind=kind)
    assert not (first.classification == "late" and second.classification == "on_time")
    assert first.window == second.window


@PROPERTY
@given(bookings(), st.integers(-30, 200), st.integers(0, 200))
def test_late_arrival_only_gets_worse_and_never_runs_over(booking, minutes_late, extra):
    pack, appt, _ = booking
    rank = {"on_time": 0, "shortened": 1, "must_reschedule": 2}
    first = late_arrival_outcome(pack, appt, appt.starts_at + timedelta(minutes=minutes_late))
    second = late_arrival_outcome(pack, appt, appt.starts_at + timedelta(minutes=minutes_late + extra))
    assert rank[first.status] <= rank[second.status]
    assert second.hands_on_minutes <= first.hands_on_minutes <= appt.service.duration_minutes
    assert first.treatment_ends_at <= appt.ends_at
    assert no_show_decision_time(pack, appt) >= appt.starts_at


@PROPERTY
@given(bookings())
def test_dunning_retries_are_elapsed_hours(booking):
    pack, _, failed_at = booking
    retries = dunning_schedule(pack, failed_at)
    assert [(r - failed_at).total_seconds() / 3600 for r in retries] == pack.dunning.retry_after_hours


@pytest.mark.parametrize("pack", [PACKS["bijoux"], PACKS["massageluxe-austin"]], ids=lambda p: p.location_id)
@pytest.mark.parametrize("day", [date(2026, 3, 8), date(2026, 11, 1)])
def test_morning_of_on_dst_change_days_in_zones_with_dst(pack, day):
    appt = Appointment(
        id="a",
        client_id="c",
        location_id=pack.location_id,
        policy_version=pack.policy_version,
        service=Service(name="s", category="massage", duration_minutes=60, price=Money.zero(pack.currency)),
        starts_at=datetime.combine(day, time(11, 0), tzinfo=pack.zone),
    )
    morning = next(r for r in reminder_times(pack, appt, appt.starts_at - timedelta(days=7)) if r.kind == "morning_of")
    local = morning.send_at.astimezone(pack.zone)
    assert (local.date(), local.time()) == (day, pack.reminders[1].at_local_time)


def test_start_in_the_skipped_hour_resolves_forward_and_morning_of_moves_to_the_evening_before():
    pack = PACKS["bijoux"]
    appt = Appointment(
        id="a",
        client_id="c",
        location_id="bijoux",
        policy_version=pack.policy_version,
        service=Service(name="s", category="wellness", duration_minutes=30, price=Money.zero("USD")),
        starts_at=datetime(2026, 3, 8, 2, 30, tzinfo=pack.zone),
    )
    assert appt.starts_at == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    reminders = reminder_times(pack, appt, appt.starts_at - timedelta(days=5))
    by_kind = {r.kind: r.send_at.astimezone(pack.zone).replace(tzinfo=None) for r in reminders}
    assert by_kind == {"48h": datetime(2026, 3, 6, 8, 0), "morning_of": datetime(2026, 3, 7, 21, 0)}
