"""Outstanding balances (issue 11, item 3): told to the booking site, paid at the desk, settled once in the ledger.

Glow: "Outstanding cancellation/rebooking fees must be paid on the client's next visit to Glow." The booking
site's events go through ``IngestService`` (the fold, the tenancy checks, the desk payment), fees through
``FeeSteps`` and ``SettlementService`` to the fake Stripe with the real SDK, the lifecycle's plan and its
"tell the booking site" step run as the state machine would run them, and every record is in DynamoDB on
moto. The end-to-end tests (``tests/e2e/test_outstanding_balance.py``) run the same stories through the
deployed state machine.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import stripe
from fakestripe import client_for, save_test_card
from fakestripe.server import FakeStripe, ManualClock

from medspa.adapters.payments import StripePayments
from medspa.adapters.store import EntryKind, Store, account_entry_id
from medspa.domain.keys import appointment_key, client_key
from medspa.money import Money
from medspa.events import DETAIL_MODELS
from medspa.policy.tenants import load_tenants
from medspa.services import balances
from medspa.services.fees import FeeSteps
from medspa.services.ingest import EventRefused, IngestOutcome, IngestService, NotKnownHere
from medspa.services.lifecycle import LifecycleService, StepRequest
from medspa.services.settlement import SettlementService
from medspa.adapters.booking_site import InMemoryBookingSite
from medspa.adapters.executions import InMemoryExecutions
from tests.support.fixtures import module_store
from tests.support.packs import PACKS

_ids = itertools.count(1)
FACIAL = {"name": "HydraFacial", "category": "facial", "duration_minutes": 60}
BOTOX = {"name": "Botox forehead", "category": "injection_laser", "duration_minutes": 30}


def hkd(cents: int) -> Money:
    return Money(amount=cents, currency="HKD")


class Spa:
    """The booking site's events in, the lifecycle's steps taken one by one, the fees to the fake Stripe."""

    def __init__(self, store: Store, stripe_client: stripe.StripeClient, fake: FakeStripe) -> None:
        self.store, self.stripe, self.fake = store, stripe_client, fake
        self.inbox = InMemoryBookingSite()
        self.lifecycle = LifecycleService(store, PACKS, booking_site=self.inbox)
        self.settlement = SettlementService(store, StripePayments(stripe_client), PACKS)
        self.fees = FeeSteps(store, self.settlement, self.lifecycle)
        self.intake = IngestService(store, InMemoryExecutions(), PACKS, load_tenants(PACKS),  # type: ignore[arg-type]
                                    booking_site=self.inbox)
        self.now = datetime(2026, 3, 2, 2, tzinfo=UTC)
        self.versions: dict[str, int] = {}

    def send(self, detail_type: str, *, event_id: str | None = None, **detail: Any) -> IngestOutcome:
        if "appointment_id" in detail:
            self.versions[detail["appointment_id"]] = version = self.versions.get(detail["appointment_id"], 0) + 1
            detail["booking_version"] = version
        event = DETAIL_MODELS[detail_type].model_validate_json(json.dumps({
            "event_id": event_id or f"evt-{next(_ids)}", "occurred_at": self.now.isoformat(), **detail}))
        return self.intake.ingest(event, "booking-site", self.now)

    def book(self, spa_id: str, location: str, client: str, price: int, *, card: str | None = None,
             service: dict[str, Any] = FACIAL) -> str:
        appointment, payment = f"apt-{next(_ids)}", {"card_on_file": card is not None}
        if card is not None:
            customer = self.stripe.v1.customers.create().id
            payment |= {"stripe_customer_id": customer,
                        "stripe_payment_method_id": save_test_card(self.stripe, customer, card)}
        currency = PACKS[location].currency
        self.send("AppointmentBooked", spa_id=spa_id, appointment_id=appointment, location_id=location,
                  client={"id": client}, starts_at=(self.now + timedelta(days=1)).isoformat(),
                  service={**service, "price": {"amount": price, "currency": currency}}, payment=payment)
        return appointment

    def missed(self, spa_id: str, appointment: str) -> None:
        """The desk marks the no-show a day later, and the lifecycle settles the fee."""
        self.now += timedelta(days=1, hours=1)
        self.send("AppointmentMarkedNoShow", spa_id=spa_id, appointment_id=appointment, marked_by="desk-1")
        self.fees.settle(appointment_key(spa_id, appointment), "no_show", self.now)

    def pay(self, spa_id: str, client: str, amount: int, reference: str, currency: str = "HKD",
            event_id: str | None = None) -> IngestOutcome:
        return self.send("OutstandingBalancePaid", event_id=event_id, spa_id=spa_id, client_id=client,
                         amount={"amount": amount, "currency": currency}, paid_at=self.now.isoformat(),
                         payment_reference=reference, received_by="desk-3")

    def run_told(self, key: str) -> list[str]:
        """Plan as the visit's execution does and take each "tell the booking site" step it asks for first
        (the money steps come before reminders and the rest, which these tests leave alone)."""
        taken = []
        for _ in range(10):
            stored = self.store.appointments.get(key)
            run = StepRequest.run_of(stored)
            step = self.lifecycle.plan(run, self.now).next
            if step is None or step.action != "tell_balance_due":
                return taken
            taken.append(step.action)
            self.lifecycle.act(run.model_copy(update={"action": step.action, "key": step.key}), self.now)
        raise AssertionError("the plan kept asking for a step that changed nothing")

    def owes(self, spa_id: str, client: str) -> dict[str, int]:
        return {c: a for c, a in self.store.clients.get(client_key(spa_id, client)).outstanding.items() if a}

    def credit(self, spa_id: str, client: str) -> dict[str, int]:
        return {c: a for c, a in self.store.clients.get(client_key(spa_id, client)).credit.items() if a}

    def fee_state(self, spa_id: str, appointment: str, reason: str = "no_show") -> str:
        return self.store.appointments.get(appointment_key(spa_id, appointment)).fees[reason].outcome

    def desk_entries(self, spa_id: str, client: str) -> list[tuple[str, str, int, int | None, str]]:
        key = client_key(spa_id, client)
        return sorted((e.purpose, e.kind.value, e.amount.amount, e.settles.amount if e.settles else None,
                       e.status.value) for e in self.store.ledger.for_client(key) if e.appointment_id == key)

    def charged(self) -> int:
        return sum(ch["amount_captured"] for ch in self.fake.charges if ch["status"] == "succeeded")


@pytest.fixture(scope="module")
def store() -> Iterator[Store]:
    with module_store() as store:
        yield store


@pytest.fixture
def spa(store: Store) -> Iterator[Spa]:
    with FakeStripe(now=ManualClock()) as fake:
        yield Spa(store, client_for(fake), fake)


def glow_client_who_owes(spa: Spa, card: str | None = None) -> tuple[str, str]:
    """A Glow client whose missed facial (not prepaid) left HK$500 owed; (client, missed appointment)."""
    client = f"c-{next(_ids)}"
    missed = spa.book("glow", "glow-hk", client, 128_000, card=card)
    spa.missed("glow", missed)
    assert spa.owes("glow", client) == {"HKD": 50_000}
    return client, missed


# ------------------------------------------------------------------------------ told to the booking site


def test_a_client_who_owes_is_told_once_at_booking_and_again_at_check_in_and_a_reschedule_tells_nothing(spa):
    client, missed = glow_client_who_owes(spa)
    visit = spa.book("glow", "glow-hk", client, 128_000)
    key = appointment_key("glow", visit)

    assert spa.run_told(key) == ["tell_balance_due"]
    assert spa.run_told(key) == []  # remembered: the next plan moves on
    spa.send("AppointmentRescheduled", spa_id="glow", appointment_id=visit,
             starts_at=(spa.now + timedelta(days=2)).isoformat())
    assert spa.run_told(key) == []
    spa.send("ClientCheckedIn", spa_id="glow", appointment_id=visit, arrived_at=spa.now.isoformat())
    assert spa.run_told(key) == ["tell_balance_due"]

    told = spa.inbox.of("OutstandingBalanceDue")
    assert [event_id for event_id, _ in told] == [f"{key}:balance-due:booked", f"{key}:balance-due:checked_in"]
    detail = told[0][1]
    assert {k: detail[k] for k in ("spa_id", "appointment_id", "client_id", "booking_version", "trigger", "due",
                                   "balance")} == {
        "spa_id": "glow", "appointment_id": visit, "client_id": client, "booking_version": 1, "trigger": "booked",
        "due": "at_next_visit", "balance": [{"amount": 50_000, "currency": "HKD"}]}
    assert detail["unpaid_fees"] == [{
        "appointment_id": missed, "reason": "no_show", "fee": {"amount": 50_000, "currency": "HKD"},
        "ledger_entries": [f"{appointment_key('glow', missed)}#no_show_fee_outstanding_balance#1"]}]
    assert told[1][1]["trigger"] == "checked_in"


def test_a_client_who_owes_nothing_is_told_nothing(spa):
    visit = spa.book("glow", "glow-hk", f"c-{next(_ids)}", 128_000)
    assert spa.run_told(appointment_key("glow", visit)) == []
    assert spa.inbox.of("OutstandingBalanceDue") == []


def test_every_currency_owed_is_told_with_its_own_amount(spa):
    client, _ = glow_client_who_owes(spa)
    spa.store.clients.add_outstanding(client_key("glow", client), Money(amount=2_500, currency="USD"),
                                      f"glow#elsewhere-{client}#no_show_fee#1", spa.now)
    visit = spa.book("glow", "glow-hk", client, 128_000)
    spa.run_told(appointment_key("glow", visit))
    [(_, detail)] = spa.inbox.of("OutstandingBalanceDue")
    assert detail["balance"] == [{"amount": 50_000, "currency": "HKD"}, {"amount": 2_500, "currency": "USD"}]


# ------------------------------------------------------------------------------ paid at the desk


def test_a_desk_payment_is_ledgered_first_settles_the_balance_and_marks_the_fee_settled(spa):
    client, missed = glow_client_who_owes(spa)
    outcome = spa.pay("glow", client, 50_000, "TILL-1")

    assert outcome.action == "balance_paid" and outcome.applied
    assert spa.desk_entries("glow", client) == [("balance_paid_at_desk", "paid_at_desk", 50_000, 50_000, "succeeded")]
    entry = spa.store.ledger.get(account_entry_id(client_key("glow", client), "balance_paid_at_desk", "TILL-1"))
    assert entry.entry_id == f"glow#{client}#balance_paid_at_desk#TILL-1" and entry.kind is EntryKind.PAID_AT_DESK
    assert spa.owes("glow", client) == {} and spa.credit("glow", client) == {}
    assert spa.fee_state("glow", missed) == "settled"
    assert spa.store.appointments.get(appointment_key("glow", missed)).fees["no_show"].next_retry_at is None
    [(event_id, detail)] = spa.inbox.of("OutstandingBalanceSettled")
    assert event_id == f"glow#{client}:paid-at-desk:TILL-1"
    assert (detail["paid"], detail["settled"], detail["credited"], detail["balance"]) == (
        {"amount": 50_000, "currency": "HKD"}, {"amount": 50_000, "currency": "HKD"}, None, [])
    assert detail["fees_settled"] == [{"appointment_id": missed, "reason": "no_show"}]
    assert (detail["received_by"], detail["ledger_entries"]) == ("desk-3", [entry.entry_id])


def test_a_duplicate_delivery_and_the_same_payment_under_a_new_event_id_settle_nothing_more(spa):
    client, _ = glow_client_who_owes(spa)
    spa.store.clients.add_outstanding(client_key("glow", client), hkd(50_000), f"glow#{client}-other#fee#1", spa.now)
    for event_id in ("desk-evt-1", "desk-evt-1", "desk-evt-2"):  # redelivered, then re-submitted by the desk
        spa.pay("glow", client, 50_000, "TILL-2", event_id=event_id)

    assert spa.owes("glow", client) == {"HKD": 50_000}, "one payment of HK$500 against HK$1,000 owed"
    assert spa.credit("glow", client) == {}
    assert spa.desk_entries("glow", client) == [("balance_paid_at_desk", "paid_at_desk", 50_000, 50_000, "succeeded")]
    assert {event_id for event_id, _ in spa.inbox.of("OutstandingBalanceSettled")} == {
        f"glow#{client}:paid-at-desk:TILL-2"}


def test_an_overpayment_settles_what_is_owed_and_keeps_the_rest_as_store_credit(spa):
    client, missed = glow_client_who_owes(spa)
    spa.pay("glow", client, 80_000, "TILL-3")
    spa.pay("glow", client, 80_000, "TILL-3")  # and again: the split was decided once

    assert spa.owes("glow", client) == {} and spa.credit("glow", client) == {"HKD": 30_000}
    assert spa.desk_entries("glow", client) == [
        ("balance_paid_at_desk", "paid_at_desk", 80_000, 50_000, "succeeded"),
        ("balance_paid_at_desk_credit", "credit", 30_000, None, "succeeded")]
    assert spa.fee_state("glow", missed) == "settled"
    detail = spa.inbox.of("OutstandingBalanceSettled")[0][1]
    assert (detail["settled"], detail["credited"]) == ({"amount": 50_000, "currency": "HKD"},
                                                       {"amount": 30_000, "currency": "HKD"})


def test_paying_when_nothing_is_owed_is_kept_as_store_credit(spa):
    client = f"c-{next(_ids)}"
    spa.book("glow", "glow-hk", client, 128_000)
    spa.pay("glow", client, 20_000, "TILL-4")

    assert spa.owes("glow", client) == {} and spa.credit("glow", client) == {"HKD": 20_000}
    assert spa.desk_entries("glow", client) == [
        ("balance_paid_at_desk", "paid_at_desk", 20_000, 0, "succeeded"),
        ("balance_paid_at_desk_credit", "credit", 20_000, None, "succeeded")]
    detail = spa.inbox.of("OutstandingBalanceSettled")[0][1]
    assert (detail["settled"], detail["credited"]) == (None, {"amount": 20_000, "currency": "HKD"})


def test_a_partial_payment_leaves_the_rest_due_at_the_next_visit_and_the_fee_outstanding(spa):
    client, missed = glow_client_who_owes(spa)
    spa.pay("glow", client, 20_000, "TILL-5")

    assert spa.owes("glow", client) == {"HKD": 30_000}
    assert spa.fee_state("glow", missed) == "outstanding"
    assert spa.inbox.of("OutstandingBalanceSettled")[0][1]["balance"] == [{"amount": 30_000, "currency": "HKD"}]
    visit = spa.book("glow", "glow-hk", client, 128_000)
    spa.run_told(appointment_key("glow", visit))
    assert spa.inbox.of("OutstandingBalanceDue")[0][1]["balance"] == [{"amount": 30_000, "currency": "HKD"}]


def test_the_same_reference_with_another_amount_is_refused_and_moves_nothing(spa):
    client, _ = glow_client_who_owes(spa)
    spa.pay("glow", client, 20_000, "TILL-6")
    with pytest.raises(EventRefused) as refused:
        spa.pay("glow", client, 30_000, "TILL-6")
    assert refused.value.reason.startswith("detail.payment_reference: already recorded for this client")
    assert spa.owes("glow", client) == {"HKD": 30_000}
    assert len(spa.desk_entries("glow", client)) == 1


def test_a_currency_the_spa_does_not_charge_in_and_a_client_it_does_not_have_are_refused(spa):
    client, _ = glow_client_who_owes(spa)
    with pytest.raises(EventRefused) as refused:
        spa.pay("glow", client, 5_000, "TILL-7", currency="USD")
    assert refused.value.reason == "detail.amount.currency: not a currency the spa in detail.spa_id charges in"
    at_bijoux = f"c-{next(_ids)}"
    spa.book("bijoux", "bijoux", at_bijoux, 45_000, service=BOTOX)
    with pytest.raises(NotKnownHere) as unknown:  # Bijoux's client named under Glow: not Glow's
        spa.pay("glow", at_bijoux, 5_000, "TILL-8")
    assert unknown.value.reason == "detail.client_id: no client with this id at the spa in detail.spa_id"
    assert spa.owes("glow", client) == {"HKD": 50_000} and spa.desk_entries("glow", client) == []


# ------------------------------------------------------------------------------ dunning after the desk


def test_dunning_charges_nothing_once_the_balance_was_paid_at_the_desk_even_with_a_good_card(spa):
    client, missed = glow_client_who_owes(spa, card="chargeCustomerFail")
    key = appointment_key("glow", missed)
    state = spa.store.appointments.get(key).fees["no_show"]
    assert state.outcome == "outstanding" and state.next_retry_at is not None
    customer = spa.store.clients.get(client_key("glow", client)).stripe_customer_id
    spa.send("CardUpdated", spa_id="glow", client_id=client, stripe_customer_id=customer,
             stripe_payment_method_id=save_test_card(spa.stripe, customer, "visa"))
    spa.pay("glow", client, 50_000, "TILL-9")

    spa.now = state.next_retry_at
    assert spa.fees.retry(key, "no_show", 2, spa.now).done == "no_show: nothing to retry"
    report = spa.settlement.retry_outstanding_fee(key, "no_show", 2, spa.now)  # a retry that read the old state
    assert report.outcome == "settled" and report.charged is None
    assert spa.charged() == 0 and spa.owes("glow", client) == {}
    assert [e.attempt for e in spa.store.ledger.for_appointment(key)] == [1]


def test_a_partial_desk_payment_leaves_dunning_charging_nothing_more_than_is_owed(spa):
    client, missed = glow_client_who_owes(spa, card="chargeCustomerFail")
    spa.pay("glow", client, 20_000, "TILL-10")
    report = spa.settlement.retry_outstanding_fee(appointment_key("glow", missed), "no_show", 2,
                                                  spa.now + timedelta(days=1))
    assert report.charged is None and spa.charged() == 0
    assert spa.owes("glow", client) == {"HKD": 30_000}, "the rest stays due at the next visit"


# ------------------------------------------------------------------------------ crashes between the writes


def test_a_crash_after_the_ledger_entry_keeps_the_split_decided_then(spa, monkeypatch):
    """The entry is written, then the Lambda dies; by the retry another fee has raised the balance. The
    payment still splits as first decided: a fresh decision would settle more and credit less."""
    client, _ = glow_client_who_owes(spa)
    real = spa.store.clients.settle_outstanding
    monkeypatch.setattr(spa.store.clients, "settle_outstanding",
                        lambda *a, **k: (_ for _ in ()).throw(TimeoutError()))
    with pytest.raises(TimeoutError):
        spa.pay("glow", client, 80_000, "TILL-11")
    monkeypatch.setattr(spa.store.clients, "settle_outstanding", real)
    spa.store.clients.add_outstanding(client_key("glow", client), hkd(20_000), f"glow#{client}-late#fee#1", spa.now)

    spa.pay("glow", client, 80_000, "TILL-11")
    assert spa.owes("glow", client) == {"HKD": 20_000} and spa.credit("glow", client) == {"HKD": 30_000}
    spa.pay("glow", client, 80_000, "TILL-11")
    assert spa.owes("glow", client) == {"HKD": 20_000} and spa.credit("glow", client) == {"HKD": 30_000}


def test_a_balance_paid_by_dunning_after_the_split_was_decided_turns_the_desk_payment_into_credit(spa, monkeypatch):
    client, _ = glow_client_who_owes(spa)
    real = spa.store.clients.settle_outstanding
    monkeypatch.setattr(spa.store.clients, "settle_outstanding",
                        lambda *a, **k: (_ for _ in ()).throw(TimeoutError()))
    with pytest.raises(TimeoutError):
        spa.pay("glow", client, 50_000, "TILL-12")
    monkeypatch.setattr(spa.store.clients, "settle_outstanding", real)
    real(client_key("glow", client), hkd(50_000), f"glow#{client}-dunning#no_show_fee#2", spa.now)

    spa.pay("glow", client, 50_000, "TILL-12")
    assert spa.owes("glow", client) == {} and spa.credit("glow", client) == {"HKD": 50_000}
    spa.pay("glow", client, 50_000, "TILL-12")
    assert spa.credit("glow", client) == {"HKD": 50_000}, "kept as credit once"


def test_the_desk_payment_is_keyed_by_client_and_reference(spa):
    """Two clients may hand in receipts with the same number; each pays their own balance."""
    first, _ = glow_client_who_owes(spa)
    second, _ = glow_client_who_owes(spa)
    for client in (first, second):
        spa.pay("glow", client, 50_000, "RECEIPT-1")
    assert spa.owes("glow", first) == spa.owes("glow", second) == {}
    assert balances.owed(spa.store.clients.get(client_key("glow", first))) == []
