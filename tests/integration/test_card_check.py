"""Cards that will fail (issue 11, item 7): the card check against the fake Stripe through the real SDK, on moto.

``StripePayments.check_card`` reports a card on file as usable, expired by the visit, detached, missing or
failing verification (a SetupIntent for off-session use); ``CardChecks`` turns a card that will not do into
one client notice and one ``CardUpdateRequested`` per visit time, and records the check so it is not redone.
The service's ``now`` is read from the clock that drives the fake, so expiry means the same to both.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import stripe
from fakestripe import save_test_card
from fakestripe.server import FakeStripe, ManualClock

from medspa.adapters.payments import CardStatus, PaymentProviderUnavailable, StripePayments
from medspa.adapters.store import AppointmentBooking, ClientProfile, Store
from medspa.domain.appointment import PaymentContext, Service
from medspa.money import Money
from medspa.services.card_check import CardChecks
from medspa.services.lifecycle import LifecycleService, StepRequest
from medspa.adapters.booking_site import InMemoryBookingSite
from tests.support.fixtures import module_store
from tests.support.packs import PACKS

BOTOX = Service(name="Botox forehead", category="injection_laser", duration_minutes=30,
                price=Money(amount=45_000, currency="USD"))  # Bijoux: a $50 fee, charged to the card
VISIT = datetime(2026, 1, 13, 19, tzinfo=UTC)  # Tuesday 14:00 EST
CHECK_AT = datetime(2026, 1, 10, 15, tzinfo=UTC)  # Saturday 10:00 EST, three days before
_ids = itertools.count(1)


@pytest.fixture(scope="module")
def store() -> Iterator[Store]:
    with module_store() as store:
        yield store


class Spa:
    """Bijoux, a client and a visit; the clock is the fake Stripe's."""

    def __init__(self, store: Store, client: stripe.StripeClient, fake: FakeStripe, clock: ManualClock) -> None:
        self.store, self.stripe, self.fake, self.clock = store, client, fake, clock
        self.payments = StripePayments(client)
        self.inbox = InMemoryBookingSite()
        self.lifecycle = LifecycleService(store, PACKS, booking_site=self.inbox)
        self.checks = CardChecks(store, self.payments, PACKS, self.lifecycle)

    @property
    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def until(self, moment: datetime) -> datetime:
        self.clock.advance((moment - self.now).total_seconds())
        return self.now

    def client(self, card: str | None = "visa", *, expires: tuple[int, int] | None = None) -> tuple[str, str | None]:
        n = next(_ids)
        customer = pm = None
        if card is not None:
            customer = self.stripe.v1.customers.create().id
            if expires is not None:
                month, year = expires
                made = self.stripe.v1.payment_methods.create(params={"type": "card", "card": {
                    "number": "4242424242424242", "exp_month": month, "exp_year": year}})
                pm = self.stripe.v1.payment_methods.attach(made.id, params={"customer": customer}).id
            else:
                pm = save_test_card(self.stripe, customer, card)
        client_id = f"bijoux#c-{n}"
        self.store.clients.save_profile(ClientProfile(client_id=client_id, spa_id="bijoux", phone="+14075550142",
                                                      stripe_customer_id=customer, default_payment_method_id=pm),
                                        self.now)
        return client_id, pm

    def book(self, client_id: str, starts_at: datetime = VISIT, version: int = 1, appointment_id: str | None = None,
             **payment: Any) -> str:
        appointment_id = appointment_id or f"bijoux#apt-{next(_ids)}"
        self.store.appointments.upsert_from_booking(AppointmentBooking(
            appointment_id=appointment_id, client_id=client_id, location_id="bijoux",
            policy_version=PACKS["bijoux"].policy_version, service=BOTOX, starts_at=starts_at,
            booking_version=version, event_id=f"evt-{appointment_id}-{version}",
            payment=PaymentContext(card_on_file=True, **payment)), self.now)
        return appointment_id

    def planned(self, appointment_id: str) -> list[str]:
        stored = self.store.appointments.get(appointment_id)
        return [s.action for s in self.lifecycle._timed_steps(stored)]

    def check(self, appointment_id: str):
        stored = self.store.appointments.get(appointment_id)
        return self.checks.check(appointment_id, *stored.run_identity, self.now)


@pytest.fixture
def spa(store: Store, stripe_client: stripe.StripeClient, fake_stripe: FakeStripe, stripe_clock: ManualClock) -> Spa:
    return Spa(store, stripe_client, fake_stripe, stripe_clock)


# ------------------------------------------------------------------------------ the adapter


