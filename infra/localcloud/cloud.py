"""The local cloud: ``template.yaml`` deployed into moto, run under a virtual clock, on one machine.

Usage (tests, the demo, ``medspa simulate``)::

    with LocalCloud(start=utc(2026, 3, 1)) as cloud:
        deployment = cloud.deploy()
        cloud.client("stepfunctions").start_execution(...)
        cloud.run_until_idle()

The driver (the thread that opened the cloud) never polls an execution in a loop: it calls
``run_until``/``run_for``/``run_until_idle`` and reads the results afterwards, because executions only
run while the driver hands them the clock.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

from localcloud import patches
from localcloud.clock import VirtualClock
from fakestripe import FakeStripe
from localcloud.deploy import Deployment, deploy, load_template
from localcloud.eventsources import SchedulerHook, SqsEventSourcePoller
from localcloud.runtime import InProcessRuntime

REPO_ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"

_ENVIRONMENT = {
    "TZ": "UTC",  # moto compares Timestamp waits with a naive local now
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    "AWS_LAMBDA_FUNCTION_NAME": "",
}


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
        if "EmailFromAddress" in declared:
            self.client("sesv2").create_email_identity(EmailIdentity=value("EmailFromAddress"))
        self.deployment = deploy(self.template, runtime=self.runtime, parameters=parameters, region=self.region)
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

    def state_machine_arn(self, logical_id: str) -> str:
        assert self.deployment is not None, "deploy() first"
        return self.deployment.state_machines[logical_id]

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
