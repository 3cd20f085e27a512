"""The card processor behind one small interface: charge a card on file off-session, refund, look up.

A thin wrapper over the unmodified ``stripe`` SDK. It turns Stripe's exceptions into outcomes the
settlement service can record on a ledger entry (succeeded, declined, requires_action) or retry
(transient), and it refuses to send anything that could describe a treatment or identify a person:
Stripe signs no BAA, so only opaque ids travel in metadata, and no description or receipt e-mail is
ever set.

Why ``max_network_retries=0`` by default: the SDK's own retries sleep in wall-clock time inside the
Lambda (billed, and invisible to the local cloud's virtual clock), and they stop at the Lambda's end
anyway. The caller retries instead: the settlement service raises ``PaymentProviderUnavailable`` and
the state machine's ``Retry`` re-runs the step, which finds the same ledger entry and therefore
sends the same idempotency key; Stripe replays or completes the one charge.

Every request first takes a unit of the account's shared rate budget (``medspa.adapters.stripe_budget``: drafts
at most their share, so fees are never starved), and a 429 that Stripe gives for a rate limit (its
``Stripe-Rate-Limited-Reason`` header: ``global-rate``, ``endpoint-rate``, ``global-concurrency``,
``endpoint-concurrency``, ``resource-specific``) becomes the same ``PaymentProviderThrottled``, with the reason
logged (a reason and Stripe's request id: nothing about the client). A 429 ``lock_timeout`` (another request holds
the object; it carries no such header) is an outage like a 5xx. The pages after a list's first are not metered:
lists here are one page (limit 100) but for a client with more than 100 PaymentIntents.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date
from typing import Any

import stripe

from medspa.adapters.stripe_budget import Lane, StripeBudget, Unmetered
from medspa.money import Money
from medspa.ports.payments import (
    METADATA_KEYS,
    CardCheckResult,
    CardStatus,
    ChargeResult,
    ChargeStatus,
    DisputeResult,
    PaymentProviderThrottled,
    PaymentProviderUnavailable,
    RefundResult,
    RefundStatus,
    opaque_metadata,
)

logger = logging.getLogger(__name__)

__all__ = [
    "METADATA_KEYS",
    "CardCheckResult",
    "CardStatus",
    "ChargeResult",
    "ChargeStatus",
    "PaymentProviderThrottled",
    "PaymentProviderUnavailable",
    "RefundResult",
    "RefundStatus",
    "StripePayments",
]

_TRANSIENT_ERRORS = (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError)


def _transient(error: stripe.StripeError) -> bool:
    """5xx, 429 and network failures; a 409 is a concurrent request with the same key still running."""
    status = error.http_status or 0
    return isinstance(error, _TRANSIENT_ERRORS) or status >= 500 or status in (409, 429)


def rate_limited_reason(error: stripe.RateLimitError) -> str | None:
    """Why Stripe refused the request for a rate limit (its ``Stripe-Rate-Limited-Reason`` header), or ``None`` for
    the 429 that is not a rate limit (``lock_timeout``: another request holds the object)."""
    headers = error.headers or {}
    reason = next((str(v) for k, v in headers.items() if k.lower() == "stripe-rate-limited-reason"), None)
    if reason:
        return reason
    code = error.code or _field(error.error, "code")  # stripe-python sets no ``code`` on a 429's exception itself
    return None if code == "lock_timeout" else "unspecified"


def _field(obj: Any, name: str) -> Any:
    """A field of a ``StripeObject`` or ``None``; stripe-python 16 objects are not dicts (no ``.get``)."""
    return obj[name] if obj is not None and name in obj else None


def _charge_from_intent(intent: Any) -> ChargeResult:
    """Map a PaymentIntent (created now, or found later) to the outcome the ledger records."""
    amount = Money(amount=int(intent.amount), currency=str(intent.currency).upper())
    metadata = _field(intent, "metadata")
    ours = {"payment_intent_id": intent.id, "amount": amount, "ledger_ref": _field(metadata, "ledger_ref"),
            "spa_id": _field(metadata, "spa_id")}
    if intent.status == "succeeded":
        return ChargeResult(status=ChargeStatus.SUCCEEDED, **ours)
    error = _field(intent, "last_payment_error")
    code = _field(error, "code")
    if intent.status == "canceled":  # stopped while it waited for the client: it can never be paid now
        return ChargeResult(status=ChargeStatus.DECLINED, code=code or "canceled",
                            decline_code=_field(error, "decline_code"), **ours)
    if intent.status == "requires_action" or code == "authentication_required":
        return ChargeResult(status=ChargeStatus.REQUIRES_ACTION, code="authentication_required",
                            decline_code=_field(error, "decline_code"), **ours)
    if intent.status == "requires_payment_method" and error:
        return ChargeResult(status=ChargeStatus.DECLINED, code=code, decline_code=_field(error, "decline_code"),
                            message=_field(error, "message"), **ours)
    # processing, requires_capture, requires_confirmation: Stripe has not decided yet.
    return ChargeResult(status=ChargeStatus.TRANSIENT, message=f"payment intent is {intent.status}", **ours)


@contextmanager
def _outage_raised(doing: str) -> Iterator[None]:
    """An outage (5xx, 429, the network) becomes ``PaymentProviderUnavailable``, for the caller to retry; any
    other Stripe error is a bug or a refusal and goes up as it is."""
    try:
        yield
    except stripe.StripeError as error:
        if _transient(error):
            raise PaymentProviderUnavailable(f"{doing}: HTTP {error.http_status}") from error
        raise


def _unless_missing(call: Callable[[], Any], doing: str) -> Any | None:
    """What Stripe answers, or ``None`` when it holds no such object (``resource_missing``)."""
    with _outage_raised(doing):
        try:
            return call()
        except stripe.InvalidRequestError as error:
            if error.code == "resource_missing":
                return None
            raise


class StripePayments:
    """Stripe through an explicit ``StripeClient`` (tests aim it at the fake; Lambdas at api.stripe.com)."""

    def __init__(self, client: stripe.StripeClient, budget: StripeBudget | None = None, lane: Lane = "fees") -> None:
        """``lane``: ``drafts`` for the membership drafts (held to their share of the budget), ``fees`` for all else;
        a card check always takes the ``card_checks`` lane, which shares the drafts' cap."""
        self._stripe = client
        self._budget: StripeBudget = budget if budget is not None else Unmetered()
        self._lane: Lane = lane

    @classmethod
    def from_settings(cls, api_key: str, api_base: str | None = None, max_network_retries: int = 0,
                      budget: StripeBudget | None = None, lane: Lane = "fees") -> StripePayments:
        options: dict[str, Any] = {"max_network_retries": max_network_retries}
        if api_base:
            options["base_addresses"] = {"api": api_base}
        return cls(stripe.StripeClient(api_key, **options), budget, lane)

    def _call(self, doing: str, request: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self._call_in(self._lane, doing, request, *args, **kwargs)

    def _call_in(self, lane: Lane, doing: str, request: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One request to Stripe: a unit of the budget's ``lane`` first, and a rate-limit 429 raised as throttled."""
        self._budget.take(lane, doing)
        try:
            return request(*args, **kwargs)
        except stripe.RateLimitError as error:
            reason = rate_limited_reason(error)
            if reason is None:
                raise
            logger.warning("stripe rate limited", extra={"reason": reason, "doing": doing, "lane": lane,
                                                         "stripe_request_id": error.request_id})
            raise PaymentProviderThrottled(doing, reason) from error

    def charge_off_session(
        self,
        customer_id: str,
        payment_method_id: str,
        amount: Money,
        idempotency_key: str,
        statement_descriptor_suffix: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> ChargeResult:
        """Charge the card on file with the client absent; never raises for a decline or an outage."""
        params: dict[str, Any] = {
            "amount": amount.amount,
            "currency": amount.currency.lower(),
            "customer": customer_id,
            "payment_method": payment_method_id,
            "confirm": True,
            "off_session": True,
            "metadata": opaque_metadata(metadata),
        }
        if statement_descriptor_suffix:
            params["statement_descriptor_suffix"] = statement_descriptor_suffix
        try:
            intent = self._call("creating a payment intent", self._stripe.v1.payment_intents.create, params=params,
                                options={"idempotency_key": idempotency_key})
        except stripe.CardError as error:
            detail = error.error
            intent = detail.payment_intent if detail else None
            intent_id = intent.id if intent else None
            decline_code = detail.decline_code if detail else None
            if error.code == "authentication_required":
                return ChargeResult(status=ChargeStatus.REQUIRES_ACTION, payment_intent_id=intent_id, amount=amount,
                                    code=error.code, decline_code=decline_code, message=error.user_message)
            return ChargeResult(status=ChargeStatus.DECLINED, payment_intent_id=intent_id, amount=amount,
                                code=error.code, decline_code=decline_code, message=error.user_message)
        except stripe.StripeError as error:
            if _transient(error):
                return ChargeResult(status=ChargeStatus.TRANSIENT, amount=amount, code=error.code,
                                    message=f"{type(error).__name__}: HTTP {error.http_status}")
            if isinstance(error, stripe.InvalidRequestError) and error.code == "resource_missing":
                # The customer or card on file no longer exists in Stripe: for the client, the same as a
                # decline (the fee stays owed and they are asked to update their card), and retrying won't help.
                return ChargeResult(status=ChargeStatus.DECLINED, amount=amount, code=error.code,
                                    message="the card on file is no longer in Stripe")
            raise
        return _charge_from_intent(intent)

    def find_charge(self, customer_id: str, ledger_ref: str) -> ChargeResult | None:
        """The PaymentIntent a ledger entry created, found by its ``ledger_ref`` metadata.

        This is how a pending entry is resolved once Stripe may have forgotten its idempotency key
        (a crash after the charge, retried more than 24 hours later). Lists are strongly consistent,
        unlike Search. Raises ``PaymentProviderUnavailable`` when Stripe cannot answer.
        """
        with _outage_raised("listing payment intents"):
            page = self._call("listing payment intents", self._stripe.v1.payment_intents.list,
                              params={"customer": customer_id, "limit": 100})
            for intent in page.auto_paging_iter():
                if _field(_field(intent, "metadata"), "ledger_ref") == ledger_ref:
                    return _charge_from_intent(intent)
        return None

    def refund(
        self, payment_intent_id: str, amount: Money, idempotency_key: str, metadata: Mapping[str, str] | None = None
    ) -> RefundResult:
        """Refund part or all of a charge; Stripe itself refuses to refund more than is left on it."""
        params = {"payment_intent": payment_intent_id, "amount": amount.amount,
                  "metadata": opaque_metadata(metadata)}
        try:
            refund = self._call("creating a refund", self._stripe.v1.refunds.create, params=params,
                                options={"idempotency_key": idempotency_key})
        except stripe.InvalidRequestError as error:
            if error.code == "charge_already_refunded":
                return RefundResult(status=RefundStatus.ALREADY_REFUNDED, amount=amount, message=str(error.user_message))
            raise
        except stripe.StripeError as error:
            if _transient(error):
                return RefundResult(status=RefundStatus.TRANSIENT, amount=amount,
                                    message=f"{type(error).__name__}: HTTP {error.http_status}")
            raise
        return _refund_result(refund)

    def find_refund(self, payment_intent_id: str, ledger_ref: str) -> RefundResult | None:
        """The refund a ledger entry created, found by its ``ledger_ref`` metadata (see ``find_charge``)."""
        return next((refund for refund in self.refunds_of(payment_intent_id) if refund.ledger_ref == ledger_ref), None)

    def payment(self, payment_intent_id: str) -> ChargeResult | None:
        """What Stripe holds for a PaymentIntent now. A webhook names the intent; its body is not trusted for
        the outcome (events come late, twice and out of order), so the intent is read afresh."""
        intent = _unless_missing(lambda: self._call("reading a payment intent", self._stripe.v1.payment_intents.retrieve,
                                                    payment_intent_id), "reading a payment intent")
        return None if intent is None else _charge_from_intent(intent)

    def cancel_authentication(self, payment_intent_id: str) -> ChargeResult:
        """Stop a charge that waits for the client (to authenticate, or to give another card), so it cannot be
        completed after the fee is charged again or forgiven. Stripe refuses to cancel an intent that has
        succeeded meanwhile: then the intent as it stands comes back, and the fee is paid."""
        with _outage_raised("cancelling a payment intent"):
            try:
                intent = self._call("cancelling a payment intent", self._stripe.v1.payment_intents.cancel,
                                    payment_intent_id, params={"cancellation_reason": "abandoned"})
            except stripe.InvalidRequestError as error:
                if error.code != "payment_intent_unexpected_state":
                    raise
                intent = self._call("reading a payment intent", self._stripe.v1.payment_intents.retrieve,
                                    payment_intent_id)
        return _charge_from_intent(intent)

    def refunds_of(self, payment_intent_id: str) -> list[RefundResult]:
        """Every refund of a PaymentIntent's charge, the ones made in the Stripe dashboard included."""
        with _outage_raised("listing refunds"):
            page = self._call("listing refunds", self._stripe.v1.refunds.list,
                              params={"payment_intent": payment_intent_id, "limit": 100})
            return [_refund_result(refund) for refund in page.auto_paging_iter()]

    def dispute(self, dispute_id: str) -> DisputeResult | None:
        found = _unless_missing(lambda: self._call("reading a dispute", self._stripe.v1.disputes.retrieve, dispute_id),
                                "reading a dispute")
        if found is None:
            return None
        return DisputeResult(dispute_id=found.id, payment_intent_id=str(_field(found, "payment_intent")),
                             amount=Money(amount=int(found.amount), currency=str(found.currency).upper()),
                             status=str(found.status))

    def check_card(
        self,
        customer_id: str | None,
        payment_method_id: str | None,
        needed_through: date,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> CardCheckResult:
        """Will the card on file take an off-session charge for a visit on ``needed_through``?

        In the order a client would be told: no card on file (*missing*); the PaymentMethod gone or no
        longer attached to the client's customer (*detached*: removed in the dashboard or by the client;
        it is never re-attached here, since that would undo the client's own removal); a card that
        expires before the visit's month ends (*expired*: a card is good through the last day of its
        expiry month); otherwise a SetupIntent for off-session use, confirmed against the card, asks the
        issuer (*verification_failed* if it declines or wants the client to authenticate). Nothing is
        charged. The idempotency key is the caller's, so a retried check confirms the same SetupIntent.
        Raises ``PaymentProviderUnavailable`` when Stripe cannot answer.
        """
        if not customer_id or not payment_method_id:
            return CardCheckResult(status=CardStatus.MISSING)
        try:
            method = self._call_in("card_checks", "reading a payment method", self._stripe.v1.payment_methods.retrieve,
                                   payment_method_id)
        except stripe.StripeError as error:
            return self._card_lookup_failed(error)
        if _field(method, "customer") != customer_id:
            return CardCheckResult(status=CardStatus.DETACHED, code="payment_method_not_attached")
        card = _field(method, "card")
        expiry = (int(card["exp_year"]), int(card["exp_month"])) if card is not None else None
        if expiry is not None and expiry < (needed_through.year, needed_through.month):
            return CardCheckResult(status=CardStatus.EXPIRED, code="expires_before_the_visit")
        params: dict[str, Any] = {
            "customer": customer_id, "payment_method": payment_method_id, "payment_method_types": ["card"],
            "usage": "off_session", "confirm": True, "metadata": opaque_metadata(metadata),
        }
        try:
            intent = self._call_in("card_checks", "confirming a setup intent", self._stripe.v1.setup_intents.create,
                                   params=params, options={"idempotency_key": idempotency_key})
        except stripe.CardError as error:
            detail = error.error
            intent_id = _field(_field(detail, "setup_intent"), "id")
            status = CardStatus.EXPIRED if error.code == "expired_card" else CardStatus.VERIFICATION_FAILED
            return CardCheckResult(status=status, setup_intent_id=intent_id, code=error.code,
                                   decline_code=detail.decline_code if detail else None)
        except stripe.StripeError as error:
            return self._card_lookup_failed(error)
        if intent.status == "succeeded":
            return CardCheckResult(status=CardStatus.USABLE, setup_intent_id=intent.id)
        if intent.status in ("requires_action", "requires_payment_method", "canceled"):
            # Off-session charges would need the client to authenticate (or the issuer refused): the fee
            # would fail just the same, so the card needs the client's attention.
            error = _field(intent, "last_setup_error")
            return CardCheckResult(status=CardStatus.VERIFICATION_FAILED, setup_intent_id=intent.id,
                                   code=_field(error, "code") or "authentication_required",
                                   decline_code=_field(error, "decline_code"))
        raise PaymentProviderUnavailable(f"setup intent is {intent.status}: Stripe has not decided yet")

    @staticmethod
    def _card_lookup_failed(error: stripe.StripeError) -> CardCheckResult:
        if _transient(error):
            raise PaymentProviderUnavailable(f"checking a card: HTTP {error.http_status}") from error
        if isinstance(error, stripe.InvalidRequestError) and error.code == "resource_missing":
            # The PaymentMethod or the customer no longer exists in Stripe.
            return CardCheckResult(status=CardStatus.DETACHED, code=error.code)
        raise error

    def delete_customer(self, customer_id: str) -> bool:
        """Delete the client's Stripe customer (and with it the cards saved on it), for an erasure.

        Stripe keeps the charges and refunds themselves (a business's payment records), detached from
        any customer. ``False`` when Stripe no longer has the customer: already deleted, so a retried
        erasure finishes. Raises ``PaymentProviderUnavailable`` when Stripe cannot answer.
        """
        deleted = _unless_missing(lambda: self._call("deleting a customer", self._stripe.v1.customers.delete, customer_id),
                                  "deleting a customer")
        return deleted is not None and bool(_field(deleted, "deleted"))


def _refund_result(refund: Any) -> RefundResult:
    status = {"succeeded": RefundStatus.SUCCEEDED, "pending": RefundStatus.PENDING}.get(refund.status, RefundStatus.FAILED)
    return RefundResult(status=status, refund_id=refund.id,
                        amount=Money(amount=int(refund.amount), currency=str(refund.currency).upper()),
                        ledger_ref=_field(_field(refund, "metadata"), "ledger_ref"))
