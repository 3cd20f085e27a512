"""What an appointment's execution does: plan the next step from the stored facts, then take it.

The state machine is a loop: *plan* returns the one next action and when it is due, the execution
sleeps until then (a Wait state named for the action), then *acts*. Every wake-up re-reads the
appointment, because the execution may have slept for days: if the booking site has since sent a newer
version, this execution is stale and does nothing; the newer revision has an execution of its own.

Planning is a pure reading of the store plus the policy engine, so a Step Functions retry of any step
gets the same answer. Acting is idempotent per step:

* a message is logged under a key (``reminder_48h@<visit start>``, ``no_show_fee_charged``...) as
  *sending* before the provider is called and *sent* with its message ids after; a retry that finds
  *sending* does not send again (the provider has no idempotency key, so "maybe sent" is not resent);
* fees go through the ledger (``SettlementService``), strikes are keyed by appointment and reason,
  the lifecycle's own outcome (auto-cancel, no-show) is written for the revision it was planned from.

Order of work, every time the plan runs: money first (fees due now, then strikes, then a prepayment
owed back as credit), then messages that are due, then the timed steps of an open visit (reminders,
the confirmation request, the auto-cancel deadline, the attendance decision) and dunning retries,
earliest first.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from medspa.adapters.booking_site import BookingSiteEvents
from medspa.adapters.executions import LifecycleExecutions, run_name
from medspa.adapters.store import (
    OPEN_STATUSES,
    Appointment,
    AppointmentNotFound,
    AppointmentStatus,
    EntryKind,
    EntryStatus,
    LifecycleOutcome,
    MessageLog,
    MessageResult,
    Store,
)
from medspa.domain import engine
from medspa.domain.fee_breakdown import FeeBreakdown
from medspa.domain.money import Money
from medspa.messages.render import AppointmentContext
from medspa.policy.schema import PolicyPack
from medspa.services import prepayment
from medspa.services.notifications import NotificationService

Action = Literal["send_message", "auto_cancel", "decide_attendance", "settle_fee", "retry_fee", "count_strike",
                 "credit_prepayment", "continue_as_new"]
MAX_RUN = timedelta(days=350)  # a Standard execution may live a year; hand over well before
PREPAYMENT_CREDIT = prepayment.CREDIT


class StepRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    appointment_id: str = Field(min_length=1)
    booking_version: int = Field(ge=0)
    revision: int = Field(0, ge=0)
    action: Literal["plan"] | Action = "plan"
    key: str | None = None
    reason: str | None = None
    attempt: int | None = None
    continuation: int = Field(0, ge=0)
    execution_started_at: AwareDatetime | None = None


class NextAction(BaseModel):
    action: Action
    at: AwareDatetime
    key: str | None = None
    kind: str | None = None
    reason: str | None = None
    attempt: int | None = None


class Plan(BaseModel):
    """The state machine's view after a wake-up; timestamps serialise as ``...Z`` for Wait states."""

    current: bool = Field(description="False when a newer revision of the booking supersedes this run")
    status: AppointmentStatus
    next: NextAction | None = None
    why_done: str | None = None


class StepResult(BaseModel):
    """What one act did, for the execution history (no message text, no contact details)."""

    done: str
    detail: dict[str, object] = {}


def message_key(kind: str, starts_at: datetime | None = None) -> str:
    """Reminders and requests are per visit time (a reschedule earns new ones); notices are per appointment."""
    return f"{kind}@{starts_at:%Y-%m-%dT%H:%MZ}" if starts_at is not None else kind


