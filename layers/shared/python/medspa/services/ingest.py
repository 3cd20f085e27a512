"""Booking-site events in: store the newest booking version and keep exactly one lifecycle run for it.

SQS delivers at least once and in any order, and a Lambda may die between two writes. So each event is
applied by converging, not by replaying: the versioned upsert keeps the newest booking whatever the
order; then, whether or not this delivery changed anything, the stored version must have its execution
running and every older one must be stopped. A redelivery after a crash therefore finishes the job, and
a duplicate changes nothing (StartExecution with the same name and input is idempotent).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from medspa.adapters.executions import LifecycleExecutions, execution_name
from medspa.adapters.store import (
    Appointment,
    AppointmentBooking,
    AppointmentStatus,
    ClientProfile,
    StaleVersion,
    Store,
)
from medspa.events import (
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentRescheduled,
    BookingEvent,
    BookingNotYetKnown,
    to_booking,
)
from medspa.policy.schema import PolicyPack

HANDLED = (AppointmentBooked.detail_type, AppointmentRescheduled.detail_type, AppointmentCancelled.detail_type)


class IngestOutcome(BaseModel):
    appointment_id: str
    booking_version: int
    applied: bool
    action: Literal["started", "cancelled", "superseded", "unchanged"]
    execution_name: str | None = None


class IngestService:
    def __init__(self, store: Store, executions: LifecycleExecutions, packs: Mapping[str, PolicyPack]) -> None:
        self._store = store
        self._executions = executions
        self._packs = packs

    def ingest(self, event: BookingEvent, now: datetime) -> IngestOutcome:
        if isinstance(event, AppointmentCancelled):
            return self._cancel(event, now)
        if isinstance(event, (AppointmentBooked, AppointmentRescheduled)):
            return self._book(event, now)
        raise TypeError(f"{event.detail_type} is not consumed by the intake yet")

    def _book(self, event: AppointmentBooked | AppointmentRescheduled, now: datetime) -> IngestOutcome:
        current = self._store.appointments.get(event.appointment_id)
        location = event.location_id if isinstance(event, AppointmentBooked) else _require(current, event).location_id
        booking = to_booking(event, current, policy_version=self._packs[location].policy_version)
        if isinstance(event, AppointmentBooked):
            self._store.clients.save_profile(ClientProfile(
                client_id=booking.client_id, spa_id=event.spa_id, phone=event.client.phone, email=event.client.email,
                stripe_customer_id=event.payment.stripe_customer_id,
                default_payment_method_id=event.payment.stripe_payment_method_id,
            ), now)
        result = self._store.appointments.upsert_from_booking(booking, now)
        return self._converge(result.appointment, event.booking_version, result.applied, now)

    def _cancel(self, event: AppointmentCancelled, now: datetime) -> IngestOutcome:
        current = _require(self._store.appointments.get(event.appointment_id), event)
        booking = AppointmentBooking(
            **current.model_dump(include=set(AppointmentBooking.model_fields) - {"status", "booking_version",
                                                                               "event_id"}),
            status=AppointmentStatus.CANCELLED, booking_version=event.booking_version, event_id=event.event_id,
        )
        result = self._store.appointments.upsert_from_booking(booking, now)
        return self._converge(result.appointment, event.booking_version, result.applied, now,
                              cause=f"Cancelled by the {event.by} (booking version {event.booking_version})")

    def _converge(self, stored: Appointment, version: int, applied: bool, now: datetime,
                  cause: str | None = None) -> IngestOutcome:
        outcome = dict(appointment_id=stored.appointment_id, booking_version=version, applied=applied)
        if stored.booking_version != version:
            return IngestOutcome(**outcome, action="superseded")
        wanted = execution_name(stored.appointment_id, stored.booking_version)
        if stored.execution_arn and stored.execution_name != wanted:
            self._executions.stop(stored.execution_arn, error="Superseded",
                                  cause=cause or f"Booking version {version} replaced this run "
                                                 f"(visit now {stored.starts_at:%Y-%m-%d %H:%M} UTC)")
        if stored.status == AppointmentStatus.CANCELLED:
            return IngestOutcome(**outcome, action="cancelled")
        if stored.execution_name == wanted:
            return IngestOutcome(**outcome, action="unchanged", execution_name=wanted)
        started = self._executions.start(stored.appointment_id, stored.booking_version)
        try:
            self._store.appointments.set_execution(stored.appointment_id, stored.booking_version, started.name,
                                                   started.arn, now)
        except StaleVersion:
            return IngestOutcome(**outcome, action="superseded")
        return IngestOutcome(**outcome, action="started", execution_name=started.name)


def _require(current: Appointment | None, event: BookingEvent) -> Appointment:
    if current is None:
        raise BookingNotYetKnown(f"{event.detail_type} arrived before its booking; SQS will redeliver it")
    return current
