"""The booking-site event catalogue: the documented interface a booking site publishes to.

A booking site calls EventBridge ``PutEvents`` with ``Source`` = ``booking-site`` (or
``booking-site.<vendor>``), ``DetailType`` = one of the names in ``DETAIL_TYPES`` and ``Detail`` = the
payload modelled here. The intake Lambda receives the event as EventBridge delivers it (via SQS) and
calls :func:`parse_booking_event`; anything that does not fit raises :class:`InvalidBookingEvent`,
whose message names the detail-type and the field path but never a value, so it can be logged and
put on the quarantine record without leaking a client's phone, email or name.

Decisions (also in ``docs/events/README.md``):

* The detail is strict JSON: ``extra="forbid"``, integers must be JSON integers (``50.0`` is not
  ``50``), booleans must be JSON booleans, and every time carries an offset (``Z`` or ``+hh:mm``).
  Money is ``{"amount": <int minor units>, "currency": "<ISO 4217>"}``, the domain ``Money``.
* The EventBridge envelope belongs to AWS, so unknown envelope keys are ignored; ``source`` and
  ``detail-type`` are checked.
* Appointment events (booked ... marked-no-show) carry ``booking_version``: an integer >= 1 that the
  booking site increases on every change to that appointment. Duplicate and out-of-order deliveries
  converge because the store applies only a newer version. ``CardUpdated`` and ``FeeWaived`` carry no
  ``booking_version``: a card belongs to a client, not to a booking, and a waiver is an admin action
  on one ledger entry, not a change to the booking. Both are idempotent by ``event_id`` (and, for a
  waiver, by the ledger entry it names), and a later card simply replaces the earlier one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    create_model,
    model_validator,
)

from medspa.domain.appointment import Amount, Service

SOURCE_PATTERN = r"^booking-site(\.[a-z0-9][a-z0-9-]*)?$"

Id = Annotated[str, StringConstraints(min_length=1, max_length=128)]
E164 = Annotated[str, StringConstraints(pattern=r"^\+[1-9]\d{1,14}$")]
Email = Annotated[str, StringConstraints(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
FreeText = Annotated[str, StringConstraints(min_length=1, max_length=1000)]
Purpose = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
StripeCustomerId = Annotated[str, StringConstraints(pattern=r"^cus_[A-Za-z0-9]+$", max_length=255)]
StripePaymentMethodId = Annotated[str, StringConstraints(pattern=r"^(pm|card|src)_[A-Za-z0-9_]+$", max_length=255)]

# Field names whose values are personal data: never echoed, even by a custom validator.
PII_FIELDS = frozenset({"phone", "email", "name", "reason"})


class InvalidBookingEvent(ValueError):
    """A booking-site event that does not match the catalogue; the message is safe to log.

    ``field`` is the dotted path of the first offending field (``detail.service.price.amount``),
    ``reason`` lists every problem as ``path: message``; neither contains an input value.
    """

    def __init__(self, reason: str, field: str | None = None, detail_type: str | None = None) -> None:
        self.reason = reason
        self.field = field
        self.detail_type = detail_type
        super().__init__(f"invalid booking-site event {detail_type or '(unknown detail-type)'}: {reason}")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


# --- shared parts --------------------------------------------------------------------------------


class BookingClient(_Strict):
    """The client as the booking site knows them; ``id`` is the site's id, unique within its spa."""

    id: Id
    phone: E164 | None = Field(default=None, description="E.164, e.g. +12125550123")
    email: Email | None = None
    sms_opt_in: bool = Field(default=False, description="Consent to SMS; absent means no consent")
    email_opt_in: bool = Field(default=False, description="Consent to email; absent means no consent")


class BookingPayment(_Strict):
    """What the client put up at booking. Amounts are for the whole party, in the price's currency."""

    card_on_file: bool = False
    stripe_customer_id: StripeCustomerId | None = None
    stripe_payment_method_id: StripePaymentMethodId | None = None
    gift_certificate: Amount | None = None
    deposit: Amount | None = None
    prepaid: Amount | None = None
    course_id: Id | None = None
    course_session_available: bool = False


