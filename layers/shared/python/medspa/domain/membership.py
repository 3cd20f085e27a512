"""A membership as the rules see it, and the MassageLuXe rules as plain functions of it.

Each rule takes the membership, the moment and the pack's ``MembershipTerms`` and answers with a value, so
it can be tested without a store, a clock or Stripe. The fold (``medspa.events.membership_history``) applies
them to the booking site's events and the drafts the ledger recorded; the drafts service
(``medspa.services.memberships``) asks :func:`next_draft` what to charge.

Calendar: dues are drafted on the draft day of each month, the day of the month the membership started (or
was unfrozen); in a month without that day, on its last day, and back on the day the month after.
"""

from __future__ import annotations

from calendar import monthrange
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from medspa.money import Money
from medspa.policy.schema import MembershipTerms


class _Value(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")


class MembershipStatus(StrEnum):
    ACTIVE = "active"
    FROZEN = "frozen"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class DraftKind(StrEnum):
    """The ledger purpose of a draft: full dues, or the small monthly draft of a frozen membership."""

    DUES = "membership_dues"
    FROZEN = "frozen_dues"


STORE_CREDIT_APPLIED = "store_credit_applied"
SERVICES_EXPIRING = "services_expiring"
CERTIFICATES_EXPIRING = "certificates_expiring"
STORE_CREDIT_FORFEITED = "store_credit_forfeited"


class Plan(_Value):
    name: str
    monthly_dues: Money
    service_credits_per_month: int = Field(ge=0)


class Certificate(_Value):
    """A paper certificate for one service left on a cancelled membership (redeemable at the home spa)."""

    certificate_id: str
    issued_on: date
    expires_on: date


class Draft(_Value):
    """A draft as the ledger recorded it: the fold takes it as a fact, whatever the events say later."""

    due_on: date = Field(description="The month's draft date (the billing period), whichever attempt this was")
    kind: DraftKind
    attempt: int = Field(ge=1)
    charged: Money
    store_credit_used: Money
    succeeded: bool
    decided_at: datetime


class Decision(_Value):
    """What a request or a draft led to, for the member's record and the booking site."""

    decided_at: datetime
    outcome: str
    reason: str
    membership_version: int | None = None
    forfeited: Money | None = Field(None, description="What the decision forfeited (store credit, or the services' "
                                    "value): recorded in the ledger as an expiry")
    fee_due: Money | None = Field(None, description="What the booking site's checkout collects (a certificate "
                                  "redeemed outside the former member's window)")
    amount: Money | None = Field(None, description="A declined draft: what it asked for (the member is told)")
    retry_on: date | None = Field(None, description="A declined draft: the local day of the next attempt; None on "
                                  "the last one, when the month becomes an outstanding balance")
    expires_on: date | None = Field(None, description="An expiry notice: the last day of use")
    items: int | None = Field(None, ge=1, description="An expiry notice: how many services or certificates expire")


class Redemption(_Value):
    certificate_id: str
    client_id: str
    on: date
    fee: Money


class PlannedDraft(_Value):
    due_on: date = Field(description="The month's draft date: the billing period, the same for every attempt")
    attempt_on: date = Field(description="The local day of this attempt: the draft date, or a retry's day")
    kind: DraftKind
    attempt: int
    amount: Money
    store_credit_to_use: Money

    @property
    def to_charge(self) -> Money:
        return self.amount - self.store_credit_to_use


class Membership(_Value):
    membership_id: str
    spa_id: str
    client_id: str
    location_id: str
    policy_version: str
    membership_version: int
    plan: Plan
    next_plan: Plan | None = None
    status: MembershipStatus = MembershipStatus.ACTIVE
    past_due: bool = False
    started_on: date
    draft_day: int = Field(ge=1, le=31)
    next_draft_on: date | None
    next_retry_on: date | None = None
    failed_attempts: int = 0
    reactivation_pending: bool = False
    full_dues_paid: int = 0
    last_billed_on: date | None = None
    credits: int = 0
    store_credit: Money
    paid_in_full_until: date | None = None
    freeze_form_sent_at: datetime | None = None
    cancellation_form_sent_at: datetime | None = None
    cancelled_on: date | None = None
    credits_usable_until: date | None = None
    certificates: tuple[Certificate, ...] = ()
    redemptions: tuple[Redemption, ...] = ()
    decisions: tuple[Decision, ...] = ()
    next_notice_on: date | None = Field(None, description="The local day of the next expiry notice not yet given "
                                        "(services after a cancellation, paper certificates); the fold sets it")

    @property
    def in_good_standing(self) -> bool:
        return self.status in (MembershipStatus.ACTIVE, MembershipStatus.FROZEN) and not self.past_due

    def services_worth(self, services: int) -> Money:
        """What ``services`` were paid for: the plan's monthly dues over its services a month, rounded down."""
        dues = self.plan.monthly_dues
        return Money(amount=dues.amount // max(self.plan.service_credits_per_month, 1) * services,
                     currency=dues.currency)

    @property
    def paid_in_full(self) -> bool:
        return self.paid_in_full_until is not None

    @property
    def attempt_on(self) -> date:
        """The local day the next draft is attempted: a declined month's retry day, else its draft date."""
        assert self.next_draft_on is not None
        return self.next_retry_on or self.next_draft_on

    def next_due(self) -> date | None:
        """The next local date the daily job has something to do for this membership, if any."""
        candidates = [self.attempt_on] if self.next_draft_on is not None else []
        if self.status is MembershipStatus.CANCELLED and self.credits and self.credits_usable_until:
            candidates.append(self.credits_usable_until + timedelta(days=1))
        if self.status is not MembershipStatus.EXPIRED and self.paid_in_full_until is not None:
            candidates.append(self.paid_in_full_until + timedelta(days=1))
        candidates += [c.expires_on + timedelta(days=1) for c in self.certificates]
        if self.next_notice_on is not None:
            candidates.append(self.next_notice_on)
        return min(candidates, default=None)


# --- the calendar --------------------------------------------------------------------------------


def draft_date(year: int, month: int, draft_day: int) -> date:
    """The draft day of a month, or the month's last day when it has no such day."""
    return date(year, month, min(draft_day, monthrange(year, month)[1]))


def following_draft(due_on: date, draft_day: int) -> date:
    year, month = (due_on.year + 1, 1) if due_on.month == 12 else (due_on.year, due_on.month + 1)
    return draft_date(year, month, draft_day)


def months_later(day: date, months: int) -> date:
    """The same day ``months`` later ("exactly 6 months from the date of issue"); a shorter month's last day."""
    index = day.month - 1 + months
    return draft_date(day.year + index // 12, index % 12 + 1, day.day)


def local_day(moment: datetime, zone: ZoneInfo) -> date:
    return moment.astimezone(zone).date()


def elapsed(since: datetime, until: datetime) -> timedelta:
    """The real time between two moments: aware datetimes sharing a ``ZoneInfo`` subtract as wall clocks,
    an hour off across a DST change, so both are taken to UTC first."""
    return until.astimezone(UTC) - since.astimezone(UTC)


# --- the rules -----------------------------------------------------------------------------------


def freeze_refusal(membership: Membership, submitted_at: datetime, terms: MembershipTerms) -> str | None:
    """Why a completed freeze form changes nothing, or None when the membership freezes."""
    rule = terms.freeze
    if membership.status is not MembershipStatus.ACTIVE:
        return f"the membership is {membership.status.value}, not active"
    if membership.freeze_form_sent_at is None:
        return "no freeze form was sent"
    if elapsed(membership.freeze_form_sent_at, submitted_at) > timedelta(hours=rule.form_within_hours):
        return f"the freeze form came back more than {rule.form_within_hours} hours after it was sent"
    if membership.full_dues_paid < rule.min_full_dues_paid:
        return f"fewer than {rule.min_full_dues_paid} full dues payment(s) made"
    if membership.past_due:
        return "the membership is not in good standing (dues past due)"
    return None


def unfreeze_refusal(membership: Membership) -> str | None:
    if membership.status is not MembershipStatus.FROZEN:
        return f"the membership is {membership.status.value}, not frozen"
    if membership.past_due:
        return "the membership is not in good standing (dues past due)"
    return None


def cancellation_refusal(membership: Membership, submitted_at: datetime, terms: MembershipTerms) -> str | None:
    rule = terms.cancellation
    if membership.status in (MembershipStatus.CANCELLED, MembershipStatus.EXPIRED):
        return f"the membership is already {membership.status.value}"
    if membership.cancellation_form_sent_at is None:
        return "no cancellation form was sent"
    if elapsed(membership.cancellation_form_sent_at, submitted_at) > timedelta(hours=rule.form_within_hours):
        return f"the cancellation form came back more than {rule.form_within_hours} hours after it was sent"
    if rule.after_first_full_draft and membership.full_dues_paid < 1:
        return "no full monthly dues have been drafted yet"
    return None


def redemption_refusal(membership: Membership, credits: int, on: date) -> str | None:
    if membership.status is MembershipStatus.FROZEN:
        return "services cannot be used while the membership is frozen"
    if membership.status is MembershipStatus.EXPIRED:
        return "the membership has expired"
    if membership.status is MembershipStatus.CANCELLED and (
            membership.credits_usable_until is None or on > membership.credits_usable_until):
        return "the services on a cancelled membership have expired"
    if membership.past_due:
        return "the membership is not in good standing (dues past due)"
    if credits > membership.credits:
        return f"only {membership.credits} service(s) on the account"
    return None


def next_draft(membership: Membership, terms: MembershipTerms) -> PlannedDraft | None:
    """What to draft on ``next_draft_on``: full dues (the new plan's after an upgrade or downgrade), or the
    frozen membership's small draft. The reactivation draft after an unfreeze takes store credit first."""
    if membership.next_draft_on is None or membership.paid_in_full:
        return None
    if membership.status is MembershipStatus.FROZEN:
        amount = Money(amount=terms.freeze.monthly_draft, currency=membership.store_credit.currency)
        return PlannedDraft(due_on=membership.next_draft_on, attempt_on=membership.attempt_on, kind=DraftKind.FROZEN,
                            attempt=membership.failed_attempts + 1, amount=amount,
                            store_credit_to_use=Money.zero(amount.currency))
    if membership.status is not MembershipStatus.ACTIVE:
        return None
    amount = (membership.next_plan or membership.plan).monthly_dues
    credit = membership.store_credit if membership.reactivation_pending else Money.zero(amount.currency)
    return PlannedDraft(due_on=membership.next_draft_on, attempt_on=membership.attempt_on, kind=DraftKind.DUES,
                        attempt=membership.failed_attempts + 1, amount=amount, store_credit_to_use=credit.min(amount))


def retry_on(planned: PlannedDraft, terms: MembershipTerms) -> date | None:
    """The local date of the next attempt after ``planned`` was declined, ``retry_after_days`` after the
    month's draft date (not after the attempt that was declined); None after the last retry."""
    retries = terms.drafts.retry_after_days
    if planned.attempt > len(retries):
        return None
    return planned.due_on + timedelta(days=retries[planned.attempt - 1])


def certificates_for(membership: Membership, issued_on: date, terms: MembershipTerms) -> tuple[Certificate, ...]:
    expires_on = months_later(issued_on, terms.certificates.valid_months)
    return tuple(Certificate(certificate_id=f"{membership.membership_id}#cert-{n}", issued_on=issued_on,
                             expires_on=expires_on)
                 for n in range(1, membership.credits + 1))



def certificate_redemption(membership: Membership, certificate_id: str, client_id: str, location_id: str, on: date,
                           terms: MembershipTerms) -> tuple[str | None, Money]:
    """Why a paper certificate cannot be redeemed (or None), and its fee.

    Inside the 60-day window after the last billing the former member redeems free and without limit; anyone
    else, and the former member outside it, pays the pack's fee and redeems at most one certificate every
    ``one_per_months`` (counted per client among this membership's certificates: the system sees no others)."""
    rule = terms.certificates
    fee = Money(amount=rule.redemption_fee, currency=membership.store_credit.currency)
    certificate = next((c for c in membership.certificates if c.certificate_id == certificate_id), None)
    if certificate is None:
        redeemed = any(r.certificate_id == certificate_id for r in membership.redemptions)
        return ("this certificate was already redeemed" if redeemed else "no such certificate"), fee
    if on > certificate.expires_on:
        return f"the certificate expired on {certificate.expires_on}", fee
    if rule.home_spa_only and location_id != membership.location_id:
        return "paper certificates are redeemed only at the home spa of the former membership", fee
    if client_id == membership.client_id and membership.credits_usable_until and on <= membership.credits_usable_until:
        return None, Money.zero(fee.currency)
    last = max((r.on for r in membership.redemptions if r.client_id == client_id and not r.fee.is_zero), default=None)
    if last is not None and on < months_later(last, rule.one_per_months):
        return f"one certificate every {rule.one_per_months} months: the next from {months_later(last, rule.one_per_months)}", fee
    return None, fee
