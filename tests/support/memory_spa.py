"""The spa's system in one process on the in-memory adapters: what a service unit test drives.

The engine is the backtest's own (``localcloud.backtest.InProcessSpa``): the real services on the in-memory
adapters, the lifecycle loop taken as the state machine takes it (plan, wait until the step is due, act, plan
again), under a time the test passes in. So a unit test and a backtest cannot drift apart in how they drive a
visit. This module adds only what a test says in its own words: build an event, send it at a time, read an
appointment back. ``tests/integration/test_store_contracts.py`` keeps the in-memory store honest.
"""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta
from typing import Any

from localcloud.backtest import InProcessSpa
from medspa.domain.booking import Appointment
from medspa.domain.keys import appointment_key
from medspa.events import DETAIL_MODELS
from medspa.ports.store import Stores
from medspa.services.ingest import IngestOutcome
from tests.support.packs import PACKS


class MemorySpa(InProcessSpa):
    """Every spa of the bundled packs, on in-memory adapters. ``now`` only moves forward."""

    def __init__(self, now: datetime, store: Stores | None = None) -> None:
        """``store`` replaces the in-memory store (with the pynamodb one on moto, to compare the two)."""
        super().__init__(now, PACKS, store)
        self._event_ids = itertools.count(1)

    # ------------------------------------------------------------------------------ the booking site

    def event(self, detail_type: str, occurred_at: datetime, **detail: Any) -> Any:
        return DETAIL_MODELS[detail_type].model_validate_json(json.dumps({
            "event_id": f"evt-{next(self._event_ids)}", "occurred_at": occurred_at.isoformat(), **detail}))

    def send(self, detail_type: str, at: datetime, *, source: str = "booking-site", **detail: Any) -> IngestOutcome:
        """The booking site sends an event at ``at``; first every lifecycle step due before then is taken."""
        if "appointment_id" in detail:
            self.run_until(appointment_key(detail["spa_id"], detail["appointment_id"]), at)
        self.now = max(self.now, at)
        return self.deliver(self.event(detail_type, at, **detail), source=source)

    # ------------------------------------------------------------------------------ reading back

    def appointment(self, appointment_id: str) -> Appointment:
        stored = self.store.appointments.get(appointment_id)
        assert stored is not None, appointment_id
        return stored

    def published(self, detail_type: str) -> list[dict[str, Any]]:
        return [detail for kind, _, detail in self.site.received if kind == detail_type]

    def advance(self, by: timedelta) -> None:
        self.now += by
