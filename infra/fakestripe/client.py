"""The one line production code changes to talk to the fake (the SDK's base address), and a test card on file."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import stripe

from .server import FakeStripe


def client_for(fake: FakeStripe, max_network_retries: int = 0, **options: Any) -> stripe.StripeClient:
    """A real ``StripeClient`` aimed at the fake. Retries default to 0 so each caller states how many it
    relies on; a retried POST reuses its idempotency key, as against Stripe."""
    return stripe.StripeClient(
        fake.api_key, base_addresses={"api": fake.url}, max_network_retries=max_network_retries, **options
    )


def save_test_card(client: stripe.StripeClient, customer_id: str, card: str,
                   call: Callable[[Callable[[], Any]], Any] = lambda request: request()) -> str:
    """Put a Stripe test card (``visa`` or ``pm_card_visa``) on file for the customer; returns the PaymentMethod id.

    Stripe's declining test cards already fail the check at attach time, so for them the token itself
    stands for "a card that was good when saved and declines now": Stripe (and the fake) accept a token
    wherever a PaymentMethod id goes. ``call`` wraps each request (e.g. to wait out a rate limit).
    """
    token = card if card.startswith("pm_") else f"pm_card_{card}"
    try:
        return call(lambda: client.v1.payment_methods.attach(token, params={"customer": customer_id})).id
    except stripe.CardError:
        return token
