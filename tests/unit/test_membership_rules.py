"""MassageLuXe Austin's membership rules, pinned through the fold of a membership's events and drafts.

Seed 002 ("Freezing Membership", "Cancelling a Membership", "About Your MassageLuXe/FaceLuXe Membership") and
the pack's ``[membership.*]`` sections: dues drafted monthly on the draft day (the last day of a shorter month),
unused services roll over, a freeze form back within 48 hours after one full dues payment, $5.00 a month while
frozen kept as LuXe Bux, an unfreeze that moves the draft day to the present day and drafts full dues with the
LuXe Bux first, a cancellation form back within 48 hours after the first full draft, LuXe Bux forfeited and
services good for 60 days from the last billing date or paper certificates "exactly 6 months from the date of
issue", paid-in-full memberships that expire on their date with no grace, and declined drafts retried
1, 3 and 7 days after the draft date.

Every membership here is built as the booking site and the drafts service would record it: catalogue events,
each with the next ``membership_version``, and ``Draft`` facts for what ``next_draft`` planned, decided by the
daily 09:00 (local) job. Times are America/Chicago wall times unless written in UTC.
"""

from __future__ import annotations

from calendar import monthrange
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medspa.domain.membership import (
    Certificate,
    Draft,
    DraftKind,
    Membership,
    MembershipStatus,
    PlannedDraft,
    draft_date,
    following_draft,
    months_later,
    next_draft,
)
from medspa.events.catalogue import (
    CertificateRedeemed,
    BookingClient,
    MembershipCancellationFormCompleted,
    MembershipCancellationRequested,
    MembershipEvent,
    MembershipFreezeFormCompleted,
    MembershipFreezeRequested,
    MembershipPlan,
    MembershipPlanChanged,
    MembershipStarted,
    MembershipUnfreezeRequested,
    ServiceCreditRedeemed,
)
from medspa.events.membership_history import MembershipNotYetKnown, fold_membership, moment_of, terms_of
from medspa.money import Money
from medspa.policy.loader import load_packs

AUSTIN = load_packs()["massageluxe-austin"]
TERMS = terms_of(AUSTIN)
CHICAGO = ZoneInfo("America/Chicago")
DRAFT_TIME = time(9, 0)  # [membership.drafts] at_local_time
PROPERTY = settings(derandomize=True, max_examples=150, deadline=None, database=None)
KEY = "massageluxe#mem-0917"


def usd(cents: int) -> Money:
    return Money(amount=cents, currency="USD")


LUXE_60 = MembershipPlan(name="LuXe 60", monthly_dues=usd(7900), service_credits_per_month=1)
LUXE_DUO = MembershipPlan(name="LuXe Duo", monthly_dues=usd(14900), service_credits_per_month=2)
HYDROLUXE = MembershipPlan(name="HydroLuXe", monthly_dues=usd(1500), service_credits_per_month=0)
NO_CREDIT = usd(0)


def local(year: int, month: int, day: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=CHICAGO)


class Member:
    """One membership's history: its events as the booking site sends them and its drafts as the ledger keeps
    them (planned by ``next_draft``, charged ``to_charge``, decided at the first 09:00 job on or after the due
    date that follows everything already recorded)."""

    def __init__(self, starts_on: date, plan: MembershipPlan = LUXE_60, paid_in_full_until: date | None = None,
                 signed_at: datetime | None = None) -> None:
        self.events: list[MembershipEvent] = []
        self.drafts: list[Draft] = []
        self.send(MembershipStarted, signed_at or local(starts_on.year, starts_on.month, starts_on.day, 8),
                  client=BookingClient(id="c-7781", first_name="Dana"), location_id="massageluxe-austin", plan=plan,
                  starts_on=starts_on, paid_in_full_until=paid_in_full_until)

    # --- the booking site ---------------------------------------------------------------------------

    def send(self, model: type[MembershipEvent], at: datetime, **detail: object) -> MembershipEvent:
        version = len(self.events) + 1
        event = model(event_id=f"ml-evt-{version:04d}", occurred_at=at, spa_id="massageluxe",  # type: ignore[arg-type]
                      membership_id="mem-0917", membership_version=version, **detail)
        self.events.append(event)
        return event

    def freeze_requested(self, at: datetime) -> None:
        self.send(MembershipFreezeRequested, at, form_sent_at=at)

    def freeze_form(self, at: datetime) -> None:
        self.send(MembershipFreezeFormCompleted, at, submitted_at=at)

    def freeze(self, at: datetime) -> None:
        """The front desk sends the form and the member sends it back within the hour."""
        self.freeze_requested(at)
        self.freeze_form(at + timedelta(hours=1))

    def unfreeze(self, at: datetime) -> None:
        self.send(MembershipUnfreezeRequested, at)

    def cancellation_requested(self, at: datetime) -> None:
        self.send(MembershipCancellationRequested, at, form_sent_at=at)

    def cancellation_form(self, at: datetime, paper_certificates: bool = False) -> None:
        self.send(MembershipCancellationFormCompleted, at, submitted_at=at, paper_certificates=paper_certificates)

    def cancel(self, at: datetime, paper_certificates: bool = False) -> None:
        self.cancellation_requested(at)
        self.cancellation_form(at + timedelta(hours=1), paper_certificates)

    def redeem(self, at: datetime, credits: int = 1) -> None:
        self.send(ServiceCreditRedeemed, at, redeemed_at=at, location_id="massageluxe-austin", credits=credits)

    def change_plan(self, at: datetime, plan: MembershipPlan) -> None:
        self.send(MembershipPlanChanged, at, plan=plan)

    # --- the drafts service -------------------------------------------------------------------------

    @property
    def latest(self) -> datetime:
        return max([moment_of(e) for e in self.events] + [d.decided_at for d in self.drafts])

    def membership(self, as_of: date | None = None) -> Membership:
        return fold_membership(self.events, self.drafts, AUSTIN, as_of or self.latest.astimezone(CHICAGO).date())

    def planned(self, as_of: date | None = None) -> PlannedDraft | None:
        return next_draft(self.membership(as_of), TERMS)

    def draft(self, succeeded: bool = True) -> Draft:
        planned = self.planned()
        assert planned is not None, "nothing to draft"
        decided_at = datetime.combine(planned.attempt_on, DRAFT_TIME, CHICAGO)
        while decided_at <= self.latest:
            decided_at += timedelta(days=1)
        fact = Draft(due_on=planned.due_on, kind=planned.kind, attempt=planned.attempt, charged=planned.to_charge,
                     store_credit_used=planned.store_credit_to_use, succeeded=succeeded, decided_at=decided_at)
        self.drafts.append(fact)
        return fact

    def pays(self, months: int) -> None:
        for _ in range(months):
            assert self.draft().succeeded

    def declines(self, times: int) -> None:
        for _ in range(times):
            self.draft(succeeded=False)


