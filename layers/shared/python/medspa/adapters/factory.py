"""The one place a function gets its adapters: built from its settings on first use, kept for the container.

A Lambda container serves many invocations, so a boto3 client or a bound table is made once; made on first
use, a function pays at cold start only for the adapters it touches. ``adapters_for`` is cached on the
(frozen) settings, so every module of a function shares one set.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, cached_property
from typing import Any

import boto3
from aws_lambda_powertools.utilities import parameters

from medspa.adapters.booking_site import EventBridgeBookingSite
from medspa.adapters.executions import LifecycleExecutions, MembershipDraftRuns
from medspa.adapters.messaging import AwsMessenger, SesEmailSender, SnsSmsSender
from medspa.adapters.metrics import CloudWatchMetrics
from medspa.adapters.payments import StripePayments
from medspa.adapters.settings import FunctionSettings
from medspa.adapters.store import Store


class Adapters:
    def __init__(self, settings: FunctionSettings, client: Callable[[str], Any] = boto3.client) -> None:
        self.settings = settings
        self._client = client
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._client(service)
        return self._clients[service]

    @cached_property
    def store(self) -> Store:
        s = self.settings
        return Store(s.tables(), s.aws_region, s.aws_endpoint_url_dynamodb)

    @cached_property
    def booking_site(self) -> EventBridgeBookingSite:
        return EventBridgeBookingSite(self.client("events"), self._setting("booking_events_bus"))

    @cached_property
    def executions(self) -> LifecycleExecutions:
        return LifecycleExecutions(self.client("stepfunctions"), self._setting("lifecycle_state_machine_arn"))

    @cached_property
    def draft_runs(self) -> MembershipDraftRuns:
        return MembershipDraftRuns(self.client("stepfunctions"), self._setting("membership_drafts_state_machine_arn"))

    @cached_property
    def messenger(self) -> AwsMessenger:
        return AwsMessenger(SnsSmsSender(self.client("sns")),
                            SesEmailSender(self.client("sesv2"), self._setting("email_from")))

    @cached_property
    def metrics(self) -> CloudWatchMetrics:
        return CloudWatchMetrics()

    def signing_key(self) -> bytes:
        """The secret that signs email links (unsubscribe, confirm), fetched when the first link is made or
        checked, inside an invocation (and its retry)."""
        return self._secret("unsubscribe_signing_key_parameter").encode()

    def spa_api_key(self) -> bytes:
        """The secret that signs the spa API's bearer tokens (``medspa.domain.api_token``)."""
        return self._secret("spa_api_signing_key_parameter").encode()

    @cached_property
    def payments(self) -> StripePayments:
        """Stripe with the secret key, fetched on first use: inside an invocation (and its retry), never at
        import, so a cold start does not fail on a parameter the function may not need."""
        return StripePayments.from_settings(self._secret("stripe_api_key_parameter"),
                                            getattr(self.settings, "stripe_api_base", None))

    def stripe_webhook_secret(self) -> str:
        """The webhook endpoint's signing secret (``whsec_...``)."""
        return self._secret("stripe_webhook_secret_parameter")

    def _secret(self, setting: str) -> str:
        """A SecureString the setting names, from SSM through Powertools, cached five minutes."""
        return str(parameters.get_parameter(self._setting(setting), decrypt=True, max_age=300))

    def _setting(self, name: str) -> str:
        value = getattr(self.settings, name, None)
        if not value:
            raise AttributeError(f"{type(self.settings).__name__} has no {name}: this function was not given it")
        return str(value)


@cache
def adapters_for(settings: FunctionSettings) -> Adapters:
    return Adapters(settings)
