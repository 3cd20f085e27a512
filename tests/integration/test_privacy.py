"""Privacy rights on the template's tables in moto: the intake, the privacy service and the audit together.

Stripe, Step Functions, the exports bucket and the bus are small fakes here (the local cloud runs the real
ones: tests/e2e/test_privacy.py); what is checked is what the tables hold after each request, read back
by scanning every table, so a personal value left anywhere fails the test.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from medspa.adapters.executions import StartedExecution, execution_name
from medspa.adapters.store import ClientErased, MessageLog, Store
from medspa.adapters.store.audit import PrivacyAuditRepository
from medspa.domain.ledger import EntryKind, EntryStatus
from medspa.money import Money
from medspa.events import DETAIL_MODELS
from medspa.events.examples import EXAMPLES
from medspa.policy.loader import load_packs
from medspa.policy.tenants import load_tenants
from medspa.services.ingest import EventRefused, IngestService
from medspa.services.privacy import FORMAT, PrivacyService
from tests.support.fixtures import REGION, aws_credentials  # noqa: F401 - a fixture
from tests.support.tables import create_tables, table_names

NOW = datetime(2025, 3, 1, 15, 4, 5, tzinfo=UTC)
PHONE, EMAIL = "+14075550123", "jamie.rivera@example.com"
OLD_CUSTOMER, CUSTOMER = "cus_Q1w2E3r4T5y6U7", "cus_NewCard0001"
REASON = "Work conflict"
PACKS = load_packs()


@dataclass
class Runs:
    """Step Functions as the intake and the privacy service use it: who was started, who stopped."""

    running: set[str] = field(default_factory=set)
    stopped: list[tuple[str, str, str]] = field(default_factory=list)

    def start(self, appointment_id: str, booking_version: int, revision: int = 0, name: str | None = None,
              continuation: int = 0, starts_at: datetime | None = None) -> StartedExecution:
        name = name or execution_name(appointment_id, booking_version)
        arn = f"arn:aws:states:us-east-1:123456789012:execution:lifecycle:{name}"
        self.running.add(arn)
        return StartedExecution(name, arn, already_running=False)

    def stop(self, execution_arn: str, *, error: str, cause: str) -> bool:
        self.running.discard(execution_arn)
        self.stopped.append((execution_arn, error, cause))
        return True

    def stop_if_running(self, execution_arn: str, *, error: str, cause: str) -> bool:
        return execution_arn in self.running and self.stop(execution_arn, error=error, cause=cause)


@dataclass
class StripeCustomers:
    customers: set[str] = field(default_factory=lambda: {OLD_CUSTOMER, CUSTOMER})
    deleted: list[str] = field(default_factory=list)

    def delete_customer(self, customer_id: str) -> bool:
        if customer_id not in self.customers:
            return False
        self.customers.discard(customer_id)
        self.deleted.append(customer_id)
        return True


@dataclass
class Shelf:
    bucket: str = "exports"
    kept_for: timedelta = timedelta(days=7)
    objects: dict[str, str] = field(default_factory=dict)

    def put(self, key: str, document: dict[str, Any]) -> None:
        self.objects[key] = json.dumps(document)

    def remove_under(self, prefix: str) -> int:
        gone = [k for k in self.objects if k.startswith(prefix)]
        for key in gone:
            del self.objects[key]
        return len(gone)


@dataclass
class BookingSite:
    told: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def publish(self, detail_type: str, event_id: str, detail: dict[str, Any]) -> None:
        self.told.append((detail_type, event_id, detail))


@dataclass
class World:
    store: Store
    audit: PrivacyAuditRepository
    privacy: PrivacyService
    intake: IngestService
    runs: Runs
    stripe: StripeCustomers
    shelf: Shelf
    site: BookingSite
    tables: dict[str, str]

    def send(self, detail_type: str, source: str = "booking-site", **changes: Any):
        detail = copy.deepcopy(EXAMPLES[detail_type]["detail"]) | changes
        event = DETAIL_MODELS[detail_type].model_validate_json(json.dumps(detail))
        return self.intake.ingest(event, source, NOW)

    def everything_stored(self) -> str:
        """Every item of every table, as text: where a personal value left behind would show."""
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        return json.dumps([dynamodb.scan(TableName=t)["Items"] for t in self.tables.values()])


@pytest.fixture
def world(aws_credentials: None) -> Iterator[World]:  # noqa: F811
    with mock_aws():
        created = create_tables(boto3.client("dynamodb", region_name=REGION))
        store = Store(table_names(created), REGION)
        audit = PrivacyAuditRepository.bound(created["PrivacyAuditTable"], REGION)
        runs, stripe, shelf, site = Runs(), StripeCustomers(), Shelf(), BookingSite()
        privacy = PrivacyService(store, audit, payments=stripe, executions=runs, exports=shelf, booking_site=site)
        intake = IngestService(store, runs, PACKS, load_tenants(PACKS), privacy=privacy)  # type: ignore[arg-type]
        yield World(store, audit, privacy, intake, runs, stripe, shelf, site, created)


@pytest.fixture
def jamie(world: World) -> World:
    """Jamie (bijoux#c-1234): booked with a card, cancelled late with a reason, a fee charged, a strike, a
    STOP from their phone, an unsubscribe link sent to their email, a reminder still due; then a new card."""
    world.send("AppointmentBooked", payment={**EXAMPLES["AppointmentBooked"]["detail"]["payment"]},
               client={**EXAMPLES["AppointmentBooked"]["detail"]["client"], "email_opt_in": True})
    world.send("AppointmentCancelled", booking_version=2)
    key, client = "bijoux#apt-20250314-0042", "bijoux#c-1234"
    world.store.ledger.record_intent(appointment_id=key, client_id=client, purpose="late_cancel_fee",
                                     kind=EntryKind.CHARGE, amount=Money(amount=10000, currency="USD"), now=NOW)
    world.store.ledger.record_outcome(f"{key}#late_cancel_fee#1", EntryStatus.SUCCEEDED, NOW,
                                      stripe_payment_intent_id="pi_Fee0001")
    world.store.clients.add_strike(client, key, "late_cancel", NOW)
    world.store.consent.record("sms", PHONE, "bijoux", opted_out=True, how="keyword", at=NOW, evidence="in-1")
    world.store.consent.remember_link("ref-jamie", "bijoux", EMAIL, NOW)
    world.store.appointments.record_message(key, MessageLog(key="reminder_morning_of@x", kind="reminder_morning_of",
                                                            due_at=NOW + timedelta(days=1), status="due"), NOW)
    world.send("CardUpdated", stripe_customer_id=CUSTOMER)
    return world


def test_a_booking_keeps_the_clients_contact_and_stripe_ids_on_the_profile_only(world: World) -> None:
    world.send("AppointmentBooked")
    [(kind, detail)] = world.store.appointments.history("bijoux#apt-20250314-0042")
    kept = json.loads(detail)
    assert kind == "AppointmentBooked" and kept["client"] == {"id": "c-1234", "sms_opt_in": True, "email_opt_in": False}
    assert set(kept["payment"]) == {"card_on_file", "deposit", "gift_certificate", "prepaid", "course_id",
                                    "course_session_available"}
    profile = world.store.clients.get("bijoux#c-1234")
    assert (profile.phone, profile.email, profile.stripe_customer_id) == (PHONE, EMAIL, OLD_CUSTOMER)
    assert world.store.appointments.get("bijoux#apt-20250314-0042").service.price.amount == 42000
    appointments_table = boto3.client("dynamodb", region_name=REGION).scan(TableName=world.tables["AppointmentsTable"])
    assert PHONE not in json.dumps(appointments_table) and EMAIL not in json.dumps(appointments_table)


def test_an_export_holds_everything_about_the_client_and_its_record_holds_none_of_it(jamie: World) -> None:
    document = jamie.privacy.export("bijoux", "c-1234", "admin-maria", NOW, request_id="dsar-1")

    assert json.loads(json.dumps(document)) == document  # one JSON document
    assert (document["format"], document["spa_id"], document["client_id"]) == (FORMAT, "bijoux", "c-1234")
    assert (document["profile"]["phone"], document["profile"]["email"]) == (PHONE, EMAIL)
    assert document["profile"]["stripe_customer_id"] == CUSTOMER
    [appointment] = document["appointments"]
    assert [h["detail_type"] for h in appointment["history"]] == ["AppointmentBooked", "AppointmentCancelled"]
    assert appointment["history"][1]["detail"]["reason"] == REASON
    assert appointment["status"] == "cancelled" and appointment["facts"]["violations"][0]["reason"] == "late_cancel"
    assert [(m["kind"], m["status"]) for m in appointment["messages"]] == [("reminder_morning_of", "due")]
    assert [(e["purpose"], e["amount"], e["status"]) for e in document["ledger"]] == [
        ("late_cancel_fee", {"amount": 10000, "currency": "USD"}, "succeeded")]
    assert [s["reason"] for s in document["strikes"]] == ["late_cancel"]
    assert document["flags"]["prepay_required"] is False
    assert [(c["channel"], c["applies_to"], c["opted_out"], c["how"]) for c in document["consent"]] == [
        ("sms", "every spa", True, "keyword")]

    [record] = jamie.audit.for_client("bijoux#c-1234")
    assert (record.action, record.requested_by, record.request_id, record.via, record.outcome) == (
        "export", "admin-maria", "dsar-1", "cli", "exported")
    assert record.detail == {"appointments": 1, "ledger_entries": 1, "consent_records": 1}
    audit_table = json.dumps(boto3.client("dynamodb", region_name=REGION).scan(
        TableName=jamie.tables["PrivacyAuditTable"]))
    assert PHONE not in audit_table and EMAIL not in audit_table and REASON not in audit_table


def test_an_export_asked_on_the_bus_is_shelved_and_the_booking_site_told_where(jamie: World) -> None:
    outcome = jamie.send("ClientDataExportRequested", request_id="dsar-2")
    assert outcome.action == "exported"
    shelved = json.loads(jamie.shelf.objects["bijoux/c-1234/dsar-2.json"])
    assert shelved["profile"]["email"] == EMAIL and shelved["request"]["via"] == "bus"
    [(kind, event_id, detail)] = jamie.site.told
    assert kind == "ClientDataExported" and event_id.startswith("privacy-export-")
    assert detail == {"spa_id": "bijoux", "client_id": "c-1234", "request_id": "dsar-2", "bucket": "exports",
                      "key": "bijoux/c-1234/dsar-2.json", "expires_at": (NOW + timedelta(days=7)).isoformat()}


def test_a_correction_replaces_the_only_copy_and_the_audit_names_the_field_not_the_value(jamie: World) -> None:
    jamie.send("ClientContactCorrected", request_id="dsar-3", phone="+14075550199", email=None)
    corrected = jamie.store.clients.get("bijoux#c-1234")
    assert (corrected.phone, corrected.email) == ("+14075550199", EMAIL)
    [record] = jamie.audit.for_client("bijoux#c-1234")
    assert (record.action, record.via, record.detail) == ("correct", "bus", {"fields": ["phone"]})
    assert "+14075550199" not in record.model_dump_json()

    jamie.send("ClientContactCorrected", request_id="dsar-3b", first_name="Jamie-Lee", phone=None, email=None)
    assert jamie.store.clients.get("bijoux#c-1234").first_name == "Jamie-Lee"
    assert jamie.audit.for_client("bijoux#c-1234")[-1].detail == {"fields": ["first_name"]}


def test_an_erasure_leaves_no_personal_value_in_any_table_and_keeps_the_money(jamie: World) -> None:
    appointment = jamie.store.appointments.get("bijoux#apt-20250314-0042")
    jamie.runs.running.add(appointment.execution_arn)  # its run is still going
    jamie.shelf.put("bijoux/c-1234/dsar-0.json", {"an": "earlier export"})

    outcome = jamie.send("ClientErasureRequested", request_id="dsar-4")

    assert outcome.action == "erased"
    stored = jamie.everything_stored()
    for personal in (PHONE, EMAIL, REASON, OLD_CUSTOMER, CUSTOMER, "pm_1PqRsTuVwXyZ0123"):
        assert personal not in stored, personal
    assert sorted(jamie.stripe.deleted) == sorted([OLD_CUSTOMER, CUSTOMER])  # the one in the old history too
    assert jamie.shelf.objects == {}
    assert [(error, "dsar-4" in cause) for _, error, cause in jamie.runs.stopped][-1] == ("ClientErased", True)
    tombstone = jamie.store.clients.get("bijoux#c-1234")
    assert tombstone.erased_at == NOW and tombstone.strikes == () and tombstone.phone is None
    [entry] = jamie.store.ledger.for_client("bijoux#c-1234")
    assert (entry.amount, entry.status, entry.stripe_payment_intent_id) == (
        Money(amount=10000, currency="USD"), EntryStatus.SUCCEEDED, "pi_Fee0001")
    erased = jamie.store.appointments.get("bijoux#apt-20250314-0042")
    assert (erased.status.value, erased.service.price.amount, erased.starts_at) == (
        "cancelled", 42000, appointment.starts_at)
    assert [(m.status, m.results[0].status) for m in erased.messages] == [("skipped", "skipped_client_erased")]
    assert jamie.store.consent.get("sms", PHONE, "bijoux") is None and jamie.store.consent.link("ref-jamie") is None
    [(kind, _, detail)] = jamie.site.told
    assert (kind, detail["client_id"], detail["erased_at"]) == ("ClientErased", "c-1234", NOW.isoformat())
    [record] = jamie.audit.for_client("bijoux#c-1234")
    assert (record.action, record.outcome, record.requested_by) == ("erase", "erased", "admin-maria")
    assert record.detail["stripe_customers_deleted"] == 2 and record.detail["ledger_entries_kept"] == 1
    assert record.detail["consent_records_deleted"] == 1 and record.detail["unsubscribe_links_deleted"] == 1


def test_an_erasure_keeps_the_consent_of_a_number_someone_else_uses(jamie: World) -> None:
    jamie.send("AppointmentBooked", spa_id="406medicalspa", location_id="406medicalspa", appointment_id="apt-406",
               client={"id": "c-partner", "phone": PHONE, "sms_opt_in": True},
               payment={"card_on_file": False, "deposit": {"amount": 5000, "currency": "USD"}})
    jamie.privacy.erase("bijoux", "c-1234", "admin-maria", NOW)
    assert jamie.store.consent.opted_out("sms", PHONE, "406medicalspa")  # the partner's STOP still holds
    assert jamie.store.clients.get("406medicalspa#c-partner").phone == PHONE


def test_events_naming_an_erased_client_are_refused_with_the_reason_and_erasure_can_be_repeated(jamie: World) -> None:
    jamie.send("ClientErasureRequested", request_id="dsar-5")
    refused = {}
    for detail_type, changes in (
        ("AppointmentBooked", {"appointment_id": "apt-new"}),
        ("AppointmentRescheduled", {"booking_version": 3}),
        ("CardUpdated", {}),
        ("PrepayRequirementCleared", {}),
        ("ClientDataExportRequested", {}),
        ("ClientContactCorrected", {}),
    ):
        with pytest.raises(EventRefused) as caught:
            jamie.send(detail_type, **changes)
        refused[detail_type] = caught.value.reason
    assert refused == {
        "AppointmentBooked": "detail.client.id: this client's data was erased at their request",
        "AppointmentRescheduled": "detail.appointment_id: the appointment's client: this client's data was erased at "
                                  "their request",
        "CardUpdated": "detail.client_id: this client's data was erased at their request",
        "PrepayRequirementCleared": "detail.client_id: this client's data was erased at their request",
        "ClientDataExportRequested": "detail.client_id: this client's data was erased at their request",
        "ClientContactCorrected": "detail.client_id: this client's data was erased at their request",
    }
    assert jamie.store.appointments.get("bijoux#apt-new") is None
    with pytest.raises(ClientErased):
        jamie.privacy.export("bijoux", "c-1234", "admin-maria", NOW)
    with pytest.raises(ClientErased):  # the store itself refuses, whoever calls it
        jamie.store.clients.correct_contact("bijoux#c-1234", phone=PHONE, email=None, now=NOW)
    assert jamie.store.clients.get("bijoux#c-1234").phone is None

    again = jamie.send("ClientErasureRequested", request_id="dsar-6")
    assert again.action == "erased"
    outcomes = [(r.request_id, r.outcome) for r in jamie.audit.for_client("bijoux#c-1234")]
    assert outcomes == [("dsar-5", "erased"), ("dsar-6", "already_erased")]
