"""Settling a late-cancel, late-reschedule or no-show fee exactly once.

How exactly-once holds, whatever fails and however late the retry comes:

1. Every money movement has a ledger entry whose id is derived from what it is for
   (appointment, purpose, attempt). It is written with a conditional put *before* anything moves,
   so a retried Lambda, a Step Functions ``Retry`` or a duplicate event finds the same entry.
2. The Stripe idempotency key is derived from that entry id. While Stripe remembers the key
   (~24h) a repeated request replays the first answer instead of charging again, including the
   case where the charge succeeded but the response never arrived.
3. The outcome is recorded on the same entry. An entry that already has an outcome is never sent
   to Stripe again: that is what keeps a retry days later safe after Stripe forgot the key.
4. An entry found still *pending* (a crash between Stripe's answer and step 3) is first looked up
   in Stripe by its opaque ``ledger_ref`` metadata; only if Stripe holds no PaymentIntent for it is
   the charge sent, with the same key. The key guards the first 24 hours (and concurrent duplicates),
   the lookup guards every hour after.
5. Balance side effects (outstanding, credit) are keyed by the entry id on the client record, so
   re-applying them on every retry is a no-op; a crash between any two writes heals on the retry.
6. A visit's prepayment and its booking deposit are sums that several fees (a late reschedule, then a
   no-show) could each reach. Before a fee takes from them the ledger is read: the prepayment is taken
   only if no entry has already credited or forfeited it (``medspa.services.prepayment``), the deposit
   only as far as the visit's other fees left it.

A transient Stripe failure leaves the entry pending and raises ``PaymentProviderUnavailable``; the
state machine retries the same step, which reuses the same entry and key. A deliberate new attempt
(dunning) is a new attempt number: a new entry, a new key, because reusing the old key would only
replay the old decline.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Literal, get_args

from pydantic import AwareDatetime, BaseModel, ConfigDict

from medspa.domain.booking import Appointment
from medspa.domain.client import Client
from medspa.domain.ledger import EntryKind, EntryStatus, LedgerEntry, ledger_entry_id
from medspa.ports.store import AppointmentNotFound, ClientNotFound, InsufficientBalance, LedgerConflict, Stores
from medspa.domain import engine
from medspa.domain.keys import spa_key, spa_of
from medspa.money import Money
from medspa.policy.loader import PolicyPacks
from medspa.policy.schema import FeeReason, PolicyPack, SettlementSource
from medspa.ports import ChargeResult, ChargeStatus, Counted, Metrics, PaymentProviderUnavailable, Payments, RefundStatus
from medspa.ports.metrics import NOT_COUNTED
from medspa.services import prepayment
from medspa.services.courses import CourseService

__all__ = [
    "CARD_PURPOSES",
    "PaymentProviderUnavailable",
    "SettlementOutOfOrder",
    "SettlementReport",
    "SettlementService",
    "StepOutcome",
    "card_purpose",
]

_KIND_BY_SOURCE: dict[str, EntryKind] = {
    "course_session": EntryKind.DEDUCTION,
    "gift_certificate": EntryKind.DEDUCTION,
    "deposit": EntryKind.FORFEIT,
    "prepayment": EntryKind.FORFEIT,
    "card_on_file": EntryKind.CHARGE,
    "outstanding_balance": EntryKind.OUTSTANDING,
}
_UNPAID = (EntryStatus.DECLINED, EntryStatus.REQUIRES_ACTION, EntryStatus.FAILED)
NO_CARD = "no_card_on_file"
CANCELLED = "canceled"  # an unpaid charge stopped at Stripe before the fee was charged again or forgiven


class SettlementOutOfOrder(Exception):
    """A dunning attempt was asked for while an earlier attempt's outcome is still unknown.

    Charging again before the earlier charge is resolved could take the fee twice; the state machine
    retries the earlier attempt (same number) first.
    """


def card_purpose(reason: FeeReason) -> str:
    """``no_show_fee``, ``late_cancel_fee``, ``late_reschedule_fee``: the card charge for a violation."""
    return f"{reason}_fee"


CARD_PURPOSES = tuple(card_purpose(reason) for reason in get_args(FeeReason))


def _purpose(reason: FeeReason, source: SettlementSource) -> str:
    return card_purpose(reason) if source == "card_on_file" else f"{reason}_fee_{source}"


def _metadata(entry: LedgerEntry, location_id: str) -> dict[str, str]:
    """Opaque ids only; the spa lets one Stripe account's dashboard be filtered by tenant."""
    return {"ledger_ref": ledger_ref(entry), "spa_id": spa_of(entry.entry_id), "location_id": location_id}


