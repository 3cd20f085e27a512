"""Glow's prepaid courses end to end (issue 9 item 4): the balance of sessions kept here, the next-session prompt,
a late cancellation taking a session (and only while one is left), a medical deferral, the expiry notice and
the expiry recorded in the ledger, driven by booking-site events and the daily MembershipDrafts run in Hong Kong.

Glow: "Clients must use pre-paid services, including those forming part of a course, within 12 months of
purchase"; "clients may defer pre-paid services ... for up to 18 months"; "Clients with a course of treatment
are required to book their following session on completion of each session."
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.e2e.booking_site import quarantined

pytestmark = pytest.mark.e2e

HK = ZoneInfo("Asia/Hong_Kong")
FACIAL = dict(name="HydraFacial", category="facial", minutes=60, price=180000)


def hk(year: int, month: int, day: int, hour: int = 10) -> datetime:
    return datetime(year, month, day, hour, tzinfo=HK).astimezone(ZoneInfo("UTC"))


def buy(site, course_id: str, client_id: str, sessions: int, purchased_on: date) -> None:
    known = site.clients[client_id]
    site.send("CoursePurchased", spa_id="glow", course_id=course_id, location_id="glow-hk", sessions=sessions,
              client={k: v for k, v in known["client"].items() if v is not None},
              paid={"amount": 180000 * sessions, "currency": "HKD"}, purchased_on=purchased_on.isoformat())


def told(inbox, detail_type: str) -> list[dict]:
    return [d for kind, d in inbox if kind == detail_type]


@pytest.mark.parametrize("cloud", [hk(2026, 3, 2, 9)], indirect=True)
def test_a_completed_course_visit_uses_a_session_and_prompts_the_next_booking_a_late_cancel_takes_one(cloud, site):
    site.client("glow", "c-mei", phone="+85291230001")
    buy(site, "crs-1", "c-mei", sessions=2, purchased_on=date(2026, 3, 2))
    site.book("apt-1", "c-mei", "glow-hk", hk(2026, 3, 4, 14), course_id="crs-1", course_session_available=True,
              **FACIAL)
    cloud.run_until(hk(2026, 3, 4, 14) + timedelta(minutes=5))
    site.send("ClientCheckedIn", "apt-1", arrived_at=cloud.now().isoformat())
    cloud.run_for(timedelta(hours=1))
    site.send("AppointmentCompleted", "apt-1")
    cloud.run_for(timedelta(minutes=5))
    [prompt] = told(site.inbox(), "CourseNextSessionDue")
    assert (prompt["course_id"], prompt["sessions_left"], prompt["completed_appointment_id"]) == ("crs-1", 1, "apt-1")

    site.book("apt-2", "c-mei", "glow-hk", hk(2026, 3, 6, 14), course_id="crs-1", course_session_available=True,
              **FACIAL)
    site.book("apt-3", "c-mei", "glow-hk", hk(2026, 3, 7, 14), course_id="crs-1", course_session_available=True,
              **FACIAL)
    cloud.run_until(hk(2026, 3, 6, 9))
    site.send("AppointmentCancelled", "apt-2", by="client")  # 5 hours before: inside 24 hours
    cloud.run_until(hk(2026, 3, 7, 9))
    site.send("AppointmentCancelled", "apt-3", by="client")  # the course is used up: HK$500 instead
    cloud.run_for(timedelta(hours=1))

    assert site.ledger("apt-2") == [("late_cancel_fee_course_session", "deduction", 180000, "succeeded")]
    assert [e[:2] for e in site.ledger("apt-3")] != [("late_cancel_fee_course_session", "deduction")]
    course, _ = site.store.courses.get("glow#crs-1")
    assert (course.sessions_left, [(u.appointment_id, u.use) for u in course.used]) == (
        0, [("glow#apt-1", "completed"), ("glow#apt-2", "deducted")])
    assert quarantined(cloud) == []


@pytest.mark.parametrize("cloud", [hk(2027, 2, 20, 9)], indirect=True)
def test_unused_sessions_expire_12_months_after_purchase_with_a_notice_a_week_before_and_a_ledger_entry(
        cloud, site):
    site.client("glow", "c-lok", phone="+85291230002")
    buy(site, "crs-2", "c-lok", sessions=3, purchased_on=date(2026, 3, 2))  # recorded by the desk a year late
    cloud.run_until(hk(2027, 2, 22, 12))  # last day of use: 2027-03-01; notice on 2027-02-22 at 09:00
    [soon] = told(site.inbox(), "CourseExpiringSoon")
    assert (soon["expires_on"], soon["sessions_left"]) == ("2027-03-01", 3)
    cloud.run_until(hk(2027, 3, 2, 12))

    [expired] = told(site.inbox(), "CourseSessionsExpired")
    assert (expired["sessions_expired"], expired["value"]) == (3, {"amount": 540000, "currency": "HKD"})
    [entry] = site.store.ledger.for_appointment("glow#crs-2")
    assert (entry.kind.value, entry.purpose, entry.amount.amount, entry.status.value) == (
        "expiry", "course_sessions_expired", 540000, "succeeded")
    assert site.store.courses.get("glow#crs-2")[0].sessions_left == 0


@pytest.mark.parametrize("cloud", [hk(2027, 2, 27, 9)], indirect=True)
def test_a_verified_medical_deferral_moves_the_last_day_up_to_18_months_and_no_further(cloud, site):
    site.client("glow", "c-yan", phone="+85291230003")
    buy(site, "crs-3", "c-yan", sessions=2, purchased_on=date(2026, 3, 2))
    cloud.run_for(timedelta(hours=1))
    site.send("CourseDeferred", spa_id="glow", course_id="crs-3", admin_id="admin-wing", deferred_until="2027-09-02")
    cloud.run_for(timedelta(hours=1))
    site.send("CourseDeferred", spa_id="glow", course_id="crs-3", admin_id="admin-wing", deferred_until="2027-09-01")
    cloud.run_for(timedelta(hours=1))

    assert site.store.courses.get("glow#crs-3")[0].expires_on == date(2027, 9, 1)
    [(_, reason)] = quarantined(cloud)
    assert reason.startswith("CourseDeferred") or "detail.deferred_until" in reason
    assert "2027-09-02" not in reason
    cloud.run_until(hk(2027, 3, 3, 12))  # past the first year: the deferral keeps the sessions
    assert site.store.courses.get("glow#crs-3")[0].sessions_left == 2
