"""Deploy ``template.yaml`` into moto the way ``sam deploy`` would, so the template stays the single source.

moto's CloudFormation ignores ``Transform`` (``AWS::Serverless::*`` resources are skipped while the stack
still says CREATE_COMPLETE). So: package local code into the mocked S3 (``CodeUri``/``ContentUri`` ->
S3 location), inline each ``DefinitionUri`` as ``Definition``, run aws-sam-translator, and create the
plain CloudFormation stack in moto.

moto 5.2.5's CloudFormation has no model for ``AWS::SNS::Subscription`` (what SAM makes of a function's
``Events: {Type: SNS}``), although its SNS backend delivers a topic's messages to a Lambda subscription
(through ``LambdaFunction._invoke_lambda``, so in-process here). Such a resource is created after the
stack through the SNS ``Subscribe`` API, from its translated properties; it is listed in
``Deployment.completed``. Any other skipped resource still fails the deploy.

moto 5.2.5's CloudFormation has no ``AWS::ApiGatewayV2::*`` models either (what SAM makes of an
``AWS::Serverless::HttpApi``: an ``Api`` whose OpenAPI ``Body`` holds the routes, and its ``$default``
``Stage``), while its ApiGatewayV2 backend creates APIs, imports OpenAPI bodies into routes and
integrations, and creates stages. Other resources refer to the API (``!Ref HttpApi`` in a function's
environment, the Lambda permissions' ``SourceArn``), and moto would resolve a reference to a skipped
resource to ``None`` without a word. So, before the stack, each API is created through the
ApiGatewayV2 API and its id written into every reference (``Ref``, ``${HttpApi}`` in ``Fn::Sub``,
``GetAtt ApiId/ApiEndpoint``); after the stack, once the functions exist, its ``Body`` is resolved and
imported (routes and integrations) and its stages are created. Both are listed in
``Deployment.completed``; ``Deployment.http_apis`` maps the API's logical id to its id, which
``LocalCloud.http`` uses to route a request to the integration's function (moto serves no
execute-api endpoint).

moto 5.2.5's CloudFormation has no ``AWS::Scheduler::Schedule`` model either (what SAM makes of a state
machine's ``Events: {Type: ScheduleV2}``), and its Scheduler backend stores schedules but never fires
them (``SchedulerHook`` fires them on the virtual clock). Such a schedule is created after the stack
through the Scheduler ``CreateSchedule`` API, its references resolved (``Ref``/``GetAtt``/``Fn::Sub``
over the stack's resources, parameters and pseudo parameters), named after its logical id when SAM
gives it no name (``OmitName``); it is listed in ``Deployment.completed``, its name in
``Deployment.resources``. A schedule is a promise about when something runs, so every property the
local cloud would not keep fails the deploy instead of being dropped: a KMS key, a group other than
``default``, a flexible time window (the hook fires at the exact instant), a ``Condition``, a target
other than a state machine or with a target parameter block, a malformed expression, zone, input or
retry policy. ``RetryPolicy`` and ``DeadLetterConfig`` are kept on the schedule: locally a start never
fails for a transient reason, so no retry is ever due, and a start that does fail raises in the driver
(loudly, where AWS would retry and then dead-letter).
"""

from __future__ import annotations

import copy
import functools
import io
import json
import re
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import boto3
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

from localcloud.runtime import FunctionSource, InProcessRuntime

ARTIFACT_BUCKET = "localcloud-artifacts"

# Resource types moto's CloudFormation skips that change nothing locally (moto enforces no IAM).
# Any other skipped resource fails the deploy: a missing queue or table must never pass silently.
NOT_EMULATED = {
    "AWS::SQS::QueuePolicy": "resource policy: moto does not enforce access policies",
    "AWS::Events::EventBusPolicy": "resource policy: moto does not enforce access policies",
}


