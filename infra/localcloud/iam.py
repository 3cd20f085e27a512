"""The functions' IAM roles, enforced on their DynamoDB calls as AWS would enforce them.

moto enforces no IAM for a Lambda's own calls, so a function whose role lacks an action it calls passes every
local test and fails in AWS with ``AccessDeniedException``. Here every DynamoDB request a function makes
(from boto3, pynamodb or Powertools: any botocore client) is checked, before it is sent, against the inline
policies CloudFormation attached to that function's role in this deployment, and refused with AWS's error if
no statement allows it. A transaction is checked item by item, as IAM checks it: ``PutItem``, ``UpdateItem``,
``DeleteItem`` or ``ConditionCheckItem`` on each item's table (and ``GetItem`` for a read transaction).
Queries on an index need the index's ARN. ``dynamodb:LeadingKeys`` is the partition key of the item or the
query.

What is evaluated, and nothing more: ``Allow`` and ``Deny`` statements, ``Action`` and ``Resource`` with IAM's
``*`` and ``?`` wildcards, and the condition operators the template uses (``StringEquals``, ``StringLike``,
their ``ForAllValues:`` forms, ``Null``). A statement with any other element or operator raises
``UnsupportedPolicy`` instead of being guessed at. Other services' calls are not checked yet.

Every call checked is counted in ``IamEnforcer.calls`` (function, action, resource): the grants in
``template.yaml`` are those the whole e2e suite was seen to call, no more.
"""

from __future__ import annotations

import ast
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

import botocore.handlers
from botocore.exceptions import ClientError

from localcloud.deploy import Deployment
from localcloud.runtime import current_function

_active: IamEnforcer | None = None
_TRANSACT_WRITE = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                   "ConditionCheck": "ConditionCheckItem"}
_SINGLE_ITEM = {"GetItem", "PutItem", "UpdateItem", "DeleteItem"}
_OPERATORS = {"StringEquals", "StringLike", "ForAllValues:StringEquals", "ForAllValues:StringLike", "Null"}
_STATEMENT_KEYS = {"Sid", "Effect", "Action", "Resource", "Condition"}


class UnsupportedPolicy(ValueError):
    pass


@dataclass(frozen=True)
class Request:
    """One IAM authorisation: an action on a resource with the request's condition keys."""

    action: str
    resource: str
    context: dict[str, list[str]] = field(default_factory=dict, hash=False, compare=False)


@dataclass
class IamEnforcer:
    account: str
    region: str
    statements: dict[str, list[dict[str, Any]]]  # function logical id -> its role's statements
    hash_keys: dict[str, str]  # table name -> partition key attribute
    calls: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    denied: list[tuple[str, Request]] = field(default_factory=list)

    @classmethod
    def from_deployment(cls, deployment: Deployment, iam: Any, lambda_: Any, dynamodb: Any,
                        account: str, region: str) -> IamEnforcer:
        statements = {}
        for logical_id, name in deployment.functions.items():
            role = lambda_.get_function(FunctionName=name)["Configuration"]["Role"].rsplit("/", 1)[1]
            statements[logical_id] = [
                _supported(statement)
                for policy in iam.list_role_policies(RoleName=role)["PolicyNames"]
                for statement in _listed(_document(iam.get_role_policy(RoleName=role, PolicyName=policy)
                                                   ["PolicyDocument"])["Statement"])
            ]
        hash_keys = {}
        for logical_id, kind in deployment.resource_types.items():
            if kind == "AWS::DynamoDB::Table":
                table = deployment.physical(logical_id)
                schema = dynamodb.describe_table(TableName=table)["Table"]["KeySchema"]
                hash_keys[table] = next(k["AttributeName"] for k in schema if k["KeyType"] == "HASH")
        return cls(account, region, statements, hash_keys)

    def check(self, function: str, operation: str, params: dict[str, Any]) -> None:
        for request in self.dynamodb_requests(operation, params):
            self.calls[(function, request.action, request.resource)] += 1
            if not allows(self.statements[function], request):
                self.denied.append((function, request))
                raise ClientError({"Error": {
                    "Code": "AccessDeniedException",
                    "Message": f"{function}'s role is not authorized to perform: {request.action} on resource: "
                               f"{request.resource} because no identity-based policy allows the {request.action} "
                               "action"}}, operation)

    def dynamodb_requests(self, operation: str, params: dict[str, Any]) -> Iterator[Request]:
        if operation in ("TransactWriteItems", "TransactGetItems"):
            for item in params["TransactItems"]:
                ((kind, body),) = item.items()
                yield self._item_request(_TRANSACT_WRITE.get(kind, "GetItem"), body["TableName"],
                                         body.get("Key") or body.get("Item"))
        elif operation in ("BatchGetItem", "BatchWriteItem"):
            for table in params["RequestItems"]:
                yield Request(f"dynamodb:{operation}", self._table_arn(table))
        elif operation in _SINGLE_ITEM:
            yield self._item_request(operation, params["TableName"], params.get("Key") or params.get("Item"))
        elif operation == "Query":
            resource = self._table_arn(params["TableName"])
            if "IndexName" in params:
                resource += f"/index/{params['IndexName']}"
            yield Request("dynamodb:Query", resource, {"dynamodb:LeadingKeys": self._queried_key(params)})
        else:
            yield Request(f"dynamodb:{operation}", self._table_arn(params["TableName"]))

    def _item_request(self, operation: str, table: str, key: dict[str, Any] | None) -> Request:
        value = (key or {}).get(self.hash_keys.get(table, ""), {})
        leading = [str(v) for v in value.values()][:1]
        return Request(f"dynamodb:{operation}", self._table_arn(table), {"dynamodb:LeadingKeys": leading})

    def _queried_key(self, params: dict[str, Any]) -> list[str]:
        """The partition key's value of a query on the table (an index's own partition key is not a leading
        key: IAM then has none, and ``ForAllValues`` over none holds)."""
        if "IndexName" in params:
            return []
        names = params.get("ExpressionAttributeNames", {})
        hash_key = self.hash_keys.get(params["TableName"], "")
        for name, placeholder in re.findall(r"(#?\w+)\s*=\s*(:\w+)", params.get("KeyConditionExpression", "")):
            if names.get(name, name) == hash_key:
                value = params.get("ExpressionAttributeValues", {}).get(placeholder, {})
                return [str(v) for v in value.values()][:1]
        return []

    def _table_arn(self, table: str) -> str:
        return f"arn:aws:dynamodb:{self.region}:{self.account}:table/{table}"