class ConfirmationChannel(StrEnum):
    SMS = "sms"
    EMAIL = "email"
    PHONE = "phone"
    WEB = "web"
    IN_PERSON = "in_person"


# --- details -------------------------------------------------------------------------------------


class _BookingSiteDetail(_Strict):
    detail_type: ClassVar[str]

    event_id: Id = Field(description="Unique per event at the booking site; the deduplication key")
    occurred_at: AwareDatetime = Field(description="When it happened at the booking site; with an offset")
    spa_id: Id


class _AppointmentDetail(_BookingSiteDetail):
    appointment_id: Id
    booking_version: int = Field(
        ge=1,
        description="Strictly increasing per appointment at the booking site; newer versions win",
    )


class AppointmentBooked(_AppointmentDetail):
    detail_type: ClassVar[str] = "AppointmentBooked"

    client: BookingClient
    service: Service
    starts_at: AwareDatetime
    location_id: Id
    party_size: int = Field(default=1, ge=1)
    payment: BookingPayment = BookingPayment()

    @model_validator(mode="after")
    def _one_currency(self) -> AppointmentBooked:
        currency = self.service.price.currency
        for name in ("gift_certificate", "deposit", "prepaid"):
            money = getattr(self.payment, name)
            if money is not None and money.currency != currency:
                raise ValueError(f"payment.{name}.currency must equal service.price.currency")
        return self


class AppointmentRescheduled(_AppointmentDetail):
    detail_type: ClassVar[str] = "AppointmentRescheduled"

    starts_at: AwareDatetime = Field(description="The new start")
    service: Service | None = Field(default=None, description="The new service, if it changed")


class AppointmentCancelled(_AppointmentDetail):
    detail_type: ClassVar[str] = "AppointmentCancelled"

    by: Literal["client", "spa"]
    reason: FreeText | None = None


class AppointmentConfirmed(_AppointmentDetail):
    detail_type: ClassVar[str] = "AppointmentConfirmed"

    channel: ConfirmationChannel


class ClientCheckedIn(_AppointmentDetail):
    detail_type: ClassVar[str] = "ClientCheckedIn"

    arrived_at: AwareDatetime


class AppointmentCompleted(_AppointmentDetail):
    detail_type: ClassVar[str] = "AppointmentCompleted"


class AppointmentMarkedNoShow(_AppointmentDetail):
    detail_type: ClassVar[str] = "AppointmentMarkedNoShow"

    marked_by: Id = Field(description="The front-desk staff member's id at the booking site")


class CardUpdated(_BookingSiteDetail):
    """The client's card on file changed. No booking_version: a card belongs to the client."""

    detail_type: ClassVar[str] = "CardUpdated"

    client_id: Id
    stripe_customer_id: StripeCustomerId
    stripe_payment_method_id: StripePaymentMethodId


class FeeWaived(_BookingSiteDetail):
    """An admin waived a fee. No booking_version: it acts on a ledger entry, not on the booking."""

    detail_type: ClassVar[str] = "FeeWaived"

    appointment_id: Id
    purpose: Purpose = Field(description="The ledger purpose waived, e.g. no_show_fee, late_cancel_fee")
    ledger_entry_id: Id | None = Field(default=None, description="The exact ledger entry, if the site knows it")
    admin_id: Id
    reason: FreeText


_APPOINTMENT_MODELS = (
    AppointmentBooked,
    AppointmentRescheduled,
    AppointmentCancelled,
    AppointmentConfirmed,
    ClientCheckedIn,
    AppointmentCompleted,
    AppointmentMarkedNoShow,
)
class PrepayRequirementCleared(_BookingSiteDetail):
    """An admin lifted a client's prepay-at-booking requirement (set by the strike policy)."""

    detail_type: ClassVar[str] = "PrepayRequirementCleared"

    client_id: Id
    admin_id: Id
    reason: FreeText | None = None


_MODELS = (*_APPOINTMENT_MODELS, CardUpdated, FeeWaived, PrepayRequirementCleared)

DETAIL_MODELS: dict[str, type[_BookingSiteDetail]] = {model.detail_type: model for model in _MODELS}
DETAIL_TYPES: tuple[str, ...] = tuple(DETAIL_MODELS)

