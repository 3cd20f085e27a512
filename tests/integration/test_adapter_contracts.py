"""The in-memory adapters keep the contract of the real ones, so tests and backtests on them cannot drift.

Each test runs the same assertions against the in-memory adapter and the AWS one (moto): Step Functions'
rule that a run's name is taken once, by one input; what a booking site reads from the bus; and the outbox's
pace per sending identity and its claims on each message.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from medspa.adapters.booking_site import EventBridgeBookingSite, InMemoryBookingSite
from medspa.adapters.executions import InMemoryExecutions, LifecycleExecutions
from medspa.adapters.outbox import DynamoPacer, DynamoSendClaims, InMemoryPacer, InMemorySendClaims
from medspa.ports import BookingSiteEvents, ExecutionNameTaken, Executions, Pacer, SendClaims

REGION = "us-east-1"
SLEEPS_A_DAY = {"StartAt": "Sleep", "States": {"Sleep": {"Type": "Wait", "Seconds": 86400, "End": True}}}


@pytest.fixture(params=["in_memory", "step_functions"])
def executions(request) -> Iterator[tuple[Executions, str]]:
    """The adapter and the ARN prefix its runs get."""
    if request.param == "in_memory":
        yield InMemoryExecutions(), InMemoryExecutions.arn("")
        return
    with mock_aws():
        sfn = boto3.client("stepfunctions", region_name=REGION)
        arn, waiver = (sfn.create_state_machine(name=name, definition=json.dumps(SLEEPS_A_DAY),
                                                roleArn=f"arn:aws:iam::123456789012:role/{name}")["stateMachineArn"]
                       for name in ("lifecycle", "fee-waiver"))
        yield LifecycleExecutions(sfn, arn, waiver), arn.replace(":stateMachine:", ":execution:") + ":"


def test_a_run_is_started_once_per_name_and_a_repeat_finds_it(executions) -> None:
    runs, prefix = executions
    first = runs.start("bijoux#apt-1", 1)
    again = runs.start("bijoux#apt-1", 1)
    assert (first.name, first.already_running) == ("bijoux.apt-1-v1", False)
    # Step Functions answers a repeated start of a running run like the first (same ARN), without saying so.
    assert (again.name, again.arn, again.already_running) == (first.name, first.arn, False)
    waiver = runs.start_waiver("bijoux#apt-1", "no_show_fee", "admin-maria")
    assert runs.start_waiver("bijoux#apt-1", "no_show_fee", "admin-maria").arn == waiver.arn
    assert waiver.name == "bijoux.apt-1-waive-no_show_fee"
    if prefix.startswith("arn:aws:states:us"):  # Step Functions: the waiver runs in its own state machine
        assert waiver.arn.startswith(prefix.replace(":lifecycle:", ":fee-waiver:"))


def test_a_name_taken_by_other_input_is_refused(executions) -> None:
    runs, _ = executions
    runs.start("bijoux#apt-2", 1)
    with pytest.raises(ExecutionNameTaken):
        runs.start("bijoux#apt-2", 2, name="bijoux.apt-2-v1")


def test_a_run_is_stopped_while_it_runs_and_an_unknown_one_is_not_found(executions) -> None:
    runs, prefix = executions
    started = runs.start("bijoux#apt-3", 1)
    assert runs.stop_if_running(started.arn, error="Superseded", cause="v2 booked") is True
    assert runs.stop_if_running(started.arn, error="Superseded", cause="v2 booked") is False
    assert runs.stop(prefix + "bijoux.nothing-v1", error="Superseded", cause="none") is False
    assert runs.start("bijoux#apt-3", 1).already_running is False


@pytest.fixture(params=["in_memory", "eventbridge"])
def booking_site(request) -> Iterator[tuple[BookingSiteEvents, Any]]:
    """The adapter and how the booking site reads what it was told: (detail-type, event_id, detail)."""
    if request.param == "in_memory":
        site = InMemoryBookingSite()
        yield site, lambda: site.received
        return
    with mock_aws():
        events, sqs = boto3.client("events", region_name=REGION), boto3.client("sqs", region_name=REGION)
        events.create_event_bus(Name="booking")
        url = sqs.create_queue(QueueName="site")["QueueUrl"]
        queue = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="site", EventBusName="booking", EventPattern=json.dumps({"source": ["medspa.lifecycle"]}))
        events.put_targets(Rule="site", EventBusName="booking", Targets=[{"Id": "site", "Arn": queue}])

        def read() -> list[tuple[str, str, dict[str, Any]]]:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            bodies = [json.loads(m["Body"]) for m in messages]
            return [(b["detail-type"], b["detail"].pop("event_id"), b["detail"]) for b in bodies]

        yield EventBridgeBookingSite(events, "booking"), read


def test_the_booking_site_reads_each_event_as_json_with_its_id(booking_site) -> None:
    site, read = booking_site
    when = datetime(2026, 3, 17, 18, tzinfo=UTC)
    site.publish("FeeCharged", "bijoux#apt-1:no_show:FeeCharged:1",
                 {"spa_id": "bijoux", "appointment_id": "apt-1", "fee": {"amount": 5000, "currency": "USD"},
                  "charged_at": when, "ledger_entries": ["bijoux#apt-1#no_show_fee#1"]})
    assert read() == [("FeeCharged", "bijoux#apt-1:no_show:FeeCharged:1", {
        "spa_id": "bijoux", "appointment_id": "apt-1", "fee": {"amount": 5000, "currency": "USD"},
        "charged_at": str(when), "ledger_entries": ["bijoux#apt-1#no_show_fee#1"]})]


@pytest.fixture(params=["in_memory", "dynamodb"])
def outbox_state(request) -> Iterator[tuple[Pacer, SendClaims]]:
    """The outbox's pace (1 SMS a second, 4 emails) and claims, in a dict or in an OutboxTable like the template's."""
    rates = {"sms": 1, "email": 4}
    if request.param == "in_memory":
        yield InMemoryPacer(rates), InMemorySendClaims()
        return
    with mock_aws():
        db = boto3.client("dynamodb", region_name=REGION)
        db.create_table(TableName="outbox", BillingMode="PAY_PER_REQUEST",
                        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
        yield DynamoPacer(db, "outbox", rates), DynamoSendClaims(db, "outbox")


def test_an_identity_gives_each_moment_once_at_its_rate_and_an_idle_one_sends_at_once(outbox_state) -> None:
    pacer, _ = outbox_state
    eight = datetime(2026, 6, 9, 12, 0, tzinfo=UTC)
    morning = [pacer.reserve("sms", eight) for _ in range(4)]
    assert morning == [eight + timedelta(seconds=s) for s in range(4)]
    assert pacer.reserve("email", eight + timedelta(seconds=1)) == eight + timedelta(seconds=1)
    assert pacer.reserve("email", eight + timedelta(seconds=1)) == eight + timedelta(seconds=1.25)
    assert pacer.reserve("sms", eight + timedelta(seconds=2)) == eight + timedelta(seconds=4)  # behind the backlog
    assert pacer.reserve("sms", eight + timedelta(minutes=5)) == eight + timedelta(minutes=5)  # idle again


def test_a_message_is_claimed_once_and_a_refused_one_may_be_claimed_again(outbox_state) -> None:
    _, claims = outbox_state
    now = datetime(2026, 6, 9, 12, 0, tzinfo=UTC)
    assert claims.claim("bijoux", "bijoux#apt-1/reminder_48h@x/sms", now) is True
    assert claims.claim("bijoux", "bijoux#apt-1/reminder_48h@x/sms", now) is False
    assert claims.claim("glow", "bijoux#apt-1/reminder_48h@x/sms", now) is True  # another spa's key space
    claims.release("bijoux", "bijoux#apt-1/reminder_48h@x/sms")
    assert claims.claim("bijoux", "bijoux#apt-1/reminder_48h@x/sms", now) is True
