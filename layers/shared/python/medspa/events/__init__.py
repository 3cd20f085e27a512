"""Booking-site events: the catalogue (models, parsing, JSON Schemas) and the fold of an appointment's events.

``BookingNotYetKnown`` and ``payment_context`` are loaded lazily so that parsing an event never imports
the data layer.
"""

from __future__ import annotations

from typing import Any

from .catalogue import (
    APPOINTMENT_DETAIL_MODELS,
    DETAIL_MODELS,
    DETAIL_TYPES,
    ENVELOPE_MODELS,
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentCompleted,
    AppointmentConfirmed,
    AppointmentEvent,
    AppointmentMarkedNoShow,
    AppointmentRescheduled,
    BookingClient,
    BookingEnvelope,
    BookingEvent,
    BookingPayment,
    CardUpdated,
    CertificateRedeemed,
    ClientCheckedIn,
    ClientContactCorrected,
    ClientDataExportRequested,
    ClientErasureRequested,
    ConfirmationChannel,
    CourseDeferred,
    CourseEvent,
    CoursePurchased,
    FeeWaived,
    InvalidBookingEvent,
    MembershipCancellationFormCompleted,
    MembershipCancellationRequested,
    MembershipEvent,
    MembershipFreezeFormCompleted,
    MembershipFreezeRequested,
    MembershipPlan,
    MembershipPlanChanged,
    MembershipStarted,
    MembershipUnfreezeRequested,
    ServiceCreditRedeemed,
    MEMBERSHIP_DETAIL_MODELS,
    MEMBERSHIP_MODELS,
    OutstandingBalancePaid,
    PrepayRequirementCleared,
    PrivacyRequest,
    parse_booking_envelope,
    parse_booking_event,
)

__all__ = [
    "APPOINTMENT_DETAIL_MODELS",
    "DETAIL_MODELS",
    "DETAIL_TYPES",
    "ENVELOPE_MODELS",
    "AppointmentBooked",
    "AppointmentCancelled",
    "AppointmentCompleted",
    "AppointmentConfirmed",
    "AppointmentEvent",
    "AppointmentMarkedNoShow",
    "AppointmentRescheduled",
    "BookingClient",
    "BookingEnvelope",
    "BookingEvent",
    "BookingNotYetKnown",
    "BookingPayment",
    "CardUpdated",
    "CertificateRedeemed",
    "ClientCheckedIn",
    "ClientContactCorrected",
    "ClientDataExportRequested",
    "ClientErasureRequested",
    "ConfirmationChannel",
    "CourseDeferred",
    "CourseEvent",
    "CoursePurchased",
    "FeeWaived",
    "InvalidBookingEvent",
    "MembershipCancellationFormCompleted",
    "MembershipCancellationRequested",
    "MembershipEvent",
    "MembershipFreezeFormCompleted",
    "MembershipFreezeRequested",
    "MembershipPlan",
    "MembershipPlanChanged",
    "MembershipStarted",
    "MembershipUnfreezeRequested",
    "ServiceCreditRedeemed",
    "MEMBERSHIP_DETAIL_MODELS",
    "MEMBERSHIP_MODELS",
    "OutstandingBalancePaid",
    "PrepayRequirementCleared",
    "PrivacyRequest",
    "parse_booking_envelope",
    "parse_booking_event",
]


def __getattr__(name: str) -> Any:
    if name in {"BookingNotYetKnown", "payment_context"}:
        from . import history

        return getattr(history, name)
    raise AttributeError(name)
