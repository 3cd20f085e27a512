"""Stripe's documented test cards, and what each one does when charged.

Source: https://docs.stripe.com/testing ("Declined payments", "Authentication and setup") and
https://docs.stripe.com/declines/codes. A card is reachable three ways, as in Stripe: a test
PaymentMethod token (``pm_card_visa``) passed wherever a PaymentMethod id goes, a card token
(``tok_visa``) in ``card[token]``, or the raw number in ``card[number]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Decline:
    code: str
    decline_code: str | None
    message: str
    param: str | None = None


@dataclass(frozen=True)
class TestCard:
    """``auth``: "always" needs 3DS on every payment (3184, 3220); "unless_setup" only until the card
    was authenticated through a SetupIntent (3155). Off-session, needing 3DS is an
    ``authentication_required`` decline because nobody is there to authenticate."""

    __test__ = False
    name: str
    number: str
    brand: str = "visa"
    funding: str = "credit"
    decline: Decline | None = None
    decline_on_attach: bool = True
    auth: Literal["always", "unless_setup"] | None = None

    @property
    def last4(self) -> str:
        return self.number[-4:]


_GENERIC = Decline("card_declined", "generic_decline", "Your card was declined.")
EXPIRED_CARD = Decline("expired_card", None, "Your card has expired.", "exp_month")
"""What the issuer answers for any card used after its expiry month, whatever its number."""
AUTHENTICATION_REQUIRED = Decline(
    "authentication_required",
    "authentication_required",
    "Your card was declined. This transaction requires authentication.",
)

CARDS: tuple[TestCard, ...] = (
    TestCard("visa", "4242424242424242"),
    TestCard("visa_debit", "4000056655665556", funding="debit"),
    TestCard("mastercard", "5555555555554444", brand="mastercard"),
    TestCard("amex", "378282246310005", brand="amex"),
    TestCard("visa_chargeDeclined", "4000000000000002", decline=_GENERIC),
    TestCard(
        "visa_chargeDeclinedInsufficientFunds",
        "4000000000009995",
        decline=Decline("card_declined", "insufficient_funds", "Your card has insufficient funds."),
    ),
    TestCard(
        "visa_chargeDeclinedLostCard",
        "4000000000009987",
        decline=Decline("card_declined", "lost_card", "Your card was declined."),
    ),
    TestCard(
        "visa_chargeDeclinedStolenCard",
        "4000000000009979",
        decline=Decline("card_declined", "stolen_card", "Your card was declined."),
    ),
    TestCard(
        "visa_chargeDeclinedVelocityLimitExceeded",
        "4000000000006975",
        decline=Decline(
            "card_declined",
            "card_velocity_exceeded",
            "Your card was declined for making repeated attempts too frequently or exceeding its amount limit.",
        ),
    ),
    TestCard("chargeDeclinedExpiredCard", "4000000000000069", decline=EXPIRED_CARD),
    TestCard(
        "chargeDeclinedIncorrectCvc",
        "4000000000000127",
        decline=Decline("incorrect_cvc", None, "Your card's security code is incorrect.", "cvc"),
    ),
    TestCard(
        "chargeDeclinedProcessingError",
        "4000000000000119",
        decline=Decline(
            "processing_error",
            None,
            "An error occurred while processing your card. Try again in a little bit.",
        ),
    ),
    TestCard("chargeCustomerFail", "4000000000000341", decline=_GENERIC, decline_on_attach=False),
    TestCard("authenticationRequired", "4000002760003184", auth="always"),
    TestCard("threeDSecure2Required", "4000000000003220", auth="always"),
    TestCard("authenticationRequiredOnSetup", "4000002500003155", auth="unless_setup"),
)

BY_PM_TOKEN = {f"pm_card_{card.name}": card for card in CARDS}
BY_TOK = {f"tok_{card.name.replace('visa_charge', 'charge')}": card for card in CARDS} | {
    f"tok_{card.name}": card for card in CARDS
}
BY_NUMBER = {card.number: card for card in CARDS}