def check(spa: Spa, customer: str | None, pm: str | None, needed: date = date(2026, 1, 13), key: str = "k"):
    return spa.payments.check_card(customer, pm, needed, idempotency_key=f"medspa-card-check-{key}",
                                   metadata={"check_ref": key, "spa_id": "bijoux"})


def customer_of(spa: Spa, client_id: str) -> str | None:
    return spa.store.clients.get(client_id).stripe_customer_id


def test_a_good_card_is_usable_after_one_setup_intent_and_a_retry_confirms_the_same_one(spa: Spa) -> None:
    client_id, pm = spa.client("visa")
    first = check(spa, customer_of(spa, client_id), pm)
    again = check(spa, customer_of(spa, client_id), pm)
    assert first.status is CardStatus.USABLE and first.setup_intent_id == again.setup_intent_id
    [seti] = [s for s in spa.fake.setup_intents if s["id"] == first.setup_intent_id]
    assert (seti["usage"], seti["status"], seti["customer"]) == ("off_session", "succeeded", customer_of(spa, client_id))
    assert seti["metadata"] == {"check_ref": "k", "spa_id": "bijoux"} and seti["description"] is None
    assert spa.fake.charges == []


def test_a_card_that_expires_before_the_visits_month_ends_is_expired_and_is_not_verified(spa: Spa) -> None:
    client_id, pm = spa.client(expires=(1, 2026))
    customer = customer_of(spa, client_id)
    assert check(spa, customer, pm, needed=date(2026, 1, 31), key="jan").status is CardStatus.USABLE
    setups = len(spa.fake.setup_intents)
    result = check(spa, customer, pm, needed=date(2026, 2, 1), key="feb")
    assert (result.status, result.code) == (CardStatus.EXPIRED, "expires_before_the_visit")
    assert len(spa.fake.setup_intents) == setups


def test_a_removed_card_is_detached_whether_detached_deleted_or_gone(spa: Spa) -> None:
    client_id, pm = spa.client("visa")
    customer = customer_of(spa, client_id)
    other, other_pm = spa.client("visa")
    assert check(spa, customer, other_pm).status is CardStatus.DETACHED  # another customer's card
    spa.stripe.v1.payment_methods.detach(pm)
    assert check(spa, customer, pm).status is CardStatus.DETACHED
    assert check(spa, customer, "pm_card_chargeDeclined").status is CardStatus.DETACHED  # never saved
    assert spa.stripe.v1.payment_methods.retrieve(pm).customer is None, "a detached card is never re-attached"
    spa.stripe.v1.customers.delete(customer_of(spa, other))
    assert check(spa, customer_of(spa, other), other_pm).status is CardStatus.DETACHED


def test_no_card_on_file_is_missing_without_asking_stripe(spa: Spa) -> None:
    before = len(spa.fake.requests)
    assert check(spa, None, None).status is CardStatus.MISSING
    assert check(spa, "cus_x", None).status is CardStatus.MISSING
    assert len(spa.fake.requests) == before


def test_a_card_the_issuer_refuses_or_that_must_authenticate_fails_verification(spa: Spa) -> None:
    client_id, pm = spa.client("authenticationRequired")  # 3DS on every payment: off-session fees would fail
    result = check(spa, customer_of(spa, client_id), pm)
    assert (result.status, result.code) == (CardStatus.VERIFICATION_FAILED, "authentication_required")
    client_id, pm = spa.client(expires=(1, 2026))
    spa.clock.advance(31 * 24 * 3600)  # February: the issuer now declines it
    expired = check(spa, customer_of(spa, client_id), pm, needed=date(2026, 1, 31), key="late")
    assert (expired.status, expired.code) == (CardStatus.EXPIRED, "expired_card")


def test_stripe_out_of_reach_is_retried_and_metadata_carries_only_opaque_ids(spa: Spa) -> None:
    client_id, pm = spa.client("visa")
    spa.fake.fail_next(1, 500)
    with pytest.raises(PaymentProviderUnavailable):
        check(spa, customer_of(spa, client_id), pm)
    spa.fake.rate_limit_next(1, path_prefix="/v1/setup_intents")
    with pytest.raises(PaymentProviderUnavailable):
        check(spa, customer_of(spa, client_id), pm)
    with pytest.raises(ValueError, match="only opaque ids"):
        spa.payments.check_card(customer_of(spa, client_id), pm, date(2026, 1, 13), idempotency_key="x",
                                metadata={"service": "Botox"})


# ------------------------------------------------------------------------------ the step


