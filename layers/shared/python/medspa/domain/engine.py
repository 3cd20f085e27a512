"""The policy engine: pure decisions about one appointment under its location's policy pack.

Every function takes the pack, the appointment (or an event) and the facts, ``now`` included, and
returns a decision. Nothing here reads a clock, a database or the environment, so a Step Functions
task that is retried gets the same answer, and each rule can be tested with plain values.

Decisions taken where the seeds are silent (each also stated in the packs):

* Reminders: "48 hours before" is 48 elapsed hours; "the morning of" is a local wall time on the
  appointment's local date. A reminder inside quiet hours moves to the end of quiet hours; if that
  is at or after the start (or the reminder itself is), it moves back to the start of the previous
  quiet period, the last sendable moment the evening before. A reminder whose time has passed when
  the schedule is computed is skipped, never sent late; reminders that land on the same instant
  are sent once, under the first name in pack order. A reminder with a ``spread_minutes`` window goes
  at the appointment's own minute of it (a hash of its id), then is placed like any other, so a window
  that reaches into quiet hours sends those minutes at their end.
* Confirmation: requested ``request_hours_before`` the start but no later than ``min_reply_hours``
  before the deadline (the close of the last business day before the appointment's local date).
  When booked too late for that, the request goes out at once (outside quiet hours) and the
  appointment is never auto-cancelled.
* Cancellation: late when notice is less than the window (exactly the window is on time). Special-
  day overrides (holidays, holiday weekends and named days, worked out by rule for the visit's
  local date in the location's zone) and party-size overrides replace the base window; when several
  apply the longest wins. For a
  prepaid visit being rescheduled, the pack's prepaid-credit window replaces the window, because
  the seeds write that rule for exactly that client.
* Card check: a few days before a visit whose fee would reach the card on file, at a local morning
  time, the card is checked so that a client whose card will not take the fee can replace it in time.
  A visit booked after that moment is not checked: the booking site has just seen the card.
* Late arrival: up to the pack's limit (exactly the limit included) the treatment is shortened to end on
  time at full price; past it, or at or after the hands-on end, the visit must be rescheduled and the
  late-reschedule fee applies, waived where the pack lets the client rebook the same day (the fee then
  waits until the end of that local day: ``same_day_rebooking_deadline``).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

from medspa.domain.appointment import Appointment, PaymentContext, Service
from medspa.money import Money
from medspa.domain.wallclock import (
    at_wall_clock,
    end_of_business_day_before,
    end_of_quiet_hours,
    in_quiet_hours,
    last_quiet_start_before,
    local_date,
)
from medspa.policy.schema import Consequence, FeeReason, PolicyPack, Reminder, SettlementSource

__all__ = [
    "BookingRequirements",
    "CancellationDecision",
    "ConfirmationSchedule",
    "LateArrivalOutcome",
    "Outcome",
    "PolicyMismatch",
    "ScheduledReminder",
    "SettlementPlan",
    "SettlementStep",
    "Strike",
    "booking_requirements",
    "cancellation_window",
    "card_at_stake",
    "card_check_time",
    "classify_cancellation",
    "confirmation_schedule",
    "dunning_schedule",
    "early_reschedule_credit",
    "fee_for",
    "late_arrival_outcome",
    "no_show_decision_time",
    "prepay_required",
    "rebooked_same_day",
    "reminder_times",
    "same_day_rebooking_deadline",
    "service_category",
    "settlement_plan",
    "spread_offset",
    "strike_consequences",
    "strike_for",
]

Outcome = Literal[
    "attended",
    "on_time_cancel",
    "on_time_reschedule",
    "late_cancel",
    "late_reschedule",
    "no_show",
    "spa_initiated",
    "auto_cancel_unconfirmed",
]


_CLIENT_EVENTS: dict[tuple[str, bool], Outcome] = {
    ("cancel", False): "on_time_cancel",
    ("cancel", True): "late_cancel",
    ("reschedule", False): "on_time_reschedule",
    ("reschedule", True): "late_reschedule",
}


class PolicyMismatch(ValueError):
    """The appointment does not belong to the pack's location or currency."""


