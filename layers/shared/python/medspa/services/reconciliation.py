"""What Stripe decides after a step has recorded its outcome, brought into the ledger from Stripe's webhooks.

A fee's charge can change after the settlement step is over: a client asked to authenticate (3-D Secure) does so
and the charge succeeds, or fails; staff refund a charge in the Stripe dashboard; the client's bank opens a
dispute. Stripe tells the system by webhook (``functions/stripe_webhook``), and this service applies each one.
A membership draft paid late is the ledger's here; the membership hears it from a drafts run this starts. A visit's
fee paid late is the ledger's and the balance's here too; the appointment, the booking site (told the fee was
outstanding, its desk would collect it again) and the client hear it from a FeePaidLater run this starts, even
after the last dunning attempt, when no run of the visit is left to tell them.

Why the webhook's body is only a pointer: Stripe delivers events late, more than once and in any order, so the
event names the PaymentIntent (or dispute) and the service reads it afresh from Stripe. Whatever order the events
come in, the ledger converges on what Stripe holds now, and a redelivery finds nothing left to do.

Which entry an intent belongs to is the ``ledger_ref`` it carries (the hash inside the entry's idempotency key),
and the intent's ``spa_id`` must be the entry's spa: an event acts only on its own spa's records. An intent
this system did not make (another integration on the same Stripe account) is left alone.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from medspa.domain.ledger import EntryKind, EntryStatus, LedgerEntry, account_entry_id
from medspa.ports.store import Stores
from medspa.domain.keys import spa_of
from medspa.domain.membership import DraftKind
from medspa.money import Money
from medspa.ports import ChargeResult, ChargeStatus, Counted, Metrics, Payments, RefundStatus
from medspa.ports.executions import PaidFeeRuns
from medspa.ports.memberships import DraftRuns
from medspa.ports.metrics import NOT_COUNTED
from medspa.ports.payments import StripeNotice
from medspa.services.settlement import CARD_PURPOSES, SettlementService

REFUNDED_IN_STRIPE = "refunded_in_stripe"
DISPUTED = "disputed"
DISPUTE_WON = "dispute_won"
DRAFT_PURPOSES = frozenset(kind.value for kind in DraftKind)

Outcome = Literal["paid", "declined", "unchanged", "undecided", "left_to_its_step", "refund_recorded",
                  "dispute_recorded", "not_ours", "other_spa", "ignored"]


class Reconciled(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True)

    event_id: str
    outcome: Outcome
    entry_id: str | None = None
    spa_id: str | None = None


class StripeReconciliation:
    def __init__(self, store: Stores, payments: Payments, settlement: SettlementService,
                 metrics: Metrics = NOT_COUNTED, draft_runs: DraftRuns | None = None,
                 paid_fee_runs: PaidFeeRuns | None = None) -> None:
        self._store = store
        self._draft_runs = draft_runs
        self._paid_fee_runs = paid_fee_runs
        self._metrics = metrics
        self._payments = payments
        self._settlement = settlement

    def apply(self, notice: StripeNotice, now: datetime) -> Reconciled:
        charge = self._payments.payment(notice.payment_intent_id)
        entry = self._store.ledger.for_stripe_ref(charge.ledger_ref) if charge and charge.ledger_ref else None
        if charge is None or entry is None:
            return Reconciled(event_id=notice.event_id, outcome="not_ours")
        spa_id = spa_of(entry.entry_id)
        if charge.spa_id != spa_id:
            return Reconciled(event_id=notice.event_id, outcome="other_spa", spa_id=spa_id)
        return Reconciled(event_id=notice.event_id, outcome=self._reconcile(notice, charge, entry, now),
                          entry_id=entry.entry_id, spa_id=spa_id)

    def _reconcile(self, notice: StripeNotice, charge: ChargeResult, entry: LedgerEntry, now: datetime) -> Outcome:
        if notice.type.startswith("charge.dispute."):
            return "dispute_recorded" if self._record_dispute(notice, entry, now) else "ignored"
        if notice.type == "charge.refunded":
            return "refund_recorded" if self._record_outside_refunds(notice, entry, now) else "unchanged"
        if charge.status is ChargeStatus.TRANSIENT:
            return "undecided"
        if entry.status is EntryStatus.PENDING:
            # Its step has not heard Stripe's answer yet (it crashed, or Stripe is down for it). That step reads the
            # intent before it records anything, so it will record what Stripe holds then; nothing is left to do here.
            return "left_to_its_step"
        if (charge.status is ChargeStatus.SUCCEEDED and entry.status is not EntryStatus.SUCCEEDED
                and entry.kind is EntryKind.CHARGE and entry.purpose in CARD_PURPOSES and self._paid_fee_runs):
            # Started before the ledger moves: a start that fails fails the event, whose redelivery starts it again
            # (one that found the entry paid would not). The run reads Stripe itself if it gets there first.
            self._paid_fee_runs.start_paid_later(entry.appointment_id, entry.purpose, entry.attempt)
        after = self._settlement.record_later_outcome(entry, charge, now)
        if after.status is entry.status:
            return "unchanged"
        if after.status is EntryStatus.SUCCEEDED:
            if entry.purpose in DRAFT_PURPOSES and self._draft_runs is not None:
                # The membership hears it from its own drafts run, which keeps the fact and tells the member.
                self._draft_runs.start_now(entry.appointment_id, date.fromisoformat(entry.entry_id.rsplit("#", 3)[1]),
                                           entry.attempt, why="paid")
            return "paid"
        return "declined"

    def _record_outside_refunds(self, notice: StripeNotice, charge_entry: LedgerEntry, now: datetime) -> bool:
        """A refund made in the Stripe dashboard is money given back that no step of this system decided: it is
        recorded as its own entry, named by Stripe's refund id, so the ledger's net matches Stripe's. What the
        client owes does not change (the fee was paid, then given back by the spa's own hand). Refunds this
        system made carry a ``ledger_ref`` and are already in the ledger."""
        recorded = False
        for refund in self._payments.refunds_of(notice.payment_intent_id):
            ours = refund.ledger_ref and self._store.ledger.for_stripe_ref(refund.ledger_ref)
            if ours or refund.status not in (RefundStatus.SUCCEEDED, RefundStatus.PENDING) or not refund.refund_id:
                continue
            assert refund.amount is not None
            recorded |= self._record(charge_entry, REFUNDED_IN_STRIPE, refund.refund_id, EntryKind.REFUND,
                                     refund.amount, now)
        return recorded

    def _record_dispute(self, notice: StripeNotice, charge_entry: LedgerEntry, now: datetime) -> bool:
        """A dispute withdraws the fee from the spa's balance while the bank decides; a won dispute puts it back.
        The fee is never charged again (card rules forbid re-charging a disputed amount): the spa answers the
        dispute in the dashboard, with the ledger entry and the visit's timeline as its evidence."""
        if notice.dispute_id is None:
            return False
        dispute = self._payments.dispute(notice.dispute_id)
        if dispute is None or dispute.payment_intent_id != notice.payment_intent_id:
            return False
        recorded = self._record(charge_entry, DISPUTED, dispute.dispute_id, EntryKind.DISPUTE, dispute.amount, now)
        if recorded:
            self._metrics.count(Counted.DISPUTED, spa_of(charge_entry.entry_id))
        if dispute.status == "won":
            recorded |= self._record(charge_entry, DISPUTE_WON, dispute.dispute_id, EntryKind.CREDIT,
                                     dispute.amount, now)
        return recorded

    def _record(self, charge_entry: LedgerEntry, purpose: str, reference: str, kind: EntryKind, amount: Money,
                now: datetime) -> bool:
        """One entry per Stripe object, written once: ``<visit>#<purpose>#<Stripe id>``."""
        ledger = self._store.ledger
        entry_id = account_entry_id(charge_entry.appointment_id, purpose, reference)
        if (existing := ledger.get(entry_id)) is not None and existing.status is EntryStatus.SUCCEEDED:
            return False
        entry = ledger.record_intent(appointment_id=charge_entry.appointment_id, client_id=charge_entry.client_id,
                                     purpose=purpose, kind=kind, amount=amount, now=now, entry_id=entry_id)
        ledger.record_outcome(entry.entry_id, EntryStatus.SUCCEEDED, now,
                              stripe_payment_intent_id=charge_entry.stripe_payment_intent_id,
                              stripe_refund_id=reference if kind is EntryKind.REFUND else None)
        return True