def dues(due_on: date, plan: MembershipPlan = LUXE_60, attempt: int = 1,
         store_credit: Money = NO_CREDIT, attempt_on: date | None = None) -> PlannedDraft:
    return PlannedDraft(due_on=due_on, attempt_on=attempt_on or due_on, kind=DraftKind.DUES, attempt=attempt,
                        amount=plan.monthly_dues, store_credit_to_use=store_credit)


def frozen_dues(due_on: date, attempt: int = 1, attempt_on: date | None = None) -> PlannedDraft:
    return PlannedDraft(due_on=due_on, attempt_on=attempt_on or due_on, kind=DraftKind.FROZEN, attempt=attempt,
                        amount=usd(500), store_credit_to_use=NO_CREDIT)


def outcomes(membership: Membership) -> list[str]:
    return [d.outcome for d in membership.decisions]


def last(membership: Membership) -> tuple[str, str]:
    decision = membership.decisions[-1]
    return decision.outcome, decision.reason


def paid_member(starts_on: date = date(2026, 1, 15), months: int = 1, plan: MembershipPlan = LUXE_60) -> Member:
    member = Member(starts_on, plan)
    member.pays(months)
    return member


# --- the calendar --------------------------------------------------------------------------------


def test_the_pack_is_the_seeds_membership_terms() -> None:
    assert (TERMS.freeze.monthly_draft, TERMS.freeze.form_within_hours, TERMS.freeze.min_full_dues_paid) == (500, 48, 1)
    assert (TERMS.cancellation.form_within_hours, TERMS.cancellation.services_usable_days) == (48, 60)
    assert TERMS.cancellation.store_credit_forfeited and TERMS.cancellation.after_first_full_draft
    assert (TERMS.certificates.valid_months, TERMS.paid_in_full.grace_days_after_expiry) == (6, 0)
    assert TERMS.rollover.unused_services_roll_over and TERMS.drafts.retry_after_days == [1, 3, 7]
    assert AUSTIN.location.time_zone == "America/Chicago"


@pytest.mark.parametrize(("draft_day", "year", "february", "march"), [
    (31, 2026, date(2026, 2, 28), date(2026, 3, 31)),
    (30, 2026, date(2026, 2, 28), date(2026, 3, 30)),
    (29, 2026, date(2026, 2, 28), date(2026, 3, 29)),
    (31, 2028, date(2028, 2, 29), date(2028, 3, 31)),
    (30, 2028, date(2028, 2, 29), date(2028, 3, 30)),
    (29, 2028, date(2028, 2, 29), date(2028, 3, 29)),
])
def test_a_draft_day_february_lacks_falls_on_its_last_day_and_returns_in_march(
        draft_day: int, year: int, february: date, march: date) -> None:
    assert following_draft(date(year, 1, draft_day), draft_day) == february
    assert following_draft(february, draft_day) == march
    member = Member(date(year, 1, draft_day))
    member.pays(1)
    assert member.planned() == dues(february)
    member.pays(1)
    assert member.planned() == dues(march)
    assert member.membership().draft_day == draft_day


def test_a_draft_day_of_31_falls_on_the_30th_in_30_day_months_and_back_on_the_31st_after() -> None:
    assert following_draft(date(2026, 3, 31), 31) == date(2026, 4, 30)
    assert following_draft(date(2026, 4, 30), 31) == date(2026, 5, 31)
    assert following_draft(date(2026, 12, 31), 31) == date(2027, 1, 31)
    assert draft_date(2026, 6, 31) == date(2026, 6, 30)


