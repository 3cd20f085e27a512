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
    "AWS::Events::EventBusPolicy": "resource policy: moto does not enforce access policies",
}


# Resource types moto's CloudFormation skips that the local cloud creates itself after the stack.
COMPLETED_BY_LOCALCLOUD = {
    "AWS::SNS::Subscription": "no moto CloudFormation model: created through SNS Subscribe",
    "AWS::ApiGatewayV2::Api": "no moto CloudFormation model: created through ApiGatewayV2 CreateApi + ReimportApi",
    "AWS::ApiGatewayV2::Stage": "no moto CloudFormation model: created through ApiGatewayV2 CreateStage",
}
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
        arn = _subscribe(translated["Resources"][logical_id], logical_id, deployment, region)
        deployment.resources[logical_id] = arn
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
