"""The fake Stripe pinned to Stripe's documented behaviour, through the real SDK over loopback.

Each test names the documented fact it holds the fake to, and where Stripe documents it:
- idempotency: https://docs.stripe.com/api/idempotent_requests
- test cards and declines: https://docs.stripe.com/testing, https://docs.stripe.com/declines/codes
- error shape: https://docs.stripe.com/api/errors
- refunds: https://docs.stripe.com/refunds, https://docs.stripe.com/error-codes#charge-already-refunded
- rate limits: https://docs.stripe.com/rate-limits
- webhook signatures: https://docs.stripe.com/webhooks#verify-manually
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import stripe
import time_machine
from stripe._http_client import HTTPClient

from fakestripe.client import client_for
from fakestripe.server import FakeStripe, ManualClock, parse_form

DAY = 24 * 3600


@pytest.fixture(autouse=True)
def _no_sdk_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK sleeps >= 0.5 s before a retry; the retry itself is what these tests are about."""
    monkeypatch.setattr(HTTPClient, "_sleep_time_seconds", lambda self, num_retries: 0.0)


@pytest.fixture
def customer(stripe_client: stripe.StripeClient) -> stripe.Customer:
    return stripe_client.v1.customers.create(params={"email": "client@example.com"})


def charge(
    client: stripe.StripeClient, customer: str, payment_method: str, *, amount: int = 5000, key: str | None = None,
    **extra: Any,
) -> stripe.PaymentIntent:
    """An off-session fee charge, shaped the way the system charges a card on file."""
    params: dict[str, Any] = {
        "amount": amount, "currency": "usd", "customer": customer, "payment_method": payment_method,
        "confirm": True, "off_session": True, "description": "Late-cancellation fee",
        "metadata": {"ledger_entry": "le_1"},
    } | extra
    return client.v1.payment_intents.create(params=params, options={"idempotency_key": key} if key else None)


def card_on_file(client: stripe.StripeClient, customer: stripe.Customer, token: str = "pm_card_visa") -> str:
    pm = client.v1.payment_methods.attach(token, params={"customer": customer.id})
    client.v1.customers.update(customer.id, params={"invoice_settings": {"default_payment_method": pm.id}})
    return pm.id


# Authentication ------------------------------------------------------------------------------


def test_wrong_api_key_is_401_authentication_error(fake_stripe: FakeStripe) -> None:
    """Stripe answers a request with an invalid key with 401 (docs.stripe.com/api/errors: 401 Unauthorized,
    "No valid API key provided"); the SDK raises AuthenticationError."""
    client = stripe.StripeClient("sk_test_wrong", base_addresses={"api": fake_stripe.url}, max_network_retries=0)
    with pytest.raises(stripe.AuthenticationError) as caught:
        client.v1.customers.create(params={"email": "x@example.com"})
    assert caught.value.http_status == 401
    assert fake_stripe.customers == []


# Customers and cards on file -----------------------------------------------------------------


def test_customer_default_payment_method_set_then_cleared_by_detach(
    stripe_client: stripe.StripeClient, customer: stripe.Customer
) -> None:
    """A test PaymentMethod token attaches as a new pm_ object; detaching the customer's default
    PaymentMethod clears invoice_settings.default_payment_method (docs.stripe.com/api/payment_methods/detach)."""
    pm_id = card_on_file(stripe_client, customer)
    assert pm_id.startswith("pm_") and pm_id != "pm_card_visa"
    listed = stripe_client.v1.payment_methods.list(params={"customer": customer.id, "type": "card"})
    assert [pm.id for pm in listed.data] == [pm_id]
    assert listed.data[0].card.last4 == "4242"
    assert stripe_client.v1.customers.retrieve(customer.id).invoice_settings.default_payment_method == pm_id

    stripe_client.v1.payment_methods.detach(pm_id)
    assert stripe_client.v1.customers.retrieve(customer.id).invoice_settings.default_payment_method is None
    assert stripe_client.v1.payment_methods.list(params={"customer": customer.id, "type": "card"}).data == []


