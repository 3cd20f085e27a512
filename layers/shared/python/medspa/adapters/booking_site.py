"""Events back to the booking site, on the same EventBridge bus it publishes to.

The booking site subscribes with a rule on ``source`` = ``medspa.lifecycle``; the intake's rule only
matches ``booking-site*``, so nothing the system says comes back to it. Each event id is derived from
what it reports, so a Step Functions retry that publishes twice gives the booking site the same
``event_id`` to deduplicate on (EventBridge itself has no deduplication).
"""

from __future__ import annotations

import json
from typing import Any, Protocol

SOURCE = "medspa.lifecycle"


class BookingSiteEvents(Protocol):
    def publish(self, detail_type: str, event_id: str, detail: dict[str, Any]) -> None: ...


class EventBridgeBookingSite:
    def __init__(self, events_client: Any, bus_name: str) -> None:
        self._events = events_client
        self._bus = bus_name

    def publish(self, detail_type: str, event_id: str, detail: dict[str, Any]) -> None:
        entry = {"Source": SOURCE, "DetailType": detail_type, "EventBusName": self._bus,
                 "Detail": json.dumps({"event_id": event_id, **detail}, sort_keys=True, default=str)}
        failed = self._events.put_events(Entries=[entry])
        if failed.get("FailedEntryCount"):
            raise BookingSiteUnavailable(f"{detail_type} {event_id}: {failed['Entries'][0].get('ErrorCode')}")


class BookingSiteUnavailable(Exception):
    """PutEvents refused the entry; the state machine retries the step (the event id is the same)."""
