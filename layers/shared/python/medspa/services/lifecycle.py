"""What an appointment's execution does: plan the next step from the stored facts, then take it.

The state machine is a loop: every task *acts* on the step it woke for and *plans* in the same
invocation, returning the one next action and when it is due; the execution sleeps until then (a Wait
state named for the action) and wakes the task named for it. The lifecycle's own steps that are due at
once (a strike, a notice, telling the booking site) are taken in the same invocation, one after the
other exactly as separate tasks would take them, and listed in its output (``Plan.did``), so a chain of
immediate steps costs no state transitions; the settlement function's steps (fees, the card check)
hold the Stripe key and stay tasks of their own. Every wake-up re-reads the
appointment, because the execution may have slept for days: if the booking site has since sent a newer
version, this execution is stale and does nothing; the newer revision has an execution of its own.

Planning is a pure reading of the store plus the policy engine, so a Step Functions retry of any step
gets the same answer. Acting is idempotent per step:

* a message is logged under a key (``reminder_48h@<visit start>``, ``no_show_fee_charged``...) as
  *sending* before the outbox is given it and *queued* after (the outbox's sender settles it as *sent*, with
  the provider's message ids, or *dropped*; without an outbox, *sent* at once); a retry that finds
  *sending* does not send again (the provider has no idempotency key, so "maybe sent" is not resent);
* fees go through the ledger (``SettlementService``), strikes are keyed by appointment and reason,
  the lifecycle's own outcome (auto-cancel, no-show) is written for the revision it was planned from.

Every rule about the visit comes from the pack version its client accepted when booking
(``PolicyPacks.for_visit``), even after the spa publishes a new one: reminders and what they promise, the
confirmation deadline, the no-show time, which violations carry a fee and count as a strike. Only what a
strike count leads to (the prepay flag) follows the current pack, as it restricts the client's next bookings.

Order of work, every time the plan runs: money first (fees due now, then strikes, then a prepayment
owed back as credit), then messages that are due, then the timed steps of an open visit (reminders,
the confirmation request, the card check, the auto-cancel deadline, the attendance decision) and dunning
retries, earliest first. The card check is the settlement function's (``medspa.services.card_check``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Literal, NamedTuple, get_args

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from medspa.domain.booking import (
    OPEN_STATUSES,
    Appointment,
    AppointmentStatus,
    CardCheck,
    LifecycleOutcome,
    MessageLog,
    MessageResult,
)
from medspa.domain.client import Client
from medspa.domain.ledger import EntryKind, EntryStatus
from medspa.ports.store import AppointmentNotFound, Stores
from medspa.domain import engine
from medspa.domain.appointment import Appointment as PolicyAppointment
from medspa.domain.fee_breakdown import FeeBreakdown
from medspa.domain.keys import spa_of
from medspa.domain.runs import run_name
from medspa.money import Money
from medspa.messages.render import AppointmentContext
from medspa.policy.loader import PolicyPacks
from medspa.policy.schema import FeeReason, PolicyPack
from medspa.ports import BookingSiteEvents, Counted, Executions, Metrics
from medspa.ports.metrics import NOT_COUNTED
from medspa.services import balances, prepayment
from medspa.services.notifications import NotificationService

Action = Literal["send_message", "auto_cancel", "decide_attendance", "settle_fee", "retry_fee", "count_strike",
                 "credit_prepayment", "note_late_arrival", "release_fee", "check_card", "skip_card_check",
                 "tell_balance_due", "tell_requirements_unmet", "continue_as_new"]
LATE_ARRIVAL = "late_arrival"
CARD_CHECK = "card_check"
MAX_RUN = timedelta(days=350)  # a Standard execution may live a year; hand over well before
CHAINED: frozenset[str] = frozenset({"send_message", "auto_cancel", "decide_attendance", "count_strike",
                                     "credit_prepayment", "note_late_arrival", "tell_balance_due",
                                     "tell_requirements_unmet"})
MAX_CHAIN = 24  # steps one invocation takes; past it the state machine routes the next one as a task
PREPAYMENT_CREDIT = prepayment.CREDIT
_OUTCOMES: dict[str, engine.Outcome] = {outcome: outcome for outcome in get_args(engine.Outcome)}


class StepRequest(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    appointment_id: str = Field(min_length=1)
    booking_version: int = Field(ge=0)
    revision: int = Field(0, ge=0)
    action: Literal["plan"] | Action = "plan"
    key: str | None = None
    reason: str | None = None
    attempt: int | None = None
    continuation: int = Field(0, ge=0)
    execution_started_at: AwareDatetime | None = None
    in_loop: bool = Field(True, description="False for a step outside the lifecycle's loop (a waiver's notice, a "
                                            "hand-over): it is taken alone, nothing chained, nothing planned")

    @classmethod
    def run_of(cls, stored: Appointment) -> StepRequest:
        """A step of the run that acts for ``stored`` (``Appointment.run_identity``)."""
        booking_version, revision = stored.run_identity
        return cls(appointment_id=stored.appointment_id, booking_version=booking_version, revision=revision)

    @model_validator(mode="after")
    def _names_what_the_step_needs(self) -> StepRequest:
        """A step of the loop without the key or reason it acts on fails where the execution shows it, rather
        than acting on an empty default. Outside the loop, a message without a key is the step before saying
        there is nothing to tell (a waiver that found nothing charged or owed)."""
        needed = {"send_message": "key", "tell_balance_due": "key", "tell_requirements_unmet": "key",
                  "count_strike": "reason"}.get(self.action)
        nothing_to_tell = self.action == "send_message" and not self.in_loop
        if needed is not None and not getattr(self, needed) and not nothing_to_tell:
            raise ValueError(f"{needed}: required for {self.action}")
        return self


class NextAction(BaseModel):
    model_config = ConfigDict(defer_build=True)

    action: Action
    at: AwareDatetime
    key: str | None = None
    kind: str | None = None
    reason: str | None = None
    attempt: int | None = None
    deferred: bool = Field(False, description="A fee that waits until ``at`` (rebooking the same day would waive it)")


class StepResult(BaseModel):
    """What one act did, for the execution history (no message text, no contact details)."""

    model_config = ConfigDict(defer_build=True)

    done: str
    detail: dict[str, object] = {}


class Plan(BaseModel):
    """The state machine's view after a wake-up; timestamps serialise as ``...Z`` for Wait states."""

    model_config = ConfigDict(defer_build=True)

    current: bool = Field(description="False when a newer revision of the booking supersedes this run")
    status: AppointmentStatus
    next: NextAction | None = None
    why_done: str | None = None
    did: list[StepResult] = Field([], description="The steps this task took before planning, in order")