def test_a_deleted_customer_is_a_stub_to_retrieve_and_missing_to_everything_else(
    stripe_client: stripe.StripeClient, customer: stripe.Customer
) -> None:
    """docs.stripe.com/api/customers/delete returns ``{"id", "object": "customer", "deleted": true}``; a
    retrieve then returns the same stub ("a subset of the customer's information ... including a deleted
    property"); any other use, deleting again included, is 404 ``resource_missing`` ("No such customer")."""
    pm_id = card_on_file(stripe_client, customer)
    deleted = stripe_client.v1.customers.delete(customer.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (customer.id, "customer", True)
    retrieved = stripe_client.v1.customers.retrieve(customer.id)
    assert retrieved.deleted is True and "email" not in retrieved
    assert stripe_client.v1.payment_methods.retrieve(pm_id).customer is None  # its cards go with it
    for attempt in (lambda: stripe_client.v1.customers.delete(customer.id),
                    lambda: stripe_client.v1.customers.update(customer.id, params={"email": "x@example.com"}),
                    lambda: charge(stripe_client, customer.id, pm_id)):
        with pytest.raises(stripe.InvalidRequestError) as caught:
            attempt()
        assert (caught.value.http_status, caught.value.code) == (404, "resource_missing")
    assert customer.id not in [c.id for c in stripe_client.v1.customers.list().data]


def test_setup_intent_off_session_confirm_attaches_card(
    stripe_client: stripe.StripeClient, customer: stripe.Customer
) -> None:
    """A confirmed SetupIntent with usage=off_session attaches its PaymentMethod to the customer
    (docs.stripe.com/payments/save-and-reuse)."""
    seti = stripe_client.v1.setup_intents.create(
        params={"customer": customer.id, "payment_method": "pm_card_visa", "usage": "off_session", "confirm": True}
    )
    assert (seti.status, seti.usage) == ("succeeded", "off_session")
    assert stripe_client.v1.payment_methods.retrieve(seti.payment_method).customer == customer.id


def test_raw_card_number_behaves_like_its_test_payment_method(
    fake_stripe: FakeStripe, stripe_client: stripe.StripeClient, customer: stripe.Customer
) -> None:
    """The documented card numbers carry the same behaviour as their pm_card_* tokens (0341: attaches,
    then declines)."""
    pm = stripe_client.v1.payment_methods.create(
        params={"type": "card", "card": {"number": "4000000000000341", "exp_month": 12, "exp_year": 2030, "cvc": "123"}}
    )
    assert pm.card.last4 == "0341"
    stripe_client.v1.payment_methods.attach(pm.id, params={"customer": customer.id})
    with pytest.raises(stripe.CardError):
        charge(stripe_client, customer.id, pm.id)


def test_metadata_keys_that_look_like_indices_stay_keys() -> None:
    assert parse_form("metadata[0]=a&expand[0]=latest_charge&expand[1]=customer") == {
        "metadata": {"0": "a"}, "expand": ["latest_charge", "customer"],
    }


# Idempotency ---------------------------------------------------------------------------------


def test_same_key_replays_first_response_with_idempotent_replayed_header(
    fake_stripe: FakeStripe, stripe_client: stripe.StripeClient, customer: stripe.Customer
) -> None:
    """Stripe saves the status code and body of the first request for a key; later requests with the
    same key return the same result, marked by the Idempotent-Replayed response header."""
    pm = card_on_file(stripe_client, customer)
    first = charge(stripe_client, customer.id, pm, key="fee:appt-1:v1")
    again = charge(stripe_client, customer.id, pm, key="fee:appt-1:v1")

    assert again.id == first.id and again.latest_charge == first.latest_charge
    assert again.last_response.headers.get("Idempotent-Replayed") == "true"
    assert first.last_response.headers.get("Idempotent-Replayed") is None
    assert len(fake_stripe.payment_intents) == 1 and fake_stripe.charges_total(customer.id) == 5000
    assert [r.replayed for r in fake_stripe.requests if r.idempotency_key == "fee:appt-1:v1"] == [False, True]


def test_same_key_with_different_parameters_is_idempotency_error(
    stripe_client: stripe.StripeClient, customer: stripe.Customer
) -> None:
    """The idempotency layer compares incoming parameters to the original request's and errors if they
    differ (HTTP 400, error type idempotency_error)."""
    pm = card_on_file(stripe_client, customer)
    charge(stripe_client, customer.id, pm, key="k")
    with pytest.raises(stripe.IdempotencyError) as caught:
        charge(stripe_client, customer.id, pm, key="k", amount=7500)
    assert caught.value.http_status == 400
    assert caught.value.json_body["error"]["type"] == "idempotency_error"
    with pytest.raises(stripe.IdempotencyError):
        stripe_client.v1.refunds.create(params={"payment_intent": "pi_x"}, options={"idempotency_key": "k"})


def test_key_is_forgotten_after_24_hours_and_the_request_runs_again(
    fake_stripe: FakeStripe, stripe_clock: ManualClock, stripe_client: stripe.StripeClient, customer: stripe.Customer
) -> None:
    """Keys are pruned once at least 24 hours old; a key reused after pruning is a new request."""
    pm = card_on_file(stripe_client, customer)
    first = charge(stripe_client, customer.id, pm, key="k")
    stripe_clock.advance(DAY - 1)
    assert charge(stripe_client, customer.id, pm, key="k").id == first.id
    stripe_clock.advance(1)
    later = charge(stripe_client, customer.id, pm, key="k")
    assert later.id != first.id and later.last_response.headers.get("Idempotent-Replayed") is None
    assert fake_stripe.charges_total(customer.id) == 10000


def test_decline_is_saved_under_its_key_and_a_new_key_is_a_new_attempt(
    fake_stripe: FakeStripe, stripe_client: stripe.StripeClient, customer: stripe.Customer
) -> None:
    """The first result is saved whether it succeeds or fails, so reusing the key only replays the
    decline; a deliberate retry (dunning) needs a new key."""
    pm = card_on_file(stripe_client, customer, "pm_card_chargeCustomerFail")
    with pytest.raises(stripe.CardError) as first:
        charge(stripe_client, customer.id, pm, key="fee:appt-1:attempt-1")
    with pytest.raises(stripe.CardError) as replay:
        charge(stripe_client, customer.id, pm, key="fee:appt-1:attempt-1")
    assert replay.value.error.payment_intent.id == first.value.error.payment_intent.id
    assert replay.value.headers.get("Idempotent-Replayed") == "true"
    with pytest.raises(stripe.CardError) as second:
        charge(stripe_client, customer.id, pm, key="fee:appt-1:attempt-2")
    assert second.value.error.payment_intent.id != first.value.error.payment_intent.id
    assert len(fake_stripe.payment_intents) == 2


def test_request_failing_validation_is_not_saved_under_its_key(
    fake_stripe: FakeStripe, stripe_client: stripe.StripeClient, customer: stripe.Customer
) -> None:
    """Results are saved only once an endpoint starts executing: parameters that fail validation leave
    the key free, so the corrected request with the same key runs."""
    pm = card_on_file(stripe_client, customer)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        charge(stripe_client, customer.id, pm, key="k", currency=None)
    assert (caught.value.http_status, caught.value.param) == (400, "currency")
    assert charge(stripe_client, customer.id, pm, key="k").status == "succeeded"


# Declines ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "code", "decline_code"),
    [
        ("pm_card_visa_chargeDeclined", "card_declined", "generic_decline"),
        ("pm_card_visa_chargeDeclinedInsufficientFunds", "card_declined", "insufficient_funds"),
        ("pm_card_visa_chargeDeclinedLostCard", "card_declined", "lost_card"),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card", None),
    ],
)
def test_test_card_declines_with_documented_code_and_error_shape(
    fake_stripe: FakeStripe, stripe_client: stripe.StripeClient, customer: stripe.Customer,
    token: str, code: str, decline_code: str | None,
) -> None:
    """docs.stripe.com/testing "Declined payments": each test PaymentMethod's error code and decline code.
    docs.stripe.com/api/errors: a card_error (HTTP 402) carries the PaymentIntent and the failed charge."""
    with pytest.raises(stripe.CardError) as caught:
        charge(stripe_client, customer.id, token)
    err = caught.value
    assert (err.http_status, err.code, err.error.type) == (402, code, "card_error")
    assert err.error.decline_code == decline_code
    (pi,) = fake_stripe.payment_intents
    assert err.error.payment_intent.id == pi["id"] and err.error.payment_intent.status == "requires_payment_method"
    assert err.error.charge == pi["latest_charge"]
    assert pi["last_payment_error"]["code"] == code and pi["payment_method"] is None
    assert [ch["status"] for ch in fake_stripe.charges] == ["failed"]
    assert fake_stripe.charges_total() == 0
    assert [e.type for e in fake_stripe.webhook_events][-1] == "payment_intent.payment_failed"