def allows(statements: list[dict[str, Any]], request: Request) -> bool:
    """IAM's identity-policy decision: an explicit deny wins, then any allow, else the implicit deny."""
    verdicts = [statement["Effect"] for statement in statements if _applies(statement, request)]
    return "Deny" not in verdicts and "Allow" in verdicts


def _supported(statement: dict[str, Any]) -> dict[str, Any]:
    """A statement this module would misread fails the deploy, whatever its actions."""
    unknown = (set(statement) - _STATEMENT_KEYS) | (set(statement.get("Condition", {})) - _OPERATORS)
    if unknown:
        raise UnsupportedPolicy(f"{sorted(unknown)} in a role's policy: not evaluated by the local cloud")
    return statement


def _applies(statement: dict[str, Any], request: Request) -> bool:
    return (any(_matches(request.action, a, case=False) for a in _listed(statement["Action"]))
            and any(_matches(request.resource, r) for r in _listed(statement["Resource"]))
            and all(_holds(operator, key, _listed(expected), request.context.get(key))
                    for operator, tests in _supported(statement).get("Condition", {}).items()
                    for key, expected in tests.items()))


def _holds(operator: str, key: str, expected: list[str], values: list[str] | None) -> bool:
    if operator == "Null":
        return (values is None) == (str(expected[0]).lower() == "true")
    like = operator.endswith("StringLike")
    matched = [any(_matches(v, e) if like else v == e for e in expected) for v in values or []]
    if operator.startswith("ForAllValues:"):
        return all(matched)  # over no values at all, as in IAM, it holds
    return any(matched)


def _matches(value: str, pattern: str, *, case: bool = True) -> bool:
    """IAM's wildcards: ``*`` any run of characters, ``?`` one; nothing else is special."""
    pattern = pattern.replace("[", "[[]")
    return fnmatchcase(value, pattern) if case else fnmatchcase(value.lower(), pattern.lower())


def _document(raw: Any) -> dict[str, Any]:
    """moto 5.2.5's CloudFormation keeps a role's inline policy as Python's repr of the dict, not as JSON."""
    if isinstance(raw, dict):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return ast.literal_eval(raw)


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _check_call(params: dict[str, Any], model: Any, **_: Any) -> None:
    function = current_function.get()
    if _active is not None and function is not None and model.service_model.service_name == "dynamodb":
        _active.check(function, model.name, params)


def activate(enforcer: IamEnforcer) -> None:
    global _active
    _active = enforcer


def deactivate() -> None:
    global _active
    _active = None


def install() -> None:
    """Register the check on every botocore session made from now on (as moto registers its own stub), and on
    boto3's default session if a test made it already."""
    import boto3

    entry = ("before-parameter-build.dynamodb", _check_call)
    if entry not in botocore.handlers.BUILTIN_HANDLERS:
        botocore.handlers.BUILTIN_HANDLERS.append(entry)
    if boto3.DEFAULT_SESSION is not None:
        boto3.DEFAULT_SESSION.events.unregister("before-parameter-build.dynamodb", _check_call)
        boto3.DEFAULT_SESSION.events.register("before-parameter-build.dynamodb", _check_call)
