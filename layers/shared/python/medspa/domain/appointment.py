"""The appointment as the policy engine sees it: only the facts a decision depends on.

The lifecycle service builds this from its store; the engine never reads a database. Times are
UTC so that stored values compare without a zone; the pack supplies the zone when a rule speaks
in wall-clock terms.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from medspa.money import Money

MAX_AMOUNT = 99_999_999
"""Stripe's largest charge is eight digits of minor units ($999,999.99); a price or payment above it
could never be settled, and it stays far inside the integers DynamoDB and JSON readers hold exactly."""

MAX_VISIT_MINUTES = 24 * 60
"""A visit longer than a day is not a med-spa visit but a typo; the reminder and no-show times use it."""


class _Value(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")


def _chargeable(money: Money) -> Money:
    if money.amount < 0:
        raise ValueError("must not be negative")
    if money.amount > MAX_AMOUNT:
        raise ValueError(f"must be at most {MAX_AMOUNT} minor units (the largest charge a card can take)")
    return money


Amount = Annotated[Money, AfterValidator(_chargeable)]


class Service(_Value):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    category: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        description="The booking site's category; a pack may pin some names to another")
    duration_minutes: Annotated[int, Field(gt=0, le=MAX_VISIT_MINUTES)]
    price: Amount = Field(description="The booked price of this appointment, for the whole party")


class PaymentContext(_Value):
    """What the client has put up for this visit; also the live balances at settlement time."""

    card_on_file: bool = False
    deposit: Amount | None = None
    prepaid: Amount | None = None
    course_id: str | None = None
    course_session_available: bool = False
    gift_certificate: Amount | None = None

    @property
    def is_prepaid(self) -> bool:
        return self.course_session_available or bool(self.prepaid and not self.prepaid.is_zero)


class Appointment(_Value):
    id: str
    client_id: str
    location_id: str
    policy_version: str = Field(description="The pack version the client accepted when booking")
    service: Service
    starts_at: AwareDatetime
    party_size: Annotated[int, Field(ge=1)] = 1
    payment: PaymentContext = PaymentContext()

    @field_validator("starts_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + timedelta(minutes=self.service.duration_minutes)
