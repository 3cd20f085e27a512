"""The lifecycle's money steps: settle a violation's fee, retry a declined one, apply an admin's waiver, record
one Stripe says was paid later.

``SettlementService`` moves the money exactly once; this records where the fee stands on the
appointment (so the plan knows what is left and when to retry), queues the notice the client is owed
and tells the booking site. All three are safe to repeat: the ledger decides, the rest is keyed.

Which notice: a card charge gets ``<reason>_fee_charged``; a fee taken from a deposit, prepayment,
course session or gift certificate gets ``fee_applied``; a card that declined or needs
authentication gets ``fee_declined`` once (dunning retries are silent until one succeeds); a fee with
no way to collect it (no card) gets ``fee_outstanding``. Every notice but the waiver's states the whole
fee and where each part came from (:class:`~medspa.domain.fee_breakdown.FeeBreakdown`), never only the
card's share: a $75 fee paid $50 from the deposit is a $75 fee, not a $25 one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, get_args

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from medspa.domain.booking import Appointment, FeeState
from medspa.domain.ledger import EntryStatus, ledger_entry_id
from medspa.ports.store import AppointmentNotFound, Stores
from medspa.domain.fee_breakdown import PAID_FROM_SOURCES, FeeBreakdown, PaidFrom
from medspa.money import Money
from medspa.policy.schema import FeeReason
from medspa.ports import Counted
from medspa.services.lifecycle import LifecycleService, StepRequest, StepResult, message_key
from medspa.services.settlement import SettlementReport, SettlementService, card_purpose

RELEASED_BY = "policy:client-was-there"
_CHARGED = {"late_cancel": "late_cancel_fee_charged", "no_show": "no_show_fee_charged",
            "late_reschedule": "late_reschedule_fee_charged"}
_FEE_REASONS: dict[str, FeeReason] = {reason: reason for reason in get_args(FeeReason)}


class FeeSteps:
    def __init__(self, store: Stores, settlement: SettlementService, lifecycle: LifecycleService) -> None:
        self._store = store
        self._settlement = settlement
        self._lifecycle = lifecycle

    def settle(self, appointment_id: str, reason: FeeReason, now: datetime) -> StepResult:
        stored = self._require(appointment_id)
        waived = any(v.reason == reason and v.fee_waived for v in stored.facts.violations)
        if waived:
            self._record(stored, FeeState(reason=reason, outcome="no_fee", updated_at=now))
            return StepResult(done=f"{reason}: fee waived by policy (rescheduled the same day)")
        report = self._settlement.settle_fee(appointment_id, reason, now)
        retry_at = tuple(t for t in report.retry_at if t > now)
        self._record(stored, FeeState(reason=reason, outcome=report.outcome, fee=report.fee, attempt=1,
                                      next_retry_at=retry_at[0] if retry_at else None, retry_at=retry_at,
                                      updated_at=now))
        self._tell(stored, report, now, first_attempt=True)
        return StepResult(done=_summary(report), detail=_detail(report))

    def retry(self, appointment_id: str, reason: FeeReason, attempt: int, now: datetime) -> StepResult:
        stored = self._require(appointment_id)
        state = stored.fees.get(reason)
        if state is None or state.outcome != "outstanding":
            return StepResult(done=f"{reason}: nothing to retry")
        report = self._settlement.retry_outstanding_fee(appointment_id, reason, attempt, now)
        later = tuple(t for t in state.retry_at if t > now)
        paid = report.outcome in ("settled", "waived")
        self._record(stored, state.model_copy(update={
            "outcome": report.outcome if paid else "outstanding", "attempt": attempt,
            "next_retry_at": None if paid or not later else later[0], "updated_at": now}))
        if report.charged:
            self._tell(stored, report, now, first_attempt=False)
        return StepResult(done=f"retry {attempt}: {_summary(report)}", detail=_detail(report))

    def waive(self, appointment_id: str, purpose: str, admin_id: str, now: datetime) -> StepResult:
        reason = _reason_of(purpose)
        stored = self._require(appointment_id)
        report = self._settlement.waive_fee(appointment_id, reason, admin_id, now)
        state = stored.fees.get(reason)
        if state is not None and state.outcome != "waived":
            self._record(stored, state.model_copy(update={"outcome": "waived", "next_retry_at": None,
                                                          "updated_at": now}))
            self._lifecycle.count(Counted.FEE_WAIVED, stored)
        notice = None
        if report.refunded or report.outstanding_waived:
            notice = message_key(f"fee_waived#{reason}")
            self._lifecycle.notify_later(stored, "fee_waived", now, fee=report.refunded or report.outstanding_waived,
                                         key=notice)
        self._lifecycle.publish("FeeWaived", f"{appointment_id}:{reason}:waived", {
            **stored.booking_site_ids, "reason": reason, "admin_id": admin_id,
            "refunded": _money(report.refunded), "outstanding_waived": _money(report.outstanding_waived)})
        done = f"{reason} fee waived by {admin_id}" if state is not None or notice else \
            f"{reason}: nothing to waive, no fee was charged or is owed"
        return StepResult(done=done, detail={
            **_detail(report), "notice": notice, "booking_version": stored.run_identity[0],
            "revision": stored.run_identity[1]})

    def record_paid_later(self, appointment_id: str, purpose: str, attempt: int, now: datetime) -> StepResult:
        """Stripe took a fee's card charge after its step recorded the fee owed (the client completed 3-D Secure
        from her link, perhaps after the last dunning attempt). The reconciliation settled the ledger and the
        balance; here the visit records the fee settled, so no retry charges it, and the client gets the
        charged notice and the booking site ``FeeCharged``, as a dunning retry that found it paid would do. Safe
        to repeat: a fee no longer outstanding is left as it is, and its notice is handed on if it was queued."""
        reason = _reason_of(purpose)
        stored = self._require(appointment_id)
        state = stored.fees.get(reason)
        entry = self._store.ledger.get(ledger_entry_id(appointment_id, card_purpose(reason), attempt))
        if entry is not None and state is not None and state.outcome == "outstanding":
            entry = self._settlement.learn_later_outcome(entry, now)
        if entry is None or entry.status is not EntryStatus.SUCCEEDED or state is None \
                or state.outcome != "outstanding":
            done = f"{reason}: nothing to record, the fee is not outstanding or the charge is not paid"
        else:
            stored = self._record(stored, state.model_copy(update={"outcome": "settled", "next_retry_at": None,
                                                                   "updated_at": now}))
            self._tell(stored, SettlementReport(appointment_id=appointment_id, reason=reason, attempt=attempt,
                                                outcome="settled", fee=state.fee or entry.amount,
                                                charged=entry.amount), now, first_attempt=False)
            done = f"{reason} fee paid at Stripe after its step: {entry.amount} charged (attempt {attempt})"
        notice = message_key(f"{_CHARGED[reason]}#{reason}")
        queued = self._require(appointment_id).message(notice) is not None
        return StepResult(done=done, detail={"notice": notice if queued else None,
                                             "booking_version": stored.run_identity[0],
                                             "revision": stored.run_identity[1]})

    def release(self, appointment_id: str, reason: FeeReason, now: datetime) -> StepResult:
        """Give back a fee the visit no longer owes (the lifecycle's ``_fees_released``): the client was there
        after all. Money moves as in an admin's waiver (refund what the card paid, cancel what is owed, each
        with its ledger entry), and what the fee took from a deposit, prepayment, course or gift certificate is
        given back too (``SettlementService.give_back_covered``); the strike comes off, and the client and the
        booking site are told once."""
        stored = self._require(appointment_id)
        state = stored.fees.get(reason)
        if state is None or state.outcome not in ("settled", "outstanding"):
            return StepResult(done=f"{reason}: nothing to release")
        report = self._settlement.waive_fee(appointment_id, reason, RELEASED_BY, now)
        given_back = self._settlement.give_back_covered(appointment_id, reason, now)
        stored = self._record(stored, state.model_copy(update={"outcome": "waived", "next_retry_at": None,
                                                               "updated_at": now}))
        self._lifecycle.count(Counted.FEE_RELEASED, stored)
        strikes_left = self._store.clients.remove_strike(stored.client_id, appointment_id, reason, now)
        self._lifecycle.notify_later(stored, "fee_released", now, fee=state.fee,
                                     key=message_key(f"fee_released#{reason}"))
        self._lifecycle.publish("FeeReleased", f"{appointment_id}:{reason}:released", {
            **stored.booking_site_ids, "reason": reason, "fee": _money(state.fee),
            "refunded": _money(report.refunded), "outstanding_waived": _money(report.outstanding_waived),
            "given_back": [{"source": e.purpose.removeprefix(f"{reason}_fee_").removesuffix("_released"),
                            "amount": _money(e.amount), "ledger_entry": e.entry_id} for e in given_back],
            "strike_removed": strikes_left is not None, "strike_count": strikes_left})
        return StepResult(done=f"{reason} fee released: the client was there", detail={
            **_detail(report), "strike_removed": strikes_left is not None})

    def _tell(self, stored: Appointment, report: SettlementReport, now: datetime, first_attempt: bool) -> None:
        reason = report.reason
        if report.outcome == "no_fee":
            return
        if report.charged is not None and report.outcome == "settled":
            kind, counted = _CHARGED[reason], Counted.FEE_CHARGED
        elif report.outcome == "settled":
            kind, counted = "fee_applied", Counted.FEE_APPLIED
        elif report.client_action == "pay_at_next_visit":
            kind, counted = "fee_outstanding", Counted.FEE_OUTSTANDING
        elif first_attempt:
            kind, counted = "fee_declined", Counted.FEE_DECLINED
        else:
            return
        breakdown = self._breakdown(stored, report, first_attempt)
        if self._lifecycle.notify_later(stored, kind, now, fee=breakdown.fee, key=message_key(f"{kind}#{reason}"),
                                        fee_breakdown=breakdown):
            self._lifecycle.count(counted, stored)
        event = "FeeCharged" if report.outcome == "settled" else "FeeOutstanding"
        self._lifecycle.publish(event, f"{stored.appointment_id}:{reason}:{event}:{report.attempt}", {
            **stored.booking_site_ids, "reason": reason, "fee": _money(report.fee),
            "charged": _money(report.charged), "outstanding": _money(report.outstanding),
            "sessions_deducted": report.sessions_deducted, "client_action": report.client_action,
            "ledger_entries": [s.entry_id for s in report.steps],
        })

    def _breakdown(self, stored: Appointment, report: SettlementReport, first_attempt: bool) -> FeeBreakdown:
        """The whole fee and its parts. A dunning retry's report knows only its card attempt, so the fee
        and what the deposit, prepayment or course covered are read back from the first settlement's
        record and ledger entries (written once, at attempt 1)."""
        assert report.fee is not None
        fee = report.fee
        if not first_attempt:
            state = stored.fees.get(report.reason)
            fee = state.fee if state is not None and state.fee is not None else fee
            ledger, purpose = self._store.ledger, card_purpose(report.reason)
            covered = [(source, ledger.get(ledger_entry_id(stored.appointment_id, f"{purpose}_{source}", 1)))
                       for source in PAID_FROM_SOURCES]
            paid_from = tuple(PaidFrom(source=source, amount=entry.amount) for source, entry in covered
                              if entry is not None and entry.status is EntryStatus.SUCCEEDED)
        else:
            paid_from = tuple(PaidFrom(source=s.source, amount=s.amount, sessions=s.sessions) for s in report.steps
                              if s.source in PAID_FROM_SOURCES and s.status is EntryStatus.SUCCEEDED)
        return FeeBreakdown(fee=fee, paid_from=paid_from, charged=report.charged, outstanding=report.outstanding)

    def _record(self, stored: Appointment, state: FeeState) -> Appointment:
        return self._store.appointments.record_fee(stored.appointment_id, state)

    def _require(self, appointment_id: str) -> Appointment:
        stored = self._store.appointments.get(appointment_id)
        if stored is None:
            raise AppointmentNotFound(appointment_id)
        return stored


def _reason_of(purpose: str) -> FeeReason:
    reason = _FEE_REASONS.get(purpose.removesuffix("_fee"))
    if reason is None:
        raise ValueError(f"{purpose} is not a fee this system charges (no_show_fee, late_cancel_fee, "
                         f"late_reschedule_fee)")
    return reason


def _money(value: Money | None) -> dict[str, object] | None:
    return value.model_dump() if value is not None else None


def _summary(report: SettlementReport) -> str:
    if report.outcome == "no_fee":
        return f"{report.reason}: no fee under this policy"
    parts = [f"{report.reason} fee {report.fee}"]
    if report.charged:
        parts.append(f"charged {report.charged} to the card")
    if report.sessions_deducted:
        parts.append(f"{report.sessions_deducted} course session deducted")
    if report.outstanding:
        parts.append(f"{report.outstanding} outstanding ({report.client_action})")
    return ", ".join(parts)


def _detail(report: SettlementReport) -> dict[str, object]:
    return {"outcome": report.outcome, "ledger_entries": [f"{s.entry_id}:{s.status}" for s in report.steps]}


# The settlement function's task payloads (functions/settlement): here, beside the steps they ask for, so the
# handler imports them with the service on its first task, not at cold start.
class _Request(BaseModel):
    """A state-machine payload; a missing or malformed field fails the task with a ``ValidationError`` the
    execution shows, never a default that would charge the wrong fee or attempt."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    appointment_id: str = Field(min_length=1)


