"""When the card on file is checked before a visit (issue 11, item 7), with plain values and no fakes.

The rule (``engine.card_check_time``): the pack's ``[card_check]`` days before the visit's local date, at its
local morning time (a wall time, so DST does not move it), outside quiet hours; only for a visit whose fee
would reach the card; not for a visit booked or moved after that moment.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from medspa.domain.engine import card_at_stake, card_check_time, spread_offset
from medspa.money import Money
from medspa.policy.schema import CardCheck, Source
from tests.support.packs import AUSTIN, BIJOUX, GLOW, PACKS, SCOTTSDALE, SPA406, visit

BOOKED = datetime(2026, 3, 1, 15, tzinfo=UTC)
TUE_17 = datetime(2026, 3, 17, 14)  # local wall time of each pack's visit
INJECTION = dict(category="injection_laser", minutes=30, price="450")  # Bijoux: $50 fee


def usd(major: str) -> Money:
    return Money.of(major, "USD")


def test_every_pack_with_a_card_fee_checks_three_days_ahead_at_ten_in_the_morning():
    for location, pack in PACKS.items():
        assert (pack.card_check.days_before, pack.card_check.at_local_time) == (3, time(10)), location


def test_bijoux_checks_the_card_on_the_saturday_morning_before_a_tuesday_visit():
    appt = visit(BIJOUX, TUE_17, **INJECTION, card_on_file=True)
    assert card_check_time(BIJOUX, appt, BOOKED) == datetime(2026, 3, 14, 14, tzinfo=UTC)  # 10:00 EDT


def test_the_check_is_a_local_wall_time_across_the_dst_change():
    """Visit Tue 10 Mar 14:00 EDT; three days before is Sat 7 Mar, still EST: 10:00 EST is 15:00 UTC, not the
    72 elapsed hours (which would be 11:00 EST)."""
    appt = visit(BIJOUX, datetime(2026, 3, 10, 14), **INJECTION, card_on_file=True)
    assert card_check_time(BIJOUX, appt, BOOKED) == datetime(2026, 3, 7, 15, tzinfo=UTC)


@pytest.mark.parametrize(("pack", "expected"), [
    (SPA406, datetime(2026, 3, 14, 16, tzinfo=UTC)),  # 10:00 MDT
    (GLOW, datetime(2026, 3, 14, 2, tzinfo=UTC)),  # 10:00 HKT
    (AUSTIN, datetime(2026, 3, 14, 15, tzinfo=UTC)),  # 10:00 CDT
])
def test_each_location_checks_at_its_own_local_morning(pack, expected):
    appt = visit(pack, TUE_17, category="massage" if pack is AUSTIN else "esthetics", price="300", card_on_file=True)
    assert card_check_time(pack, appt, BOOKED) == expected


def test_a_visit_booked_after_the_check_time_is_not_checked_and_one_booked_at_it_is_checked_at_once():
    appt = visit(BIJOUX, TUE_17, **INJECTION, card_on_file=True)
    check_at = datetime(2026, 3, 14, 14, tzinfo=UTC)
    assert card_check_time(BIJOUX, appt, check_at) == check_at
    assert card_check_time(BIJOUX, appt, check_at + timedelta(seconds=1)) is None
    assert card_check_time(BIJOUX, appt, datetime(2026, 3, 16, 12, tzinfo=UTC)) is None


def test_no_card_on_file_means_no_fee_reaches_a_card_and_no_check():
    appt = visit(BIJOUX, TUE_17, **INJECTION, card_on_file=False)
    assert not card_at_stake(BIJOUX, appt)
    assert card_check_time(BIJOUX, appt, BOOKED) is None


def test_a_visit_prepaid_in_full_is_not_checked_but_one_whose_prepayment_falls_short_of_the_fee_is():
    """Bijoux forfeits the prepayment first; a $10 prepayment leaves $40 of the $50 fee to the card."""
    paid = visit(BIJOUX, TUE_17, **INJECTION, card_on_file=True, prepaid=usd("450"))
    short = visit(BIJOUX, TUE_17, **INJECTION, card_on_file=True, prepaid=usd("10"))
    assert card_check_time(BIJOUX, paid, BOOKED) is None
    assert card_check_time(BIJOUX, short, BOOKED) is not None


def test_406_a_deposit_that_covers_the_75_dollar_fee_leaves_nothing_for_the_card():
    covered = visit(SPA406, TUE_17, category="esthetics", price="300", card_on_file=True, deposit=usd("75"))
    part = visit(SPA406, TUE_17, category="esthetics", price="300", card_on_file=True, deposit=usd("50"))
    assert card_check_time(SPA406, covered, BOOKED) is None
    assert card_check_time(SPA406, part, BOOKED) is not None


def test_glow_a_course_session_pays_the_fee_so_the_card_is_not_checked():
    course = visit(GLOW, TUE_17, category="laser", price="1800", course_id="course-9",
                   course_session_available=True, card_on_file=True)
    assert card_check_time(GLOW, course, BOOKED) is None


def test_massageluxe_scottsdale_checks_only_a_visit_held_with_a_card():
    without = visit(SCOTTSDALE, TUE_17, category="massage", price="120")
    held = visit(SCOTTSDALE, TUE_17, category="massage", price="120", party=3, card_on_file=True)
    assert card_check_time(SCOTTSDALE, without, BOOKED) is None
    assert card_check_time(SCOTTSDALE, held, BOOKED) == datetime(2026, 3, 14, 17, tzinfo=UTC)  # 10:00 MST


def test_a_service_the_pack_names_no_fee_for_is_not_checked():
    appt = visit(BIJOUX, TUE_17, category="retail", card_on_file=True)
    assert not card_at_stake(BIJOUX, appt)
    assert card_check_time(BIJOUX, appt, BOOKED) is None


def test_a_pack_without_a_card_check_never_checks():
    pack = BIJOUX.model_copy(update={"card_check": None})
    assert card_check_time(pack, visit(pack, TUE_17, **INJECTION, card_on_file=True), BOOKED) is None


def test_a_check_time_inside_quiet_hours_moves_to_their_end():
    """A pack asking for 07:00 at Bijoux (quiet until 08:00) checks at 08:00, when the notice may go out."""
    early = CardCheck(days_before=2, at_local_time=time(7), source=Source(assumption="test"))
    pack = BIJOUX.model_copy(update={"card_check": early})
    appt = visit(pack, TUE_17, **INJECTION, card_on_file=True)
    assert card_check_time(pack, appt, BOOKED) == datetime(2026, 3, 15, 12, tzinfo=UTC)  # 08:00 EDT


def test_the_defaults_are_three_days_and_ten_in_the_morning():
    rule = CardCheck(source=Source(assumption="test"))
    assert (rule.days_before, rule.at_local_time) == (3, time(10))
    with pytest.raises(ValueError):
        CardCheck(days_before=0, source=Source(assumption="test"))


def _spread_card_check(pack, at: time, minutes: int):
    rule = CardCheck.model_validate({**pack.card_check.model_dump(), "at_local_time": at, "spread_minutes": minutes})
    return pack.model_copy(update={"card_check": rule})


def test_a_spread_check_goes_at_each_visits_own_minute_of_the_window_the_same_at_every_plan():
    """A chain's 10:00 checks would all ask Stripe in one second (``medspa capacity``); spread over an hour each
    visit keeps its own minute, the one its morning-of reminder would take in the same window."""
    pack = _spread_card_check(BIJOUX, time(10), 60)
    opens = datetime(2026, 3, 14, 14, tzinfo=UTC)  # Saturday 10:00 EDT
    minutes = set()
    for n in range(60):
        appt = visit(pack, TUE_17, **INJECTION, card_on_file=True).model_copy(update={"id": f"bijoux#apt-{n:04d}"})
        check_at = card_check_time(pack, appt, BOOKED)
        assert check_at == opens + spread_offset(appt.id, 60)
        assert card_check_time(pack, appt, check_at) == check_at  # replanned at its moment: unmoved
        minutes.add((check_at - opens) // timedelta(minutes=1))
    assert minutes <= set(range(60)) and len(minutes) > 30


def test_a_spread_check_is_moved_out_of_quiet_hours():
    """Bijoux's quiet hours end at 08:00: a window opening at 07:30 checks nobody before 08:00."""
    pack = _spread_card_check(BIJOUX, time(7, 30), 60)
    opens = datetime(2026, 3, 14, 11, 30, tzinfo=UTC)  # 07:30 EDT
    for n in range(60):
        appt = visit(pack, TUE_17, **INJECTION, card_on_file=True).model_copy(update={"id": f"bijoux#apt-{n:04d}"})
        planned = opens + spread_offset(appt.id, 60)
        assert card_check_time(pack, appt, BOOKED) == max(planned, datetime(2026, 3, 14, 12, tzinfo=UTC))


@pytest.mark.parametrize(("spread", "accepted"), [(0, True), (120, True), (240, True), (241, False), (-1, False)])
def test_a_card_check_window_must_close_on_its_date(spread, accepted):
    late = {"days_before": 3, "at_local_time": time(20), "spread_minutes": spread, "source": Source(assumption="t")}
    if accepted:
        assert CardCheck.model_validate(late).spread_minutes == spread
    else:
        with pytest.raises(ValueError, match="spread_minutes"):
            CardCheck.model_validate(late)
    with pytest.raises(ValueError, match="runs past midnight"):
        CardCheck.model_validate({**late, "at_local_time": time(23, 30), "spread_minutes": 45})
