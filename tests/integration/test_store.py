"""The data layer on real boto3 + pynamodb against moto, with the tables created from template.yaml."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import boto3
import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medspa.adapters.store import (
    AppointmentBooking,
    AppointmentNotFound,
    AppointmentStatus,
    Channel,
    ClientNotFound,
    ClientProfile,
    ConcurrentUpdate,
    EntryKind,
    EntryStatus,
    InsufficientBalance,
    LedgerConflict,
    LedgerEntryNotFound,
    Purpose,
    StaleVersion,
    Store,
    TableNames,
    client_key,
    ledger_entry_id,
    stripe_idempotency_key,
)
from medspa.domain.appointment import PaymentContext, Service
from medspa.money import Money
from tests.support.tables import load_template, table_resources

T0 = datetime(2025, 3, 3, 14, 0, tzinfo=UTC)
CLIENT = "bijoux#c-123"
_ids = itertools.count()


def usd(cents: int) -> Money:
    return Money(amount=cents, currency="USD")


def booking(version: int, appointment_id: str = "bijoux#appt-1", **changes) -> AppointmentBooking:
    """A booking whose every field depends on its version, so the winner is recognisable."""
    fields = dict(
        appointment_id=appointment_id,
        client_id=CLIENT,
        location_id="bijoux-nyc",
        policy_version=f"bijoux-2025.{version}",
        service=Service(name="Botox", category="injection", duration_minutes=30 * (1 + version % 2),
                              price=usd(40_000 + version)),
        starts_at=T0 + timedelta(days=3, hours=version),
        party_size=1 + version % 3,
        status=[AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED, AppointmentStatus.CANCELLED][version % 3],
        booking_version=version,
        event_id=f"evt-{version}",
        payment=PaymentContext(card_on_file=version % 2 == 0, deposit=usd(5_000) if version % 2 else None),
    )
    return AppointmentBooking(**(fields | changes))


def as_booking(appointment) -> AppointmentBooking:
    return AppointmentBooking(**appointment.model_dump(include=set(AppointmentBooking.model_fields) - {"event_id"}),
                              event_id=appointment.last_event_id)


def add_client(store: Store, client_id: str = CLIENT) -> None:
    store.clients.save_profile(ClientProfile(client_id=client_id, spa_id=client_id.split("#")[0],
                                             phone="+12125550123", email="ada@example.com"), T0)


def intent(store: Store, amount: Money = usd(5_000), attempt: int = 1, purpose: str = Purpose.NO_SHOW_FEE,
           now: datetime = T0):
    return store.ledger.record_intent(appointment_id="bijoux#appt-1", client_id=CLIENT, purpose=purpose,
                                      kind=EntryKind.CHARGE, amount=amount, now=now, attempt=attempt)


# ------------------------------------------------------------------ tables come from template.yaml

@pytest.mark.parametrize("logical_id, field", [("ClientsTable", "clients"), ("AppointmentsTable", "appointments"),
                                               ("LedgerTable", "ledger"), ("ConsentTable", "consent"),
                                               ("MembershipsTable", "memberships"), ("CoursesTable", "courses")])
def test_each_table_is_created_from_its_template_definition(dynamo_tables, logical_id, field):
    declared = table_resources(load_template())[logical_id]
    table = boto3.client("dynamodb").describe_table(TableName=getattr(dynamo_tables, field))["Table"]

    assert table["KeySchema"] == declared["KeySchema"]
    by_name = lambda defs: sorted(defs, key=lambda d: d["AttributeName"])  # noqa: E731
    assert by_name(table["AttributeDefinitions"]) == by_name(declared["AttributeDefinitions"])
    assert table["BillingModeSummary"]["BillingMode"] == declared["BillingMode"]
    created_indexes = {i["IndexName"]: (i["KeySchema"], i["Projection"]) for i in table.get("GlobalSecondaryIndexes", [])}
    assert created_indexes == {i["IndexName"]: (i["KeySchema"], i["Projection"])
                               for i in declared.get("GlobalSecondaryIndexes", [])}


def test_table_names_are_configuration_not_environment_lookups():
    environ = {"CLIENTS_TABLE": "c-tbl", "APPOINTMENTS_TABLE": "a-tbl", "LEDGER_TABLE": "l-tbl",
               "CONSENT_TABLE": "k-tbl", "MEMBERSHIPS_TABLE": "m-tbl", "COURSES_TABLE": "co-tbl",
               "AWS_REGION": "eu-west-1"}
    assert TableNames.from_env(environ) == TableNames(clients="c-tbl", appointments="a-tbl", ledger="l-tbl",
                                                      consent="k-tbl", memberships="m-tbl",
                                                      courses="co-tbl")
    assert Store.from_env(environ).tables.ledger == "l-tbl"
    with pytest.raises(KeyError, match="LEDGER_TABLE"):
        TableNames.from_env({k: v for k, v in environ.items() if k != "LEDGER_TABLE"})


# ------------------------------------------------------------------ ledger

purposes = st.sampled_from([p.value for p in Purpose] + ["membership_draft"])
entry_keys = st.tuples(st.text(min_size=1, max_size=12, alphabet="ab#-1"), purposes, st.integers(1, 4))


@settings(derandomize=True, database=None, max_examples=300)
@given(entry_keys, entry_keys)
def test_entry_ids_are_deterministic_and_distinct_across_purposes_and_attempts(first, second):
    assert ledger_entry_id(*first) == ledger_entry_id(*first)
    assert (ledger_entry_id(*first) == ledger_entry_id(*second)) == (first == second)
    assert (stripe_idempotency_key(ledger_entry_id(*first)) == stripe_idempotency_key(ledger_entry_id(*second))) == (
        first == second)


@pytest.mark.parametrize("parts", [("", "no_show_fee", 1), ("a1", "no#show", 1), ("a1", "No Show", 1),
                                   ("a1", "no_show_fee", 0), ("a1", "no_show_fee", True)])
def test_entry_id_refuses_parts_that_could_collide(parts):
    with pytest.raises(ValueError):
        ledger_entry_id(*parts)


def test_recording_an_intent_twice_returns_the_first_entry_and_never_a_second(store):
    first = intent(store, usd(5_000))
    again = intent(store, usd(9_999), now=T0 + timedelta(minutes=5))

    assert again == first
    assert again.amount == usd(5_000) and again.status is EntryStatus.PENDING
    assert again.stripe_idempotency_key == stripe_idempotency_key(ledger_entry_id("bijoux#appt-1", "no_show_fee", 1))
    assert boto3.client("dynamodb").scan(TableName=store.tables.ledger)["Count"] == 1


def test_an_outcome_moves_a_pending_entry_forward_once(store):
    entry = intent(store)
    paid = store.ledger.record_outcome(entry.entry_id, EntryStatus.SUCCEEDED, T0 + timedelta(seconds=2),
                                       stripe_payment_intent_id="pi_1")
    assert paid.status is EntryStatus.SUCCEEDED and paid.stripe_payment_intent_id == "pi_1"

    redelivered = store.ledger.record_outcome(entry.entry_id, EntryStatus.SUCCEEDED, T0 + timedelta(hours=1))
    assert redelivered == paid

    with pytest.raises(LedgerConflict):
        store.ledger.record_outcome(entry.entry_id, EntryStatus.DECLINED, T0 + timedelta(hours=2),
                                    decline_code="card_declined")
    assert store.ledger.get(entry.entry_id) == paid
    assert paid.amount == entry.amount


def test_requires_action_is_not_final_until_the_client_authenticates(store):
    entry = intent(store)
    store.ledger.record_outcome(entry.entry_id, EntryStatus.REQUIRES_ACTION, T0)
    settled = store.ledger.record_outcome(entry.entry_id, EntryStatus.SUCCEEDED, T0 + timedelta(hours=1))
    assert settled.status is EntryStatus.SUCCEEDED
    with pytest.raises(LedgerConflict):
        store.ledger.record_outcome(entry.entry_id, EntryStatus.REQUIRES_ACTION, T0 + timedelta(hours=2))
    with pytest.raises(ValueError):
        store.ledger.record_outcome(entry.entry_id, EntryStatus.PENDING, T0)
    with pytest.raises(LedgerEntryNotFound):
        store.ledger.record_outcome("bijoux#appt-x#no_show_fee#1", EntryStatus.SUCCEEDED, T0)


def test_a_retry_after_a_decline_is_a_new_entry_listed_by_appointment_and_client(store):
    declined = intent(store, attempt=1)
    store.ledger.record_outcome(declined.entry_id, EntryStatus.DECLINED, T0, decline_code="insufficient_funds")
    retry = intent(store, attempt=2, now=T0 + timedelta(days=1))
    refund = store.ledger.record_intent(appointment_id="bijoux#appt-2", client_id=CLIENT, purpose=Purpose.REFUND,
                                        kind=EntryKind.REFUND, amount=usd(2_500), now=T0 + timedelta(days=2))

    assert retry.entry_id != declined.entry_id
    assert retry.stripe_idempotency_key != declined.stripe_idempotency_key
    assert [e.entry_id for e in store.ledger.for_appointment("bijoux#appt-1")] == [declined.entry_id, retry.entry_id]
    assert [e.status for e in store.ledger.for_appointment("bijoux#appt-1")] == [EntryStatus.DECLINED, EntryStatus.PENDING]
    assert [e.entry_id for e in store.ledger.for_client(CLIENT)] == [declined.entry_id, retry.entry_id, refund.entry_id]


def test_amounts_are_stored_and_read_as_integer_minor_units(store):
    add_client(store)
    entry = intent(store, Money(amount=50_000, currency="HKD"))
    store.clients.add_outstanding(CLIENT, Money(amount=50_000, currency="HKD"), entry.entry_id, T0)

    dynamodb = boto3.client("dynamodb")
    raw_entry = dynamodb.get_item(TableName=store.tables.ledger, Key={"entry_id": {"S": entry.entry_id}})["Item"]
    raw_client = dynamodb.get_item(TableName=store.tables.clients, Key={"client_id": {"S": CLIENT}})["Item"]
    assert raw_entry["amount"] == {"N": "50000"} and raw_entry["currency"] == {"S": "HKD"}
    assert raw_client["outstanding"] == {"M": {"HKD": {"N": "50000"}}}
    assert type(store.ledger.get(entry.entry_id).amount.amount) is int
    assert type(store.clients.get(CLIENT).outstanding["HKD"]) is int
    with pytest.raises(ValueError):
        intent(store, usd(0), purpose="credit")


# ------------------------------------------------------------------ appointments

def test_only_a_newer_booking_version_is_applied(store):
    assert store.appointments.upsert_from_booking(booking(2), T0).applied
    store.appointments.set_execution("bijoux#appt-1", 2, "bijoux.appt-1-v2", "arn:aws:states:us-east-1:1:execution:x:appt-1-v2", T0)

    for stale in (booking(2), booking(1)):
        result = store.appointments.upsert_from_booking(stale, T0 + timedelta(minutes=1))
        assert not result.applied and result.appointment.booking_version == 2

    newer = store.appointments.upsert_from_booking(booking(3), T0 + timedelta(minutes=2))
    assert newer.applied and as_booking(newer.appointment) == booking(3)
    assert newer.appointment.execution_name == "bijoux.appt-1-v2", "the lifecycle's own fields survive a reschedule"
    assert newer.appointment.created_at == T0


@settings(derandomize=True, database=None, max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(0, 40), min_size=1, max_size=5, unique=True), st.data())
def test_duplicate_and_out_of_order_deliveries_converge_on_the_highest_version(store, versions, data):
    appointment_id = f"bijoux#appt-prop-{next(_ids)}"
    snapshots = [booking(v, appointment_id) for v in versions]
    duplicates = data.draw(st.lists(st.sampled_from(snapshots), max_size=6))
    deliveries = data.draw(st.permutations(snapshots + duplicates))

    highest_seen = -1
    for minute, snapshot in enumerate(deliveries):
        result = store.appointments.upsert_from_booking(snapshot, T0 + timedelta(minutes=minute))
        assert result.applied == (snapshot.booking_version > highest_seen)
        highest_seen = max(highest_seen, snapshot.booking_version)

    assert as_booking(store.appointments.get(appointment_id)) == booking(max(versions), appointment_id)


def test_of_two_concurrent_writers_only_one_wins(store):
    store.appointments.upsert_from_booking(booking(1), T0)
    seen_by_reminder = store.appointments.get("bijoux#appt-1")
    seen_by_deadline = store.appointments.get("bijoux#appt-1")

    confirmed = store.appointments.mark_status("bijoux#appt-1", AppointmentStatus.CONFIRMED,
                                               seen_by_reminder.record_version, T0 + timedelta(hours=1))
    with pytest.raises(ConcurrentUpdate):
        store.appointments.mark_status("bijoux#appt-1", AppointmentStatus.AUTO_CANCELLED,
                                       seen_by_deadline.record_version, T0 + timedelta(hours=1))

    stored = store.appointments.get("bijoux#appt-1")
    assert stored.status is AppointmentStatus.CONFIRMED and stored.confirmed_at == T0 + timedelta(hours=1)
    assert stored.record_version == confirmed.record_version == seen_by_reminder.record_version + 1


def test_a_newer_booking_makes_older_readers_and_executions_stale(store):
    store.appointments.upsert_from_booking(booking(1), T0)
    read_before_reschedule = store.appointments.get("bijoux#appt-1")
    store.appointments.upsert_from_booking(booking(2), T0 + timedelta(minutes=1))

    with pytest.raises(StaleVersion):
        store.appointments.set_execution("bijoux#appt-1", 1, "bijoux.appt-1-v1", "arn:v1", T0 + timedelta(minutes=2))
    with pytest.raises(ConcurrentUpdate):
        store.appointments.mark_status("bijoux#appt-1", AppointmentStatus.NO_SHOW, read_before_reschedule.record_version,
                                       T0 + timedelta(minutes=2))
    current = store.appointments.set_execution("bijoux#appt-1", 2, "bijoux.appt-1-v2", "arn:v2", T0 + timedelta(minutes=2))
    assert (current.execution_name, current.execution_arn) == ("bijoux.appt-1-v2", "arn:v2")
    with pytest.raises(AppointmentNotFound):
        store.appointments.mark_status("bijoux#appt-missing", AppointmentStatus.CONFIRMED, 1, T0)


def test_check_in_time_and_client_schedule(store):
    for n, days in enumerate([9, 2, 5]):
        store.appointments.upsert_from_booking(
            booking(1, f"bijoux#appt-{n}", starts_at=T0 + timedelta(days=days)), T0)
    v = store.appointments.get("bijoux#appt-1").record_version
    checked_in = store.appointments.mark_status("bijoux#appt-1", "checked_in", v, T0 + timedelta(days=2, minutes=-5))

    assert checked_in.checked_in_at == T0 + timedelta(days=2, minutes=-5)
    assert [a.appointment_id for a in store.appointments.for_client(CLIENT)] == ["bijoux#appt-1", "bijoux#appt-2", "bijoux#appt-0"]
    assert [a.appointment_id for a in store.appointments.for_client(CLIENT, T0 + timedelta(days=4))] == [
        "bijoux#appt-2", "bijoux#appt-0"]


def test_naive_times_are_refused(store):
    with pytest.raises(pydantic.ValidationError):
        booking(1, starts_at=datetime(2025, 3, 6, 15, 0))
    store.appointments.upsert_from_booking(booking(1), T0)
    with pytest.raises(ValueError, match="naive"):
        store.appointments.mark_status("bijoux#appt-1", AppointmentStatus.CONFIRMED, 1, datetime(2025, 3, 4))


# ------------------------------------------------------------------ clients

def test_the_same_strike_counts_once(store):
    add_client(store)
    assert store.clients.add_strike(CLIENT, "bijoux#appt-1", "no_show", T0) == (1, True)
    assert store.clients.add_strike(CLIENT, "bijoux#appt-1", "no_show", T0 + timedelta(minutes=5)) == (1, False)
    assert store.clients.add_strike(CLIENT, "bijoux#appt-1", "late_cancel", T0) == (2, True)
    assert store.clients.add_strike(CLIENT, "bijoux#appt-2", "no_show", T0 + timedelta(days=7)) == (3, True)

    client = store.clients.get(CLIENT)
    assert client.strike_count == 3
    assert [(s.appointment_id, s.reason, s.at) for s in client.strikes][0] == ("bijoux#appt-1", "late_cancel", T0)
    with pytest.raises(ClientNotFound):
        store.clients.add_strike("bijoux#nobody", "bijoux#appt-1", "no_show", T0)
    with pytest.raises(ValueError):
        store.clients.add_strike(CLIENT, "appt", "1#no_show", T0)


def test_prepay_flag_keeps_when_and_who(store):
    add_client(store)
    flagged = store.clients.set_prepay_required(CLIENT, T0)
    assert store.clients.set_prepay_required(CLIENT, T0 + timedelta(days=1)).prepay_set_at == flagged.prepay_set_at == T0

    cleared = store.clients.clear_prepay_required(CLIENT, "staff:maria", T0 + timedelta(days=2))
    assert not cleared.prepay_required
    assert (cleared.prepay_cleared_by, cleared.prepay_cleared_at) == ("staff:maria", T0 + timedelta(days=2))

    again = store.clients.set_prepay_required(CLIENT, T0 + timedelta(days=9))
    assert again.prepay_required and again.prepay_set_at == T0 + timedelta(days=9)
    assert again.prepay_cleared_by is None
    with pytest.raises(ClientNotFound):
        store.clients.set_prepay_required("bijoux#nobody", T0)


def test_balance_movements_apply_once_per_ledger_entry_and_never_go_negative(store):
    add_client(store)
    assert store.clients.add_outstanding(CLIENT, usd(5_000), "fee-1", T0) == usd(5_000)
    assert store.clients.add_outstanding(CLIENT, usd(5_000), "fee-1", T0) == usd(5_000)
    assert store.clients.add_outstanding(CLIENT, Money(amount=50_000, currency="HKD"), "fee-2", T0).amount == 50_000

    with pytest.raises(InsufficientBalance):
        store.clients.settle_outstanding(CLIENT, usd(5_001), "pay-1", T0)
    assert store.clients.settle_outstanding(CLIENT, usd(5_000), "pay-1", T0) == usd(0)
    assert store.clients.settle_outstanding(CLIENT, usd(5_000), "pay-1", T0) == usd(0)

    assert store.clients.add_credit(CLIENT, usd(500), "luxe-bux-1", T0) == usd(500)
    assert store.clients.spend_credit(CLIENT, usd(200), "spend-1", T0) == usd(300)
    with pytest.raises(InsufficientBalance):
        store.clients.spend_credit(CLIENT, usd(301), "spend-2", T0)

    client = store.clients.get(CLIENT)
    assert client.outstanding == {"USD": 0, "HKD": 50_000} and client.credit_in("USD") == usd(300)
    with pytest.raises(ClientNotFound):
        store.clients.add_credit("bijoux#nobody", usd(1), "x", T0)


def test_profile_refresh_keeps_opt_outs_strikes_and_balances(store):
    add_client(store)
    store.clients.set_opt_out(CLIENT, Channel.SMS, True, T0)
    store.clients.add_strike(CLIENT, "bijoux#appt-1", "no_show", T0)
    store.clients.add_outstanding(CLIENT, usd(3_000), "fee-1", T0)

    refreshed = store.clients.save_profile(ClientProfile(client_id=CLIENT, spa_id="bijoux", stripe_customer_id="cus_1",
                                                         default_payment_method_id="pm_1"), T0 + timedelta(days=1))
    assert refreshed.sms_opt_out and not refreshed.email_opt_out
    assert refreshed.phone == "+12125550123" and refreshed.stripe_customer_id == "cus_1"
    assert refreshed.strike_count == 1 and refreshed.outstanding_in("USD") == usd(3_000)
    assert refreshed.created_at == T0
    assert not store.clients.set_opt_out(CLIENT, "sms", False, T0).sms_opt_out


def test_client_ids_are_namespaced_by_spa():
    assert client_key("bijoux", "c-123") == CLIENT
    with pytest.raises(pydantic.ValidationError):
        ClientProfile(client_id="c-123", spa_id="bijoux")
    with pytest.raises(pydantic.ValidationError):
        ClientProfile(client_id=CLIENT, spa_id="bijoux", phone="212-555-0123")