def _z(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


class LifecycleService:
    def __init__(self, store: Store, packs: Mapping[str, PolicyPack], notifications: NotificationService | None = None,
                 booking_site: BookingSiteEvents | None = None, executions: LifecycleExecutions | None = None) -> None:
        self._store = store
        self._executions = executions
        self._packs = packs
        self._notifications = notifications
        self._booking_site = booking_site

    # ------------------------------------------------------------------------------ plan

    def plan(self, request: StepRequest, now: datetime) -> Plan:
        stored = self._current(request)
        if stored is None:
            latest = self._store.appointments.get(request.appointment_id)
            return Plan(current=False, status=latest.status if latest else AppointmentStatus.CANCELLED)
        upcoming = self._money_due(stored, now) or self._next_timed(stored)
        if upcoming is None:
            return Plan(current=True, status=stored.status, why_done=self._why_done(stored))
        started = request.execution_started_at
        if started is not None and upcoming.at > started + MAX_RUN:
            upcoming = NextAction(action="continue_as_new", at=started + MAX_RUN)
        return Plan(current=True, status=stored.status, next=upcoming.model_copy(update={"at": _z(upcoming.at)}))

    def _current(self, request: StepRequest) -> Appointment | None:
        stored = self._store.appointments.get(request.appointment_id)
        if stored is None:
            raise AppointmentNotFound(request.appointment_id)
        if stored.booking_version != request.booking_version or stored.revision != request.revision:
            return None
        return stored

    def _money_due(self, stored: Appointment, now: datetime) -> NextAction | None:
        for reason in self._fee_reasons(stored):
            if reason not in stored.fees:
                return NextAction(action="settle_fee", at=now, reason=reason)
        pack = self._packs[stored.location_id]
        client = self._store.clients.get(stored.client_id)
        counted = {(s.appointment_id, s.reason) for s in client.strikes} if client else set()
        for reason in self._fee_reasons(stored, include_waived=False):
            if engine.strike_for(pack, reason) and (stored.appointment_id, reason) not in counted:
                return NextAction(action="count_strike", at=now, reason=reason)
        if self._credit_owed(stored):
            return NextAction(action="credit_prepayment", at=now)
        return None

    @staticmethod
    def _fee_reasons(stored: Appointment, include_waived: bool = True) -> list[str]:
        """Violations of this visit, in the order they happened; a same-day reschedule's waived fee is
        charged nothing (and is no strike) but is still recorded as settled-with-no-fee. Once the system
        has auto-cancelled the visit or called it a no-show, a cancel the booking site delivers afterwards
        is bookkeeping, not a second violation, even when the client acted earlier: one missed visit is
        one fee."""
        decided = stored.outcome if stored.outcome and stored.outcome.status != "attended" else None
        reasons = [v.reason for v in stored.facts.violations if (include_waived or not v.fee_waived)
                   and (decided is None or v.reason in stored.fees)]
        if stored.status is AppointmentStatus.NO_SHOW or decided is not None and decided.status == "no_show":
            reasons.append("no_show")
        return reasons

    def _next_timed(self, stored: Appointment) -> NextAction | None:
        retries = [
            NextAction(action="retry_fee", at=fee.next_retry_at, reason=reason, attempt=fee.attempt + 1)
            for reason, fee in stored.fees.items() if fee.outcome == "outstanding" and fee.next_retry_at
        ]
        return min(self._timed_steps(stored) + retries, key=lambda c: c.at, default=None)

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
        pack, appointment = self._packs[stored.location_id], stored.to_domain()
        planned_from = stored.version_stored_at or stored.updated_at
        steps: list[NextAction] = []
        for reminder in engine.reminder_times(pack, appointment, planned_from):
            kind = f"reminder_{reminder.kind}"
            key = message_key(kind, stored.starts_at)
            if stored.message(key) is None:
                steps.append(NextAction(action="send_message", at=reminder.send_at, key=key, kind=kind))
        confirmation = engine.confirmation_schedule(pack, appointment, planned_from)
        if not stored.confirmed:
            key = message_key("confirmation_request", stored.starts_at)
            if confirmation.request_at is not None and stored.message(key) is None:
                steps.append(NextAction(action="send_message", at=confirmation.request_at, key=key,
                                        kind="confirmation_request"))
            if confirmation.auto_cancel and confirmation.deadline is not None:
                steps.append(NextAction(action="auto_cancel", at=confirmation.deadline))
        steps.append(NextAction(action="decide_attendance", at=engine.no_show_decision_time(pack, appointment)))
        return steps

    @staticmethod
    def _why_done(stored: Appointment) -> str:
        if stored.status in (AppointmentStatus.CHECKED_IN, AppointmentStatus.COMPLETED):
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
            return self._send_message(stored, request.key or "", now)
        if request.action == "auto_cancel":
            return self._auto_cancel(stored, now)
        if request.action == "decide_attendance":
            return self._decide_attendance(stored, now)
        if request.action == "count_strike":
            return self._count_strike(stored, request.reason or "", now)
        if request.action == "credit_prepayment":
            return self._credit_prepayment(stored, now)
        if request.action == "continue_as_new":
            return self._continue(stored, request.continuation + 1, now)
        raise ValueError(f"{request.action} is not a lifecycle step (the settlement function takes fees)")

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
            results = self._notifications.notify(client, kind, context, now)
        deferred = [r.send_after for r in results if r.status == "deferred_quiet_hours" and r.send_after]
        if deferred:
            self._store.appointments.record_message(stored.appointment_id, sending.model_copy(update={
                "status": "due", "due_at": min(deferred)}), now)
            return StepResult(done="deferred to the end of quiet hours", detail={"key": key,
                                                                                 "until": min(deferred).isoformat()})
        status = "sent" if any(r.sent for r in results) else (
            "failed" if any(r.status == "failed" for r in results) else "skipped")
        log = sending.model_copy(update={"status": status, "sent_at": now if status == "sent" else None,
                                         "results": tuple(MessageResult(channel=str(r.channel), status=r.status,
                                                                        message_id=r.message_id, error=r.error)
                                                          for r in results)})
        self._store.appointments.record_message(stored.appointment_id, log, now)
        return StepResult(done=f"{kind}: {status}", detail={"key": key, "channels": [
            f"{r.channel}:{r.status}" for r in results]})

    def _message_context(self, stored: Appointment, fee: Money | None, breakdown: FeeBreakdown | None, *,
                         first_name: str | None) -> AppointmentContext:
        """The facts a message may state. The cancel-by time and the fee at stake come from the engine,
        the same rules that will judge a cancel, so a reminder never promises what the system won't do."""
        pack, appointment = self._packs[stored.location_id], stored.to_domain()
        return AppointmentContext(
            appointment_id=stored.appointment_id, location_id=stored.location_id, starts_at=stored.starts_at,
            client_first_name=first_name, fee=fee, fee_breakdown=breakdown,
            cancel_by=stored.starts_at - engine.cancellation_window(pack, appointment, "cancel"),
            late_cancel_fee=engine.fee_for(pack, appointment, "late_cancel"))

    def notify_later(self, stored: Appointment, kind: str, now: datetime, fee: Money | None = None,
                     key: str | None = None, fee_breakdown: FeeBreakdown | None = None) -> None:
        """Queue a notice; the plan sends it next (or after quiet hours). Queuing twice keeps the first."""
        key = key or message_key(kind)
        if stored.message(key) is None:
            self._store.appointments.record_message(
                stored.appointment_id, MessageLog(key=key, kind=kind, due_at=now, status="due", fee=fee,
                                                  fee_breakdown=fee_breakdown), now)

    def _auto_cancel(self, stored: Appointment, now: datetime) -> StepResult:
        if stored.confirmed:
            return StepResult(done="confirmed in time: not cancelled")
        updated = self._store.appointments.record_outcome(
            stored.appointment_id, LifecycleOutcome(status="auto_cancelled", revision=stored.revision, at=now))
        if updated.status is not AppointmentStatus.AUTO_CANCELLED:
            return StepResult(done="superseded before the cancel was recorded")
        self.notify_later(updated, "auto_cancelled", now)
        self.publish("AppointmentAutoCancelled", f"{stored.appointment_id}:auto-cancelled:r{stored.revision}", {
            **stored.booking_site_ids, "booking_version": stored.booking_version,
            "reason": "not_confirmed_by_deadline", "cancelled_at": now.isoformat(),
            "fee": None, "strike": False,
        })
        return StepResult(done="auto-cancelled: no confirmation by the deadline (no fee, no strike)")

    def _decide_attendance(self, stored: Appointment, now: datetime) -> StepResult:
        status = "attended" if stored.status in (AppointmentStatus.CHECKED_IN, AppointmentStatus.COMPLETED) else "no_show"
        self._store.appointments.record_outcome(
            stored.appointment_id, LifecycleOutcome(status=status, revision=stored.revision, at=now))
        return StepResult(done="client checked in" if status == "attended" else "no-show: not checked in by the "
                          "policy's time")

    def _count_strike(self, stored: Appointment, reason: str, now: datetime) -> StepResult:
        pack = self._packs[stored.location_id]
        if engine.strike_for(pack, reason) is None:  # type: ignore[arg-type]
            return StepResult(done=f"{reason} is not a strike at {pack.location_id}")
        at = next((v.decided_at for v in stored.facts.violations if v.reason == reason), None) or (
            stored.outcome.at if stored.outcome else now)
        clients = self._store.clients
        count = clients.add_strike(stored.client_id, stored.appointment_id, reason, at)
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

    def _continue(self, stored: Appointment, continuation: int, now: datetime) -> StepResult:
        assert self._executions is not None, "the lifecycle function is built with the executions adapter"
        started = self._executions.start(stored.appointment_id, stored.booking_version, stored.revision,
                                         name=run_name(stored.appointment_id, stored.booking_version, stored.revision,
                                                       stored.version_revision), continuation=continuation)
        self._store.appointments.set_execution(stored.appointment_id, stored.booking_version, started.name,
                                               started.arn, now, revision=stored.revision)
        return StepResult(done=f"continued in {started.name}", detail={"execution": started.name})

    def publish(self, detail_type: str, event_id: str, detail: dict[str, object]) -> None:
        if self._booking_site is not None:
            self._booking_site.publish(detail_type, event_id, detail)
