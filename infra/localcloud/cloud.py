"""The local cloud: ``template.yaml`` deployed into moto, run under a virtual clock, on one machine.

Usage (tests, the demo, ``medspa simulate``)::

    with LocalCloud(start=utc(2026, 3, 1)) as cloud:
        deployment = cloud.deploy()
        cloud.client("stepfunctions").start_execution(...)
        cloud.run_until_idle()

The driver (the thread that opened the cloud) never polls an execution in a loop: it calls
``run_until``/``run_for``/``run_until_idle`` and reads the results afterwards, because executions only
run while the driver hands them the clock.

The HTTP API: moto serves no execute-api endpoint, so ``cloud.http("GET", url_or_path)`` plays API
Gateway's part for an HTTP API (payload format 2.0): it finds the route moto's ApiGatewayV2 holds for
the request (imported from the template's API at deploy), builds the v2 event and invokes the route's
function through the Lambda Invoke API, so the handler runs in-process like every other function.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import boto3
from moto import mock_aws

from localcloud import iam, patches
from localcloud.clock import VirtualClock
from fakestripe import FakeStripe, WebhookDelivery, sign
from localcloud.deploy import Deployment, deploy, load_template
from localcloud.eventsources import SchedulerHook, SqsEventSourcePoller
from localcloud.runtime import InProcessRuntime

REPO_ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account

_ENVIRONMENT = {
    "TZ": "UTC",  # moto compares Timestamp waits with a naive local now
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    "AWS_LAMBDA_FUNCTION_NAME": "",
}


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""


# API Gateway HTTP APIs pass these bodies as text; any other content type arrives base64-encoded.
_TEXT_TYPES = re.compile(r"^(text/|application/(json|xml|javascript))")


def _route(routes: Mapping[str, dict[str, Any]], method: str, path: str) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """The route API Gateway picks: an exact path first, then a template (``/spas/{spa_id}``, one segment per
    variable), a method's own before ``ANY``, then ``$default``; with the path's variables."""
    for key in (f"{method} {path}", f"ANY {path}"):
        if key in routes:
            return routes[key], {}
    for wanted in (method, "ANY"):
        for key, route in routes.items():
            verb, _, template = key.partition(" ")
            if verb != wanted or "{" not in template:
                continue
            pattern = re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(template))
            if match := re.fullmatch(pattern, path):
                return route, match.groupdict()
    return routes.get("$default"), {}


class LocalCloud:
    def __init__(self, start: datetime, *, template: Path | None = None, region: str = REGION) -> None:
        self.template = template or REPO_ROOT / "template.yaml"
        self.region = region
        self.start = start
        self.clock: VirtualClock | None = None
        self.runtime = InProcessRuntime(region=region)
        self.deployment: Deployment | None = None
        self._mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
        self._saved_env: dict[str, str | None] = {}
        self._clients: dict[str, Any] = {}
        self.stripe: FakeStripe | None = None
        self._webhooks_delivered = 0
        self.metric_lines: list[tuple[str, dict[str, Any]]] = []
        self.runtime.on_metrics = self._put_metrics

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> "LocalCloud":
        self._saved_env = {k: os.environ.get(k) for k in _ENVIRONMENT}
        os.environ.update({k: v for k, v in _ENVIRONMENT.items() if v})
        os.environ.pop("AWS_LAMBDA_FUNCTION_NAME", None)
        time.tzset()
        self._mock.start()
        self.clock = VirtualClock(self.start)
        patches.activate(self.clock, self.runtime)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.clock is None:
            return
        try:
            self._stop_running_executions()
        finally:
            if self.stripe is not None:
                self.stripe.stop()
                self.stripe = None
            patches.deactivate()
            iam.deactivate()
            self._mock.stop()
            self.clock.close()
            self.clock = None
            for key, value in self._saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            time.tzset()

    def deploy(self, parameters: dict[str, str] | None = None) -> Deployment:
        """Deploy the template with Stripe aimed at a fake on loopback, its key in SSM as in AWS, and
        the email sender verified in SES (in AWS: the operator verifies the domain once)."""
        declared = load_template(self.template).get("Parameters", {})
        parameters = dict(parameters or {})

        def value(name: str) -> str:
            return parameters.get(name, declared[name]["Default"])

        if "StripeApiBase" in declared:
            self.stripe = FakeStripe().start()
            parameters.setdefault("StripeApiBase", self.stripe.url)
            self.client("ssm").put_parameter(Name=value("StripeApiKeyParameter"), Value=self.stripe.api_key,
                                             Type="SecureString", Overwrite=True)
            if "StripeWebhookSecretParameter" in declared:  # in AWS: copied from the endpoint's page in the dashboard
                self.client("ssm").put_parameter(Name=value("StripeWebhookSecretParameter"),
                                                 Value=self.stripe.webhook_secret, Type="SecureString", Overwrite=True)
        if "EmailFromAddress" in declared:
            self.client("sesv2").create_email_identity(EmailIdentity=value("EmailFromAddress"))
        for secret in ("UnsubscribeSigningKeyParameter", "SpaApiSigningKeyParameter"):
            if secret in declared:  # in AWS: the operator puts a random secret once
                self.client("ssm").put_parameter(Name=value(secret), Value=secrets.token_urlsafe(48),
                                                 Type="SecureString", Overwrite=True)
        # Powertools caches parameters process-wide, by name and until a time on the (virtual) clock: a cloud that
        # starts earlier than the last one ended would read the last cloud's secrets until then.
        from aws_lambda_powertools.utilities import parameters as powertools_parameters

        powertools_parameters.clear_caches()
        self.deployment = deploy(self.template, runtime=self.runtime, parameters=parameters, region=self.region)
        self.iam = iam.IamEnforcer.from_deployment(self.deployment, self.client("iam"), self.client("lambda"),
                                                   self.client("dynamodb"), ACCOUNT, self.region)
        iam.install()
        iam.activate(self.iam)
        sqs_poller = SqsEventSourcePoller(self.client("sqs"), self.client("lambda"), self.region)
        sqs_poller.discover()
        self.sqs_poller = sqs_poller
        self.scheduler = SchedulerHook(
            self.client("scheduler"), self.client("stepfunctions"), self.client("lambda"), self.client("sqs")
        )
        assert self.clock is not None
        self.clock.add_idle_hook(sqs_poller)
        self.clock.add_idle_hook(self.scheduler)
        return self.deployment

    def redeploy_code(self) -> None:
        """Publish the functions' code again, as ``sam deploy`` does after a change: each function cold-starts
        at its next invoke and reads its files afresh (policy packs included). Tables, queues and running
        executions carry on, as they do in AWS."""
        self.runtime.redeploy_code()

    # ------------------------------------------------------------------ time
    def now(self) -> datetime:
        assert self.clock is not None, "the local cloud is not open"
        return self.clock.now()

    def run_until(self, when: datetime) -> None:
        assert self.clock is not None
        self.clock.run_until(when)

    def run_for(self, delta: timedelta) -> None:
        assert self.clock is not None
        self.clock.run_for(delta)

    def run_until_idle(self, horizon: timedelta = timedelta(days=400)) -> None:
        assert self.clock is not None
        self.clock.run_until_idle(horizon=horizon)

    # ------------------------------------------------------------------ clients
    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = boto3.client(service, region_name=self.region)
        return self._clients[service]

    def function_environment(self, logical_id: str) -> dict[str, str]:
        """The environment a deployed function sees, as CloudFormation resolved it (table names, ARNs)."""
        assert self.deployment is not None, "deploy() first"
        configuration = self.client("lambda").get_function_configuration(
            FunctionName=self.deployment.functions[logical_id])
        return configuration["Environment"]["Variables"]

    # ------------------------------------------------------------------ metrics
    def _put_metrics(self, function: str, line: dict[str, Any]) -> None:
        """What CloudWatch does with a function's embedded-metric-format line: each metric under each of the
        line's dimension sets, at the line's time. The line is kept too, as Logs Insights would find it."""
        self.metric_lines.append((function, line))
        aws = line["_aws"]
        when = datetime.fromtimestamp(aws["Timestamp"] / 1000, UTC)
        for directive in aws["CloudWatchMetrics"]:
            for dimensions in directive["Dimensions"]:
                self.client("cloudwatch").put_metric_data(Namespace=directive["Namespace"], MetricData=[
                    {"MetricName": metric["Name"], "Unit": metric.get("Unit", "None"), "Timestamp": when,
                     "Dimensions": [{"Name": name, "Value": str(line[name])} for name in dimensions], "Value": value}
                    for metric in directive["Metrics"]
                    for value in (line[metric["Name"]] if isinstance(line[metric["Name"]], list)
                                  else [line[metric["Name"]]])])

    def metric_sum(self, name: str, **dimensions: str) -> float:
        """A business metric's sum over the whole run, read back from CloudWatch as a dashboard reads it (Powertools
        adds the ``service`` dimension to every metric)."""
        environment = self.function_environment("LifecycleFunction")
        dimensions = {"service": environment["POWERTOOLS_SERVICE_NAME"], **dimensions}
        points = self.client("cloudwatch").get_metric_statistics(
            Namespace=environment["POWERTOOLS_METRICS_NAMESPACE"], MetricName=name,
            Dimensions=[{"Name": k, "Value": v} for k, v in dimensions.items()],
            StartTime=self.start - timedelta(days=1), EndTime=self.now() + timedelta(days=1), Period=86400,
            Statistics=["Sum"])["Datapoints"]
        return sum(p["Sum"] for p in points)

    def state_machine_arn(self, logical_id: str) -> str:
        assert self.deployment is not None, "deploy() first"
        return self.deployment.state_machines[logical_id]

    # ------------------------------------------------------------------ the HTTP API
    def http_api_url(self, logical_id: str = "HttpApi") -> str:
        """The API's public address, as the template's ``HttpApiUrl`` output and the email links give it."""
        assert self.deployment is not None, "deploy() first"
        return f"https://{self.deployment.http_apis[logical_id]}.execute-api.{self.region}.amazonaws.com"

    def http(self, method: str, url: str, *, body: str | bytes | None = None,
             headers: Mapping[str, str] | None = None, api: str = "HttpApi") -> HttpResponse:
        """One request to the deployed HTTP API, answered as API Gateway would.

        ``url`` is a path (``/unsubscribe?token=...``) or a full address, which must be this API's
        (a link that points elsewhere is a bug worth failing on). No route: 404 ``Not Found``; the
        function failed: 500 ``Internal Server Error``, as API Gateway answers.
        """
        assert self.deployment is not None, "deploy() first"
        api_id = self.deployment.http_apis[api]
        parts = urlsplit(url)
        if parts.scheme or parts.netloc:
            expected = urlsplit(self.http_api_url(api)).netloc
            if parts.scheme != "https" or parts.netloc != expected:
                raise ValueError(f"{url!r} is not an address of the {api} API ({expected})")
        method, path = method.upper(), parts.path or "/"
        apigw = self.client("apigatewayv2")
        routes = {r["RouteKey"]: r for r in apigw.get_routes(ApiId=api_id)["Items"]}
        route, path_parameters = _route(routes, method, path)
        if route is None:
            return HttpResponse(404, {"content-type": "application/json"}, json.dumps({"message": "Not Found"}))
        integration = apigw.get_integration(ApiId=api_id, IntegrationId=route["Target"].removeprefix("integrations/"))
        function = re.search(r"/functions/(.+)/invocations$", integration["IntegrationUri"])
        if integration["IntegrationType"].upper() != "AWS_PROXY" or function is None:
            raise NotImplementedError(f"the local cloud serves only Lambda proxy routes, not {route['RouteKey']}")
        event = self._http_event(api_id, route["RouteKey"], method, path, parts.query, body, headers or {})
        if path_parameters:
            event["pathParameters"] = path_parameters
        response = self.client("lambda").invoke(FunctionName=function.group(1), Payload=json.dumps(event))
        payload = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError"):
            return HttpResponse(500, {"content-type": "application/json"},
                                json.dumps({"message": "Internal Server Error"}))
        if not isinstance(payload, dict) or "statusCode" not in payload:  # format 2.0: a bare value is the body
            return HttpResponse(200, {"content-type": "application/json"}, json.dumps(payload))
        text = payload.get("body") or ""
        if payload.get("isBase64Encoded"):
            text = base64.b64decode(text).decode()
        return HttpResponse(int(payload["statusCode"]),
                            {k.lower(): str(v) for k, v in (payload.get("headers") or {}).items()}, text)

    def _http_event(self, api_id: str, route_key: str, method: str, path: str, query: str,
                    body: str | bytes | None, headers: Mapping[str, str]) -> dict[str, Any]:
        host = f"{api_id}.execute-api.{self.region}.amazonaws.com"
        lowered = {"host": host, "user-agent": "localcloud", **{k.lower(): v for k, v in headers.items()}}
        params: dict[str, str] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            params[key] = f"{params[key]},{value}" if key in params else value  # API Gateway joins repeats
        raw = body.encode() if isinstance(body, str) else body
        encoded = raw is not None and not _TEXT_TYPES.match(lowered.get("content-type", ""))
        now = self.now()
        return {
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": path,
            "rawQueryString": query,
            "headers": lowered,
            **({"queryStringParameters": params} if params else {}),
            "requestContext": {
                "accountId": ACCOUNT, "apiId": api_id, "domainName": host,
                "domainPrefix": host.partition(".")[0], "requestId": str(uuid.uuid4()), "routeKey": route_key,
                "stage": "$default", "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "timeEpoch": int(now.timestamp() * 1000),
                "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                         "userAgent": lowered["user-agent"]},
            },
            **({"body": base64.b64encode(raw).decode() if encoded else raw.decode(), "isBase64Encoded": encoded}
               if raw is not None else {"isBase64Encoded": False}),
        }

    def deliver_stripe_webhooks(self, deliveries: Iterable[WebhookDelivery] | None = None, *,
                                resign: bool = True) -> list[HttpResponse]:
        """POST Stripe's events to the deployed ``/stripe/webhooks``, as Stripe does, and return the answers.

        With no ``deliveries``, every event the fake Stripe emitted since the last call, in order. Stripe signs
        each delivery attempt when it makes it, so by default each is signed now with the endpoint's secret: a
        delivery made late, or again, verifies. ``resign=False`` sends the signature made when the event
        happened, as a replay of a captured request would.
        """
        assert self.stripe is not None, "deploy() first"
        if deliveries is None:
            deliveries = self.stripe.webhook_events[self._webhooks_delivered:]
            self._webhooks_delivered = len(self.stripe.webhook_events)
        answers = []
        for delivery in deliveries:
            headers = delivery.headers
            if resign:
                headers["Stripe-Signature"] = sign(delivery.payload, self.stripe.webhook_secret, int(self.now().timestamp()))
            answer = self.http("POST", "/stripe/webhooks", body=delivery.payload, headers=headers)
            delivery.delivered_status = answer.status
            answers.append(answer)
        return answers

    @staticmethod
    def form(fields: Mapping[str, str]) -> tuple[str, dict[str, str]]:
        """A form body and its content type, as a browser or a mail provider's one-click POST sends it."""
        return urlencode(dict(fields)), {"content-type": "application/x-www-form-urlencoded"}

    def _stop_running_executions(self) -> None:
        """Threads left behind would keep running outside the mock; stop every execution and let it end."""
        sfn = self.client("stepfunctions")
        running = []
        for machine in sfn.list_state_machines()["stateMachines"]:
            for page in sfn.get_paginator("list_executions").paginate(
                stateMachineArn=machine["stateMachineArn"], statusFilter="RUNNING"
            ):
                running += [e["executionArn"] for e in page["executions"]]
        for arn in running:
            sfn.stop_execution(executionArn=arn, error="LocalCloudClosed", cause="the local cloud was closed")
        assert self.clock is not None
        self.clock.run_for(timedelta(0))