def test_charge_customer_fail_card_attaches_then_every_charge_declines(
    fake_stripe: FakeStripe, stripe_client: stripe.StripeClient, customer: stripe.Customer
) -> None:
    """4000000000000341: "attaching this card to a Customer object succeeds, but attempts to charge the
    customer fail" (docs.stripe.com/testing)."""
    pm = card_on_file(stripe_client, customer, "pm_card_chargeCustomerFail")
    assert stripe_client.v1.payment_methods.retrieve(pm).customer == customer.id
    for attempt in (1, 2):
        with pytest.raises(stripe.CardError) as caught:
            charge(stripe_client, customer.id, pm, key=f"attempt-{attempt}")
        assert (caught.value.code, caught.value.error.decline_code) == ("card_declined", "generic_decline")
    assert fake_stripe.charges_total() == 0


def test_declining_card_cannot_be_attached(stripe_client: stripe.StripeClient, customer: stripe.Customer) -> None:
    """Only the 0341 card is documented to attach and then fail; the other decline cards fail the
    card check at attach time with the same card_error."""
    with pytest.raises(stripe.CardError) as caught:
        stripe_client.v1.payment_methods.attach("pm_card_visa_chargeDeclined", params={"customer": customer.id})
    assert caught.value.error.decline_code == "generic_decline"


