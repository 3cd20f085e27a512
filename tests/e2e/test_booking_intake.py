"""Booking-site events through the real path: EventBridge bus -> SQS intake -> ingest Lambda -> lifecycle.

Duplicates and out-of-order deliveries converge on the newest booking version with exactly one running
execution; an invalid event is quarantined in the DLQ with a reason naming the field.
"""

from __future__ import annotations

import copy
import json
from datetime import timedelta

import pytest

from localcloud.clock import utc
from medspa.adapters.store import AppointmentStatus
from medspa.events.examples import EXAMPLES
from tests.e2e.booking_site import run_starts

pytestmark = pytest.mark.e2e

BOOKED = EXAMPLES["AppointmentBooked"]
RUN_STARTS = utc(2026, 3, 11, 8)  # 04:00 EDT: 6 hours before the card check of a visit on 14 March


def _event(detail_type: str, **detail) -> dict:
    base = copy.deepcopy(EXAMPLES.get(detail_type) or BOOKED)
    base["detail"].update(detail)
    return base


def _booked(version=1, starts_at="2026-03-14T14:30:00-04:00", event_id=None) -> dict:
    return _event("AppointmentBooked", booking_version=version, starts_at=starts_at,
                  event_id=event_id or f"evt-booked-{version}", appointment_id="apt-77")


def _rescheduled(version, starts_at) -> dict:
    return _event("AppointmentRescheduled", booking_version=version, starts_at=starts_at,
                  event_id=f"evt-resched-{version}", appointment_id="apt-77")


def _put(cloud, *events: dict) -> None:
    bus = cloud.deployment.outputs["BookingEventsBusName"]
    entries = [{"Source": e["source"], "DetailType": e["detail-type"], "Detail": json.dumps(e["detail"]),
                "EventBusName": bus} for e in events]
    assert cloud.client("events").put_events(Entries=entries)["FailedEntryCount"] == 0


def _executions(cloud) -> dict[str, str]:
    listed = cloud.client("stepfunctions").list_executions(
        stateMachineArn=cloud.state_machine_arn("AppointmentLifecycleStateMachine"))["executions"]
    return {e["name"]: e["status"] for e in listed}


def test_a_booking_starts_one_execution_named_after_the_appointment_version(cloud, store):
    """Nine days ahead: the run waits as a schedule until 04:00 local on the day of the card check (10:00, three
    days before), then runs under the same name."""
    _put(cloud, _booked())
    cloud.run_for(timedelta(minutes=1))
    stored = store.appointments.get("bijoux#apt-77")
    assert (stored.booking_version, stored.execution_name, stored.policy_version) == (1, "bijoux.apt-77-v1",
                                                                                       "bijoux-2024-04-01.1")
    assert (_executions(cloud), run_starts(cloud)) == ({}, ["bijoux.apt-77-v1"])
    assert stored.run.starts_at == RUN_STARTS
    assert store.clients.get("bijoux#c-1234").stripe_customer_id == "cus_Q1w2E3r4T5y6U7"
    cloud.run_until(RUN_STARTS + timedelta(minutes=1))
    assert (_executions(cloud), run_starts(cloud)) == ({"bijoux.apt-77-v1": "RUNNING"}, [])


def test_a_reschedule_stops_the_old_run_with_a_cause_and_starts_the_new_version(cloud, store):
    _put(cloud, _booked())
    cloud.run_until(RUN_STARTS + timedelta(hours=1))  # the run has started
    _put(cloud, _rescheduled(2, "2026-03-20T11:00:00-04:00"))
    cloud.run_for(timedelta(minutes=1))
    assert _executions(cloud) == {"bijoux.apt-77-v1": "ABORTED"}
    assert run_starts(cloud) == ["bijoux.apt-77-v2"]  # six days ahead again: a schedule until its card check
    sfn = cloud.client("stepfunctions")
    old = next(e for e in sfn.list_executions(
        stateMachineArn=cloud.state_machine_arn("AppointmentLifecycleStateMachine"))["executions"]
        if e["name"] == "bijoux.apt-77-v1")
    aborted = next(e for e in sfn.get_execution_history(executionArn=old["executionArn"])["events"]
                   if e["type"] == "ExecutionAborted")["executionAbortedEventDetails"]
    assert aborted["error"] == "Superseded"
    assert aborted["cause"].startswith("Superseded by booking version 2: rescheduled at the booking site")
    assert "(visit 2026-03-20 15:00 UTC)" in aborted["cause"]
    assert store.appointments.get("bijoux#apt-77").starts_at == utc(2026, 3, 20, 15)


def test_duplicates_and_out_of_order_deliveries_converge_on_the_newest_version(cloud, store):
    _put(cloud, _rescheduled(3, "2026-03-21T10:00:00-04:00"))  # before its booking: held until it arrives
    _put(cloud, _booked(), _booked(), _rescheduled(2, "2026-03-20T11:00:00-04:00"))
    cloud.run_for(timedelta(minutes=10))
    _put(cloud, _booked(), _rescheduled(2, "2026-03-20T11:00:00-04:00"))
    cloud.run_for(timedelta(minutes=10))

    stored = store.appointments.get("bijoux#apt-77")
    assert (stored.booking_version, stored.starts_at) == (3, utc(2026, 3, 21, 14))
    # v1 + v3 folded first (v3's run), then v2 arrived late: the same newest version, refolded as revision 3. The
    # refold leaves v3's visit time, so the next step is as it was and v3's run is kept: no "-r3" run. None has
    # started yet (the visit is 16 days ahead), and none but v3's ever will.
    assert run_starts(cloud) == ["bijoux.apt-77-v3"] and _executions(cloud) == {}
    assert stored.revision == 3 and stored.run_identity == (3, 2)
    dlq = cloud.deployment.outputs["IntakeDeadLetterQueueUrl"]
    assert cloud.client("sqs").receive_message(QueueUrl=dlq).get("Messages", []) == []


def test_a_cancellation_stops_the_run_and_records_who_cancelled(cloud, store):
    _put(cloud, _booked())
    cloud.run_for(timedelta(hours=1))
    _put(cloud, _event("AppointmentCancelled", booking_version=2, appointment_id="apt-77", by="client",
                       event_id="evt-cancel"))
    cloud.run_for(timedelta(minutes=1))
    assert store.appointments.get("bijoux#apt-77").status == AppointmentStatus.CANCELLED
    # Cancelled in time, nothing is left to do: no run for the cancelled revision (a late cancel would get one to
    # settle its fee). The booking's run had not started: its schedule is deleted, and it never runs.
    stored = store.appointments.get("bijoux#apt-77")
    assert stored.run is not None and stored.run.idle
    assert _executions(cloud) == {} and run_starts(cloud) == []


def test_an_invalid_event_is_quarantined_with_the_field_named_and_nothing_else_is_lost(cloud, store):
    bad = _booked(version=1)
    bad["detail"]["service"]["price"]["amount"] = 42.5
    _put(cloud, bad, _booked(version=1, event_id="evt-good"))
    cloud.run_for(timedelta(minutes=1))

    dlq = cloud.deployment.outputs["IntakeDeadLetterQueueUrl"]
    messages = cloud.client("sqs").receive_message(QueueUrl=dlq, MessageAttributeNames=["All"])["Messages"]
    assert len(messages) == 1
    reason = messages[0]["MessageAttributes"]["rejection_reason"]["StringValue"]
    assert "detail.service.price.amount" in reason
    assert "+14075550123" not in reason and "jamie" not in reason.lower()
    assert store.appointments.get("bijoux#apt-77").last_event_id == "evt-good"