class _LoopStep(_Request):
    """A step of the lifecycle's loop: it names the run, so the plan that follows is that run's."""

    booking_version: int = Field(ge=0)
    revision: int = Field(0, ge=0)
    continuation: int = Field(0, ge=0)
    execution_started_at: AwareDatetime | None = None

    def run(self) -> StepRequest:
        return StepRequest(appointment_id=self.appointment_id, booking_version=self.booking_version,
                           revision=self.revision, continuation=self.continuation,
                           execution_started_at=self.execution_started_at)


class SettleFee(_LoopStep):
    action: Literal["settle_fee"]
    reason: FeeReason


class ReleaseFee(_LoopStep):
    action: Literal["release_fee"]
    reason: FeeReason


class RetryFee(_LoopStep):
    action: Literal["retry_fee"]
    reason: FeeReason
    attempt: int = Field(ge=2, description="Attempt 1 is the settlement itself")


class WaiveFee(_Request):
    action: Literal["waive_fee"]
    purpose: str = Field(min_length=1)
    admin_id: str = Field(min_length=1)


class RecordPaidFee(_Request):
    action: Literal["record_paid_fee"]
    purpose: str = Field(min_length=1)
    attempt: int = Field(ge=1)


class CheckCard(_LoopStep):
    action: Literal["check_card"]


FeeRequest: TypeAdapter[SettleFee | ReleaseFee | RetryFee | WaiveFee | RecordPaidFee | CheckCard] = TypeAdapter(
    Annotated[SettleFee | ReleaseFee | RetryFee | WaiveFee | RecordPaidFee | CheckCard, Field(discriminator="action")],
    config=ConfigDict(defer_build=True))  # built by the first task, not at cold start
