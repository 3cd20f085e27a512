"""Outstanding balances: telling the booking site what a client owes, and settling what they pay at the desk.

Glow: "Outstanding cancellation/rebooking fees must be paid on the client's next visit to Glow." A fee that
cannot be collected (no card, or a card still declining when dunning ends) is an outstanding balance on the
client (``medspa.services.settlement``). Every pack ends its settlement order and its dunning with
``outstanding_balance``, so the rule is the same at every location: what is owed is due at the next visit.

Telling. The desk collects only what it is shown, so when a client who owes anything (in any currency) books
a visit or checks in, that visit's lifecycle tells the booking site ``OutstandingBalanceDue``, once per visit
and trigger (``booked``, ``checked_in``; remembered on the appointment). The lifecycle plans it like its
other money steps, first thing whenever it plans: at the booking, or, when the balance arises while the
visit is already booked (another visit missed meanwhile), the next time that visit's run wakes (a reminder,
at the latest the attendance decision), since that visit is now where the balance is due. A reschedule or a
confirmation of a visit already told is not told again; the check-in is, because that is when the desk
collects and the balance may have changed since. The event id is ``<appointment>:balance-due:<trigger>``, so
a retried step gives the booking site the same id. A client who owes nothing gets no event.

Paying. ``OutstandingBalancePaid`` is the desk's record of money it took. The intake settles it here, by the
rules of ``medspa.services.settlement`` (ledger first, deterministic ids, movements keyed by entry):

1. The payment's entry ``<client>#balance_paid_at_desk#<payment_reference>`` is written first (conditional
   put). Its id comes from the payment's reference, not the event id: the same payment sent again, even
   under a new event id, finds the same entry and moves nothing more. A reference already recorded for
   another amount is refused (:class:`ReferenceReused`): never settled twice, never merged.
2. The same put records how the payment splits (``settles``): what the client owed in that currency, up to
   the amount, pays the balance; the rest is store credit. Deciding once, with the entry, is what lets a
   retry after a crash split it the same way although the balance has moved since.
3. The part that pays the balance is settled keyed by the payment's entry; the credit has its own entry
   (``balance_paid_at_desk_credit``, written before the credit moves) and is added keyed by it. Running any
   step again is a no-op. Should a dunning charge pay the balance between 2 and 3, the settle finds too
   little owed and that part becomes credit as well, as a dunning charge's does when the desk was first.
4. Once nothing is owed in that currency, the client's visits whose fee was outstanding in it are marked
   settled, so no dunning retry is planned for them. A partial payment leaves them as they are: which fee
   it paid is not the desk's record. Either way dunning never charges money the desk took: a retry already
   asleep finds a settled fee, or less owed than the fee (``SettlementService.retry_outstanding_fee``),
   and charges nothing. The intake then tells the booking site ``OutstandingBalanceSettled``.

Paying more than is owed, or paying when nothing is owed, is not an error: the desk holds the money, so it is
recorded and kept as the client's store credit (as a prepayment credited for future services is). Refusing
it would lose a payment the spa has taken.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from medspa.domain.booking import OPEN_STATUSES, Appointment, AppointmentStatus
from medspa.domain.client import Client
from medspa.domain.ledger import EntryKind, EntryStatus, LedgerEntry, account_entry_id, ledger_entry_id
from medspa.ports.store import ClientNotFound, InsufficientBalance, Stores
from medspa.domain.keys import split_key
from medspa.money import Money

Trigger = Literal["booked", "checked_in"]
DUE = "at_next_visit"
PAID = "balance_paid_at_desk"
CREDITED = "balance_paid_at_desk_credit"
_UNPAID = (EntryStatus.DECLINED, EntryStatus.REQUIRES_ACTION, EntryStatus.FAILED)


class ReferenceReused(ValueError):
    """The payment reference is already recorded for this client with another amount: two payments under one
    reference cannot be told apart, so the second is refused rather than settled or merged."""


# ------------------------------------------------------------------------------ telling the booking site


def owed(client: Client | None) -> list[Money]:
    """What the client owes, one amount per currency, currencies in order; ``[]`` when nothing."""
    if client is None:
        return []
    return [Money(amount=amount, currency=currency) for currency, amount in sorted(client.outstanding.items())
            if amount > 0]


def due_trigger(stored: Appointment) -> Trigger | None:
    """Which moment of the visit this revision is: booked (still ahead) or checked in; otherwise none."""
    if stored.status in OPEN_STATUSES:
        return "booked"
    if stored.status is AppointmentStatus.CHECKED_IN:
        return "checked_in"
    return None


def told_key(trigger: Trigger) -> str:
    return f"balance_due@{trigger}"


def due_event_id(stored: Appointment, trigger: Trigger) -> str:
    return f"{stored.appointment_id}:balance-due:{trigger}"


def unpaid_fees(store: Stores, client_id: str) -> list[dict[str, Any]]:
    """The client's visits whose fee is still outstanding, with the ledger entries that raised the balance
    (the card's first attempt that did not pay, or the fee's own outstanding-balance step; the names
    ``medspa.services.settlement`` gives them). One index query and two reads per unpaid fee: a client
    rarely owes more than one or two."""
    fees = []
    for visit in store.appointments.for_client(client_id):
        for reason, state in sorted(visit.fees.items()):
            if state.outcome != "outstanding":
                continue
            entries = [e for e in (store.ledger.get(ledger_entry_id(visit.appointment_id, f"{reason}_fee", 1)),
                                   store.ledger.get(ledger_entry_id(visit.appointment_id,
                                                                    f"{reason}_fee_outstanding_balance", 1)))
                       if e is not None and (e.kind is EntryKind.OUTSTANDING or e.status in _UNPAID)]
            fees.append({"appointment_id": split_key(visit.appointment_id)[1], "reason": reason,
                         "fee": state.fee.model_dump() if state.fee else None,
                         "ledger_entries": [e.entry_id for e in entries]})
    return fees


def due_detail(store: Stores, stored: Appointment, balance: list[Money], trigger: Trigger) -> dict[str, Any]:
    """``OutstandingBalanceDue``: what the desk should collect at this visit, and where it comes from."""
    return {**stored.booking_site_ids, "booking_version": stored.booking_version, "trigger": trigger,
            "due": DUE, "balance": [m.model_dump() for m in balance],
            "unpaid_fees": unpaid_fees(store, stored.client_id)}


# ------------------------------------------------------------------------------ paid at the desk


class DeskPayment(BaseModel):
    """Where one desk payment went; the same on every re-run, since it is read back from the ledger."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    client_id: str
    payment_reference: str
    paid: Money
    settled: Money | None
    credited: Money | None
    ledger_entries: tuple[str, ...]
    balance: tuple[Money, ...]
    fees_settled: tuple[tuple[str, str], ...] = ()


