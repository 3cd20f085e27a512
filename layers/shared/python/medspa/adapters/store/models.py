"""pynamodb models, unbound: a table name is given only when a ``Store`` binds them.

The same code runs against tables named by CloudFormation in AWS and by the test fixtures in moto,
so no model reads ``os.environ``: ``bind`` creates a subclass per (table, region, endpoint) with its
own ``Meta`` and pynamodb connection, cached so a warm Lambda reuses it.
"""

from __future__ import annotations

from datetime import datetime, timezone
from functools import cache
from typing import Any, TypeVar

from pynamodb.attributes import (
    Attribute,
    BooleanAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    VersionAttribute,
)
from pynamodb.constants import ALL_NEW, STRING
from pynamodb.exceptions import PynamoDBException, PutError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

M = TypeVar("M", bound=Model)


def utc_iso(value: datetime) -> str:
    """Fixed-width UTC ISO-8601, so strings sort in time order (GSI range keys compare as text)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: pass a UTC-aware time")
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class UtcTime(Attribute[datetime]):
    """A time stored as ``utc_iso`` text; naive datetimes are refused rather than guessed."""

    attr_type = STRING

    def serialize(self, value: datetime) -> str:
        return utc_iso(value)

    def deserialize(self, value: str) -> datetime:
        return datetime.fromisoformat(value)


def condition_failed(error: PynamoDBException) -> bool:
    return error.cause_response_code == "ConditionalCheckFailedException"


def update_if(model: type[M], key: str, actions: list[Action], condition: Condition | None) -> M | None:
    """One conditional UpdateItem; ``None`` when the condition refused it, so callers classify why."""
    try:
        data = model._get_connection().update_item(key, actions=actions, condition=condition, return_values=ALL_NEW)
    except UpdateError as error:
        if condition_failed(error):
            return None
        raise
    return model.from_raw_data(data["Attributes"])


def put_if(record: Model, condition: Condition) -> bool:
    """One conditional PutItem; ``False`` when the condition refused it."""
    try:
        record.save(condition=condition, add_version_condition=False)
    except PutError as error:
        if condition_failed(error):
            return False
        raise
    return True


class ServiceMap(MapAttribute):
    name = UnicodeAttribute()
    category = UnicodeAttribute()
    duration_minutes = NumberAttribute()
    price_amount = NumberAttribute()
    price_currency = UnicodeAttribute()


class PaymentMap(MapAttribute):
    card_on_file = BooleanAttribute(default=False)
    deposit_amount = NumberAttribute(null=True)
    deposit_currency = UnicodeAttribute(null=True)
    prepaid_amount = NumberAttribute(null=True)
    prepaid_currency = UnicodeAttribute(null=True)
    course_id = UnicodeAttribute(null=True)
    course_session_available = BooleanAttribute(default=False)
    gift_certificate_amount = NumberAttribute(null=True)
    gift_certificate_currency = UnicodeAttribute(null=True)


class AppointmentsByClient(GlobalSecondaryIndex):
    class Meta:
        index_name = "by_client"
        projection = AllProjection()

    client_id = UnicodeAttribute(hash_key=True)
    starts_at = UtcTime(range_key=True)


class AppointmentRecord(Model):
    """The booking snapshot (null until an ``AppointmentBooked`` is known), the booking site's event
    history it was folded from, and what the lifecycle recorded (messages, fees, its own outcome)."""

    appointment_id = UnicodeAttribute(hash_key=True)
    client_id = UnicodeAttribute(null=True)
    location_id = UnicodeAttribute(null=True)
    policy_version = UnicodeAttribute(null=True)
    service = ServiceMap(null=True)
    starts_at = UtcTime(null=True)
    party_size = NumberAttribute(default=1)
    status = UnicodeAttribute(null=True)
    booking_version = NumberAttribute(null=True)
    revision = NumberAttribute(null=True)
    version_revision = NumberAttribute(null=True)
    version_stored_at = UtcTime(null=True)
    facts = UnicodeAttribute(null=True)
    # "<booking_version>" -> {"detail_type", "event_id", "detail"} as JSON text: the history folded above.
    events = MapAttribute(null=True)
    # message key -> MessageLog JSON; fee reason -> FeeState JSON; LifecycleOutcome JSON.
    messages = MapAttribute(null=True)
    fees = MapAttribute(null=True)
    outcome = UnicodeAttribute(null=True)
    card_check = UnicodeAttribute(null=True)  # CardCheck JSON: the card on file, checked before the visit
    last_event_id = UnicodeAttribute(null=True)
    execution_name = UnicodeAttribute(null=True)
    execution_arn = UnicodeAttribute(null=True)
    run = UnicodeAttribute(null=True)  # LifecycleRun JSON: the execution acting for the appointment
    payment = PaymentMap(null=True)
    confirmed_at = UtcTime(null=True)
    checked_in_at = UtcTime(null=True)
    # A reply to the confirmation request (SMS keyword): the system's own fact, never overwritten by a booking upsert.
    client_confirmed_at = UtcTime(null=True)
    client_confirmed_via = UnicodeAttribute(null=True)
    # What the lifecycle told the booking site on its own account ("balance_due@booked"): told once per key.
    told_booking_site = UnicodeSetAttribute(null=True)
    created_at = UtcTime()
    updated_at = UtcTime()
    record_version = VersionAttribute()

    by_client = AppointmentsByClient()


class ClientsByPhone(GlobalSecondaryIndex):
    """Inbound SMS names only a phone number; one person may be a client of several spas.
    Sparse: a client without a phone is not in it."""

    class Meta:
        index_name = "by_phone"
        projection = AllProjection()

    phone = UnicodeAttribute(hash_key=True)


class ClientRecord(Model):
    client_id = UnicodeAttribute(hash_key=True)
    spa_id = UnicodeAttribute()
    # What the booking site says the client likes to be called, only to greet them ("Hi Ana,"); erased with them.
    first_name = UnicodeAttribute(null=True)
    phone = UnicodeAttribute(null=True)
    email = UnicodeAttribute(null=True)
    sms_opt_out = BooleanAttribute(default=False)
    email_opt_out = BooleanAttribute(default=False)
    # The booking site's consent flags (latest booking wins); a STOP keyword is sms_opt_out and outlives them.
    sms_consent = BooleanAttribute(null=True)
    email_consent = BooleanAttribute(null=True)
    stripe_customer_id = UnicodeAttribute(null=True)
    default_payment_method_id = UnicodeAttribute(null=True)
    # Every Stripe customer the booking site has named for this client: a replaced one is deleted at erasure too.
    stripe_customer_ids = UnicodeSetAttribute(null=True)
    # Every address the client has been reached at ("sms#<phone>", "email#<address>"): an erasure also deletes the
    # consent recorded for a former one.
    known_contacts = UnicodeSetAttribute(null=True)
    # "<appointment_id>#<reason>" -> {appointment_id, reason, at}: the key makes a repeated strike a no-op.
    strikes = MapAttribute(default=dict)
    prepay_required = BooleanAttribute(default=False)
    prepay_set_at = UtcTime(null=True)
    prepay_cleared_by = UnicodeAttribute(null=True)
    prepay_cleared_at = UtcTime(null=True)
    # currency -> integer minor units
    outstanding = MapAttribute(default=dict)
    credit = MapAttribute(default=dict)
    # ledger entry ids whose balance movement has been applied: a retried movement is a no-op.
    applied_entries = UnicodeSetAttribute(null=True)
    # Set when the client's data was erased at their request: the record stays as a tombstone (no contact,
    # no Stripe ids) so a later event naming the client is refused, and balances owed stay accountable.
    erased_at = UtcTime(null=True)
    created_at = UtcTime()
    updated_at = UtcTime()

    by_phone = ClientsByPhone()


class LedgerByAppointment(GlobalSecondaryIndex):
    class Meta:
        index_name = "by_appointment"
        projection = AllProjection()

    appointment_id = UnicodeAttribute(hash_key=True)
    created_at = UtcTime(range_key=True)


class LedgerByStripeKey(GlobalSecondaryIndex):
    """How a Stripe webhook finds its entry: the intent's ``ledger_ref`` is the hash inside this key."""

    class Meta:
        index_name = "by_stripe_key"
        projection = KeysOnlyProjection()

    stripe_idempotency_key = UnicodeAttribute(hash_key=True)