def test_an_expiring_card_gets_one_notice_and_one_booking_site_event_for_the_visit(spa: Spa) -> None:
    client_id, _ = spa.client(expires=(12, 2026))  # good through December 2026
    late_visit = datetime(2027, 1, 12, 19, tzinfo=UTC)  # ...but the visit is in January 2027
    appointment_id = spa.book(client_id, late_visit)
    assert "check_card" in spa.planned(appointment_id)
    spa.until(datetime(2027, 1, 9, 15, tzinfo=UTC))

    done = spa.check(appointment_id)
    assert done.detail["outcome"] == "expired"
    stored = spa.store.appointments.get(appointment_id)
    assert (stored.card_check.outcome, stored.card_check.starts_at) == ("expired", late_visit)
    notice = "card_update_requested@2027-01-12T19:00Z"
    assert [(m.key, m.kind, m.status) for m in stored.messages] == [(notice, "card_update_requested", "due")]
    assert spa.inbox.received == [("CardUpdateRequested", f"{appointment_id}:{notice}", {
        "spa_id": "bijoux", "appointment_id": appointment_id.split("#")[1], "client_id": client_id.split("#")[1],
        "reason": "expired", "starts_at": late_visit.isoformat()})]

    assert spa.check(appointment_id).done == "no card check due"  # a late retry of the step
    assert "check_card" not in spa.planned(appointment_id)
    assert len(spa.inbox.received) == 1 and len(spa.store.appointments.get(appointment_id).messages) == 1


def test_a_good_card_is_recorded_and_nobody_is_told(spa: Spa) -> None:
    client_id, _ = spa.client("visa")
    appointment_id = spa.book(client_id)
    spa.until(CHECK_AT)
    assert spa.check(appointment_id).detail == {"outcome": "usable", "code": None, "notice": None}
    stored = spa.store.appointments.get(appointment_id)
    assert stored.card_check.outcome == "usable" and stored.messages == () and spa.inbox.received == []
    [seti] = [s for s in spa.fake.setup_intents if s["customer"] == customer_of(spa, client_id)]
    assert set(seti["metadata"]) == {"check_ref", "spa_id", "location_id"}
    assert "apt" not in str(seti["metadata"]) and "c-" not in str(seti["metadata"])


def test_a_reschedule_to_another_time_earns_a_new_check_and_a_card_updated_needs_nothing(spa: Spa) -> None:
    client_id, _ = spa.client("authenticationRequired")
    appointment_id = spa.book(client_id)
    spa.until(CHECK_AT)
    assert spa.check(appointment_id).detail["outcome"] == "verification_failed"
    spa.store.clients.save_profile(ClientProfile(  # CardUpdated: the client's new card replaces the old one
        client_id=client_id, spa_id="bijoux",
        default_payment_method_id=save_test_card(spa.stripe, customer_of(spa, client_id), "visa")), spa.now)
    assert "check_card" not in spa.planned(appointment_id)

    moved = VISIT + timedelta(days=7)
    spa.book(client_id, moved, version=2, appointment_id=appointment_id)
    assert "check_card" in spa.planned(appointment_id)
    spa.until(CHECK_AT + timedelta(days=7))
    assert spa.check(appointment_id).detail["outcome"] == "usable"
    assert [e for e, *_ in spa.inbox.received] == ["CardUpdateRequested"]


def test_a_visit_booked_inside_the_window_is_not_checked(spa: Spa) -> None:
    client_id, _ = spa.client(expires=(1, 2026))
    spa.until(CHECK_AT + timedelta(hours=1))
    appointment_id = spa.book(client_id)
    assert "check_card" not in spa.planned(appointment_id)
    assert spa.check(appointment_id).done == "no card check due"


def test_a_check_given_up_is_recorded_so_the_visit_goes_on(spa: Spa) -> None:
    client_id, _ = spa.client("visa")
    appointment_id = spa.book(client_id)
    spa.until(CHECK_AT)
    stored = spa.store.appointments.get(appointment_id)
    run = StepRequest.run_of(stored)
    spa.lifecycle.act(run.model_copy(update={"action": "skip_card_check", "reason": "PaymentProviderUnavailable"}),
                      spa.now)
    stored = spa.store.appointments.get(appointment_id)
    assert (stored.card_check.outcome, stored.card_check.code) == ("not_checked", "PaymentProviderUnavailable")
    assert spa.lifecycle.plan(run, spa.now).next.action != "check_card"
    assert stored.messages == () and spa.inbox.received == []


def test_an_erased_client_is_not_checked(spa: Spa) -> None:
    client_id, _ = spa.client("visa")
    appointment_id = spa.book(client_id)
    spa.until(CHECK_AT)
    spa.store.clients.mark_erased(client_id, spa.now)
    assert spa.check(appointment_id).detail["outcome"] == "not_checked"