def requirements_key(stored: Appointment) -> str:
    """Once per visit time: a booking moved to a new time is checked again."""
    return message_key("requirements_unmet", stored.starts_at)


def message_key(kind: str, starts_at: datetime | None = None) -> str:
    """Reminders and requests are per visit time (a reschedule earns new ones); notices are per appointment."""
    return f"{kind}@{_minute(starts_at, starts_at.utcoffset())}" if starts_at is not None else kind


@lru_cache(maxsize=4096)
def _minute(starts_at: datetime, offset: timedelta | None) -> str:
    """A visit time as its keys name it. Every plan names each of its visit's steps again; the offset is part
    of the key because equal instants in two zones are equal datetimes but name different wall minutes."""
    return f"{starts_at:%Y-%m-%dT%H:%MZ}"


class _VisitTimes(NamedTuple):
    """Where the engine puts a visit's timed steps, given the booking version as stored: the same for every
    plan of that version, which asks for them at every wake-up."""

    reminders: tuple[engine.ScheduledReminder, ...]
    confirmation: engine.ConfirmationSchedule
    no_show_at: datetime


_MESSAGE_COUNTED = {"sent": Counted.MESSAGE_SENT, "failed": Counted.MESSAGE_FAILED,
                    "skipped_opted_out": Counted.MESSAGE_SKIPPED, "skipped_no_contact": Counted.MESSAGE_SKIPPED}