@pytest.mark.parametrize(("issued_on", "expires_on"), [
    (date(2025, 11, 3), date(2026, 5, 3)),
    (date(2026, 3, 15), date(2026, 9, 15)),
    (date(2025, 8, 31), date(2026, 2, 28)),
    (date(2027, 8, 31), date(2028, 2, 29)),
    (date(2026, 3, 31), date(2026, 9, 30)),
    (date(2026, 12, 31), date(2027, 6, 30)),
])
def test_certificates_expire_exactly_6_months_from_the_date_of_issue(issued_on: date, expires_on: date) -> None:
    assert months_later(issued_on, 6) == expires_on


@PROPERTY
@given(due_on=st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)), draft_day=st.integers(1, 31))
def test_the_following_draft_is_always_in_the_next_month_and_on_the_draft_day_when_it_has_one(
        due_on: date, draft_day: int) -> None:
    following = following_draft(due_on, draft_day)
    assert (following.year * 12 + following.month) - (due_on.year * 12 + due_on.month) == 1
    assert following > due_on
    days_in_month = monthrange(following.year, following.month)[1]
    assert following.day == (draft_day if draft_day <= days_in_month else days_in_month)


@PROPERTY
@given(starts_on=st.dates(min_value=date(2000, 1, 1), max_value=date(2095, 12, 31)))
def test_the_draft_day_never_drifts_after_a_short_month(starts_on: date) -> None:
    due_on = starts_on
    for _ in range(36):
        due_on = following_draft(due_on, starts_on.day)
        assert due_on.day == min(starts_on.day, monthrange(due_on.year, due_on.month)[1])


@PROPERTY
@given(issued_on=st.dates(min_value=date(2000, 1, 1), max_value=date(2095, 12, 31)), months=st.integers(0, 60))
def test_months_later_is_the_same_day_or_the_last_day_of_a_shorter_month(issued_on: date, months: int) -> None:
    later = months_later(issued_on, months)
    assert (later.year * 12 + later.month) - (issued_on.year * 12 + issued_on.month) == months
    assert later.day == min(issued_on.day, monthrange(later.year, later.month)[1])
    assert later >= issued_on


# --- the first draft and rollover ----------------------------------------------------------------


def test_the_first_full_dues_are_planned_on_the_day_the_membership_starts() -> None:
    membership = Member(date(2026, 1, 15)).membership()
    assert (membership.status, membership.next_draft_on, membership.draft_day) == (
        MembershipStatus.ACTIVE, date(2026, 1, 15), 15)
    assert (membership.credits, membership.full_dues_paid, membership.store_credit) == (0, 0, NO_CREDIT)
    assert membership.membership_id == KEY and membership.client_id == "massageluxe#c-7781"
    assert membership.policy_version == AUSTIN.policy_version
    assert next_draft(membership, TERMS) == dues(date(2026, 1, 15))


def test_paid_first_dues_put_the_plans_services_on_the_account_and_plan_next_month() -> None:
    member = Member(date(2026, 1, 15))
    member.drafts.append(Draft(due_on=date(2026, 1, 15), kind=DraftKind.DUES, attempt=1, charged=usd(7900),
                               store_credit_used=NO_CREDIT, succeeded=True, decided_at=local(2026, 1, 15, 9, 0)))
    membership = member.membership()
    assert (membership.credits, membership.full_dues_paid, membership.last_billed_on) == (1, 1, date(2026, 1, 15))
    assert (membership.next_draft_on, membership.past_due) == (date(2026, 2, 15), False)
    assert next_draft(membership, TERMS) == dues(date(2026, 2, 15))
    assert outcomes(membership) == ["started", "drafted"]


def test_unused_services_roll_over_to_the_following_month() -> None:
    member = paid_member(months=3)
    assert member.membership().credits == 3
    member.redeem(local(2026, 3, 20))
    member.pays(1)
    membership = member.membership()
    assert (membership.credits, membership.full_dues_paid, membership.next_draft_on) == (3, 4, date(2026, 5, 15))


def test_a_redemption_uses_services_and_more_than_are_on_the_account_is_refused() -> None:
    member = paid_member(months=2)
    member.redeem(local(2026, 2, 20), credits=2)
    assert member.membership().credits == 0
    member.redeem(local(2026, 2, 21))
    membership = member.membership()
    assert membership.credits == 0 and last(membership) == ("redemption_refused", "only 0 service(s) on the account")


# --- freezing ------------------------------------------------------------------------------------


def test_a_freeze_is_refused_before_one_full_dues_payment_has_been_made() -> None:
    member = Member(date(2026, 1, 15), signed_at=local(2026, 1, 10, 10))
    member.freeze(local(2026, 1, 12, 10))
    membership = member.membership()
    assert last(membership) == ("freeze_refused", "fewer than 1 full dues payment(s) made")
    assert membership.status is MembershipStatus.ACTIVE
    assert next_draft(membership, TERMS) == dues(date(2026, 1, 15))


def test_a_freeze_form_completed_after_48_hours_changes_nothing_and_full_dues_continue() -> None:
    member = paid_member()
    member.freeze_requested(local(2026, 1, 20, 12))
    member.freeze_form(local(2026, 1, 22, 12, 1))
    membership = member.membership()
    assert last(membership) == ("freeze_refused", "the freeze form came back more than 48 hours after it was sent")
    assert (membership.status, membership.freeze_form_sent_at) == (MembershipStatus.ACTIVE, None)
    assert member.planned() == dues(date(2026, 2, 15))