def ledger_ref(entry: LedgerEntry) -> str:
    """The opaque id a PaymentIntent or Refund carries in metadata: the hash inside the idempotency key."""
    return entry.stripe_idempotency_key.rsplit("-", 1)[-1]


ClientAction = Literal["update_card", "authenticate", "add_card", "pay_at_next_visit"]
_ASKED_OF_THE_CLIENT: dict[EntryStatus, ClientAction] = {EntryStatus.REQUIRES_ACTION: "authenticate",
                                                        EntryStatus.DECLINED: "update_card"}


class StepOutcome(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True)

    source: SettlementSource | Literal["refund", "waiver"]
    amount: Money
    sessions: int = 0
    entry_id: str
    status: EntryStatus
    payment_intent_id: str | None = None
    decline_code: str | None = None
    code: str | None = None


class SettlementReport(BaseModel):
    """What happened to one fee; serialises to the state machine's JSON (``model_dump(mode="json")``)."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    appointment_id: str
    reason: FeeReason
    attempt: int
    outcome: Literal["no_fee", "settled", "outstanding", "waived"]
    fee: Money | None
    steps: tuple[StepOutcome, ...] = ()
    charged: Money | None = None
    outstanding: Money | None = None
    sessions_deducted: int = 0
    notify_client: bool = False
    client_action: ClientAction | None = None
    retry_at: tuple[AwareDatetime, ...] = ()
    next_retry_at: AwareDatetime | None = None
    refunded: Money | None = None
    outstanding_waived: Money | None = None
    waived_by: str | None = None


def _sum(amounts: list[Money], currency: str) -> Money:
    return sum(amounts, Money.zero(currency))


class SettlementService:
    """Takes the fee a violation costs from the sources the visit's policy names, in its order: the pack
    version the client accepted when booking (``PolicyPacks.for_visit``), not one published since."""

    def __init__(self, store: Stores, payments: Payments, packs: Mapping[str, PolicyPack],
                 metrics: Metrics = NOT_COUNTED) -> None:
        self._store = store
        self._metrics = metrics
        self._payments = payments
        self._packs = PolicyPacks.of(packs)
        self._courses = CourseService(store, self._packs)

    # ------------------------------------------------------------------------------ settle

    def settle_fee(self, appointment_id: str, reason: FeeReason, now: datetime, attempt: int = 1) -> SettlementReport:
        """Settle the fee for ``reason``; safe to call any number of times, at any later time.

        ``attempt`` numbers the card charge only (1 for the settlement; dunning uses
        ``retry_outstanding_fee``); raises ``PaymentProviderUnavailable`` when Stripe could not answer.
        """
        stored = self._store.appointments.get(appointment_id)
        if stored is None:
            raise AppointmentNotFound(appointment_id)
        pack = self._packs.for_visit(stored)  # the fee and its order are those the client accepted when booking
        domain = stored.to_domain()
        # The prepayment this fee may take, not the one booked: the fee and its plan are reckoned on it.
        held: dict[str, object] = {"prepaid": self._prepayment_for(stored, reason),
                                   "deposit": self._deposit_left(stored, reason)}
        if (covered := self._course_covers(stored, pack)) is not None:
            held["course_session_available"] = covered  # the balance this system keeps, not the booking's word
        appointment = domain.model_copy(update={"payment": domain.payment.model_copy(update=held)})
        fee = engine.fee_for(pack, appointment, reason)
        if fee is None or fee.is_zero:
            return SettlementReport(appointment_id=appointment_id, reason=reason, attempt=attempt, outcome="no_fee",
                                    fee=None)
        # Read before writing, so a retry knows the card entry is not new. (Its ``created_at`` cannot tell:
        # a Step Functions Retry may pass the same ``now`` again, days later.)
        card_before = self._store.ledger.get(ledger_entry_id(appointment_id, card_purpose(reason), attempt))
        client: Client | None = None
        if card_before is None:
            client = self._client(stored.client_id)
            card_on_file = stored.payment.card_on_file and self._has_card(client)
        else:
            # A card step once begun stays in the plan even if the client has since removed the card: the
            # plan must be the same on every retry, or a retry could settle the fee a second way.
            card_on_file = True
        plan = engine.settlement_plan(pack, appointment, fee, appointment.payment.model_copy(
            update={"card_on_file": card_on_file}))

        outcomes, card_entry = [], None
        for step in plan.steps:
            if step.source == "card_on_file":
                entry = card_entry = self._charge_card(step.amount, appointment_id, reason, attempt,
                                                       stored.client_id, stored.location_id, now, card_before, client)
            else:
                # Deposits, courses and balances are taken once per fee, whatever card attempt this is.
                entry = self._take_from(step.source, step.amount, appointment_id, reason, 1, stored.client_id, now)
                if step.source == "course_session" and stored.payment.course_id:
                    self._courses.record_use(spa_key(spa_of(appointment_id), stored.payment.course_id),
                                             appointment_id, "deducted", entry.created_at, now)
            outcomes.append(_outcome(step.source, entry, step.sessions))
        return self._report(pack, appointment_id, reason, attempt, fee, outcomes, card_entry, now)

    def _course_covers(self, stored: Appointment, pack: PolicyPack) -> bool | None:
        course_id = stored.payment.course_id
        if not course_id:
            return None
        return self._courses.covers(spa_key(spa_of(stored.appointment_id), course_id), stored.appointment_id,
                                    stored.starts_at.astimezone(pack.zone).date())

    def _prepayment_for(self, stored: Appointment, reason: FeeReason) -> Money | None:
        """The prepayment this violation forfeits, or ``None``: a prepayment is taken at most once.

        The fold says which violation forfeits it (a late cancel or reschedule carries it; a no-show takes
        what the visit still holds). The ledger has the last word, because a refold after out-of-order
        events may name another violation once money has moved: if any entry has already credited or
        forfeited this visit's prepayment, there is nothing left for this fee. A step of this fee's own
        that was begun stays in the plan, so a retry settles the fee the same way.
        """
        if reason == "no_show":
            held = stored.payment.prepaid
        else:
            held = next((v.prepayment for v in stored.facts.violations if v.reason == reason), None)
        taken = prepayment.movements(self._store, stored.appointment_id)
        own = taken.get(prepayment.forfeit_purpose(reason))
        if own is not None:
            return held or own.amount
        if taken or held is None or held.is_zero:
            return None
        return held

    def _deposit_left(self, stored: Appointment, reason: FeeReason) -> Money | None:
        """What the booking deposit still holds for this fee. 406 applies "any booking deposit" towards a
        fee; a visit moved late and then missed has two fees, and the deposit pays towards the first only
        as far as it goes: what another fee of the visit took is not there for this one. (Other fees are
        settled one at a time, before this one, so a retry of this fee reads the same remainder.)"""
        deposit = stored.payment.deposit
        if deposit is None:
            return None
        ledger = self._store.ledger
        for other in get_args(FeeReason):
            taken = ledger.get(ledger_entry_id(stored.appointment_id, _purpose(other, "deposit"))) \
                if other != reason else None
            if taken is not None:
                deposit = deposit - taken.amount.min(deposit)
        return None if deposit.is_zero else deposit

    def _charge_card(self, amount: Money, appointment_id: str, reason: FeeReason, attempt: int, client_id: str,
                     location_id: str, now: datetime, existing: LedgerEntry | None,
                     client: Client | None) -> LedgerEntry:
        """The card step: entry first, then Stripe (unless the entry already has an outcome), then the outcome.

        A card that did not pay leaves the fee outstanding, keyed by this entry so retries add it once.
        """
        entry = existing or self._store.ledger.record_intent(
            appointment_id=appointment_id, client_id=client_id, purpose=card_purpose(reason),
            kind=EntryKind.CHARGE, amount=amount, now=now, attempt=attempt,
        )
        if entry.status is EntryStatus.PENDING:
            entry = self.collect(entry, client or self._client(client_id), location_id, now,
                                  look_up_first=existing is not None)
        if entry.status in _UNPAID:
            self._store.clients.add_outstanding(client_id, entry.amount, entry.entry_id, now)
        return entry

    def _take_from(self, source: SettlementSource, amount: Money, appointment_id: str, reason: FeeReason,
                   attempt: int, client_id: str, now: datetime) -> LedgerEntry:
        """Deposits, prepayments, course sessions and gift certificates are already the spa's money:
        recording the forfeit or deduction is the whole movement, and nothing goes to Stripe. An
        outstanding-balance step raises what the client owes, keyed by its entry."""
        ledger = self._store.ledger
        entry = ledger.record_intent(
            appointment_id=appointment_id, client_id=client_id, purpose=_purpose(reason, source),
            kind=_KIND_BY_SOURCE[source], amount=amount, now=now, attempt=attempt,
        )
        if source == "outstanding_balance":
            self._store.clients.add_outstanding(client_id, entry.amount, entry.entry_id, now)
        if entry.status is EntryStatus.PENDING:
            entry = ledger.record_outcome(entry.entry_id, EntryStatus.SUCCEEDED, now)
        return entry

    def collect(self, entry: LedgerEntry, client: Client, location_id: str, now: datetime, *,
                 look_up_first: bool) -> LedgerEntry:
        """Resolve a pending card entry: find what Stripe already did for it, else charge with its key."""
        if not self._has_card(client):
            return self._store.ledger.record_outcome(entry.entry_id, EntryStatus.FAILED, now, failure_message=NO_CARD)
        assert client.stripe_customer_id and client.default_payment_method_id
        result: ChargeResult | None = None
        if look_up_first:
            found = self._payments.find_charge(client.stripe_customer_id, ledger_ref(entry))
            result = found if found is not None and found.final else None
        if result is None:
            result = self._payments.charge_off_session(
                client.stripe_customer_id, client.default_payment_method_id, entry.amount,
                idempotency_key=entry.stripe_idempotency_key,
                metadata=_metadata(entry, location_id),
            )
        if result.status is ChargeStatus.TRANSIENT:
            raise PaymentProviderUnavailable(f"ledger entry {entry.entry_id} stays pending: {result.message}")
        if result.amount is not None and result.amount != entry.amount:
            raise LedgerConflict(f"Stripe holds {result.amount} for ledger entry {entry.entry_id}, not {entry.amount}")
        status = {ChargeStatus.SUCCEEDED: EntryStatus.SUCCEEDED, ChargeStatus.DECLINED: EntryStatus.DECLINED,
                  ChargeStatus.REQUIRES_ACTION: EntryStatus.REQUIRES_ACTION}[result.status]
        return self._store.ledger.record_outcome(
            entry.entry_id, status, now, stripe_payment_intent_id=result.payment_intent_id,
            decline_code=result.decline_code if status is not EntryStatus.SUCCEEDED else None,
            failure_message=result.code if status is not EntryStatus.SUCCEEDED else None,
        )

    # ------------------------------------------------------------------------------ dunning

    def retry_outstanding_fee(self, appointment_id: str, reason: FeeReason, attempt: int,
                              now: datetime) -> SettlementReport:
        """Charge a declined fee again on the dunning schedule: attempt ``n`` is its own entry and key.

        On success the client's outstanding balance is settled by the amount, keyed by this entry.
        Nothing is charged when the fee was collected by an earlier attempt, waived, or no longer owed.
        """
        if attempt < 2:
            raise ValueError("attempt 1 is the settlement itself; dunning attempts start at 2")
        stored = self._store.appointments.get(appointment_id)
        if stored is None:
            raise AppointmentNotFound(appointment_id)
        pack, client, ledger = self._packs.for_visit(stored), self._client(stored.client_id), self._store.ledger
        purpose = card_purpose(reason)
        first = ledger.get(ledger_entry_id(appointment_id, purpose, 1))
        if first is None:
            raise SettlementOutOfOrder(f"{appointment_id}: no {purpose} was attempted, so nothing is outstanding")
        fee = first.amount
        entry_id = ledger_entry_id(appointment_id, purpose, attempt)
        existing = ledger.get(entry_id)
        if existing is None:
            earlier = [ledger.get(ledger_entry_id(appointment_id, purpose, n)) for n in range(1, attempt)]
            if any(e is not None and e.status is EntryStatus.PENDING for e in earlier):
                raise SettlementOutOfOrder(f"{appointment_id}: an earlier {purpose} attempt is still unresolved")
            earlier = [self.close_open_payment(e, now) if e is not None else None for e in earlier]
            paid = next((e for e in earlier if e is not None and e.status is EntryStatus.SUCCEEDED), None)
            waived = ledger.get(ledger_entry_id(appointment_id, f"{purpose}_waiver", 1))
            if paid is not None or waived is not None or client.outstanding_in(fee.currency).amount < fee.amount:
                return SettlementReport(
                    appointment_id=appointment_id, reason=reason, attempt=attempt,
                    outcome="waived" if waived is not None else "settled", fee=fee,
                    steps=tuple(_outcome("card_on_file", e, 0) for e in earlier if e is not None),
                    charged=paid.amount if paid else None,
                )
        entry = existing or ledger.record_intent(
            appointment_id=appointment_id, client_id=client.client_id, purpose=purpose, kind=EntryKind.CHARGE,
            amount=fee, now=now, attempt=attempt,
        )
        if entry.status is EntryStatus.PENDING:
            entry = self.collect(entry, client, stored.location_id, now, look_up_first=existing is not None)
        if entry.status is EntryStatus.SUCCEEDED:
            try:
                self._store.clients.settle_outstanding(client.client_id, entry.amount, entry.entry_id, now)
            except InsufficientBalance:
                # Paid at the desk while this charge was in flight: keep the money as the client's credit.
                self._store.clients.add_credit(client.client_id, entry.amount, entry.entry_id, now)
        outcomes = [_outcome("card_on_file", entry, 0)]
        return self._report(pack, appointment_id, reason, attempt, fee, outcomes, entry, now,
                            first_failure_at=first.updated_at)

    # ------------------------------------------------------------------------------ what Stripe decided later

    def close_open_payment(self, entry: LedgerEntry, now: datetime) -> LedgerEntry:
        """Before a fee is charged again or forgiven, an earlier charge still waiting for the client to
        authenticate (the client was sent to complete it) is cancelled at Stripe, so it cannot be paid on
        top. If the client paid it meanwhile, Stripe refuses the cancel and says so: the fee is paid, whether
        or not its webhook has arrived. The ledger's truth is read from Stripe, not waited for."""
        if entry.status is not EntryStatus.REQUIRES_ACTION or not entry.stripe_payment_intent_id:
            return entry
        result = self._payments.cancel_authentication(entry.stripe_payment_intent_id)
        if result.status is ChargeStatus.TRANSIENT:
            raise PaymentProviderUnavailable(f"ledger entry {entry.entry_id}: {result.message}")
        if result.status is not ChargeStatus.SUCCEEDED:
            result = result.model_copy(update={"code": CANCELLED})
        return self.record_later_outcome(entry, result, now)

    def learn_later_outcome(self, entry: LedgerEntry, now: datetime) -> LedgerEntry:
        """What Stripe decided since ``entry``'s step, read afresh and recorded as its webhook would record it: for a
        step that may run before the webhook that prompted it has been applied."""
        if entry.status is EntryStatus.SUCCEEDED or not entry.stripe_payment_intent_id:
            return entry
        charge = self._payments.payment(entry.stripe_payment_intent_id)
        return self.record_later_outcome(entry, charge, now) if charge is not None else entry

    def record_later_outcome(self, entry: LedgerEntry, result: ChargeResult, now: datetime) -> LedgerEntry:
        """Stripe decided a fee's card charge after the step that made it: the client authenticated and paid,
        paid with another card, or the charge was cancelled. Safe to repeat (a webhook delivered twice, the
        webhook and dunning both learning it).

        A fee paid late settles what the client owed for it. Its owed amount was raised under the first
        attempt's entry; it is raised again here (a no-op then) in case this runs between the step's two
        writes, and settled under ``<entry>#paid`` (a dunning attempt's own id for later attempts, as its
        step would). The ledger's status moves last, so a crash between these writes is healed by the
        redelivery that finds the entry still unpaid.
        """
        ledger, client_id = self._store.ledger, entry.client_id
        if result.status is ChargeStatus.SUCCEEDED and entry.status is not EntryStatus.SUCCEEDED:
            if entry.kind is EntryKind.CHARGE and entry.purpose in CARD_PURPOSES:
                first = ledger_entry_id(entry.appointment_id, entry.purpose, 1)
                self._store.clients.add_outstanding(client_id, entry.amount, first, now)
                key = f"{entry.entry_id}#paid" if entry.attempt == 1 else entry.entry_id
                try:
                    self._store.clients.settle_outstanding(client_id, entry.amount, key, now)
                except InsufficientBalance:  # forgiven or paid at the desk meanwhile: the money is the client's
                    self._store.clients.add_credit(client_id, entry.amount, key, now)
            paid = ledger.record_outcome(entry.entry_id, EntryStatus.SUCCEEDED, now,
                                         stripe_payment_intent_id=result.payment_intent_id)
            self._metrics.count(Counted.PAID_LATER, spa_of(entry.entry_id))
            return paid
        if result.status is ChargeStatus.DECLINED and entry.status is EntryStatus.REQUIRES_ACTION:
            return ledger.record_outcome(entry.entry_id, EntryStatus.DECLINED, now, decline_code=result.decline_code,
                                         failure_message=result.code, keep_time=True)
        return entry

    # ------------------------------------------------------------------------------ waiver

    def waive_fee(self, appointment_id: str, reason: FeeReason, admin_id: str, now: datetime) -> SettlementReport:
        """Staff forgive the fee: refund what the card paid, cancel what is still owed; exactly once.

        The refund gets its own ledger entry (written first, its own key); the cancelled balance gets a
        waiver entry that the balance movement is keyed by. A waiver entry also stops further dunning.
        Forfeited deposits and deducted course sessions are not restored here: the booking system
        holds those balances.
        """
        stored = self._store.appointments.get(appointment_id)
        if stored is None:
            raise AppointmentNotFound(appointment_id)
        client, ledger = self._client(stored.client_id), self._store.ledger
        purpose = card_purpose(reason)
        charges: list[LedgerEntry] = []
        while (entry := ledger.get(ledger_entry_id(appointment_id, purpose, len(charges) + 1))) is not None:
            if entry.status is EntryStatus.PENDING:  # learn what Stripe did before forgiving it
                entry = self.collect(entry, client, stored.location_id, now, look_up_first=True)
            charges.append(self.close_open_payment(entry, now))
        outcomes: list[StepOutcome] = []
        refunded = waived = None
        paid = next((e for e in charges if e.status is EntryStatus.SUCCEEDED), None)
        if paid is not None:
            refund = self._refund(paid, client, stored.location_id, reason, now)
            outcomes.append(_outcome("refund", refund, 0))
            refunded = refund.amount if refund.status is EntryStatus.SUCCEEDED else None
        owed = []
        if paid is None and charges and charges[0].status in _UNPAID:
            owed.append(charges[0].amount)
        unpaid_balance = ledger.get(ledger_entry_id(appointment_id, _purpose(reason, "outstanding_balance"), 1))
        if unpaid_balance is not None:
            owed.append(unpaid_balance.amount)
        if owed:
            waiver = self._waive_outstanding(appointment_id, reason, client, _sum(owed, owed[0].currency), now)
            if waiver is not None:
                outcomes.append(_outcome("waiver", waiver, 0))
                waived = waiver.amount
        fee = paid.amount if paid else (_sum(owed, owed[0].currency) if owed else None)
        return SettlementReport(appointment_id=appointment_id, reason=reason, attempt=1, outcome="waived", fee=fee,
                                steps=tuple(outcomes), refunded=refunded, outstanding_waived=waived,
                                waived_by=admin_id)

    def give_back_covered(self, appointment_id: str, reason: FeeReason, now: datetime) -> tuple[LedgerEntry, ...]:
        """A released fee gives back what it took besides the card, each with a ledger entry of its own
        (``<reason>_fee_<source>_released``, written once): a deposit or prepayment becomes the client's store
        credit, keyed by that entry; a course session or a gift certificate is the booking system's to restore,
        which the release tells it."""
        ledger, client, returned = self._store.ledger, self._client_of(appointment_id), []
        for source in ("deposit", "prepayment", "course_session", "gift_certificate"):
            taken = ledger.get(ledger_entry_id(appointment_id, _purpose(reason, source), 1))
            if taken is None or taken.status is not EntryStatus.SUCCEEDED:
                continue
            entry = ledger.record_intent(appointment_id=appointment_id, client_id=client.client_id,
                                         purpose=f"{_purpose(reason, source)}_released", kind=EntryKind.CREDIT,
                                         amount=taken.amount, now=now)
            if source in ("deposit", "prepayment"):
                self._store.clients.add_credit(client.client_id, entry.amount, entry.entry_id, now)
            if entry.status is EntryStatus.PENDING:
                entry = ledger.record_outcome(entry.entry_id, EntryStatus.SUCCEEDED, now)
            returned.append(entry)
        return tuple(returned)

    def _client_of(self, appointment_id: str) -> Client:
        stored = self._store.appointments.get(appointment_id)
        if stored is None:
            raise AppointmentNotFound(appointment_id)
        return self._client(stored.client_id)

    def _refund(self, paid: LedgerEntry, client: Client, location_id: str, reason: FeeReason,
                now: datetime) -> LedgerEntry:
        ledger = self._store.ledger
        entry_id = ledger_entry_id(paid.appointment_id, f"{card_purpose(reason)}_refund", 1)
        existing = ledger.get(entry_id)
        entry = existing or ledger.record_intent(
            appointment_id=paid.appointment_id, client_id=client.client_id, purpose=f"{card_purpose(reason)}_refund",
            kind=EntryKind.REFUND, amount=paid.amount, now=now,
        )
        if entry.status is not EntryStatus.PENDING:
            return entry
        assert paid.stripe_payment_intent_id
        result = None
        if existing is not None:
            result = self._payments.find_refund(paid.stripe_payment_intent_id, ledger_ref(entry))
        if result is None:
            result = self._payments.refund(paid.stripe_payment_intent_id, entry.amount, entry.stripe_idempotency_key,
                                           metadata=_metadata(entry, location_id))
        if result.status is RefundStatus.TRANSIENT:
            raise PaymentProviderUnavailable(f"ledger entry {entry.entry_id} stays pending: {result.message}")
        if result.status in (RefundStatus.SUCCEEDED, RefundStatus.PENDING):
            return ledger.record_outcome(entry.entry_id, EntryStatus.SUCCEEDED, now,
                                         stripe_payment_intent_id=paid.stripe_payment_intent_id,
                                         stripe_refund_id=result.refund_id)
        # Stripe refuses to refund past what is left on the charge (e.g. refunded from the dashboard).
        return ledger.record_outcome(entry.entry_id, EntryStatus.FAILED, now, failure_message=result.status.value)

    def _waive_outstanding(self, appointment_id: str, reason: FeeReason, client: Client, owed: Money,
                           now: datetime) -> LedgerEntry | None:
        ledger = self._store.ledger
        purpose = f"{card_purpose(reason)}_waiver"
        entry = ledger.get(ledger_entry_id(appointment_id, purpose, 1))
        if entry is None:
            # What the client still owes may be less than the fee (part paid at the desk): waive only that.
            amount = owed.min(client.outstanding_in(owed.currency))
            if amount.is_zero:
                return None
            entry = ledger.record_intent(appointment_id=appointment_id, client_id=client.client_id, purpose=purpose,
                                         kind=EntryKind.CREDIT, amount=amount, now=now)
        self._store.clients.settle_outstanding(client.client_id, entry.amount, entry.entry_id, now)
        if entry.status is EntryStatus.PENDING:
            entry = ledger.record_outcome(entry.entry_id, EntryStatus.SUCCEEDED, now)
        return entry

    # ------------------------------------------------------------------------------ helpers

    def _client(self, client_id: str) -> Client:
        client = self._store.clients.get(client_id)
        if client is None:
            raise ClientNotFound(client_id)
        return client

    @staticmethod
    def _has_card(client: Client) -> bool:
        return bool(client.stripe_customer_id and client.default_payment_method_id)

    def _report(self, pack: PolicyPack, appointment_id: str, reason: FeeReason, attempt: int, fee: Money,
                outcomes: list[StepOutcome], card_entry: LedgerEntry | None, now: datetime, *,
                first_failure_at: datetime | None = None) -> SettlementReport:
        currency = fee.currency
        charged = _sum([o.amount for o in outcomes if o.source == "card_on_file" and o.status is EntryStatus.SUCCEEDED],
                       currency)
        owed = _sum([o.amount for o in outcomes if o.source == "outstanding_balance"
                     or (o.source == "card_on_file" and o.status in _UNPAID)], currency)
        action: ClientAction | None = None
        retry_at: tuple[datetime, ...] = ()
        if card_entry is not None and card_entry.status in _UNPAID:
            action = _ASKED_OF_THE_CLIENT.get(card_entry.status, "add_card")
            retry_at = tuple(engine.dunning_schedule(pack, first_failure_at or card_entry.updated_at))
        elif not owed.is_zero:
            action = "pay_at_next_visit"
        return SettlementReport(
            appointment_id=appointment_id, reason=reason, attempt=attempt,
            outcome="outstanding" if not owed.is_zero else "settled", fee=fee, steps=tuple(outcomes),
            charged=charged if not charged.is_zero else None,
            outstanding=owed if not owed.is_zero else None,
            sessions_deducted=sum(o.sessions for o in outcomes),
            notify_client=action is not None,
            client_action=action, retry_at=retry_at,
            next_retry_at=next((t for t in retry_at if t > now), None),
        )


def _outcome(source: SettlementSource | Literal["refund", "waiver"], entry: LedgerEntry, sessions: int) -> StepOutcome:
    unpaid = entry.status is not EntryStatus.SUCCEEDED
    return StepOutcome(source=source, amount=entry.amount, sessions=sessions, entry_id=entry.entry_id,
                       status=entry.status, payment_intent_id=entry.stripe_payment_intent_id,
                       decline_code=entry.decline_code if unpaid else None,
                       code=entry.failure_message if unpaid else None)
