"""The fee steps and ``SettlementService`` on the in-memory adapters: where each seed spa's fee is taken from.

406MedicalSpa: "a $75 late cancellation fee to the credit card on file, or to apply any booking deposit made on
the account towards this fee" (the deposit first, the card for the rest). Glow HK: "HK$500", and "outstanding
cancellation/rebooking fees must be paid on the client's next visit". Bijoux: the card on file, exactly once
even when Stripe is out or asks the client to authenticate. Times passed in; ``InMemoryPayments`` as Stripe.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest

from medspa.domain.keys import appointment_key, client_key
from medspa.domain.ledger import EntryKind, EntryStatus, LedgerEntry, ledger_entry_id
from medspa.money import Money
from medspa.ports.payments import PaymentProviderUnavailable, StripeNotice
from medspa.services.reconciliation import StripeReconciliation
from tests.support.memory_spa import MemorySpa
from tests.support.packs import BIJOUX, GLOW, SPA406

SERVICE = {"name": "Botox forehead", "category": "injection_laser", "duration_minutes": 30}


def visit(pack, days: int = 0) -> datetime:  # noqa: ANN001 - a PolicyPack
    return datetime.combine(datetime(2026, 6, 9 + days).date(), time(14), pack.zone)


def usd(cents: int) -> Money:
    return Money(amount=cents, currency="USD")


def hkd(cents: int) -> Money:
    return Money(amount=cents, currency="HKD")


def test_406_takes_the_booking_deposit_first_and_charges_the_card_only_for_the_rest() -> None:
    start = visit(SPA406)
    spa = MemorySpa(start - timedelta(days=10))
    spa.payments.cards["pm_1"] = "pays"
    spa.send("AppointmentBooked", spa.now, spa_id="406medicalspa", appointment_id="a1", booking_version=1,
             location_id="406medicalspa", client={"id": "c1", "phone": "+14065550100", "sms_opt_in": True},
             service={**SERVICE, "price": {"amount": 45_000, "currency": "USD"}}, starts_at=start.isoformat(),
             payment={"card_on_file": True, "stripe_customer_id": "cus_1", "stripe_payment_method_id": "pm_1",
                      "deposit": {"amount": 5_000, "currency": "USD"}})
    spa.send("AppointmentConfirmed", spa.now, spa_id="406medicalspa", appointment_id="a1", booking_version=2,
             channel="sms")
    key = appointment_key("406medicalspa", "a1")
    spa.run_until(key, start + timedelta(days=2))  # nobody checks in

    assert sorted((e.purpose, e.kind, e.amount, e.status) for e in spa.store.ledger.for_appointment(key)) == [
        ("no_show_fee", EntryKind.CHARGE, usd(2_500), EntryStatus.SUCCEEDED),
        ("no_show_fee_deposit", EntryKind.FORFEIT, usd(5_000), EntryStatus.SUCCEEDED)]
    assert [c.amount for c in spa.payments.charged] == [usd(2_500)]
    assert spa.appointment(key).fees["no_show"].fee == usd(7_500)
    [charged] = spa.published("FeeCharged")
    assert (charged["fee"], charged["charged"], charged["outstanding"]) == (
        {"amount": 7_500, "currency": "USD"}, {"amount": 2_500, "currency": "USD"}, None)


def test_glow_without_a_card_leaves_hk500_outstanding_due_at_the_next_visit_and_paid_at_the_desk() -> None:
    start = visit(GLOW)
    spa = MemorySpa(start - timedelta(days=10))
    client = {"id": "c1", "phone": "+85291234567", "sms_opt_in": True}
    facial = {"name": "Facial", "category": "facial", "duration_minutes": 60,
              "price": {"amount": 120_000, "currency": "HKD"}}
    spa.send("AppointmentBooked", spa.now, spa_id="glow", appointment_id="a1", booking_version=1,
             location_id="glow-hk", client=client, service=facial, starts_at=start.isoformat(),
             payment={"card_on_file": False})
    spa.run_until(appointment_key("glow", "a1"), start + timedelta(days=2))

    client_id = client_key("glow", "c1")
    [entry] = spa.store.ledger.for_client(client_id)
    assert (entry.purpose, entry.kind, entry.amount) == ("no_show_fee_outstanding_balance", EntryKind.OUTSTANDING,
                                                         hkd(50_000))
    assert spa.store.clients.get(client_id).outstanding == {"HKD": 50_000}  # type: ignore[union-attr]
    assert [d["outstanding"] for d in spa.published("FeeOutstanding")] == [{"amount": 50_000, "currency": "HKD"}]
    assert spa.payments.charged == []

    spa.send("AppointmentBooked", spa.now, spa_id="glow", appointment_id="a2", booking_version=1,
             location_id="glow-hk", client=client, service=facial,
             starts_at=(start + timedelta(days=14)).isoformat(), payment={"card_on_file": False})
    spa.run_until(appointment_key("glow", "a2"), spa.now)
    [due] = spa.published("OutstandingBalanceDue")
    assert (due["appointment_id"], due["trigger"], due["balance"]) == (
        "a2", "booked", [{"amount": 50_000, "currency": "HKD"}])

    paid = spa.send("OutstandingBalancePaid", spa.now, spa_id="glow", client_id="c1",
                    amount={"amount": 60_000, "currency": "HKD"}, paid_at=spa.now.isoformat(),
                    payment_reference="till-1", received_by="desk-1")
    again = spa.send("OutstandingBalancePaid", spa.now, spa_id="glow", client_id="c1",
                     amount={"amount": 60_000, "currency": "HKD"}, paid_at=spa.now.isoformat(),
                     payment_reference="till-1", received_by="desk-1")
    assert paid.action == again.action == "balance_paid"
    held = spa.store.clients.get(client_id)
    assert held is not None and held.outstanding == {"HKD": 0} and held.credit == {"HKD": 10_000}
    settled = spa.published("OutstandingBalanceSettled")
    assert settled[0]["settled"] == {"amount": 50_000, "currency": "HKD"}
    assert settled[0]["credited"] == {"amount": 10_000, "currency": "HKD"} and settled[0]["balance"] == []
    assert settled[0]["fees_settled"] == [{"appointment_id": "a1", "reason": "no_show"}]


def bijoux_no_show(spa: MemorySpa, behaviour: str) -> str:
    spa.payments.cards["pm_1"] = behaviour  # type: ignore[assignment]
    spa.send("AppointmentBooked", spa.now, spa_id="bijoux", appointment_id="a1", booking_version=1,
             location_id="bijoux", client={"id": "c1", "phone": "+14075550123", "sms_opt_in": True},
             service={**SERVICE, "price": {"amount": 42_000, "currency": "USD"}},
             starts_at=visit(BIJOUX).isoformat(),
             payment={"card_on_file": True, "stripe_customer_id": "cus_1", "stripe_payment_method_id": "pm_1"})
    return appointment_key("bijoux", "a1")


def test_a_stripe_outage_leaves_the_entry_pending_and_the_retried_step_charges_once() -> None:
    spa = MemorySpa(visit(BIJOUX) - timedelta(days=10))
    key = bijoux_no_show(spa, "pays")
    spa.run_until(key, visit(BIJOUX))  # reminders and the card check, before Stripe goes down
    spa.payments.outage = True
    with pytest.raises(PaymentProviderUnavailable):
        spa.run_until(key, visit(BIJOUX) + timedelta(days=1))
    entry = spa.store.ledger.get(ledger_entry_id(key, "no_show_fee", 1))
    assert entry is not None and entry.status is EntryStatus.PENDING and "no_show" not in spa.appointment(key).fees

    spa.payments.outage = False  # the state machine's Retry runs the same step again
    spa.advance(timedelta(minutes=5))
    spa.run_until(key, visit(BIJOUX) + timedelta(days=1))
    paid = spa.store.ledger.get(ledger_entry_id(key, "no_show_fee", 1))
    assert paid is not None and paid.status is EntryStatus.SUCCEEDED and paid.created_at == entry.created_at
    assert [c.amount for c in spa.payments.charged] == [usd(5_000)]
    assert len(spa.published("FeeCharged")) == 1


def test_a_card_that_asks_the_client_to_authenticate_is_not_final() -> None:
    spa = MemorySpa(visit(BIJOUX) - timedelta(days=10))
    key = bijoux_no_show(spa, "needs_authentication")
    spa.run_until(key, visit(BIJOUX) + timedelta(hours=3))

    entry = spa.store.ledger.get(ledger_entry_id(key, "no_show_fee", 1))
    assert entry is not None and entry.status is EntryStatus.REQUIRES_ACTION
    assert entry.stripe_payment_intent_id is not None
    assert spa.appointment(key).fees["no_show"].outcome == "outstanding"
    assert spa.payments.charged == []


class _StartedRuns:
    """``PaidFeeRuns`` that remembers what it was asked to start."""

    def __init__(self) -> None:
        self.started: list[tuple[str, str, int]] = []

    def start_paid_later(self, appointment_id: str, purpose: str, attempt: int) -> None:
        self.started.append((appointment_id, purpose, attempt))


def _dunned_to_the_end(spa: MemorySpa) -> tuple[str, LedgerEntry]:
    """Bijoux's no-show fee on a card that always asks for 3-D Secure, left open through every dunning attempt."""
    key = bijoux_no_show(spa, "needs_authentication")
    spa.run_until(key, visit(BIJOUX) + timedelta(days=30))
    last = max(spa.store.ledger.for_appointment(key), key=lambda e: e.attempt)
    assert last.attempt > 1 and last.status is EntryStatus.REQUIRES_ACTION
    assert spa.appointment(key).fees["no_show"].next_retry_at is None  # no step of the visit is left
    return key, last


