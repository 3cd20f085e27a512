"""Stand-ins for the two AWS calls the services make outside the store, for tests that drive services in-process."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from medspa.adapters.executions import StartedExecution


@dataclass
class NoStepFunctions:
    """The intake starts and stops executions; here the test takes the lifecycle's steps itself."""

    def start(self, appointment_id: str, booking_version: int, revision: int = 0, name: str | None = None,
              continuation: int = 0) -> StartedExecution:
        return StartedExecution(name or appointment_id, f"arn:local:{name}", already_running=False)

    def stop(self, execution_arn: str, *, error: str, cause: str) -> bool:
        return True


@dataclass
class BookingSiteInbox:
    """What the booking site is told, as it would read it: each detail through JSON, as EventBridge carries it."""

    received: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def publish(self, detail_type: str, event_id: str, detail: dict[str, Any]) -> None:
        self.received.append((detail_type, event_id, json.loads(json.dumps(detail, default=str))))

    def of(self, detail_type: str) -> list[tuple[str, dict[str, Any]]]:
        return [(event_id, detail) for kind, event_id, detail in self.received if kind == detail_type]
