"""Memberships end to end (issue 9): membership events on the bus, the intake, the MembershipDrafts state machine
started by EventBridge Scheduler at 09:00 local time, the fake Stripe, all under the virtual clock.

MassageLuXe Austin (America/Chicago): "All memberships continue to bill monthly for all active, non-Paid in Full
memberships", the freeze and cancellation forms "within 48 hours", "$5.00 per month" while frozen as LuXe Bux,
"their draft date will change to the present day and a full monthly draft will be collected" on unfreeze.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest

from localcloud.clock import utc
from tests.e2e.booking_site import quarantined

pytestmark = pytest.mark.e2e

LUXE_60 = {"name": "LuXe 60", "monthly_dues": {"amount": 7900, "currency": "USD"}, "service_credits_per_month": 1}
LUXE_90 = {"name": "LuXe 90", "monthly_dues": {"amount": 10900, "currency": "USD"}, "service_credits_per_month": 1}


class Member:
    """The booking site's side of one membership: each event with the next membership_version."""

    def __init__(self, site, membership_id: str, client_id: str = "c-dana", card: str = "visa") -> None:
        self.site, self.membership_id, self.client_id = site, membership_id, client_id
        self.version = 0
        self.known = site.client("massageluxe", client_id, card=card, phone="+15125550147")

    def send(self, detail_type: str, at: datetime | None = None, **detail: Any) -> None:
        site = self.site
        self.version += 1
        site.sent += 1
        site.publish(detail_type, {
            "event_id": f"ml-{site.sent}", "occurred_at": (at or site.cloud.now()).isoformat(),
            "spa_id": "massageluxe", "membership_id": self.membership_id, "membership_version": self.version,
            **detail})

    def start(self, starts_on: date, plan: dict[str, Any] = LUXE_60, **detail: Any) -> None:
        payment = {k: v for k, v in self.known["payment"].items() if k.startswith("stripe_")}
        self.send("MembershipStarted", client={k: v for k, v in self.known["client"].items() if v is not None},
                  location_id="massageluxe-austin", plan=plan, starts_on=starts_on.isoformat(), payment=payment,
                  **detail)

    @property
    def key(self) -> str:
        return f"massageluxe#{self.membership_id}"

    def stored(self):
        return self.site.store.memberships.read(self.key).membership

    def drafts(self) -> list[tuple[str, str, int, str]]:
        """(due date, purpose, amount, status) of every ledger entry of the membership, in order."""
        entries = self.site.store.ledger.for_appointment(self.key)
        return sorted((e.entry_id.split("#")[2], e.purpose, e.amount.amount, e.status.value) for e in entries)


def local(year: int, month: int, day: int, hour: int = 9) -> datetime:
    """A Chicago wall-clock time as UTC (CST is UTC-6, CDT UTC-5)."""
    from zoneinfo import ZoneInfo

    return datetime(year, month, day, hour, tzinfo=ZoneInfo("America/Chicago")).astimezone(utc(2000, 1, 1).tzinfo)


@pytest.mark.parametrize("cloud", [utc(2026, 1, 30, 15)], indirect=True)
def test_a_draft_day_of_the_31st_drafts_on_the_last_day_of_february_and_returns_to_the_31st(cloud, site):
    member = Member(site, "mem-31")
    member.start(date(2026, 1, 31))
    cloud.run_until(local(2026, 1, 31))
    [(kind, started), (_, drafted)] = [(k, d) for k, d in site.inbox() if k == "MembershipDecision"]
    assert (started["outcome"], drafted["outcome"], drafted["credits"], drafted["next_draft_on"]) == (
        "started", "drafted", 1, "2026-02-28")
    assert drafted["event_id"].startswith("massageluxe#mem-31:drafted:" + drafted["decided_at"] + ":")
    cloud.run_until(local(2026, 5, 1))

    assert member.drafts() == [
        ("2026-01-31", "membership_dues", 7900, "succeeded"),
        ("2026-02-28", "membership_dues", 7900, "succeeded"),
        ("2026-03-31", "membership_dues", 7900, "succeeded"),
        ("2026-04-30", "membership_dues", 7900, "succeeded"),
    ]
    membership = member.stored()
    assert (membership.full_dues_paid, membership.credits, membership.next_draft_on) == (4, 4, date(2026, 5, 31))
    runs = cloud.client("stepfunctions").list_executions(
        stateMachineArn=cloud.state_machine_arn("MembershipDraftsStateMachine"))["executions"]
    assert all(r["status"] == "SUCCEEDED" for r in runs)
    charges = [pi for pi in cloud.stripe.payment_intents if pi["status"] == "succeeded"]
    assert len(charges) == 4  # the fake Stripe's own record: one charge a month, no more
    assert quarantined(cloud) == []