BookingEvent = Union[_MODELS]  # noqa: UP007 - a runtime value: one name for the nine details
AppointmentEvent = Union[_APPOINTMENT_MODELS]  # noqa: UP007


# --- the EventBridge envelope --------------------------------------------------------------------


class _Envelope(BaseModel):
    """The event as EventBridge delivers it. AWS owns these keys, so unknown ones are ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore", strict=True, populate_by_name=True)

    version: str | None = None
    id: str | None = Field(default=None, description="EventBridge's id (not the booking site's event_id)")
    source: Annotated[str, StringConstraints(pattern=SOURCE_PATTERN)]
    account: str | None = None
    time: str | None = None
    region: str | None = None
    resources: list[str] = []

    @property
    def vendor(self) -> str | None:
        """``acme`` for ``booking-site.acme``; None for plain ``booking-site``."""
        return self.source.partition(".")[2] or None


def _envelope(detail_model: type[_BookingSiteDetail]) -> type[_Envelope]:
    name = detail_model.detail_type
    return create_model(
        f"{name}Event",
        __base__=_Envelope,
        __doc__=f"A booking-site `{name}` event as EventBridge delivers it.",
        detail_type=(Literal[name], Field(alias="detail-type")),  # type: ignore[valid-type]
        detail=(detail_model, ...),
    )


ENVELOPE_MODELS: dict[str, type[_Envelope]] = {name: _envelope(model) for name, model in DETAIL_MODELS.items()}

BookingEnvelope = Annotated[
    Union[tuple(ENVELOPE_MODELS.values())],  # type: ignore[valid-type]  # noqa: UP007
    Field(discriminator="detail_type"),
]


# --- parsing -------------------------------------------------------------------------------------


def _path(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(event)"


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError("not JSON")


def _invalid(error: ValidationError, detail_type: str) -> InvalidBookingEvent:
    # Built from loc and msg only: pydantic's own str() would echo each "input" value (PII).
    problems = [(_path(e["loc"]), e["msg"]) for e in error.errors(include_url=False, include_input=False)]
    reason = "; ".join(f"{path}: {msg}" for path, msg in problems[:10])
    if len(problems) > 10:
        reason += f"; and {len(problems) - 10} more"
    return InvalidBookingEvent(reason, field=problems[0][0] if problems else None, detail_type=detail_type)


def parse_booking_envelope(eventbridge_event: Mapping[str, Any]) -> _Envelope:
    """Validate a whole EventBridge event; ``.detail`` is the typed detail, ``.vendor`` the vendor."""
    if not isinstance(eventbridge_event, Mapping):
        raise InvalidBookingEvent("the event must be a JSON object", field=None)
    detail_type = eventbridge_event.get("detail-type")
    if not isinstance(detail_type, str):
        raise InvalidBookingEvent("detail-type: Field required (a string)", field="detail-type")
    model = ENVELOPE_MODELS.get(detail_type)
    if model is None:
        shown = detail_type if len(detail_type) <= 80 else detail_type[:80] + "..."
        raise InvalidBookingEvent(
            f"detail-type: unknown detail-type {shown!r}; expected one of {', '.join(DETAIL_TYPES)}",
            field="detail-type",
            detail_type=shown,
        )
    try:
        text = json.dumps(eventbridge_event, default=_json_default, allow_nan=False)
    except (TypeError, ValueError):
        raise InvalidBookingEvent("the event is not JSON-serialisable", field=None, detail_type=detail_type) from None
    try:
        # JSON mode + strict: ISO strings become datetimes, but 50.0 is not an int and "true" not a bool.
        return model.model_validate_json(text, strict=True)
    except ValidationError as error:
        raise _invalid(error, detail_type) from None


def parse_booking_event(eventbridge_event: Mapping[str, Any]) -> BookingEvent:
    """The one entry point: an EventBridge event in, the typed detail out, or InvalidBookingEvent."""
    return parse_booking_envelope(eventbridge_event).detail  # type: ignore[attr-defined, no-any-return]