def pay_at_desk(store: Stores, client_id: str, amount: Money, reference: str, now: datetime) -> DeskPayment:
    """Settle a payment the desk took, exactly once (steps 1-4 of the module's docstring)."""
    ledger, clients = store.ledger, store.clients
    paid_id = account_entry_id(client_id, PAID, reference)
    entry = ledger.get(paid_id)
    if entry is None:
        client = clients.get(client_id)
        if client is None:
            raise ClientNotFound(client_id)
        entry = ledger.record_intent(appointment_id=client_id, client_id=client_id, purpose=PAID,
                                     kind=EntryKind.PAID_AT_DESK, amount=amount, now=now, entry_id=paid_id,
                                     settles=amount.min(client.outstanding_in(amount.currency)))
    if entry.amount != amount:
        raise ReferenceReused(f"{paid_id} holds another amount")
    decided = entry.settles if entry.settles is not None else Money.zero(amount.currency)
    settled, entries = decided, [entry]
    if not decided.is_zero:
        try:
            clients.settle_outstanding(client_id, decided, entry.entry_id, now)
        except InsufficientBalance:
            # A dunning charge paid the balance after the split was decided: the desk's money is credit.
            clients.add_credit(client_id, decided, entry.entry_id, now)
            settled = Money.zero(amount.currency)
    if not (amount - decided).is_zero:
        entries.append(_credit(store, client_id, reference, amount - decided, now))
    for done in entries:
        if done.status is EntryStatus.PENDING:
            ledger.record_outcome(done.entry_id, EntryStatus.SUCCEEDED, now)
    client = clients.get(client_id)
    fees_settled = _settle_visits(store, client_id, amount.currency, now) \
        if client is not None and client.outstanding_in(amount.currency).is_zero else ()
    return DeskPayment(client_id=client_id, payment_reference=reference, paid=amount,
                       settled=None if settled.is_zero else settled,
                       credited=None if settled == amount else amount - settled,
                       ledger_entries=tuple(e.entry_id for e in entries), balance=tuple(owed(client)),
                       fees_settled=fees_settled)


def _credit(store: Stores, client_id: str, reference: str, amount: Money, now: datetime) -> LedgerEntry:
    """The part of a desk payment beyond what was owed: its own entry first, then the credit keyed by it."""
    entry = store.ledger.record_intent(appointment_id=client_id, client_id=client_id, purpose=CREDITED,
                                       kind=EntryKind.CREDIT, amount=amount, now=now,
                                       entry_id=account_entry_id(client_id, CREDITED, reference))
    store.clients.add_credit(client_id, entry.amount, entry.entry_id, now)
    return entry


def _settle_visits(store: Stores, client_id: str, currency: str, now: datetime) -> tuple[tuple[str, str], ...]:
    """Nothing is owed in ``currency`` any more: every fee of the client's still outstanding in it is paid, so
    its visit plans no further dunning retry. Writing the same state again is harmless."""
    settled = []
    for visit in store.appointments.for_client(client_id):
        for reason, state in sorted(visit.fees.items()):
            if state.outcome == "outstanding" and state.fee is not None and state.fee.currency == currency:
                store.appointments.record_fee(visit.appointment_id, state.model_copy(update={
                    "outcome": "settled", "next_retry_at": None, "updated_at": now}))
                settled.append((visit.appointment_id, reason))
    return tuple(settled)