class LedgerByClient(GlobalSecondaryIndex):
    class Meta:
        index_name = "by_client"
        projection = AllProjection()

    client_id = UnicodeAttribute(hash_key=True)
    created_at = UtcTime(range_key=True)


class LedgerRecord(Model):
    entry_id = UnicodeAttribute(hash_key=True)
    appointment_id = UnicodeAttribute()
    client_id = UnicodeAttribute()
    purpose = UnicodeAttribute()
    attempt = NumberAttribute()
    kind = UnicodeAttribute()
    amount = NumberAttribute()
    currency = UnicodeAttribute()
    status = UnicodeAttribute()
    stripe_idempotency_key = UnicodeAttribute()
    stripe_payment_intent_id = UnicodeAttribute(null=True)
    stripe_refund_id = UnicodeAttribute(null=True)
    decline_code = UnicodeAttribute(null=True)
    failure_message = UnicodeAttribute(null=True)
    # A desk payment's part that paid what the client owed (the rest is credit), in the entry's currency.
    settles = NumberAttribute(null=True)
    created_at = UtcTime()
    updated_at = UtcTime()

    by_appointment = LedgerByAppointment()
    by_client = LedgerByClient()
    by_stripe_key = LedgerByStripeKey()


class ConsentItem(Model):
    """The consent table holds three kinds of item, told apart by the ``subject`` prefix
    (see :mod:`medspa.adapters.store.consent`):

    * ``sms#<E.164>`` / ``email#<address>`` with ``scope`` ``*`` or a spa id: a consent record;
    * ``link#<token reference>`` (scope ``email``): which spa and address an unsubscribe link is for;
    * ``reply#<inbound message id>`` (scope ``sms``): the confirmation text a keyword got, kept so a
      redelivered message is not answered twice; expires after a while (``expires_at``, the table's TTL).
    """

    subject = UnicodeAttribute(hash_key=True)
    scope = UnicodeAttribute(range_key=True)
    opted_out = BooleanAttribute(null=True)
    changed_at = UtcTime(null=True)
    how = UnicodeAttribute(null=True)
    evidence = UnicodeAttribute(null=True)
    spa_id = UnicodeAttribute(null=True)
    address = UnicodeAttribute(null=True)
    purpose = UnicodeAttribute(null=True)
    intent = UnicodeAttribute(null=True)
    status = UnicodeAttribute(null=True)
    message_id = UnicodeAttribute(null=True)
    created_at = UtcTime(null=True)
    updated_at = UtcTime(null=True)
    expires_at = TTLAttribute(null=True)