def test_a_freeze_form_completed_exactly_48_hours_after_it_was_sent_is_in_time() -> None:
    member = paid_member()
    member.freeze_requested(local(2026, 1, 20, 12))
    member.freeze_form(local(2026, 1, 22, 12))
    assert member.membership().status is MembershipStatus.FROZEN


@pytest.mark.parametrize(("submitted_at", "status"), [
    (local(2026, 3, 9, 13, 0), MembershipStatus.FROZEN),  # 48 real hours: the clocks sprang forward on Mar 8
    (local(2026, 3, 9, 13, 1), MembershipStatus.ACTIVE),
])
def test_the_48_hours_are_real_hours_across_a_daylight_saving_change(
        submitted_at: datetime, status: MembershipStatus) -> None:
    member = paid_member(date(2026, 2, 15))
    member.freeze_requested(local(2026, 3, 7, 12))
    member.freeze_form(submitted_at)
    assert member.membership().status is status


def test_a_freeze_form_completed_after_48_hours_in_fixed_offsets_is_refused_too() -> None:
    member = paid_member(date(2026, 2, 15))
    member.freeze_requested(datetime.fromisoformat("2026-03-07T12:00:00-06:00"))
    member.freeze_form(datetime.fromisoformat("2026-03-09T13:01:00-05:00"))
    assert member.membership().status is MembershipStatus.ACTIVE


def test_a_freeze_is_refused_while_dues_are_past_due() -> None:
    member = paid_member()
    member.declines(1)
    member.freeze(local(2026, 2, 15, 12))
    membership = member.membership()
    assert last(membership) == ("freeze_refused", "the membership is not in good standing (dues past due)")
    assert membership.status is MembershipStatus.ACTIVE and membership.past_due


def test_a_freeze_form_nobody_sent_is_refused() -> None:
    member = paid_member()
    member.freeze_form(local(2026, 1, 20))
    assert last(member.membership()) == ("freeze_refused", "no freeze form was sent")


def test_a_frozen_membership_is_drafted_five_dollars_a_month_instead_of_its_dues() -> None:
    member = paid_member()
    member.freeze(local(2026, 1, 20, 10))
    membership = member.membership()
    assert (membership.status, last(membership)[0]) == (MembershipStatus.FROZEN, "frozen")
    assert next_draft(membership, TERMS) == frozen_dues(date(2026, 2, 15))
    assert str(frozen_dues(date(2026, 2, 15)).amount) == "USD 5.00"


def test_each_five_dollar_draft_accrues_as_luxe_bux_and_puts_no_services_on_the_account() -> None:
    member = paid_member()
    member.freeze(local(2026, 1, 20, 10))
    member.pays(2)
    membership = member.membership()
    assert [(d.kind, d.charged) for d in member.drafts[1:]] == [(DraftKind.FROZEN, usd(500))] * 2
    assert (membership.store_credit, membership.credits, membership.full_dues_paid) == (usd(1000), 1, 1)
    assert (membership.status, membership.last_billed_on) == (MembershipStatus.FROZEN, date(2026, 3, 15))
    assert member.planned() == frozen_dues(date(2026, 4, 15))


def test_services_cannot_be_used_while_the_membership_is_frozen() -> None:
    member = paid_member()
    member.freeze(local(2026, 1, 20, 10))
    member.redeem(local(2026, 2, 1))
    membership = member.membership()
    assert last(membership) == ("redemption_refused", "services cannot be used while the membership is frozen")
    assert membership.credits == 1


# --- unfreezing ----------------------------------------------------------------------------------


def frozen_member() -> Member:
    """Paid November's dues, frozen since Nov 20, $5.00 drafted Dec 15, Jan 15 and Feb 15: $15.00 of LuXe Bux."""
    member = paid_member(date(2025, 11, 15))
    member.freeze(local(2025, 11, 20, 10))
    member.pays(3)
    assert member.membership().store_credit == usd(1500)
    return member


def test_an_unfreeze_moves_the_draft_day_to_the_local_day_of_the_request() -> None:
    member = frozen_member()
    member.unfreeze(datetime(2026, 3, 15, 4, 30, tzinfo=UTC))  # 23:30 on Saturday March 14 in Austin
    membership = member.membership()
    assert (membership.status, membership.draft_day, membership.next_draft_on) == (
        MembershipStatus.ACTIVE, 14, date(2026, 3, 14))
    assert last(membership)[0] == "unfrozen"
    assert next_draft(membership, TERMS) == dues(date(2026, 3, 14), store_credit=usd(1500))
    assert next_draft(membership, TERMS).to_charge == usd(6400)  # type: ignore[union-attr]


def test_the_reactivation_draft_takes_the_luxe_bux_first_and_later_drafts_fall_on_the_new_day() -> None:
    member = frozen_member()
    member.unfreeze(datetime(2026, 3, 15, 4, 30, tzinfo=UTC))
    reactivation = member.draft()
    assert (reactivation.charged, reactivation.store_credit_used) == (usd(6400), usd(1500))
    assert reactivation.decided_at == local(2026, 3, 15, 9)  # the next morning's job drafts March 14
    membership = member.membership()
    assert (membership.store_credit, membership.credits, membership.full_dues_paid) == (NO_CREDIT, 2, 2)
    assert (membership.next_draft_on, membership.reactivation_pending) == (date(2026, 4, 14), False)
    assert member.planned() == dues(date(2026, 4, 14))
    member.pays(1)
    assert member.planned() == dues(date(2026, 5, 14))
    member.redeem(local(2026, 5, 1))
    assert last(member.membership())[0] == "redeemed"


