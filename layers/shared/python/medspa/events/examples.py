"""One complete, realistic EventBridge event per detail-type, as a booking site would cause it.

They are the examples in ``docs/events/examples/`` and double as test fixtures. The people and
numbers are fictitious (555-01xx phone numbers, example.com addresses).
"""

from __future__ import annotations

from typing import Any

_ACCOUNT = "123456789012"
_REGION = "us-east-1"


def _event(detail_type: str, event_id: str, time: str, detail: dict[str, Any],
           source: str = "booking-site") -> dict[str, Any]:
    return {
        "version": "0",
        "id": event_id,
        "detail-type": detail_type,
        "source": source,
        "account": _ACCOUNT,
        "time": time,
        "region": _REGION,
        "resources": [],
        "detail": detail,
    }


_APPOINTMENT = {"spa_id": "bijoux", "appointment_id": "apt-20250314-0042"}

_MEMBERSHIP = {"spa_id": "massageluxe", "membership_id": "mem-0917"}

# (detail-type, EventBridge id, time, event_id, occurred_at, the rest of the detail)
_MEMBERSHIP_EVENTS: list[tuple[str, str, str, str, str, dict[str, Any]]] = [

        ("MembershipStarted", "1a2b3c4d-5e6f-4a7b-8c93-0e1f2a3b4c21", "2025-01-31T16:00:00Z", "ml-evt-001001",
         "2025-01-31T10:00:00-06:00",
         {"membership_version": 1,
          "client": {"id": "c-7781", "first_name": "Dana", "phone": "+15125550147",
                     "email": "dana.lee@example.com", "sms_opt_in": True, "email_opt_in": True},
          "location_id": "massageluxe-austin",
          "plan": {"name": "LuXe 60", "monthly_dues": {"amount": 7900, "currency": "USD"},
                   "service_credits_per_month": 1},
          "starts_on": "2025-01-31",
          "payment": {"stripe_customer_id": "cus_P9xQ2mLuXe01", "stripe_payment_method_id": "pm_card_visa"}}),
        ("MembershipPlanChanged", "2b3c4d5e-6f7a-4b8c-9da4-1f2a3b4c5d22", "2025-04-10T15:00:00Z", "ml-evt-001044",
         "2025-04-10T10:00:00-05:00",
         {"membership_version": 2,
          "plan": {"name": "LuXe 90", "monthly_dues": {"amount": 10900, "currency": "USD"},
                   "service_credits_per_month": 1}}),
        ("MembershipFreezeRequested", "3c4d5e6f-7a8b-4c9d-8eb5-2a3b4c5d6e23", "2025-06-02T17:00:00Z",
         "ml-evt-001090", "2025-06-02T12:00:00-05:00",
         {"membership_version": 3, "form_sent_at": "2025-06-02T12:00:00-05:00"}),
        ("MembershipFreezeFormCompleted", "4d5e6f7a-8b9c-4dae-9fc6-3b4c5d6e7f24", "2025-06-03T14:30:00Z",
         "ml-evt-001093", "2025-06-03T09:30:00-05:00",
         {"membership_version": 4, "submitted_at": "2025-06-03T09:30:00-05:00"}),
        ("MembershipUnfreezeRequested", "5e6f7a8b-9cad-4ebf-8ad7-4c5d6e7f8a25", "2025-09-15T19:00:00Z",
         "ml-evt-001180", "2025-09-15T14:00:00-05:00", {"membership_version": 5}),
        ("MembershipCancellationRequested", "6f7a8b9c-adbe-4fc0-9be8-5d6e7f8a9b26", "2025-11-03T16:00:00Z",
         "ml-evt-001240", "2025-11-03T10:00:00-06:00",
         {"membership_version": 6, "form_sent_at": "2025-11-03T10:00:00-06:00"}),
        ("MembershipCancellationFormCompleted", "7a8b9cad-becf-4ad1-8cf9-6e7f8a9bac27", "2025-11-04T02:15:00Z",
         "ml-evt-001243", "2025-11-03T20:15:00-06:00",
         {"membership_version": 7, "submitted_at": "2025-11-03T20:15:00-06:00", "paper_certificates": True}),
        ("CertificateRedeemed", "9badcbef-e0f1-4a23-8b4c-0c1d2e3f4a31", "2026-02-20T21:00:00Z", "ml-evt-001301",
     "2026-02-20T15:00:00-06:00",
     {"membership_version": 8, "certificate_id": "cert-2", "client_id": "c-9042", "location_id": "massageluxe-austin",
      "redeemed_at": "2026-02-20T15:00:00-06:00"}),
    ("ServiceCreditRedeemed", "8b9cadbe-cfd0-4be2-9d0a-7f8a9bacbd28", "2025-02-14T22:00:00Z", "ml-evt-001012",
         "2025-02-14T16:00:00-06:00",
         {"membership_version": 2, "redeemed_at": "2025-02-14T16:00:00-06:00",
          "location_id": "massageluxe-austin", "credits": 1, "appointment_id": "apt-ml-5521"}),
]

