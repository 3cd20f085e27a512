"""Booking-site events in: keep each event, fold the appointment's history, keep one lifecycle run for it.

SQS delivers at least once and in any order, and a Lambda may die between two writes. So each event is
applied by converging, not by replaying: the event is kept in the appointment's history (idempotent by
booking version), the history is folded in version order (``medspa.events.history``), the store keeps
the fold only if it holds more events than the stored one; then, whether or not this delivery changed
anything, the stored revision must have its execution running and every older one must be stopped. A
redelivery after a crash therefore finishes the job, and a duplicate changes nothing (StartExecution
with the same name and input is idempotent).

An event that arrives before its booking is kept and acknowledged: the fold that includes it runs when
the ``AppointmentBooked`` arrives, so nothing waits in the queue.

Every revision gets an execution, closed ones included: a late cancel is charged, a no-show marked by
the front desk is settled, and a completed visit is recorded, each in the console under the
appointment's name. ``FeeWaived`` starts a waiver run of its own (``<appointment>-waive-<purpose>``)
so it is audited beside the appointment's runs and reaches an execution that may be sleeping for days.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel

from medspa.adapters.executions import LifecycleExecutions, run_name, runs_for
from medspa.adapters.store import Appointment, ClientProfile, StaleVersion, Store, client_key
from medspa.events import (
    DETAIL_MODELS,
    AppointmentBooked,
    BookingEvent,
    BookingNotYetKnown,
    CardUpdated,
    FeeWaived,
    PrepayRequirementCleared,
)
from medspa.events.history import fold
from medspa.policy.schema import PolicyPack


class IngestOutcome(BaseModel):
    appointment_id: str | None = None
    booking_version: int | None = None
    applied: bool
    action: Literal["started", "superseded", "unchanged", "held_until_booked", "card_updated", "waiver_started",
                    "prepay_cleared"]
    execution_name: str | None = None


class IngestService:
    def __init__(self, store: Store, executions: LifecycleExecutions, packs: Mapping[str, PolicyPack]) -> None:
        self._store = store
        self._executions = executions
        self._packs = dict(packs)

    def ingest(self, event: BookingEvent, now: datetime) -> IngestOutcome:
        if isinstance(event, CardUpdated):
            return self._card(event, now)
        if isinstance(event, FeeWaived):
            return self._waive(event)
        if isinstance(event, PrepayRequirementCleared):
            self._store.clients.clear_prepay_required(client_key(event.spa_id, event.client_id), event.admin_id, now)
            return IngestOutcome(applied=True, action="prepay_cleared")
        return self._appointment_event(event, now)

    def _appointment_event(self, event: BookingEvent, now: datetime) -> IngestOutcome:
        appointments = self._store.appointments
        appointments.record_event(event.appointment_id, event.booking_version, event.detail_type, event.event_id,
                                  event.model_dump_json(), now)
        history = [DETAIL_MODELS[kind].model_validate_json(detail) for kind, detail in
                   appointments.history(event.appointment_id)]
        try:
            folded = fold(history, self._packs)
        except BookingNotYetKnown:
            return IngestOutcome(appointment_id=event.appointment_id, booking_version=event.booking_version,
                                 applied=False, action="held_until_booked")
        if isinstance(event, AppointmentBooked):
            self._store.clients.save_profile(ClientProfile(
                client_id=client_key(event.spa_id, event.client.id), spa_id=event.spa_id, phone=event.client.phone,
                email=event.client.email, stripe_customer_id=event.payment.stripe_customer_id,
                default_payment_method_id=event.payment.stripe_payment_method_id,
                sms_consent=event.client.sms_opt_in, email_consent=event.client.email_opt_in,
            ), now)
        result = appointments.upsert_from_booking(folded.booking, now)
        cause = (f"Superseded by booking version {folded.booking.booking_version}: {folded.changed_by} at the booking "
                 f"site {folded.occurred_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC (visit "
                 f"{folded.booking.starts_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC)")
        return self._converge(result.appointment, event.booking_version, result.applied, now, cause)

    def _converge(self, stored: Appointment, version: int, applied: bool, now: datetime, cause: str) -> IngestOutcome:
        outcome = dict(appointment_id=stored.appointment_id, booking_version=version, applied=applied)
        wanted = run_name(stored.appointment_id, stored.booking_version, stored.revision, stored.version_revision)
        current = runs_for(wanted, stored.execution_name)
        if stored.execution_arn and not current:
            self._executions.stop(stored.execution_arn, error="Superseded", cause=cause)
        if current:
            return IngestOutcome(**outcome, action="unchanged", execution_name=stored.execution_name)
        started = self._executions.start(stored.appointment_id, stored.booking_version, stored.revision, wanted)
        try:
            self._store.appointments.set_execution(stored.appointment_id, stored.booking_version, started.name,
                                                   started.arn, now, revision=stored.revision)
        except StaleVersion:
            return IngestOutcome(**outcome, action="superseded")
        return IngestOutcome(**outcome, action="started", execution_name=started.name)

    def _card(self, event: CardUpdated, now: datetime) -> IngestOutcome:
        """The newest card replaces the old one; a declined fee's next dunning attempt charges it."""
        self._store.clients.save_profile(ClientProfile(
            client_id=client_key(event.spa_id, event.client_id), spa_id=event.spa_id,
            stripe_customer_id=event.stripe_customer_id, default_payment_method_id=event.stripe_payment_method_id,
        ), now)
        return IngestOutcome(applied=True, action="card_updated")

    def _waive(self, event: FeeWaived) -> IngestOutcome:
        started = self._executions.start_waiver(event.appointment_id, event.purpose, event.admin_id)
        return IngestOutcome(appointment_id=event.appointment_id, applied=not started.already_running,
                             action="waiver_started", execution_name=started.name)
