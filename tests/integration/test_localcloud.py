"""The local cloud runs a SAM template the way AWS would, under a virtual clock, the same way every run."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest

from localcloud.cloud import LocalCloud
from localcloud.clock import utc

TINY = Path(__file__).parent / "fixtures" / "tiny" / "template.yaml"
START = utc(2026, 3, 6, 12)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture
def cloud():
    with LocalCloud(START, template=TINY) as cloud:
        cloud.deploy()
        yield cloud


def _start(cloud: LocalCloud, name: str, payload: dict) -> str:
    return cloud.client("stepfunctions").start_execution(
        stateMachineArn=cloud.state_machine_arn("TinyStateMachine"), name=name, input=json.dumps(payload)
    )["executionArn"]


def _history(cloud: LocalCloud, arn: str) -> list[tuple[str, str]]:
    events = cloud.client("stepfunctions").get_execution_history(executionArn=arn)["events"]
    return [(e["timestamp"].isoformat(), e["type"]) for e in events]


def test_48_hour_wait_lambda_task_and_retry_run_in_well_under_a_second_with_virtual_timestamps(cloud):
    arn = _start(cloud, "ada", {"name": "ada"})
    began = time.perf_counter()
    cloud.run_until_idle()
    elapsed = time.perf_counter() - began

    execution = cloud.client("stepfunctions").describe_execution(executionArn=arn)
    assert execution["status"] == "SUCCEEDED"
    assert json.loads(execution["output"]) == {
        "greeting": "hello ada", "attempts": 2, "at": "2026-03-08T12:00:00+00:00",
    }
    history = _history(cloud, arn)
    assert ("2026-03-08T12:00:00+00:00", "TaskFailed") in history  # 48 virtual hours later
    assert ("2026-03-08T12:10:00+00:00", "TaskSucceeded") in history  # the Retry's 600 s back-off
    assert history[0] == ("2026-03-06T12:00:00+00:00", "ExecutionStarted")
    assert elapsed < 0.5, f"took {elapsed:.3f}s of real time"


def test_the_exception_class_name_is_the_error_step_functions_matches(cloud):
    arn = _start(cloud, "bob", {"name": "bob"})
    cloud.run_until_idle()
    events = cloud.client("stepfunctions").get_execution_history(executionArn=arn)["events"]
    failed = next(e for e in events if e["type"] == "TaskFailed")["taskFailedEventDetails"]
    assert failed["error"] == "TransientFailure"
    assert "first attempt for bob" in failed["cause"]


def test_overlapping_waits_do_not_add_up(cloud):
    arns = [_start(cloud, f"guest-{i}", {"name": f"guest-{i}"}) for i in range(20)]
    cloud.run_until_idle()
    sfn = cloud.client("stepfunctions")
    stops = {sfn.describe_execution(executionArn=a)["stopDate"] for a in arns}
    assert stops == {utc(2026, 3, 8, 12, 10)}
    assert cloud.now() == utc(2026, 3, 8, 12, 10)


def test_run_until_stops_at_the_requested_instant_with_executions_still_waiting(cloud):
    arn = _start(cloud, "cy", {"name": "cy"})
    cloud.run_until(START + timedelta(hours=47))
    assert cloud.now() == START + timedelta(hours=47)
    assert cloud.client("stepfunctions").describe_execution(executionArn=arn)["status"] == "RUNNING"
    cloud.run_for(timedelta(hours=2))
    assert cloud.client("stepfunctions").describe_execution(executionArn=arn)["status"] == "SUCCEEDED"


def test_stop_execution_during_a_wait_aborts_at_once_at_the_virtual_time(cloud):
    arn = _start(cloud, "dee", {"name": "dee"})
    cloud.run_for(timedelta(hours=5))
    cloud.client("stepfunctions").stop_execution(executionArn=arn, error="Rescheduled", cause="moved to Friday")
    cloud.run_for(timedelta(0))
    execution = cloud.client("stepfunctions").describe_execution(executionArn=arn)
    assert execution["status"] == "ABORTED"
    assert execution["stopDate"] == START + timedelta(hours=5)
    assert cloud.clock.sleeping == 0


@pytest.mark.parametrize(("entered", "due"), [
    (timedelta(milliseconds=700), timedelta(hours=1)),  # after a task that took 0.7 s: never late
    (timedelta(0), timedelta(hours=1, milliseconds=250)),  # a jittered stamp: never early
], ids=["entered-at-a-fraction", "stamp-with-a-fraction"])
def test_a_timestamp_wait_ends_at_its_timestamp_to_the_millisecond(cloud, entered, due):
    """A reminder due at the very second the visit is rescheduled is sent before the reschedule in both
    engines only if the lifecycle's Wait ends at its timestamp, whatever the instant it was entered."""
    sfn = cloud.client("stepfunctions")
    machine = sfn.create_state_machine(
        name="stamp", roleArn="arn:aws:iam::123456789012:role/stamp",
        definition=json.dumps({"StartAt": "Wait until due",
                               "States": {"Wait until due": {"Type": "Wait", "TimestampPath": "$.at", "End": True}}}),
    )["stateMachineArn"]
    cloud.run_for(entered)
    arn = sfn.start_execution(stateMachineArn=machine, input=json.dumps(
        {"at": (START + due).isoformat(timespec="milliseconds").replace("+00:00", "Z")}))["executionArn"]
    cloud.run_until_idle()
    assert sfn.describe_execution(executionArn=arn)["stopDate"] == START + due
    assert cloud.now() == START + due


