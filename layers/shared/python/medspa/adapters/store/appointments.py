"""Appointments: the booking site's latest version of each booking, plus what the lifecycle added.

Booking-site events arrive duplicated and out of order (SQS, retries, replays). Each carries the
booking's monotonically increasing ``booking_version``; an upsert applies only when its version is
newer than the stored one, so every delivery order converges on the newest booking. Lifecycle
writes (status, execution) are guarded by ``record_version`` so two writers never both win.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt

from medspa.domain.appointment import Appointment as PolicyAppointment
from medspa.domain.appointment import PaymentContext, Service
from medspa.domain.money import Money

from .errors import AppointmentNotFound, ConcurrentUpdate, StaleVersion, transient_errors_named
from .models import AppointmentRecord, PaymentMap, ServiceMap, update_if


class AppointmentStatus(StrEnum):
    BOOKED = "booked"
    CONFIRMED = "confirmed"
    CHECKED_IN = "checked_in"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"
    AUTO_CANCELLED = "auto_cancelled"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AppointmentBooking(_Frozen):
    """One versioned snapshot of a booking as the booking site sent it."""

    appointment_id: str = Field(min_length=1)
    client_id: str = Field(min_length=1)
    location_id: str = Field(min_length=1)
    policy_version: str = Field(min_length=1, description="The policy the client accepted when booking.")
    service: Service = Field(description="Its name lives only here: nothing about treatments is sent to Stripe.")
    starts_at: AwareDatetime
    party_size: PositiveInt = 1
    status: AppointmentStatus = AppointmentStatus.BOOKED
    booking_version: NonNegativeInt
    event_id: str = Field(min_length=1)
    payment: PaymentContext = PaymentContext()


class Appointment(_Frozen):
    appointment_id: str
    client_id: str
    location_id: str
    policy_version: str
    service: Service = Field(description="Its name lives only here: nothing about treatments is sent to Stripe.")
    starts_at: AwareDatetime
    party_size: int
    status: AppointmentStatus
    booking_version: int
    last_event_id: str | None
    payment: PaymentContext
    execution_name: str | None
    execution_arn: str | None
    confirmed_at: AwareDatetime | None
    checked_in_at: AwareDatetime | None
    created_at: AwareDatetime
    updated_at: AwareDatetime
    record_version: int = Field(description="Pass back as expected_version to write on top of what you read.")

    def to_domain(self) -> PolicyAppointment:
        """The facts the policy engine decides on, without what only the store and the lifecycle track."""
        return PolicyAppointment(
            id=self.appointment_id, client_id=self.client_id, location_id=self.location_id,
            policy_version=self.policy_version, service=self.service, starts_at=self.starts_at,
            party_size=self.party_size, payment=self.payment,
        )


class UpsertResult(NamedTuple):
    applied: bool
    appointment: Appointment


def _money(amount: int | None, currency: str | None) -> Money | None:
    return None if amount is None or currency is None else Money(amount=amount, currency=currency)


def _to_appointment(record: AppointmentRecord) -> Appointment:
    service, payment = record.service, record.payment or PaymentMap()
    return Appointment(
        appointment_id=record.appointment_id,
        client_id=record.client_id,
        location_id=record.location_id,
        policy_version=record.policy_version,
        service=Service(
            name=service.name,
            category=service.category,
            duration_minutes=service.duration_minutes,
            price=Money(amount=service.price_amount, currency=service.price_currency),
        ),
        starts_at=record.starts_at,
        party_size=record.party_size,
        status=AppointmentStatus(record.status),
        booking_version=record.booking_version,
        last_event_id=record.last_event_id,
        payment=PaymentContext(
            card_on_file=bool(payment.card_on_file),
            deposit=_money(payment.deposit_amount, payment.deposit_currency),
            prepaid=_money(payment.prepaid_amount, payment.prepaid_currency),
            course_id=payment.course_id,
            course_session_available=bool(payment.course_session_available),
            gift_certificate=_money(payment.gift_certificate_amount, payment.gift_certificate_currency),
        ),
        execution_name=record.execution_name,
        execution_arn=record.execution_arn,
        confirmed_at=record.confirmed_at,
        checked_in_at=record.checked_in_at,
        created_at=record.created_at,
        updated_at=record.updated_at,
        record_version=record.record_version,
    )


class AppointmentRepository:
    def __init__(self, model: type[AppointmentRecord]) -> None:
        self._model = model

    def get(self, appointment_id: str) -> Appointment | None:
        try:
            with transient_errors_named():
                return _to_appointment(self._model.get(appointment_id, consistent_read=True))
        except self._model.DoesNotExist:
            return None

    def _require(self, appointment_id: str) -> Appointment:
        current = self.get(appointment_id)
        if current is None:
            raise AppointmentNotFound(appointment_id)
        return current

    def upsert_from_booking(self, booking: AppointmentBooking, now: datetime) -> UpsertResult:
        """Apply a booking snapshot unless an equal or newer version is already stored.

        Only booking-site fields are written; the lifecycle's own fields (execution, confirmation
        and check-in times) survive a reschedule until the lifecycle itself replaces them.
        """
        m, service, payment = self._model, booking.service, booking.payment
        actions = [
            m.client_id.set(booking.client_id),
            m.location_id.set(booking.location_id),
            m.policy_version.set(booking.policy_version),
            m.service.set(
                ServiceMap(
                    name=service.name,
                    category=service.category,
                    duration_minutes=service.duration_minutes,
                    price_amount=service.price.amount,
                    price_currency=service.price.currency,
                )
            ),
            m.starts_at.set(booking.starts_at),
            m.party_size.set(booking.party_size),
            m.status.set(booking.status.value),
            m.booking_version.set(booking.booking_version),
            m.last_event_id.set(booking.event_id),
            m.payment.set(
                PaymentMap(
                    card_on_file=payment.card_on_file,
                    deposit_amount=payment.deposit.amount if payment.deposit else None,
                    deposit_currency=payment.deposit.currency if payment.deposit else None,
                    prepaid_amount=payment.prepaid.amount if payment.prepaid else None,
                    prepaid_currency=payment.prepaid.currency if payment.prepaid else None,
                    course_id=payment.course_id,
                    course_session_available=payment.course_session_available,
                    gift_certificate_amount=payment.gift_certificate.amount if payment.gift_certificate else None,
                    gift_certificate_currency=payment.gift_certificate.currency if payment.gift_certificate else None,
                )
            ),
            m.created_at.set(m.created_at | now),
            m.updated_at.set(now),
            m.record_version.set((m.record_version | 0) + 1),
        ]
        newer = m.appointment_id.does_not_exist() | (m.booking_version < booking.booking_version)
        record = update_if(m, booking.appointment_id, actions, newer)
        if record is None:
            return UpsertResult(applied=False, appointment=self._require(booking.appointment_id))
        return UpsertResult(applied=True, appointment=_to_appointment(record))

    def set_execution(
        self, appointment_id: str, booking_version: int, execution_name: str, execution_arn: str, now: datetime
    ) -> Appointment:
        """Record the lifecycle execution running for ``booking_version``; refused once a newer version exists."""
        m = self._model
        actions = [
            m.execution_name.set(execution_name),
            m.execution_arn.set(execution_arn),
            m.updated_at.set(now),
            m.record_version.set(m.record_version + 1),
        ]
        record = update_if(m, appointment_id, actions, m.booking_version == booking_version)
        if record is None:
            current = self._require(appointment_id)
            raise StaleVersion(
                f"appointment {appointment_id} is at booking version {current.booking_version}, not {booking_version}"
            )
        return _to_appointment(record)

    def mark_status(
        self, appointment_id: str, status: AppointmentStatus, expected_version: int, now: datetime
    ) -> Appointment:
        """Move the lifecycle on, but only on top of the record version the caller decided from."""
        m, status = self._model, AppointmentStatus(status)
        actions = [m.status.set(status.value), m.updated_at.set(now), m.record_version.set(m.record_version + 1)]
        if status is AppointmentStatus.CONFIRMED:
            actions.append(m.confirmed_at.set(m.confirmed_at | now))
        if status is AppointmentStatus.CHECKED_IN:
            actions.append(m.checked_in_at.set(m.checked_in_at | now))
        record = update_if(m, appointment_id, actions, m.record_version == expected_version)
        if record is None:
            current = self._require(appointment_id)
            raise ConcurrentUpdate(
                f"appointment {appointment_id} is at record version {current.record_version}, not {expected_version}"
            )
        return _to_appointment(record)

    def for_client(self, client_id: str, starting_from: datetime | None = None) -> list[Appointment]:
        """A client's appointments in start order (index reads are eventually consistent)."""
        m = self._model
        condition = m.starts_at >= starting_from if starting_from else None
        return [_to_appointment(r) for r in m.by_client.query(client_id, range_key_condition=condition)]
