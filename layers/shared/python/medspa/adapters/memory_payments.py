"""``Payments`` in memory: a card processor for the services' unit tests and the backtest, without a network.

It keeps what the settlement protocol leans on in Stripe (``medspa.services.settlement``): an idempotency key
replays the first answer (the same PaymentIntent, never a second charge), a charge is found again by the
``ledger_ref`` in its metadata, a refund never exceeds what is left of its charge, and an intent waiting for the
client can be cancelled unless it was paid meanwhile. What a card does is set per payment method
(``cards``): pay, decline, or ask the client to authenticate (3-D Secure); an unknown payment method is a card
no longer in Stripe. Only the metadata keys the Stripe adapter lets through are accepted, so a service that
would send words about a visit fails here too. ``outage`` makes every call answer as Stripe does when it cannot
be reached. Nothing is kept longer than Stripe would forget it: keys are never forgotten here.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from medspa.money import Money
from medspa.ports.payments import (
    CardCheckResult,
    CardStatus,
    ChargeResult,
    ChargeStatus,
    DisputeResult,
    PaymentProviderUnavailable,
    RefundResult,
    RefundStatus,
    opaque_metadata,
)

CardBehaviour = Literal["pays", "declines", "needs_authentication", "expired"]


@dataclass
class _Intent:
    customer_id: str
    result: ChargeResult
    refunds: list[RefundResult] = field(default_factory=list)


@dataclass
class InMemoryPayments:
    """``medspa.ports.payments.Payments`` in dicts; ``cards`` maps a payment method id to what it does when
    charged. ``declined_when_checked`` lists the declining cards whose issuer also refuses a SetupIntent (Stripe's
    ``visa_chargeDeclined`` does; ``chargeCustomerFail`` is saved and checked fine and declines only charges)."""

    cards: dict[str, CardBehaviour] = field(default_factory=dict)
    declined_when_checked: set[str] = field(default_factory=set)
    outage: bool = False
    intents: dict[str, _Intent] = field(default_factory=dict)
    by_key: dict[str, str] = field(default_factory=dict)
    refunds_by_key: dict[str, RefundResult] = field(default_factory=dict)
    disputes: dict[str, DisputeResult] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def _up(self, doing: str) -> None:
        if self.outage:
            raise PaymentProviderUnavailable(f"Stripe unavailable while {doing}")

    @property
    def charged(self) -> list[ChargeResult]:
        """Every PaymentIntent that succeeded, in creation order: what the client's bank statement shows."""
        return [i.result for i in self.intents.values() if i.result.status is ChargeStatus.SUCCEEDED]

    def charge_off_session(self, customer_id: str, payment_method_id: str, amount: Money, idempotency_key: str,
                           statement_descriptor_suffix: str | None = None,
                           metadata: Mapping[str, str] | None = None) -> ChargeResult:
        held = opaque_metadata(metadata)
        if self.outage:
            return ChargeResult(status=ChargeStatus.TRANSIENT, amount=amount, message="APIConnectionError: HTTP None")
        if idempotency_key in self.by_key:
            return self.intents[self.by_key[idempotency_key]].result
        behaviour = self.cards.get(payment_method_id)
        if behaviour is None:
            return ChargeResult(status=ChargeStatus.DECLINED, amount=amount, code="resource_missing",
                                message="the card on file is no longer in Stripe")
        intent_id = f"pi_mem_{next(self._ids)}"
        ours = {"payment_intent_id": intent_id, "amount": amount, "ledger_ref": held.get("ledger_ref"),
                "spa_id": held.get("spa_id")}
        if behaviour == "pays":
            result = ChargeResult(status=ChargeStatus.SUCCEEDED, **ours)
        elif behaviour == "needs_authentication":
            result = ChargeResult(status=ChargeStatus.REQUIRES_ACTION, code="authentication_required", **ours)
        elif behaviour == "expired":
            result = ChargeResult(status=ChargeStatus.DECLINED, code="expired_card", decline_code="expired_card",
                                  **ours)
        else:
            result = ChargeResult(status=ChargeStatus.DECLINED, code="card_declined",
                                  decline_code="insufficient_funds", message="Your card has insufficient funds.",
                                  **ours)
        self.intents[intent_id] = _Intent(customer_id, result)
        self.by_key[idempotency_key] = intent_id
        return result

    def find_charge(self, customer_id: str, ledger_ref: str) -> ChargeResult | None:
        self._up("listing payment intents")
        return next((i.result for i in self.intents.values()
                     if i.customer_id == customer_id and i.result.ledger_ref == ledger_ref), None)

    def payment(self, payment_intent_id: str) -> ChargeResult | None:
        self._up("reading a payment intent")
        held = self.intents.get(payment_intent_id)
        return held.result if held is not None else None

    def authenticate(self, payment_intent_id: str, *, succeeds: bool = True) -> ChargeResult:
        """The client finished (or failed) 3-D Secure on a waiting intent; what a webhook would then report."""
        held = self.intents[payment_intent_id]
        if held.result.status is ChargeStatus.REQUIRES_ACTION:
            update: dict[str, object] = {"status": ChargeStatus.SUCCEEDED, "code": None} if succeeds else {
                "status": ChargeStatus.DECLINED, "code": "card_declined", "decline_code": "generic_decline"}
            held.result = held.result.model_copy(update=update)
        return held.result

    def cancel_authentication(self, payment_intent_id: str) -> ChargeResult:
        self._up("cancelling a payment intent")
        held = self.intents[payment_intent_id]
        if held.result.status is ChargeStatus.REQUIRES_ACTION:
            held.result = held.result.model_copy(update={"status": ChargeStatus.DECLINED, "code": "canceled"})
        return held.result

    def refund(self, payment_intent_id: str, amount: Money, idempotency_key: str,
               metadata: Mapping[str, str] | None = None) -> RefundResult:
        held_metadata = opaque_metadata(metadata)
        if self.outage:
            return RefundResult(status=RefundStatus.TRANSIENT, amount=amount, message="APIConnectionError: HTTP None")
        if idempotency_key in self.refunds_by_key:
            return self.refunds_by_key[idempotency_key]
        held = self.intents[payment_intent_id]
        charged = held.result.amount
        assert charged is not None and held.result.status is ChargeStatus.SUCCEEDED, "only a paid charge is refunded"
        left = charged.amount - sum(r.amount.amount for r in held.refunds if r.amount is not None)
        if left <= 0:
            return RefundResult(status=RefundStatus.ALREADY_REFUNDED, amount=amount,
                                message="Charge has already been refunded.")
        if amount.amount > left:
            raise ValueError(f"refund of {amount} exceeds the {left} left on {payment_intent_id}")
        refund = RefundResult(status=RefundStatus.SUCCEEDED, refund_id=f"re_mem_{next(self._ids)}", amount=amount,
                              ledger_ref=held_metadata.get("ledger_ref"))
        held.refunds.append(refund)
        self.refunds_by_key[idempotency_key] = refund
        return refund

    def refunds_of(self, payment_intent_id: str) -> list[RefundResult]:
        self._up("listing refunds")
        held = self.intents.get(payment_intent_id)
        return list(held.refunds) if held is not None else []

    def find_refund(self, payment_intent_id: str, ledger_ref: str) -> RefundResult | None:
        return next((r for r in self.refunds_of(payment_intent_id) if r.ledger_ref == ledger_ref), None)

    def dispute(self, dispute_id: str) -> DisputeResult | None:
        self._up("reading a dispute")
        return self.disputes.get(dispute_id)

    def check_card(self, customer_id: str | None, payment_method_id: str | None, needed_through: date,
                   idempotency_key: str, metadata: Mapping[str, str] | None = None) -> CardCheckResult:
        if not customer_id or not payment_method_id:  # known without asking Stripe
            return CardCheckResult(status=CardStatus.MISSING)
        opaque_metadata(metadata)
        self._up("checking a card")
        behaviour = self.cards.get(payment_method_id)
        if behaviour is None:
            return CardCheckResult(status=CardStatus.DETACHED, code="resource_missing")
        if behaviour == "expired":
            return CardCheckResult(status=CardStatus.EXPIRED, code="expired_card")
        if behaviour == "declines" and payment_method_id in self.declined_when_checked:
            return CardCheckResult(status=CardStatus.VERIFICATION_FAILED, code="card_declined",
                                   decline_code="generic_decline")
        if behaviour == "needs_authentication":
            return CardCheckResult(status=CardStatus.VERIFICATION_FAILED, code="authentication_required")
        return CardCheckResult(status=CardStatus.USABLE, setup_intent_id=f"seti_mem_{next(self._ids)}")