def test_luxe_bux_worth_more_than_the_dues_pay_the_whole_reactivation_draft_and_the_rest_stays() -> None:
    member = paid_member(date(2025, 11, 15), plan=HYDROLUXE)
    member.freeze(local(2025, 11, 20, 10))
    member.pays(4)
    member.unfreeze(local(2026, 3, 20, 15))
    assert member.planned() == dues(date(2026, 3, 20), HYDROLUXE, store_credit=usd(1500))
    assert member.draft().charged == NO_CREDIT
    membership = member.membership()
    assert (membership.store_credit, membership.next_draft_on) == (usd(500), date(2026, 4, 20))
    # Decision kept: only the reactivation draft takes LuXe Bux; what is left pays for other things at the spa.
    assert member.planned() == dues(date(2026, 4, 20), HYDROLUXE)


def test_an_unfreeze_is_refused_when_the_membership_is_not_frozen() -> None:
    member = paid_member()
    member.unfreeze(local(2026, 1, 20))
    membership = member.membership()
    assert last(membership) == ("unfreeze_refused", "the membership is active, not frozen")
    assert (membership.draft_day, membership.next_draft_on) == (15, date(2026, 2, 15))


# --- cancelling ----------------------------------------------------------------------------------


def test_a_cancellation_is_refused_before_the_first_full_monthly_dues_are_drafted() -> None:
    member = Member(date(2026, 1, 15), signed_at=local(2026, 1, 10, 10))
    member.cancel(local(2026, 1, 12, 10))
    membership = member.membership()
    assert last(membership) == ("cancellation_refused", "no full monthly dues have been drafted yet")
    assert membership.status is MembershipStatus.ACTIVE
    assert next_draft(membership, TERMS) == dues(date(2026, 1, 15))


def test_a_cancellation_form_completed_after_48_hours_changes_nothing_and_full_dues_continue() -> None:
    member = paid_member()
    member.cancellation_requested(local(2026, 1, 20, 12))
    member.cancellation_form(local(2026, 1, 22, 12, 1))
    membership = member.membership()
    assert last(membership) == ("cancellation_refused",
                                "the cancellation form came back more than 48 hours after it was sent")
    assert (membership.status, membership.cancellation_form_sent_at) == (MembershipStatus.ACTIVE, None)
    assert member.planned() == dues(date(2026, 2, 15))


def test_a_cancellation_form_completed_exactly_48_hours_after_it_was_sent_is_in_time() -> None:
    member = paid_member()
    member.cancellation_requested(local(2026, 1, 20, 12))
    member.cancellation_form(local(2026, 1, 22, 12))
    assert member.membership().status is MembershipStatus.CANCELLED


def test_a_cancelled_membership_is_never_drafted_again_and_forfeits_its_luxe_bux() -> None:
    member = frozen_member()
    member.cancel(local(2026, 3, 1, 10))
    membership = member.membership()
    assert (membership.status, membership.cancelled_on) == (MembershipStatus.CANCELLED, date(2026, 3, 1))
    assert (membership.next_draft_on, next_draft(membership, TERMS)) == (None, None)
    assert membership.store_credit == NO_CREDIT
    outcome, reason = last(membership)
    assert outcome == "cancelled" and "USD 15.00 of store credit forfeited" in reason
    assert membership.decisions[-1].forfeited == usd(1500)  # the ledger's expiry entry records it


def test_services_are_good_for_60_days_from_the_last_billing_date_after_cancellation() -> None:
    member = paid_member(months=3)  # Jan 15, Feb 15, Mar 15: three services on the account
    member.cancel(local(2026, 3, 20, 10))
    cancelled = member.membership()
    assert (cancelled.credits, cancelled.credits_usable_until) == (3, date(2026, 5, 14))  # Mar 15 + 60 days
    assert cancelled.next_due() == date(2026, 5, 7)  # the member is told a week before the window ends
    assert member.membership(date(2026, 5, 7)).next_due() == date(2026, 5, 15)
    member.redeem(local(2026, 5, 14, 19))
    assert member.membership(date(2026, 5, 14)).credits == 2 and last(member.membership())[0] == "redeemed"

    expired = member.membership(date(2026, 5, 15))
    assert (expired.status, expired.credits) == (MembershipStatus.CANCELLED, 0)
    assert last(expired) == ("services_expired", "2 service(s) unused 60 days after the last billing date")
    assert expired.decisions[-1].decided_at == local(2026, 5, 15, 0)
    member.redeem(local(2026, 5, 15, 10))
    assert last(member.membership()) == ("redemption_refused", "the services on a cancelled membership have expired")


def test_paper_certificates_are_one_per_service_and_expire_exactly_6_months_from_the_local_date_of_issue() -> None:
    member = paid_member(date(2025, 8, 31), months=3)  # Aug 31, Sep 30, Oct 31
    member.cancellation_requested(datetime.fromisoformat("2025-11-03T10:00:00-06:00"))
    member.cancellation_form(datetime(2025, 11, 4, 2, 15, tzinfo=UTC), paper_certificates=True)  # Nov 3, 20:15
    membership = member.membership()
    assert membership.status is MembershipStatus.CANCELLED and membership.cancelled_on == date(2025, 11, 3)
    assert membership.certificates == tuple(
        Certificate(certificate_id=f"{KEY}#cert-{n}", issued_on=date(2025, 11, 3), expires_on=date(2026, 5, 3))
        for n in (1, 2, 3))
    assert (membership.credits, membership.store_credit) == (0, NO_CREDIT)
    assert last(membership)[1].startswith("cancelled; 3 paper certificate(s) until 2026-05-03")