def _z(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


class LifecycleService:
    def __init__(self, store: Stores, packs: Mapping[str, PolicyPack], notifications: NotificationService | None = None,
                 booking_site: BookingSiteEvents | None = None, executions: Executions | None = None,
                 metrics: Metrics = NOT_COUNTED) -> None:
        self._store = store
        self._metrics = metrics
        self._executions = executions
        self._packs = PolicyPacks.of(packs)
        self._notifications = notifications
        self._booking_site = booking_site
        self._times = lru_cache(maxsize=4096)(self._times_of)
        self._card_check_at = lru_cache(maxsize=4096)(self._card_check_of)

    # ------------------------------------------------------------------------------ plan

    def take(self, request: StepRequest, now: datetime) -> Plan:
        """The lifecycle function's task: the step it woke for (none when ``action`` is ``plan``), then every
        step of its own due by ``now``, then the plan. A retry of the task repeats the chain: each step is
        idempotent, so what was done is found done."""
        did = [] if request.action == "plan" else [self.act(request, now)]
        plan = self.plan(request, now)
        while (plan.next is not None and plan.next.action in CHAINED and plan.next.at <= now
               and len(did) < MAX_CHAIN):
            step = plan.next
            did.append(self.act(request.model_copy(update={
                "action": step.action, "key": step.key, "reason": step.reason, "attempt": step.attempt}), now))
            plan = self.plan(request, now)
        return plan.model_copy(update={"did": did})

    def plan(self, request: StepRequest, now: datetime) -> Plan:
        stored = self._current(request)
        if stored is None:
            latest = self._store.appointments.get(request.appointment_id)
            return Plan(current=False, status=latest.status if latest else AppointmentStatus.CANCELLED)
        upcoming = self.next_step(stored, now)
        if upcoming is None:
            return Plan(current=True, status=stored.status, why_done=self._why_done(stored))
        started = request.execution_started_at
        if started is not None and upcoming.at > started + MAX_RUN:
            upcoming = NextAction(action="continue_as_new", at=_z(started + MAX_RUN))
        return Plan(current=True, status=stored.status, next=upcoming)

    def next_step(self, stored: Appointment, now: datetime) -> NextAction | None:
        """The appointment's one next step as of ``now``. The intake compares it before and after an event: a
        run waiting for the same step keeps waiting, and reads what changed when it wakes."""
        upcoming = self._money_due(stored, now) or self._next_timed(stored)
        if upcoming is None or not upcoming.at.microsecond:
            return upcoming  # each candidate is built afresh for this call: nobody else holds it
        return upcoming.model_copy(update={"at": _z(upcoming.at)})

    def _current(self, request: StepRequest) -> Appointment | None:
        stored = self._store.appointments.get(request.appointment_id)
        if stored is None:
            raise AppointmentNotFound(request.appointment_id)
        if stored.run_identity != (request.booking_version, request.revision):
            return None
        return stored

    def _money_due(self, stored: Appointment, now: datetime) -> NextAction | None:
        for reason in self._fee_reasons(stored, now):
            if reason not in stored.fees:
                return NextAction(action="settle_fee", at=now, reason=reason)
        pack = self._packs.for_visit(stored)
        client = self._store.clients.get(stored.client_id)
        reasons = self._fee_reasons(stored, now, include_waived=False)
        counted = {s.reason for s in client.strikes if s.appointment_id == stored.appointment_id} \
            if client and reasons else set()  # a client's strikes grow with their visits; most plans have no fee
        for reason in reasons:
            if engine.strike_for(pack, reason) and reason not in counted:
                return NextAction(action="count_strike", at=now, reason=reason)
        released = self._fees_released(stored)
        if released:
            return NextAction(action="release_fee", at=now, reason=released[0])
        if self._late_arrival_unnoted(stored):
            return NextAction(action="note_late_arrival", at=now)
        if self._credit_owed(stored):
            return NextAction(action="credit_prepayment", at=now)
        trigger = balances.due_trigger(stored)
        if trigger and balances.told_key(trigger) not in stored.told_booking_site and balances.owed(client):
            return NextAction(action="tell_balance_due", at=now, key=balances.told_key(trigger))
        if self._requirements_unmet(stored, client) and requirements_key(stored) not in stored.told_booking_site:
            return NextAction(action="tell_requirements_unmet", at=now, key=requirements_key(stored))
        return None

    def _requirements_unmet(self, stored: Appointment, client: Client | None) -> list[str]:
        """What the pack asks of this booking (``engine.booking_requirements``) that it lacks: a card on file
        (or, where the pack takes one, a gift certificate) to guarantee it, and full prepayment from a client
        the strikes flagged (a flag staff cleared asks for none). Restricted booking times are the booking
        site's to apply; they are told, never judged here."""
        if stored.status not in OPEN_STATUSES or client is None:
            return []
        payment, unmet = stored.payment, []
        has_card = payment.card_on_file or bool(client.stripe_customer_id and client.default_payment_method_id)
        if has_card and not client.prepay_required:  # nothing the pack could ask is missing; asked at every plan
            return []
        needed = engine.booking_requirements(self._packs.for_visit(stored), stored.party_size, client.strike_count)
        if needed.card_on_file and not has_card and not (needed.gift_certificate_accepted and payment.gift_certificate):
            unmet.append("card_on_file")
        prepaid = payment.prepaid.amount if payment.prepaid is not None else 0
        if needed.prepay_in_full and client.prepay_required and prepaid < stored.service.price.amount:
            unmet.append("prepay_in_full")
        return unmet

    def _fee_reasons(self, stored: Appointment, now: datetime | None = None, include_waived: bool = True) -> list[FeeReason]:
        """Violations of this visit, in the order they happened; a same-day reschedule's waived fee is
        charged nothing (and is no strike) but is still recorded as settled-with-no-fee. Once the system
        has auto-cancelled the visit or called it a no-show, a cancel the booking site delivers afterwards
        is bookkeeping, not a second violation, even when the client acted earlier: one missed visit is
        one fee. A client whose check-in reaches the system after it called the no-show was there after
        all: no no-show, and an arrival too late for the visit is judged as the late reschedule it is.
        With ``now``, a fee that waits for the end of the same-day rebooking window is not due yet."""
        decided = stored.outcome if stored.outcome and stored.outcome.status != "attended" else None
        there = self._there_after_all(stored)
        reasons: list[FeeReason] = [v.reason for v in stored.facts.violations if (include_waived or not v.fee_waived)
                   and (decided is None or v.reason in stored.fees or there and v.cause == "late_arrival")
                   and (now is None or v.fee_waived or v.fee_due_at is None or v.fee_due_at <= now)]
        if (stored.status is AppointmentStatus.NO_SHOW or decided is not None and decided.status == "no_show") \
                and not there:
            reasons.append("no_show")
        return reasons

    def _there_after_all(self, stored: Appointment) -> bool:
        """The booking site says the client came: checked in or served, or arrived too late and the visit was
        moved (the arrival's violation outlives the reschedule that resets the check-in)."""
        came = stored.booking_status in (AppointmentStatus.CHECKED_IN, AppointmentStatus.COMPLETED) or any(
            v.cause == "late_arrival" for v in stored.facts.violations)
        return came and not self._packs.for_visit(stored).no_show.fee_stands_after_check_in

    def _fees_released(self, stored: Appointment) -> list[str]:
        """Fees already taken that the visit no longer owes: the no-show of a client who was there after all,
        and anything but a violation still standing once the spa says it served the visit (an arrival too
        late for the visit is forgiven by serving it). Released once: the fee's state becomes waived."""
        if not stored.fees:
            return []
        owed = set(self._fee_reasons(stored))
        return [reason for reason, fee in stored.fees.items()
                if fee.outcome in ("settled", "outstanding") and reason not in owed
                and (reason == "no_show" and self._there_after_all(stored)
                     or stored.booking_status is AppointmentStatus.COMPLETED)]

    @staticmethod
    def _late_arrival_unnoted(stored: Appointment) -> bool:
        """A late check-in the client and the front desk have not been told the pack's outcome of yet."""
        return (stored.facts.late_arrival is not None and stored.booking_status is AppointmentStatus.CHECKED_IN
                and stored.message(message_key(LATE_ARRIVAL, stored.starts_at)) is None)

    def _next_timed(self, stored: Appointment) -> NextAction | None:
        retries = [
            NextAction(action="retry_fee", at=fee.next_retry_at, reason=reason, attempt=fee.attempt + 1)
            for reason, fee in stored.fees.items() if fee.outcome == "outstanding" and fee.next_retry_at
        ]
        deferred = [NextAction(action="settle_fee", at=v.fee_due_at, reason=v.reason, deferred=True)
                    for v in stored.facts.violations
                    if v.fee_due_at is not None and not v.fee_waived and v.reason not in stored.fees]
        return min(self._timed_steps(stored) + retries + deferred, key=lambda c: c.at, default=None)

    def _timed_steps(self, stored: Appointment, logged: tuple[str, ...] = ("due",)) -> list[NextAction]:
        """Logged messages in one of the ``logged`` statuses, plus an open visit's steps."""
        steps = [NextAction(action="send_message", at=m.due_at, key=m.key, kind=m.kind)
                 for m in stored.messages if m.status in logged]
        return steps + (self._visit_steps(stored) if stored.status in OPEN_STATUSES else [])

    def _visit_steps(self, stored: Appointment) -> list[NextAction]:
        """Reminders, the confirmation request, the auto-cancel deadline and the attendance decision.

        Times come from the engine as of when this booking version was stored, so a step retried or
        woken a little late is still taken, never silently dropped.
        """
        visit, planned_from = stored.to_domain(), stored.version_stored_at or stored.updated_at
        times = self._times(visit, planned_from)
        steps: list[NextAction] = []
        for reminder in times.reminders:
            kind = f"reminder_{reminder.kind}"
            key = message_key(kind, stored.starts_at)
            if stored.message(key) is None:
                steps.append(NextAction(action="send_message", at=reminder.send_at, key=key, kind=kind))
        confirmation = times.confirmation
        if not stored.confirmed:
            key = message_key("confirmation_request", stored.starts_at)
            if confirmation.request_at is not None and stored.message(key) is None:
                steps.append(NextAction(action="send_message", at=confirmation.request_at, key=key,
                                        kind="confirmation_request"))
            if confirmation.auto_cancel and confirmation.deadline is not None:
                steps.append(NextAction(action="auto_cancel", at=confirmation.deadline))
        check_at = None if stored.card_checked else self._card_check_at(visit, planned_from)
        if check_at is not None:
            steps.append(NextAction(action="check_card", at=check_at, key=message_key(CARD_CHECK, stored.starts_at)))
        steps.append(NextAction(action="decide_attendance", at=times.no_show_at))
        return steps

    def _times_of(self, visit: PolicyAppointment, planned_from: datetime) -> _VisitTimes:
        pack = self._packs.for_visit(visit)
        return _VisitTimes(reminders=tuple(engine.reminder_times(pack, visit, planned_from)),
                           confirmation=engine.confirmation_schedule(pack, visit, planned_from),
                           no_show_at=engine.no_show_decision_time(pack, visit))

    def _card_check_of(self, visit: PolicyAppointment, planned_from: datetime) -> datetime | None:
        return engine.card_check_time(self._packs.for_visit(visit), visit, planned_from)

    def card_check_due(self, stored: Appointment) -> datetime | None:
        """When the card on file is to be checked for the visit's current time; ``None`` once it was (or
        was given up on), or when the engine wants no check (no fee would reach the card, booked too late)."""
        if stored.card_checked or stored.status not in OPEN_STATUSES:
            return None
        return self._card_check_at(stored.to_domain(), stored.version_stored_at or stored.updated_at)

    @staticmethod
    def _why_done(stored: Appointment) -> str:
        if stored.status in (AppointmentStatus.CHECKED_IN, AppointmentStatus.COMPLETED):
            late = stored.facts.late_arrival
            if late is not None and late.status == "must_reschedule" and stored.status is AppointmentStatus.CHECKED_IN:
                return "Client arrived too late for the visit: it must be rescheduled"
            return "Visit attended"
        if stored.outcome is not None and stored.outcome.status == "attended":
            return "Visit attended"
        return f"Appointment {stored.status.value.replace('_', ' ')}: nothing left to do"

    # ------------------------------------------------------------------------------ acts

    def act(self, request: StepRequest, now: datetime) -> StepResult:
        stored = self._current(request)
        if stored is None:
            return StepResult(done="superseded: a newer booking revision has its own execution")
        if request.action == "send_message":
            if request.key is None:
                return StepResult(done="nothing to tell the client")
            return self._send_message(stored, request.key, now)
        if request.action == "auto_cancel":
            return self._auto_cancel(stored, now)
        if request.action == "decide_attendance":
            return self._decide_attendance(stored, now)
        if request.action == "count_strike":
            return self._count_strike(stored, str(request.reason), now)
        if request.action == "credit_prepayment":
            return self._credit_prepayment(stored, now)
        if request.action == "note_late_arrival":
            return self._note_late_arrival(stored, now)
        if request.action == "skip_card_check":
            return self._skip_card_check(stored, request.reason, now)
        if request.action == "tell_requirements_unmet":
            return self._tell_requirements_unmet(stored, str(request.key), now)
        if request.action == "tell_balance_due":
            return self._tell_balance_due(stored, str(request.key), now)
        if request.action == "continue_as_new":
            return self._continue(stored, request.continuation + 1, now)
        raise ValueError(f"{request.action} is not a lifecycle step (the settlement function takes fees and "
                         f"the card check: it alone holds the Stripe key)")

    def _skip_card_check(self, stored: Appointment, error: str | None, now: datetime) -> StepResult:
        """The check could not be made (Stripe out past the step's retries, or a fault): recorded as not
        done, so the plan moves on. The card check is advice; it must never hold up the visit's reminders,
        the attendance decision or the fee itself."""
        if self.card_check_due(stored) is None:
            return StepResult(done="no card check to give up")
        self._store.appointments.record_card_check(stored.appointment_id, CardCheck(
            starts_at=stored.starts_at, outcome="not_checked", checked_at=now, code=error or "check_failed"))
        return StepResult(done="card on file not checked: the check failed", detail={"error": error})

    def _wanted_message(self, stored: Appointment, key: str) -> NextAction | None:
        """The message ``key`` if the plan still wants it sent (a "sending" one included, to settle it)."""
        return next((c for c in self._timed_steps(stored, logged=("due", "sending"))
                     if c.action == "send_message" and c.key == key), None)

    def _send_message(self, stored: Appointment, key: str, now: datetime) -> StepResult:
        wanted = self._wanted_message(stored, key)
        logged = stored.message(key)
        if wanted is None or logged is not None and logged.status not in ("due", "sending"):
            return StepResult(done="nothing to send", detail={"key": key})
        if logged is not None and logged.status == "sending":
            # An earlier attempt died after calling the provider, or before: unknowable. Not resent.
            self._store.appointments.record_message(stored.appointment_id, logged.model_copy(update={
                "status": "failed", "results": (MessageResult(channel="unknown", status="interrupted"),)}), now)
            return StepResult(done="not resent: an earlier attempt was interrupted", detail={"key": key})
        kind = wanted.kind or key
        fee = logged.fee if logged is not None else None
        breakdown = logged.fee_breakdown if logged is not None else None
        sending = MessageLog(key=key, kind=kind, due_at=wanted.at, status="sending", fee=fee, fee_breakdown=breakdown)
        self._store.appointments.record_message(stored.appointment_id, sending, now)
        assert self._notifications is not None, "the lifecycle function is built with a notifier"
        client = self._store.clients.get(stored.client_id)
        if client is None:
            results = []
        else:
            context = self._message_context(stored, fee, breakdown, first_name=client.first_name)
            results = self._notifications.notify(client, kind, context, now, key=key)
        deferred = [r.send_after for r in results if r.status == "deferred_quiet_hours" and r.send_after]
        if deferred:
            self._store.appointments.record_message(stored.appointment_id, sending.model_copy(update={
                "status": "due", "due_at": min(deferred)}), now)
            return StepResult(done="deferred to the end of quiet hours", detail={"key": key,
                                                                                 "until": min(deferred).isoformat()})
        statuses = {r.status for r in results}
        status = next((s for s in ("sent", "queued", "failed") if s in statuses), "skipped")
        log = sending.model_copy(update={"status": status, "sent_at": now if status == "sent" else None,
                                         "results": tuple(MessageResult(channel=str(r.channel), status=r.status,
                                                                        message_id=r.message_id, error=r.error)
                                                          for r in results)})
        self._store.appointments.record_message(stored.appointment_id, log, now)
        for result in results:
            if (counted := _MESSAGE_COUNTED.get(result.status)) is not None:
                self.count(counted, stored, channel=str(result.channel))
        return StepResult(done=f"{kind}: {status}", detail={"key": key, "channels": [
            f"{r.channel}:{r.status}" for r in results]})

    def _message_context(self, stored: Appointment, fee: Money | None, breakdown: FeeBreakdown | None, *,
                         first_name: str | None) -> AppointmentContext:
        """The facts a message may state. The cancel-by time and the fee at stake come from the engine,
        the same rules that will judge a cancel, so a reminder never promises what the system won't do."""
        pack, appointment = self._packs.for_visit(stored), stored.to_domain()
        late = stored.facts.late_arrival
        return AppointmentContext(
            appointment_id=stored.appointment_id, location_id=stored.location_id, starts_at=stored.starts_at,
            policy_version=stored.policy_version, client_first_name=first_name, fee=fee, fee_breakdown=breakdown,
            cancel_by=stored.starts_at - engine.cancellation_window(pack, appointment, "cancel"),
            late_cancel_fee=engine.fee_for(pack, appointment, "late_cancel"),
            late_reschedule_fee=engine.fee_for(pack, appointment, "late_reschedule"),
            minutes_late=late.minutes_late if late else None, hands_on_minutes=late.hands_on_minutes if late else None,
            treatment_ends_at=late.treatment_ends_at if late else None)

    def notify_later(self, stored: Appointment, kind: str, now: datetime, fee: Money | None = None,
                     key: str | None = None, fee_breakdown: FeeBreakdown | None = None) -> bool:
        """Queue a notice; the plan sends it next (or after quiet hours). Queuing twice keeps the first: True
        only the first time, which makes it the place to count what the notice announces."""
        key = key or message_key(kind)
        if stored.message(key) is not None:
            return False
        self._store.appointments.record_message(
            stored.appointment_id, MessageLog(key=key, kind=kind, due_at=now, status="due", fee=fee,
                                              fee_breakdown=fee_breakdown), now)
        return True

    def _auto_cancel(self, stored: Appointment, now: datetime) -> StepResult:
        if stored.confirmed:
            return StepResult(done="confirmed in time: not cancelled")
        updated = self._store.appointments.record_outcome(
            stored.appointment_id, LifecycleOutcome(status="auto_cancelled", revision=stored.revision, at=now))
        if updated.status is not AppointmentStatus.AUTO_CANCELLED:
            return StepResult(done="superseded before the cancel was recorded")
        if self.notify_later(updated, "auto_cancelled", now):
            self.count(Counted.AUTO_CANCELLED, stored)
        self.publish("AppointmentAutoCancelled", f"{stored.appointment_id}:auto-cancelled:r{stored.revision}", {
            **stored.booking_site_ids, "booking_version": stored.booking_version,
            "reason": "not_confirmed_by_deadline", "cancelled_at": now.isoformat(),
            "fee": None, "strike": False,
        })
        return StepResult(done="auto-cancelled: no confirmation by the deadline (no fee, no strike)")

    def _note_late_arrival(self, stored: Appointment, now: datetime) -> StepResult:
        """Tell the client, and the front desk through the booking site, what the pack makes of a late check-in:
        the visit shortened to end on time at full price, or too late to go ahead (the late-reschedule fee,
        unless rebooked the same day where the pack waives it)."""
        late = stored.facts.late_arrival
        if late is None or not self._late_arrival_unnoted(stored):
            return StepResult(done="nothing to note about the arrival")
        pack, appointment = self._packs.for_visit(stored), stored.to_domain()
        fee = rebook_by = None
        kind = "late_arrival_shortened"
        if late.status == "must_reschedule":
            fee = engine.fee_for(pack, appointment, "late_reschedule")
            rebook_by = engine.same_day_rebooking_deadline(pack, appointment)
            kind = "late_arrival_reschedule_same_day" if rebook_by else "late_arrival_reschedule"
        self.notify_later(stored, kind, now, fee=fee, key=message_key(LATE_ARRIVAL, stored.starts_at))
        self.publish("LateArrivalRecorded", f"{stored.appointment_id}:late-arrival:{stored.starts_at:%Y%m%dT%H%MZ}", {
            **stored.booking_site_ids, "booking_version": stored.booking_version,
            "arrived_at": stored.facts.arrived_at.isoformat() if stored.facts.arrived_at else None,
            "minutes_late": late.minutes_late, "outcome": late.status, "hands_on_minutes": late.hands_on_minutes,
            "treatment_ends_at": late.treatment_ends_at.isoformat(),
            "late_reschedule_fee": fee.model_dump() if fee else None,
            "fee_waived_if_rebooked_before": rebook_by.isoformat() if rebook_by else None})
        return StepResult(done=f"late arrival ({late.minutes_late} min): {late.status.replace('_', ' ')}",
                          detail={"kind": kind})

    def _decide_attendance(self, stored: Appointment, now: datetime) -> StepResult:
        status = "attended" if stored.status in (AppointmentStatus.CHECKED_IN, AppointmentStatus.COMPLETED) else "no_show"
        updated = self._store.appointments.record_outcome(
            stored.appointment_id, LifecycleOutcome(status=status, revision=stored.revision, at=now))
        if updated.status is AppointmentStatus.NO_SHOW and stored.status is not AppointmentStatus.NO_SHOW:
            self.count(Counted.NO_SHOW, stored)
        return StepResult(done="client checked in" if status == "attended" else "no-show: not checked in by the "
                          "policy's time")

    def _count_strike(self, stored: Appointment, reason: str, now: datetime) -> StepResult:
        pack = self._packs.for_visit(stored)
        outcome = _OUTCOMES.get(reason)
        if outcome is None or engine.strike_for(pack, outcome) is None:
            return StepResult(done=f"{reason} is not a strike at {pack.location_id}")
        at = next((v.decided_at for v in stored.facts.violations if v.reason == reason), None) or (
            stored.outcome.at if stored.outcome else now)
        clients = self._store.clients
        count, added = clients.add_strike(stored.client_id, stored.appointment_id, reason, at)
        if added:
            self.count(Counted.STRIKE_RECORDED, stored)
        # Whether this visit's violation is a strike is the booked version's rule; what the count leads to
        # restricts the client's bookings from now on, which the current pack governs (as at booking time).
        pack = self._packs[stored.location_id]
        self.publish("ClientStrikeRecorded", f"{stored.appointment_id}:strike:{reason}", {
            **stored.booking_site_ids, "reason": reason, "strike_count": count,
            "threshold": pack.strikes.threshold if pack.strikes else None,
        })
        consequences = engine.strike_consequences(pack, count)
        if not consequences:
            return StepResult(done=f"strike {count} recorded ({reason})", detail={"strike_count": count})
        client = clients.get(stored.client_id)
        if "prepay_required" in consequences and client is not None and not client.prepay_required:
            clients.set_prepay_required(stored.client_id, now)
            self.count(Counted.PREPAY_REQUIRED, stored)
            self.notify_later(stored, "prepay_required", now)
        site = stored.booking_site_ids
        self.publish("ClientBookingRestricted", f"{stored.client_id}:restricted:{count}", {
            "spa_id": site["spa_id"], "client_id": site["client_id"], "strike_count": count,
            "prepay_required": "prepay_required" in consequences,
            "restrict_booking_times": "restrict_booking_times" in consequences,
        })
        return StepResult(done=f"strike {count} recorded ({reason}): {', '.join(consequences)}",
                          detail={"strike_count": count})

    @staticmethod
    def _credit_due(stored: Appointment) -> Money | None:
        """The prepayment owed back as store credit: the fold's (cancelled or moved in time), or what a visit
        the system auto-cancelled still holds (the spa's cancel, not the client's violation: like a spa
        cancel at the booking site, it forfeits nothing)."""
        credit = stored.facts.prepaid_credit
        if credit is None and stored.status is AppointmentStatus.AUTO_CANCELLED:
            credit = stored.payment.prepaid
        return credit if credit is not None and not credit.is_zero else None

    def _credit_owed(self, stored: Appointment) -> bool:
        """A credit is due and not yet finished (entry written, balance raised, client told). A fee that
        forfeited the prepayment first (a refold after out-of-order events can owe a credit for money
        already forfeited) leaves nothing to credit: it is taken once."""
        if self._credit_due(stored) is None:
            return False
        taken = prepayment.movements(self._store, stored.appointment_id)
        entry = taken.get(prepayment.CREDIT)
        if entry is None:
            return not taken
        return entry.status is EntryStatus.PENDING or stored.message(prepayment.CREDITED_NOTICE) is None

    def _credit_prepayment(self, stored: Appointment, now: datetime) -> StepResult:
        """Store credit, ledger first: the entry, then the client's balance (keyed by the entry), then the
        notice and the booking site, whose checkout is where the client spends it."""
        credit = self._credit_due(stored)
        if credit is None or not self._credit_owed(stored):
            return StepResult(done="nothing to credit: the prepayment was already credited or forfeited")
        ledger = self._store.ledger
        entry = ledger.record_intent(appointment_id=stored.appointment_id, client_id=stored.client_id,
                                     purpose=prepayment.CREDIT, kind=EntryKind.CREDIT, amount=credit, now=now)
        self._store.clients.add_credit(stored.client_id, entry.amount, entry.entry_id, now)
        if entry.status is EntryStatus.PENDING:
            ledger.record_outcome(entry.entry_id, EntryStatus.SUCCEEDED, now)
        self.notify_later(stored, prepayment.CREDITED_NOTICE, now, fee=entry.amount)
        self.publish("PrepaymentCredited", f"{stored.appointment_id}:prepayment:credited", {
            **stored.booking_site_ids, "credit": entry.amount.model_dump(), "ledger_entry": entry.entry_id})
        return StepResult(done=f"prepayment {entry.amount} credited for future services",
                          detail={"ledger_entry": entry.entry_id})

    def _tell_balance_due(self, stored: Appointment, key: str, now: datetime) -> StepResult:
        """What the client owes is due at this visit (Glow: "must be paid on the client's next visit"), and the
        desk collects only what the booking site shows it: told once per visit and trigger, published before
        it is remembered, so a retry repeats the same event id rather than losing it (``services.balances``)."""
        trigger = balances.due_trigger(stored)
        balance = balances.owed(self._store.clients.get(stored.client_id))
        if trigger is None or key != balances.told_key(trigger) or key in stored.told_booking_site:
            return StepResult(done="the booking site was already told what is owed", detail={"key": key})
        if not balance:
            return StepResult(done="nothing owed: nothing to tell the booking site", detail={"key": key})
        self.publish("OutstandingBalanceDue", balances.due_event_id(stored, trigger),
                     balances.due_detail(self._store, stored, balance, trigger))
        self._store.appointments.record_told(stored.appointment_id, key, now)
        return StepResult(done=f"booking site told: {', '.join(str(m) for m in balance)} owed, due at this visit",
                          detail={"key": key})

    def _tell_requirements_unmet(self, stored: Appointment, key: str, now: datetime) -> StepResult:
        """The booking site saved a booking the policy would not have taken as it is: the front desk is told what
        it lacks, once per visit time, and decides (ask for the card or the prepayment, or cancel). Nothing is
        cancelled here: a booking the spa accepted is the spa's to refuse."""
        client = self._store.clients.get(stored.client_id)
        unmet = self._requirements_unmet(stored, client)
        if key != requirements_key(stored) or key in stored.told_booking_site or not unmet:
            return StepResult(done="the booking meets the policy's requirements, or the booking site was told",
                              detail={"key": key})
        assert client is not None
        needed = engine.booking_requirements(self._packs.for_visit(stored), stored.party_size, client.strike_count)
        self.publish("BookingRequirementsUnmet", f"{stored.appointment_id}:{key}", {
            **stored.booking_site_ids, "booking_version": stored.booking_version,
            "starts_at": stored.starts_at.isoformat(), "unmet": unmet,
            "requirements": needed.model_dump() | {"prepay_in_full": needed.prepay_in_full and client.prepay_required}})
        self._store.appointments.record_told(stored.appointment_id, key, now)
        return StepResult(done=f"booking site told the booking lacks: {', '.join(unmet)}", detail={"key": key})

    def _continue(self, stored: Appointment, continuation: int, now: datetime) -> StepResult:
        assert self._executions is not None, "the lifecycle function is built with the executions adapter"
        booking_version, revision = stored.run_identity
        name = stored.run.name if stored.run else run_name(stored.appointment_id, booking_version, revision,
                                                           stored.version_revision)
        started = self._executions.start(stored.appointment_id, booking_version, revision, name=name,
                                         continuation=continuation)
        self._store.appointments.set_execution(stored.appointment_id, stored.booking_version, started.name,
                                               started.arn, now, revision=stored.revision)
        return StepResult(done=f"continued in {started.name}", detail={"execution": started.name})

    def count(self, what: Counted, stored: Appointment, channel: str | None = None) -> None:
        self._metrics.count(what, spa_of(stored.appointment_id), channel)

    def publish(self, detail_type: str, event_id: str, detail: dict[str, object]) -> None:
        if self._booking_site is not None:
            self._booking_site.publish(detail_type, event_id, detail)
