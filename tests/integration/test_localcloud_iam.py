"""The local cloud enforces each function's role on its DynamoDB calls (``localcloud.iam``): what it evaluates, and
that a call the template does not grant fails as it would in AWS, through any botocore client."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

from localcloud import iam
from localcloud.cloud import LocalCloud
from localcloud.clock import utc
from localcloud.runtime import current_function

TABLE = "arn:aws:dynamodb:us-east-1:123456789012:table/consent"


def request(action: str, resource: str = TABLE, leading: list[str] | None = None) -> iam.Request:
    return iam.Request(f"dynamodb:{action}", resource, {} if leading is None else {"dynamodb:LeadingKeys": leading})


CONSENT_ONLY = [{"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:UpdateItem"], "Resource": TABLE,
                 "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["sms#*", "email#*"]}}}]


def test_an_allow_needs_the_action_the_resource_and_every_condition():
    assert iam.allows(CONSENT_ONLY, request("GetItem", leading=["sms#+14075550123"]))
    assert not iam.allows(CONSENT_ONLY, request("GetItem", leading=["link#abc"]))
    assert not iam.allows(CONSENT_ONLY, request("PutItem", leading=["sms#+14075550123"]))
    assert not iam.allows(CONSENT_ONLY, request("GetItem", TABLE + "-other", leading=["sms#1"]))
    assert not iam.allows([], request("GetItem"))


def test_wildcards_are_iams_and_an_explicit_deny_wins():
    statements = [{"Effect": "Allow", "Action": "dynamodb:*Item", "Resource": f"{TABLE}/index/*"},
                  {"Effect": "Deny", "Action": "dynamodb:DeleteItem", "Resource": "*"}]
    assert iam.allows(statements, request("GetItem", f"{TABLE}/index/by_day"))
    assert not iam.allows(statements, request("GetItem", TABLE))
    assert not iam.allows(statements, request("DeleteItem", f"{TABLE}/index/by_day"))
    assert not iam.allows([{"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": "arn:[a]"}],
                          request("GetItem", "arn:a")), "[ is not special in IAM"


def test_an_operator_the_local_cloud_cannot_evaluate_fails_loudly_instead_of_allowing():
    with pytest.raises(iam.UnsupportedPolicy, match="DateGreaterThan"):
        iam.allows([{"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": "*",
                     "Condition": {"DateGreaterThan": {"aws:CurrentTime": "2026-01-01"}}}], request("GetItem"))


@pytest.fixture(scope="module")
def cloud():
    with LocalCloud(utc(2026, 3, 5, 15)) as cloud:
        cloud.deploy({"LogLevel": "WARNING"})
        yield cloud


def test_a_transaction_is_authorised_item_by_item_and_a_query_by_its_partition_key(cloud):
    enforcer, consent = cloud.iam, cloud.deployment.physical("ConsentTable")
    hash_key = enforcer.hash_keys[consent]
    requests = list(enforcer.dynamodb_requests("TransactWriteItems", {"TransactItems": [
        {"Put": {"TableName": consent, "Item": {hash_key: {"S": "reply#1"}}}},
        {"ConditionCheck": {"TableName": consent, "Key": {hash_key: {"S": "sms#2"}}}}]}))
    assert [(r.action, r.context) for r in requests] == [
        ("dynamodb:PutItem", {"dynamodb:LeadingKeys": ["reply#1"]}),
        ("dynamodb:ConditionCheckItem", {"dynamodb:LeadingKeys": ["sms#2"]})]
    [query] = enforcer.dynamodb_requests("Query", {
        "TableName": consent, "KeyConditionExpression": "#0 = :0", "ExpressionAttributeNames": {"#0": hash_key},
        "ExpressionAttributeValues": {":0": {"S": "sms#3"}}})
    assert query.context == {"dynamodb:LeadingKeys": ["sms#3"]}


def test_a_call_the_functions_role_does_not_grant_is_refused_as_aws_refuses_it(cloud):
    ledger = cloud.deployment.physical("LedgerTable")
    dynamodb = boto3.client("dynamodb", region_name=cloud.region)
    running = current_function.set("HttpApiFunction")  # the unsubscribe and confirm pages: no ledger at all
    try:
        with pytest.raises(ClientError) as refused:
            dynamodb.scan(TableName=ledger)
    finally:
        current_function.reset(running)
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "dynamodb:Scan" in str(refused.value) and ledger in str(refused.value)
    [(function, request)] = cloud.iam.denied
    assert (function, request.action, request.resource.endswith(f"table/{ledger}")) == (
        "HttpApiFunction", "dynamodb:Scan", True)
    assert cloud.iam.calls[(function, request.action, request.resource)] == 1
    assert dynamodb.scan(TableName=ledger)["Items"] == [], "outside a function, the test's own calls pass"


def test_every_functions_role_was_read_from_the_deployed_stack(cloud):
    """A role read as empty would refuse everything; one read wrongly could allow anything. Each role has its
    statements, every DynamoDB grant names a table of this stack, and only the webhook endpoint (which only
    queues) has none."""
    enforcer = cloud.iam
    assert set(enforcer.statements) == set(cloud.deployment.functions)
    tables, without = set(enforcer.hash_keys), set()
    for function, statements in enforcer.statements.items():
        assert statements, function
        granted = [r for s in statements if any(str(a).startswith("dynamodb:") for a in iam._listed(s["Action"]))
                   for r in iam._listed(s["Resource"])]
        assert all(r.split(":table/")[1].split("/")[0] in tables for r in granted), function
        if not granted:
            without.add(function)
    assert without == {"StripeWebhookFunction"}
