"""The card processor as the settlement service needs it: charge off-session, refund, look up, check a card.

What comes back is an outcome to record on a ledger entry, never an SDK exception; only an outage raises
(``PaymentProviderUnavailable``), for the state machine to retry with the same idempotency key. The Stripe
adapter (``medspa.adapters.payments``) implements it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from medspa.money import Money


class PaymentProviderUnavailable(Exception):
    """Stripe could not be reached or asked us to slow down (5xx, 429, a dropped connection).

    Named so a state machine ``Retry`` can match it (``ErrorEquals: ["PaymentProviderUnavailable"]``).
    Retrying is safe: the retry finds the same pending ledger entry and reuses its idempotency key.
    """


class PaymentProviderThrottled(PaymentProviderUnavailable):
    """This second's share of the Stripe budget is spent, or Stripe itself answered 429 for a rate limit.

    Its own name so the state machines retry it on its own terms (``ErrorEquals: ["PaymentProviderThrottled"]``):
    seconds with full jitter, since the budget refills every second and many runs were turned away at once, where an
    outage is waited out in minutes. A subclass of ``PaymentProviderUnavailable``, so code that treats every
    outage alike (a privacy request's retry) still does. Raised before Stripe is called or instead of its answer,
    after the ledger entry is kept: the retry finds the entry and sends the same idempotency key.
    """

    def __init__(self, doing: str, reason: str) -> None:
        self.reason = reason
        super().__init__(f"{doing}: throttled ({reason})")


# The only metadata keys a charge, refund or card check may carry: opaque ids, never words about a visit
# (Stripe signs no BAA). Every adapter of the port refuses the rest, so a test on the in-memory one catches it.
METADATA_KEYS = frozenset({"ledger_ref", "check_ref", "spa_id", "location_id"})


def opaque_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """The metadata as strings, or ``ValueError`` naming the keys that are not opaque ids."""
    held = dict(metadata or {})
    if unknown := set(held) - METADATA_KEYS:
        raise ValueError(f"metadata keys {sorted(unknown)} are not allowed: only opaque ids go to Stripe")
    return {key: str(value) for key, value in held.items()}


class ChargeStatus(StrEnum):
    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    REQUIRES_ACTION = "requires_action"
    TRANSIENT = "transient"


class RefundStatus(StrEnum):
    SUCCEEDED = "succeeded"
    PENDING = "pending"
    FAILED = "failed"
    ALREADY_REFUNDED = "already_refunded"
    TRANSIENT = "transient"


class CardStatus(StrEnum):
    """Whether the card on file will take an off-session fee, and if not, what the client should fix."""

    USABLE = "usable"
    EXPIRED = "expired"
    DETACHED = "detached"
    MISSING = "missing"
    VERIFICATION_FAILED = "verification_failed"


class _Result(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")


class ChargeResult(_Result):
    status: ChargeStatus
    payment_intent_id: str | None = None
    amount: Money | None = None
    code: str | None = None
    decline_code: str | None = None
    message: str | None = None
    ledger_ref: str | None = None
    spa_id: str | None = None

    @property
    def final(self) -> bool:
        return self.status is not ChargeStatus.TRANSIENT


class RefundResult(_Result):
    status: RefundStatus
    refund_id: str | None = None
    amount: Money | None = None
    message: str | None = None
    ledger_ref: str | None = None


class DisputeResult(_Result):
    """A chargeback the client's bank opened: the money is withdrawn while it runs, and back only if won."""

    dispute_id: str
    payment_intent_id: str
    amount: Money
    status: str


class CardCheckResult(_Result):
    status: CardStatus
    setup_intent_id: str | None = None
    code: str | None = None
    decline_code: str | None = None

    @property
    def usable(self) -> bool:
        return self.status is CardStatus.USABLE


class Payments(Protocol):
    def charge_off_session(self, customer_id: str, payment_method_id: str, amount: Money, idempotency_key: str,
                           statement_descriptor_suffix: str | None = None,
                           metadata: Mapping[str, str] | None = None) -> ChargeResult: ...

    def find_charge(self, customer_id: str, ledger_ref: str) -> ChargeResult | None: ...

    def refund(self, payment_intent_id: str, amount: Money, idempotency_key: str,
               metadata: Mapping[str, str] | None = None) -> RefundResult: ...

    def find_refund(self, payment_intent_id: str, ledger_ref: str) -> RefundResult | None: ...

    def payment(self, payment_intent_id: str) -> ChargeResult | None: ...

    def cancel_authentication(self, payment_intent_id: str) -> ChargeResult: ...

    def refunds_of(self, payment_intent_id: str) -> list[RefundResult]: ...

    def dispute(self, dispute_id: str) -> DisputeResult | None: ...

    def check_card(self, customer_id: str | None, payment_method_id: str | None, needed_through: date,
                   idempotency_key: str, metadata: Mapping[str, str] | None = None) -> CardCheckResult: ...


class StripeNotice(BaseModel):
    """One verified webhook event, as the queue carries it: what to read from Stripe, never its body. Here rather than
    beside the reconciliation that applies it, so the webhook endpoint imports only this and money."""

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    event_id: str = Field(pattern=r"^evt_\w+$")
    type: str = Field(min_length=1)
    payment_intent_id: str = Field(pattern=r"^pi_\w+$")
    dispute_id: str | None = Field(None, pattern=r"^du_\w+$")