class _Decision(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")


class ScheduledReminder(_Decision):
    kind: str
    send_at: datetime


class ConfirmationSchedule(_Decision):
    request_at: datetime | None
    deadline: datetime | None
    auto_cancel: bool


class CancellationDecision(_Decision):
    classification: Literal["on_time", "late"]
    event: Outcome
    fee_reason: FeeReason | None
    fee_waived: bool
    window: timedelta
    notice: timedelta


class SettlementStep(_Decision):
    source: SettlementSource
    amount: Money
    sessions: int = 0


class SettlementPlan(_Decision):
    fee: Money
    steps: tuple[SettlementStep, ...]

    def amount_from(self, source: SettlementSource) -> Money:
        return sum((s.amount for s in self.steps if s.source == source), Money.zero(self.fee.currency))


class LateArrivalOutcome(_Decision):
    status: Literal["on_time", "shortened", "must_reschedule"]
    minutes_late: int
    hands_on_minutes: int
    treatment_ends_at: datetime
    fee: Money | None
    fee_waived_if_rescheduled_same_day: bool


class Strike(_Decision):
    reason: FeeReason


class BookingRequirements(_Decision):
    prepay_in_full: bool
    card_on_file: bool
    gift_certificate_accepted: bool
    restricted_booking_times: bool


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: the engine needs timezone-aware instants")
    return moment.astimezone(UTC)


def _check(pack: PolicyPack, appt: Appointment) -> None:
    if appt.location_id != pack.location_id:
        raise PolicyMismatch(f"appointment {appt.id} is at {appt.location_id}, pack is {pack.location_id}")
    if appt.service.price.currency != pack.currency:
        raise PolicyMismatch(f"appointment {appt.id} is not priced in {pack.currency}")


def _sendable(candidate: datetime, pack: PolicyPack, start: datetime, now: datetime) -> datetime | None:
    """Place a client message outside quiet hours and before the start, or drop it if past."""
    quiet, zone = pack.messaging.quiet_hours, pack.zone
    moment = end_of_quiet_hours(candidate, quiet, zone) if in_quiet_hours(candidate, quiet, zone) else candidate
    if moment >= start:
        moment = last_quiet_start_before(start, quiet, zone)
    return moment if moment >= now else None


def spread_offset(appointment_id: str, spread_minutes: int) -> timedelta:
    """An appointment's whole-minute place in a spread window (a reminder's, the card check's), ``[0, spread_minutes)``.

    A stable digest, not ``hash()`` (salted per process): each wake-up plans the visit again in whatever
    Lambda process runs it, and the in-process backtest plans it once more, so all of them must put the
    visit at the same minute or a reminder would move between plans and the backtest would disagree.
    """
    if spread_minutes <= 0:
        return timedelta()
    digest = hashlib.blake2b(appointment_id.encode("utf-8"), digest_size=8).digest()
    return timedelta(minutes=int.from_bytes(digest, "big") % spread_minutes)


def _reminder_candidate(reminder: Reminder, start: datetime, pack: PolicyPack, appointment_id: str) -> datetime:
    if reminder.hours_before is not None:
        return start - timedelta(hours=reminder.hours_before)
    day = local_date(start, pack.zone) - timedelta(days=reminder.days_before)
    assert reminder.at_local_time is not None, "a reminder has hours_before or a local time (the schema checks)"
    return _own_minute(day, reminder.at_local_time, reminder.spread_minutes, appointment_id, pack.zone)


def _own_minute(day: date, opens_at: time, spread_minutes: int, appointment_id: str, zone: ZoneInfo) -> datetime:
    """The appointment's minute of a window opening at ``opens_at`` on the local ``day``. Added on the wall clock,
    then resolved like any wall time: a minute in a DST gap moves as 02:30 does."""
    wall = datetime.combine(day, opens_at) + spread_offset(appointment_id, spread_minutes)
    return at_wall_clock(day, wall.time(), zone)


def reminder_times(pack: PolicyPack, appt: Appointment, now: datetime) -> list[ScheduledReminder]:
    """Reminders to schedule when an appointment (version) is booked at ``now``, in send order."""
    _check(pack, appt)
    now, start = _utc(now), appt.starts_at
    chosen: dict[datetime, str] = {}
    for reminder in pack.reminders:
        send_at = _sendable(_reminder_candidate(reminder, start, pack, appt.id), pack, start, now)
        if send_at is not None:
            chosen.setdefault(send_at, reminder.name)
    return [ScheduledReminder(kind=kind, send_at=at) for at, kind in sorted(chosen.items())]


def confirmation_schedule(pack: PolicyPack, appt: Appointment, now: datetime) -> ConfirmationSchedule:
    """When to ask for a confirmation, until when a reply counts, and whether silence cancels."""
    _check(pack, appt)
    rule = pack.confirmation
    if rule is None:
        return ConfirmationSchedule(request_at=None, deadline=None, auto_cancel=False)
    now, start = _utc(now), appt.starts_at
    deadline = end_of_business_day_before(local_date(start, pack.zone), pack.business_hours, pack.zone)
    latest_fair_request = deadline - timedelta(hours=rule.min_reply_hours)
    wanted = min(start - timedelta(hours=rule.request_hours_before), latest_fair_request)
    request_at = _sendable(max(wanted, now), pack, start, now)
    auto_cancel = rule.auto_cancel and request_at is not None and request_at <= latest_fair_request
    return ConfirmationSchedule(request_at=request_at, deadline=deadline, auto_cancel=auto_cancel)


def no_show_decision_time(pack: PolicyPack, appt: Appointment) -> datetime:
    """The instant an absent client becomes a no-show; an arrival before it is a late arrival."""
    _check(pack, appt)
    if pack.no_show.decided_at == "end_of_slot":
        return appt.ends_at
    return appt.starts_at + timedelta(minutes=pack.no_show.grace_minutes)


def cancellation_window(
    pack: PolicyPack, appt: Appointment, kind: Literal["cancel", "reschedule"] = "cancel"
) -> timedelta:
    """Notice the client owes for this appointment: base window, overrides, prepaid-credit window."""
    _check(pack, appt)
    rules = pack.cancellation
    day = local_date(appt.starts_at, pack.zone)
    overrides = [o.window_hours for o in rules.overrides if o.covers(day)]
    party = rules.party_size_override
    if party is not None and appt.party_size >= party.min_party_size:
        overrides.append(party.window_hours)
    hours = max(overrides) if overrides else rules.window_hours
    credit = pack.strikes.prepaid_reschedule_credit if pack.strikes else None
    if kind == "reschedule" and credit is not None and appt.payment.is_prepaid:
        hours = credit.hours_before
    return timedelta(hours=hours)


def classify_cancellation(
    pack: PolicyPack,
    appt: Appointment,
    cancelled_at: datetime,
    by: Literal["client", "spa"] = "client",
    kind: Literal["cancel", "reschedule"] = "cancel",
    new_start: datetime | None = None,
) -> CancellationDecision:
    """On time or late. A spa-initiated change is never the client's violation."""
    window = cancellation_window(pack, appt, kind)
    notice = appt.starts_at - _utc(cancelled_at)
    late = by == "client" and kind in pack.cancellation.covers and notice < window
    event = _CLIENT_EVENTS[kind, late] if by == "client" else "spa_initiated"
    waived = late and kind == "reschedule" and new_start is not None and rebooked_same_day(pack, appt, new_start)
    return CancellationDecision(
        classification="late" if late else "on_time",
        event=event,
        fee_reason=event if late and not waived else None,
        fee_waived=waived,
        window=window,
        notice=notice,
    )


def rebooked_same_day(pack: PolicyPack, appt: Appointment, new_start: datetime) -> bool:
    """Whether moving the visit to ``new_start`` earns the pack's same-day waiver of the late-reschedule fee."""
    same_day = pack.late_arrival.same_day_reschedule
    return bool(same_day is not None and same_day.waives_fee
                and local_date(_utc(new_start), pack.zone) == local_date(appt.starts_at, pack.zone))


def same_day_rebooking_deadline(pack: PolicyPack, appt: Appointment) -> datetime | None:
    """Until when a client who arrived too late may still rebook for free: the end of the visit's local day.

    ``None`` when the pack has no same-day waiver, so the late-reschedule fee is due at once.
    """
    same_day = pack.late_arrival.same_day_reschedule
    if same_day is None or not same_day.waives_fee:
        return None
    return at_wall_clock(local_date(appt.starts_at, pack.zone) + timedelta(days=1), time(0, 0), pack.zone)


def service_category(pack: PolicyPack, service: Service) -> str:
    """The fee category: a pack's name pin wins over what the booking site sent."""
    name = _words(service.name)
    for pinned in pack.fees.categories:
        if any(_words(phrase) in name for phrase in pinned.matches):
            return pinned.category
    return service.category


@lru_cache(maxsize=1024)
def _words(text: str) -> str:
    """Space-delimited lower-case words, so a phrase matches whole words only ("IV" not "olive"). Remembered:
    every fee and card-check decision asks it again of the same service names and pinned phrases."""
    return " " + " ".join("".join(c if c.isalnum() else " " for c in text.casefold()).split()) + " "


def _scheduled_fee(pack: PolicyPack, appt: Appointment) -> Money | None:
    category = service_category(pack, appt.service)
    for band in pack.fees.schedule:
        if band.matches(category, appt.service.duration_minutes):
            return appt.service.price if band.full_service_price else pack.money(band.amount or 0)
    return None


def fee_for(pack: PolicyPack, appt: Appointment, reason: FeeReason) -> Money | None:
    """What the violation costs the client, before deciding where the money comes from.

    ``None`` when the pack charges nothing for this reason or names no fee for the service's
    category: the system never invents a charge the client did not accept.
    """
    _check(pack, appt)
    fees = pack.fees
    if reason not in fees.applies_to:
        return None
    payment, prepaid_rule = appt.payment, fees.prepaid_visit
    if prepaid_rule is not None and payment.is_prepaid:
        if prepaid_rule.on_violation == "deduct_service":
            return appt.service.price
        if payment.prepaid is not None:
            scheduled = _scheduled_fee(pack, appt) or Money.zero(pack.currency)
            return payment.prepaid if payment.prepaid.amount >= scheduled.amount else scheduled
    return _scheduled_fee(pack, appt)


def settlement_plan(
    pack: PolicyPack, appt: Appointment, fee: Money, balances: PaymentContext | None = None
) -> SettlementPlan:
    """Where a fee comes from, in the pack's order. ``balances`` are the live balances at
    settlement time (default: as booked). Whatever no source covers is an outstanding balance."""
    _check(pack, appt)
    held = balances or appt.payment
    remaining, steps = fee, []
    for source in pack.settlement.order:
        if remaining.amount <= 0:
            break
        sessions = 0
        if source == "course_session":
            take, sessions = (remaining, 1) if held.course_session_available else (None, 0)
        elif source in ("deposit", "prepayment", "gift_certificate"):
            balance = {"deposit": held.deposit, "prepayment": held.prepaid}.get(source, held.gift_certificate)
            take = remaining.min(balance) if balance is not None else None
        elif source == "card_on_file":
            take = remaining if held.card_on_file else None
        else:
            take = remaining
        if take is not None and take.amount > 0:
            steps.append(SettlementStep(source=source, amount=take, sessions=sessions))
            remaining -= take
    return SettlementPlan(fee=fee, steps=tuple(steps))


def card_at_stake(pack: PolicyPack, appt: Appointment) -> bool:
    """Whether a fee of this visit would be charged to the card on file, as booked: a visit paid in
    advance, one whose deposit or course covers the fee, or one booked without a card never reaches it."""
    _check(pack, appt)
    for reason in pack.fees.applies_to:
        fee = fee_for(pack, appt, reason)
        if fee is not None and not fee.is_zero and settlement_plan(pack, appt, fee).amount_from("card_on_file").amount:
            return True
    return False


def card_check_time(pack: PolicyPack, appt: Appointment, now: datetime) -> datetime | None:
    """When to make sure the card on file will take this visit's fee, or ``None`` for no check.

    ``days_before`` the visit's local date at the pack's local time (a wall time, so DST does not move
    it) plus the visit's own minute of ``spread_minutes``, moved to the end of quiet hours if it falls inside them. No check when the pack asks for none,
    when no fee of this visit would reach the card (:func:`card_at_stake`), or when the visit is booked
    (or moved) after that moment: the booking site had the client and their card in front of it then,
    so a check moments later would only repeat its own.
    """
    _check(pack, appt)
    rule = pack.card_check
    if rule is None or not card_at_stake(pack, appt):
        return None
    quiet, zone = pack.messaging.quiet_hours, pack.zone
    day = local_date(appt.starts_at, zone) - timedelta(days=rule.days_before)
    check_at = _own_minute(day, rule.at_local_time, rule.spread_minutes, appt.id, zone)
    if in_quiet_hours(check_at, quiet, zone):
        check_at = end_of_quiet_hours(check_at, quiet, zone)
    if check_at >= appt.starts_at or check_at < _utc(now):
        return None
    return check_at


def late_arrival_outcome(pack: PolicyPack, appt: Appointment, arrived_at: datetime) -> LateArrivalOutcome:
    """A late client's visit still ends on time; past the pack's limit it must be rescheduled."""
    _check(pack, appt)
    rule = pack.late_arrival
    arrived_at = _utc(arrived_at)
    late_by = arrived_at - appt.starts_at
    hands_on_start = appt.starts_at + timedelta(minutes=rule.hands_on_buffer_before_minutes)
    hands_on_end = appt.ends_at - timedelta(minutes=rule.hands_on_buffer_after_minutes)
    hands_on = max(hands_on_end - max(arrived_at, hands_on_start), timedelta())
    too_late = arrived_at >= hands_on_end or (
        rule.reschedule_after_minutes is not None and late_by > timedelta(minutes=rule.reschedule_after_minutes)
    )
    status = "must_reschedule" if too_late else "shortened" if arrived_at > hands_on_start else "on_time"
    same_day = rule.same_day_reschedule
    return LateArrivalOutcome(
        status=status,
        minutes_late=max(int(late_by.total_seconds() // 60), 0),
        hands_on_minutes=0 if too_late else int(hands_on.total_seconds() // 60),
        treatment_ends_at=hands_on_end,
        fee=fee_for(pack, appt, "late_reschedule") if too_late else None,
        fee_waived_if_rescheduled_same_day=too_late and same_day is not None and same_day.waives_fee,
    )


def strike_for(pack: PolicyPack, event: Outcome) -> Strike | None:
    """Only the client's own violations count; spa cancellations and auto-cancels never do."""
    if pack.strikes is None or event not in pack.strikes.counts:
        return None
    return Strike(reason=event)


def strike_consequences(pack: PolicyPack, strike_count: int) -> tuple[Consequence, ...]:
    strikes = pack.strikes
    if strikes is None or strike_count < strikes.threshold:
        return ()
    return tuple(strikes.consequences)


def prepay_required(pack: PolicyPack, strike_count: int) -> bool:
    return "prepay_required" in strike_consequences(pack, strike_count)


def booking_requirements(pack: PolicyPack, party_size: int, strike_count: int) -> BookingRequirements:
    """What a booking must include before it is accepted (the booking site asks before saving)."""
    consequences = strike_consequences(pack, strike_count)
    guarantee = pack.booking
    from_party = guarantee.card_required_from_party_size if guarantee else None
    card = guarantee is not None and (
        guarantee.card_on_file_required or (from_party is not None and party_size >= from_party)
    )
    return BookingRequirements(
        prepay_in_full="prepay_required" in consequences,
        card_on_file=card,
        gift_certificate_accepted=guarantee is not None and guarantee.gift_certificate_accepted,
        restricted_booking_times="restrict_booking_times" in consequences,
    )


def early_reschedule_credit(pack: PolicyPack, appt: Appointment, rescheduled_at: datetime) -> Money | None:
    """The prepaid amount credited for future visits when a prepaid visit is moved early enough;
    ``None`` when the pack credits no reschedule or the notice is too short (the fold, which calls this
    for every reschedule, then leaves the prepayment with the visit or lets the late reschedule forfeit it)."""
    _check(pack, appt)
    credit = pack.strikes.prepaid_reschedule_credit if pack.strikes else None
    prepaid = appt.payment.prepaid
    if credit is None or prepaid is None or prepaid.is_zero:
        return None
    notice = appt.starts_at - _utc(rescheduled_at)
    return prepaid if notice >= timedelta(hours=credit.hours_before) else None


def dunning_schedule(pack: PolicyPack, first_failure_at: datetime) -> list[datetime]:
    """Retry instants for a declined fee; after the last one the fee becomes an outstanding
    balance. Elapsed hours, not wall clock: a retry charges a card and sends no message itself."""
    first = _utc(first_failure_at)
    return [first + timedelta(hours=h) for h in pack.dunning.retry_after_hours]
