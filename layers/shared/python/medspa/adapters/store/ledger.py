"""The money ledger: append-only, one entry per intended money movement, written before Stripe is called.

The entry id is derived from what the movement is for (appointment, purpose, attempt), so a retried
Lambda, a re-run after a Powertools idempotency expiry or a replayed event finds the same entry
instead of writing a second one; the Stripe idempotency key derives from the entry id, and the
outcome is recorded on the same entry. Stripe forgets keys after ~24h; this ledger does not.
"""

from __future__ import annotations

from datetime import datetime


from medspa.domain.ledger import (STRIPE_KEY_PREFIX, EntryKind, EntryStatus, LedgerEntry, ledger_entry_id,
                                 stripe_idempotency_key)
from medspa.money import Money
from medspa.ports.store import LEDGER_OUTCOMES

from .errors import LedgerConflict, LedgerEntryNotFound
from .models import LedgerRecord, put_if, update_if


_MAY_FOLLOW = LEDGER_OUTCOMES  # which outcome may follow which: the port's rule, kept by both ledgers


def _to_entry(record: LedgerRecord) -> LedgerEntry:
    return LedgerEntry(
        entry_id=record.entry_id,
        appointment_id=record.appointment_id,
        client_id=record.client_id,
        purpose=record.purpose,
        attempt=record.attempt,
        kind=EntryKind(record.kind),
        amount=Money(amount=record.amount, currency=record.currency),
        status=EntryStatus(record.status),
        stripe_idempotency_key=record.stripe_idempotency_key,
        stripe_payment_intent_id=record.stripe_payment_intent_id,
        stripe_refund_id=record.stripe_refund_id,
        decline_code=record.decline_code,
        failure_message=record.failure_message,
        created_at=record.created_at,
        updated_at=record.updated_at,
        settles=Money(amount=int(record.settles), currency=record.currency) if record.settles is not None else None,
    )


class LedgerRepository:
    def __init__(self, model: type[LedgerRecord]) -> None:
        self._model = model

    def get(self, entry_id: str) -> LedgerEntry | None:
        try:
            return _to_entry(self._model.get(entry_id, consistent_read=True))
        except self._model.DoesNotExist:
            return None

    def record_intent(
        self,
        *,
        appointment_id: str,
        client_id: str,
        purpose: str,
        kind: EntryKind,
        amount: Money,
        now: datetime,
        attempt: int = 1,
        entry_id: str | None = None,
        settles: Money | None = None,
    ) -> LedgerEntry:
        """Write the pending entry, or return the one already there (whose amount then stands).

        ``entry_id`` is for an entry no visit owns (:func:`account_entry_id`); otherwise the id is derived
        from the appointment, purpose and attempt. ``settles`` (a desk payment's split) is written with the
        entry in the same conditional put, so the first writer's split stands like its amount."""
        if amount.amount <= 0:
            raise ValueError(f"a ledger amount must be positive (the kind carries the direction), got {amount}")
        if settles is not None and (settles.currency != amount.currency or not 0 <= settles.amount <= amount.amount):
            raise ValueError(f"the part settled ({settles}) must lie between nothing and the amount ({amount})")
        entry_id = entry_id or ledger_entry_id(appointment_id, purpose, attempt)
        m = self._model
        record = m(
            entry_id,
            appointment_id=appointment_id,
            client_id=client_id,
            purpose=purpose,
            attempt=attempt,
            kind=EntryKind(kind).value,
            amount=amount.amount,
            currency=amount.currency,
            status=EntryStatus.PENDING.value,
            stripe_idempotency_key=stripe_idempotency_key(entry_id),
            created_at=now,
            updated_at=now,
            settles=settles.amount if settles is not None else None,
        )
        if put_if(record, m.entry_id.does_not_exist()):
            return _to_entry(record)
        existing = self.get(entry_id)
        if existing is None:
            raise LedgerEntryNotFound(entry_id)
        return existing

    def record_outcome(
        self,
        entry_id: str,
        status: EntryStatus,
        now: datetime,
        *,
        stripe_payment_intent_id: str | None = None,
        stripe_refund_id: str | None = None,
        decline_code: str | None = None,
        failure_message: str | None = None,
        keep_time: bool = False,
    ) -> LedgerEntry:
        """Move an entry forward once; repeating the same outcome (a redelivered webhook) is a no-op.

        ``keep_time`` leaves ``updated_at`` at the first outcome's time: a charge that waited for the client
        and was then cancelled or failed keeps the time it first failed, which dunning counts its days from."""
        status = EntryStatus(status)
        if status not in _MAY_FOLLOW:
            raise ValueError(f"{status} is not an outcome")
        m = self._model
        actions = [m.status.set(status.value)] + ([] if keep_time else [m.updated_at.set(now)])
        for attribute, value in (
            (m.stripe_payment_intent_id, stripe_payment_intent_id),
            (m.stripe_refund_id, stripe_refund_id),
            (m.decline_code, decline_code),
            (m.failure_message, failure_message),
        ):
            if value is not None:
                actions.append(attribute.set(value))
        allowed = m.status.is_in(*(s.value for s in _MAY_FOLLOW[status]))
        record = update_if(m, entry_id, actions, allowed)
        if record is not None:
            return _to_entry(record)
        current = self.get(entry_id)
        if current is None:
            raise LedgerEntryNotFound(entry_id)
        if current.status is status:
            return current
        raise LedgerConflict(f"ledger entry {entry_id} is {current.status}; it cannot become {status}")

    def for_appointment(self, appointment_id: str) -> list[LedgerEntry]:
        return [_to_entry(r) for r in self._model.by_appointment.query(appointment_id)]

    def for_stripe_ref(self, ledger_ref: str) -> LedgerEntry | None:
        """The entry a PaymentIntent or Refund was made for, by the ``ledger_ref`` it carries in metadata."""
        for key in self._model.by_stripe_key.query(f"{STRIPE_KEY_PREFIX}{ledger_ref}", limit=1):
            return self.get(key.entry_id)
        return None

    def for_client(self, client_id: str) -> list[LedgerEntry]:
        return [_to_entry(r) for r in self._model.by_client.query(client_id)]
