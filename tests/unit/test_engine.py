"""The policy engine against each seed's rules, with plain values and no fakes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from medspa.domain.appointment import PaymentContext
from medspa.domain.engine import (
    PolicyMismatch,
    SettlementStep,
    booking_requirements,
    cancellation_window,
    classify_cancellation,
    confirmation_schedule,
    dunning_schedule,
    early_reschedule_credit,
    fee_for,
    late_arrival_outcome,
    no_show_decision_time,
    prepay_required,
    reminder_times,
    settlement_plan,
    strike_consequences,
    strike_for,
)
from medspa.money import Money
from tests.support.packs import AUSTIN, BIJOUX, GLOW, PACKS, SCOTTSDALE, SPA406, visit




def local(pack, moment):
    return moment.astimezone(pack.zone).replace(tzinfo=None)


def usd(major):
    return Money.of(major, "USD")


def hkd(major):
    return Money.of(major, "HKD")


TUE_10 = datetime(2026, 6, 16, 10, 0)  # a Tuesday, no DST change nearby


# --- Bijoux (000) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "minutes", "fee"),
    [
        ("injection_laser", 15, usd(50)),
        ("injection_laser", 30, usd(50)),
        ("injection_laser", 60, usd(100)),
        ("injection_laser", 90, usd(100)),
        ("esthetician", 60, usd(50)),
        ("wellness", 45, usd(30)),
        ("consultation", 30, usd(50)),
        ("pellet_insertion", 30, usd(50)),
    ],
)
def test_bijoux_fee_schedule(category, minutes, fee):
    appt = visit(BIJOUX, TUE_10, category=category, minutes=minutes)
    for reason in ("late_cancel", "no_show", "late_reschedule"):
        assert fee_for(BIJOUX, appt, reason) == fee


def test_bijoux_names_no_fee_for_an_unknown_category():
    assert fee_for(BIJOUX, visit(BIJOUX, TUE_10, category="massage"), "no_show") is None


def test_bijoux_fee_goes_to_the_card_on_file():
    appt = visit(BIJOUX, TUE_10, card_on_file=True)
    plan = settlement_plan(BIJOUX, appt, fee_for(BIJOUX, appt, "no_show"))
    assert plan.steps == (SettlementStep(source="card_on_file", amount=usd(100)),)


def test_bijoux_gift_certificate_guarantee_covers_what_no_card_can():
    appt = visit(BIJOUX, TUE_10, gift_certificate=usd(40))
    plan = settlement_plan(BIJOUX, appt, usd(100))
    assert [(s.source, s.amount) for s in plan.steps] == [("gift_certificate", usd(40)), ("outstanding_balance", usd(60))]


@pytest.mark.parametrize(
    ("notice", "classification"),
    [
        (timedelta(hours=49), "on_time"),
        (timedelta(hours=48), "on_time"),
        (timedelta(hours=48) - timedelta(seconds=1), "late"),
        (timedelta(0), "late"),
    ],
)
def test_bijoux_48_hour_window_boundary(notice, classification):
    appt = visit(BIJOUX, TUE_10)
    decision = classify_cancellation(BIJOUX, appt, appt.starts_at - notice)
    assert decision.classification == classification
    assert decision.fee_reason == ("late_cancel" if classification == "late" else None)


def test_bijoux_late_reschedule_is_charged():
    appt = visit(BIJOUX, TUE_10)
    next_week = appt.starts_at + timedelta(days=7)
    decision = classify_cancellation(BIJOUX, appt, appt.starts_at - timedelta(hours=30), kind="reschedule", new_start=next_week)
    assert (decision.event, decision.fee_reason) == ("late_reschedule", "late_reschedule")


def test_bijoux_reminders_48h_and_morning_of():
    appt = visit(BIJOUX, TUE_10)
    reminders = reminder_times(BIJOUX, appt, now=appt.starts_at - timedelta(days=10))
    assert [(r.kind, local(BIJOUX, r.send_at)) for r in reminders] == [
        ("48h", datetime(2026, 6, 14, 10, 0)),
        ("morning_of", datetime(2026, 6, 16, 8, 0)),
    ]


def test_bijoux_late_arrival():
    appt = visit(BIJOUX, TUE_10, minutes=60)
    on_time = late_arrival_outcome(BIJOUX, appt, appt.starts_at)
    assert (on_time.status, on_time.hands_on_minutes) == ("on_time", 60)
    shortened = late_arrival_outcome(BIJOUX, appt, appt.starts_at + timedelta(minutes=12))
    assert (shortened.status, shortened.hands_on_minutes, shortened.fee) == ("shortened", 48, None)
    assert shortened.treatment_ends_at == appt.ends_at
    rescheduled = late_arrival_outcome(BIJOUX, appt, appt.starts_at + timedelta(minutes=20))
    assert (rescheduled.status, rescheduled.fee, rescheduled.fee_waived_if_rescheduled_same_day) == ("must_reschedule", usd(100), True)


def test_bijoux_same_day_reschedule_avoids_the_charge():
    appt = visit(BIJOUX, TUE_10)
    late = appt.starts_at + timedelta(minutes=20)
    same_day = classify_cancellation(BIJOUX, appt, late, kind="reschedule", new_start=appt.starts_at + timedelta(hours=6))
    assert (same_day.classification, same_day.fee_waived, same_day.fee_reason) == ("late", True, None)
    next_day = classify_cancellation(BIJOUX, appt, late, kind="reschedule", new_start=appt.starts_at + timedelta(days=1))
    assert (next_day.fee_waived, next_day.fee_reason) == (False, "late_reschedule")


def test_bijoux_third_strike_requires_prepayment():
    assert strike_for(BIJOUX, "no_show").reason == "no_show"
    assert strike_for(BIJOUX, "late_cancel").reason == "late_cancel"
    for event in ("late_reschedule", "spa_initiated", "auto_cancel_unconfirmed", "on_time_cancel", "attended"):
        assert strike_for(BIJOUX, event) is None
    assert [prepay_required(BIJOUX, n) for n in range(5)] == [False, False, False, True, True]
    assert booking_requirements(BIJOUX, party_size=1, strike_count=3).prepay_in_full


def test_bijoux_booking_needs_a_card_or_gift_certificate():
    needs = booking_requirements(BIJOUX, party_size=1, strike_count=0)
    assert (needs.card_on_file, needs.gift_certificate_accepted, needs.prepay_in_full) == (True, True, False)


@pytest.mark.parametrize(("notice_hours", "credited"), [(72, True), (24, True), (23.99, False), (2, False)])
def test_bijoux_prepaid_visit_credited_if_rescheduled_24h_ahead(notice_hours, credited):
    appt = visit(BIJOUX, TUE_10, prepaid=usd(300), card_on_file=True)
    at = appt.starts_at - timedelta(hours=notice_hours)
    assert early_reschedule_credit(BIJOUX, appt, at) == (usd(300) if credited else None)
    decision = classify_cancellation(BIJOUX, appt, at, kind="reschedule", new_start=appt.starts_at + timedelta(days=7))
    assert decision.classification == ("on_time" if credited else "late")


def test_bijoux_prepayment_is_forfeited_on_violation_without_a_second_charge():
    appt = visit(BIJOUX, TUE_10, prepaid=usd(300), card_on_file=True)
    fee = fee_for(BIJOUX, appt, "no_show")
    assert fee == usd(300)
    assert settlement_plan(BIJOUX, appt, fee).steps == (SettlementStep(source="prepayment", amount=usd(300)),)


def test_bijoux_prepayment_smaller_than_the_fee_is_topped_up_from_the_card():
    appt = visit(BIJOUX, TUE_10, prepaid=usd(80), card_on_file=True)
    plan = settlement_plan(BIJOUX, appt, fee_for(BIJOUX, appt, "late_cancel"))
    assert [(s.source, s.amount) for s in plan.steps] == [("prepayment", usd(80)), ("card_on_file", usd(20))]


def test_bijoux_no_show_decided_fifteen_minutes_after_start():
    appt = visit(BIJOUX, TUE_10)
    assert no_show_decision_time(BIJOUX, appt) == appt.starts_at + timedelta(minutes=15)


# --- 406MedicalSpa (001) --------------------------------------------------------------------


@pytest.mark.parametrize("category", ["injection_laser", "esthetician", "facial"])
def test_406_flat_75_for_any_service(category):
    appt = visit(SPA406, TUE_10, category=category, price="900")
    assert {fee_for(SPA406, appt, r) for r in ("late_cancel", "no_show", "late_reschedule")} == {usd(75)}


def test_406_applies_the_booking_deposit_first():
    appt = visit(SPA406, TUE_10, deposit=usd(50), card_on_file=True)
    plan = settlement_plan(SPA406, appt, usd(75))
    assert [(s.source, s.amount) for s in plan.steps] == [("deposit", usd(50)), ("card_on_file", usd(25))]
    assert plan.amount_from("card_on_file") == usd(25)


def test_406_deposit_larger_than_the_fee_covers_it_alone():
    appt = visit(SPA406, TUE_10, deposit=usd(100), card_on_file=True)
    assert settlement_plan(SPA406, appt, usd(75)).steps == (SettlementStep(source="deposit", amount=usd(75)),)


def test_406_without_card_or_deposit_the_fee_is_outstanding():
    plan = settlement_plan(SPA406, visit(SPA406, TUE_10), usd(75))
    assert plan.steps == (SettlementStep(source="outstanding_balance", amount=usd(75)),)


def test_406_settles_against_live_balances():
    appt = visit(SPA406, TUE_10, deposit=usd(50), card_on_file=True)
    plan = settlement_plan(SPA406, appt, usd(75), balances=PaymentContext(card_on_file=False))
    assert plan.steps == (SettlementStep(source="outstanding_balance", amount=usd(75)),)


@pytest.mark.parametrize(
    ("notice", "classification"),
    [(timedelta(hours=24), "on_time"), (timedelta(hours=24) - timedelta(seconds=1), "late"), (timedelta(hours=25), "on_time")],
)
def test_406_24_hour_window_boundary(notice, classification):
    appt = visit(SPA406, TUE_10)
    assert classify_cancellation(SPA406, appt, appt.starts_at - notice).classification == classification


def test_406_confirmation_requested_24h_before_with_deadline_end_of_business_day_before():
    appt = visit(SPA406, datetime(2026, 6, 16, 10, 0))
    schedule = confirmation_schedule(SPA406, appt, now=appt.starts_at - timedelta(days=7))
    assert local(SPA406, schedule.request_at) == datetime(2026, 6, 15, 10, 0)
    assert local(SPA406, schedule.deadline) == datetime(2026, 6, 15, 17, 0)
    assert schedule.auto_cancel


def test_406_monday_visit_deadline_is_friday_close():
    appt = visit(SPA406, datetime(2026, 6, 15, 10, 0))
    schedule = confirmation_schedule(SPA406, appt, now=appt.starts_at - timedelta(days=7))
    assert local(SPA406, schedule.deadline) == datetime(2026, 6, 12, 17, 0)
    assert local(SPA406, schedule.request_at) == datetime(2026, 6, 12, 13, 0)
    assert schedule.auto_cancel


@pytest.mark.parametrize(
    ("visit_day", "deadline_day"),
    [(datetime(2026, 7, 6, 9, 0), datetime(2026, 7, 2, 17, 0)), (datetime(2026, 11, 27, 11, 0), datetime(2026, 11, 25, 17, 0))],
)
def test_406_deadline_skips_holidays(visit_day, deadline_day):
    appt = visit(SPA406, visit_day)
    assert local(SPA406, confirmation_schedule(SPA406, appt, now=appt.starts_at - timedelta(days=20)).deadline) == deadline_day


def test_406_late_booking_gets_a_request_but_no_auto_cancel():
    appt = visit(SPA406, datetime(2026, 6, 16, 10, 0))
    booked = datetime(2026, 6, 15, 16, 0, tzinfo=SPA406.zone)
    schedule = confirmation_schedule(SPA406, appt, now=booked)
    assert (schedule.request_at, schedule.auto_cancel) == (booked.astimezone(UTC), False)


def test_406_request_never_in_quiet_hours():
    appt = visit(SPA406, datetime(2026, 6, 16, 10, 0))
    schedule = confirmation_schedule(SPA406, appt, now=datetime(2026, 6, 15, 23, 0, tzinfo=SPA406.zone))
    assert local(SPA406, schedule.request_at) == datetime(2026, 6, 16, 8, 0)
    assert not schedule.auto_cancel


def test_406_auto_cancel_for_no_confirmation_is_not_a_strike():
    assert strike_for(SPA406, "auto_cancel_unconfirmed") is None
    assert strike_for(SPA406, "no_show") is not None
    assert prepay_required(SPA406, 3) and not prepay_required(SPA406, 2)


def test_406_late_arrival_more_than_ten_minutes():
    appt = visit(SPA406, TUE_10)
    assert late_arrival_outcome(SPA406, appt, appt.starts_at + timedelta(minutes=10)).status == "shortened"
    outcome = late_arrival_outcome(SPA406, appt, appt.starts_at + timedelta(minutes=11))
    assert (outcome.status, outcome.fee, outcome.fee_waived_if_rescheduled_same_day) == ("must_reschedule", usd(75), False)
    assert no_show_decision_time(SPA406, appt) == appt.starts_at + timedelta(minutes=10)


@pytest.mark.parametrize(("notice_hours", "credited"), [(49, True), (48, True), (47, False), (30, False)])
def test_406_prepaid_visit_credited_if_rescheduled_48h_ahead(notice_hours, credited):
    appt = visit(SPA406, TUE_10, prepaid=usd(400), card_on_file=True)
    at = appt.starts_at - timedelta(hours=notice_hours)
    assert early_reschedule_credit(SPA406, appt, at) == (usd(400) if credited else None)
    decision = classify_cancellation(SPA406, appt, at, kind="reschedule", new_start=appt.starts_at + timedelta(days=3))
    assert decision.fee_reason == (None if credited else "late_reschedule")
    if not credited:
        assert fee_for(SPA406, appt, decision.fee_reason) == usd(400)


def test_406_opt_out_words():
    assert {"STOP", "UNSUBSCRIBE"} <= set(SPA406.messaging.keywords.opt_out)


# --- Glow, Lissome HK (003) ---------------------------------------------------------------------


def test_glow_not_prepaid_pays_hk500():
    appt = visit(GLOW, TUE_10, category="laser", price="1800")
    assert fee_for(GLOW, appt, "late_cancel") == hkd(500)
    assert fee_for(GLOW, appt, "no_show") == hkd(500)
    assert settlement_plan(GLOW, appt, hkd(500)).steps == (SettlementStep(source="outstanding_balance", amount=hkd(500)),)


def test_glow_charges_a_card_when_the_client_keeps_one():
    appt = visit(GLOW, TUE_10, category="laser", card_on_file=True)
    assert settlement_plan(GLOW, appt, hkd(500)).steps == (SettlementStep(source="card_on_file", amount=hkd(500)),)


def test_glow_course_session_is_deducted_instead_of_the_fee():
    appt = visit(GLOW, TUE_10, category="laser", price="1800", course_id="course-9", course_session_available=True, card_on_file=True)
    fee = fee_for(GLOW, appt, "late_reschedule")
    assert fee == hkd(1800)
    assert settlement_plan(GLOW, appt, fee).steps == (SettlementStep(source="course_session", amount=hkd(1800), sessions=1),)


def test_glow_account_balance_pays_the_service_then_outstanding():
    appt = visit(GLOW, TUE_10, category="facial", price="1200", prepaid=hkd(800))
    plan = settlement_plan(GLOW, appt, fee_for(GLOW, appt, "no_show"))
    assert [(s.source, s.amount) for s in plan.steps] == [("prepayment", hkd(800)), ("outstanding_balance", hkd(400))]


def test_glow_window_covers_cancel_and_reschedule():
    appt = visit(GLOW, TUE_10)
    for kind in ("cancel", "reschedule"):
        assert classify_cancellation(GLOW, appt, appt.starts_at - timedelta(hours=24), kind=kind).classification == "on_time"
        late = classify_cancellation(GLOW, appt, appt.starts_at - timedelta(hours=23), kind=kind)
        assert late.fee_reason == f"late_{kind}"


def test_glow_late_reschedule_is_a_strike_and_three_restrict_and_prepay():
    assert strike_for(GLOW, "late_reschedule").reason == "late_reschedule"
    assert strike_for(GLOW, "on_time_reschedule") is None
    assert strike_consequences(GLOW, 2) == ()
    assert set(strike_consequences(GLOW, 3)) == {"restrict_booking_times", "prepay_required"}
    needs = booking_requirements(GLOW, party_size=1, strike_count=3)
    assert needs.prepay_in_full and needs.restricted_booking_times


def test_glow_arriving_too_late_is_refused_as_a_late_reschedule():
    appt = visit(GLOW, TUE_10, category="laser")
    outcome = late_arrival_outcome(GLOW, appt, appt.starts_at + timedelta(minutes=16))
    assert (outcome.status, outcome.fee) == ("must_reschedule", hkd(500))


def test_glow_reminders_in_hong_kong_time():
    appt = visit(GLOW, datetime(2026, 3, 8, 15, 0))
    reminders = reminder_times(GLOW, appt, now=appt.starts_at - timedelta(days=5))
    assert [local(GLOW, r.send_at) for r in reminders] == [datetime(2026, 3, 6, 15, 0), datetime(2026, 3, 8, 9, 0)]


# --- MassageLuXe (002) --------------------------------------------------------------------------


def test_massageluxe_charges_the_full_price_of_the_missed_service():
    appt = visit(SCOTTSDALE, TUE_10, category="massage", price="129.99", card_on_file=True)
    for reason in ("late_cancel", "no_show", "late_reschedule"):
        assert fee_for(SCOTTSDALE, appt, reason) == usd("129.99")
    assert settlement_plan(SCOTTSDALE, appt, usd("129.99")).steps == (SettlementStep(source="card_on_file", amount=usd("129.99")),)


def test_massageluxe_group_fee_is_the_booked_price_of_the_party():
    appt = visit(AUSTIN, TUE_10, category="massage", price="520", party=4)
    assert fee_for(AUSTIN, appt, "no_show") == usd(520)


def test_massageluxe_member_credit_is_used_up_instead_of_the_card():
    appt = visit(AUSTIN, TUE_10, category="massage", price="120", course_session_available=True, card_on_file=True)
    assert settlement_plan(AUSTIN, appt, fee_for(AUSTIN, appt, "no_show")).steps == (
        SettlementStep(source="course_session", amount=usd(120), sessions=1),
    )


@pytest.mark.parametrize(
    ("pack", "local_start", "party", "hours"),
    [
        (SCOTTSDALE, TUE_10, 1, 24),
        (SCOTTSDALE, TUE_10, 3, 24),
        (SCOTTSDALE, TUE_10, 4, 48),
        (SCOTTSDALE, datetime(2026, 2, 14, 15, 0), 1, 48),
        (SCOTTSDALE, datetime(2026, 5, 24, 15, 0), 1, 48),
        (SCOTTSDALE, datetime(2026, 5, 9, 15, 0), 1, 24),
        (AUSTIN, TUE_10, 1, 48),
        (AUSTIN, TUE_10, 6, 72),
        (AUSTIN, datetime(2026, 2, 14, 15, 0), 1, 72),
        (AUSTIN, datetime(2026, 4, 4, 15, 0), 1, 72),
        (AUSTIN, datetime(2026, 5, 9, 15, 0), 4, 96),
        (AUSTIN, datetime(2026, 1, 1, 15, 0), 1, 72),  # New Year's Day: a holiday by rule (the dated list had none)
        (AUSTIN, datetime(2026, 1, 7, 15, 0), 1, 48),
        (SCOTTSDALE, datetime(2031, 11, 29, 15, 0), 1, 48),  # Thanksgiving Saturday, five years on
    ],
)
def test_massageluxe_windows_per_location_with_holiday_and_group_overrides(pack, local_start, party, hours):
    appt = visit(pack, local_start, category="massage", party=party)
    assert cancellation_window(pack, appt) == timedelta(hours=hours)
    assert classify_cancellation(pack, appt, appt.starts_at - timedelta(hours=hours)).classification == "on_time"
    assert classify_cancellation(pack, appt, appt.starts_at - timedelta(hours=hours, seconds=-1)).classification == "late"


def test_massageluxe_late_client_loses_hands_on_minutes_and_still_ends_on_time():
    appt = visit(SCOTTSDALE, datetime(2026, 6, 16, 12, 0), category="massage", minutes=60)
    outcome = late_arrival_outcome(SCOTTSDALE, appt, appt.starts_at + timedelta(minutes=15))
    assert (outcome.status, outcome.hands_on_minutes, outcome.fee) == ("shortened", 40, None)
    assert local(SCOTTSDALE, outcome.treatment_ends_at) == datetime(2026, 6, 16, 12, 55)
    early_enough = late_arrival_outcome(SCOTTSDALE, appt, appt.starts_at + timedelta(minutes=5))
    assert (early_enough.status, early_enough.hands_on_minutes) == ("on_time", 50)
    very_late = late_arrival_outcome(SCOTTSDALE, appt, appt.starts_at + timedelta(minutes=45))
    assert (very_late.status, very_late.hands_on_minutes) == ("shortened", 10)
    too_late = late_arrival_outcome(SCOTTSDALE, appt, appt.starts_at + timedelta(minutes=55))
    assert (too_late.status, too_late.fee) == ("must_reschedule", usd(200))


def test_massageluxe_no_show_decided_at_end_of_slot_and_no_strikes():
    appt = visit(SCOTTSDALE, TUE_10, category="massage", minutes=90)
    assert no_show_decision_time(SCOTTSDALE, appt) == appt.starts_at + timedelta(minutes=90)
    assert strike_for(SCOTTSDALE, "no_show") is None
    assert not prepay_required(SCOTTSDALE, 10)


def test_massageluxe_card_on_file_for_parties_of_three_in_scottsdale_always_in_austin():
    assert not booking_requirements(SCOTTSDALE, party_size=2, strike_count=0).card_on_file
    assert booking_requirements(SCOTTSDALE, party_size=3, strike_count=0).card_on_file
    assert booking_requirements(AUSTIN, party_size=1, strike_count=0).card_on_file


# --- every pack ----------------------------------------------------------------------------------


@pytest.mark.parametrize("pack", PACKS.values(), ids=PACKS.keys())
def test_spa_initiated_cancellation_is_never_late(pack):
    appt = visit(pack, TUE_10, category="massage")
    decision = classify_cancellation(pack, appt, appt.starts_at - timedelta(minutes=5), by="spa")
    assert (decision.classification, decision.event, decision.fee_reason) == ("on_time", "spa_initiated", None)
    assert strike_for(pack, decision.event) is None


def test_dunning_retries_in_real_hours_then_outstanding():
    failed = datetime(2026, 3, 7, 12, 0, tzinfo=BIJOUX.zone)
    retries = dunning_schedule(BIJOUX, failed)
    assert [r - failed for r in retries] == [timedelta(hours=24), timedelta(hours=72), timedelta(hours=168)]
    assert BIJOUX.dunning.after_last_retry == "outstanding_balance"
    assert len(dunning_schedule(GLOW, failed)) == 2


def test_an_appointment_from_another_location_is_refused():
    appt = visit(BIJOUX, TUE_10)
    with pytest.raises(PolicyMismatch):
        fee_for(SPA406, appt, "no_show")


def test_a_naive_now_is_refused():
    with pytest.raises(ValueError, match="naive"):
        reminder_times(BIJOUX, visit(BIJOUX, TUE_10), now=datetime(2026, 6, 1))


def test_appointments_store_utc_and_refuse_negative_amounts():
    appt = visit(GLOW, TUE_10)
    assert appt.starts_at.tzinfo is UTC and appt.starts_at.hour == 2
    with pytest.raises(ValueError):
        PaymentContext(deposit=Money(amount=-1, currency="USD"))
