"""The record of privacy requests served: who asked, when, what for which client, and what came of it.

A regulator or the spa asks "what did you do with this person's request, and when?" long after the
person's data is gone, so the record must outlive the data and hold none of it: the client is named
only by the booking site's pseudonymous key, the admin by their staff id, the outcome by counts and
field names (``["phone"]``), never a value. It lives in a table of its own (``PrivacyAuditTable``)
that only the privacy function may write to, and only with ``PutItem`` under a condition that the item
is new: it is append-only by IAM as well as by code. A redelivered request is served again and
recorded again; the record says what happened, twice if it happened twice.

Items expire (the table's TTL) after :data:`KEPT_FOR`: the California regulations ask for 24 months of
request records (11 CCR 7101); a year more covers an audit that starts late.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache

from pynamodb.attributes import JSONAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from medspa.domain.keys import spa_of
from medspa.ports.privacy import PrivacyRequestRecord

from .errors import transient_errors_named
from .models import UtcTime, put_if, utc_iso

KEPT_FOR = timedelta(days=3 * 365)
_EXISTS = "an audit record is never overwritten; this one exists already"


class AuditByClient(GlobalSecondaryIndex):
    class Meta:
        index_name = "by_client"
        projection = AllProjection()

    client_id = UnicodeAttribute(hash_key=True)
    at = UtcTime(range_key=True)


class PrivacyAuditRecord(Model):
    spa_id = UnicodeAttribute(hash_key=True)
    # "<at>#<action>#<request_id>": in time order within a spa, and never the same twice.
    entry = UnicodeAttribute(range_key=True)
    at = UtcTime()
    action = UnicodeAttribute()
    client_id = UnicodeAttribute()
    request_id = UnicodeAttribute()
    requested_by = UnicodeAttribute()
    via = UnicodeAttribute()
    outcome = UnicodeAttribute()
    # Counts, field names, where an export was put: no personal values (PrivacyRequestRecord checks).
    detail = JSONAttribute(null=True)
    expires_at = TTLAttribute(null=True)

    by_client = AuditByClient()


@cache
def bind_audit(table_name: str, region: str, endpoint_url: str | None = None) -> type[PrivacyAuditRecord]:
    meta = {"table_name": table_name, "region": region, "host": endpoint_url}
    return type(f"PrivacyAuditRecord[{table_name}]", (PrivacyAuditRecord,),
                {"Meta": type("Meta", (), meta), "__module__": __name__})


def _entry(record: PrivacyRequestRecord) -> str:
    return f"{utc_iso(record.at)}#{record.action}#{record.request_id}"


def _of_its_spa(record: PrivacyRequestRecord) -> None:
    if spa_of(record.client_id) != record.spa_id:
        raise ValueError("the client key must belong to the spa it is recorded under")


class PrivacyAuditRepository:
    def __init__(self, model: type[PrivacyAuditRecord]) -> None:
        self._model = model

    @classmethod
    def bound(cls, table_name: str, region: str, endpoint_url: str | None = None) -> PrivacyAuditRepository:
        return cls(bind_audit(table_name, region, endpoint_url))

    def record(self, entry: PrivacyRequestRecord) -> None:
        _of_its_spa(entry)
        item = self._model(
            entry.spa_id, _entry(entry), at=entry.at,
            action=entry.action, client_id=entry.client_id, request_id=entry.request_id,
            requested_by=entry.requested_by, via=entry.via, outcome=entry.outcome, detail=entry.detail,
            expires_at=entry.at + KEPT_FOR)
        with transient_errors_named():
            if not put_if(item, self._model.entry.does_not_exist()):
                raise ValueError(_EXISTS)

    def for_client(self, client_id: str) -> list[PrivacyRequestRecord]:
        with transient_errors_named():
            return [self._to_record(r) for r in self._model.by_client.query(client_id)]

    def for_spa(self, spa_id: str, since: datetime | None = None) -> list[PrivacyRequestRecord]:
        condition = self._model.entry >= utc_iso(since) if since else None
        with transient_errors_named():
            return [self._to_record(r) for r in self._model.query(spa_id, range_key_condition=condition)]

    @staticmethod
    def _to_record(r: PrivacyAuditRecord) -> PrivacyRequestRecord:
        return PrivacyRequestRecord.model_validate({
            "spa_id": r.spa_id, "client_id": r.client_id, "action": r.action, "request_id": r.request_id,
            "requested_by": r.requested_by, "via": r.via, "at": r.at, "outcome": r.outcome, "detail": r.detail or {}})


@dataclass
class InMemoryPrivacyAudit:
    """A :class:`medspa.ports.privacy.PrivacyAudit` in a dict, for tests; the store's contract test runs it and the
    table against the same cases. A record comes back as the table gives it: through JSON, its time in UTC."""

    records: dict[tuple[str, str], PrivacyRequestRecord] = field(default_factory=dict)

    def record(self, entry: PrivacyRequestRecord) -> None:
        _of_its_spa(entry)
        key = (entry.spa_id, _entry(entry))
        if key in self.records:
            raise ValueError(_EXISTS)
        kept = PrivacyRequestRecord.model_validate_json(entry.model_dump_json())
        self.records[key] = kept.model_copy(update={"at": kept.at.astimezone(UTC)})

    def for_client(self, client_id: str) -> list[PrivacyRequestRecord]:
        return [r for _, r in sorted(self.records.items(), key=lambda kv: (kv[1].at, kv[0]))
                if r.client_id == client_id]

    def for_spa(self, spa_id: str, since: datetime | None = None) -> list[PrivacyRequestRecord]:
        start = utc_iso(since) if since else ""
        return [r for (spa, entry), r in sorted(self.records.items()) if spa == spa_id and entry >= start]
