"""Executions start when they are needed (issue 13): a visit booked weeks ahead is a one-time EventBridge
Scheduler schedule until shortly before its first step (the pack's ``run_start``, 6 hours by default), then
one run takes its steps. A reschedule or a cancellation before then moves or deletes the schedule; nothing
ever runs for the versions it replaced. So the account's open executions follow the visits of the next few
days, not every visit booked.

Bijoux checks the card on file 3 days before a visit at 10:00 local: that is the first step of a visit booked
further ahead, so its run starts at 04:00 local that day.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from localcloud.clock import utc
from localcloud.report import parse_time
from localcloud.simulate import run_scenario
from tests.e2e.booking_site import run_starts
from tests.e2e.test_spa_api import ask

pytestmark = pytest.mark.e2e

START = utc(2026, 3, 2, 15)  # Monday 10:00 EST
VISIT = utc(2026, 3, 30, 18)  # Monday 30 March, 14:00 EDT: four weeks ahead
CARD_CHECK = utc(2026, 3, 27, 14)  # Friday 27 March, 10:00 EDT, 3 days before
INJECTION = dict(name="Botox forehead", category="injection_laser", minutes=30, price=45000)


@pytest.mark.parametrize("cloud", [START], indirect=True)
def test_a_visit_booked_four_weeks_ahead_runs_from_6_hours_before_its_card_check_and_takes_every_step(cloud, site):
    site.client("bijoux", "c-ana")
    site.book("apt-1", "c-ana", "bijoux", VISIT, **INJECTION)
    cloud.run_for(timedelta(minutes=5))

    assert site.executions("apt-1") == []
    assert run_starts(cloud) == ["bijoux.apt-1-v1"]
    assert site.stored("apt-1").run.starts_at == CARD_CHECK - timedelta(hours=6)
    status, timeline = ask(cloud, "GET", "/spas/bijoux/appointments/apt-1/timeline", spa_id="bijoux")
    assert (status, timeline["execution_name"], timeline["execution_starts_at"]) == (
        200, "bijoux.apt-1-v1", "2026-03-27T08:00:00Z")  # the admin sees the pending start

    cloud.run_until(CARD_CHECK - timedelta(hours=6, minutes=1))
    assert site.executions("apt-1") == []
    cloud.run_until(CARD_CHECK - timedelta(hours=5))
    [run] = site.executions("apt-1")
    assert (run["name"], run["status"]) == ("bijoux.apt-1-v1", "RUNNING")
    assert run_starts(cloud) == []  # a fired schedule deletes itself

    cloud.run_until(VISIT - timedelta(minutes=5))
    site.send("ClientCheckedIn", "apt-1", arrived_at=(VISIT - timedelta(minutes=5)).isoformat())
    cloud.run_until_idle()
    assert [kind for kind, status, _ in site.messages("apt-1") if status == "sent"] == ["reminder_48h",
                                                                                       "reminder_morning_of"]
    assert site.stored("apt-1").card_check.outcome == "usable"


@pytest.mark.parametrize("cloud", [START], indirect=True)
def test_a_reschedule_before_the_run_starts_moves_its_schedule_and_an_on_time_cancel_deletes_it(cloud, site):
    site.client("bijoux", "c-ben")
    site.book("apt-2", "c-ben", "bijoux", VISIT, **INJECTION)
    cloud.run_for(timedelta(days=2))
    site.send("AppointmentRescheduled", "apt-2", starts_at=(VISIT + timedelta(days=7)).isoformat())
    cloud.run_for(timedelta(minutes=5))

    assert run_starts(cloud) == ["bijoux.apt-2-v2"]
    assert site.stored("apt-2").run.starts_at == CARD_CHECK + timedelta(days=7) - timedelta(hours=6)

    cloud.run_for(timedelta(days=2))
    site.send("AppointmentCancelled", "apt-2", by="client")  # weeks ahead: on time, nothing is owed
    cloud.run_until_idle()

    assert run_starts(cloud) == []
    assert site.executions("apt-2") == [] and site.stored("apt-2").run.idle  # nothing left to do: no run at all
    assert site.ledger("apt-2") == [] and site.messages("apt-2") == []


def test_open_executions_follow_the_visits_of_the_next_days_not_every_visit_booked():
    """Thirty visits booked in the first week of March for late March and April: at no point are more runs
    open than there are visits in the next 3 days and 6 hours (the card check and the margin) plus the ones
    still finishing; every visit still gets both reminders."""
    booked = []
    for i in range(30):
        visit = VISIT + timedelta(days=i, hours=i % 3)
        booked.append({"at": (START + timedelta(hours=5 * i)).isoformat().replace("+00:00", "Z"),
                       "detail_type": "AppointmentBooked", "detail": {
                           "spa_id": "bijoux", "appointment_id": f"far-{i:02d}", "booking_version": 1,
                           "location_id": "bijoux", "client": {"id": "c-far"},
                           "service": {"name": "HydraFacial", "category": "esthetician", "duration_minutes": 60,
                                       "price": {"amount": 22500, "currency": "USD"}},
                           "starts_at": visit.isoformat(), "payment": {"card_on_file": True}}})
        booked.append({"at": (visit - timedelta(minutes=5)).isoformat().replace("+00:00", "Z"),
                       "detail_type": "ClientCheckedIn", "detail": {
                           "spa_id": "bijoux", "appointment_id": f"far-{i:02d}", "booking_version": 2,
                           "arrived_at": (visit - timedelta(minutes=5)).isoformat()}})
    booked.sort(key=lambda e: e["at"])
    report = run_scenario({"name": "far-ahead", "start": START.isoformat().replace("+00:00", "Z"),
                           "clients": [{"spa_id": "bijoux", "id": "c-far", "card": "visa", "phone": "+14075550188",
                                        "sms_opt_in": True}], "events": booked})

    runs = [(parse_time(e["started_at"]), parse_time(e["stopped_at"]))
            for a in report["appointments"] for e in a["executions"]]
    visits = [parse_time(a["starts_at"]) for a in report["appointments"]]
    moments = sorted({start for start, _ in runs})
    most_open = max(sum(start <= t < stop for start, stop in runs) for t in moments)
    near = max(sum(t <= v <= t + timedelta(days=3, hours=6) for v in visits) for t in moments)
    assert most_open <= near + 1 < 30 // 4, (most_open, near)
    assert all(sorted(m["kind"] for m in report["messages"] if m["appointment_id"] == a["appointment_id"]
                      and m["status"] == "sent") == ["reminder_48h", "reminder_morning_of"]
               for a in report["appointments"])
