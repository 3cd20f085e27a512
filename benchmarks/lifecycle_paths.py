"""State transitions per appointment lifecycle, counted from the execution histories, and simulation speed.

Happy path: booked, both reminders, confirmed, checked in, completed. Worst path: a visit moved late
(a fee on a card that declines, retried on the whole dunning schedule), then missed (a no-show fee,
declined and retried again), then both fees waived by an admin. Run: ``make bench`` or
``.venv/bin/python benchmarks/lifecycle_paths.py``.
"""

from __future__ import annotations

import time

from localcloud.simulate import run_scenario

TARGETS = {"happy": 12, "worst": 25}  # issue 10: state transitions per appointment, all its executions together

CLIENT = {"spa_id": "bijoux", "id": "c-1", "phone": "+14075550101", "sms_opt_in": True}
SERVICE = {"name": "Botox forehead", "category": "injection_laser", "duration_minutes": 30,
           "price": {"amount": 45000, "currency": "USD"}}


def _booked(at: str, starts_at: str) -> dict:
    return {"at": at, "detail_type": "AppointmentBooked", "detail": {
        "spa_id": "bijoux", "appointment_id": "apt-1", "booking_version": 1, "location_id": "bijoux",
        "client": {"id": "c-1"}, "service": SERVICE, "starts_at": starts_at, "payment": {"card_on_file": True}}}


def _event(at: str, detail_type: str, version: int | None, **detail) -> dict:
    body = {"spa_id": "bijoux", "appointment_id": "apt-1", **detail}
    if version is not None:
        body["booking_version"] = version
    return {"at": at, "detail_type": detail_type, "detail": body}


HAPPY = {"name": "happy", "start": "2026-03-02T15:00:00Z", "clients": [{**CLIENT, "card": "visa"}], "events": [
    _booked("2026-03-02T15:00:00Z", "2026-03-10T18:00:00Z"),
    _event("2026-03-09T12:00:00Z", "AppointmentConfirmed", 2, channel="sms"),
    _event("2026-03-10T17:55:00Z", "ClientCheckedIn", 3, arrived_at="2026-03-10T17:55:00Z"),
    _event("2026-03-10T18:40:00Z", "AppointmentCompleted", 4),
]}

WORST = {"name": "worst", "start": "2026-03-02T15:00:00Z", "clients": [{**CLIENT, "card": "chargeCustomerFail"}],
         "events": [
    _booked("2026-03-02T15:00:00Z", "2026-03-10T18:00:00Z"),
    _event("2026-03-09T12:00:00Z", "AppointmentRescheduled", 2, starts_at="2026-03-24T18:00:00Z"),
    _event("2026-04-10T12:00:00Z", "FeeWaived", None, purpose="late_reschedule_fee", admin_id="admin-1",
           reason="Goodwill"),
    _event("2026-04-10T12:05:00Z", "FeeWaived", None, purpose="no_show_fee", admin_id="admin-1", reason="Goodwill"),
]}


def main() -> None:
    for scenario in (HAPPY, WORST):
        began = time.perf_counter()
        report = run_scenario(scenario)
        [appointment] = report["appointments"]
        runs = [(e["name"], e["status"], e["state_transitions"]) for e in appointment["executions"]]
        total = sum(t for *_, t in runs)
        print(f"{scenario['name']:>6}: {total} state transitions over {len(runs)} executions "
              f"({', '.join(f'{n} {s.lower()} {t}' for n, s, t in runs)}); "
              f"{len(report['ledger'])} ledger entries, {len(report['messages'])} messages; "
              f"{time.perf_counter() - began:.1f} s real; target <= {TARGETS[scenario['name']]}: "
              f"{'meets' if total <= TARGETS[scenario['name']] else 'misses'}")


if __name__ == "__main__":
    main()