def decisions(site, membership_id: str) -> list[tuple[str, str]]:
    return [(d["outcome"], d["reason"]) for kind, d in site.inbox()
            if kind == "MembershipDecision" and d["membership_id"] == membership_id]


@pytest.mark.parametrize("cloud", [utc(2026, 2, 1, 15)], indirect=True)
def test_a_freeze_form_on_time_drafts_5_dollars_as_luxe_bux_and_one_too_late_changes_nothing(cloud, site):
    on_time, too_late = Member(site, "mem-on-time", "c-ana"), Member(site, "mem-late", "c-ben")
    on_time.start(date(2026, 2, 1))
    too_late.start(date(2026, 2, 1))
    cloud.run_until(local(2026, 2, 10, 12))
    sent = cloud.now()
    for member in (on_time, too_late):
        member.send("MembershipFreezeRequested", form_sent_at=sent.isoformat())
    cloud.run_for(timedelta(hours=47, minutes=59))
    on_time.send("MembershipFreezeFormCompleted", submitted_at=cloud.now().isoformat())
    cloud.run_for(timedelta(hours=1))
    too_late.send("MembershipFreezeFormCompleted", submitted_at=cloud.now().isoformat())
    cloud.run_until(local(2026, 4, 2))

    assert on_time.drafts() == [("2026-02-01", "membership_dues", 7900, "succeeded"),
                                ("2026-03-01", "frozen_dues", 500, "succeeded"),
                                ("2026-04-01", "frozen_dues", 500, "succeeded")]
    frozen = on_time.stored()
    assert (frozen.status.value, frozen.store_credit.amount, frozen.credits) == ("frozen", 1000, 1)
    assert too_late.drafts() == [("2026-02-01", "membership_dues", 7900, "succeeded"),
                                 ("2026-03-01", "membership_dues", 7900, "succeeded"),
                                 ("2026-04-01", "membership_dues", 7900, "succeeded")]
    refused = ("freeze_refused", "the freeze form came back more than 48 hours after it was sent")
    assert refused in [(d.outcome, d.reason) for d in too_late.stored().decisions]
    assert too_late.stored().status.value == "active"


@pytest.mark.parametrize("cloud", [utc(2026, 1, 10, 15)], indirect=True)
def test_an_unfreeze_mid_month_moves_the_draft_day_to_that_day_and_drafts_full_dues_at_once_luxe_bux_first(
        cloud, site):
    member = Member(site, "mem-thaw")
    member.start(date(2026, 1, 10))
    cloud.run_until(local(2026, 1, 20))
    member.send("MembershipFreezeRequested", form_sent_at=cloud.now().isoformat())
    cloud.run_for(timedelta(hours=2))
    member.send("MembershipFreezeFormCompleted", submitted_at=cloud.now().isoformat())
    cloud.run_until(local(2026, 3, 17, 16))  # two $5 drafts (Feb 10, Mar 10) of LuXe Bux by now
    member.send("MembershipUnfreezeRequested")
    cloud.run_for(timedelta(minutes=5))

    assert member.drafts()[-3:] == [("2026-03-10", "frozen_dues", 500, "succeeded"),
                                    ("2026-03-17", "membership_dues", 6900, "succeeded"),
                                    ("2026-03-17", "store_credit_applied", 1000, "succeeded")]
    thawed = member.stored()
    assert (thawed.status.value, thawed.draft_day, thawed.next_draft_on, thawed.store_credit.amount) == (
        "active", 17, date(2026, 4, 17), 0)
    cloud.run_until(local(2026, 4, 18))
    assert member.drafts()[-1] == ("2026-04-17", "membership_dues", 7900, "succeeded")