def test_a_fee_paid_after_the_last_dunning_attempt_starts_a_run_that_settles_and_tells_it_once() -> None:
    spa = MemorySpa(visit(BIJOUX) - timedelta(days=10))
    key, last = _dunned_to_the_end(spa)
    assert last.stripe_payment_intent_id is not None
    spa.payments.authenticate(last.stripe_payment_intent_id)
    runs = _StartedRuns()
    reconciliation = StripeReconciliation(spa.store, spa.payments, spa.settlement, paid_fee_runs=runs)
    notice = StripeNotice(event_id="evt_1", type="payment_intent.succeeded",
                          payment_intent_id=last.stripe_payment_intent_id)

    assert reconciliation.apply(notice, spa.now).outcome == "paid"
    assert reconciliation.apply(notice, spa.now).outcome == "unchanged"  # a redelivery starts nothing more
    assert runs.started == [(key, "no_show_fee", last.attempt)]
    assert spa.appointment(key).fees["no_show"].outcome == "outstanding"  # until the run records it

    first = spa.fees.record_paid_later(key, "no_show_fee", last.attempt, spa.now)
    again = spa.fees.record_paid_later(key, "no_show_fee", last.attempt, spa.now)
    assert spa.appointment(key).fees["no_show"].outcome == "settled"
    assert first.detail["notice"] == again.detail["notice"] == "no_show_fee_charged#no_show"
    assert again.done.startswith("no_show: nothing to record")
    assert [(d["charged"], d["outstanding"]) for d in spa.published("FeeCharged")] == [
        ({"amount": 5_000, "currency": "USD"}, None)]
    assert spa.store.clients.get(client_key("bijoux", "c1")).outstanding == {"USD": 0}  # type: ignore[union-attr]


def test_a_paid_later_run_that_comes_before_its_webhook_reads_stripe_itself() -> None:
    spa = MemorySpa(visit(BIJOUX) - timedelta(days=10))
    key, last = _dunned_to_the_end(spa)
    assert last.stripe_payment_intent_id is not None
    spa.payments.authenticate(last.stripe_payment_intent_id)

    spa.fees.record_paid_later(key, "no_show_fee", last.attempt, spa.now)

    assert spa.store.ledger.get(last.entry_id).status is EntryStatus.SUCCEEDED  # type: ignore[union-attr]
    assert spa.appointment(key).fees["no_show"].outcome == "settled"
    assert spa.store.clients.get(client_key("bijoux", "c1")).outstanding == {"USD": 0}  # type: ignore[union-attr]
    assert len(spa.published("FeeCharged")) == 1
