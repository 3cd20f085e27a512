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

from datetime import datetime, timedelta
from functools import cache
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict
from pynamodb.attributes import JSONAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from medspa.domain.keys import spa_of

from .errors import transient_errors_named
from .models import UtcTime, put_if, utc_iso

KEPT_FOR = timedelta(days=3 * 365)
Action = Literal["export", "correct", "erase"]
Via = Literal["bus", "cli"]


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


class PrivacyRequestRecord(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    spa_id: str
    client_id: str
    action: Action
    request_id: str
    requested_by: str
    via: Via
    at: AwareDatetime
    outcome: str
    detail: dict[str, Any] = {}


@cache
def bind_audit(table_name: str, region: str, endpoint_url: str | None = None) -> type[PrivacyAuditRecord]:
    meta = {"table_name": table_name, "region": region, "host": endpoint_url}
    return type(f"PrivacyAuditRecord[{table_name}]", (PrivacyAuditRecord,),
                {"Meta": type("Meta", (), meta), "__module__": __name__})


class PrivacyAudit:
    def __init__(self, model: type[PrivacyAuditRecord]) -> None:
        self._model = model

    @classmethod
    def bound(cls, table_name: str, region: str, endpoint_url: str | None = None) -> PrivacyAudit:
        return cls(bind_audit(table_name, region, endpoint_url))

    def record(self, entry: PrivacyRequestRecord) -> None:
        if spa_of(entry.client_id) != entry.spa_id:
            raise ValueError("the client key must belong to the spa it is recorded under")
        item = self._model(
            entry.spa_id, f"{utc_iso(entry.at)}#{entry.action}#{entry.request_id}", at=entry.at,
            action=entry.action, client_id=entry.client_id, request_id=entry.request_id,
            requested_by=entry.requested_by, via=entry.via, outcome=entry.outcome, detail=entry.detail,
            expires_at=entry.at + KEPT_FOR)
        with transient_errors_named():
            if not put_if(item, self._model.entry.does_not_exist()):
                raise ValueError("an audit record is never overwritten; this one exists already")

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
