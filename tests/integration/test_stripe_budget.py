"""The shared Stripe budget on DynamoDB (moto) and Stripe's own 429s (the fake), as the settlement service meets them.

A spent second and a rate-limit 429 both raise ``PaymentProviderThrottled`` after the ledger entry is kept: the
retry (the state machine's, a second or so later) finds the entry and sends the same idempotency key, so the fee
is charged exactly once. The budget's second comes from the same ``ManualClock`` that drives the fake: no sleeps.
"""

from __future__ import annotations

import itertools
from datetime import date
import logging
from collections.abc import Iterator

import boto3
import pytest
import stripe
from fakestripe.server import RATE_LIMITED_REASONS, FakeStripe, ManualClock

from medspa.adapters.payments import PaymentProviderThrottled, PaymentProviderUnavailable, StripePayments
from medspa.adapters.stripe_budget import DynamoBudget, InMemoryBudget, StripeBudget
from medspa.adapters.store import EntryStatus, Store
from medspa.services.settlement import SettlementService
from tests.integration.test_settlement import BOTOX, Spa
from tests.support.fixtures import REGION, module_tables
from tests.support.packs import PACKS
from tests.support.tables import table_names

_visits = itertools.count(1)
_hours = itertools.count(1)


def fresh_second(clock: ManualClock) -> None:
    """Each test's clock starts at the same instant and the table is the module's: move to an hour no test used."""
    clock.advance(3600 * next(_hours))


@pytest.fixture(scope="module")
def tables() -> Iterator[tuple[Store, str]]:
    """The template's tables, the budget's among them; the tests use their own ids and seconds."""
    with module_tables() as created:
        yield Store(table_names(created), REGION), created["StripeBudgetTable"]


def dynamo_budget(table: str, rate: int, share: float, clock: ManualClock) -> DynamoBudget:
    return DynamoBudget(boto3.client("dynamodb", region_name=REGION), table, rate, share, clock)


@pytest.fixture(params=["dynamodb", "memory"])
def budget_of(request: pytest.FixtureRequest, tables: tuple[Store, str], stripe_clock: ManualClock):
    """The DynamoDB budget and the in-memory one, held to the same cases (the fake stays honest)."""
    def make(rate: int, share: float) -> StripeBudget:
        fresh_second(stripe_clock)
        if request.param == "memory":
            return InMemoryBudget(rate, share, stripe_clock)
        return dynamo_budget(tables[1], rate, share, stripe_clock)
    return make


def test_drafts_get_their_share_fees_the_rest_and_the_next_second_refills(budget_of, stripe_clock: ManualClock) -> None:
    budget = budget_of(10, 0.5)
    for _ in range(5):
        budget.take("drafts", "drafting")
    with pytest.raises(PaymentProviderThrottled) as refused:
        budget.take("drafts", "drafting")
    assert refused.value.reason == "share-spent"
    for _ in range(5):
        budget.take("fees", "charging a fee")
    with pytest.raises(PaymentProviderThrottled, match="budget-spent"):
        budget.take("fees", "charging a fee")
    stripe_clock.advance(1)
    budget.take("drafts", "drafting")
    budget.take("fees", "charging a fee")


def test_every_lambda_spends_from_the_one_budget(tables: tuple[Store, str], stripe_clock: ManualClock) -> None:
    """Two containers (two clients, two adapters) share the second: the table, not the process, holds it."""
    fresh_second(stripe_clock)
    first, second = (dynamo_budget(tables[1], 3, 0.5, stripe_clock) for _ in range(2))
    first.take("fees", "a")
    second.take("fees", "b")
    first.take("drafts", "c")
    with pytest.raises(PaymentProviderThrottled, match="budget-spent"):
        second.take("fees", "d")


def test_a_budget_table_that_cannot_answer_lets_the_call_through(stripe_clock: ManualClock, tables) -> None:
    """Fail open: the budget spares Stripe 429s; it is not what keeps money moving once."""
    dynamo_budget("no-such-table", 1, 0.5, stripe_clock).take("fees", "charging a fee")


# ------------------------------------------------------------------------------ with the settlement service


class BudgetedSpa(Spa):
    def __init__(self, store: Store, client: stripe.StripeClient, fake: FakeStripe, clock: ManualClock,
                 budget: StripeBudget) -> None:
        super().__init__(store, client, fake, clock)
        self.service = SettlementService(store, StripePayments(client, budget, lane="fees"), PACKS)