def _trace(seed_names: list[str]) -> list[list[tuple[str, str]]]:
    with LocalCloud(START, template=TINY) as cloud:
        cloud.deploy()
        arns = []
        for i, name in enumerate(seed_names):
            arns.append(_start(cloud, name, {"name": name}))
            cloud.run_for(timedelta(minutes=7 * i))
        cloud.run_until_idle()
        return [_history(cloud, a) for a in arns]


def test_the_same_input_gives_the_same_histories_every_run():
    names = [f"client-{i}" for i in range(12)]
    assert _trace(names) == _trace(names)


def test_eventbridge_to_sqs_to_lambda_delivers_each_event_once_in_batches(cloud):
    events = cloud.client("events")
    result = events.put_events(Entries=[
        {"Source": "tiny.test", "DetailType": "greeting", "Detail": json.dumps({"n": i}), "EventBusName": "tiny-bus"}
        for i in range(7)
    ])
    assert result["FailedEntryCount"] == 0
    cloud.run_until_idle()
    received = [json.loads(body)["detail"]["n"] for body in _flaky_module(cloud).received]
    assert sorted(received) == list(range(7))
    assert [i.function for i in cloud.runtime.invocations] == ["FlakyFunction", "FlakyFunction"]  # batches of 5


def test_a_failed_record_returns_after_the_visibility_timeout_and_ends_in_the_dlq(cloud):
    sqs = cloud.client("sqs")
    inbox = cloud.deployment.physical("InboxQueue")
    sqs.send_message(QueueUrl=inbox, MessageBody="poison pill")
    sqs.send_message(QueueUrl=inbox, MessageBody="fine")
    cloud.run_until_idle()

    received = _flaky_module(cloud).received
    assert received.count("fine") == 1
    assert received.count("poison pill") == 3  # maxReceiveCount
    assert cloud.now() == START + timedelta(minutes=3, milliseconds=3)  # three 60 s visibility timeouts
    dlq = cloud.deployment.physical("InboxDLQ")
    moved = sqs.receive_message(QueueUrl=dlq)["Messages"]
    assert [m["Body"] for m in moved] == ["poison pill"]


def test_scheduler_cron_fires_at_local_wall_time_across_a_dst_change(cloud):
    scheduler = cloud.client("scheduler")
    scheduler.create_schedule(
        Name="morning-drafts",
        ScheduleExpression="cron(0 6 * * ? *)",
        ScheduleExpressionTimezone="America/New_York",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": cloud.state_machine_arn("TinyStateMachine"), "RoleArn": "arn:aws:iam::123456789012:role/x",
                "Input": json.dumps({"name": "scheduled"})},
    )
    cloud.run_until(utc(2026, 3, 10, 0))
    fired = [when for _, when in cloud.scheduler.fired]
    # 06:00 in New York is 11:00 UTC before 8 March 2026 (EST) and 10:00 UTC from then on (EDT).
    assert fired == [utc(2026, 3, 7, 11), utc(2026, 3, 8, 10), utc(2026, 3, 9, 10)]
    names = [e["name"] for e in cloud.client("stepfunctions").list_executions(
        stateMachineArn=cloud.state_machine_arn("TinyStateMachine"))["executions"]]
    assert sorted(names) == ["morning-drafts-20260307T110000Z", "morning-drafts-20260308T100000Z",
                             "morning-drafts-20260309T100000Z"]


def test_scheduler_at_expression_fires_once(cloud):
    cloud.client("scheduler").create_schedule(
        Name="once", ScheduleExpression="at(2026-03-07T18:30:00)", ScheduleExpressionTimezone="Asia/Hong_Kong",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": cloud.state_machine_arn("TinyStateMachine"), "RoleArn": "arn:aws:iam::123456789012:role/x"},
    )
    cloud.run_until(utc(2026, 3, 20))
    assert [when for _, when in cloud.scheduler.fired] == [utc(2026, 3, 7, 10, 30)]


def _flaky_module(cloud: LocalCloud):
    import sys

    return sys.modules["lambda_FlakyFunction"]
