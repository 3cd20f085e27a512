"""A stateful fake Stripe API on loopback, driven by the unmodified ``stripe`` SDK.

Why not localstripe or stripe-mock: see ``notes/stripe-local.md``. Production code only swaps the base
address (``client_for``); everything else is Stripe's documented behaviour.
"""

from __future__ import annotations

from .api import ApiError
from .cards import CARDS, Decline, TestCard
from .client import client_for, save_test_card
from .server import FakeStripe, ManualClock, RecordedRequest, WebhookDelivery, parse_form, sign

__all__ = [
    "CARDS", "ApiError", "Decline", "FakeStripe", "ManualClock", "RecordedRequest", "TestCard",
    "WebhookDelivery", "client_for", "parse_form", "save_test_card", "sign",
]
