"""Events back to the booking site, on the same EventBridge bus it publishes to.

The booking site subscribes with a rule on ``source`` = ``medspa.lifecycle``; the intake's rule only
matches ``booking-site*``, so nothing the system says comes back to it. Each event id is derived from
what it reports, so a Step Functions retry that publishes twice gives the booking site the same
``event_id`` to deduplicate on (EventBridge itself has no deduplication).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from medspa.ports.booking_site import BookingSiteEvents, BookingSiteUnavailable

SOURCE = "medspa.lifecycle"
__all__ = ["SOURCE", "BookingSiteEvents", "BookingSiteUnavailable", "EventBridgeBookingSite", "InMemoryBookingSite"]


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


@dataclass
class InMemoryBookingSite:
    """The booking site's side of the bus, in memory: each detail as the site would read it (through JSON, as
    EventBridge carries it), for tests and backtests. ``fail_next`` refusals come first, as PutEvents may."""

    received: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    fail_next: int = 0

    def publish(self, detail_type: str, event_id: str, detail: dict[str, Any]) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise BookingSiteUnavailable(f"{detail_type} {event_id}: InternalFailure")
        self.received.append((detail_type, event_id, json.loads(json.dumps(detail, sort_keys=True, default=str))))

    def of(self, detail_type: str) -> list[tuple[str, dict[str, Any]]]:
        return [(event_id, detail) for kind, event_id, detail in self.received if kind == detail_type]
