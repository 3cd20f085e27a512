"""Stripe's webhooks end to end (issue 12, item 2): the fake Stripe's signed events POSTed to the deployed
``/stripe/webhooks`` through the HTTP API's real event shape, the FIFO queue, the reconciling Lambda, the ledger.

Glow's no-show fee on a card that needs 3-D Secure cannot be taken off-session: the entry is ``requires_action``,
the fee is owed, and dunning is due a day later. What Stripe decides after that reaches the ledger by webhook, or,
when the webhook is late, by dunning reading Stripe before it charges: the fee is never collected twice.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import stripe

from localcloud.clock import utc
from medspa.adapters.store import EntryStatus, stripe_idempotency_key

pytestmark = pytest.mark.e2e

FACIAL = dict(name="HydraFacial", category="facial", minutes=60, price=128000)  # Glow: HK$500 no-show fee
MISSED = utc(2026, 3, 3, 6)  # Tuesday 14:00 HKT
FIRST_RETRY = MISSED + timedelta(minutes=15, hours=24)
FEE = "glow#apt-g1#no_show_fee#1"


def miss_a_visit(cloud, site, card: str) -> str:
    """Mei misses her visit; the no-show fee is tried on her card. Returns the fee's PaymentIntent."""
    site.client("glow", "c-mei", card=card, phone="+85291230001")
    site.book("apt-g1", "c-mei", "glow-hk", MISSED, **FACIAL)
    cloud.run_until(MISSED + timedelta(hours=1))
    entry = site.store.ledger.get(FEE)
    assert entry is not None and entry.stripe_payment_intent_id
    return entry.stripe_payment_intent_id


def authenticate(cloud, site, intent_id: str) -> None:
    """What the client's page does with the link she was sent: confirm on-session with her card, pass 3-D Secure."""
    site.stripe.v1.payment_intents.confirm(
        intent_id, params={"payment_method": site.clients["c-mei"]["payment"]["stripe_payment_method_id"]})
    cloud.stripe.authenticate(intent_id)


def settle_webhooks(cloud, **kwargs) -> list[int]:
    answers = [a.status for a in cloud.deliver_stripe_webhooks(**kwargs)]
    cloud.run_for(timedelta(minutes=2))  # the queue hands them to the reconciling Lambda
    return answers


def charged(cloud, site) -> int:
    return cloud.stripe.charges_total(customer=site.clients["c-mei"]["payment"]["stripe_customer_id"])


@pytest.mark.parametrize("cloud", [utc(2026, 3, 2, 2)], indirect=True)
def test_a_fee_the_client_authenticates_later_is_paid_by_webhook_and_dunning_charges_nothing(cloud, site):
    intent = miss_a_visit(cloud, site, "authenticationRequired")
    assert site.store.ledger.get(FEE).status is EntryStatus.REQUIRES_ACTION
    assert site.store.clients.get("glow#c-mei").outstanding == {"HKD": 50000}

    authenticate(cloud, site, intent)
    assert settle_webhooks(cloud) == [200] * len(cloud.stripe.webhook_events)
    paid = site.store.ledger.get(FEE)
    assert (paid.status, paid.stripe_payment_intent_id) == (EntryStatus.SUCCEEDED, intent)
    assert site.store.clients.get("glow#c-mei").outstanding in ({}, {"HKD": 0})

    # Stripe retries a delivery it thinks failed, and events arrive out of order: the ledger stays as Stripe has it.
    events = list(cloud.stripe.webhook_events)
    assert settle_webhooks(cloud, deliveries=reversed(events)) == [200] * len(events)
    assert site.store.ledger.get(FEE).status is EntryStatus.SUCCEEDED
    assert site.store.clients.get("glow#c-mei").outstanding in ({}, {"HKD": 0})

    cloud.run_until(FIRST_RETRY + timedelta(days=10))  # every dunning date passes
    assert charged(cloud, site) == 50000
    assert site.store.ledger.get("glow#apt-g1#no_show_fee#2") is None


@pytest.mark.parametrize("cloud", [utc(2026, 3, 2, 2)], indirect=True)
def test_a_fee_paid_after_the_last_dunning_attempt_is_settled_on_the_visit_and_everyone_is_told(cloud, site):
    """No run of the visit is left once dunning ends; the client who authenticates her last attempt then is
    still thanked, and the booking site, told the fee was outstanding, hears it was charged (its desk would
    otherwise collect it again)."""
    miss_a_visit(cloud, site, "authenticationRequired")
    heard = []
    for day in range(0, 31, 3):  # every dunning attempt asks for 3-D Secure and is left open
        cloud.run_until(MISSED + timedelta(days=day))
        heard += [kind for kind, _ in site.inbox()]  # as a booking site reads its queue: SQS keeps a message 4 days
    assert "FeeOutstanding" in heard and "FeeCharged" not in heard
    assert [e["status"] for e in site.executions("apt-g1")] == ["SUCCEEDED"]
    entries = sorted(site.store.ledger.for_appointment("glow#apt-g1"), key=lambda e: e.attempt)
    last = entries[-1]
    assert len(entries) > 2 and last.status is EntryStatus.REQUIRES_ACTION

    authenticate(cloud, site, last.stripe_payment_intent_id)
    settle_webhooks(cloud)
    settle_webhooks(cloud, deliveries=list(cloud.stripe.webhook_events))  # Stripe delivers them all again

    assert site.store.ledger.get(last.entry_id).status is EntryStatus.SUCCEEDED
    assert site.store.clients.get("glow#c-mei").outstanding in ({}, {"HKD": 0})
    assert site.stored("apt-g1").fees["no_show"].outcome == "settled"
    runs = site.executions("apt-g1")
    assert [(r["name"], r["status"]) for r in runs[1:]] == [
        (f"glow.apt-g1-paid-no_show_fee-a{last.attempt}", "SUCCEEDED")]
    assert ("no_show_fee_charged", "sent") in [m[:2] for m in site.messages("apt-g1")]
    [(kind, told)] = [(k, d) for k, d in site.inbox() if d.get("appointment_id") == "apt-g1"]
    assert (kind, told["reason"], told["charged"]) == ("FeeCharged", "no_show", {"amount": 50000, "currency": "HKD"})
    assert charged(cloud, site) == 50000