@pytest.mark.parametrize("token", ["pm_card_authenticationRequired", "pm_card_threeDSecure2Required"])
def test_card_needing_authentication_off_session_is_authentication_required(
    fake_stripe: FakeStripe, stripe_client: stripe.StripeClient, customer: stripe.Customer, token: str
) -> None:
    """Off-session, a card that needs 3D Secure fails with code authentication_required and leaves the
    PaymentIntent in requires_payment_method: the customer must come back on-session
    (docs.stripe.com/payments/save-and-reuse, docs.stripe.com/testing "Authentication and setup")."""
    pm = card_on_file(stripe_client, customer, token)
    with pytest.raises(stripe.CardError) as caught:
        charge(stripe_client, customer.id, pm)
    err = caught.value
    assert (err.http_status, err.code, err.error.decline_code) == (402, "authentication_required",
                                                                    "authentication_required")
    pi = stripe_client.v1.payment_intents.retrieve(err.error.payment_intent.id)
    assert pi.status == "requires_payment_method" and pi.last_payment_error.code == "authentication_required"


def test_card_authenticated_during_setup_no_longer_needs_authentication_off_session(
    fake_stripe: FakeStripe, stripe_client: stripe.StripeClient, customer: stripe.Customer
) -> None:
    """4000002500003155 needs authentication off-session unless it was set up for future payments;
    once set up, off-session payments succeed (docs.stripe.com/testing)."""
    with pytest.raises(stripe.CardError):
        charge(stripe_client, customer.id, "pm_card_authenticationRequiredOnSetup")
    seti = stripe_client.v1.setup_intents.create(
        params={"customer": customer.id, "payment_method": "pm_card_authenticationRequiredOnSetup", "confirm": True}
    )
    assert seti.status == "requires_action"
    assert fake_stripe.authenticate(seti.id)["status"] == "succeeded"
    assert charge(stripe_client, customer.id, seti.payment_method).status == "succeeded"


