"""Cards that will fail: a few days before a visit with a fee at stake, make sure the card on file will take it.

Automatic fees mostly bounce off cards that expired or were removed after the booking, and by then the
client is gone. So the lifecycle plans a check (``engine.card_check_time``: the pack's ``[card_check]``,
only for a visit whose fee would reach the card), and this step, in the settlement function because it
alone holds the Stripe key, asks Stripe (``Payments.check_card``). A card that will not do gets the
client a ``card_update_requested`` notice and the booking site a ``CardUpdateRequested`` event, so the
client can update it (the booking site then sends ``CardUpdated``, which needs nothing more from here:
the next charge reads the client's current card).

Once per visit time, whatever fails:

* the Stripe idempotency key is derived from the visit (appointment and start time) and the card, so a
  Step Functions retry confirms the same SetupIntent instead of making a second; its metadata carries only
  an opaque hash, the spa and the location, nothing about the visit or the person;
* the notice is queued under ``card_update_requested@<visit>`` (queuing twice keeps the first) and the
  event id is the appointment and that key, so a retry tells nobody twice;
* the outcome is recorded on the appointment last; until it is, the plan asks again, so a crash in between
  repeats only keyed work. A reschedule to another time earns a new check.

A check that cannot reach Stripe (``PaymentProviderUnavailable``) is retried by the state machine for a few
hours, then given up (``LifecycleService`` records it ``not_checked``): a check is advice and must never
hold up the visit's reminders, attendance decision or fee.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime

from medspa.domain.booking import Appointment, CardCheck
from medspa.ports.store import AppointmentNotFound, Stores
from medspa.domain.keys import spa_of
from medspa.domain.wallclock import local_date
from medspa.policy.loader import PolicyPacks
from medspa.policy.schema import PolicyPack
from medspa.ports import CardCheckResult, Payments
from medspa.services.lifecycle import CARD_CHECK, LifecycleService, StepResult, message_key

NOTICE = "card_update_requested"
EVENT = "CardUpdateRequested"


def check_ref(appointment_id: str, starts_at: datetime, payment_method_id: str) -> str:
    """The opaque id of one check: Stripe sees a hash, never the appointment or the card it came from.
    The card is part of it, so a check retried after a ``CardUpdated`` is a new request, not a reuse of
    the old key with other parameters (which Stripe refuses)."""
    return hashlib.sha256(f"{appointment_id}#{message_key(CARD_CHECK, starts_at)}#{payment_method_id}".encode()
                          ).hexdigest()


class CardChecks:
    def __init__(self, store: Stores, payments: Payments, packs: Mapping[str, PolicyPack],
                 lifecycle: LifecycleService) -> None:
        self._store = store
        self._payments = payments
        self._packs = PolicyPacks.of(packs)
        self._lifecycle = lifecycle

    def check(self, appointment_id: str, booking_version: int, revision: int, now: datetime) -> StepResult:
        stored = self._store.appointments.get(appointment_id)
        if stored is None:
            raise AppointmentNotFound(appointment_id)
        if stored.run_identity != (booking_version, revision):
            return StepResult(done="superseded: a newer booking revision has its own execution")
        if self._lifecycle.card_check_due(stored) is None:
            return StepResult(done="no card check due")
        if now >= stored.starts_at:
            return self._record(stored, "not_checked", now, code="visit_began")
        client = self._store.clients.get(stored.client_id)
        if client is not None and client.erased:
            return self._record(stored, "not_checked", now, code="client_erased")
        customer = client.stripe_customer_id if client is not None else None
        card = client.default_payment_method_id if client is not None else None
        pack = self._packs.for_visit(stored)
        ref = check_ref(stored.appointment_id, stored.starts_at, card or "")
        result = self._payments.check_card(
            customer, card, local_date(stored.starts_at, pack.zone), idempotency_key=f"medspa-card-check-{ref}",
            metadata={"check_ref": ref, "spa_id": spa_of(stored.appointment_id), "location_id": stored.location_id})
        if not result.usable:
            self._ask_for_a_new_card(stored, result, now)
        return self._record(stored, result.status.value, now, code=result.decline_code or result.code)

    def _ask_for_a_new_card(self, stored: Appointment, result: CardCheckResult, now: datetime) -> None:
        notice = message_key(NOTICE, stored.starts_at)
        self._lifecycle.notify_later(stored, NOTICE, now, key=notice)
        self._lifecycle.publish(EVENT, f"{stored.appointment_id}:{notice}", {
            **stored.booking_site_ids, "reason": result.status.value, "starts_at": stored.starts_at.isoformat()})

    def _record(self, stored: Appointment, outcome: str, now: datetime, code: str | None = None) -> StepResult:
        self._store.appointments.record_card_check(stored.appointment_id, CardCheck(
            starts_at=stored.starts_at, outcome=outcome, checked_at=now, code=code))
        told = outcome not in ("usable", "not_checked")
        done = {"usable": "card on file checked: it will take the fee",
                "not_checked": f"card on file not checked ({code})"}.get(
            outcome, f"card on file {outcome.replace('_', ' ')}: the client and the booking site were asked to update it")
        return StepResult(done=done, detail={"outcome": outcome, "code": code,
                                             "notice": message_key(NOTICE, stored.starts_at) if told else None})
