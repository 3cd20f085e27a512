"""Each place a seed is silent or ambiguous: the pack states the reading, and this pins it."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from medspa.domain.engine import (
    cancellation_window,
    classify_cancellation,
    confirmation_schedule,
    fee_for,
    late_arrival_outcome,
    prepay_required,
    reminder_times,
    service_category,
    settlement_plan,
    strike_consequences,
    strike_for,
)
from medspa.money import Money
from medspa.domain.wallclock import at_wall_clock
from tests.support.packs import AUSTIN, BIJOUX, GLOW, SCOTTSDALE, SPA406, visit
TUE_10 = datetime(2026, 6, 16, 10, 0)




def assumes(source, *words):
    """The pack writes the decision down, in words a reviewer can find."""
    assert source.assumption, "the interpretation must be stated in the pack"
    for word in words:
        assert word in source.assumption, f"{word!r} not in {source.assumption!r}"


@pytest.mark.parametrize(("minutes", "fee"), [(30, 50), (31, 100), (45, 100), (59, 100), (60, 100)])
def test_bijoux_injection_between_30_and_60_minutes_is_in_the_100_band(minutes, fee):
    assert fee_for(BIJOUX, visit(BIJOUX, TUE_10, minutes=minutes), "late_cancel") == Money.of(fee, "USD")
    assumes(BIJOUX.fees.schedule[1].source, "31-59", "45-minute")


@pytest.mark.parametrize(
    ("name", "sent_category", "category", "fee"),
    [
        ("Semaglutide Weight Loss Injection", "injection_laser", "wellness", 30),
        ("Weight-loss injection (30 min)", "injection_laser", "wellness", 30),
        ("Myers IV drip", "wellness", "wellness", 30),
        ("Vitamin B12 shot", "injection_laser", "wellness", 30),
        ("Olive Glow Facial", "esthetician", "esthetician", 50),
        ("Botox", "injection_laser", "injection_laser", 50),
    ],
)
def test_bijoux_weight_loss_injection_is_wellness(name, sent_category, category, fee):
    appt = visit(BIJOUX, TUE_10, name=name, category=sent_category, minutes=30)
    assert service_category(BIJOUX, appt.service) == category
    assert fee_for(BIJOUX, appt, "no_show") == Money.of(fee, "USD")
    assumes(BIJOUX.fees.categories[0].source, "wellness ($30)")


def test_406_business_hours_are_stated_and_the_deadline_is_their_close():
    appt = visit(SPA406, datetime(2026, 6, 17, 15, 0))
    deadline = confirmation_schedule(SPA406, appt, now=appt.starts_at - timedelta(days=3)).deadline
    assert deadline.astimezone(SPA406.zone).replace(tzinfo=None) == datetime(2026, 6, 16, 17, 0)
    assumes(SPA406.business_hours.source, "09:00-17:00", "last business day")


def test_406_reserves_the_right_means_the_system_does_it():
    appt = visit(SPA406, TUE_10)
    assert confirmation_schedule(SPA406, appt, now=appt.starts_at - timedelta(days=3)).auto_cancel
    assert fee_for(SPA406, appt, "late_cancel") == Money.of(75, "USD")
    assumes(SPA406.confirmation.source, "automatically")
    assumes(SPA406.fees.source, "automatically")


def test_406_request_never_leaves_less_than_four_hours_to_reply():
    appt = visit(SPA406, datetime(2026, 6, 16, 16, 30))
    schedule = confirmation_schedule(SPA406, appt, now=appt.starts_at - timedelta(days=3))
    assert schedule.deadline - schedule.request_at == timedelta(hours=4)
    assumes(SPA406.confirmation.source, "4 hours before the deadline")


def test_406_booked_after_the_deadline_is_never_auto_cancelled():
    appt = visit(SPA406, datetime(2026, 6, 16, 10, 0))
    schedule = confirmation_schedule(SPA406, appt, now=datetime(2026, 6, 15, 18, 0, tzinfo=SPA406.zone))
    assert schedule.deadline < schedule.request_at and not schedule.auto_cancel


def test_406_late_reschedule_pays_75_but_is_no_strike():
    appt = visit(SPA406, TUE_10)
    decision = classify_cancellation(SPA406, appt, appt.starts_at - timedelta(hours=5), kind="reschedule")
    assert fee_for(SPA406, appt, decision.fee_reason) == Money.of(75, "USD")
    assert strike_for(SPA406, decision.event) is None and strike_for(BIJOUX, decision.event) is None
    assumes(SPA406.cancellation.source, "reschedule")


def test_glow_repeated_means_three():
    assert not prepay_required(GLOW, 2) and prepay_required(GLOW, 3)
    assert "restrict_booking_times" in strike_consequences(GLOW, 3)
    assumes(GLOW.strikes.source, "'Repeated' is taken as 3")


def test_glow_charges_a_card_only_if_one_is_on_file():
    assumes(GLOW.settlement.source, "never mentions a card")
    no_card = settlement_plan(GLOW, visit(GLOW, TUE_10), Money.of(500, "HKD"))
    assert [s.source for s in no_card.steps] == ["outstanding_balance"]


def test_massageluxe_each_spa_sets_its_own_window():
    assert cancellation_window(SCOTTSDALE, visit(SCOTTSDALE, TUE_10)) == timedelta(hours=24)
    assert cancellation_window(AUSTIN, visit(AUSTIN, TUE_10)) == timedelta(hours=48)
    assumes(SCOTTSDALE.cancellation.source, "24 hours")
    assumes(AUSTIN.cancellation.source, "48 hours")


def test_massageluxe_overlapping_overrides_longest_window_wins():
    appt = visit(AUSTIN, datetime(2026, 5, 10, 11, 0), category="massage", party=5)
    assert cancellation_window(AUSTIN, appt) == timedelta(hours=96)
    assumes(AUSTIN.cancellation.party_size_override.source, "longest window wins")


def test_massageluxe_group_price_is_not_multiplied_by_party_size():
    appt = visit(SCOTTSDALE, TUE_10, category="massage", price="480", party=4)
    assert fee_for(SCOTTSDALE, appt, "no_show") == Money.of(480, "USD")
    assumes(SCOTTSDALE.fees.source, "never multiplies")


@pytest.mark.parametrize(("pack", "limit"), [(BIJOUX, 15), (SPA406, 10), (GLOW, 15)])
def test_more_than_n_minutes_late_means_strictly_more(pack, limit):
    appt = visit(pack, TUE_10)
    assert late_arrival_outcome(pack, appt, appt.starts_at + timedelta(minutes=limit)).status == "shortened"
    assert late_arrival_outcome(pack, appt, appt.starts_at + timedelta(minutes=limit, seconds=1)).status == "must_reschedule"
    assumes(pack.late_arrival.source, f"{limit} minutes")


def test_bijoux_prepaid_reschedule_credit_window_replaces_the_48h_window():
    paid = visit(BIJOUX, TUE_10, prepaid=Money.of(250, "USD"))
    unpaid = visit(BIJOUX, TUE_10, card_on_file=True)
    at = paid.starts_at - timedelta(hours=30)
    assert classify_cancellation(BIJOUX, paid, at, kind="reschedule").classification == "on_time"
    assert classify_cancellation(BIJOUX, unpaid, at, kind="reschedule").classification == "late"
    assert classify_cancellation(BIJOUX, paid, at, kind="cancel").classification == "late"
    assumes(BIJOUX.strikes.prepaid_reschedule_credit.source, "replaces the 48-hour window")


def test_prepayment_forfeiture_stands_in_for_the_fee():
    appt = visit(SPA406, TUE_10, prepaid=Money.of(400, "USD"), card_on_file=True)
    plan = settlement_plan(SPA406, appt, fee_for(SPA406, appt, "no_show"))
    assert plan.amount_from("prepayment") == Money.of(400, "USD")
    assert plan.amount_from("card_on_file").is_zero
    assumes(SPA406.fees.prepaid_visit.source, "stands in for the $75 fee")


def test_bijoux_same_day_rule_covers_any_late_reschedule_to_the_same_day():
    appt = visit(BIJOUX, TUE_10)
    decision = classify_cancellation(
        BIJOUX, appt, appt.starts_at - timedelta(hours=3), kind="reschedule", new_start=appt.starts_at + timedelta(hours=5)
    )
    assert decision.fee_waived and decision.fee_reason is None
    assumes(BIJOUX.late_arrival.same_day_reschedule.source, "original appointment's local date")


def test_a_reminder_whose_time_has_passed_is_skipped_not_sent_late():
    appt = visit(BIJOUX, TUE_10)
    kinds = [r.kind for r in reminder_times(BIJOUX, appt, now=appt.starts_at - timedelta(hours=30))]
    assert kinds == ["morning_of"]
    assumes(BIJOUX.reminders[0].source, "no 48h reminder")


def test_quiet_hours_push_a_reminder_later_or_pull_it_to_the_evening_before():
    appt = visit(BIJOUX, datetime(2026, 6, 16, 7, 30))
    reminders = reminder_times(BIJOUX, appt, now=appt.starts_at - timedelta(days=5))
    assert [(r.kind, r.send_at.astimezone(BIJOUX.zone).replace(tzinfo=None)) for r in reminders] == [
        ("48h", datetime(2026, 6, 14, 8, 0)),
        ("morning_of", datetime(2026, 6, 15, 21, 0)),
    ]


def test_reminders_landing_on_the_same_instant_are_sent_once():
    day_ahead = BIJOUX.reminders[0].model_copy(update={"name": "24h", "hours_before": 24})
    day_before_at_ten = BIJOUX.reminders[1].model_copy(update={"at_local_time": time(10, 0), "days_before": 1})
    pack = BIJOUX.model_copy(update={"reminders": [day_ahead, day_before_at_ten]})
    appt = visit(pack, TUE_10)
    assert [r.kind for r in reminder_times(pack, appt, now=appt.starts_at - timedelta(days=3))] == ["24h"]


NEW_YORK = ZoneInfo("America/New_York")


def test_a_nonexistent_local_time_resolves_forward_by_the_gap():
    skipped = at_wall_clock(date(2026, 3, 8), time(2, 30), NEW_YORK)
    assert skipped == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    assert skipped.astimezone(NEW_YORK).replace(tzinfo=None) == datetime(2026, 3, 8, 3, 30)


def test_a_repeated_local_time_is_the_first_occurrence():
    assert at_wall_clock(date(2026, 11, 1), time(1, 30), NEW_YORK) == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)


def test_48_hours_before_is_elapsed_time_across_spring_forward():
    appt = visit(BIJOUX, datetime(2026, 3, 9, 10, 0))
    first = reminder_times(BIJOUX, appt, now=appt.starts_at - timedelta(days=5))[0]
    assert appt.starts_at - first.send_at == timedelta(hours=48)
    assert first.send_at.astimezone(BIJOUX.zone).replace(tzinfo=None) == datetime(2026, 3, 7, 9, 0)
    late = classify_cancellation(BIJOUX, appt, datetime(2026, 3, 7, 10, 0, tzinfo=BIJOUX.zone))
    assert late.notice == timedelta(hours=47) and late.classification == "late"
