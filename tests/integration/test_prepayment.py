"""A prepayment is taken at most once, whatever the client does with the visit (issue 11, item 1).

The property: over random sequences of reschedules (in time, late, within the same day), cancels (in
time, late, by the spa), no-shows (missed, or marked by the desk) and attendance for a prepaid visit at
Bijoux or 406MedicalSpa, the money taken from the prepayment (forfeited to fees, plus credited back as
store credit) never exceeds the prepayment, it is forfeited at most once, never both forfeited and
credited, the client's store credit is exactly the credit entry, and the client hears once about each.
(406's booking deposit, drawn at random beside the prepayment, is held to the same bound.)

Everything below the booking site is the real code: booking-site events go through ``IngestService``
(the fold), the lifecycle's plan and steps run as the state machine would run them (``Desk``: plan, wait
until the step is due, take it, plan again), fees go through ``SettlementService`` to the fake Stripe
with the real SDK, and every record is in DynamoDB on moto. Only Step Functions itself is left out: the
end-to-end tests (``tests/e2e/test_prepayment.py``) run the same stories through the deployed machine.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

import pytest
import stripe
from fakestripe import client_for, save_test_card
from fakestripe.server import FakeStripe, ManualClock
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from medspa.adapters.messaging import InMemoryMessenger
from medspa.adapters.payments import StripePayments
from medspa.adapters.store import InMemoryConsent, Store
from medspa.domain.keys import appointment_key, client_key
from medspa.money import Money
from medspa.events import DETAIL_MODELS
from medspa.messages.templates import load_templates
from medspa.policy.tenants import load_tenants
from medspa.services.card_check import CardChecks
from medspa.services.fees import FeeSteps
from medspa.services.ingest import IngestService
from medspa.services.lifecycle import LifecycleService, StepRequest
from medspa.services.notifications import NotificationService
from medspa.services.settlement import SettlementService
from medspa.services.unsubscribe import EmailUnsubscribe
from medspa.adapters.booking_site import InMemoryBookingSite
from medspa.adapters.executions import InMemoryExecutions
from tests.support.fixtures import module_store
from tests.support.packs import PACKS

SPAS = {"bijoux": "bijoux", "406medicalspa": "406medicalspa"}  # location -> spa
BOTOX = {"name": "Botox forehead", "category": "injection_laser", "duration_minutes": 30}
_ids = itertools.count(1)


class Desk:
    """The spa's system in one process: the intake, and the lifecycle loop the state machine runs."""

    def __init__(self, store: Store, stripe_client: stripe.StripeClient, clock: ManualClock) -> None:
        self.store, self.stripe, self.clock = store, stripe_client, clock
        self.messenger, self.inbox, consent = InMemoryMessenger(), InMemoryBookingSite(), InMemoryConsent()
        links = EmailUnsubscribe(consent, lambda: b"k" * 32, "https://api.example.com/unsubscribe",
                                 {p.spa.id: p.spa.name for p in PACKS.values()})
        notifications = NotificationService(self.messenger, load_templates(), PACKS, consent=consent,
                                            unsubscribe=links)
        self.lifecycle = LifecycleService(store, PACKS, notifications, self.inbox)
        self.fees = FeeSteps(store, SettlementService(store, StripePayments(stripe_client), PACKS), self.lifecycle)
        self.cards = CardChecks(store, StripePayments(stripe_client), PACKS, self.lifecycle)
        self.intake = IngestService(store, InMemoryExecutions(), PACKS, load_tenants(PACKS))  # type: ignore[arg-type]
        self.now = datetime(2026, 1, 1).astimezone()

    def send(self, detail_type: str, at: datetime, **detail: Any) -> None:
        self.run_until(detail["appointment_id"], at)
        self.now = max(self.now, at)
        event = DETAIL_MODELS[detail_type].model_validate_json(json.dumps({
            "event_id": f"evt-{next(_ids)}", "occurred_at": at.isoformat(), **detail}))
        self.intake.ingest(event, "booking-site", self.now)

    def run_until(self, appointment_id: str, until: datetime) -> None:
        """Take every step due by ``until``, each at its time, as the execution's Wait states would."""
        for _ in range(300):
            stored = self.store.appointments.get(appointment_id)
            if stored is None:
                return
            run = StepRequest.run_of(stored)
            plan = self.lifecycle.plan(run, self.now).next
            if plan is None or plan.at > until:
                return
            self.now = max(self.now, plan.at)
            self.clock.advance(60)  # the fake Stripe's rate limiter refills on its own clock
            if plan.action == "settle_fee":
                self.fees.settle(appointment_id, plan.reason or "", self.now)
            elif plan.action == "retry_fee":
                self.fees.retry(appointment_id, plan.reason or "", plan.attempt or 2, self.now)
            elif plan.action == "check_card":  # the settlement function's step, as the state machine routes it
                self.cards.check(appointment_id, *stored.run_identity, self.now)
            else:
                self.lifecycle.act(run.model_copy(update={"action": plan.action, "key": plan.key,
                                                          "reason": plan.reason, "attempt": plan.attempt}), self.now)
        raise AssertionError(f"{appointment_id}: the lifecycle kept planning steps that changed nothing")


