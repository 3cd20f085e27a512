"""An appointment's state as the fold of every booking-site event received for it, in version order.

Every event after ``AppointmentBooked`` carries only what changed (a new time, a confirmation, a
cancellation), so applying events as they arrive would lose data when they arrive out of order: a
confirmation (v3) delivered before the reschedule (v2) it follows must not make the reschedule look
stale. So the intake keeps every event it received, keyed by ``booking_version``, and the appointment
is recomputed as the fold of all of them, sorted by version. Any delivery order of the same set of
events gives the same result; a duplicate adds nothing; an older event arriving late refolds.

``revision`` is the number of distinct versions folded: it grows by one with every new event, so the
store keeps a newer fold and refuses an older one whatever the interleaving of intake Lambdas.

Violations are decided here, at fold time, from each event's ``occurred_at`` (when the client acted at
the booking site, not when the event reached us) against the appointment as it stood just before that
event: that is the notice the client actually gave, and it does not depend on delivery order.

Decisions:
* A visit is charged at most one late-cancel and one late-reschedule fee (the ledger keys fees by
  appointment and reason); moving it late twice counts once.
* A prepaid visit's prepayment leaves the visit once (``medspa.services.prepayment``): cancelled on
  time by the client, cancelled by the spa, or rescheduled at least the pack's prepaid-credit hours
  ahead (``engine.early_reschedule_credit``), it is owed back as store credit and the moved visit is no
  longer prepaid; cancelled or rescheduled late, the violation forfeits it; a late reschedule whose fee
  the policy waives (same day) and a pack that credits no reschedule leave it with the visit.
* A check-in is judged against the pack's late-arrival rule (``engine.late_arrival_outcome``): late but in
  time, the visit is shortened (``facts.late_arrival``); too late for it to go ahead, the arrival is the
  pack's late reschedule, decided at ``arrived_at`` and due at once, or at the end of the visit's local day
  where rebooking that day waives it (a same-day ``AppointmentRescheduled`` then marks it waived). If the
  spa serves the client anyway (``AppointmentCompleted``), the arrival is no violation.
* Status events after a final status (cancelled, completed, no-show) are kept in the history but do not
  reopen the visit; only a new ``AppointmentBooked`` or ``AppointmentRescheduled`` does.
* A visit is judged by the policy version its client accepted at the first booking, kept through every
  reschedule and every refold, even after the spa publishes a new pack (``fold``'s ``accepted_version``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from medspa.domain.booking import (
    OPEN_STATUSES,
    AppointmentBooking,
    AppointmentStatus,
    BookingFacts,
    LateArrival,
    Violation,
)
from medspa.domain import engine
from medspa.domain.appointment import Appointment, PaymentContext
from medspa.domain.keys import appointment_key, client_key
from medspa.policy.loader import UNKNOWN_VERSION, PolicyPacks
from medspa.policy.schema import PolicyPack

from .catalogue import (
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentCompleted,
    AppointmentConfirmed,
    AppointmentEvent,
    AppointmentMarkedNoShow,
    AppointmentRescheduled,
    BookingPayment,
    ClientCheckedIn,
)


class BookingNotYetKnown(LookupError):
    """Events arrived for an appointment whose ``AppointmentBooked`` has not: there is nothing to fold yet.

    The intake keeps the events and acknowledges them; the fold that includes them runs when the booking
    arrives.
    """

    def __init__(self, appointment_id: str) -> None:
        self.appointment_id = appointment_id
        super().__init__(f"no booking yet for appointment {appointment_id}")


def payment_context(payment: BookingPayment) -> PaymentContext:
    """Stripe ids stay out: they belong on the client profile, not on the appointment."""
    return PaymentContext(**payment.model_dump(exclude={"stripe_customer_id", "stripe_payment_method_id"}))


FINAL = {AppointmentStatus.CANCELLED, AppointmentStatus.COMPLETED, AppointmentStatus.NO_SHOW}


class FoldedBooking(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True)

    booking: AppointmentBooking
    changed_by: str
    occurred_at: AwareDatetime


def _describe(event: AppointmentEvent) -> str:
    if isinstance(event, AppointmentCancelled):
        return f"cancelled by the {event.by}"
    return {
        "AppointmentBooked": "booked", "AppointmentRescheduled": "rescheduled", "AppointmentConfirmed": "confirmed",
        "ClientCheckedIn": "client checked in", "AppointmentCompleted": "completed",
        "AppointmentMarkedNoShow": "marked no-show by the front desk",
    }[event.detail_type]


def fold(events: Iterable[AppointmentEvent], packs: Mapping[str, PolicyPack] | None = None,
         accepted_version: str | None = None) -> FoldedBooking:
    """The appointment after every event, applied in ``booking_version`` order.

    The first booking records the policy the client accepted: ``accepted_version``, the version an earlier
    fold of this appointment already recorded (the intake passes the stored one), else the location's
    current pack. Every fold after a pack change replays the booking, and without it would silently move
    the visit to the new version. Late cancels and reschedules are judged by the accepted version
    (``PolicyPacks.for_visit``); a reschedule keeps it, as the visit is the same booking moved, while a
    new appointment id accepts the pack current when it is booked.
    """
    ordered = sorted({e.booking_version: e for e in events}.values(), key=lambda e: e.booking_version)
    if not ordered or not any(isinstance(e, AppointmentBooked) for e in ordered):
        first = ordered[0] if ordered else None
        raise BookingNotYetKnown(first.appointment_id if first else "(none)")
    packs = PolicyPacks.of(packs or {})
    state: AppointmentBooking | None = None
    facts = BookingFacts()
    for event in ordered:
        if isinstance(event, AppointmentBooked):
            pack = packs.get(event.location_id)
            accepted = state.policy_version if state is not None else (
                accepted_version or (pack.policy_version if pack else UNKNOWN_VERSION))
            state = AppointmentBooking(
                appointment_id=appointment_key(event.spa_id, event.appointment_id),
                client_id=client_key(event.spa_id, event.client.id),
                location_id=event.location_id, policy_version=accepted, service=event.service,
                starts_at=event.starts_at, party_size=event.party_size, status=AppointmentStatus.BOOKED,
                booking_version=event.booking_version, event_id=event.event_id,
                payment=payment_context(event.payment),
            )
            facts = facts.model_copy(update={"confirmed_at": None, "arrived_at": None, "cancelled_at": None,
                                             "cancelled_by": None, "no_show_marked_by": None})
            continue
        if state is None:  # events older than the first booking we hold: nothing to apply them to
            continue
        status, changes = state.status, {"booking_version": event.booking_version, "event_id": event.event_id}
        if isinstance(event, AppointmentRescheduled):
            facts, payment = _judge(facts, _accepted(packs, state), state, event, "reschedule")
            changes |= {"starts_at": event.starts_at, "service": event.service or state.service,
                        "status": AppointmentStatus.BOOKED, "payment": payment}
            facts = facts.model_copy(update={"confirmed_at": None, "arrived_at": None, "late_arrival": None})
        elif isinstance(event, AppointmentCancelled):
            if status in OPEN_STATUSES:
                facts, changes["payment"] = _judge(facts, _accepted(packs, state), state, event, "cancel")
                changes["status"] = AppointmentStatus.CANCELLED
                facts = facts.model_copy(update={"cancelled_at": event.occurred_at, "cancelled_by": event.by})
        elif isinstance(event, AppointmentConfirmed):
            if status is AppointmentStatus.BOOKED:
                changes["status"] = AppointmentStatus.CONFIRMED
                facts = facts.model_copy(update={"confirmed_at": event.occurred_at})
        elif isinstance(event, ClientCheckedIn):
            if status not in FINAL:
                changes["status"] = AppointmentStatus.CHECKED_IN
                facts = _arrive(facts, _accepted(packs, state), state, event)
        elif isinstance(event, AppointmentCompleted):
            if status is not AppointmentStatus.CANCELLED:
                changes["status"] = AppointmentStatus.COMPLETED
                # Served after all: an arrival too late for the visit is no violation once the spa treated them.
                facts = facts.model_copy(update={"violations": tuple(
                    v for v in facts.violations if v.cause != "late_arrival")})
        elif isinstance(event, AppointmentMarkedNoShow):
            if status in OPEN_STATUSES:
                changes["status"] = AppointmentStatus.NO_SHOW
                facts = facts.model_copy(update={"no_show_marked_by": event.marked_by})
        state = state.model_copy(update=changes)
    assert state is not None
    last = ordered[-1]
    return FoldedBooking(
        booking=state.model_copy(update={"revision": len(ordered), "facts": facts}),
        changed_by=_describe(last), occurred_at=last.occurred_at,
    )


def _accepted(packs: PolicyPacks, state: AppointmentBooking) -> PolicyPack | None:
    """The version the client accepted; None where no pack is loaded for the location (nothing is judged)."""
    return packs.for_visit(state) if state.location_id in packs else None


def _judge(facts: BookingFacts, pack: PolicyPack | None, state: AppointmentBooking,
           event: AppointmentRescheduled | AppointmentCancelled,
           kind: Literal["cancel", "reschedule"]) -> tuple[BookingFacts, PaymentContext]:
    """Record the violation this change causes under the pack the client accepted (``pack``, the booked
    version), and where the visit's prepayment goes.

    Returns the facts and what the visit holds afterwards. The prepayment leaves the visit here, once,
    to wherever the policy sends it (``medspa.services.prepayment``): into the violation that forfeits
    it, or into the credit owed for a visit cancelled or moved in time. What the visit no longer holds,
    a later change of it cannot forfeit or credit again.
    """
    arrival = next((v for v in facts.violations if v.cause == "late_arrival"), None)
    if (pack is not None and isinstance(event, AppointmentRescheduled) and arrival is not None
            and state.status is AppointmentStatus.CHECKED_IN):
        if engine.rebooked_same_day(pack, state.to_domain(), event.starts_at):
            facts = facts.model_copy(update={"violations": tuple(
                v.model_copy(update={"fee_waived": True}) if v is arrival else v for v in facts.violations)})
        return facts, state.payment
    if pack is None or state.status not in OPEN_STATUSES:
        return facts, state.payment
    appointment = state.to_domain()
    by = event.by if isinstance(event, AppointmentCancelled) else "client"
    new_start = event.starts_at if isinstance(event, AppointmentRescheduled) else None
    decision = engine.classify_cancellation(pack, appointment, event.occurred_at, by=by, kind=kind, new_start=new_start)
    prepaid = state.payment.prepaid if state.payment.prepaid is not None and not state.payment.prepaid.is_zero else None
    released = state.payment.model_copy(update={"prepaid": None})
    if decision.fee_reason is not None or decision.classification == "late":
        reason = decision.event
        if reason in {v.reason for v in facts.violations}:
            return facts, state.payment  # moved late twice: counted (and paid for) once
        paid_from_it = decision.fee_reason is not None and _fee_takes_prepayment(pack, appointment, reason)
        forfeits = prepaid if paid_from_it else None
        facts = facts.model_copy(update={"violations": (*facts.violations, Violation(
            reason=reason, booking_version=event.booking_version, decided_at=event.occurred_at,
            fee_waived=decision.fee_waived, notice_minutes=int(decision.notice.total_seconds() // 60),
            prepayment=forfeits))})
        return facts, released if forfeits is not None else state.payment
    if prepaid is None:
        return facts, state.payment
    credit = prepaid if kind == "cancel" else engine.early_reschedule_credit(pack, appointment, event.occurred_at)
    if credit is None:  # the pack credits no reschedule: the prepayment moves with the visit
        return facts, state.payment
    return facts.model_copy(update={"prepaid_credit": credit}), released


def _arrive(facts: BookingFacts, pack: PolicyPack | None, state: AppointmentBooking,
            event: ClientCheckedIn) -> BookingFacts:
    """Record the check-in and what the pack makes of a late one (``engine.late_arrival_outcome``).

    An arrival too late for the visit to go ahead is the pack's late reschedule, decided at the arrival:
    its fee waits until the end of the visit's local day where rebooking that day waives it, and is
    dropped if the spa serves the client after all. A client already counted for a late reschedule of
    this visit is not counted again.
    """
    facts = facts.model_copy(update={"arrived_at": event.arrived_at, "late_arrival": None})
    if pack is None:
        return facts
    appointment = state.to_domain()
    outcome = engine.late_arrival_outcome(pack, appointment, event.arrived_at)
    if outcome.status == "on_time":
        return facts
    facts = facts.model_copy(update={"late_arrival": LateArrival(
        status=outcome.status, minutes_late=outcome.minutes_late, hands_on_minutes=outcome.hands_on_minutes,
        treatment_ends_at=outcome.treatment_ends_at)})
    if outcome.status != "must_reschedule" or any(v.reason == "late_reschedule" for v in facts.violations):
        return facts
    return facts.model_copy(update={"violations": (*facts.violations, Violation(
        reason="late_reschedule", cause="late_arrival", booking_version=event.booking_version,
        decided_at=event.arrived_at, notice_minutes=-outcome.minutes_late,
        fee_due_at=engine.same_day_rebooking_deadline(pack, appointment)))})


def _fee_takes_prepayment(pack: PolicyPack, appointment: Appointment, reason: str) -> bool:
    """Whether this violation's fee is paid from the prepayment at all (Glow and MassageLuXe deduct a course
    session first; a pack may charge nothing for a reason): only then does the violation forfeit it."""
    fee = engine.fee_for(pack, appointment, reason)  # type: ignore[arg-type]
    return fee is not None and not engine.settlement_plan(pack, appointment, fee).amount_from("prepayment").is_zero


__all__ = ["BookingNotYetKnown", "FoldedBooking", "fold", "payment_context"]