# Resource types moto's CloudFormation skips that the local cloud creates itself after the stack.
COMPLETED_BY_LOCALCLOUD = {
    "AWS::SNS::Subscription": "no moto CloudFormation model: created through SNS Subscribe",
    "AWS::ApiGatewayV2::Api": "no moto CloudFormation model: created through ApiGatewayV2 CreateApi + ReimportApi",
    "AWS::ApiGatewayV2::Stage": "no moto CloudFormation model: created through ApiGatewayV2 CreateStage",
    "AWS::Scheduler::Schedule": "no moto CloudFormation model: created through Scheduler CreateSchedule",
    "AWS::CloudWatch::Alarm": "no moto CloudFormation model: created through CloudWatch PutMetricAlarm",
}
_SUBSCRIPTION = "AWS::SNS::Subscription"
_SCHEDULE = "AWS::Scheduler::Schedule"
_ALARM = "AWS::CloudWatch::Alarm"
_HTTP_API = "AWS::ApiGatewayV2::Api"
_HTTP_STAGE = "AWS::ApiGatewayV2::Stage"
_API_PROPERTIES = {"Body", "Description", "Tags"}
_STAGE_PROPERTIES = {"ApiId", "StageName", "AutoDeploy", "DefaultRouteSettings", "Description", "Tags"}
_SUBSCRIPTION_ATTRIBUTES = ("FilterPolicy", "FilterPolicyScope", "RawMessageDelivery", "RedrivePolicy")


class DeployFailed(RuntimeError):
    pass


@dataclass
class Deployment:
    stack_name: str
    resources: dict[str, str]
    resource_types: dict[str, str]
    outputs: dict[str, str]
    not_emulated: dict[str, str] = field(default_factory=dict)
    completed: dict[str, str] = field(default_factory=dict)
    functions: dict[str, str] = field(default_factory=dict)
    state_machines: dict[str, str] = field(default_factory=dict)
    http_apis: dict[str, str] = field(default_factory=dict)

    def physical(self, logical_id: str) -> str:
        return self.resources[logical_id]


class _ManagedPolicies:
    """Stands in for IAM's list of AWS managed policies, which the translator asks for by name."""

    def load(self) -> dict[str, str]:
        return _AwsManagedArns()


class _AwsManagedArns(dict):
    def __contains__(self, name: object) -> bool:
        return isinstance(name, str)

    def __getitem__(self, name: str) -> str:
        return f"arn:aws:iam::aws:policy/service-role/{name}"

    def get(self, name: str, default: Any = None) -> str:
        return self[name]


def load_template(path: Path) -> dict[str, Any]:
    return copy.deepcopy(_parsed(path.read_text()))


def translate(packaged: dict[str, Any], parameters: dict[str, str] | None = None) -> dict[str, Any]:
    """The CloudFormation template ``sam deploy`` would create: aws-sam-translator run on the packaged template.

    Every local cloud of a test session deploys the same template; the translation of each distinct packaged
    template and parameters is kept, and each deploy gets its own copy.
    """
    return copy.deepcopy(_translated(json.dumps(packaged, sort_keys=True), json.dumps(parameters or {}, sort_keys=True)))


@functools.lru_cache(maxsize=8)
def _parsed(text: str) -> dict[str, Any]:
    return yaml_parse(text)


@functools.lru_cache(maxsize=8)
def _translated(packaged: str, parameters: str) -> dict[str, Any]:
    return transform(json.loads(packaged), json.loads(parameters), _ManagedPolicies())


def package(template: dict[str, Any], root: Path, s3: Any) -> tuple[dict[str, Any], dict[str, FunctionSource]]:
    """Upload code to the artifact bucket and inline state machine definitions; return sources by logical id."""
    template = copy.deepcopy(template)
    s3.create_bucket(Bucket=ARTIFACT_BUCKET)
    function_globals = template.get("Globals", {}).get("Function", {})
    sources: dict[str, FunctionSource] = {}
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        kind = resource["Type"]
        if kind == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            code_dir = (root / props["CodeUri"]).resolve()
            props["CodeUri"] = _upload(s3, code_dir, f"functions/{logical_id}.zip")
            handler = props.get("Handler") or function_globals.get("Handler", "app.lambda_handler")
            sources[logical_id] = FunctionSource(logical_id, code_dir, handler)
        elif kind == "AWS::Serverless::LayerVersion" and isinstance(props.get("ContentUri"), str):
            props["ContentUri"] = _upload(s3, (root / props["ContentUri"]).resolve(), f"layers/{logical_id}.zip")
        elif kind == "AWS::Serverless::StateMachine" and isinstance(props.get("DefinitionUri"), str):
            props["Definition"] = json.loads((root / props.pop("DefinitionUri")).read_text())
    return template, sources