@pytest.fixture(scope="module")
def store() -> Iterator[Store]:
    """One set of tables for the module; every example books its own client and visit."""
    with module_store() as store:
        yield store


@pytest.fixture(scope="module")
def desk(store: Store) -> Iterator[Desk]:
    clock = ManualClock()
    with FakeStripe(now=clock) as fake:
        yield Desk(store, client_for(fake), clock)


# ------------------------------------------------------------------------------ the client's story

Act = tuple[str, Any, Any]
NOTICE_HOURS = st.sampled_from([1, 12, 23, 24, 25, 47, 48, 49, 72, 120])
ACTS: st.SearchStrategy[Act] = st.one_of(
    st.tuples(st.just("reschedule"), NOTICE_HOURS, st.sampled_from([0, 1, 3, 7])),  # 0: later the same day
    st.tuples(st.just("cancel"), NOTICE_HOURS, st.sampled_from(["client", "client", "spa"])),
    st.tuples(st.just("attend"), st.none(), st.none()),
    st.tuples(st.just("miss"), st.none(), st.none()),
    st.tuples(st.just("desk_no_show"), st.none(), st.none()),
)


@dataclass(frozen=True)
class Story:
    location: str
    prepaid: int
    card: bool
    deposit: int | None
    acts: tuple[Act, ...]
    confirms: bool = True  # 406 auto-cancels a visit not confirmed by the end of the business day before


@st.composite
def stories(draw: st.DrawFn) -> Story:
    location = draw(st.sampled_from(sorted(SPAS)))
    deposit = draw(st.none() | st.integers(1_000, 10_000)) if location == "406medicalspa" else None
    return Story(location, draw(st.integers(1_000, 80_000)), draw(st.booleans()), deposit,
                 tuple(draw(st.lists(ACTS, max_size=5))), draw(st.booleans()))


def live(desk: Desk, story: Story, *, to_the_end: bool = True) -> tuple[str, str]:
    """Book the prepaid visit (Tuesday 14:00 local, ten days ahead), play the story, then let the lifecycle
    finish (fees, dunning) unless told not to; returns the appointment's and the client's keys."""
    spa, n = SPAS[story.location], next(_ids)
    pack, client, appointment = PACKS[story.location], f"c-{n}", f"apt-{n}"
    start = datetime.combine(datetime(2026, 6, 9).date(), time(14), pack.zone)
    desk.now = start - timedelta(days=10)  # each story is its own visit, on its own timeline
    payment: dict[str, Any] = {"card_on_file": story.card, "prepaid": {"amount": story.prepaid, "currency": "USD"}}
    if story.card:
        customer = desk.stripe.v1.customers.create().id
        payment |= {"stripe_customer_id": customer,
                    "stripe_payment_method_id": save_test_card(desk.stripe, customer, "pm_card_visa")}
    if story.deposit:
        payment["deposit"] = {"amount": story.deposit, "currency": "USD"}
    ids, version = {"spa_id": spa, "appointment_id": appointment}, itertools.count(1)
    desk.send("AppointmentBooked", desk.now, **ids, booking_version=next(version), location_id=story.location,
              client={"id": client, "phone": "+14065550100", "sms_opt_in": True},
              service={**BOTOX, "price": {"amount": 45_000, "currency": "USD"}}, starts_at=start.isoformat(),
              payment=payment)
    if story.confirms:
        desk.send("AppointmentConfirmed", desk.now, **ids, booking_version=next(version), channel="sms")
    for what, a, b in story.acts:
        at = start - timedelta(hours=a) if a is not None else start - timedelta(minutes=5)
        at = max(at, desk.now + timedelta(minutes=1))
        if what == "reschedule":
            start = start + timedelta(hours=2) if b == 0 else start + timedelta(days=b)
            desk.send("AppointmentRescheduled", at, **ids, booking_version=next(version), starts_at=start.isoformat())
            if story.confirms:
                desk.send("AppointmentConfirmed", at, **ids, booking_version=next(version), channel="sms")
        elif what == "cancel":
            desk.send("AppointmentCancelled", at, **ids, booking_version=next(version), by=b)
        elif what == "attend":
            desk.send("ClientCheckedIn", at, **ids, booking_version=next(version), arrived_at=at.isoformat())
        elif what == "desk_no_show":
            desk.send("AppointmentMarkedNoShow", max(at, start + timedelta(minutes=20)), **ids,
                      booking_version=next(version), marked_by="staff-desk")
        else:  # missed: nobody checks in, the lifecycle decides
            desk.run_until(appointment_key(spa, appointment), start + timedelta(hours=2))
    if to_the_end:
        desk.run_until(appointment_key(spa, appointment), start + timedelta(days=30))
    return appointment_key(spa, appointment), client_key(spa, client)


