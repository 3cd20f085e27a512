"""template.yaml is the single source of the infrastructure: what it names exists, and deploys whole."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from localcloud.cloud import LocalCloud
from localcloud.clock import utc
from localcloud.deploy import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template(ROOT / "template.yaml")
RESOURCES = TEMPLATE["Resources"]


def _of_type(kind: str) -> dict[str, dict]:
    return {name: r["Properties"] for name, r in RESOURCES.items() if r["Type"] == kind}


@pytest.mark.parametrize("name,props", _of_type("AWS::Serverless::StateMachine").items())
def test_every_asl_placeholder_is_substituted_and_every_substitution_used(name, props):
    definition = (ROOT / props["DefinitionUri"]).read_text()
    placeholders = set(re.findall(r"\$\{(\w+)\}", definition))
    assert placeholders == set(props.get("DefinitionSubstitutions", {})), name


@pytest.mark.parametrize("name,props", _of_type("AWS::Serverless::Function").items())
def test_every_function_has_its_handler_and_its_own_least_privilege_policies(name, props):
    module, _, attribute = props["Handler"].rpartition(".")
    source = ROOT / props["CodeUri"] / f"{module}.py"
    assert f"def {attribute}(" in source.read_text(), f"{name}: {source}"
    assert props.get("Policies"), f"{name} has no policies of its own"
    assert "AdministratorAccess" not in str(props["Policies"])


def test_runtime_pins_are_the_same_in_pyproject_and_the_lambda_layer():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    layer = [line for line in (ROOT / "layers/shared/python/requirements.txt").read_text().splitlines() if line]
    assert sorted(project) == sorted(layer)
    assert all("==" in pin for pin in project)


def test_the_whole_template_deploys_into_the_local_cloud_with_nothing_skipped():
    with LocalCloud(utc(2026, 1, 1)) as cloud:
        deployment = cloud.deploy()
    assert set(deployment.not_emulated.values()) <= {"AWS::SQS::QueuePolicy", "AWS::Events::EventBusPolicy"}
    assert set(deployment.functions) == set(_of_type("AWS::Serverless::Function"))
    assert set(deployment.state_machines) == {f"{n}" for n in _of_type("AWS::Serverless::StateMachine")}
    tables = {n for n, t in deployment.resource_types.items() if t == "AWS::DynamoDB::Table"}
    assert tables == set(_of_type("AWS::DynamoDB::Table"))


def test_the_http_api_is_deployed_with_its_routes_stage_and_permissions():
    """moto's CloudFormation skips AWS::ApiGatewayV2::*; the local cloud creates them, and every reference
    to the API (a function's environment, the invoke permissions) gets its real id, never ``None``."""
    with LocalCloud(utc(2026, 1, 1)) as cloud:
        deployment = cloud.deploy()
        api_id = deployment.http_apis["HttpApi"]
        apigw = cloud.client("apigatewayv2")
        routes = {r["RouteKey"]: r["Target"] for r in apigw.get_routes(ApiId=api_id)["Items"]}
        served_by = {key: apigw.get_integration(ApiId=api_id, IntegrationId=t.removeprefix("integrations/"))[
            "IntegrationUri"] for key, t in routes.items()}
        functions = {deployment.functions[name]: name for name in
                     ("HttpApiFunction", "StripeWebhookFunction", "SpaApiFunction")}
        stages = [s["StageName"] for s in apigw.get_stages(ApiId=api_id)["Items"]]
        function = deployment.functions["HttpApiFunction"]
        policy = json.loads(cloud.client("lambda").get_policy(FunctionName=function)["Policy"])
        unsubscribe_url = cloud.function_environment("LifecycleFunction")["UNSUBSCRIBE_URL"]
    by_function = {key: functions[uri.rsplit(":function:", 1)[1].removesuffix("/invocations")]
                   for key, uri in served_by.items()}
    spa = "/spas/{spa_id}"
    assert by_function == {
        "GET /unsubscribe": "HttpApiFunction", "POST /unsubscribe": "HttpApiFunction",
        "GET /confirm": "HttpApiFunction", "POST /confirm": "HttpApiFunction",
        "POST /stripe/webhooks": "StripeWebhookFunction",
        f"GET {spa}/clients/{{client_id}}": "SpaApiFunction", f"GET {spa}/booking-requirements": "SpaApiFunction",
        f"GET {spa}/appointments/{{appointment_id}}/cancellation-quote": "SpaApiFunction",
        f"GET {spa}/appointments/{{appointment_id}}/timeline": "SpaApiFunction",
        f"POST {spa}/appointments/{{appointment_id}}/fees/{{purpose}}/waive": "SpaApiFunction",
        f"POST {spa}/clients/{{client_id}}/prepay-requirement/clear": "SpaApiFunction"}
    assert stages == ["$default"]
    assert {deployment.completed[r] for r in ("HttpApi", "HttpApiApiGatewayDefaultStage")} == {
        "AWS::ApiGatewayV2::Api", "AWS::ApiGatewayV2::Stage"}
    arns = sorted(s["Condition"]["ArnLike"]["AWS:SourceArn"] for s in policy["Statement"])
    assert arns == sorted(f"arn:aws:execute-api:us-east-1:123456789012:{api_id}/*/{m}/{path}"
                          for m in ("GET", "POST") for path in ("unsubscribe", "confirm"))
    assert unsubscribe_url == deployment.outputs["HttpApiUrl"] + "/unsubscribe"
    assert unsubscribe_url == f"https://{api_id}.execute-api.us-east-1.amazonaws.com/unsubscribe"


def _consent_grants() -> dict[str, dict[str, set[str]]]:
    """Function -> DynamoDB action on ConsentTable -> the key prefixes it is limited to ("*" if none)."""
    grants: dict[str, dict[str, set[str]]] = {}
    for name, props in _of_type("AWS::Serverless::Function").items():
        for policy in props["Policies"]:
            for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
                resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                if {"Fn::GetAtt": ["ConsentTable", "Arn"]} not in resources:
                    continue
                condition = statement.get("Condition", {}).get("ForAllValues:StringLike", {})
                prefixes = set(condition.get("dynamodb:LeadingKeys", ["*"]))
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                for action in actions:
                    grants.setdefault(name, {}).setdefault(action, set()).update(prefixes)
    return grants


def test_each_function_reaches_only_its_own_kind_of_consent_item():
    assert _consent_grants() == {
        "LifecycleFunction": {"dynamodb:GetItem": {"sms#*", "email#*"}, "dynamodb:UpdateItem": {"link#*"}},
        # Members hear of declined drafts and expiries: consent read at send time, as the lifecycle's notices.
        "MembershipsFunction": {"dynamodb:GetItem": {"sms#*", "email#*"}, "dynamodb:UpdateItem": {"link#*"}},
        # The outbox reads consent again when a queued message's moment comes: a STOP may have come since.
        "OutboxFunction": {"dynamodb:GetItem": {"sms#*", "email#*"}},
        "InboundSmsFunction": {"dynamodb:GetItem": {"sms#*"}, "dynamodb:UpdateItem": {"sms#*", "reply#*"},
                               "dynamodb:PutItem": {"reply#*"}, "dynamodb:DeleteItem": {"reply#*"}},
        "HttpApiFunction": {"dynamodb:GetItem": {"link#*", "email#*"}, "dynamodb:UpdateItem": {"email#*"}},
        # Erasure: an address's consent and every unsubscribe link sent to it. Links are found by a scan, not
        # by recomputing their signature, because links signed before a key rotation still hold the address.
        "PrivacyFunction": {"dynamodb:GetItem": {"sms#*", "email#*", "link#*"},
                            "dynamodb:DeleteItem": {"sms#*", "email#*", "link#*"}, "dynamodb:Scan": {"*"}},
    }


def test_on_call_is_paged_for_every_function_state_machine_and_the_intake_dlq():
    """Each function has an error-rate alarm, each state machine a failed and a timed-out alarm, the intake DLQ
    one; all notify the on-call topic. The local cloud creates them (moto's CloudFormation skips alarms) with
    every reference resolved to the deployed resource."""
    alarms = _of_type("AWS::CloudWatch::Alarm")
    functions, machines = _of_type("AWS::Serverless::Function"), _of_type("AWS::Serverless::StateMachine")
    assert {f"{f}ErrorsAlarm" for f in functions} <= set(alarms)
    assert {f"{m.removesuffix('StateMachine')}{k}Alarm" for m in machines
            for k in ("ExecutionsFailed", "ExecutionsTimedOut")} <= set(alarms)
    with LocalCloud(utc(2026, 1, 1)) as cloud:
        deployment = cloud.deploy()
        described = {a["AlarmName"]: a for a in cloud.client("cloudwatch").describe_alarms()["MetricAlarms"]}
        topic = deployment.outputs["OnCallTopicArn"]
        dlq_name = deployment.outputs["IntakeDeadLetterQueueUrl"].rsplit("/", 1)[-1]
    assert set(described) == {f"medspa-{name}" for name in alarms}
    assert all(a["AlarmActions"] == [topic] for a in described.values())
    assert described["medspa-IntakeDeadLettersAlarm"]["Dimensions"] == [{"Name": "QueueName", "Value": dlq_name}]
    lifecycle = described["medspa-AppointmentLifecycleExecutionsFailedAlarm"]["Dimensions"]
    assert lifecycle == [{"Name": "StateMachineArn", "Value": deployment.state_machines["AppointmentLifecycleStateMachine"]}]
    ingest = described["medspa-IngestFunctionErrorsAlarm"]["Metrics"][0]["MetricStat"]["Metric"]["Dimensions"]
    assert ingest == [{"Name": "FunctionName", "Value": deployment.functions["IngestFunction"]}]
