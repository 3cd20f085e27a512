"""The Stripe rate budget: a second's units, drafts held to their share so fees are never starved, the clock a test's.

The DynamoDB budget is checked against the same cases on moto in ``tests/integration/test_stripe_budget.py``; this
one pins the arithmetic and the drafts' Distributed Map concurrency derived from it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medspa.adapters.factory import Adapters
from medspa.adapters.settings import MembershipsSettings, SettlementSettings
from medspa.adapters.stripe_budget import DynamoBudget, InMemoryBudget, drafts_max_concurrency, drafts_per_second
from medspa.ports.payments import PaymentProviderThrottled, PaymentProviderUnavailable
from tests.support.tables import load_template

ROOT = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self, t: float = 1_767_225_600.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_fees_may_use_the_whole_second_and_then_drafts_wait() -> None:
    budget = InMemoryBudget(4, 0.5, Clock())
    for _ in range(4):
        budget.take("fees", "charging a fee")
    with pytest.raises(PaymentProviderThrottled, match="budget-spent"):
        budget.take("drafts", "drafting")


def test_the_next_second_of_the_injected_clock_refills_the_budget() -> None:
    clock = Clock()
    budget = InMemoryBudget(2, 0.5, clock)
    budget.take("drafts", "drafting")
    with pytest.raises(PaymentProviderThrottled):
        budget.take("drafts", "drafting")
    clock.t += 0.999
    with pytest.raises(PaymentProviderThrottled):  # still the same second
        budget.take("drafts", "drafting")
    clock.t += 0.001
    budget.take("drafts", "drafting")


def test_throttled_is_an_outage_for_code_that_treats_all_outages_alike() -> None:
    assert issubclass(PaymentProviderThrottled, PaymentProviderUnavailable)


@pytest.mark.parametrize(("rate", "share", "drafts", "concurrency"),
                         [(25, 0.5, 12, 6), (100, 0.5, 50, 25), (25, 0.05, 1, 1), (1, 0.5, 1, 1)])
def test_the_drafts_share_and_concurrency_arithmetic(rate: int, share: float, drafts: int, concurrency: int) -> None:
    assert (drafts_per_second(rate, share), drafts_max_concurrency(rate, share)) == (drafts, concurrency)


def test_the_drafts_map_concurrency_is_derived_from_the_templates_default_budget() -> None:
    parameters = load_template()["Parameters"]
    rate, share = parameters["StripeRequestsPerSecond"]["Default"], parameters["StripeDraftsShare"]["Default"]
    asl = json.loads((ROOT / "statemachines" / "membership_drafts.asl.json").read_text(encoding="utf-8"))
    assert asl["States"]["Draft each membership"]["MaxConcurrency"] == drafts_max_concurrency(int(rate), float(share))


SETTINGS = {"AWS_REGION": "us-east-1", "due_index_shards": "4", "booking_events_bus": "bus",
            "stripe_api_key_parameter": "/stripe", "stripe_budget_table": "medspa-stripe-budget",
            "stripe_requests_per_second": "25", "stripe_drafts_share": "0.5", "sms_outbox_queue_url": "https://sqs/sms",
            "email_outbox_queue_url": "https://sqs/email",
            "unsubscribe_url": "https://api.example.com/u", "unsubscribe_signing_key_parameter": "/key",
            **{f"{name}_table": f"medspa-{name}" for name in
               ("clients", "appointments", "ledger", "consent", "memberships", "courses")}}


@pytest.mark.parametrize(("settings", "lane"), [(MembershipsSettings, "drafts"), (SettlementSettings, "fees")])
def test_the_drafts_function_spends_in_the_drafts_lane_and_the_others_in_the_fees_lane(
        monkeypatch: pytest.MonkeyPatch, settings: type[SettlementSettings], lane: str) -> None:
    adapters = Adapters(settings(**SETTINGS), client=lambda service: object())
    monkeypatch.setattr(adapters, "_secret", lambda name: "sk_test_local")
    payments = adapters.payments
    assert payments._lane == lane and isinstance(payments._budget, DynamoBudget)
    assert (payments._budget.limit, payments._budget.drafts_limit) == (25, 12)
