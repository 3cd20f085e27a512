"""Where memberships live: each one's booking-site events, its drafts, and the membership folded from both.

The folded membership is derived data, so it is written only over the version it was folded from: two
writers (the intake with a new event, the drafts job with a new draft) cannot overwrite each other's newer
facts, whoever writes last. Every read is consistent, so a fold never misses a fact its writer just kept.

Drafts due are found through an index on (time zone and shard, due date), never a scan: the daily job of
one time zone reads only its memberships, and the shard spreads a big chain's draft day over partitions.

The shard count is a setting (``DUE_INDEX_SHARDS``, the template's ``DueIndexShards``), held by the store, so the
shard written and the shards read come from the same number. The rule for changing it: **raise only**. An item
written under a lower count sits in a shard below it, and the finder reads shards 0..N-1 of the new count, so
raising loses nothing (during a deploy a writer already on the new count may put an item in a shard the old
finder does not read yet: it is found by the next run, since the finder takes every day due on or before today).
Lowering would hide every item in a shard at or above the new count until it is next written, so the template's
``MinValue`` is the highest count ever deployed and CloudFormation refuses a lower one.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from medspa.domain.membership import Draft, Membership

DEFAULT_DUE_SHARDS = 4
"""A partition takes 1,000 writes a second, and a draft moves its membership's entry (a delete and a put): four
shards keep one zone's first-of-the-month drafts of tens of thousands well within that (``make capacity``)."""


class MembershipRecord(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True)

    membership_id: str
    events: tuple[tuple[str, str], ...] = ()
    drafts: tuple[Draft, ...] = ()
    membership: Membership | None = None
    record_version: int = 0


class ConflictingMembershipEvent(Exception):
    """A membership_version already holds a different event: the booking site reused a version."""


class MembershipStore(Protocol):
    def record_event(self, membership_id: str, version: int, detail_type: str, event_id: str, detail_json: str,
                     now: datetime) -> bool: ...

    def record_draft(self, membership_id: str, entry_id: str, draft: Draft, now: datetime) -> bool: ...

    def read(self, membership_id: str) -> MembershipRecord | None: ...

    def save(self, membership_id: str, read_version: int, membership: Membership, due: tuple[str, date] | None,
             now: datetime) -> bool: ...

    def due(self, shard: str, on_or_before: date) -> list[str]: ...

    @property
    def due_shards(self) -> int:
        """How many shards the by_due_day index is spread over: written by ``due_shard``, read by ``shards_of``."""
        ...


def due_shard(time_zone: str, item_id: str, shards: int) -> str:
    """A stable shard: the same item always lands in the same partition of its zone, for a given count."""
    from zlib import crc32

    return f"{time_zone}#{crc32(item_id.encode()) % shards}"


def shards_of(time_zone: str, shards: int) -> list[str]:
    """Every shard of the zone up to the count: also every shard a lower count ever wrote (why raising is safe)."""
    return [f"{time_zone}#{n}" for n in range(shards)]


class DraftRuns(Protocol):
    """Starts a MembershipDrafts run for one membership whose dues are due at once, or whose draft Stripe says
    was paid since (``why="paid"``); a repeat is a no-op."""

    def start_now(self, membership_id: str, due_on: date, attempt: int, why: str = "") -> None: ...