# Cards that expire, are removed, or fail a setup check ------------------------------------------


def expiring_card(client: stripe.StripeClient, customer: stripe.Customer, month: int, year: int) -> str:
    pm = client.v1.payment_methods.create(
        params={"type": "card", "card": {"number": "4242424242424242", "exp_month": month, "exp_year": year}})
    return client.v1.payment_methods.attach(pm.id, params={"customer": customer.id}).id


def test_a_card_whose_expiry_has_passed_cannot_be_saved(
    fake_stripe: FakeStripe, stripe_clock: ManualClock, stripe_client: stripe.StripeClient
) -> None:
    """Stripe refuses a card whose expiry is already past, as a card error on the field
    (docs.stripe.com/error-codes: ``invalid_expiry_year``, ``invalid_expiry_month``); nothing is saved."""
    stripe_clock.advance(150 * DAY)  # 31 May 2026
    for month, year, code in ((12, 2025, "invalid_expiry_year"), (4, 2026, "invalid_expiry_month"),
                              (13, 2027, "invalid_expiry_month")):
        with pytest.raises(stripe.CardError) as caught:
            stripe_client.v1.payment_methods.create(
                params={"type": "card", "card": {"number": "4242424242424242", "exp_month": month, "exp_year": year}})
        assert (caught.value.http_status, caught.value.code) == (402, code)
    assert fake_stripe.payment_methods == []
    ok = stripe_client.v1.payment_methods.create(
        params={"type": "card", "card": {"number": "4242424242424242", "exp_month": 5, "exp_year": 2026}})
    assert (ok.card.exp_month, ok.card.exp_year) == (5, 2026)  # good through the last day of its month


def test_a_card_on_file_is_declined_expired_card_once_its_expiry_month_is_over(
    fake_stripe: FakeStripe, stripe_clock: ManualClock, stripe_client: stripe.StripeClient, customer: stripe.Customer
) -> None:
    """A saved card keeps its expiry; after the last day of that month the issuer declines it with
    ``expired_card`` (docs.stripe.com/declines/codes), for a charge and for a SetupIntent alike."""
    pm = expiring_card(stripe_client, customer, 1, 2026)
    assert charge(stripe_client, customer.id, pm).status == "succeeded"  # 1 January: still good
    stripe_clock.advance(31 * DAY)  # 1 February
    with pytest.raises(stripe.CardError) as declined:
        charge(stripe_client, customer.id, pm)
    assert (declined.value.code, declined.value.error.param) == ("expired_card", "exp_month")
    with pytest.raises(stripe.CardError) as refused:
        stripe_client.v1.setup_intents.create(params={"customer": customer.id, "payment_method": pm,
                                                      "usage": "off_session", "confirm": True})
    assert refused.value.code == "expired_card"
    assert refused.value.error.setup_intent.status == "requires_payment_method"
    assert fake_stripe.charges_total() == 5000


def test_a_setup_intent_checks_a_card_on_file_without_charging_it(
    fake_stripe: FakeStripe, stripe_client: stripe.StripeClient, customer: stripe.Customer
) -> None:
    """A SetupIntent for off-session use confirmed against a saved card asks the issuer without moving money
    (docs.stripe.com/payments/save-and-reuse): a good card succeeds, one that must authenticate every payment
    (4000002760003184) is left requires_action, and the same idempotency key replays the same SetupIntent."""
    good = card_on_file(stripe_client, customer)
    params = {"customer": customer.id, "payment_method": good, "usage": "off_session", "confirm": True,
              "payment_method_types": ["card"], "metadata": {"check_ref": "abc", "spa_id": "bijoux"}}
    first = stripe_client.v1.setup_intents.create(params=params, options={"idempotency_key": "check-1"})
    again = stripe_client.v1.setup_intents.create(params=params, options={"idempotency_key": "check-1"})
    assert (first.status, first.id) == ("succeeded", again.id)
    assert first.metadata.to_dict() == {"check_ref": "abc", "spa_id": "bijoux"}
    strict = card_on_file(stripe_client, customer, "pm_card_authenticationRequired")
    seti = stripe_client.v1.setup_intents.create(params=params | {"payment_method": strict})
    assert seti.status == "requires_action"
    assert len(fake_stripe.setup_intents) == 2 and fake_stripe.charges == []


