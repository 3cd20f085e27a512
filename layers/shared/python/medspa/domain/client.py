"""A client as the system knows them: how to reach and charge them, their strikes, flag and balances.

Plain values: the store persists them (``medspa.adapters.store.clients``), the services read them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from medspa.domain.keys import belongs_to
from medspa.money import Money

E164 = Annotated[str, StringConstraints(pattern=r"^\+[1-9]\d{1,14}$")]


class Channel(StrEnum):
    SMS = "sms"
    EMAIL = "email"


class _Frozen(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")


class ClientProfile(_Frozen):
    """Who the client is and how to reach and charge them; ``None`` leaves a stored value alone."""

    client_id: str
    spa_id: str = Field(min_length=1)
    first_name: str | None = Field(None, min_length=1, max_length=100)
    phone: E164 | None = None
    email: str | None = None
    stripe_customer_id: str | None = None
    default_payment_method_id: str | None = None
    sms_consent: bool | None = None
    email_consent: bool | None = None

    @model_validator(mode="after")
    def _namespaced(self) -> "ClientProfile":
        if not belongs_to(self.client_id, self.spa_id):
            raise ValueError(f"client_id {self.client_id!r} must be namespaced as '{self.spa_id}#<id>'")
        return self


class Strike(_Frozen):
    appointment_id: str
    reason: str
    at: AwareDatetime


class Client(_Frozen):
    client_id: str
    spa_id: str
    phone: str | None
    email: str | None
    sms_opt_out: bool
    email_opt_out: bool
    sms_consent: bool = Field(True, description="False when the booking site says the client gave no consent")
    email_consent: bool = True
    stripe_customer_id: str | None
    default_payment_method_id: str | None
    strikes: tuple[Strike, ...]
    prepay_required: bool
    prepay_set_at: AwareDatetime | None
    prepay_cleared_by: str | None
    prepay_cleared_at: AwareDatetime | None
    outstanding: dict[str, int] = Field(description="currency -> integer minor units owed")
    credit: dict[str, int] = Field(description="currency -> integer minor units held")
    created_at: AwareDatetime
    updated_at: AwareDatetime
    erased_at: AwareDatetime | None = Field(None, description="Erased at their request: a tombstone, nothing personal")
    stripe_customers: tuple[str, ...] = Field((), description="Every Stripe customer ever named for the client")
    known_contacts: tuple[tuple[Channel, str], ...] = Field((), description="Every address ever held, current ones too")
    first_name: str | None = Field(None, description="Only to greet the client in messages")

    @property
    def erased(self) -> bool:
        return self.erased_at is not None

    @property
    def strike_count(self) -> int:
        return len(self.strikes)

    def outstanding_in(self, currency: str) -> Money:
        return Money(amount=self.outstanding.get(currency, 0), currency=currency)

    def credit_in(self, currency: str) -> Money:
        return Money(amount=self.credit.get(currency, 0), currency=currency)
