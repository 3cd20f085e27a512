"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import stripe

from fakestripe.client import client_for
from fakestripe.server import FakeStripe, ManualClock


@pytest.fixture
def stripe_clock() -> ManualClock:
    """The fake Stripe's only source of time; tests advance it instead of sleeping."""
    return ManualClock()


@pytest.fixture
def fake_stripe(stripe_clock: ManualClock) -> Iterator[FakeStripe]:
    with FakeStripe(now=stripe_clock) as fake:
        yield fake


@pytest.fixture
def stripe_client(fake_stripe: FakeStripe) -> stripe.StripeClient:
    """The real SDK aimed at the fake, with no automatic retries (tests that rely on them ask)."""
    return client_for(fake_stripe)