def test_a_detached_card_belongs_to_no_customer_and_a_deleted_customers_cards_neither(
    stripe_client: stripe.StripeClient, customer: stripe.Customer
) -> None:
    """Detaching a PaymentMethod sets its ``customer`` to null (docs.stripe.com/api/payment_methods/detach); so
    does deleting the customer. A retrieve still finds the PaymentMethod."""
    pm = card_on_file(stripe_client, customer)
    stripe_client.v1.payment_methods.detach(pm)
    assert stripe_client.v1.payment_methods.retrieve(pm).customer is None
    other = card_on_file(stripe_client, customer)
    stripe_client.v1.customers.delete(customer.id)
    assert stripe_client.v1.payment_methods.retrieve(other).customer is None


# Capture, cancel, refund ---------------------------------------------------------------------


def test_manual_capture_holds_then_captures_and_cancel_releases(
    fake_stripe: FakeStripe, stripe_client: stripe.StripeClient, customer: stripe.Customer
) -> None:
    """capture_method=manual authorizes (requires_capture) and moves money only on capture; canceling
    an uncaptured PaymentIntent releases the hold (docs.stripe.com/payments/place-a-hold-on-a-payment-method)."""
    pm = card_on_file(stripe_client, customer)
    held = charge(stripe_client, customer.id, pm, capture_method="manual")
    assert (held.status, held.amount_capturable) == ("requires_capture", 5000)
    assert fake_stripe.charges_total() == 0
    captured = stripe_client.v1.payment_intents.capture(held.id)
    assert (captured.status, captured.amount_received) == ("succeeded", 5000)
    assert fake_stripe.charges_total() == 5000

    other = charge(stripe_client, customer.id, pm, capture_method="manual")
    assert stripe_client.v1.payment_intents.cancel(other.id).status == "canceled"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_client.v1.payment_intents.cancel(captured.id)
    assert caught.value.code == "payment_intent_unexpected_state"
    assert fake_stripe.charges_total() == 5000


def test_refunds_never_exceed_what_remains_on_the_charge(
    fake_stripe: FakeStripe, stripe_client: stripe.StripeClient, customer: stripe.Customer
) -> None:
    """Several partial refunds are allowed but never more than the charge in total; once fully refunded,
    another refund is charge_already_refunded (docs.stripe.com/refunds, docs.stripe.com/error-codes)."""
    pi = charge(stripe_client, customer.id, card_on_file(stripe_client, customer))
    partial = stripe_client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 2000})
    assert (partial.amount, partial.status, partial.charge) == (2000, "succeeded", pi.latest_charge)
    with pytest.raises(stripe.InvalidRequestError) as too_much:
        stripe_client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 3001})
    assert too_much.value.param == "amount" and "greater than unrefunded amount" in too_much.value.user_message
    rest = stripe_client.v1.refunds.create(params={"payment_intent": pi.id})
    assert rest.amount == 3000
    with pytest.raises(stripe.InvalidRequestError) as again:
        stripe_client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 1})
    assert again.value.code == "charge_already_refunded"
    assert stripe_client.v1.charges.retrieve(pi.latest_charge).refunded is True
    assert (fake_stripe.charges_total(), fake_stripe.refunds_total()) == (5000, 5000)
    listed = stripe_client.v1.refunds.list(params={"payment_intent": pi.id})
    assert [r.amount for r in listed.data] == [3000, 2000]


