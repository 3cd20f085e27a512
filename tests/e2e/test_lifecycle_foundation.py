"""template.yaml in the local cloud: the lifecycle sleeps until each reminder and re-reads on waking.

Bijoux (America/New_York) reminds 48 hours before and at 08:00 on the morning of. US daylight saving
starts on Sunday 8 March 2026, between the booking and the visit, so the two reminders sit on different
UTC offsets.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import timedelta

import pytest

from localcloud.clock import utc
from medspa.adapters.store import AppointmentBooking, StoreUnavailable
from medspa.domain.appointment import Service
from medspa.domain.money import Money

pytestmark = pytest.mark.e2e

VISIT = utc(2026, 3, 10, 18)  # Tuesday 14:00 EDT


def _book(store, cloud, version: int = 1, starts_at=VISIT) -> None:
    store.appointments.upsert_from_booking(AppointmentBooking(
        appointment_id="apt-1001", client_id="bijoux#c-77", location_id="bijoux",
        policy_version="bijoux-2024-04-01.1",
        service=Service(name="Botox forehead", category="injection", duration_minutes=30,
                              price=Money(amount=45000, currency="USD")),
        starts_at=starts_at, booking_version=version, event_id=f"evt-{version}",
    ), now=cloud.now())


def _start(cloud, version: int = 1) -> str:
    return cloud.client("stepfunctions").start_execution(
        stateMachineArn=cloud.state_machine_arn("AppointmentLifecycleStateMachine"),
        name=f"apt-1001-v{version}",
        input=json.dumps({"appointment_id": "apt-1001", "booking_version": version}),
    )["executionArn"]


def _events(cloud, arn):
    return cloud.client("stepfunctions").get_execution_history(executionArn=arn)["events"]


def _exits(cloud, arn, state: str):
    return [e["timestamp"] for e in _events(cloud, arn)
            if e.get("stateExitedEventDetails", {}).get("name") == state]


def test_reminders_wake_at_48h_and_at_0800_local_across_the_dst_change(cloud, store):
    _book(store, cloud)
    arn = _start(cloud)
    began = time.perf_counter()
    cloud.run_until_idle()
    real_seconds = time.perf_counter() - began

    assert _exits(cloud, arn, "Wait until the next reminder") == [
        utc(2026, 3, 8, 18),   # 48 real hours before 14:00 EDT
        utc(2026, 3, 10, 12),  # 08:00 EDT on the day (it would be 13:00 UTC under EST)
    ]
    execution = cloud.client("stepfunctions").describe_execution(executionArn=arn)
    assert execution["status"] == "SUCCEEDED"
    assert _exits(cloud, arn, "No reminder left before the visit") == [utc(2026, 3, 10, 12)]
    assert real_seconds < 1.0, f"five virtual days took {real_seconds:.2f}s"


def test_a_wake_up_after_a_newer_booking_version_does_nothing(cloud, store):
    _book(store, cloud)
    arn = _start(cloud)
    cloud.run_for(timedelta(hours=20))
    _book(store, cloud, version=2, starts_at=VISIT + timedelta(days=7))
    cloud.run_until_idle()

    assert _exits(cloud, arn, "Superseded or closed: nothing to do") == [utc(2026, 3, 8, 18)]
    assert _exits(cloud, arn, "Wait until the next reminder") == [utc(2026, 3, 8, 18)]


def test_a_throttled_read_is_retried_by_the_state_machine(cloud, store, monkeypatch):
    _book(store, cloud)
    arn = _start(cloud)
    cloud.run_for(timedelta(hours=1))
    service = sys.modules["lambda_LifecycleFunction"].service
    real_get, failures = service._appointments.get, iter([StoreUnavailable("DynamoDB ThrottlingException")])

    def flaky_get(appointment_id):
        if (error := next(failures, None)) is not None:
            raise error
        return real_get(appointment_id)

    monkeypatch.setattr(service._appointments, "get", flaky_get)
    cloud.run_until_idle()

    events = _events(cloud, arn)
    failed = [e for e in events if e["type"] == "TaskFailed"]
    assert [e["taskFailedEventDetails"]["error"] for e in failed] == ["StoreUnavailable"]
    assert failed[0]["timestamp"] == utc(2026, 3, 8, 18)
    retried = [e["timestamp"] for e in events if e["type"] == "TaskSucceeded"]
    assert utc(2026, 3, 8, 18, 0, ) + timedelta(seconds=1) in retried  # IntervalSeconds 1
    assert cloud.client("stepfunctions").describe_execution(executionArn=arn)["status"] == "SUCCEEDED"