def test_paper_certificates_outlive_the_60_days_and_are_gone_the_day_after_they_expire() -> None:
    member = paid_member(date(2025, 8, 31), months=3)
    member.cancel(local(2025, 11, 3, 10), paper_certificates=True)
    assert len(member.membership(date(2026, 5, 3)).certificates) == 3
    assert member.membership(date(2026, 5, 3)).next_due() == date(2026, 5, 4)
    gone = member.membership(date(2026, 5, 4))
    assert gone.certificates == () and gone.next_due() is None
    assert outcomes(gone)[-3:] == ["certificate_expired"] * 3 and "services_expired" not in outcomes(gone)
    assert last(gone)[1] == "certificate cert-3 expired on 2026-05-03"


def certificates_member() -> Member:
    """Drafted Aug 31, Sep 30, Oct 31 (three services), cancelled Nov 3 with paper certificates; the 60-day
    window runs to Dec 30 (60 days from the last billing date, Oct 31)."""
    member = paid_member(date(2025, 8, 31), months=3)
    member.cancel(local(2025, 11, 3, 10), paper_certificates=True)
    return member


def redeem(member: Member, at: datetime, certificate_id: str, client_id: str = "c-7781",
           location_id: str = "massageluxe-austin") -> tuple[str, str, Money | None]:
    member.send(CertificateRedeemed, at, certificate_id=certificate_id, client_id=client_id, location_id=location_id,
                redeemed_at=at)
    decision = member.membership().decisions[-1]
    return decision.outcome, decision.reason, decision.fee_due


def test_the_former_member_redeems_certificates_free_inside_the_60_day_window_and_pays_20_outside_it() -> None:
    member = certificates_member()
    assert redeem(member, local(2025, 12, 1), "cert-1") == ("certificate_redeemed",
                                                            "cert-1 redeemed free inside the grace window", None)
    assert redeem(member, local(2025, 12, 2), "cert-2")[0] == "certificate_redeemed"  # no limit inside the window
    assert redeem(member, local(2026, 1, 5), "cert-3") == ("certificate_redeemed",
                                                           "cert-3 redeemed; USD 20.00 due at checkout", usd(2000))
    assert member.membership().certificates == ()


def test_a_gifted_certificate_costs_20_one_every_six_months_per_client_at_the_home_spa_only() -> None:
    member = certificates_member()
    assert redeem(member, local(2025, 11, 20), "cert-1", client_id="c-friend")[2] == usd(2000)
    assert redeem(member, local(2026, 2, 1), "cert-2", client_id="c-friend")[:2] == (
        "certificate_refused", "cert-2: one certificate every 6 months: the next from 2026-05-20")
    assert redeem(member, local(2026, 2, 1), "cert-2", client_id="c-friend",
                  location_id="massageluxe-scottsdale")[:2] == (
        "certificate_refused", "cert-2: paper certificates are redeemed only at the home spa of the former membership")
    assert redeem(member, local(2026, 2, 1), "cert-1")[:2] == ("certificate_refused",
                                                               "cert-1: this certificate was already redeemed")
    assert redeem(member, local(2026, 5, 3), "cert-2", client_id="another-friend")[0] == "certificate_redeemed"
    assert redeem(member, local(2026, 5, 4), "cert-3")[:2] == ("certificate_refused",
                                                               "cert-3: no such certificate")  # expired and gone


# --- paid in full --------------------------------------------------------------------------------


def paid_in_full(until: date = date(2026, 7, 30), starts_on: date = date(2026, 1, 31)) -> Member:
    return Member(starts_on, paid_in_full_until=until)


def test_a_paid_in_full_membership_is_never_drafted() -> None:
    member = paid_in_full()
    for as_of in (date(2026, 1, 31), date(2026, 3, 31), date(2026, 7, 30)):
        membership = member.membership(as_of)
        assert membership.paid_in_full and next_draft(membership, TERMS) is None
        assert membership.full_dues_paid == 0 and membership.status is MembershipStatus.ACTIVE


@pytest.mark.parametrize(("as_of", "credits"), [
    (date(2026, 1, 31), 1), (date(2026, 2, 27), 1), (date(2026, 2, 28), 2), (date(2026, 3, 30), 2),
    (date(2026, 3, 31), 3), (date(2026, 6, 30), 6), (date(2026, 7, 30), 6),
])
def test_a_paid_in_full_membership_gets_its_services_on_each_monthly_date(as_of: date, credits: int) -> None:
    assert paid_in_full().membership(as_of).credits == credits


