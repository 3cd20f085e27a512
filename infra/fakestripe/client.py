"""The one line production code changes to talk to the fake: the SDK's base address."""

from __future__ import annotations

from typing import Any

import stripe

from .server import FakeStripe


def client_for(fake: FakeStripe, max_network_retries: int = 0, **options: Any) -> stripe.StripeClient:
    """A real ``StripeClient`` aimed at the fake. Retries default to 0 so each caller states how many it
    relies on; a retried POST reuses its idempotency key, as against Stripe."""
    return stripe.StripeClient(
        fake.api_key, base_addresses={"api": fake.url}, max_network_retries=max_network_retries, **options
    )