EXAMPLES: dict[str, dict[str, Any]] = {
    "AppointmentBooked": _event(
        "AppointmentBooked",
        "5c1e7e9a-4f1b-4c2e-9d61-0b8f0a7f3a01",
        "2025-03-01T15:04:05Z",
        {
            "event_id": "bk-evt-000101",
            "occurred_at": "2025-03-01T10:04:05-05:00",
            **_APPOINTMENT,
            "booking_version": 1,
            "client": {
                "id": "c-1234",
                "first_name": "Jamie",
                "phone": "+14075550123",
                "email": "jamie.rivera@example.com",
                "sms_opt_in": True,
                "email_opt_in": False,
            },
            "service": {
                "name": "Botox - Forehead Lines",
                "category": "injection_laser",
                "duration_minutes": 30,
                "price": {"amount": 42000, "currency": "USD"},
            },
            "starts_at": "2025-03-14T14:30:00-04:00",
            "location_id": "bijoux",
            "party_size": 1,
            "payment": {
                "card_on_file": True,
                "stripe_customer_id": "cus_Q1w2E3r4T5y6U7",
                "stripe_payment_method_id": "pm_1PqRsTuVwXyZ0123",
                "deposit": {"amount": 5000, "currency": "USD"},
            },
        },
    ),
    "AppointmentRescheduled": _event(
        "AppointmentRescheduled",
        "7a0d2c44-5e7f-4b8a-8c3d-2e1f0a9b8c02",
        "2025-03-05T18:20:00Z",
        {
            "event_id": "bk-evt-000187",
            "occurred_at": "2025-03-05T13:20:00-05:00",
            **_APPOINTMENT,
            "booking_version": 2,
            "starts_at": "2025-03-18T11:00:00-04:00",
            "service": {
                "name": "Botox - Forehead and Crow's Feet",
                "category": "injection_laser",
                "duration_minutes": 60,
                "price": {"amount": 68000, "currency": "USD"},
            },
        },
    ),
    "AppointmentCancelled": _event(
        "AppointmentCancelled",
        "0b9e8d7c-6a5f-4e3d-8c2b-1a0f9e8d7c03",
        "2025-03-16T13:45:00Z",
        {
            "event_id": "bk-evt-000233",
            "occurred_at": "2025-03-16T09:45:00-04:00",
            **_APPOINTMENT,
            "booking_version": 3,
            "by": "client",
            "reason": "Work conflict",
        },
    ),
    "AppointmentConfirmed": _event(
        "AppointmentConfirmed",
        "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e04",
        "2025-03-12T19:02:11Z",
        {
            "event_id": "bk-evt-000201",
            "occurred_at": "2025-03-12T15:02:11-04:00",
            **_APPOINTMENT,
            "booking_version": 3,
            "channel": "web",
        },
    ),
    "ClientCheckedIn": _event(
        "ClientCheckedIn",
        "2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f05",
        "2025-03-14T18:27:40Z",
        {
            "event_id": "bk-evt-000245",
            "occurred_at": "2025-03-14T14:27:40-04:00",
            **_APPOINTMENT,
            "booking_version": 4,
            "arrived_at": "2025-03-14T14:26:00-04:00",
        },
    ),
    "AppointmentCompleted": _event(
        "AppointmentCompleted",
        "3e4f5a6b-7c8d-4e9f-8a1b-2c3d4e5f6a06",
        "2025-03-14T19:05:00Z",
        {
            "event_id": "bk-evt-000251",
            "occurred_at": "2025-03-14T15:05:00-04:00",
            **_APPOINTMENT,
            "booking_version": 5,
        },
    ),
    "AppointmentMarkedNoShow": _event(
        "AppointmentMarkedNoShow",
        "4f5a6b7c-8d9e-4f0a-9b2c-3d4e5f6a7b07",
        "2025-03-14T19:00:00Z",
        {
            "event_id": "bk-evt-000249",
            "occurred_at": "2025-03-14T15:00:00-04:00",
            **_APPOINTMENT,
            "booking_version": 4,
            "marked_by": "staff-frontdesk-07",
        },
    ),
    "CardUpdated": _event(
        "CardUpdated",
        "5a6b7c8d-9e0f-4a1b-8c3d-4e5f6a7b8c08",
        "2025-03-10T16:12:09Z",
        {
            "event_id": "bk-evt-000195",
            "occurred_at": "2025-03-10T12:12:09-04:00",
            "spa_id": "bijoux",
            "client_id": "c-1234",
            "stripe_customer_id": "cus_Q1w2E3r4T5y6U7",
            "stripe_payment_method_id": "pm_1QaBcDeFgHiJ4567",
        },
    ),
    "FeeWaived": _event(
        "FeeWaived",
        "6b7c8d9e-0f1a-4b2c-9d4e-5f6a7b8c9d09",
        "2025-03-15T14:30:00Z",
        {
            "event_id": "bk-evt-000262",
            "occurred_at": "2025-03-15T10:30:00-04:00",
            "spa_id": "bijoux",
            "appointment_id": "apt-20250314-0042",
            "purpose": "no_show_fee",
            "ledger_entry_id": "apt-20250314-0042#no_show_fee#1",
            "admin_id": "admin-maria",
            "reason": "Documented medical emergency",
        },
        source="booking-site.acuity",
    ),
    "PrepayRequirementCleared": _event(
        "PrepayRequirementCleared",
        "7c8d9e0f-1a2b-4c3d-8e5f-6a7b8c9d0e10",
        "2025-04-02T16:00:00Z",
        {
            "event_id": "bk-evt-000301",
            "occurred_at": "2025-04-02T12:00:00-04:00",
            "spa_id": "bijoux",
            "client_id": "c-1234",
            "admin_id": "admin-maria",
            "reason": "Client in good standing for six months",
        },
    ),
    "OutstandingBalancePaid": _event(
        "OutstandingBalancePaid",
        "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c14",
        "2025-04-08T03:12:00Z",
        {
            "event_id": "glow-evt-000733",
            "occurred_at": "2025-04-08T11:12:00+08:00",
            "spa_id": "glow",
            "client_id": "c-5521",
            "amount": {"amount": 50000, "currency": "HKD"},
            "paid_at": "2025-04-08T11:10:00+08:00",
            "payment_reference": "TILL2-20250408-0147",
            "received_by": "staff-frontdesk-03",
        },
        source="booking-site.glow",
    ),
    "ClientDataExportRequested": _event(
        "ClientDataExportRequested",
        "8d9e0f1a-2b3c-4d4e-9f60-7b8c9d0e1f11",
        "2025-05-06T14:00:00Z",
        {
            "event_id": "bk-evt-000410",
            "occurred_at": "2025-05-06T10:00:00-04:00",
            "spa_id": "bijoux",
            "client_id": "c-1234",
            "admin_id": "admin-maria",
            "request_id": "dsar-2025-017",
        },
    ),
    "ClientContactCorrected": _event(
        "ClientContactCorrected",
        "9e0f1a2b-3c4d-4e5f-8a71-8c9d0e1f2a12",
        "2025-05-06T14:10:00Z",
        {
            "event_id": "bk-evt-000411",
            "occurred_at": "2025-05-06T10:10:00-04:00",
            "spa_id": "bijoux",
            "client_id": "c-1234",
            "admin_id": "admin-maria",
            "request_id": "dsar-2025-018",
            "phone": "+14075550199",
            "email": "jamie.r@example.com",
        },
    ),
    "ClientErasureRequested": _event(
        "ClientErasureRequested",
        "0f1a2b3c-4d5e-4f6a-9b82-9d0e1f2a3b13",
        "2025-05-20T15:00:00Z",
        {
            "event_id": "bk-evt-000452",
            "occurred_at": "2025-05-20T11:00:00-04:00",
            "spa_id": "bijoux",
            "client_id": "c-1234",
            "admin_id": "admin-maria",
            "request_id": "dsar-2025-021",
        },
    ),
    "CoursePurchased": _event(
        "CoursePurchased",
        "9cadbecf-d0e1-4cf3-8e1b-8a9bacbdce29",
        "2026-01-10T04:00:00Z",
        {"event_id": "gl-evt-002001", "occurred_at": "2026-01-10T12:00:00+08:00", "spa_id": "glow",
         "course_id": "crs-0311",
         "client": {"id": "c-mei", "first_name": "Mei", "phone": "+85291230001", "sms_opt_in": True},
         "location_id": "glow-hk", "sessions": 6, "paid": {"amount": 1080000, "currency": "HKD"},
         "purchased_on": "2026-01-10"},
    ),
    "CourseDeferred": _event(
        "CourseDeferred",
        "adbecfd0-e1f2-4d04-9f2c-9bacbdcedf30",
        "2026-09-02T03:00:00Z",
        {"event_id": "gl-evt-002077", "occurred_at": "2026-09-02T11:00:00+08:00", "spa_id": "glow",
         "course_id": "crs-0311", "admin_id": "admin-wing", "deferred_until": "2027-07-10"},
    ),
    **{name: _event(name, event_id, time, {"event_id": detail_id, "occurred_at": occurred, **_MEMBERSHIP, **detail})
       for name, event_id, time, detail_id, occurred, detail in _MEMBERSHIP_EVENTS},
}
