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
"""

from __future__ import annotations

import copy
import io
import json
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

from localcloud.runtime import FunctionSource, InProcessRuntime

ARTIFACT_BUCKET = "localcloud-artifacts"

# Resource types moto's CloudFormation skips that change nothing locally (moto enforces no IAM).
# Any other skipped resource fails the deploy: a missing queue or table must never pass silently.
NOT_EMULATED = {
    "AWS::SQS::QueuePolicy": "resource policy: moto does not enforce access policies",
}


# Resource types moto's CloudFormation skips that the local cloud creates itself after the stack.
COMPLETED_BY_LOCALCLOUD = {
    "AWS::SNS::Subscription": "no moto CloudFormation model: created through SNS Subscribe",
}
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
    return yaml_parse(path.read_text())


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
    translated = transform(packaged, dict(parameters or {}), _ManagedPolicies())
    with warnings.catch_warnings():  # moto warns about each type it skips; these are created below
        for kind in COMPLETED_BY_LOCALCLOUD:
            warnings.filterwarnings("ignore", f"Tried to parse {re.escape(kind)} but", UserWarning)
        cfn.create_stack(
            StackName=stack_name,
            TemplateBody=json.dumps(translated),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in (parameters or {}).items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
        stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
        if stack["StackStatus"] != "CREATE_COMPLETE":
            raise DeployFailed(f"{stack_name}: {stack['StackStatus']} {stack.get('StackStatusReason', '')}")
        summaries = cfn.list_stack_resources(StackName=stack_name)["StackResourceSummaries"]
    skipped = set(translated["Resources"]) - {s["LogicalResourceId"] for s in summaries}
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
        arn = _subscribe(translated["Resources"][logical_id], logical_id, deployment, region)
        deployment.resources[logical_id] = arn
        deployment.resource_types[logical_id] = to_complete[logical_id]
        deployment.completed[logical_id] = to_complete[logical_id]
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
    """A literal, a ``Ref`` to a stack resource, or ``Fn::GetAtt [<Lambda function>, Arn]``."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in deployment.resources:
        return deployment.physical(value["Ref"])
    if isinstance(value, dict) and set(value) == {"Fn::GetAtt"}:
        target, attribute = value["Fn::GetAtt"]
        if attribute == "Arn" and deployment.resource_types.get(target) == "AWS::Lambda::Function":
            configuration = boto3.client("lambda", region_name=region).get_function(
                FunctionName=deployment.physical(target))["Configuration"]
            return configuration["FunctionArn"]
    raise DeployFailed(f"{logical_id}: the local cloud cannot resolve {value!r}")