# ------------------------------------------------------------------------------ the property


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(story=stories())
@example(Story("bijoux", 45_000, True, None, (("reschedule", 12, 7), ("miss", None, None))))  # the case
@example(Story("406medicalspa", 30_000, True, None, (("reschedule", 30, 7), ("miss", None, None))))
@example(Story("bijoux", 45_000, True, None, (("reschedule", 30, 7), ("cancel", 12, "client"))))
@example(Story("406medicalspa", 4_000, False, 5_000, (("reschedule", 12, 1), ("desk_no_show", None, None))))
def test_the_money_taken_from_a_prepayment_never_exceeds_it_and_it_is_forfeited_at_most_once(
        desk: Desk, story: Story) -> None:
    appointment_id, client_id = live(desk, story)
    prepaid = Money(amount=story.prepaid, currency="USD")

    entries = desk.store.ledger.for_appointment(appointment_id)
    forfeits = [e for e in entries if e.purpose.endswith("_fee_prepayment")]
    credits = [e for e in entries if e.purpose == "prepayment_credit"]
    taken = sum((e.amount for e in forfeits + credits), Money.zero("USD"))
    assert taken.amount <= prepaid.amount, [(e.purpose, e.amount.amount) for e in entries]
    assert len(forfeits) <= 1 and len(credits) <= 1 and not (forfeits and credits)
    assert all(e.status.value == "succeeded" for e in forfeits + credits)
    from_deposit = sum(e.amount.amount for e in entries if e.purpose.endswith("_fee_deposit"))
    assert from_deposit <= (story.deposit or 0), "a deposit, too, pays towards fees only as far as it goes"
    assert desk.store.clients.get(client_id).credit_in("USD") == (credits[0].amount if credits else Money.zero("USD"))

    messages = desk.store.appointments.get(appointment_id).messages
    credited = [m for m in messages if m.kind == "prepayment_credited"]
    assert [m.fee for m in credited] == [e.amount for e in credits]
    told_of_forfeit = [m for m in messages if m.fee_breakdown is not None
                       and any(p.source == "prepayment" for p in m.fee_breakdown.paid_from)]
    assert [p.amount for m in told_of_forfeit for p in m.fee_breakdown.paid_from if p.source == "prepayment"] == [
        e.amount for e in forfeits]
    told = [detail for kind, _, detail in desk.inbox.received
            if kind == "PrepaymentCredited" and detail["appointment_id"] == appointment_id.split("#")[1]]
    assert len({str(d) for d in told}) == len(credits)


# ------------------------------------------------------------------------------ the ledger has the last word


def test_a_refold_after_out_of_order_events_cannot_credit_a_prepayment_a_fee_already_forfeited(desk: Desk) -> None:
    """The client moved the visit 30 hours ahead (v2: credit), then cancelled the moved visit in time (v3). v3
    arrives first and, folded against the original time, is a late cancel: the prepayment is forfeited. When
    v2 arrives the refold owes a credit instead; the money has moved, so the credit finds nothing left."""
    appointment_id, client_id = live(desk, Story("bijoux", 45_000, True, None, ()), to_the_end=False)
    ids = {"spa_id": "bijoux", "appointment_id": appointment_id.split("#")[1]}
    start = desk.store.appointments.get(appointment_id).starts_at
    desk.send("AppointmentCancelled", start - timedelta(hours=12), **ids, booking_version=4, by="client")
    desk.run_until(appointment_id, start - timedelta(hours=11))
    desk.send("AppointmentRescheduled", start - timedelta(hours=30), **ids, booking_version=3,
              starts_at=(start + timedelta(days=7)).isoformat())
    desk.run_until(appointment_id, start + timedelta(days=30))

    refolded = desk.store.appointments.get(appointment_id)
    assert refolded.facts.prepaid_credit == Money(amount=45_000, currency="USD") and refolded.facts.violations == ()
    assert [(e.purpose, e.amount.amount) for e in desk.store.ledger.for_appointment(appointment_id)] == [
        ("late_cancel_fee_prepayment", 45_000)]
    assert desk.store.clients.get(client_id).credit_in("USD").is_zero


def test_406_a_prepaid_visit_auto_cancelled_for_want_of_a_confirmation_is_credited_not_forfeited(desk: Desk) -> None:
    appointment_id, client_id = live(desk, Story("406medicalspa", 30_000, True, None, (), confirms=False))

    assert desk.store.appointments.get(appointment_id).status.value == "auto_cancelled"
    assert [(e.purpose, e.kind.value, e.amount.amount) for e in desk.store.ledger.for_appointment(appointment_id)] == [
        ("prepayment_credit", "credit", 30_000)]
    assert desk.store.clients.get(client_id).credit_in("USD") == Money(amount=30_000, currency="USD")
    assert "your prepayment of $300.00 is now credit on your account" in desk.messenger.sms[-1].body
