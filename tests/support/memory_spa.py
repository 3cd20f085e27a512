"""The spa's system in one process on the in-memory adapters: what a service unit test drives.

The real services (intake, lifecycle, fee steps, settlement, card checks) run on ``InMemoryStore``,
``InMemoryExecutions``, ``InMemoryBookingSite``, ``InMemoryMessenger`` and ``InMemoryPayments``; the
lifecycle loop is taken the way the state machine takes it (plan, wait until the step is due, act, plan
again), under a time the test passes in. No moto, no Stripe, no sleeping: a visit's whole life runs in
milliseconds. ``tests/integration/test_store_contracts.py`` keeps the in-memory store honest.
"""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta
from typing import Any

from medspa.adapters.booking_site import InMemoryBookingSite
from medspa.adapters.executions import InMemoryExecutions
from medspa.adapters.memory_payments import InMemoryPayments
from medspa.adapters.messaging import InMemoryMessenger
from medspa.adapters.store.memory import InMemoryStore
from medspa.domain.booking import Appointment
from medspa.domain.keys import appointment_key
from medspa.events import DETAIL_MODELS
from medspa.messages.templates import load_templates
from medspa.policy.tenants import load_tenants
from medspa.ports.store import Stores
from medspa.services.card_check import CardChecks
from medspa.services.fees import FeeSteps
from medspa.services.ingest import IngestOutcome, IngestService
from medspa.services.lifecycle import LifecycleService, StepRequest, StepResult
from medspa.services.notifications import NotificationService
from medspa.services.settlement import SettlementService
from medspa.services.unsubscribe import EmailUnsubscribe
from tests.support.packs import PACKS


class MemorySpa:
    """Every spa of the bundled packs, on in-memory adapters. ``now`` only moves forward."""

    def __init__(self, now: datetime, store: Stores | None = None) -> None:
        """``store`` replaces the in-memory store (with the pynamodb one on moto, to compare the two)."""
        self.now = now
        self.store: Any = store if store is not None else InMemoryStore()
        self.runs = InMemoryExecutions()
        self.site = InMemoryBookingSite()
        self.messenger = InMemoryMessenger()
        self.payments = InMemoryPayments()
        links = EmailUnsubscribe(self.store.consent, lambda: b"k" * 32, "https://api.example.com/unsubscribe",
                                 {p.spa.id: p.spa.name for p in PACKS.values()})
        notifications = NotificationService(self.messenger, load_templates(), PACKS, consent=self.store.consent,
                                            unsubscribe=links)
        self.lifecycle = LifecycleService(self.store, PACKS, notifications, self.site, self.runs)
        self.settlement = SettlementService(self.store, self.payments, PACKS)
        self.fees = FeeSteps(self.store, self.settlement, self.lifecycle)
        self.cards = CardChecks(self.store, self.payments, PACKS, self.lifecycle)
        self.intake = IngestService(self.store, self.runs, PACKS, load_tenants(PACKS), booking_site=self.site)
        self._event_ids = itertools.count(1)
        self.steps: list[tuple[datetime, str, str]] = []

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

    def deliver(self, event: Any, *, source: str = "booking-site") -> IngestOutcome:
        """Hand an event already built to the intake (a redelivery, or one delivered out of order)."""
        return self.intake.ingest(event, source, self.now)

    # ------------------------------------------------------------------------------ the state machine

    def request(self, appointment_id: str) -> StepRequest:
        stored = self.appointment(appointment_id)
        return StepRequest(appointment_id=appointment_id, booking_version=stored.booking_version,
                           revision=stored.revision)

    def take(self, run: StepRequest, action: str, reason: str | None = None, key: str | None = None,
             attempt: int | None = None) -> StepResult | Any:
        """One step, routed as the state machine routes it: fees and the card check to the settlement function."""
        if action == "settle_fee":
            return self.fees.settle(run.appointment_id, reason or "", self.now)
        if action == "retry_fee":
            return self.fees.retry(run.appointment_id, reason or "", attempt or 2, self.now)
        if action == "check_card":
            return self.cards.check(run.appointment_id, run.booking_version, run.revision, self.now)
        return self.lifecycle.act(run.model_copy(update={"action": action, "key": key, "reason": reason,
                                                         "attempt": attempt}), self.now)

    def run_until(self, appointment_id: str, until: datetime) -> None:
        """Take every step due by ``until``, each at its own time, as the execution's Wait states would."""
        for _ in range(300):
            if self.store.appointments.get(appointment_id) is None:
                return
            run = self.request(appointment_id)
            step = self.lifecycle.plan(run, self.now).next
            if step is None or step.at > until:
                self.now = max(self.now, until)
                return
            self.now = max(self.now, step.at)
            self.take(run, step.action, step.reason, step.key, step.attempt)
            self.steps.append((self.now, step.action, step.key or step.reason or ""))
        raise AssertionError(f"{appointment_id}: the lifecycle kept planning steps that changed nothing")

    # ------------------------------------------------------------------------------ reading back

    def appointment(self, appointment_id: str) -> Appointment:
        stored = self.store.appointments.get(appointment_id)
        assert stored is not None, appointment_id
        return stored

    def published(self, detail_type: str) -> list[dict[str, Any]]:
        return [detail for kind, _, detail in self.site.received if kind == detail_type]

    def advance(self, by: timedelta) -> None:
        self.now += by
