"""Each function's configuration, read once from its environment (``template.yaml`` sets it).

A variable missing or malformed fails the cold start with its name (``email_from: Field required``), before
any event is taken, instead of a ``KeyError`` at the first reminder due at 08:00. Names are the variables'
own, lower-cased; empty values count as unset, so an optional one the template leaves blank is ``None``.

Plain pydantic models over ``os.environ`` (:func:`_environment`), not pydantic-settings' ``BaseSettings``: that
library's import (its dotenv, CLI and cloud secret sources) cost each cold start about half a bare ``import
boto3``, for the one thing used here, reading the environment, which :func:`_environment` does by hand with the
same rules (names matched lower-cased, empty values unset, arguments over the environment).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, PositiveInt

if TYPE_CHECKING:
    from medspa.adapters.store import TableNames

_Name = Field(min_length=1)


def _environment(names: frozenset[str]) -> dict[str, str]:
    """The variables settings read, by the names they are read by: a field's lower-case name or one of its
    aliases (``AWS_REGION``), matched without regard to case; empty ones unset. Nothing else is taken, so an
    error never quotes another variable (Lambda's environment holds the session's credentials)."""
    spellings: dict[str, list[str]] = {}
    for name in names:
        spellings.setdefault(name.lower(), []).append(name)
    return {spelling: value for name, value in os.environ.items() if value
            for spelling in spellings.get(name.lower(), ())}


class FunctionSettings(BaseModel):
    """What every function reads: its Region and the shared tables."""

    # defer_build: only the one settings class a function instantiates builds its validator, at cold start.
    model_config = ConfigDict(frozen=True, extra="ignore", validate_default=True, defer_build=True)

    def __init__(self, **values: Any) -> None:
        """The environment, with ``values`` over it (the admin CLI passes a deployed function's environment)."""
        super().__init__(**{**_environment(self._names()), **values})

    @classmethod
    def _names(cls) -> frozenset[str]:
        names = set(cls.model_fields)
        for field in cls.model_fields.values():
            if isinstance(field.validation_alias, AliasChoices):
                names.update(choice for choice in field.validation_alias.choices if isinstance(choice, str))
        return frozenset(names)

    aws_region: str = Field(min_length=1, validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"))
    aws_endpoint_url_dynamodb: str | None = None
    clients_table: str = Field(min_length=3)
    appointments_table: str = Field(min_length=3)
    ledger_table: str = Field(min_length=3)
    consent_table: str = Field(min_length=3)
    memberships_table: str = Field(min_length=3)
    courses_table: str = Field(min_length=3)
    # Required although it has a sensible value: a function that fell back to its own default while the others
    # had been raised would write where the finder reads, or read less than was written (ports.memberships).
    due_index_shards: int = Field(ge=1, le=100, description="The by_due_day indexes' shard count; raise only")

    def tables(self) -> TableNames:
        from medspa.adapters.store import TableNames  # the store, with its models, comes with the first table

        return TableNames(clients=self.clients_table, appointments=self.appointments_table, ledger=self.ledger_table,
                          consent=self.consent_table,
                          memberships=self.memberships_table, courses=self.courses_table)


class BookingSiteSettings(FunctionSettings):
    """A function that tells the booking site something on the bus."""

    booking_events_bus: str = _Name


class OutboxQueues(FunctionSettings):
    """Each sending identity's outbox queue: this deployment has one SMS identity (a number or a pool) and one
    email sender."""

    sms_outbox_queue_url: str = Field(pattern=r"^https?://")
    email_outbox_queue_url: str = Field(pattern=r"^https?://")

    def outbox_queues(self) -> dict[str, str]:
        return {"sms": self.sms_outbox_queue_url, "email": self.email_outbox_queue_url}


class MessagingSettings(BookingSiteSettings, OutboxQueues):
    """A function that texts and emails clients: it queues on the outbox, with signed unsubscribe links."""

    unsubscribe_url: str = Field(pattern=r"^https://")
    unsubscribe_signing_key_parameter: str = _Name


class OutboxSettings(OutboxQueues):
    """The outbox's sender: the email identity, and the rate each identity allows."""

    email_from: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    outbox_table: str = Field(min_length=3)
    sms_messages_per_second: float = Field(gt=0, le=1000, description="The SMS identity's MPS (10DLC: 1)")
    email_messages_per_second: float = Field(gt=0, le=1000, description="SES's sending rate for the account")

    def per_second(self) -> dict[str, float]:
        return {"sms": self.sms_messages_per_second, "email": self.email_messages_per_second}


class LifecycleSettings(MessagingSettings):
    lifecycle_state_machine_arn: str = Field(pattern=r"^arn:")
    confirm_url: str = Field(pattern=r"^https://")


class IngestSettings(BookingSiteSettings):
    lifecycle_state_machine_arn: str = Field(pattern=r"^arn:")
    lifecycle_start_role_arn: str = Field(pattern=r"^arn:", description="The role the Scheduler starts runs as")
    lifecycle_start_schedule_prefix: str = Field(pattern=r"^[0-9A-Za-z_.-]{1,24}$",
                                                 description="Names the deployment's run-start schedules")
    fee_waiver_state_machine_arn: str = Field(pattern=r"^arn:")
    quarantine_queue_url: str = Field(pattern=r"^https?://")
    intake_max_receive_count: PositiveInt
    privacy_function_name: str = _Name
    membership_drafts_state_machine_arn: str = Field(pattern=r"^arn:")


class StripeSettings(FunctionSettings):
    """A function that calls Stripe with the account's secret key, spending from the account's one rate budget
    (``medspa.adapters.stripe_budget``). Its lane is the function's nature, not configuration: only the
    membership drafts are held to the drafts' share."""

    STRIPE_LANE: ClassVar[Literal["fees", "drafts"]] = "fees"

    stripe_api_key_parameter: str = _Name
    stripe_api_base: str | None = Field(None, description="A Stripe-compatible base URL; unset in production")
    stripe_budget_table: str = Field(min_length=3)
    stripe_requests_per_second: PositiveInt = Field(description="The account's Stripe budget, every function's")
    stripe_drafts_share: float = Field(gt=0, lt=1, description="At most this share of each second for drafts")


class SettlementSettings(StripeSettings, BookingSiteSettings):
    pass


class StripeEventsSettings(StripeSettings):
    """Reconciling Stripe's events: a membership draft paid late starts that membership's drafts run, a visit's
    fee paid late a FeePaidLater run."""

    membership_drafts_state_machine_arn: str = Field(pattern=r"^arn:")
    fee_paid_later_state_machine_arn: str = Field(pattern=r"^arn:")
    stripe_events_queue_url: str = Field(pattern=r"^https?://")


class StripeWebhookSettings(FunctionSettings):
    """The webhook endpoint: checks Stripe's signature and queues what to reconcile; it never calls Stripe."""

    stripe_webhook_secret_parameter: str = _Name
    stripe_events_queue_url: str = Field(pattern=r"^https?://")


class MembershipsSettings(SettlementSettings, MessagingSettings):
    """Drafts through Stripe, and messages members (a declined draft, what expires in a week)."""

    STRIPE_LANE: ClassVar[Literal["fees", "drafts"]] = "drafts"


class InboundSmsSettings(BookingSiteSettings):
    pass


class SpaApiSettings(FunctionSettings):
    """The spa API: reads a spa's records, starts a waiver run, lifts a prepay flag."""

    spa_api_signing_key_parameter: str = _Name
    fee_waiver_state_machine_arn: str = Field(pattern=r"^arn:")


class HttpApiSettings(BookingSiteSettings):
    unsubscribe_signing_key_parameter: str = _Name
