"""What serving a privacy request needs beyond the store: the audit of requests served, Stripe, runs, the exports.

``medspa.services.privacy`` is written against these; the AWS and Stripe adapters (``medspa.adapters.store.audit``,
``medspa.adapters.privacy``, ``medspa.adapters.executions``) implement them, and so does an in-memory audit for
tests, held to the same contract as the DynamoDB one by ``tests/integration/test_store_contracts.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict

Action = Literal["export", "correct", "erase"]
Via = Literal["bus", "cli"]


class PrivacyRequestRecord(BaseModel):
    """One request served. The client is named by the booking site's pseudonymous key and the outcome by counts
    and field names, never a value, because the record outlives the data it is about."""

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


class PrivacyAudit(Protocol):
    """Append-only: a record is never overwritten, and a request served twice is recorded twice."""

    def record(self, entry: PrivacyRequestRecord) -> None:
        """``ValueError`` for a client key not of ``entry.spa_id``, or for a record already written under the same
        time, action and request."""
        ...

    def for_client(self, client_id: str) -> list[PrivacyRequestRecord]:
        """The client's requests, oldest first."""
        ...

    def for_spa(self, spa_id: str, since: datetime | None = None) -> list[PrivacyRequestRecord]:
        """The spa's requests, oldest first, from ``since`` on."""
        ...


class CustomerDeletion(Protocol):
    def delete_customer(self, customer_id: str) -> bool: ...


class RunStopper(Protocol):
    def stop_if_running(self, execution_arn: str, *, error: str, cause: str) -> bool: ...


class ExportShelf(Protocol):
    """Where an export asked for on the bus waits for the spa's admin to fetch it."""

    bucket: str
    kept_for: timedelta

    def put(self, key: str, document: Mapping[str, Any]) -> None: ...

    def remove_under(self, prefix: str) -> int: ...


__all__ = ["Action", "CustomerDeletion", "ExportShelf", "PrivacyAudit", "PrivacyRequestRecord", "RunStopper", "Via"]