def test_the_paid_in_full_end_date_is_still_usable_and_the_next_day_everything_is_forfeited_without_grace() -> None:
    member = paid_in_full()
    member.redeem(local(2026, 7, 30, 19))
    last_day = member.membership(date(2026, 7, 30))
    assert (last_day.status, last_day.credits, last(last_day)[0]) == (MembershipStatus.ACTIVE, 5, "redeemed")

    expired = member.membership(date(2026, 7, 31))
    assert (expired.status, expired.credits, expired.next_draft_on) == (MembershipStatus.EXPIRED, 0, None)
    assert last(expired) == ("expired", "paid in full until 2026-07-30; 5 service(s) forfeited, no grace period")
    assert expired.decisions[-1].decided_at == local(2026, 7, 31, 0) and expired.next_due() is None
    per_service = expired.plan.monthly_dues.amount // expired.plan.service_credits_per_month
    assert expired.decisions[-1].forfeited == usd(5 * per_service)
    member.redeem(local(2026, 7, 31, 10))
    assert last(member.membership()) == ("redemption_refused", "the membership has expired")


def test_no_month_of_services_begins_on_the_day_a_paid_in_full_membership_ends() -> None:
    year = paid_in_full(until=date(2027, 1, 15), starts_on=date(2026, 1, 15))
    assert year.membership(date(2026, 12, 15)).credits == 12
    assert year.membership(date(2027, 1, 15)).credits == 12  # twelve paid months, not a thirteenth for one day
    assert year.membership(date(2027, 1, 16)).status is MembershipStatus.EXPIRED


def test_a_paid_in_full_membership_cannot_change_plan() -> None:
    member = paid_in_full()
    member.change_plan(local(2026, 2, 10), LUXE_DUO)
    membership = member.membership()
    assert last(membership) == ("plan_change_refused", "the membership is active and paid in full")
    assert membership.next_plan is None


# --- plan changes --------------------------------------------------------------------------------


def test_an_upgrade_takes_effect_at_the_next_draft() -> None:
    member = paid_member()
    member.change_plan(local(2026, 1, 20), LUXE_DUO)
    scheduled = member.membership()
    assert (scheduled.plan.name, scheduled.next_plan.name if scheduled.next_plan else None) == ("LuXe 60", "LuXe Duo")
    assert last(scheduled) == ("plan_change_scheduled", "LuXe Duo from the next draft")
    assert next_draft(scheduled, TERMS) == dues(date(2026, 2, 15), LUXE_DUO)
    member.pays(1)
    switched = member.membership()
    assert (switched.plan.name, switched.next_plan, switched.credits) == ("LuXe Duo", None, 3)
    assert member.planned() == dues(date(2026, 3, 15), LUXE_DUO)


def test_a_declined_draft_of_the_new_plan_keeps_the_old_plan_until_one_succeeds() -> None:
    member = paid_member()
    member.change_plan(local(2026, 1, 20), LUXE_DUO)
    member.declines(1)
    membership = member.membership()
    assert (membership.plan.name, membership.credits) == ("LuXe 60", 1)
    assert next_draft(membership, TERMS) == dues(date(2026, 2, 15), LUXE_DUO, attempt=2, attempt_on=date(2026, 2, 16))


# --- declined drafts -----------------------------------------------------------------------------


def test_a_declined_draft_is_past_due_and_retried_1_3_and_7_days_after_the_draft_date() -> None:
    member = paid_member(date(2026, 1, 28))
    planned = []
    for _ in range(4):
        member.draft(succeeded=False)
        membership = member.membership()
        assert membership.past_due and not membership.in_good_standing
        planned.append(next_draft(membership, TERMS))
    month = date(2026, 2, 28)
    assert planned == [dues(month, attempt=2, attempt_on=date(2026, 3, 1)),
                       dues(month, attempt=3, attempt_on=date(2026, 3, 3)),
                       dues(month, attempt=4, attempt_on=date(2026, 3, 7)), dues(date(2026, 3, 28))]
    membership = member.membership()
    assert outcomes(membership)[-4:] == ["draft_declined"] * 3 + ["dues_unpaid"]
    assert last(membership) == ("dues_unpaid", "membership_dues of 2026-02-28 declined 4 times: "
                                               "owed as an outstanding balance")
    assert (membership.credits, membership.full_dues_paid, membership.failed_attempts) == (1, 1, 0)


def test_retries_of_a_january_31_draft_do_not_skip_february() -> None:
    member = Member(date(2026, 1, 31))
    member.declines(4)
    assert [d.due_on for d in member.drafts] == [date(2026, 1, 31)] * 4
    assert [d.decided_at.date() for d in member.drafts] == [date(2026, 1, 31), date(2026, 2, 1), date(2026, 2, 3),
                                                            date(2026, 2, 7)]
    assert member.planned() == dues(date(2026, 2, 28))


def test_a_later_successful_draft_restores_good_standing() -> None:
    member = paid_member(date(2026, 1, 28))
    member.declines(4)
    member.pays(1)
    membership = member.membership()
    assert (membership.past_due, membership.in_good_standing, membership.credits) == (False, True, 2)
    assert member.planned() == dues(date(2026, 4, 28))


def test_a_retry_that_succeeds_restores_good_standing_and_keeps_the_draft_day() -> None:
    member = Member(date(2026, 1, 31))
    member.declines(2)
    retry = member.draft()
    assert (retry.due_on, retry.decided_at.date(), retry.attempt) == (date(2026, 1, 31), date(2026, 2, 3), 3)
    membership = member.membership()
    assert (membership.past_due, membership.full_dues_paid, membership.credits) == (False, 1, 1)
    assert member.planned() == dues(date(2026, 2, 28))
    member.pays(1)
    assert member.planned() == dues(date(2026, 3, 31))