@pytest.fixture
def spa(tables: tuple[Store, str], stripe_client: stripe.StripeClient, fake_stripe: FakeStripe,
        stripe_clock: ManualClock) -> BudgetedSpa:
    fresh_second(stripe_clock)
    return BudgetedSpa(tables[0], stripe_client, fake_stripe, stripe_clock,
                       dynamo_budget(tables[1], 25, 0.5, stripe_clock))


@pytest.fixture
def visit(spa: BudgetedSpa) -> str:
    n = next(_visits)
    client_id = spa.client("406medicalspa", f"b-{n}")  # two Stripe requests, made by the test, not metered
    return spa.book(f"appt-b{n}", client_id, "406medicalspa", BOTOX)


def test_a_spent_second_holds_the_fee_before_stripe_and_the_retry_charges_once_with_the_same_key(
        spa: BudgetedSpa, visit: str, tables: tuple[Store, str]) -> None:
    spender = dynamo_budget(tables[1], 25, 0.5, spa.clock)
    for _ in range(25):
        spender.take("fees", "other fees this second")
    requests_before = len(spa.fake.requests)
    with pytest.raises(PaymentProviderThrottled, match="budget-spent"):
        spa.service.settle_fee(visit, "no_show", spa.now)
    assert len(spa.fake.requests) == requests_before, "Stripe was not called"
    assert spa.card_entry(visit).status is EntryStatus.PENDING

    spa.later(1.5)  # the state machine's jittered retry
    assert spa.service.settle_fee(visit, "no_show", spa.now).outcome == "settled"
    assert len(spa.succeeded_charges()) == 1
    assert {r.idempotency_key for r in spa.charge_posts()} == {spa.card_entry(visit).stripe_idempotency_key}


@pytest.mark.parametrize("reason", RATE_LIMITED_REASONS)
def test_stripes_429_is_throttled_with_its_reason_logged_and_the_retry_charges_once(
        spa: BudgetedSpa, visit: str, reason: str, caplog: pytest.LogCaptureFixture) -> None:
    spa.fake.rate_limit_next(1, path_prefix="/v1/payment_intents", reason=reason)
    with caplog.at_level(logging.WARNING, logger="medspa.adapters.payments"), \
            pytest.raises(PaymentProviderThrottled) as throttled:
        spa.service.settle_fee(visit, "no_show", spa.now)
    assert throttled.value.reason == reason and spa.card_entry(visit).status is EntryStatus.PENDING
    [logged] = [r for r in caplog.records if r.getMessage() == "stripe rate limited"]
    assert (logged.reason, logged.lane) == (reason, "fees")  # type: ignore[attr-defined]
    assert "406medicalspa" not in str(logged.__dict__)  # ids of the visit or the client stay out of the log

    spa.later(1.5)
    assert spa.service.settle_fee(visit, "no_show", spa.now).outcome == "settled"
    assert len(spa.succeeded_charges()) == 1
    assert {r.idempotency_key for r in spa.charge_posts()} == {spa.card_entry(visit).stripe_idempotency_key}


def test_a_lock_timeout_is_an_outage_not_a_rate_limit(spa: BudgetedSpa, visit: str) -> None:
    spa.fake.lock_timeout_next(1)
    with pytest.raises(PaymentProviderUnavailable) as caught:
        spa.service.settle_fee(visit, "no_show", spa.now)
    assert not isinstance(caught.value, PaymentProviderThrottled)


def test_a_morning_of_card_checks_waits_behind_its_share_and_never_starves_a_fee(
        spa: BudgetedSpa, visit: str, tables: tuple[Store, str]) -> None:
    """Card checks share the drafts' cap: once this second's capped half is spent, a check is turned away before
    Stripe is called (and retried by the state machine), while a fee in the same second is charged."""
    spender = dynamo_budget(tables[1], 25, 0.5, spa.clock)
    for _ in range(12):
        spender.take("drafts", "the 1st's drafts")
    client = spa.store.clients.get(spa.store.appointments.get(visit).client_id)
    payments = StripePayments(spa.stripe, dynamo_budget(tables[1], 25, 0.5, spa.clock), lane="fees")
    requests_before = len(spa.fake.requests)
    with pytest.raises(PaymentProviderThrottled) as held:
        payments.check_card(client.stripe_customer_id, client.default_payment_method_id, date(2026, 12, 31),
                            idempotency_key="medspa-card-check-budget-test")
    assert held.value.reason == "share-spent" and len(spa.fake.requests) == requests_before
    assert spa.service.settle_fee(visit, "no_show", spa.now).outcome == "settled"

    spa.later(1)
    assert payments.check_card(client.stripe_customer_id, client.default_payment_method_id, date(2026, 12, 31),
                               idempotency_key="medspa-card-check-budget-test").usable