def _upload(s3: Any, directory: Path, key: str) -> dict[str, str]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(directory).as_posix())
    s3.put_object(Bucket=ARTIFACT_BUCKET, Key=key, Body=buffer.getvalue())
    return {"Bucket": ARTIFACT_BUCKET, "Key": key}


def deploy(
    template_path: Path,
    *,
    runtime: InProcessRuntime,
    parameters: dict[str, str] | None = None,
    stack_name: str = "medspa",
    region: str = "us-east-1",
) -> Deployment:
    root = template_path.parent
    s3 = boto3.client("s3", region_name=region)
    cfn = boto3.client("cloudformation", region_name=region)
    packaged, sources = package(load_template(template_path), root, s3)
    translated = translate(packaged, parameters)
    _refuse_references_to_schedules(translated)
    http_apis = _create_http_apis(translated, stack_name, region)
    stack_template = _without_http_apis(translated, http_apis, region)
    with warnings.catch_warnings():  # moto warns about each type it skips; these are created below
        for kind in COMPLETED_BY_LOCALCLOUD:
            warnings.filterwarnings("ignore", f"Tried to parse {re.escape(kind)} but", UserWarning)
        cfn.create_stack(
            StackName=stack_name,
            TemplateBody=json.dumps(stack_template),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in (parameters or {}).items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
        stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
        if stack["StackStatus"] != "CREATE_COMPLETE":
            raise DeployFailed(f"{stack_name}: {stack['StackStatus']} {stack.get('StackStatusReason', '')}")
        summaries = cfn.list_stack_resources(StackName=stack_name)["StackResourceSummaries"]
    skipped = set(stack_template["Resources"]) - {s["LogicalResourceId"] for s in summaries}
    types = {r: translated["Resources"][r]["Type"] for r in skipped}
    tolerated = {r: t for r, t in types.items() if t in NOT_EMULATED}
    to_complete = {r: t for r, t in types.items() if t in COMPLETED_BY_LOCALCLOUD}
    missing = skipped - set(tolerated) - set(to_complete)
    if missing:
        raise DeployFailed(f"moto skipped resources it does not support: {sorted(missing)}")
    deployment = Deployment(
        stack_name=stack_name,
        resources={s["LogicalResourceId"]: s["PhysicalResourceId"] for s in summaries},
        resource_types={s["LogicalResourceId"]: s["ResourceType"] for s in summaries},
        outputs={o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
        not_emulated=tolerated,
    )
    for logical_id in sorted(to_complete):
        resource = translated["Resources"][logical_id]
        if to_complete[logical_id] == _SUBSCRIPTION:
            physical = _subscribe(resource, logical_id, deployment, region)
        elif to_complete[logical_id] == _ALARM:
            physical = _create_alarm(resource, logical_id, deployment, _parameter_values(translated, parameters),
                                     region)
        else:
            physical = _create_schedule(resource, logical_id, deployment, _parameter_values(translated, parameters),
                                        region)
        deployment.resources[logical_id] = physical
        deployment.resource_types[logical_id] = to_complete[logical_id]
        deployment.completed[logical_id] = to_complete[logical_id]
    _complete_http_apis(translated, http_apis, deployment, region)
    for logical_id, source in sources.items():
        name = deployment.physical(logical_id)
        deployment.functions[logical_id] = name
        runtime.register(name, source)
    deployment.state_machines = {
        logical: physical
        for logical, physical in deployment.resources.items()
        if deployment.resource_types[logical] == "AWS::StepFunctions::StateMachine"
    }
    return deployment


def _subscribe(resource: dict[str, Any], logical_id: str, deployment: Deployment, region: str) -> str:
    """Create an ``AWS::SNS::Subscription`` the stack skipped; only the forms SAM's SNS event emits."""
    props = dict(resource.get("Properties", {}))
    unknown = set(props) - {"TopicArn", "Protocol", "Endpoint", "Region", *_SUBSCRIPTION_ATTRIBUTES}
    if unknown:
        raise DeployFailed(f"{logical_id}: the local cloud cannot create a subscription with {sorted(unknown)}")
    attributes = {
        key: value if isinstance(value, str) else json.dumps(value)
        for key, value in props.items() if key in _SUBSCRIPTION_ATTRIBUTES
    }
    response = boto3.client("sns", region_name=region).subscribe(
        TopicArn=_resolve(props["TopicArn"], logical_id, deployment, region),
        Protocol=props["Protocol"],
        Endpoint=_resolve(props["Endpoint"], logical_id, deployment, region),
        Attributes=attributes,
        ReturnSubscriptionArn=True,
    )
    return response["SubscriptionArn"]


def _resolve(value: Any, logical_id: str, deployment: Deployment, region: str) -> str:
    """A literal, a ``Ref`` to a stack resource, or ``Fn::GetAtt [<resource>, Arn]``."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in deployment.resources:
        return deployment.physical(value["Ref"])
    if isinstance(value, dict) and set(value) == {"Fn::GetAtt"}:
        target, attribute = _get_att(value["Fn::GetAtt"])
        if attribute == "Arn" and (arn := _arn(target, deployment, region)) is not None:
            return arn
    raise DeployFailed(f"{logical_id}: the local cloud cannot resolve {value!r}")


def _get_att(spec: Any) -> tuple[str, str]:
    target, _, attribute = spec.partition(".") if isinstance(spec, str) else (spec[0], "", spec[1])
    return target, attribute


def _arn(target: str, deployment: Deployment, region: str) -> str | None:
    """The ARN of a stack resource of a kind whose physical id is not its ARN already, or None."""
    kind, physical = deployment.resource_types.get(target), deployment.resources.get(target)
    if physical is None:
        return None
    if kind == "AWS::StepFunctions::StateMachine":
        return physical
    if kind == "AWS::Lambda::Function":
        return boto3.client("lambda", region_name=region).get_function(
            FunctionName=physical)["Configuration"]["FunctionArn"]
    if kind == "AWS::IAM::Role":
        return boto3.client("iam", region_name=region).get_role(RoleName=physical)["Role"]["Arn"]
    if kind == "AWS::SQS::Queue":
        return boto3.client("sqs", region_name=region).get_queue_attributes(
            QueueUrl=physical, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return None


# ---------------------------------------------------------------------- EventBridge Scheduler schedules

_SCHEDULE_PROPERTIES = {"ScheduleExpression", "ScheduleExpressionTimezone", "FlexibleTimeWindow", "Name", "State",
                        "Description", "StartDate", "EndDate", "GroupName", "Target"}
_SCHEDULE_TARGET_PROPERTIES = {"Arn", "RoleArn", "Input", "RetryPolicy", "DeadLetterConfig"}
_RETRY_LIMITS = {"MaximumEventAgeInSeconds": (60, 86400), "MaximumRetryAttempts": (0, 185)}


def _refuse_references_to_schedules(translated: dict[str, Any]) -> None:
    """moto would resolve a reference to a resource it skips to None, silently; a schedule exists only
    once the stack does, so nothing in the stack may refer to one."""
    schedules = {r for r, res in translated["Resources"].items() if res["Type"] == _SCHEDULE}

    def visit(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if set(node) == {"Ref"} and node["Ref"] in schedules or (
                    set(node) == {"Fn::GetAtt"} and _get_att(node["Fn::GetAtt"])[0] in schedules):
                raise DeployFailed(f"{where} refers to the schedule in {node!r}, which the local cloud creates "
                                   "after the stack")
            if set(node) == {"Fn::Sub"}:
                text = node["Fn::Sub"] if isinstance(node["Fn::Sub"], str) else node["Fn::Sub"][0]
                for name in re.findall(r"\$\{([^!}][^}]*)\}", text):
                    if name.partition(".")[0] in schedules:
                        raise DeployFailed(f"{where} refers to the schedule in ${{{name}}}, which the local "
                                           "cloud creates after the stack")
            for value in node.values():
                visit(value, where)
        elif isinstance(node, list):
            for item in node:
                visit(item, where)

    for logical_id, resource in translated["Resources"].items():
        visit(resource, logical_id)
    visit(translated.get("Outputs", {}), "Outputs")


def _parameter_values(translated: dict[str, Any], given: dict[str, str] | None) -> dict[str, Any]:
    declared = translated.get("Parameters", {})
    return {name: (given or {}).get(name, spec.get("Default")) for name, spec in declared.items()}


def _create_schedule(resource: dict[str, Any], logical_id: str, deployment: Deployment,
                     parameters: dict[str, Any], region: str) -> str:
    """Create an ``AWS::Scheduler::Schedule`` the stack skipped, as SAM's ``ScheduleV2`` event writes it;
    any property the local cloud would not keep fails the deploy, naming it."""

    def fail(prop: str, why: str) -> DeployFailed:
        return DeployFailed(f"{logical_id}: the local cloud cannot honour the schedule's {prop}: {why}")

    if "Condition" in resource:
        raise fail("Condition", "a schedule is created after the stack, whatever the condition says")
    props = resource.get("Properties", {})
    unknown = set(props) - _SCHEDULE_PROPERTIES
    if unknown:
        raise fail(", ".join(sorted(unknown)), "not supported locally")
    target = props.get("Target")
    if not isinstance(target, dict) or "Arn" not in target or "RoleArn" not in target:
        raise fail("Target", "a target needs an Arn and a RoleArn")
    unknown = set(target) - _SCHEDULE_TARGET_PROPERTIES
    if unknown:
        raise fail(", ".join(f"Target.{k}" for k in sorted(unknown)), "not supported locally")

    def value(prop: str, node: Any) -> str:
        return _resolve_text(node, prop, fail, deployment, parameters, region)

    group = value("GroupName", props.get("GroupName", "default"))
    if group != "default":
        raise fail("GroupName", f"{group!r}: only the default group exists locally")
    if "FlexibleTimeWindow" not in props:
        raise fail("FlexibleTimeWindow", "required")
    window = props["FlexibleTimeWindow"]
    if not isinstance(window, dict) or set(window) != {"Mode"} or value("FlexibleTimeWindow", window["Mode"]) != "OFF":
        raise fail("FlexibleTimeWindow", f"{window!r}: schedules fire at the exact instant, only Mode OFF is kept")
    expression = value("ScheduleExpression", props.get("ScheduleExpression"))
    zone = value("ScheduleExpressionTimezone", props.get("ScheduleExpressionTimezone", "UTC"))
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise fail("ScheduleExpressionTimezone", f"{zone!r} is no IANA time zone") from error
    from localcloud.eventsources import next_fire  # here: it imports moto, which load_template's users need not

    now = datetime.now(UTC)
    try:
        next_fire(expression, zone, now, now)
    except (ValueError, KeyError, TypeError) as error:
        raise fail("ScheduleExpression", f"{expression!r}: {error}") from error
    state = value("State", props.get("State", "ENABLED"))
    if state not in ("ENABLED", "DISABLED"):
        raise fail("State", f"{state!r} is neither ENABLED nor DISABLED")

    request: dict[str, Any] = {
        "Name": value("Name", props.get("Name", logical_id[:64])),
        "GroupName": group,
        "ScheduleExpression": expression,
        "ScheduleExpressionTimezone": zone,
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "State": state,
        "Target": _schedule_target(target, fail, value),
    }
    if "Description" in props:
        request["Description"] = value("Description", props["Description"])
    for prop in ("StartDate", "EndDate"):
        if prop in props:
            text = value(prop, props[prop])
            try:
                when = datetime.fromisoformat(text)
            except ValueError as error:
                raise fail(prop, f"{text!r} is no ISO 8601 date-time") from error
            request[prop] = when if when.tzinfo else when.replace(tzinfo=UTC)
    boto3.client("scheduler", region_name=region).create_schedule(**request)
    return request["Name"]


def _schedule_target(target: dict[str, Any], fail: Callable[[str, str], DeployFailed],
                     value: Callable[[str, Any], str]) -> dict[str, Any]:
    arn = value("Target.Arn", target["Arn"])
    if not re.fullmatch(r"arn:aws[\w-]*:states:[\w-]+:\d{12}:stateMachine:[\w.-]+", arn):
        raise fail("Target.Arn", f"{arn!r}: only a state machine target is started locally")
    out: dict[str, Any] = {"Arn": arn, "RoleArn": value("Target.RoleArn", target["RoleArn"])}
    if "Input" in target:
        out["Input"] = value("Target.Input", target["Input"])
        try:
            json.loads(out["Input"])
        except ValueError as error:
            raise fail("Target.Input", f"a state machine's input must be JSON: {error}") from error
    if "RetryPolicy" in target:
        policy = target["RetryPolicy"]
        if not isinstance(policy, dict) or set(policy) - set(_RETRY_LIMITS):
            raise fail("Target.RetryPolicy", f"{policy!r}")
        for key, (low, high) in _RETRY_LIMITS.items():
            if key in policy and not (isinstance(policy[key], int) and low <= policy[key] <= high):
                raise fail(f"Target.RetryPolicy.{key}", f"{policy[key]!r} is not an integer in [{low}, {high}]")
        out["RetryPolicy"] = dict(policy)
    if "DeadLetterConfig" in target:
        config = target["DeadLetterConfig"]
        if not isinstance(config, dict) or set(config) != {"Arn"}:
            raise fail("Target.DeadLetterConfig", f"{config!r}")
        queue = value("Target.DeadLetterConfig", config["Arn"])
        if ":sqs:" not in queue:
            raise fail("Target.DeadLetterConfig", f"{queue!r} is no SQS queue")
        out["DeadLetterConfig"] = {"Arn": queue}
    return out


def _create_alarm(resource: dict[str, Any], logical_id: str, deployment: Deployment,
                  parameters: dict[str, Any], region: str) -> str:
    """Create an ``AWS::CloudWatch::Alarm`` the stack skipped: its properties are PutMetricAlarm's parameters,
    with every reference resolved; the alarm is named after the stack and the logical id, as CloudFormation
    names it."""

    def fail(prop: str, why: str) -> DeployFailed:
        return DeployFailed(f"{logical_id}: the local cloud cannot create the alarm's {prop}: {why}")

    def resolved(node: Any, prop: str) -> Any:
        if isinstance(node, dict) and len(node) == 1 and next(iter(node)) in ("Ref", "Fn::GetAtt", "Fn::Sub"):
            return _resolve_text(node, prop, fail, deployment, parameters, region)
        if isinstance(node, dict):
            return {k: resolved(v, f"{prop}.{k}") for k, v in node.items()}
        if isinstance(node, list):
            return [resolved(v, prop) for v in node]
        return node

    props = resolved(resource.get("Properties", {}), "Properties")
    name = props.pop("AlarmName", f"{deployment.stack_name}-{logical_id}")
    props["Threshold"] = float(props["Threshold"])
    boto3.client("cloudwatch", region_name=region).put_metric_alarm(AlarmName=name, **props)
    return str(name)


def _resolve_text(node: Any, prop: str, fail: Callable[[str, str], DeployFailed], deployment: Deployment,
                  parameters: dict[str, Any], region: str) -> str:
    """A string as CloudFormation would hand it to the resource: a literal, a ``Ref`` (resource, parameter,
    pseudo parameter), ``Fn::GetAtt <resource>.Arn`` or an ``Fn::Sub`` over those."""
    pseudo = {"AWS::Region": region, "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com",
              "AWS::StackName": deployment.stack_name}

    def ref(name: str) -> str:
        if name in pseudo:
            return pseudo[name]
        if name == "AWS::AccountId":
            return boto3.client("sts", region_name=region).get_caller_identity()["Account"]
        if name in deployment.resources:
            return deployment.physical(name)
        if isinstance(parameters.get(name), (str, int, float)):
            return str(parameters[name])
        raise fail(prop, f"cannot resolve Ref {name}")

    def get_att(spec: Any) -> str:
        target, attribute = _get_att(spec)
        if attribute == "Arn" and (arn := _arn(target, deployment, region)) is not None:
            return arn
        if attribute == "QueueName" and target in deployment.resources:  # a queue's physical id is its URL
            return deployment.physical(target).rsplit("/", 1)[-1]
        raise fail(prop, f"cannot resolve Fn::GetAtt {target}.{attribute}")

    if isinstance(node, str):
        return node
    if isinstance(node, bool) or not isinstance(node, dict) or len(node) != 1:
        raise fail(prop, f"{node!r} is not a string")
    (function, argument), = node.items()
    if function == "Ref" and isinstance(argument, str):
        return ref(argument)
    if function == "Fn::GetAtt":
        return get_att(argument)
    if function == "Fn::Sub":
        text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], argument[1])
        values = {k: _resolve_text(v, prop, fail, deployment, parameters, region) for k, v in variables.items()}

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in values:
                return values[name]
            return get_att(name) if "." in name else ref(name)

        return re.sub(r"\$\{([^}]+)\}", substitute, text)
    raise fail(prop, f"the local cloud cannot resolve {function}")


# ---------------------------------------------------------------------- HTTP APIs (API Gateway v2)


def _create_http_apis(translated: dict[str, Any], stack_name: str, region: str) -> dict[str, str]:
    """Create each ``AWS::ApiGatewayV2::Api`` (empty) so its id exists before anything refers to it."""
    apigw = boto3.client("apigatewayv2", region_name=region)
    created: dict[str, str] = {}
    for logical_id, resource in translated["Resources"].items():
        if resource["Type"] != _HTTP_API:
            continue
        props = resource.get("Properties", {})
        unknown = set(props) - _API_PROPERTIES
        if unknown or "Body" not in props:
            raise DeployFailed(f"{logical_id}: the local cloud creates an HTTP API only from a SAM Body, not {sorted(unknown)}")
        api = apigw.create_api(Name=f"{stack_name}-{logical_id}", ProtocolType="HTTP",
                               Description=props.get("Description") or props["Body"].get("info", {}).get("description", ""))
        created[logical_id] = api["ApiId"]
    return created


def _without_http_apis(translated: dict[str, Any], http_apis: dict[str, str], region: str) -> dict[str, Any]:
    """The template moto's CloudFormation gets: the APIs and their stages taken out, references to them
    replaced by the ids created above. A reference of any other form fails the deploy."""
    removed = {r for r, res in translated["Resources"].items() if res["Type"] in (_HTTP_API, _HTTP_STAGE)}

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if set(node) == {"Ref"} and node["Ref"] in http_apis:
                return http_apis[node["Ref"]]
            if set(node) == {"Fn::GetAtt"} and node["Fn::GetAtt"][0] in http_apis:
                api_id = http_apis[node["Fn::GetAtt"][0]]
                attribute = node["Fn::GetAtt"][1]
                if attribute == "ApiId":
                    return api_id
                if attribute == "ApiEndpoint":
                    return f"https://{api_id}.execute-api.{region}.amazonaws.com"
                raise DeployFailed(f"the local cloud cannot resolve GetAtt {node['Fn::GetAtt']}")
            if set(node) == {"Fn::Sub"}:
                sub = node["Fn::Sub"]
                text, variables = (sub, {}) if isinstance(sub, str) else (sub[0], sub[1])
                for logical_id, api_id in http_apis.items():
                    text = text.replace("${" + logical_id + "}", api_id)
                return {"Fn::Sub": text if isinstance(sub, str) else [text, resolve(variables)]}
            if set(node) == {"Ref"} and node["Ref"] in removed or set(node) == {"Fn::GetAtt"} and node["Fn::GetAtt"][0] in removed:
                raise DeployFailed(f"the local cloud cannot resolve {node!r}: a stage is created after the stack")
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    template = copy.deepcopy(translated)
    template["Resources"] = {r: res for r, res in template["Resources"].items() if r not in removed}
    for resource in template["Resources"].values():
        depends = resource.get("DependsOn")
        if depends:
            kept = [d for d in ([depends] if isinstance(depends, str) else depends) if d not in removed]
            if kept:
                resource["DependsOn"] = kept
            else:
                resource.pop("DependsOn")
    return resolve(template)


def _complete_http_apis(translated: dict[str, Any], http_apis: dict[str, str], deployment: Deployment,
                        region: str) -> None:
    """Import each API's routes and integrations (its ``Body``, references resolved) and create its stages."""
    apigw = boto3.client("apigatewayv2", region_name=region)
    for logical_id, api_id in sorted(http_apis.items()):
        body = _resolve_body(translated["Resources"][logical_id]["Properties"]["Body"], logical_id, deployment, region)
        apigw.reimport_api(ApiId=api_id, Body=json.dumps(body), FailOnWarnings=True)
        deployment.resources[logical_id] = api_id
        deployment.resource_types[logical_id] = _HTTP_API
        deployment.completed[logical_id] = _HTTP_API
        deployment.http_apis[logical_id] = api_id
    for logical_id, resource in sorted(translated["Resources"].items()):
        if resource["Type"] != _HTTP_STAGE:
            continue
        props = resource.get("Properties", {})
        unknown = set(props) - _STAGE_PROPERTIES
        api = props.get("ApiId")
        if unknown or not (isinstance(api, dict) and api.get("Ref") in http_apis):
            raise DeployFailed(f"{logical_id}: the local cloud cannot create a stage with {sorted(unknown) or api!r}")
        settings = {k: v for k, v in props.items() if k in ("AutoDeploy", "DefaultRouteSettings", "Description")}
        apigw.create_stage(ApiId=http_apis[api["Ref"]], StageName=props["StageName"], **settings)
        deployment.resources[logical_id] = props["StageName"]
        deployment.resource_types[logical_id] = _HTTP_STAGE
        deployment.completed[logical_id] = _HTTP_STAGE


def _resolve_body(node: Any, logical_id: str, deployment: Deployment, region: str) -> Any:
    """An OpenAPI body as SAM writes it: ``Fn::Sub`` over pseudo parameters and ``<Function>.Arn``,
    ``Ref AWS::StackName``. Anything else fails the deploy rather than import a route to nowhere."""
    if isinstance(node, list):
        return [_resolve_body(item, logical_id, deployment, region) for item in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Ref"} and node["Ref"] == "AWS::StackName":
        return deployment.stack_name
    if set(node) == {"Fn::Sub"} and isinstance(node["Fn::Sub"], str):
        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            pseudo = {"AWS::Partition": "aws", "AWS::Region": region, "AWS::URLSuffix": "amazonaws.com"}
            if name in pseudo:
                return pseudo[name]
            target, _, attribute = name.partition(".")
            if attribute == "Arn" and deployment.resource_types.get(target) == "AWS::Lambda::Function":
                return _resolve({"Fn::GetAtt": [target, "Arn"]}, logical_id, deployment, region)
            raise DeployFailed(f"{logical_id}: the local cloud cannot resolve ${{{name}}} in the API body")
        return re.sub(r"\$\{([^}]+)\}", value, node["Fn::Sub"])
    if any(key.startswith("Fn::") or key == "Ref" for key in node):
        raise DeployFailed(f"{logical_id}: the local cloud cannot resolve {node!r} in the API body")
    return {key: _resolve_body(value, logical_id, deployment, region) for key, value in node.items()}
