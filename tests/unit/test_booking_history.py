"""The appointment as the fold of its booking-site events: any delivery order, the same appointment."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medspa.adapters.store import AppointmentStatus
from medspa.money import Money
from medspa.events import BookingNotYetKnown, parse_booking_event
from medspa.events.examples import EXAMPLES
from medspa.events.history import fold
from tests.support.packs import PACKS

# The Bijoux example: a 30-minute injection on Fri 14 Mar 2025 at 14:30 EDT, 48-hour window.


def event(detail_type: str, version: int, **detail):
    raw = copy.deepcopy(EXAMPLES[detail_type])
    raw["detail"].update(booking_version=version, event_id=f"e-{version}", **detail)
    return parse_booking_event(raw)


def booked(**payment):
    raw = copy.deepcopy(EXAMPLES["AppointmentBooked"])
    raw["detail"]["payment"].update(payment)
    return parse_booking_event(raw)


def test_booked_is_the_snapshot_under_the_policy_in_force() -> None:
    result = fold([booked()], PACKS)
    booking = result.booking
    assert (booking.client_id, booking.policy_version, booking.revision) == ("bijoux#c-1234", "bijoux-2024-04-01.1", 1)
    assert booking.starts_at == datetime(2025, 3, 14, 18, 30, tzinfo=UTC)
    assert booking.status is AppointmentStatus.BOOKED and result.changed_by == "booked"


def test_a_reschedule_moves_the_visit_and_asks_for_a_fresh_confirmation() -> None:
    history = [booked(), event("AppointmentConfirmed", 2),
               event("AppointmentRescheduled", 3, occurred_at="2025-03-05T13:20:00-05:00")]
    booking = fold(history, PACKS).booking
    assert booking.starts_at == datetime(2025, 3, 18, 15, 0, tzinfo=UTC)
    assert booking.status is AppointmentStatus.BOOKED and booking.facts.confirmed_at is None
    assert booking.payment == fold([booked()], PACKS).booking.payment
    assert booking.facts.violations == ()  # nine days' notice


@settings(max_examples=60, deadline=None)
@given(order=st.permutations(range(4)), duplicates=st.lists(st.integers(0, 3), max_size=3))
def test_every_delivery_order_with_duplicates_folds_to_the_same_appointment(order, duplicates) -> None:
    history = [booked(), event("AppointmentRescheduled", 2, occurred_at="2025-03-05T13:20:00-05:00"),
               event("AppointmentConfirmed", 3), event("ClientCheckedIn", 4, arrived_at="2025-03-18T10:58:00-04:00")]
    delivered = [history[i] for i in order] + [history[i] for i in duplicates]
    assert fold(delivered, PACKS) == fold(history, PACKS)
    assert fold(delivered, PACKS).booking.status is AppointmentStatus.CHECKED_IN


def test_a_confirmation_that_overtakes_the_reschedule_does_not_lose_it() -> None:
    confirmed_first = [booked(), event("AppointmentConfirmed", 3)]
    assert fold(confirmed_first, PACKS).booking.starts_at == datetime(2025, 3, 14, 18, 30, tzinfo=UTC)
    late = fold([*confirmed_first, event("AppointmentRescheduled", 2, occurred_at="2025-03-05T13:20:00-05:00")], PACKS)
    assert late.booking.starts_at == datetime(2025, 3, 18, 15, 0, tzinfo=UTC)
    assert (late.booking.booking_version, late.booking.revision) == (3, 3)
    assert late.booking.status is AppointmentStatus.CONFIRMED


def test_a_client_cancel_inside_48_hours_is_a_late_cancel_judged_by_when_the_client_acted() -> None:
    cancel = event("AppointmentCancelled", 2, occurred_at="2025-03-13T10:00:00-04:00")  # 28.5 h before
    facts = fold([booked(), cancel], PACKS).booking.facts
    [violation] = facts.violations
    assert (violation.reason, violation.notice_minutes, violation.fee_waived) == ("late_cancel", 28 * 60 + 30, False)
    assert facts.cancelled_by == "client"


def test_the_spa_cancelling_is_never_the_clients_violation() -> None:
    cancel = event("AppointmentCancelled", 2, occurred_at="2025-03-14T10:00:00-04:00", by="spa")
    assert fold([booked(), cancel], PACKS).booking.facts.violations == ()


def test_exactly_48_hours_notice_is_on_time() -> None:
    cancel = event("AppointmentCancelled", 2, occurred_at="2025-03-12T14:30:00-04:00")
    assert fold([booked(), cancel], PACKS).booking.facts.violations == ()


def test_a_late_reschedule_to_the_same_day_is_recorded_with_its_fee_waived() -> None:
    moved = event("AppointmentRescheduled", 2, occurred_at="2025-03-14T14:50:00-04:00",
                  starts_at="2025-03-14T17:00:00-04:00")
    [violation] = fold([booked(), moved], PACKS).booking.facts.violations
    assert (violation.reason, violation.fee_waived) == ("late_reschedule", True)


def test_a_prepaid_visit_cancelled_in_time_owes_the_prepayment_back_as_credit() -> None:
    prepaid = booked(prepaid={"amount": 42000, "currency": "USD"})
    cancel = event("AppointmentCancelled", 2, occurred_at="2025-03-05T10:00:00-05:00")
    assert fold([prepaid, cancel], PACKS).booking.facts.prepaid_credit == Money(amount=42000, currency="USD")


# A prepayment leaves the visit once (medspa.services.prepayment). The visit: Fri 14 Mar 2025 14:30 EDT.
PREPAID = Money(amount=42000, currency="USD")


def test_a_prepaid_visit_moved_exactly_24_hours_ahead_at_bijoux_becomes_store_credit_and_no_longer_prepaid() -> None:
    moved = event("AppointmentRescheduled", 2, occurred_at="2025-03-13T14:30:00-04:00")
    booking = fold([booked(prepaid=PREPAID.model_dump()), moved], PACKS).booking
    assert (booking.facts.prepaid_credit, booking.payment.prepaid, booking.facts.violations) == (PREPAID, None, ())


def test_a_prepaid_visit_moved_late_is_forfeited_by_that_move_and_a_second_late_move_cannot_reach_it() -> None:
    late = event("AppointmentRescheduled", 2, occurred_at="2025-03-14T10:00:00-04:00")
    later = event("AppointmentRescheduled", 3, occurred_at="2025-03-18T09:00:00-04:00",
                  starts_at="2025-03-20T11:00:00-04:00")
    on_time_cancel = event("AppointmentCancelled", 4, occurred_at="2025-03-18T09:30:00-04:00")
    booking = fold([booked(prepaid=PREPAID.model_dump()), late, later, on_time_cancel], PACKS).booking
    [violation] = booking.facts.violations
    assert (violation.reason, violation.prepayment) == ("late_reschedule", PREPAID)
    assert (booking.payment.prepaid, booking.facts.prepaid_credit) == (None, None)


def test_a_late_move_within_the_same_day_keeps_the_prepayment_with_the_visit() -> None:
    moved = event("AppointmentRescheduled", 2, occurred_at="2025-03-14T14:50:00-04:00",
                  starts_at="2025-03-14T17:00:00-04:00")
    booking = fold([booked(prepaid=PREPAID.model_dump()), moved], PACKS).booking
    [violation] = booking.facts.violations
    assert (violation.fee_waived, violation.prepayment, booking.payment.prepaid) == (True, None, PREPAID)


def test_status_events_after_a_cancellation_do_not_reopen_the_visit() -> None:
    cancel = event("AppointmentCancelled", 2, occurred_at="2025-03-05T10:00:00-05:00")
    after = fold([booked(), cancel, event("AppointmentConfirmed", 3), event("AppointmentMarkedNoShow", 4)], PACKS)
    assert after.booking.status is AppointmentStatus.CANCELLED and after.booking.revision == 4


def test_a_desk_no_show_marks_the_visit() -> None:
    assert fold([booked(), event("AppointmentMarkedNoShow", 2)], PACKS).booking.status is AppointmentStatus.NO_SHOW


def test_events_before_the_booking_are_held() -> None:
    with pytest.raises(BookingNotYetKnown):
        fold([event("AppointmentConfirmed", 2)], PACKS)
