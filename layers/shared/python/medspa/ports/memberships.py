"""Where memberships live: each one's booking-site events, its drafts, and the membership folded from both.

The folded membership is derived data, so it is written only over the version it was folded from: two
writers (the intake with a new event, the drafts job with a new draft) cannot overwrite each other's newer
facts, whoever writes last. Every read is consistent, so a fold never misses a fact its writer just kept.

Drafts due are found through an index on (time zone and shard, due date), never a scan: the daily job of
one time zone reads only its memberships, and the shard spreads a big chain's draft day over partitions.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from medspa.domain.membership import Draft, Membership

DUE_SHARDS = 4


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


def due_shard(time_zone: str, membership_id: str) -> str:
    """A stable shard: the same membership always lands in the same partition of its zone."""
    from zlib import crc32

    return f"{time_zone}#{crc32(membership_id.encode()) % DUE_SHARDS}"


def shards_of(time_zone: str) -> list[str]:
    return [f"{time_zone}#{n}" for n in range(DUE_SHARDS)]


class DraftRuns(Protocol):
    """Starts a MembershipDrafts run for one membership whose dues are due at once, or whose draft Stripe says
    was paid since (``why="paid"``); a repeat is a no-op."""

    def start_now(self, membership_id: str, due_on: date, attempt: int, why: str = "") -> None: ...
