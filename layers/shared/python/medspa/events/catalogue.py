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
* Every accepted value is bounded, so nothing a booking site sends can overflow what comes after the
  parser: strings have a maximum length, integers a range (``booking_version`` a signed 32-bit
  integer, ``party_size`` at most 50, money at most Stripe's largest charge, a visit at most a day),
  every time lies in the years 2000 to 2100 with an offset between -12:00 and +14:00, so it converts
  to UTC, and the event as a whole is checked for depth, size and JSON-ness before pydantic reads it
  (:data:`DETAIL_MAX_BYTES` says why the sizes are what they are).
* An unknown ``detail-type`` or a ``source`` that is not a booking site is refused by field name; the
  value is never repeated, since it is whatever the sender put there.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, Union, get_args

from pydantic import (
    AfterValidator,
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
from medspa.money import Money

SOURCE_PATTERN = r"^booking-site(\.[a-z0-9][a-z0-9-]{0,62})?$"

DETAIL_MAX_BYTES = 16 * 1024
"""The largest ``detail`` accepted, as compact UTF-8 JSON.

EventBridge takes entries up to 256 KB and SQS messages up to 256 KiB, but the binding limit is
DynamoDB's 400 KB item: an appointment keeps its whole event history in one item, beside its messages
and fees, so one event must stay a small fraction of it. The field bounds keep the largest valid detail
under 7 KiB even in four-byte characters (a unit test builds it), so 16 KiB never refuses an honest
event; it stops a padded one before pydantic reads it.
"""

EVENT_MAX_BYTES = 64 * 1024
"""The whole event: the detail plus AWS's envelope, with room for keys AWS may add; well under the
256 KiB an SQS message may be, so the quarantine can re-send the body with its reason attached."""

MAX_DEPTH = 8
"""Objects and lists nested deeper than this are refused before parsing: twice the catalogue's own
depth (``detail.payment.deposit.amount``), so a wrong but honest event still gets pydantic's precise
error, and a hostile one cannot exhaust the recursion of the JSON encoder or the validator."""

MAX_JSON_INTEGER = 2**63
ROOT = "(event)"
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2101, 1, 1, tzinfo=UTC)


def _instant(value: datetime) -> datetime:
    """A time the system can convert to UTC, compare and schedule: zone offsets in use, years 2000-2100.

    Checked on the local year before converting, because ``astimezone`` overflows near year 1 or 9999.
    """
    offset = value.utcoffset()
    if offset is None or not timedelta(hours=-12) <= offset <= timedelta(hours=14) or offset % timedelta(minutes=1):
        raise ValueError("the offset must be whole minutes between -12:00 and +14:00")
    if not 2000 <= value.year <= 2100 or not EARLIEST <= value.astimezone(UTC) < LATEST:
        raise ValueError("must lie in the years 2000 to 2100 (UTC)")
    return value


Instant = Annotated[AwareDatetime, AfterValidator(_instant)]
Id = Annotated[str, StringConstraints(min_length=1, max_length=128)]
E164 = Annotated[str, StringConstraints(pattern=r"^\+[1-9]\d{1,14}$")]
Email = Annotated[str, StringConstraints(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
FreeText = Annotated[str, StringConstraints(min_length=1, max_length=1000)]
FirstName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Purpose = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
StripeCustomerId = Annotated[str, StringConstraints(pattern=r"^cus_[A-Za-z0-9]+$", max_length=255)]
StripePaymentMethodId = Annotated[str, StringConstraints(pattern=r"^(pm|card|src)_[A-Za-z0-9_]+$", max_length=255)]

# Field names whose values are personal data: never echoed, even by a custom validator.
PII_FIELDS = frozenset({"phone", "email", "name", "first_name", "reason"})


class InvalidBookingEvent(ValueError):
    """A booking-site event that does not match the catalogue; the message is safe to log.

    ``field`` is the dotted path of the first offending field (``detail.service.price.amount``), or
    ``(event)`` when the event as a whole is at fault (not JSON, not an object); ``reason`` lists every
    problem as ``path: message``; neither contains an input value. ``detail_type`` is set only when it
    is one of the catalogue's, so it is never the sender's text either.
    """

    def __init__(self, reason: str, field: str = ROOT, detail_type: str | None = None) -> None:
        self.reason = reason
        self.field = field
        self.detail_type = detail_type
        super().__init__(f"invalid booking-site event {detail_type or '(unknown detail-type)'}: {reason}")


class _Strict(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid", strict=True)


# --- shared parts --------------------------------------------------------------------------------


class BookingClient(_Strict):
    """The client as the booking site knows them; ``id`` is the site's id, unique within its spa."""

    id: Id
    first_name: FirstName | None = Field(
        default=None, description="What the client likes to be called, to greet them in messages ('Hi Ana,'); "
                                  "kept on the client profile only, erased with it")
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
    occurred_at: Instant = Field(description="When it happened at the booking site; with an offset")
    spa_id: Id


class _AppointmentDetail(_BookingSiteDetail):
    appointment_id: Id
    booking_version: int = Field(
        ge=1,
        le=2**31 - 1,
        description="Strictly increasing per appointment at the booking site; newer versions win",
    )


class AppointmentBooked(_AppointmentDetail):
    detail_type: ClassVar[str] = "AppointmentBooked"

    client: BookingClient
    service: Service
    starts_at: Instant
    location_id: Id
    party_size: int = Field(default=1, ge=1, le=50, description="At most 50: a group, not an event venue")
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

    starts_at: Instant = Field(description="The new start")
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

    arrived_at: Instant


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


AppointmentEvent = (AppointmentBooked | AppointmentRescheduled | AppointmentCancelled | AppointmentConfirmed
                    | ClientCheckedIn | AppointmentCompleted | AppointmentMarkedNoShow)
_APPOINTMENT_MODELS: tuple[type[_AppointmentDetail], ...] = get_args(AppointmentEvent)
class PrepayRequirementCleared(_BookingSiteDetail):
    """An admin lifted a client's prepay-at-booking requirement (set by the strike policy)."""

    detail_type: ClassVar[str] = "PrepayRequirementCleared"

    client_id: Id
    admin_id: Id
    reason: FreeText | None = None


RequestId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]


class _PrivacyRequest(_BookingSiteDetail):
    """A client's privacy right exercised through the spa's admin (``medspa.services.privacy``).

    No ``booking_version``: it acts on the client, not on a booking. ``request_id`` is the spa's own
    reference (its ticket), so it may name a file and an audit record: letters, digits, ``._-`` only.
    """

    client_id: Id
    admin_id: Id = Field(description="The spa's staff member acting on the client's request")
    request_id: RequestId = Field(description="The spa's reference for the request, e.g. its ticket number")


class ClientDataExportRequested(_PrivacyRequest):
    """The client asked for everything held about them; answered with ``ClientDataExported``."""

    detail_type: ClassVar[str] = "ClientDataExportRequested"


class ClientContactCorrected(_PrivacyRequest):
    """The client's name, phone or email was wrong and the admin corrected it; a field left out is unchanged."""

    detail_type: ClassVar[str] = "ClientContactCorrected"

    first_name: FirstName | None = Field(default=None, description="What the client likes to be called")
    phone: E164 | None = Field(default=None, description="E.164, e.g. +12125550123")
    email: Email | None = None

    @model_validator(mode="after")
    def _corrects_something(self) -> ClientContactCorrected:
        if self.first_name is None and self.phone is None and self.email is None:
            raise ValueError("give first_name, phone, email or any of them")
        return self


class ClientErasureRequested(_PrivacyRequest):
    """The client asked to be erased; answered with ``ClientErased``. Later events naming them are refused."""

    detail_type: ClassVar[str] = "ClientErasureRequested"


PrivacyRequest = ClientDataExportRequested | ClientContactCorrected | ClientErasureRequested
_PRIVACY_MODELS: tuple[type[_PrivacyRequest], ...] = get_args(PrivacyRequest)

PaymentReference = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]


def _more_than_zero(money: Money) -> Money:
    if money.amount <= 0:
        raise ValueError("must be more than zero: a payment of nothing pays nothing")
    return money


class OutstandingBalancePaid(_BookingSiteDetail):
    """The client paid what they owed at the desk (Glow: outstanding fees "must be paid on the client's next
    visit to Glow"). No booking_version: it pays the client's balance, not a booking.

    The payment counts once per ``payment_reference``, not per ``event_id``: a desk that submits the same
    payment twice under two event ids must not settle it twice (``medspa.services.balances``). The reference
    names a key in the ledger, so it is as tightly spelled as a privacy request's ``request_id``.
    """

    detail_type: ClassVar[str] = "OutstandingBalancePaid"

    client_id: Id
    amount: Annotated[Amount, AfterValidator(_more_than_zero)] = Field(
        description="What the desk took, in minor units of a currency the spa charges in; more than zero")
    paid_at: Instant = Field(description="When the desk took the payment; with an offset")
    payment_reference: PaymentReference = Field(
        description="The desk's own reference for this payment (receipt or till number): letters, digits, ._-; "
                    "the same payment always carries the same reference")
    received_by: Id = Field(description="The front-desk staff member's id at the booking site")


# --- memberships ---------------------------------------------------------------------------------


def _calendar_day(value: date) -> date:
    if not 2000 <= value.year <= 2100:
        raise ValueError("must lie in the years 2000 to 2100")
    return value


Day = Annotated[date, AfterValidator(_calendar_day)]


class MembershipPlan(_Strict):
    """A plan as the member signed it: what a month costs and how many services it puts on the account."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    monthly_dues: Annotated[Amount, AfterValidator(_more_than_zero)] = Field(
        description="Full monthly dues in minor units, drafted on the draft day")
    service_credits_per_month: int = Field(ge=0, le=31, description="Services placed on the account per paid month")


class MembershipCard(_Strict):
    stripe_customer_id: StripeCustomerId | None = None
    stripe_payment_method_id: StripePaymentMethodId | None = None


class _MembershipDetail(_BookingSiteDetail):
    membership_id: Id
    membership_version: int = Field(
        ge=1,
        le=2**31 - 1,
        description="Strictly increasing per membership at the booking site; events are applied in this order",
    )


class MembershipStarted(_MembershipDetail):
    """A member signed up at their home spa. ``starts_on`` is the first draft day (local date at the home
    location); later drafts fall on the same day of the month, or the month's last day when it is shorter."""

    detail_type: ClassVar[str] = "MembershipStarted"

    client: BookingClient
    location_id: Id = Field(description="The member's home spa")
    plan: MembershipPlan
    starts_on: Day
    paid_in_full_until: Day | None = Field(
        default=None, description="A paid-in-full membership: nothing is drafted, it ends on this date, no grace")
    payment: MembershipCard = Field(
        default_factory=lambda: MembershipCard(),
        description="The card dues are drafted from; without one, each draft is declined until a CardUpdated")

    @model_validator(mode="after")
    def _ends_after_it_starts(self) -> MembershipStarted:
        if self.paid_in_full_until is not None and self.paid_in_full_until <= self.starts_on:
            raise ValueError("paid_in_full_until must be after starts_on")
        return self


class MembershipPlanChanged(_MembershipDetail):
    """An upgrade or downgrade; it takes effect at the next draft."""

    detail_type: ClassVar[str] = "MembershipPlanChanged"

    plan: MembershipPlan


class MembershipFreezeRequested(_MembershipDetail):
    """The front desk emailed the member the freeze form; it must come back within the pack's hours."""

    detail_type: ClassVar[str] = "MembershipFreezeRequested"

    form_sent_at: Instant


class MembershipFreezeFormCompleted(_MembershipDetail):
    detail_type: ClassVar[str] = "MembershipFreezeFormCompleted"

    submitted_at: Instant


class MembershipUnfreezeRequested(_MembershipDetail):
    """The member asked to unfreeze (at any spa); ``occurred_at`` is the request, its local date the new draft day."""

    detail_type: ClassVar[str] = "MembershipUnfreezeRequested"


class MembershipCancellationRequested(_MembershipDetail):
    """The member asked their home spa to cancel; the online form must come back within the pack's hours."""

    detail_type: ClassVar[str] = "MembershipCancellationRequested"

    form_sent_at: Instant


class MembershipCancellationFormCompleted(_MembershipDetail):
    detail_type: ClassVar[str] = "MembershipCancellationFormCompleted"

    submitted_at: Instant
    paper_certificates: bool = Field(
        default=False, description="The member chose paper certificates for the services left on the account")


class ServiceCreditRedeemed(_MembershipDetail):
    """The booking site's checkout used services from the member's account."""

    detail_type: ClassVar[str] = "ServiceCreditRedeemed"

    redeemed_at: Instant
    location_id: Id
    credits: int = Field(default=1, ge=1, le=10)
    appointment_id: Id | None = None


class CoursePurchased(_BookingSiteDetail):
    """A client bought a prepaid course at a location (Glow): its sessions expire a set time after purchase.

    No version: a course is bought once; the same ``course_id`` again is the same purchase (a duplicate)."""

    detail_type: ClassVar[str] = "CoursePurchased"

    course_id: Id
    client: BookingClient
    location_id: Id
    sessions: int = Field(ge=1, le=100, description="Sessions in the course")
    paid: Annotated[Amount, AfterValidator(_more_than_zero)] = Field(description="What the course cost, in minor units")
    purchased_on: Day = Field(description="The local date of purchase, from which the expiry is counted")


class CourseDeferred(_BookingSiteDetail):
    """The spa verified a pregnancy or a medical condition and deferred the course's expiry (Glow: "for up to
    18 months"). No condition is recorded here: only who verified it and until when."""

    detail_type: ClassVar[str] = "CourseDeferred"

    course_id: Id
    admin_id: Id = Field(description="The staff member who verified the condition")
    deferred_until: Day = Field(description="The new last day of the course; at most the pack's deferral limit")


class CertificateRedeemed(_MembershipDetail):
    """A paper certificate from a cancelled membership was presented at checkout, by the former member or by
    anyone they gave it to (``client_id``); the answer (accepted with the fee due, or refused) comes back as a
    ``MembershipDecision``."""

    detail_type: ClassVar[str] = "CertificateRedeemed"

    certificate_id: Id = Field(description="As issued in the cancellation's MembershipDecision, e.g. cert-2")
    client_id: Id = Field(description="Who presents it: the former member, or a client it was given to")
    location_id: Id
    redeemed_at: Instant


MembershipEvent = (MembershipStarted | MembershipPlanChanged | MembershipFreezeRequested
                   | MembershipFreezeFormCompleted | MembershipUnfreezeRequested | MembershipCancellationRequested
                   | MembershipCancellationFormCompleted | ServiceCreditRedeemed | CertificateRedeemed)
MEMBERSHIP_MODELS: tuple[type[_MembershipDetail], ...] = get_args(MembershipEvent)

CourseEvent = CoursePurchased | CourseDeferred

BookingEvent = (AppointmentEvent | CardUpdated | FeeWaived | PrepayRequirementCleared | OutstandingBalancePaid
                | PrivacyRequest | MembershipEvent | CourseEvent)
_MODELS: tuple[type[_BookingSiteDetail], ...] = get_args(BookingEvent)

DETAIL_MODELS: dict[str, type[_BookingSiteDetail]] = {model.detail_type: model for model in _MODELS}
DETAIL_TYPES: tuple[str, ...] = tuple(DETAIL_MODELS)
# A kept history is read back by the model of its own family, so its events keep their types.
APPOINTMENT_DETAIL_MODELS: dict[str, type[AppointmentEvent]] = {m.detail_type: m for m in get_args(AppointmentEvent)}
MEMBERSHIP_DETAIL_MODELS: dict[str, type[MembershipEvent]] = {m.detail_type: m for m in get_args(MembershipEvent)}



# --- the EventBridge envelope --------------------------------------------------------------------


_AwsText = Annotated[str, StringConstraints(max_length=256)]


class _Envelope(BaseModel):
    """The event as EventBridge delivers it. AWS owns these keys, so unknown ones are ignored."""

    model_config = ConfigDict(defer_build=True, frozen=True, extra="ignore", strict=True, populate_by_name=True)

    version: _AwsText | None = None
    id: _AwsText | None = Field(default=None, description="EventBridge's id (not the booking site's event_id)")
    source: Annotated[str, StringConstraints(pattern=SOURCE_PATTERN)]
    account: _AwsText | None = None
    time: _AwsText | None = None
    region: _AwsText | None = None
    resources: Annotated[list[Annotated[str, StringConstraints(max_length=2048)]], Field(max_length=10)] = []

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
        detail_type=(Literal[name], Field(alias="detail-type")),
        detail=(detail_model, ...),
    )


ENVELOPE_MODELS: dict[str, type[_Envelope]] = {name: _envelope(model) for name, model in DETAIL_MODELS.items()}

# Built from the envelopes at import, so a runtime value rather than a type mypy can read.
BookingEnvelope: Any = Annotated[Union[tuple(ENVELOPE_MODELS.values())], Field(discriminator="detail_type")]  # noqa: UP007


# --- parsing -------------------------------------------------------------------------------------

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
Loc = tuple[str | int, ...]


def _path(loc: Loc) -> tuple[str, bool]:
    """The dotted path of ``loc``, and whether it had to stop short.

    A key is the sender's text as much as a value is, so a path is spelled only as far as its keys look
    like field names; past that, the problem is reported at the object that holds the odd key.
    """
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _NAME.fullmatch(part):
            out += f".{part}" if out else part
        else:
            return out or ROOT, True
    return out or ROOT, False


def _problem(loc: Loc, message: str) -> tuple[str, str]:
    path, short = _path(loc)
    return path, f"{path}: {message}" + (" (inside a key whose name is not repeated)" if short else "")


def _refused(loc: Loc, message: str, detail_type: str | None = None) -> InvalidBookingEvent:
    path, reason = _problem(loc, message)
    return InvalidBookingEvent(reason, field=path, detail_type=detail_type)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError("not JSON")


def _invalid(error: ValidationError, detail_type: str) -> InvalidBookingEvent:
    # Built from loc and msg only: pydantic's own str() would echo each "input" value (PII).
    problems = [_problem(e["loc"], e["msg"]) for e in error.errors(include_url=False, include_input=False)]
    reason = "; ".join(text for _, text in problems[:10])
    if len(problems) > 10:
        reason += f"; and {len(problems) - 10} more"
    return InvalidBookingEvent(reason, field=problems[0][0] if problems else ROOT, detail_type=detail_type)


class _Object(dict):  # type: ignore[type-arg]
    """A JSON object decoded from text that remembers a key given twice: JSON readers disagree on
    which of the two wins, so the event would mean different things to different readers."""

    repeated: str | None = None


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    decoded = _Object()
    for key, value in pairs:
        if key in decoded and decoded.repeated is None:
            decoded.repeated = key
        decoded[key] = value
    return decoded


class _HugeInteger:
    """An integer literal too long for any field, kept (not converted) so it is refused by its path."""


def _integer(literal: str) -> int | _HugeInteger:
    return int(literal) if len(literal) <= 20 else _HugeInteger()


MAX_TEXT = 1024 * 1024
"""JSON text longer than this is refused unread: four times what SQS or EventBridge can carry, so only
a caller outside the intake can send it; anything shorter is read, so its refusal can name the field."""


def _decode(text: str | bytes | bytearray) -> Any:
    if len(text) > MAX_TEXT:
        raise InvalidBookingEvent(f"{ROOT}: longer than {MAX_TEXT} characters", field=ROOT)
    try:
        return json.loads(text, object_pairs_hook=_object, parse_int=_integer)
    except (ValueError, RecursionError):
        raise InvalidBookingEvent(f"{ROOT}: not a JSON document", field=ROOT) from None


def _utf8_size(text: str) -> int | None:
    if len(text) > EVENT_MAX_BYTES:
        return len(text)
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return None


def _shape_problem(event: dict[str, Any]) -> tuple[Loc, str] | None:
    """What pydantic should never be handed, found by walking the event once without recursion.

    Depth, size, keys that are not strings or are given twice, text that is not Unicode, numbers JSON
    cannot carry (NaN, infinity, integers past 64 bits) and values that are not JSON at all. Sizes are
    counted as compact UTF-8 JSON without escapes, and the walk stops as soon as a limit is passed, so a
    huge event costs no more than the limit to refuse.
    """
    total = detail = 0
    stack: list[tuple[Any, Loc]] = [(event, ())]
    while stack:
        value, loc = stack.pop()
        children: list[tuple[Any, Loc]] = []
        if isinstance(value, dict | list | tuple):
            if len(loc) > MAX_DEPTH:
                return loc, f"nested deeper than {MAX_DEPTH} levels"
            if isinstance(value, _Object) and value.repeated is not None:
                return (*loc, value.repeated), "given twice in one object"
            size = 1 + len(value)
            if isinstance(value, dict):
                for key, item in value.items():
                    if not isinstance(key, str):
                        return loc, "every key must be a string"
                    if (key_size := _utf8_size(key)) is None:
                        return loc, "a key is not valid Unicode"
                    size += key_size + 2
                    children.append((item, (*loc, key)))
            else:
                children = [(item, (*loc, index)) for index, item in enumerate(value)]
        elif isinstance(value, str):
            if (text_size := _utf8_size(value)) is None:
                return loc, "not valid Unicode (a lone surrogate)"
            size = text_size + 2
        elif value is None or isinstance(value, bool):
            size = 5
        elif isinstance(value, int):
            if not -MAX_JSON_INTEGER < value < MAX_JSON_INTEGER:
                return loc, "a number larger than any field can hold"
            size = len(str(value))
        elif isinstance(value, _HugeInteger):
            return loc, "a number larger than any field can hold"
        elif isinstance(value, float):
            if not math.isfinite(value):
                return loc, "not a JSON number (NaN or infinity)"
            size = len(repr(value))
        elif isinstance(value, datetime | date):
            size = 34
        else:
            return loc, "not a JSON value"
        total += size
        if loc[:1] == ("detail",):
            detail += size
            if detail > DETAIL_MAX_BYTES:
                return ("detail",), f"larger than {DETAIL_MAX_BYTES} bytes"
        if total > EVENT_MAX_BYTES:
            return loc[:1], f"makes the event larger than {EVENT_MAX_BYTES} bytes"
        stack.extend(reversed(children))
    return None


def _check_source(event: Mapping[str, Any], detail_type: str | None) -> None:
    if "source" not in event:
        raise _refused(("source",), "Field required", detail_type)
    source = event["source"]
    if not isinstance(source, str) or not re.fullmatch(SOURCE_PATTERN, source):
        raise _refused(("source",), "not a booking-site source (booking-site or booking-site.<vendor>)", detail_type)


def _detail_model(event: Mapping[str, Any]) -> tuple[str, type[_Envelope]]:
    if "detail-type" not in event:
        raise _refused(("detail-type",), "Field required")
    detail_type = event["detail-type"]
    model = ENVELOPE_MODELS.get(detail_type) if isinstance(detail_type, str) else None
    if model is None:
        raise _refused(("detail-type",),
                       f"not a detail-type of the catalogue; expected one of {', '.join(DETAIL_TYPES)}")
    return detail_type, model


def parse_booking_envelope(eventbridge_event: Mapping[str, Any] | str | bytes) -> _Envelope:
    """Validate a whole EventBridge event, as a mapping or as the JSON text SQS delivers.

    ``.detail`` is the typed detail, ``.vendor`` the vendor. The shape, the ``source`` and the
    ``detail-type`` are checked before pydantic sees the event, so every refusal names a field.
    """
    if isinstance(eventbridge_event, str | bytes | bytearray):
        eventbridge_event = _decode(eventbridge_event)
    if not isinstance(eventbridge_event, Mapping):
        raise InvalidBookingEvent(f"{ROOT}: the event must be a JSON object", field=ROOT)
    event = dict(eventbridge_event)
    named = event.get("detail-type")
    known = named if isinstance(named, str) and named in DETAIL_MODELS else None
    if (problem := _shape_problem(event)) is not None:
        raise _refused(*problem, detail_type=known)
    _check_source(event, known)
    detail_type, model = _detail_model(event)
    try:
        # JSON mode + strict: ISO strings become datetimes, but 50.0 is not an int and "true" not a bool.
        return model.model_validate_json(json.dumps(event, default=_json_default), strict=True)
    except ValidationError as error:
        raise _invalid(error, detail_type) from None


def parse_booking_event(eventbridge_event: Mapping[str, Any] | str | bytes) -> BookingEvent:
    """The one entry point: an EventBridge event in, the typed detail out, or InvalidBookingEvent."""
    return parse_booking_envelope(eventbridge_event).detail  # type: ignore[attr-defined, no-any-return]
