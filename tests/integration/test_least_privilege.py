"""Least privilege and data protection, read from the template CloudFormation would create (aws-sam-translator's
output, so the SAM policy templates are expanded): every ``Resource: "*"`` and every wildcard action is on the
allow-list below with the reason no narrower ARN or condition can replace it, every table refuses deletion, and
the tables with personal data are under the customer-managed key (issue 12)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from localcloud.deploy import load_template, package, translate

ROOT = Path(__file__).resolve().parents[2]

# (role, statement's Sid or its first action) -> why "*" is the narrowest the action allows
ALLOWED_ANY_RESOURCE = {
    "sns:Publish to a phone number": "An SMS sent straight to a phone number has no resource ARN; the statement's "
                                     "condition (sns:TopicArn is null) forbids publishing to any topic.",
    "log delivery": "Step Functions writes its execution logs through CloudWatch Logs' log-delivery API, which "
                    "has no resource-level permissions; AWS documents these actions on * for state machine logging.",
    "kms via SNS": "SNS encrypts the inbound-SMS topic with the AWS-managed key whose ARN the template cannot name; "
                   "the kms:ViaService condition confines the grant to SNS in this region.",
}
LOG_DELIVERY = {"logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
                "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies",
                "logs:DescribeLogGroups"}


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def translated(monkeypatch_module: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch_module.setenv("AWS_DEFAULT_REGION", "us-east-1")  # the translator writes ARNs of one region
    with mock_aws():
        packaged, _ = package(load_template(ROOT / "template.yaml"), ROOT, boto3.client("s3", region_name="us-east-1"))
    return translate(packaged)


def statements(translated: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, resource in translated["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::Role":
            documents = [p["PolicyDocument"] for p in props.get("Policies", [])]
        elif resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents = [props["PolicyDocument"]]
        else:
            continue
        for document in documents:
            for statement in document["Statement"]:
                found.append((name, statement))
    return found


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def why_any_resource(statement: dict[str, Any]) -> str | None:
    actions, condition = _listed(statement["Action"]), statement.get("Condition", {})
    if actions == ["sns:Publish"] and condition == {"Null": {"sns:TopicArn": "true"}}:
        return ALLOWED_ANY_RESOURCE["sns:Publish to a phone number"]
    if set(actions) <= LOG_DELIVERY:
        return ALLOWED_ANY_RESOURCE["log delivery"]
    if set(actions) <= {"kms:GenerateDataKey*", "kms:Decrypt"} and "kms:ViaService" in condition.get("StringEquals", {}):
        return ALLOWED_ANY_RESOURCE["kms via SNS"]
    return None


def unexplained(found: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    return [(role, statement) for role, statement in found
            if "*" in _listed(statement.get("Resource")) and why_any_resource(statement) is None]


def test_no_statement_grants_every_resource_without_a_written_reason(translated: dict[str, Any]) -> None:
    found = statements(translated)
    assert unexplained(found) == []
    assert len([s for _, s in found if "*" in _listed(s.get("Resource"))]) >= 4, "the SMS and KMS grants were seen"


def test_the_allow_list_is_that_narrow() -> None:
    """The SMS grant without its condition, or a table action on every resource, is refused."""
    assert len(unexplained([("R", {"Action": "sns:Publish", "Resource": "*"}),
                            ("R", {"Action": ["dynamodb:GetItem"], "Resource": ["*"]}),
                            ("R", {"Action": "kms:Decrypt", "Resource": "*"})])) == 3


def test_no_action_is_a_wildcard_over_a_whole_service(translated: dict[str, Any]) -> None:
    """``dynamodb:*`` or ``*``: only the calls a function makes. (``kms:GenerateDataKey*`` names one call's
    variants, the way AWS documents it.)"""
    broad = [(role, action) for role, statement in statements(translated) for action in _listed(statement["Action"])
             if action == "*" or action.endswith(":*")]
    assert broad == []


def test_the_statements_checked_are_the_whole_template(translated: dict[str, Any]) -> None:
    """A test over an empty list passes: this one holds the walk to every function's role."""
    roles = {role for role, _ in statements(translated)}
    functions = {n for n, r in translated["Resources"].items() if r["Type"] == "AWS::Lambda::Function"}
    assert {f"{f}Role" for f in functions} <= roles
    assert sum(1 for _ in statements(translated)) > 3 * len(functions)


PERSONAL_DATA_TABLES = {"ClientsTable", "AppointmentsTable", "MembershipsTable", "CoursesTable", "ConsentTable"}


def test_every_table_refuses_deletion_and_personal_data_is_under_the_spas_own_key(translated: dict[str, Any]) -> None:
    tables = {n: r for n, r in translated["Resources"].items() if r["Type"] == "AWS::DynamoDB::Table"}
    assert PERSONAL_DATA_TABLES <= set(tables)
    for name, table in tables.items():
        props = table["Properties"]
        assert props.get("DeletionProtectionEnabled") is True, name
        assert table.get("DeletionPolicy") == "Retain", name
        sse = props["SSESpecification"]
        if name in PERSONAL_DATA_TABLES:
            assert (sse.get("SSEType"), sse.get("KMSMasterKeyId")) == ("KMS", {"Ref": "PersonalDataKey"}), name
    key = translated["Resources"]["PersonalDataKey"]
    assert key["Properties"]["EnableKeyRotation"] is True and key["DeletionPolicy"] == "Retain"


def test_logs_are_kept_for_a_while_and_never_carry_execution_data(translated: dict[str, Any]) -> None:
    """Executions' inputs and outputs may name clients: the state machines log failures without them, and every
    log group (each function's, each state machine's) expires."""
    resources = translated["Resources"]
    machines = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::StepFunctions::StateMachine"]
    assert machines and all(m["LoggingConfiguration"]["IncludeExecutionData"] is False for m in machines)
    groups = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Logs::LogGroup"]
    functions = [n for n, r in resources.items() if r["Type"] == "AWS::Lambda::Function"]
    assert len(groups) == len(functions) + len(machines)
    assert all(g["RetentionInDays"] == {"Ref": "LogRetentionDays"} for g in groups)
