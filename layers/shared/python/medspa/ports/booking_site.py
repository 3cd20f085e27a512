"""Telling the booking site what the system did, each event with an id derived from what it reports."""

from __future__ import annotations

from typing import Any, Protocol


class BookingSiteEvents(Protocol):
    def publish(self, detail_type: str, event_id: str, detail: dict[str, Any]) -> None: ...


class BookingSiteUnavailable(Exception):
    """PutEvents refused the entry; the state machine retries the step (the event id is the same)."""
