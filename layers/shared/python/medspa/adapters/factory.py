"""The one place a function gets its adapters: built from its settings on first use, kept for the container.

A Lambda container serves many invocations, so an AWS client or a bound table is made once; made on first
use, a function pays at cold start only for the adapters it touches. ``adapters_for`` is cached on the
(frozen) settings, so every module of a function shares one set.

What a cold start pays for (``benchmarks/cold_import.py``): each handler wires its services on its first
invocation (a cached factory in the handler module; an HTTP handler's Powertools resolver too:
``medspa.adapters.http_routes``), and everything here is deferred to the first call that needs it too. A client is botocore's (boto3 adds only weight for clients: its resource layer and s3transfer), and
is made on its first API call, not when a service is wired with it (:class:`ClientOnFirstUse`). Each adapter's
module is imported by the property that builds it: the store (pynamodb and the domain models) with the store,
``stripe`` with the payments adapter, the Powertools parameters utility (which imports boto3) with the first
secret.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, cached_property
from typing import TYPE_CHECKING, Any

from medspa.adapters.settings import FunctionSettings

if TYPE_CHECKING:
    from botocore.session import Session

    from medspa.adapters.booking_site import EventBridgeBookingSite
    from medspa.adapters.executions import FeePaidLaterRuns, LifecycleExecutions, MembershipDraftRuns
    from medspa.adapters.messaging import AwsMessenger
    from medspa.adapters.metrics import CloudWatchMetrics
    from medspa.adapters.outbox import DynamoPacer, DynamoSendClaims, SqsOutbox
    from medspa.adapters.payments import StripePayments
    from medspa.adapters.redelivery import Redelivery
    from medspa.adapters.store import Store


@cache
def _session() -> Session:
    """One botocore session per process, as boto3 keeps one default session: region, credentials and
    ``AWS_ENDPOINT_URL_*`` come from the environment the same way."""
    import botocore.session

    return botocore.session.get_session()


def aws_client(service: str) -> Any:
    """A botocore client of ``service``: what ``boto3.client(service)`` returns, without importing boto3."""
    return _session().create_client(service)


class ClientOnFirstUse:
    """A client made by ``make(service)`` on its first attribute access (its first API call), then kept.

    Services are wired with their clients on a handler's first invocation, and making a client (loading its
    service model, resolving its endpoint) costs a few tens of milliseconds each; most invocations use one or
    two of them. botocore has no lazy client, so this small proxy stands in for one."""

    def __init__(self, make: Callable[[str], Any], service: str) -> None:
        self._make = make
        self._service = service
        self._client: Any = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy, pickle and friends probing for hooks: not a call
            raise AttributeError(name)
        if self._client is None:
            self._client = self._make(self._service)
        return getattr(self._client, name)

    def __repr__(self) -> str:
        return f"ClientOnFirstUse({self._service!r}, made={self._client is not None})"


class Adapters:
    def __init__(self, settings: FunctionSettings, client: Callable[[str], Any] = aws_client) -> None:
        self.settings = settings
        self._client = client
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        """The function's one client of ``service``, made on its first API call."""
        if service not in self._clients:
            self._clients[service] = ClientOnFirstUse(self._client, service)
        return self._clients[service]

    @cached_property
    def store(self) -> Store:
        from medspa.adapters.store import Store

        s = self.settings
        return Store(s.tables(), s.aws_region, s.aws_endpoint_url_dynamodb, s.due_index_shards)

    @cached_property
    def booking_site(self) -> EventBridgeBookingSite:
        from medspa.adapters.booking_site import EventBridgeBookingSite

        return EventBridgeBookingSite(self.client("events"), self._setting("booking_events_bus"))

    @cached_property
    def executions(self) -> LifecycleExecutions:
        from medspa.adapters.executions import LifecycleExecutions

        role = getattr(self.settings, "lifecycle_start_role_arn", None)
        return LifecycleExecutions(self.client("stepfunctions"),
                                   getattr(self.settings, "lifecycle_state_machine_arn", None),
                                   getattr(self.settings, "fee_waiver_state_machine_arn", None),
                                   scheduler=self.client("scheduler") if role else None, start_role_arn=role,
                                   schedule_prefix=getattr(self.settings, "lifecycle_start_schedule_prefix", ""))

    @cached_property
    def draft_runs(self) -> MembershipDraftRuns:
        from medspa.adapters.executions import MembershipDraftRuns

        return MembershipDraftRuns(self.client("stepfunctions"), self._setting("membership_drafts_state_machine_arn"))

    @cached_property
    def paid_fee_runs(self) -> FeePaidLaterRuns:
        from medspa.adapters.executions import FeePaidLaterRuns

        return FeePaidLaterRuns(self.client("stepfunctions"), self._setting("fee_paid_later_state_machine_arn"))

    @cached_property
    def messenger(self) -> AwsMessenger:
        from medspa.adapters.messaging import AwsMessenger, SesEmailSender, SnsSmsSender

        return AwsMessenger(SnsSmsSender(self.client("sns")),
                            SesEmailSender(self.client("sesv2"), self._setting("email_from")))

    @cached_property
    def outbox(self) -> SqsOutbox:
        from medspa.adapters.outbox import SqsOutbox
        from medspa.adapters.settings import OutboxQueues

        if not isinstance(self.settings, OutboxQueues):
            raise TypeError(f"{type(self.settings).__name__} does not message clients")
        return SqsOutbox(self.client("sqs"), self.settings.outbox_queues())

    @cached_property
    def pacer(self) -> DynamoPacer:
        from medspa.adapters.outbox import DynamoPacer
        from medspa.adapters.settings import OutboxSettings

        s = self.settings
        if not isinstance(s, OutboxSettings):
            raise TypeError(f"{type(s).__name__} does not send the outbox")
        return DynamoPacer(self.client("dynamodb"), s.outbox_table, s.per_second())

    @cached_property
    def send_claims(self) -> DynamoSendClaims:
        from medspa.adapters.outbox import DynamoSendClaims

        return DynamoSendClaims(self.client("dynamodb"), self._setting("outbox_table"))

    @cached_property
    def metrics(self) -> CloudWatchMetrics:
        from medspa.adapters.metrics import CloudWatchMetrics

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
        import, so a cold start does not fail on a parameter the function may not need. ``stripe`` is imported
        here, where a function first calls Stripe."""
        from medspa.adapters.payments import StripePayments
        from medspa.adapters.settings import StripeSettings
        from medspa.adapters.stripe_budget import DynamoBudget

        s = self.settings
        if not isinstance(s, StripeSettings):
            raise TypeError(f"{type(s).__name__} does not call Stripe")
        budget = DynamoBudget(self.client("dynamodb"), s.stripe_budget_table, s.stripe_requests_per_second,
                              s.stripe_drafts_share)
        return StripePayments.from_settings(self._secret("stripe_api_key_parameter"), s.stripe_api_base,
                                            budget=budget, lane=s.STRIPE_LANE)

    @cached_property
    def stripe_events_redelivery(self) -> Redelivery:
        """Puts a Stripe event the budget turned away back on its queue after a jittered while."""
        from medspa.adapters.redelivery import Redelivery
        from medspa.adapters.settings import StripeEventsSettings

        s = self.settings
        if not isinstance(s, StripeEventsSettings):
            raise TypeError(f"{type(s).__name__} does not reconcile Stripe events")
        return Redelivery(self.client("sqs"), s.stripe_events_queue_url)

    def stripe_webhook_secret(self) -> str:
        """The webhook endpoint's signing secret (``whsec_...``)."""
        return self._secret("stripe_webhook_secret_parameter")

    def _secret(self, setting: str) -> str:
        """A SecureString the setting names, from SSM through Powertools, cached five minutes (imported here:
        it imports boto3)."""
        from aws_lambda_powertools.utilities import parameters

        return str(parameters.get_parameter(self._setting(setting), decrypt=True, max_age=300))

    def _setting(self, name: str) -> str:
        value = getattr(self.settings, name, None)
        if not value:
            raise AttributeError(f"{type(self.settings).__name__} has no {name}: this function was not given it")
        return str(value)


@cache
def adapters_for(settings: FunctionSettings) -> Adapters:
    return Adapters(settings)
