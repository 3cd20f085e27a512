"""How one fee was met: what the client's money already at the spa covered, what the card paid, what is owed.

A notice that names only the card charge misstates the fee: 406MedicalSpa's $75 fee, $50 of it taken
from the booking deposit, read as "a late-cancellation fee of $25.00". The client is owed the whole
fee and where each part of it came from, so the settlement's answer travels with the notice (stored on
the message log: a notice held until quiet hours end still says what the settlement decided).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from medspa.money import Money

PaidFromSource = Literal["deposit", "prepayment", "course_session", "gift_certificate"]
PAID_FROM_SOURCES: tuple[PaidFromSource, ...] = ("deposit", "prepayment", "course_session", "gift_certificate")
"""The settlement sources that are money the client had already given the spa (nothing moves at Stripe)."""


class PaidFrom(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    source: PaidFromSource
    amount: Money
    sessions: int = Field(0, ge=0, description="Course sessions deducted (course_session only)")


class FeeBreakdown(BaseModel):
    """The fee, then its parts: ``paid_from`` (deposit, prepayment, course, certificate), ``charged`` to
    the card, ``outstanding`` (declined, or no way to collect it). All in the fee's currency."""

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    fee: Money
    paid_from: tuple[PaidFrom, ...] = ()
    charged: Money | None = None
    outstanding: Money | None = None

    @model_validator(mode="after")
    def _one_currency(self) -> "FeeBreakdown":
        parts = [p.amount for p in self.paid_from] + [m for m in (self.charged, self.outstanding) if m is not None]
        if any(part.currency != self.fee.currency for part in parts):
            raise ValueError(f"every part of a {self.fee.currency} fee must be in {self.fee.currency}")
        return self