class MembershipsByDueDay(GlobalSecondaryIndex):
    """Sparse: a membership with nothing more to do (cancelled, expired) leaves the index."""

    class Meta:
        index_name = "by_due_day"
        projection = AllProjection()

    due_shard = UnicodeAttribute(hash_key=True)
    due_on = UnicodeAttribute(range_key=True)


class MembershipItem(Model):
    """A membership's booking-site events (by version), its drafts (by ledger entry id) and the fold of both."""

    membership_id = UnicodeAttribute(hash_key=True)
    events = MapAttribute(null=True)
    drafts = MapAttribute(null=True)
    state = UnicodeAttribute(null=True)
    due_shard = UnicodeAttribute(null=True)
    due_on = UnicodeAttribute(null=True)
    created_at = UtcTime(null=True)
    updated_at = UtcTime(null=True)
    record_version = NumberAttribute(null=True)

    by_due_day = MembershipsByDueDay()


class CoursesByDueDay(GlobalSecondaryIndex):
    class Meta:
        index_name = "by_due_day"
        projection = AllProjection()

    due_shard = UnicodeAttribute(hash_key=True)
    due_on = UnicodeAttribute(range_key=True)


class CourseItem(Model):
    """A prepaid course as ``Course`` JSON, written over the version it was read at; sparse due index."""

    course_id = UnicodeAttribute(hash_key=True)
    state = UnicodeAttribute()
    due_shard = UnicodeAttribute(null=True)
    due_on = UnicodeAttribute(null=True)
    updated_at = UtcTime(null=True)
    record_version = NumberAttribute()

    by_due_day = CoursesByDueDay()


@cache
def bind(model: type[M], table_name: str, region: str, endpoint_url: str | None = None) -> type[M]:
    meta: dict[str, Any] = {"table_name": table_name, "region": region, "host": endpoint_url}
    return type(  # type: ignore[return-value]
        f"{model.__name__}[{table_name}]",
        (model,),
        {"Meta": type("Meta", (), meta), "__module__": model.__module__},
    )
