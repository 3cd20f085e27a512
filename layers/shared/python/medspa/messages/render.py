"""Turning a template plus the facts of a visit into message text.

The values a template may use are computed here and nowhere else, so every location words times
and money the same way: "Tue 10 Mar at 2:00 PM EDT" in the location's zone (the abbreviation
follows DST), "$75.00" / "HK$500.00" from integer minor units. Month and weekday names are spelled
out here rather than with ``strftime`` so the Lambda's locale cannot change them.

A fee notice states the whole fee (``$fee_amount``) and where it came from (``$fee_breakdown``: "$50.00
from your booking deposit and $25.00 charged to your card on file"), because naming only the card
charge told 406's client their $75 fee was $25. A notice logged before breakdowns were stored is
worded from its kind (a charged kind was paid by the card, a declined or outstanding one is owed).

A reminder (and 406's confirmation request, which doubles as one) states the rule with its numbers:
``$cancel_by`` is the visit's start minus the cancellation window the engine applies to it, in the
location's zone ("Sun 8 Mar at 2:00 PM EDT": elapsed hours, so a DST change in between is counted as
it happened), and ``$late_cancel_fee`` the fee a late cancel would cost ("a $50.00 fee"). Templates
word it as a rule ("changes after $cancel_by incur $late_cancel_fee"), true both before that time
and on the morning of, after it has passed.

A membership or course notice (:data:`~.templates.ACCOUNT_KINDS`) is about the client's account, not a visit,
so it is rendered from an :class:`AccountContext`: ``$amount`` (a declined draft), ``$what_next`` (the next
attempt's day, or that the month is now an outstanding balance), ``$what_expires`` ("2 paper certificates") and
``$expiry_date`` ("Tue 15 Dec 2026", the last day of use, a local date).

PHI: the context has no field for the treatment. ``service_label`` is a neutral phrase ("your
appointment") from the location's settings; a caller may pass another neutral label, never the
service name.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from medspa.domain.fee_breakdown import FeeBreakdown
from medspa.money import Money
from medspa.policy.schema import PolicyPack

from .templates import CHARGED_FEE_KINDS, LocationTemplates

SMS_MAX_CHARS = 320  # two concatenated GSM-7 segments
FIRST_NAME_MAX_CHARS = 20
DEFAULT_SERVICE_LABEL = "your appointment"
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_SYMBOLS = {"USD": "$", "HKD": "HK$", "CAD": "CA$", "AUD": "A$", "EUR": "€", "GBP": "£"}


class MessageTooLong(ValueError):
    """A rendered SMS exceeds :data:`SMS_MAX_CHARS` (the text itself is never in the error)."""


class MissingMessageValue(ValueError):
    """A template needs a value (fee, confirm keyword) the context or the pack does not carry."""


class AppointmentContext(BaseModel):
    """The facts a message about one visit may mention. Deliberately no treatment name."""

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    appointment_id: str
    location_id: str
    policy_version: str | None = Field(
        None, description="The pack version the visit was booked under (its quiet hours, reminders, keywords); "
                          "None: the location's current pack")
    starts_at: AwareDatetime
    client_first_name: Annotated[str, Field(max_length=200)] | None = None
    service_label: str | None = Field(None, description="A neutral label; never the treatment name")
    fee: Money | None = None
    fee_breakdown: FeeBreakdown | None = Field(
        None, description="The whole fee and where each part came from; its fee is the notice's $fee_amount")
    confirm_link: str | None = Field(
        None, description="The signed https:// link that confirms this visit; a confirmation request email needs it")
    cancel_by: AwareDatetime | None = Field(
        None, description="The last moment a cancel is on time: the start minus the visit's cancellation window")
    late_cancel_fee: Money | None = Field(
        None, description="What a late cancel of this visit costs under its pack; None: the pack names no fee")
    late_reschedule_fee: Money | None = Field(
        None, description="What a late reschedule (an arrival too late for the visit included) costs under its pack")
    minutes_late: int | None = Field(None, ge=0, description="How late the client checked in")
    hands_on_minutes: int | None = Field(None, ge=0, description="Treatment time left for a late client")
    treatment_ends_at: AwareDatetime | None = Field(None, description="When a late client's treatment still ends")
    payment_link: str | None = Field(
        None, description="Optional per-fee payment address; overrides the location's settings.payment_link. "
                          "Templates may use $payment_link only where the location defines one, so none is needed.")


class AccountContext(BaseModel):
    """The facts a notice about the client's membership or prepaid course may mention: no visit, no treatment.

    ``subject_id`` (the membership or course key) names it in logs and errors, as ``appointment_id`` does a
    visit's. Messaging follows the location's current pack."""

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    subject_id: str
    location_id: str
    client_first_name: Annotated[str, Field(max_length=200)] | None = None
    amount: Money | None = Field(None, description="A declined draft: what it asked for")
    retry_on: date | None = Field(None, description="A declined draft: the day of the next attempt; None: the "
                                  "month is now an outstanding balance")
    expires_on: date | None = Field(None, description="The last day of use of what expires")
    items: int | None = Field(None, ge=1, description="How many services, certificates or sessions expire")

    @property
    def policy_version(self) -> None:
        return None


MessageContext = AppointmentContext | AccountContext


def subject_of(ctx: MessageContext) -> str:
    """What a message is about, for logs and errors: the appointment, membership or course key (never a name)."""
    return ctx.appointment_id if isinstance(ctx, AppointmentContext) else ctx.subject_id


class EmailMessage(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True)

    subject: str
    body: str


def format_visit_time(moment: datetime, zone: ZoneInfo) -> str:
    """``Tue 10 Mar at 2:00 PM EDT``: local wall clock with the zone abbreviation in force then."""
    local = moment.astimezone(zone)
    hour = local.hour % 12 or 12
    meridiem = "AM" if local.hour < 12 else "PM"
    return (f"{_WEEKDAYS[local.weekday()]} {local.day} {_MONTHS[local.month - 1]} at "
            f"{hour}:{local.minute:02d} {meridiem} {local.tzname()}")


def format_clock_time(moment: datetime, zone: ZoneInfo) -> str:
    """``12:55 PM``: the local time of day, for a moment on the visit's own day."""
    local = moment.astimezone(zone)
    return f"{local.hour % 12 or 12}:{local.minute:02d} {'AM' if local.hour < 12 else 'PM'}"