# Webhooks ------------------------------------------------------------------------------------


def test_webhooks_are_signed_like_stripe_and_tampering_is_rejected(
    fake_stripe: FakeStripe, stripe_clock: ManualClock, stripe_client: stripe.StripeClient, customer: stripe.Customer
) -> None:
    """Stripe-Signature is t=<timestamp>,v1=HMAC-SHA256(secret, "<t>.<raw body>"); the SDK verifies it
    against the raw body and, by default, rejects timestamps older than 300 s (docs.stripe.com/webhooks)."""
    pi = charge(stripe_client, customer.id, card_on_file(stripe_client, customer))
    stripe_client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 100})
    with pytest.raises(stripe.CardError):
        charge(stripe_client, customer.id, "pm_card_visa_chargeDeclined")
    by_type = {d.type: d for d in fake_stripe.webhook_events}
    assert {"payment_intent.succeeded", "payment_intent.payment_failed", "charge.refunded"} <= by_type.keys()

    succeeded = by_type["payment_intent.succeeded"]
    with time_machine.travel(stripe_clock(), tick=False):
        event = stripe.Webhook.construct_event(succeeded.payload, succeeded.signature, fake_stripe.webhook_secret)
        assert event.type == "payment_intent.succeeded" and event.data.object.id == pi.id
        refunded = stripe.Webhook.construct_event(by_type["charge.refunded"].payload,
                                                  by_type["charge.refunded"].signature, "whsec_local")
        assert refunded.data.object.amount_refunded == 100
        tampered = succeeded.payload.replace(b'"amount": 5000', b'"amount": 1')
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(tampered, succeeded.signature, fake_stripe.webhook_secret)
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(succeeded.payload, succeeded.signature, "whsec_other")
    with time_machine.travel(stripe_clock() + 301, tick=False), pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(succeeded.payload, succeeded.signature, fake_stripe.webhook_secret)


@pytest.fixture
def webhook_sink() -> Iterator[tuple[str, list[tuple[bytes, str]]]]:
    received: list[tuple[bytes, str]] = []

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((body, self.headers["Stripe-Signature"]))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/stripe", received
    server.shutdown()
    server.server_close()


def test_webhooks_are_posted_to_the_endpoint_with_the_signature_header(
    fake_stripe: FakeStripe, stripe_clock: ManualClock, stripe_client: stripe.StripeClient,
    customer: stripe.Customer, webhook_sink: tuple[str, list[tuple[bytes, str]]],
) -> None:
    url, received = webhook_sink
    fake_stripe.webhook_url = url
    charge(stripe_client, customer.id, card_on_file(stripe_client, customer))
    assert [d.delivered_status for d in fake_stripe.webhook_events] == [200, 200]
    with time_machine.travel(stripe_clock(), tick=False):
        events = [stripe.Webhook.construct_event(body, sig, "whsec_local") for body, sig in received]
    assert [e.type for e in events] == ["payment_intent.created", "payment_intent.succeeded"]


# Faults and rate limits ----------------------------------------------------------------------


def test_500_then_sdk_retry_reuses_the_key_and_charges_once(
    fake_stripe: FakeStripe, stripe_client: stripe.StripeClient, customer: stripe.Customer
) -> None:
    """The SDK retries 5xx and a retried POST keeps its idempotency key; a failure in front of the
    endpoint saves nothing under the key, so the retry charges exactly once."""
    pm = card_on_file(stripe_client, customer)
    fake_stripe.fail_next(1, status=500)
    pi = charge(client_for(fake_stripe, max_network_retries=1), customer.id, pm)
    assert pi.status == "succeeded"
    posts = [r for r in fake_stripe.requests if r.path == "/v1/payment_intents"]
    assert [r.status for r in posts] == [500, 200]
    assert posts[0].idempotency_key == posts[1].idempotency_key is not None
    assert len(fake_stripe.charges) == 1


