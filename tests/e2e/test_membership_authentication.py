"""A membership draft on a card that needs 3-D Secure (issue 12): off-session, Stripe cannot take it, so the month
is declined and retried; the member may complete the authentication later from the link she was sent. The month
is paid once, whichever comes first: her payment (heard by webhook, or read from Stripe by the retry) or the
retry, which first cancels the payment still waiting for her so her old link cannot pay on top."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import stripe

from localcloud.clock import utc
from medspa.adapters.store import EntryStatus
from tests.e2e.test_memberships import Member, local

pytestmark = pytest.mark.e2e

FIRST = "massageluxe#mem-3ds#2026-01-05#membership_dues#1"
SECOND = "massageluxe#mem-3ds#2026-01-05#membership_dues#2"


def signed_up(cloud, site) -> tuple[Member, str]:
    """Dana joins on 5 January with a card that always asks for 3-D Secure: the sign-up draft waits for her."""
    member = Member(site, "mem-3ds", card="authenticationRequired")
    member.start(date(2026, 1, 5))
    cloud.run_until(local(2026, 1, 5, 12))
    first = site.store.ledger.get(FIRST)
    assert first.status is EntryStatus.REQUIRES_ACTION
    assert (member.stored().past_due, member.stored().next_retry_on) == (True, date(2026, 1, 6))
    return member, first.stripe_payment_intent_id


def authenticate(cloud, site, member: Member, intent: str) -> None:
    site.stripe.v1.payment_intents.confirm(intent, params={
        "payment_method": member.known["payment"]["stripe_payment_method_id"]})
    cloud.stripe.authenticate(intent)


def charged(cloud, member: Member) -> int:
    return cloud.stripe.charges_total(customer=member.known["payment"]["stripe_customer_id"])


def in_good_standing(member: Member) -> None:
    paid = member.stored()
    assert (paid.past_due, paid.full_dues_paid, paid.next_draft_on, paid.credits) == (False, 1, date(2026, 2, 5), 1)
    assert [d.outcome for d in paid.decisions][-2:] == ["draft_declined", "drafted"]


@pytest.mark.parametrize("cloud", [utc(2026, 1, 5, 15)], indirect=True)
def test_a_draft_the_member_authenticates_later_is_paid_by_webhook_and_the_retry_charges_nothing(cloud, site):
    member, intent = signed_up(cloud, site)
    authenticate(cloud, site, member, intent)
    assert {a.status for a in cloud.deliver_stripe_webhooks()} == {200}
    cloud.run_for(timedelta(minutes=5))  # the reconciler, then the membership's own drafts run

    assert site.store.ledger.get(FIRST).status is EntryStatus.SUCCEEDED
    in_good_standing(member)
    cloud.run_until(local(2026, 1, 9, 12))  # both retry days pass
    assert site.store.ledger.get(SECOND) is None and charged(cloud, member) == 7900
    in_good_standing(member)


@pytest.mark.parametrize("cloud", [utc(2026, 1, 5, 15)], indirect=True)
def test_without_the_webhook_the_retry_reads_stripe_finds_the_month_paid_and_charges_nothing(cloud, site):
    member, intent = signed_up(cloud, site)
    authenticate(cloud, site, member, intent)  # her payment's webhook is lost

    cloud.run_until(local(2026, 1, 9, 12))
    assert site.store.ledger.get(FIRST).status is EntryStatus.SUCCEEDED
    assert site.store.ledger.get(SECOND) is None and charged(cloud, member) == 7900
    in_good_standing(member)
    assert {a.status for a in cloud.deliver_stripe_webhooks()} == {200}  # the late webhook changes nothing
    cloud.run_for(timedelta(minutes=5))
    in_good_standing(member)
    assert charged(cloud, member) == 7900


@pytest.mark.parametrize("cloud", [utc(2026, 1, 5, 15)], indirect=True)
def test_the_retry_cancels_the_draft_still_waiting_for_the_member_before_it_tries_again(cloud, site):
    member, intent = signed_up(cloud, site)
    cloud.run_until(local(2026, 1, 6, 12))

    assert site.stripe.v1.payment_intents.retrieve(intent).status == "canceled"
    with pytest.raises(stripe.InvalidRequestError, match="status is canceled"):  # her old link can no longer pay
        authenticate(cloud, site, member, intent)
    assert site.store.ledger.get(SECOND).status is EntryStatus.REQUIRES_ACTION
    assert charged(cloud, member) == 0 and member.stored().past_due