def format_day(day: date) -> str:
    """``Tue 15 Dec 2026``: a local date, spelled out here so the locale cannot change it."""
    return f"{_WEEKDAYS[day.weekday()]} {day.day} {_MONTHS[day.month - 1]} {day.year}"


_WHAT_EXPIRES = {"membership_services_expiring": ("membership service", "membership services"),
                 "certificate_expiring": ("paper certificate", "paper certificates"),
                 "course_sessions_expiring": ("prepaid session", "prepaid sessions")}


def format_money(money: Money) -> str:
    """``$75.00``, ``HK$500.00``, ``-$5.00``; an unknown currency keeps its ISO code (``CHF 10.00``)."""
    code, _, body = str(money).lstrip("-").partition(" ")
    sign = "-" if money.amount < 0 else ""
    symbol = _SYMBOLS.get(code)
    return f"{sign}{symbol}{body}" if symbol else f"{sign}{code} {body}"


_PAID_FROM = {"deposit": "from your booking deposit", "prepayment": "from your prepayment",
              "course_session": "from your course", "gift_certificate": "from your gift certificate"}


def _and(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


def format_fee_breakdown(breakdown: FeeBreakdown, *, compact: bool = False) -> str:
    """``$50.00 from your booking deposit and $25.00 charged to your card on file``: reads after
    "a fee of $75.00 applies:", whichever parts there are. ``compact`` sums what was paid in advance
    into one part, for an SMS that would otherwise run past its segments."""
    parts = []
    if compact and len(breakdown.paid_from) > 1:
        paid_in_advance = sum((p.amount for p in breakdown.paid_from), Money.zero(breakdown.fee.currency))
        parts.append(f"{format_money(paid_in_advance)} from what you paid in advance")
    else:
        for paid in breakdown.paid_from:
            sessions = f" ({paid.sessions} session{'s' if paid.sessions > 1 else ''})" if paid.sessions else ""
            parts.append(f"{format_money(paid.amount)} {_PAID_FROM[paid.source]}{sessions}")
    if breakdown.charged is not None:
        parts.append(f"{format_money(breakdown.charged)} charged to your card on file")
    if breakdown.outstanding is not None:
        parts.append(f"{format_money(breakdown.outstanding)} still owed")
    return _and(parts) if parts else f"{format_money(breakdown.fee)} in total"


def _breakdown_phrase(kind: str, fee: Money, breakdown: FeeBreakdown | None) -> str:
    if breakdown is not None:
        return format_fee_breakdown(breakdown)
    if kind in CHARGED_FEE_KINDS:
        return format_fee_breakdown(FeeBreakdown(fee=fee, charged=fee))
    if kind == "fee_applied":
        return f"{format_money(fee)} from your booking deposit, prepayment, course or gift certificate"
    return format_fee_breakdown(FeeBreakdown(fee=fee, outstanding=fee))


def _first_name(raw: str | None) -> str:
    name = " ".join((raw or "").split())
    return name[:FIRST_NAME_MAX_CHARS].rstrip() or "there"


def _confirm_keyword(pack: PolicyPack) -> str:
    words = pack.messaging.keywords.confirm
    if not words:
        raise MissingMessageValue(f"{pack.location_id}: the pack has no confirm keyword")
    return next((w for w in words if w.casefold() == "confirm"), words[0])


def _fee(pack: PolicyPack, ctx: AppointmentContext) -> Money:
    fee = ctx.fee_breakdown.fee if ctx.fee_breakdown is not None else ctx.fee
    if fee is None:
        raise MissingMessageValue(f"{ctx.appointment_id}: the message needs a fee amount")
    if fee.currency != pack.currency:
        raise MissingMessageValue(f"{ctx.appointment_id}: fee in {fee.currency}, pack in {pack.currency}")
    return fee


def _fee_at_stake(pack: PolicyPack, ctx: AppointmentContext, fee: Money | None) -> str:
    """``a $50.00 fee``; a visit whose pack names no fee for it gets the policy's general words, so a
    reminder never invents an amount (nor promises there is none)."""
    if fee is None:
        return "a fee under our cancellation policy"
    if fee.currency != pack.currency:
        raise MissingMessageValue(f"{ctx.appointment_id}: fee in {fee.currency}, pack in {pack.currency}")
    return f"a {format_money(fee)} fee"


def _account_value(name: str, pack: PolicyPack, ctx: AccountContext, kind: str) -> str:
    if name == "amount":
        if ctx.amount is None or ctx.amount.currency != pack.currency:
            raise MissingMessageValue(f"{ctx.subject_id}: the message needs an amount in {pack.currency}")
        return format_money(ctx.amount)
    if name == "what_next":
        if ctx.retry_on is not None:
            return f"we will try your card again on {format_day(ctx.retry_on)}"
        return "this month's dues are now an outstanding balance on your account"
    if name == "expiry_date":
        if ctx.expires_on is None:
            raise MissingMessageValue(f"{ctx.subject_id}: the message needs the last day of use")
        return format_day(ctx.expires_on)
    if name == "what_expires":
        if ctx.items is None or kind not in _WHAT_EXPIRES:
            raise MissingMessageValue(f"{ctx.subject_id}: the message needs how many of what expire")
        one, many = _WHAT_EXPIRES[kind]
        return f"{ctx.items} {one if ctx.items == 1 else many}"
    raise MissingMessageValue(f"{ctx.subject_id}: ${name} is about a visit; this notice has none")


def _values(names: set[str], pack: PolicyPack, templates: LocationTemplates, ctx: MessageContext,
            kind: str) -> dict[str, str]:
    """Compute only what the template uses, so a reminder never needs a fee."""
    values: dict[str, str] = {}
    for name in names:
        if name == "client_first_name":
            values[name] = _first_name(ctx.client_first_name)
        elif name == "spa_name":
            values[name] = templates.settings.get("spa_name", pack.location.name)
        elif name == "spa_phone":
            values[name] = templates.settings["spa_phone"]
        elif name == "opt_out_keyword":
            values[name] = pack.messaging.keywords.opt_out_word
        elif name == "payment_link":
            own = ctx.payment_link if isinstance(ctx, AppointmentContext) else None
            link = own or templates.settings.get("payment_link")
            if not link:  # load_templates refuses such a template; only a hand-built LocationTemplates gets here
                raise MissingMessageValue(f"{subject_of(ctx)}: the message needs a payment link")
            values[name] = link
        elif isinstance(ctx, AccountContext):
            values[name] = _account_value(name, pack, ctx, kind)
        elif name == "visit_time":
            values[name] = format_visit_time(ctx.starts_at, pack.zone)
        elif name == "service_label":
            values[name] = ctx.service_label or templates.settings.get("service_label", DEFAULT_SERVICE_LABEL)
        elif name == "confirm_keyword":
            values[name] = _confirm_keyword(pack)
        elif name == "cancel_by":
            if ctx.cancel_by is None:
                raise MissingMessageValue(f"{ctx.appointment_id}: the message needs the cancel-by time")
            values[name] = format_visit_time(ctx.cancel_by, pack.zone)
        elif name == "late_cancel_fee":
            values[name] = _fee_at_stake(pack, ctx, ctx.late_cancel_fee)
        elif name == "late_reschedule_fee":
            values[name] = _fee_at_stake(pack, ctx, ctx.late_reschedule_fee)
        elif name in ("minutes_late", "hands_on_minutes"):
            value = getattr(ctx, name)
            if value is None:
                raise MissingMessageValue(f"{ctx.appointment_id}: the message needs {name}")
            values[name] = str(value)
        elif name == "treatment_ends_at":
            if ctx.treatment_ends_at is None:
                raise MissingMessageValue(f"{ctx.appointment_id}: the message needs the treatment's end")
            values[name] = format_clock_time(ctx.treatment_ends_at, pack.zone)
        elif name == "fee_amount":
            values[name] = format_money(_fee(pack, ctx))
        elif name == "fee_breakdown":
            values[name] = _breakdown_phrase(kind, _fee(pack, ctx), ctx.fee_breakdown)
        elif name == "confirm_link":
            if not (ctx.confirm_link or "").startswith("https://"):
                raise MissingMessageValue(f"{ctx.appointment_id}: the message needs an https:// confirm link")
            values[name] = ctx.confirm_link or ""
        else:
            raise MissingMessageValue(f"{ctx.appointment_id}: ${name} is about an account; this message is a visit's")
    return values


def _check(pack: PolicyPack, templates: LocationTemplates, ctx: MessageContext) -> None:
    if not (ctx.location_id == pack.location_id == templates.location_id):
        raise ValueError(f"context {ctx.location_id!r}, pack {pack.location_id!r} and templates "
                         f"{templates.location_id!r} must be the same location")


def render_sms(templates: LocationTemplates, pack: PolicyPack, kind: str, ctx: MessageContext) -> str:
    """The SMS text, ending with the opt-out line built from the pack's first opt-out keyword."""
    _check(pack, templates, ctx)
    template = templates.template(kind)
    names = set(template.sms.get_identifiers()) | set(templates.footer_sms.get_identifiers())
    values = _values(names, pack, templates, ctx, kind)
    text = f"{template.sms.substitute(values).strip()}\n{templates.footer_sms.substitute(values).strip()}"
    if (len(text) > SMS_MAX_CHARS and "fee_breakdown" in values and isinstance(ctx, AppointmentContext)
            and ctx.fee_breakdown is not None):
        values["fee_breakdown"] = format_fee_breakdown(ctx.fee_breakdown, compact=True)
        text = f"{template.sms.substitute(values).strip()}\n{templates.footer_sms.substitute(values).strip()}"
    if len(text) > SMS_MAX_CHARS:
        raise MessageTooLong(f"{templates.location_id}: {kind} SMS is {len(text)} chars (max {SMS_MAX_CHARS})")
    return text


def render_email(templates: LocationTemplates, pack: PolicyPack, kind: str, ctx: MessageContext, *,
                 unsubscribe_link: str) -> EmailMessage:
    """Subject plus plain-text body ending with the location's unsubscribe footer, which carries
    ``unsubscribe_link`` (signed per spa and address by the caller; the same link goes in the
    ``List-Unsubscribe`` header)."""
    _check(pack, templates, ctx)
    if not unsubscribe_link.startswith("https://"):
        raise MissingMessageValue(f"{subject_of(ctx)}: the email needs an https:// unsubscribe link")
    template = templates.template(kind)
    names = {n for t in (template.email_subject, template.email_body, templates.footer_email)
             for n in t.get_identifiers()}
    values = _values(names - {"unsubscribe_link"}, pack, templates, ctx, kind) | {"unsubscribe_link": unsubscribe_link}
    subject = " ".join(template.email_subject.substitute(values).split())
    body = f"{template.email_body.substitute(values).strip()}\n\n--\n{templates.footer_email.substitute(values).strip()}\n"
    return EmailMessage(subject=subject, body=body)