@pytest.mark.parametrize("cloud", [utc(2026, 3, 2, 2)], indirect=True)
def test_dunning_reads_stripe_when_the_webhook_has_not_come_and_charges_nothing(cloud, site):
    intent = miss_a_visit(cloud, site, "authenticationRequired")
    authenticate(cloud, site, intent)  # paid at Stripe; the webhook is lost (never delivered here)

    cloud.run_until(FIRST_RETRY + timedelta(minutes=5))
    assert site.store.ledger.get(FEE).status is EntryStatus.SUCCEEDED
    assert site.store.clients.get("glow#c-mei").outstanding in ({}, {"HKD": 0})
    cloud.run_until(FIRST_RETRY + timedelta(days=10))
    assert charged(cloud, site) == 50000
    assert site.store.ledger.get("glow#apt-g1#no_show_fee#2") is None

    settle_webhooks(cloud)  # the late webhooks find the ledger already right
    assert site.store.ledger.get(FEE).status is EntryStatus.SUCCEEDED
    assert site.store.clients.get("glow#c-mei").outstanding in ({}, {"HKD": 0})


@pytest.mark.parametrize("cloud", [utc(2026, 3, 2, 2)], indirect=True)
def test_dunning_cancels_the_charge_still_waiting_for_the_client_before_it_charges_again(cloud, site):
    intent = miss_a_visit(cloud, site, "authenticationRequired")
    cloud.run_until(FIRST_RETRY + timedelta(minutes=5))

    first = site.store.ledger.get(FEE)
    assert (first.status, first.failure_message) == (EntryStatus.DECLINED, "canceled")
    assert first.updated_at < FIRST_RETRY  # the day dunning counts from stays the first failure's
    assert site.stripe.v1.payment_intents.retrieve(intent).status == "canceled"
    with pytest.raises(stripe.InvalidRequestError, match="status is canceled"):  # her old link can no longer pay
        authenticate(cloud, site, intent)
    assert site.store.ledger.get("glow#apt-g1#no_show_fee#2").status is EntryStatus.REQUIRES_ACTION
    assert charged(cloud, site) == 0
    assert site.store.clients.get("glow#c-mei").outstanding == {"HKD": 50000}


@pytest.mark.parametrize("cloud", [utc(2026, 3, 2, 2)], indirect=True)
def test_a_refund_and_a_dispute_made_in_the_dashboard_are_recorded_once(cloud, site):
    intent = miss_a_visit(cloud, site, "visa")
    assert site.store.ledger.get(FEE).status is EntryStatus.SUCCEEDED
    refund = site.stripe.v1.refunds.create(params={"payment_intent": intent, "amount": 20000})  # staff, by hand
    cloud.stripe.dispute(intent)
    settle_webhooks(cloud)
    settle_webhooks(cloud, deliveries=list(cloud.stripe.webhook_events))  # Stripe delivers them all again

    outside = sorted((e.purpose, e.kind.value, e.amount.amount, e.status.value, e.stripe_refund_id)
                     for e in site.store.ledger.for_appointment("glow#apt-g1") if e.entry_id != FEE)
    assert outside == [("disputed", "dispute", 50000, "succeeded", None),
                       ("refunded_in_stripe", "refund", 20000, "succeeded", refund.id)]
    assert site.store.clients.get("glow#c-mei").outstanding in ({}, {"HKD": 0})


@pytest.mark.parametrize("cloud", [utc(2026, 3, 2, 2)], indirect=True)
def test_forged_stale_and_foreign_webhooks_change_nothing(cloud, site):
    intent = miss_a_visit(cloud, site, "authenticationRequired")
    authenticate(cloud, site, intent)
    [*_, succeeded] = cloud.stripe.webhook_events
    assert succeeded.type == "payment_intent.succeeded"

    forged = cloud.http("POST", "/stripe/webhooks", body=succeeded.payload,
                        headers={**succeeded.headers, "Stripe-Signature": "t=1,v1=" + "0" * 64})
    assert forged.status == 400 and "does not verify" in json.loads(forged.body)["error"]
    assert "0" * 64 not in forged.body
    cloud.run_for(timedelta(minutes=6))  # a captured request replayed after Stripe's 300-second tolerance
    [stale] = settle_webhooks(cloud, deliveries=[succeeded], resign=False)
    assert stale == 400
    assert site.store.ledger.get(FEE).status is EntryStatus.REQUIRES_ACTION

    # Another spa's intent naming Glow's entry: the event acts only on its own spa's records.
    ref, before = stripe_idempotency_key(FEE).rsplit("-", 1)[-1], len(cloud.stripe.webhook_events)
    site.stripe.v1.payment_intents.create(params={
        "amount": 50000, "currency": "hkd", "customer": site.clients["c-mei"]["payment"]["stripe_customer_id"],
        "payment_method": "pm_card_visa", "confirm": True, "metadata": {"ledger_ref": ref, "spa_id": "bijoux"}})
    answers = settle_webhooks(cloud, deliveries=cloud.stripe.webhook_events[before:])
    assert answers and set(answers) == {200}
    assert site.store.ledger.get(FEE).status is EntryStatus.REQUIRES_ACTION
    assert site.store.clients.get("glow#c-mei").outstanding == {"HKD": 50000}
