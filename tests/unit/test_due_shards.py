"""The by_due_day indexes' shard count is a setting, and the shard written and the shards read both follow it.

A big chain's draft day would otherwise be one hot partition key (time zone, date). The count comes from
``DUE_INDEX_SHARDS`` (the template's ``DueIndexShards``) through the settings to the store; the services ask the
store. Raising it is safe (what a lower count wrote is still read), lowering is not (the template refuses it).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from medspa.adapters.factory import Adapters
from medspa.adapters.settings import FunctionSettings
from medspa.adapters.store.memberships import InMemoryMemberships
from medspa.adapters.store.memory import InMemoryStore
from medspa.events.catalogue import BookingClient, MembershipPlan, MembershipStarted
from medspa.money import Money
from medspa.policy.loader import PolicyPacks, load_packs
from medspa.ports.memberships import DEFAULT_DUE_SHARDS, shards_of
from medspa.services.memberships import MembershipService
from tests.support.tables import load_template

ZONE = "America/Chicago"  # massageluxe-austin
NOW = datetime(2026, 3, 2, 15, tzinfo=UTC)
PACKS = PolicyPacks.of(load_packs())
MEMBERS = [f"mem-{n:03d}" for n in range(60)]


def _started(membership_id: str) -> MembershipStarted:
    return MembershipStarted(
        event_id=f"evt-{membership_id}", occurred_at=NOW, spa_id="massageluxe", membership_id=membership_id,
        membership_version=1, client=BookingClient(id=f"c-{membership_id}", first_name="Dana"),
        location_id="massageluxe-austin", starts_on=date(2026, 3, 2),
        plan=MembershipPlan(name="LuXe 60", monthly_dues=Money(amount=7900, currency="USD"),
                            service_credits_per_month=1))


def _signed_up(shards: int) -> tuple[MembershipService, InMemoryMemberships]:
    """Sixty members whose first dues are due today, kept by a store with ``shards`` shards."""
    memberships = InMemoryMemberships(due_shards=shards)
    store = InMemoryStore(memberships=memberships)
    service = MembershipService(store, memberships, PACKS)
    for membership_id in MEMBERS:
        assert service.record(_started(membership_id), NOW) is not None
    return service, memberships


def _shards_written(memberships: InMemoryMemberships) -> set[str]:
    return {item["due"][0] for item in memberships.items.values()}  # type: ignore[index]


@pytest.mark.parametrize("shards", [1, 4, 8])
def test_the_shards_written_and_the_shards_read_follow_the_count(shards: int) -> None:
    service, memberships = _signed_up(shards)
    assert _shards_written(memberships) == set(shards_of(ZONE, shards))  # every shard used, none beyond
    assert len(service.due(ZONE, NOW)) == len(MEMBERS)


def test_raising_the_count_still_finds_what_the_lower_count_wrote_and_lowering_would_hide_some() -> None:
    _, written_under_4 = _signed_up(4)
    raised = InMemoryMemberships(items=written_under_4.items, due_shards=8)
    assert len(MembershipService(InMemoryStore(memberships=raised), raised, PACKS).due(ZONE, NOW)) == len(MEMBERS)

    _, written_under_8 = _signed_up(8)
    lowered = InMemoryMemberships(items=written_under_8.items, due_shards=4)
    found = MembershipService(InMemoryStore(memberships=lowered), lowered, PACKS).due(ZONE, NOW)
    assert 0 < len(found) < len(MEMBERS)  # why the template's MinValue refuses a lower count


def test_the_setting_reaches_both_stores_and_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    tables = {f"{name}_table": f"medspa-{name}" for name in
              ("clients", "appointments", "ledger", "consent", "memberships", "courses")}
    store = Adapters(FunctionSettings(AWS_REGION="us-east-1", due_index_shards="16", **tables)).store
    assert (store.memberships.due_shards, store.courses.due_shards) == (16, 16)
    monkeypatch.delenv("DUE_INDEX_SHARDS", raising=False)
    with pytest.raises(ValueError, match="due_index_shards"):
        FunctionSettings(AWS_REGION="us-east-1", **tables)


def test_every_function_gets_the_template_count_which_can_only_be_raised() -> None:
    template = load_template()
    parameter = template["Parameters"]["DueIndexShards"]
    assert template["Globals"]["Function"]["Environment"]["Variables"]["DUE_INDEX_SHARDS"] == {"Ref": "DueIndexShards"}
    assert parameter["MinValue"] == parameter["Default"] == DEFAULT_DUE_SHARDS