def test_500_saved_by_the_endpoint_is_replayed_and_not_retried(
    fake_stripe: FakeStripe, stripe_client: stripe.StripeClient, customer: stripe.Customer
) -> None:
    """"Subsequent requests with the same key return the same result, including 500 errors"; such a 500
    carries Stripe-Should-Retry: false and the SDK honours it."""
    pm = card_on_file(stripe_client, customer)
    fake_stripe.fail_next(1, status=500, stored=True)
    retrying = client_for(fake_stripe, max_network_retries=2)
    with pytest.raises(stripe.APIError) as caught:
        charge(retrying, customer.id, pm, key="k")
    assert caught.value.http_status == 500
    with pytest.raises(stripe.APIError) as replay:
        charge(retrying, customer.id, pm, key="k")
    assert replay.value.headers.get("Idempotent-Replayed") == "true"
    assert [r.status for r in fake_stripe.requests if r.idempotency_key == "k"] == [500, 500]
    assert fake_stripe.charges == []


def test_rate_limited_429_is_not_retried_by_the_sdk_but_lock_timeout_is(
    fake_stripe: FakeStripe, stripe_client: stripe.StripeClient, customer: stripe.Customer
) -> None:
    """Too many requests get HTTP 429 (docs.stripe.com/rate-limits), error code rate_limit; the SDK
    retries a 429 only when Stripe sends Stripe-Should-Retry: true, as for lock_timeout."""
    pm = card_on_file(stripe_client, customer)
    retrying = client_for(fake_stripe, max_network_retries=2)
    fake_stripe.rate_limit_next(1)
    with pytest.raises(stripe.RateLimitError) as caught:
        charge(retrying, customer.id, pm)
    assert (caught.value.http_status, caught.value.error.code) == (429, "rate_limit")
    assert fake_stripe.requests[-1].status == 429 and fake_stripe.charges == []

    fake_stripe.lock_timeout_next(1)
    assert charge(retrying, customer.id, pm).status == "succeeded"
    assert [r.status for r in fake_stripe.requests[-2:]] == [429, 200]


@pytest.mark.parametrize("sdk_retries", [0, 1])
def test_connection_dropped_after_charge_then_retry_with_same_key_charges_once(
    fake_stripe: FakeStripe, stripe_client: stripe.StripeClient, customer: stripe.Customer, sdk_retries: int
) -> None:
    """The connection error case idempotency exists for: the charge happened but the response was lost;
    repeating the request with the same key returns the saved success instead of charging again."""
    pm = card_on_file(stripe_client, customer)
    client = client_for(fake_stripe, max_network_retries=sdk_retries)
    fake_stripe.drop_connection_after_next_charge()
    if sdk_retries:
        pi = charge(client, customer.id, pm, key="fee:appt-9:v1")
    else:
        with pytest.raises(stripe.APIConnectionError):
            charge(client, customer.id, pm, key="fee:appt-9:v1")
        assert fake_stripe.charges_total() == 5000
        pi = charge(client, customer.id, pm, key="fee:appt-9:v1")
    assert pi.status == "succeeded" and pi.last_response.headers.get("Idempotent-Replayed") == "true"
    assert len(fake_stripe.charges) == 1 and fake_stripe.charges_total() == 5000
    assert [r.dropped for r in fake_stripe.requests if r.idempotency_key == "fee:appt-9:v1"] == [True, False]


def test_token_bucket_allows_25_requests_per_second_in_test_mode(
    stripe_clock: ManualClock, stripe_client: stripe.StripeClient, customer: stripe.Customer
) -> None:
    """Test mode allows 25 requests per second (docs.stripe.com/rate-limits); the 26th in the same
    instant is a 429, and a second later the bucket has refilled."""
    stripe_clock.advance(1)
    for _ in range(25):
        stripe_client.v1.customers.retrieve(customer.id)
    with pytest.raises(stripe.RateLimitError):
        stripe_client.v1.customers.retrieve(customer.id)
    stripe_clock.advance(1)
    for _ in range(25):
        stripe_client.v1.customers.retrieve(customer.id)
