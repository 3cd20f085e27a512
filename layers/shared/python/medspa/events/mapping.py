"""From booking-site events to the store's versioned booking snapshot.

Kept apart from the catalogue so that parsing stays free of the data layer; this module only
builds a value, it writes nothing.
"""

from __future__ import annotations

from medspa.domain.appointment import PaymentContext

from .catalogue import BookingPayment


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
