"""SAM ``ScheduleV2`` events become EventBridge Scheduler schedules in the local cloud, firing at local wall time."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from localcloud.cloud import LocalCloud
from localcloud.clock import utc
from localcloud.deploy import DeployFailed, load_template

FIXTURE = Path(__file__).parent / "fixtures" / "scheduled"
TEMPLATE = FIXTURE / "template.yaml"
START = utc(2026, 3, 6)  # Friday; the US moves to daylight saving time on Sunday 8 March 2026
CHICAGO, HONG_KONG = "MorningStateMachineChicagoMorning", "MorningStateMachineHongKongMorning"

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture
def cloud():
    with LocalCloud(START, template=TEMPLATE) as cloud:
        cloud.deploy()
        yield cloud


def _variant(tmp_path: Path, change) -> Path:
    """The fixture template changed by ``change(events)``, its code still read from the fixture."""
    template = load_template(TEMPLATE)
    template["Resources"]["RememberFunction"]["Properties"]["CodeUri"] = str(FIXTURE / "functions" / "remember")
    machine = template["Resources"]["MorningStateMachine"]["Properties"]
    machine["DefinitionUri"] = str(FIXTURE / "statemachines" / "morning.asl.json")
    change(machine["Events"])
    path = tmp_path / "template.json"
    path.write_text(json.dumps(template))
    return path


def _executions(cloud: LocalCloud) -> list[dict[str, Any]]:
    sfn = cloud.client("stepfunctions")
    summaries = sfn.list_executions(stateMachineArn=cloud.state_machine_arn("MorningStateMachine"))["executions"]
    return sorted((sfn.describe_execution(executionArn=s["executionArn"]) for s in summaries),
                  key=lambda e: e["startDate"])


def test_each_scheduleV2_event_becomes_a_schedule_aimed_at_the_state_machine(cloud):
    deployment = cloud.deployment
    assert deployment.completed == {CHICAGO: "AWS::Scheduler::Schedule", HONG_KONG: "AWS::Scheduler::Schedule"}
    assert deployment.physical(CHICAGO) == CHICAGO  # SAM names it after the logical id
    assert deployment.physical(HONG_KONG) == "hong-kong-morning"

    scheduler, iam = cloud.client("scheduler"), cloud.client("iam")
    chicago = scheduler.get_schedule(Name=CHICAGO)
    assert (chicago["ScheduleExpression"], chicago["ScheduleExpressionTimezone"]) == \
        ("cron(0 9 * * ? *)", "America/Chicago")
    assert chicago["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert chicago["State"] == "ENABLED"
    assert chicago["Target"]["Arn"] == cloud.state_machine_arn("MorningStateMachine")
    assert chicago["Target"]["RoleArn"] == iam.get_role(
        RoleName=deployment.physical(f"{CHICAGO}Role"))["Role"]["Arn"]
    assert json.loads(chicago["Target"]["Input"]) == {"spa": "chicago"}
    assert chicago["Target"]["RetryPolicy"] == {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 3600}

    hong_kong = scheduler.get_schedule(Name="hong-kong-morning")
    assert hong_kong["ScheduleExpressionTimezone"] == "Asia/Hong_Kong"
    queue_arn = cloud.client("sqs").get_queue_attributes(
        QueueUrl=deployment.physical(f"{HONG_KONG}Queue"), AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert hong_kong["Target"]["DeadLetterConfig"] == {"Arn": queue_arn}


def test_one_execution_per_schedule_per_local_day_at_nine_local_time_across_a_dst_change(cloud):
    cloud.run_until(utc(2026, 3, 9))

    # 09:00 in Chicago is 15:00 UTC in CST and 14:00 UTC from 8 March (CDT); Hong Kong has no DST (01:00 UTC).
    assert sorted(cloud.scheduler.fired, key=lambda f: f[1]) == [
        ("default/hong-kong-morning", utc(2026, 3, 6, 1)),
        (f"default/{CHICAGO}", utc(2026, 3, 6, 15)),
        ("default/hong-kong-morning", utc(2026, 3, 7, 1)),
        (f"default/{CHICAGO}", utc(2026, 3, 7, 15)),
        ("default/hong-kong-morning", utc(2026, 3, 8, 1)),
        (f"default/{CHICAGO}", utc(2026, 3, 8, 14)),
    ]
    executions = _executions(cloud)
    assert all(e["status"] == "SUCCEEDED" for e in executions)
    assert len({e["name"] for e in executions}) == 6
    by_spa: dict[str, list[datetime]] = {}
    for execution in executions:
        spa = json.loads(execution["input"])["spa"]
        by_spa.setdefault(spa, []).append(execution["startDate"])
        output = json.loads(execution["output"])
        assert output["spa"] == spa
        assert datetime.fromisoformat(output["at"]) == execution["startDate"]
    for spa, zone in (("chicago", "America/Chicago"), ("hong-kong", "Asia/Hong_Kong")):
        local = [started.astimezone(ZoneInfo(zone)) for started in by_spa[spa]]
        assert [(t.date().isoformat(), t.hour, t.minute) for t in local] == [
            ("2026-03-06", 9, 0), ("2026-03-07", 9, 0), ("2026-03-08", 9, 0)]
    chicago_utc_hours = [started.hour for started in by_spa["chicago"]]
    assert chicago_utc_hours == [15, 15, 14]


def test_names_states_and_dates_are_kept(tmp_path):
    def change(events):
        events["ChicagoMorning"]["Properties"]["OmitName"] = True
        events["HongKongMorning"]["Properties"]["Name"] = {"Fn::Sub": "${AWS::StackName}-${AWS::Region}-hk"}
        events["HongKongMorning"]["Properties"]["StartDate"] = "2026-03-07T00:00:00Z"
        events["HongKongMorning"]["Properties"]["EndDate"] = "2026-03-08T00:00:00Z"
        events["Paused"] = {"Type": "ScheduleV2", "Properties": {
            "ScheduleExpression": "rate(1 hour)", "State": "DISABLED", "Input": '{"spa": "paused"}'}}

    with LocalCloud(START, template=_variant(tmp_path, change)) as cloud:
        deployment = cloud.deploy()
        assert deployment.physical(CHICAGO) == CHICAGO  # no name from SAM: the logical id
        assert deployment.physical(HONG_KONG) == "medspa-us-east-1-hk"
        assert cloud.client("scheduler").get_schedule(Name="MorningStateMachinePaused")["State"] == "DISABLED"
        cloud.run_until(utc(2026, 3, 9))
        assert sorted(when for key, when in cloud.scheduler.fired if key.endswith("-hk")) == [utc(2026, 3, 7, 1)]
        assert {json.loads(e["input"])["spa"] for e in _executions(cloud)} == {"chicago", "hong-kong"}


@pytest.mark.parametrize(("prop", "value", "named"), [
    ("KmsKeyArn", "arn:aws:kms:us-east-1:123456789012:key/abc", "KmsKeyArn"),
    ("FlexibleTimeWindow", {"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 15}, "FlexibleTimeWindow"),
    ("GroupName", "nightly", "GroupName"),
    ("ScheduleExpression", "cron(0 9 * * ? 2027)", "ScheduleExpression"),
    ("ScheduleExpressionTimezone", "America/Chicag0", "ScheduleExpressionTimezone"),
    ("Input", "spa=chicago", "Target.Input"),
    ("RetryPolicy", {"MaximumRetryAttempts": 500}, "Target.RetryPolicy.MaximumRetryAttempts"),
])
def test_a_property_the_local_cloud_cannot_honour_fails_the_deploy_naming_it(tmp_path, prop, value, named):
    def change(events):
        events["ChicagoMorning"]["Properties"][prop] = value

    with LocalCloud(START, template=_variant(tmp_path, change)) as cloud:
        with pytest.raises(DeployFailed, match=rf"^{CHICAGO}: .*schedule's {named}\b"):
            cloud.deploy()


def test_daily_schedules_fire_on_the_way_to_other_work_but_never_keep_the_cloud_busy(cloud):
    cloud.run_until_idle()  # nothing but the daily schedules: idle at once, nothing fired
    assert (cloud.now(), cloud.scheduler.fired) == (START, [])

    cloud.client("scheduler").create_schedule(
        Name="once", ScheduleExpression="at(2026-03-07T20:00:00)", FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": cloud.state_machine_arn("MorningStateMachine"), "RoleArn": "arn:aws:iam::123456789012:role/x",
                "Input": json.dumps({"spa": "once"})})
    cloud.run_until_idle()  # a one-time schedule is work: the daily ones due before it fire on the way

    assert [name for name, _ in sorted(cloud.scheduler.fired, key=lambda f: f[1])] == [
        "default/hong-kong-morning", f"default/{CHICAGO}", "default/hong-kong-morning", f"default/{CHICAGO}",
        "default/once"]
    assert cloud.now() == utc(2026, 3, 7, 20)