def test_services_cannot_be_used_while_dues_are_past_due() -> None:
    member = paid_member()
    member.declines(1)
    member.redeem(local(2026, 2, 15, 15))
    membership = member.membership()
    assert last(membership) == ("redemption_refused", "the membership is not in good standing (dues past due)")
    assert membership.credits == 1


def test_a_declined_frozen_draft_is_retried_like_dues() -> None:
    member = paid_member()
    member.freeze(local(2026, 1, 20, 10))
    member.declines(1)
    membership = member.membership()
    assert membership.past_due
    assert next_draft(membership, TERMS) == frozen_dues(date(2026, 2, 15), attempt=2, attempt_on=date(2026, 2, 16))
    member.unfreeze(local(2026, 2, 15, 18))
    assert last(member.membership()) == ("unfreeze_refused", "the membership is not in good standing (dues past due)")


@settings(derandomize=True, max_examples=60, deadline=None, database=None)
@given(starts_on=st.dates(min_value=date(2001, 1, 1), max_value=date(2098, 12, 31)), declines=st.integers(1, 4))
def test_retries_follow_the_draft_date_and_the_next_month_is_drafted_on_the_draft_day(
        starts_on: date, declines: int) -> None:
    member = Member(starts_on)
    member.declines(declines)
    offsets = [0, *TERMS.drafts.retry_after_days]
    assert [(d.due_on, d.decided_at.date(), d.attempt) for d in member.drafts] == [
        (starts_on, starts_on + timedelta(days=offsets[n]), n + 1) for n in range(declines)]
    planned = member.planned()
    assert planned is not None
    if declines < 4:
        assert (planned.due_on, planned.attempt_on, planned.attempt) == (
            starts_on, starts_on + timedelta(days=offsets[declines]), declines + 1)
    else:
        assert (planned.due_on, planned.attempt) == (following_draft(starts_on, starts_on.day), 1)
    member.pays(1)
    assert member.planned() == dues(following_draft(following_draft(starts_on, starts_on.day), starts_on.day)
                                    if declines == 4 else following_draft(starts_on, starts_on.day))


# --- convergence ---------------------------------------------------------------------------------


def whole_history() -> Member:
    member = paid_member(date(2025, 10, 31), months=2)  # Oct 31, Nov 30
    member.redeem(local(2025, 12, 5))
    member.change_plan(local(2025, 12, 10), LUXE_DUO)
    member.declines(1)  # Dec 31
    member.pays(1)  # Jan 1
    member.freeze_requested(local(2026, 1, 20, 10))
    member.freeze_form(local(2026, 1, 23, 10))  # late: refused
    member.freeze(local(2026, 1, 24, 10))
    member.pays(2)  # frozen Jan 31, Feb 28
    member.unfreeze(local(2026, 3, 10, 16))
    member.pays(1)  # Mar 10 with LuXe Bux
    member.redeem(local(2026, 3, 12))
    member.cancel(local(2026, 3, 20, 11), paper_certificates=True)
    return member


HISTORY = whole_history()


@settings(derandomize=True, max_examples=60, deadline=None, database=None)
@given(order=st.permutations(range(len(HISTORY.events))),
       duplicates=st.lists(st.integers(0, len(HISTORY.events) - 1), max_size=5),
       draft_order=st.permutations(range(len(HISTORY.drafts))))
def test_the_same_events_in_any_order_and_duplicated_fold_to_the_same_membership(
        order: list[int], duplicates: list[int], draft_order: list[int]) -> None:
    events = [HISTORY.events[i] for i in order] + [HISTORY.events[i] for i in duplicates]
    drafts = [HISTORY.drafts[i] for i in draft_order]
    for as_of in (date(2026, 3, 21), date(2026, 9, 21)):
        assert fold_membership(events, drafts, AUSTIN, as_of) == fold_membership(
            HISTORY.events, HISTORY.drafts, AUSTIN, as_of)


def test_the_whole_history_ends_as_the_spa_would_tell_it() -> None:
    membership = HISTORY.membership(date(2026, 3, 21))
    assert outcomes(membership) == [
        "started", "drafted", "drafted", "redeemed", "plan_change_scheduled", "draft_declined", "drafted",
        "freeze_refused", "frozen", "drafted", "drafted", "unfrozen", "drafted", "redeemed", "cancelled"]
    assert (membership.status, membership.plan.name, membership.store_credit) == (
        MembershipStatus.CANCELLED, "LuXe Duo", NO_CREDIT)
    assert [c.expires_on for c in membership.certificates] == [date(2026, 9, 20)] * 4  # 1 + 1 - 1 + 2 + 2 - 1
    assert HISTORY.drafts[-1].store_credit_used == usd(1000)


def test_events_that_arrive_before_membership_started_are_kept_until_it_does() -> None:
    early = HISTORY.events[1:]
    with pytest.raises(MembershipNotYetKnown, match="mem-0917"):
        fold_membership(early, [], AUSTIN, date(2026, 3, 21))
    with pytest.raises(MembershipNotYetKnown):
        fold_membership([], [], AUSTIN, date(2026, 3, 21))
    assert fold_membership([*early, HISTORY.events[0]], HISTORY.drafts, AUSTIN, date(2026, 3, 21)) == \
        HISTORY.membership(date(2026, 3, 21))
