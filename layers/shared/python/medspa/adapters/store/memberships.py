"""Memberships in DynamoDB (``MembershipStore``), and the same contract in memory for tests and backtests."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime

from medspa.domain.membership import Draft, Membership
from medspa.ports.memberships import DEFAULT_DUE_SHARDS, ConflictingMembershipEvent, MembershipRecord

from .errors import transient_errors_named
from .models import MembershipItem, update_if


def _map(value: object) -> dict[str, str]:
    return value.as_dict() if value is not None else {}  # type: ignore[attr-defined, no-any-return]


def _events(held: dict[str, str]) -> tuple[tuple[str, str], ...]:
    entries = [json.loads(v) for _, v in sorted(held.items(), key=lambda kv: int(kv[0]))]
    return tuple((e["detail_type"], json.dumps(e["detail"])) for e in entries)


def _event_entry(detail_type: str, event_id: str, detail_json: str) -> str:
    return json.dumps({"detail_type": detail_type, "event_id": event_id, "detail": json.loads(detail_json)})


class MembershipRepository:
    def __init__(self, model: type[MembershipItem], due_shards: int = DEFAULT_DUE_SHARDS) -> None:
        self._model = model
        self.due_shards = due_shards

    def _create(self, membership_id: str, now: datetime) -> None:
        m = self._model  # DynamoDB cannot set a key inside a map that does not exist yet
        update_if(m, membership_id, [m.events.set(m.events | {}), m.drafts.set(m.drafts | {}),
                                     m.created_at.set(m.created_at | now)], None)

    def record_event(self, membership_id: str, version: int, detail_type: str, event_id: str, detail_json: str,
                     now: datetime) -> bool:
        m = self._model
        self._create(membership_id, now)
        slot = m.events[str(version)]
        actions = [slot.set(_event_entry(detail_type, event_id, detail_json)), m.updated_at.set(now),
                   m.record_version.set((m.record_version | 0) + 1)]
        if update_if(m, membership_id, actions, slot.does_not_exist()) is not None:
            return True
        held = json.loads(_map(m.get(membership_id, consistent_read=True).events)[str(version)])
        if held["event_id"] != event_id:
            raise ConflictingMembershipEvent(f"membership_version {version} of {membership_id} is already event "
                                             f"{held['event_id']}, not {event_id}")
        return False

    def record_draft(self, membership_id: str, entry_id: str, draft: Draft, now: datetime) -> bool:
        m = self._model
        self._create(membership_id, now)
        slot = m.drafts[entry_id]
        actions = [slot.set(draft.model_dump_json()), m.updated_at.set(now),
                   m.record_version.set((m.record_version | 0) + 1)]
        return update_if(m, membership_id, actions, slot.does_not_exist()) is not None

    def read(self, membership_id: str) -> MembershipRecord | None:
        try:
            with transient_errors_named():
                item = self._model.get(membership_id, consistent_read=True)
        except self._model.DoesNotExist:
            return None
        return MembershipRecord(
            membership_id=membership_id, events=_events(_map(item.events)),
            drafts=tuple(Draft.model_validate_json(v) for _, v in sorted(_map(item.drafts).items())),
            membership=Membership.model_validate_json(item.state) if item.state else None,
            record_version=int(item.record_version or 0))

    def save(self, membership_id: str, read_version: int, membership: Membership, due: tuple[str, date] | None,
             now: datetime) -> bool:
        m = self._model
        actions = [m.state.set(membership.model_dump_json()), m.updated_at.set(now),
                   m.record_version.set(m.record_version + 1)]
        if due is None:
            actions += [m.due_shard.remove(), m.due_on.remove()]
        else:
            actions += [m.due_shard.set(due[0]), m.due_on.set(due[1].isoformat())]
        return update_if(m, membership_id, actions, m.record_version == read_version) is not None

    def due(self, shard: str, on_or_before: date) -> list[str]:
        with transient_errors_named():
            return [item.membership_id for item in self._model.by_due_day.query(
                shard, self._model.due_on <= on_or_before.isoformat())]


@dataclass
class InMemoryMemberships:
    """``MembershipStore`` in a dict, with the same version checks, for unit tests and the backtest."""

    items: dict[str, dict[str, object]] = field(default_factory=dict)
    due_shards: int = DEFAULT_DUE_SHARDS

    def _item(self, membership_id: str) -> dict[str, object]:
        return self.items.setdefault(membership_id, {"events": {}, "drafts": {}, "state": None, "version": 0,
                                                     "due": None})

    def record_event(self, membership_id: str, version: int, detail_type: str, event_id: str, detail_json: str,
                     now: datetime) -> bool:
        item = self._item(membership_id)
        events: dict[str, str] = item["events"]  # type: ignore[assignment]
        if str(version) in events:
            if json.loads(events[str(version)])["event_id"] != event_id:
                raise ConflictingMembershipEvent(f"membership_version {version} of {membership_id} is taken")
            return False
        events[str(version)] = _event_entry(detail_type, event_id, detail_json)
        item["version"] = int(item["version"]) + 1  # type: ignore[call-overload]
        return True

    def record_draft(self, membership_id: str, entry_id: str, draft: Draft, now: datetime) -> bool:
        item = self._item(membership_id)
        drafts: dict[str, str] = item["drafts"]  # type: ignore[assignment]
        if entry_id in drafts:
            return False
        drafts[entry_id] = draft.model_dump_json()
        item["version"] = int(item["version"]) + 1  # type: ignore[call-overload]
        return True

    def read(self, membership_id: str) -> MembershipRecord | None:
        item = self.items.get(membership_id)
        if item is None:
            return None
        state = item["state"]
        return MembershipRecord(
            membership_id=membership_id, events=_events(item["events"]),  # type: ignore[arg-type]
            drafts=tuple(Draft.model_validate_json(v) for _, v in sorted(item["drafts"].items())),  # type: ignore[attr-defined]
            membership=Membership.model_validate_json(state) if isinstance(state, str) else None,
            record_version=int(item["version"]))  # type: ignore[call-overload]

    def save(self, membership_id: str, read_version: int, membership: Membership, due: tuple[str, date] | None,
             now: datetime) -> bool:
        item = self._item(membership_id)
        if item["version"] != read_version:
            return False
        item.update(state=membership.model_dump_json(), version=read_version + 1, due=due)
        return True

    def due(self, shard: str, on_or_before: date) -> list[str]:
        found = [(d[1], key) for key, item in self.items.items()
                 if (d := item["due"]) is not None and d[0] == shard and d[1] <= on_or_before]  # type: ignore[index]
        return [key for _, key in sorted(found)]
