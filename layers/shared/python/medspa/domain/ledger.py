"""Ledger entries: one per intended money movement, with an id derived from what it is for.

Plain values and the rules for naming an entry; the store (``medspa.adapters.store.ledger``) writes them
before Stripe is called and records their outcome.
"""

from __future__ import annotations

import hashlib
import re
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from medspa.money import Money


class EntryKind(StrEnum):
    CHARGE = "charge"
    REFUND = "refund"
    CREDIT = "credit"
    DEDUCTION = "deduction"
    FORFEIT = "forfeit"
    OUTSTANDING = "outstanding"
    PAID_AT_DESK = "paid_at_desk"  # money the client handed over at the spa: recorded here, never sent to Stripe
    EXPIRY = "expiry"  # prepaid value forfeited by the calendar (a course's sessions): no money moves
    DISPUTE = "dispute"  # a chargeback the client's bank opened: Stripe withdrew the amount while it runs


class EntryStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    REQUIRES_ACTION = "requires_action"
    FAILED = "failed"


class Purpose(StrEnum):
    """Common purposes; any lower_snake_case word is accepted so new policies need no schema change."""

    NO_SHOW_FEE = "no_show_fee"
    LATE_CANCEL_FEE = "late_cancel_fee"
    LATE_ARRIVAL_FEE = "late_arrival_fee"
    PREPAYMENT = "prepayment"
    REFUND = "refund"
    CREDIT = "credit"
    FORFEIT = "forfeit"
    SESSION_DEDUCTION = "session_deduction"


_PURPOSE = re.compile(r"^[a-z][a-z0-9_]*$")
_REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def ledger_entry_id(appointment_id: str, purpose: str, attempt: int = 1) -> str:
    """Readable and injective: purpose and attempt contain no '#', so the id splits back from the right.

    A new attempt (e.g. charging again after a decline) must get a new id, hence a new Stripe key:
    Stripe would otherwise replay the cached decline.
    """
    if not appointment_id:
        raise ValueError("appointment_id is required")
    if not _PURPOSE.match(purpose):
        raise ValueError(f"purpose {purpose!r} must be lower_snake_case")
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise ValueError(f"attempt must be a positive int, got {attempt!r}")
    return f"{appointment_id}#{purpose}#{attempt}"


def account_entry_id(client_id: str, purpose: str, reference: str) -> str:
    """An entry named by a payment's own reference, so the same payment reported again finds the same entry:
    on the client's account when no visit owns it (a balance paid at the desk; the client key stands where
    the appointment would), or on a visit for what Stripe did outside the system (a dashboard refund, a
    dispute, by Stripe's id). The reference has no '#', so the id still splits from the right; the purposes
    used here are never an attempt's, so it cannot meet an entry ``ledger_entry_id`` names."""
    if not client_id:
        raise ValueError("client_id is required")
    if not _PURPOSE.match(purpose):
        raise ValueError(f"purpose {purpose!r} must be lower_snake_case")
    if not _REFERENCE.match(reference):
        raise ValueError("a payment reference is 1-64 letters, digits, '.', '_' or '-'")
    return f"{client_id}#{purpose}#{reference}"


STRIPE_KEY_PREFIX = "medspa-ledger-"


def stripe_idempotency_key(entry_id: str) -> str:
    """A hash, so Stripe sees neither appointment ids nor purposes, and the key length is bounded."""
    return STRIPE_KEY_PREFIX + hashlib.sha256(entry_id.encode()).hexdigest()


class LedgerEntry(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    entry_id: str
    appointment_id: str
    client_id: str
    purpose: str
    attempt: int
    kind: EntryKind
    amount: Money
    status: EntryStatus
    stripe_idempotency_key: str
    stripe_payment_intent_id: str | None
    stripe_refund_id: str | None
    decline_code: str | None
    failure_message: str | None
    created_at: AwareDatetime
    updated_at: AwareDatetime
    settles: Money | None = Field(None, description="Of a payment taken at the desk: the part that pays what the "
                                  "client owed, decided when the entry was written; the rest is store credit")
