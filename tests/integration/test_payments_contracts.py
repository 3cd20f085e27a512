"""``InMemoryPayments`` keeps the contract of ``StripePayments`` (on the fake Stripe, through the real SDK).

The settlement protocol leans on these, so the service unit tests on the in-memory adapter may too: a card pays,
declines or asks the client to authenticate; an idempotency key replays the first answer (one PaymentIntent,
never a second charge); a charge is found again by the ``ledger_ref`` in its metadata; a waiting charge can be
cancelled, never paid afterwards; a refund is found by its ``ledger_ref`` and the charge refunded in full refuses
another; only opaque metadata keys are sent; a card check tells a usable card from a missing one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import pytest
from fakestripe import save_test_card

from medspa.adapters.memory_payments import InMemoryPayments
from medspa.adapters.payments import StripePayments
from medspa.money import Money
from medspa.ports.payments import CardStatus, ChargeStatus, Payments, RefundStatus

BEHAVIOURS = {"pays": "visa", "declines": "chargeCustomerFail", "needs_authentication": "authenticationRequired"}
Card = Callable[[str], tuple[str, str]]  # behaviour -> (customer id, payment method id)


@pytest.fixture(params=["in_memory", "stripe"])
def payments(request: pytest.FixtureRequest) -> Iterator[tuple[Payments, Card]]:
    if request.param == "in_memory":
        fake = InMemoryPayments()

        def in_memory_card(behaviour: str) -> tuple[str, str]:
            pm = f"pm_{behaviour}_{len(fake.cards)}"
            fake.cards[pm] = behaviour  # type: ignore[assignment]
            return f"cus_{len(fake.cards)}", pm

        yield fake, in_memory_card
        return
    client = request.getfixturevalue("stripe_client")

    def stripe_card(behaviour: str) -> tuple[str, str]:
        customer = client.v1.customers.create().id
        return customer, save_test_card(client, customer, BEHAVIOURS[behaviour])

    yield StripePayments(client), stripe_card


def charge(payments: Payments, card: tuple[str, str], key: str, cents: int = 5_000, **metadata: Any):
    return payments.charge_off_session(card[0], card[1], Money(amount=cents, currency="USD"), key,
                                       metadata={"ledger_ref": key, "spa_id": "bijoux", **metadata})


@pytest.mark.parametrize("behaviour, status", [("pays", ChargeStatus.SUCCEEDED), ("declines", ChargeStatus.DECLINED),
                                               ("needs_authentication", ChargeStatus.REQUIRES_ACTION)])
def test_a_card_pays_declines_or_waits_for_the_client_and_a_repeated_key_replays_the_answer(
        payments: tuple[Payments, Card], behaviour: str, status: ChargeStatus) -> None:
    processor, card = payments
    on_file = card(behaviour)
    first = charge(processor, on_file, "key-1")
    again = charge(processor, on_file, "key-1")

    assert first.status is status and first.amount == Money(amount=5_000, currency="USD")
    assert again.status is status and again.payment_intent_id == first.payment_intent_id
    if status is not ChargeStatus.SUCCEEDED:
        assert first.code is not None
    found = processor.find_charge(on_file[0], "key-1")
    assert found is not None and found.payment_intent_id == first.payment_intent_id
    assert (found.status, found.ledger_ref, found.spa_id) == (status, "key-1", "bijoux")
    assert processor.find_charge(on_file[0], "key-other") is None


def test_a_charge_waiting_for_the_client_is_cancelled_and_a_paid_one_stays_paid(
        payments: tuple[Payments, Card]) -> None:
    processor, card = payments
    waiting = charge(processor, card("needs_authentication"), "key-3ds")
    assert waiting.payment_intent_id is not None
    cancelled = processor.cancel_authentication(waiting.payment_intent_id)
    assert cancelled.status is ChargeStatus.DECLINED
    assert processor.payment(waiting.payment_intent_id).status is ChargeStatus.DECLINED  # type: ignore[union-attr]

    paid = charge(processor, card("pays"), "key-paid")
    assert paid.payment_intent_id is not None
    assert processor.cancel_authentication(paid.payment_intent_id).status is ChargeStatus.SUCCEEDED


def test_a_refund_is_made_once_per_key_found_by_its_reference_and_never_beyond_the_charge(
        payments: tuple[Payments, Card]) -> None:
    processor, card = payments
    paid = charge(processor, card("pays"), "key-r")
    assert paid.payment_intent_id is not None
    intent = paid.payment_intent_id
    half = Money(amount=2_500, currency="USD")
    first = processor.refund(intent, half, "refund-1", metadata={"ledger_ref": "refund-1"})
    assert first.status is RefundStatus.SUCCEEDED and first.amount == half
    assert processor.refund(intent, half, "refund-1", metadata={"ledger_ref": "refund-1"}).refund_id == first.refund_id
    second = processor.refund(intent, half, "refund-2", metadata={"ledger_ref": "refund-2"})
    assert second.status is RefundStatus.SUCCEEDED
    assert processor.find_refund(intent, "refund-1").refund_id == first.refund_id  # type: ignore[union-attr]
    assert sorted(r.ledger_ref or "" for r in processor.refunds_of(intent)) == ["refund-1", "refund-2"]
    third = processor.refund(intent, half, "refund-3", metadata={"ledger_ref": "refund-3"})
    assert third.status is RefundStatus.ALREADY_REFUNDED


def test_only_opaque_metadata_is_sent(payments: tuple[Payments, Card]) -> None:
    processor, card = payments
    with pytest.raises(ValueError):
        charge(processor, card("pays"), "key-m", treatment="Botox")


def test_a_card_check_tells_a_usable_card_from_a_missing_one(payments: tuple[Payments, Card]) -> None:
    processor, card = payments
    customer, pm = card("pays")
    assert processor.check_card(customer, pm, date(2026, 12, 31), "check-1").status is CardStatus.USABLE
    assert processor.check_card(customer, None, date(2026, 12, 31), "check-2").status is CardStatus.MISSING