@pytest.mark.parametrize("cloud", [utc(2026, 1, 15, 15)], indirect=True)
def test_a_cancellation_with_paper_certificates_stops_drafts_and_issues_one_certificate_per_service(cloud, site):
    member = Member(site, "mem-bye")
    member.start(date(2026, 1, 15))
    cloud.run_until(local(2026, 3, 20))  # three drafts: three services on the account
    member.send("MembershipCancellationRequested", form_sent_at=cloud.now().isoformat())
    cloud.run_for(timedelta(hours=30))
    member.send("MembershipCancellationFormCompleted", submitted_at=cloud.now().isoformat(), paper_certificates=True)
    cloud.run_until(local(2026, 5, 1))

    assert [d[0] for d in member.drafts()] == ["2026-01-15", "2026-02-15", "2026-03-15"]
    cancelled = member.stored()
    assert (cancelled.status.value, cancelled.credits, cancelled.next_draft_on) == ("cancelled", 0, None)
    assert [(c.issued_on, c.expires_on) for c in cancelled.certificates] == [(date(2026, 3, 21), date(2026, 9, 21))] * 3
    member.send("CertificateRedeemed", certificate_id="cert-2", client_id="c-friend", location_id="massageluxe-austin",
                redeemed_at=cloud.now().isoformat())  # a gift: $20 at the checkout
    cloud.run_for(timedelta(minutes=5))
    redeemed = member.stored().decisions[-1]
    assert (redeemed.outcome, redeemed.fee_due.amount) == ("certificate_redeemed", 2000)
    assert len(member.stored().certificates) == 2
    cloud.run_until(local(2026, 9, 23))
    assert member.stored().certificates == ()
    expiries = [(e.purpose, e.kind.value, e.amount.amount) for e in site.store.ledger.for_appointment(member.key)
                if e.kind.value == "expiry"]
    assert expiries == [("certificate_expired", "expiry", 7900)] * 2  # what each certificate's service was paid for


@pytest.mark.parametrize("cloud", [utc(2026, 1, 5, 15)], indirect=True)
def test_a_declined_draft_is_retried_marks_the_membership_past_due_and_a_new_card_restores_good_standing(
        cloud, site):
    member = Member(site, "mem-declined", card="chargeCustomerFail")
    member.start(date(2026, 1, 5))
    cloud.run_until(local(2026, 1, 5, 20))
    late = member.stored()
    assert (late.past_due, late.next_draft_on, late.next_retry_on) == (True, date(2026, 1, 5), date(2026, 1, 6))
    cloud.run_until(local(2026, 1, 7, 10))  # the second attempt, on Jan 6, declined too: next on Jan 8
    customer = member.known["payment"]["stripe_customer_id"]
    good = site.stripe.v1.payment_methods.attach("pm_card_visa", params={"customer": customer}).id
    site.send("CardUpdated", spa_id="massageluxe", client_id="c-dana", stripe_customer_id=customer,
              stripe_payment_method_id=good)
    cloud.run_until(local(2026, 1, 12, 10))

    assert member.drafts() == [("2026-01-05", "membership_dues", 7900, "declined"),
                               ("2026-01-05", "membership_dues", 7900, "declined"),
                               ("2026-01-05", "membership_dues", 7900, "succeeded")]  # attempts 1-3 of January
    restored = member.stored()
    assert (restored.past_due, restored.full_dues_paid, restored.next_draft_on) == (False, 1, date(2026, 2, 5))
    decided = [d.outcome for d in restored.decisions]
    assert (decided.count("draft_declined"), decided[-1]) == (2, "drafted")



@pytest.mark.parametrize("cloud", [utc(2026, 1, 1, 15)], indirect=True)
def test_a_paid_in_full_membership_is_never_drafted_and_expires_after_its_end_date_with_no_grace(cloud, site):
    member = Member(site, "mem-pif")
    member.start(date(2026, 1, 1), paid_in_full_until="2026-03-31")
    cloud.run_until(local(2026, 3, 31, 20))
    assert (member.stored().status.value, member.stored().credits) == ("active", 3)
    cloud.run_until(local(2026, 4, 1, 10))

    [(_, purpose, forfeited, status)] = member.drafts()  # no draft: only the expiry, recorded as such
    assert (purpose, forfeited, status) == ("membership_expired", 3 * 7900, "succeeded")
    expired = member.stored()
    assert (expired.status.value, expired.credits, expired.next_due()) == ("expired", 0, None)
    assert cloud.stripe.payment_intents == []
