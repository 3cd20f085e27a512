"""From booking-site events to the store's versioned booking snapshot.

Kept apart from the catalogue so that parsing stays free of the data layer; this module only
builds a value, it writes nothing.
"""

from __future__ import annotations

from medspa.adapters.store.appointments import Appointment as StoredAppointment
from medspa.adapters.store.appointments import AppointmentBooking, AppointmentStatus
from medspa.adapters.store.clients import client_key
from medspa.domain.appointment import PaymentContext

from .catalogue import AppointmentBooked, AppointmentRescheduled, BookingPayment


class BookingNotYetKnown(LookupError):
    """A reschedule arrived before the booking it changes (out-of-order delivery).

    A reschedule carries only what changed, so no full snapshot can be built yet. The intake should
    let the message be retried (SQS redelivery) until the ``AppointmentBooked`` has been stored.
    """

    def __init__(self, appointment_id: str) -> None:
        self.appointment_id = appointment_id
        super().__init__(f"no stored booking for appointment {appointment_id} to reschedule")


def payment_context(payment: BookingPayment) -> PaymentContext:
    """Stripe ids stay out: they belong on the client profile, not on the appointment."""
    return PaymentContext(
        card_on_file=payment.card_on_file,
        deposit=payment.deposit,
        prepaid=payment.prepaid,
        course_id=payment.course_id,
        course_session_available=payment.course_session_available,
        gift_certificate=payment.gift_certificate,
    )


def to_booking(
    event: AppointmentBooked | AppointmentRescheduled,
    current: AppointmentBooking | StoredAppointment | None,
    policy_version: str,
) -> AppointmentBooking:
    """The snapshot to upsert for this event; the store keeps it only if ``booking_version`` is newer.

    * Booked: a full snapshot. ``policy_version`` is the caller's (the pack in force now) unless a
      booking is already stored: the policy the client accepted at first booking stays theirs.
    * Rescheduled: the stored booking with the new time (and service, if given), status back to
      ``booked`` so the new time is confirmed afresh; client, location, party, payment and policy
      are kept. Without a stored booking it raises :class:`BookingNotYetKnown`.
    """
    if isinstance(event, AppointmentBooked):
        return AppointmentBooking(
            appointment_id=event.appointment_id,
            client_id=client_key(event.spa_id, event.client.id),
            location_id=event.location_id,
            policy_version=current.policy_version if current is not None else policy_version,
            service=event.service,
            starts_at=event.starts_at,
            party_size=event.party_size,
            status=AppointmentStatus.BOOKED,
            booking_version=event.booking_version,
            event_id=event.event_id,
            payment=payment_context(event.payment),
        )
    if current is None:
        raise BookingNotYetKnown(event.appointment_id)
    return AppointmentBooking(
        appointment_id=event.appointment_id,
        client_id=current.client_id,
        location_id=current.location_id,
        policy_version=current.policy_version,
        service=event.service if event.service is not None else current.service,
        starts_at=event.starts_at,
        party_size=current.party_size,
        status=AppointmentStatus.BOOKED,
        booking_version=event.booking_version,
        event_id=event.event_id,
        payment=current.payment,
    )
