"""What a spa's booking site and front desk ask the system, and the two admin actions, behind the spa API.

Every question names the spa (from its API token) and the booking site's own ids; the records read are that
spa's only (``<spa>#<id>`` keys), so a token of one spa can never read or change another's.

- Booking requirements: what the booking site must collect before it saves a booking (prepay in full after
  the strikes the policy counts, a card on file for the party size, what the client still owes).
- A cancellation quote: if the client cancelled (or moved) the visit now, would it be late, what would it cost,
  and what would pay for it, in the order the visit's policy (the version the client accepted) names. A quote
  reads the visit as booked: a fee settled later takes what is left of a deposit or prepayment then.
- The timeline an admin reads: the visit's messages, its ledger, and its current execution with a link to it
  in the Step Functions console.
- The client's standing: strikes, the prepay flag, balances, whether a card is on file.
- Admin actions that were raw events only: waive a fee (the same waiver run ``FeeWaived`` starts) and lift the
  prepay requirement (as ``PrepayRequirementCleared`` does).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from medspa.domain.booking import OPEN_STATUSES, Appointment
from medspa.domain.client import Client
from medspa.ports.store import Stores
from medspa.domain import engine
from medspa.domain.keys import appointment_key, client_key
from medspa.money import Money
from medspa.policy.loader import PolicyPacks
from medspa.policy.schema import PolicyPack
from medspa.ports import Executions, StartedExecution
from medspa.services.settlement import CARD_PURPOSES
from medspa.services.spa_desk_errors import NotFound, NotOpen, NotWaivable


class _Answer(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True)


class ClientStanding(_Answer):
    client_id: str
    strikes: int
    prepay_required: bool
    card_on_file: bool
    outstanding: tuple[Money, ...]
    credit: tuple[Money, ...]


class BookingRequirements(_Answer):
    client_id: str
    location_id: str
    party_size: int
    prepay_in_full: bool
    card_on_file_required: bool
    card_on_file: bool
    gift_certificate_accepted: bool
    restricted_booking_times: bool
    outstanding_balance_due: tuple[Money, ...]


class QuotedStep(_Answer):
    source: str
    amount: Money
    sessions: int = 0


class CancellationQuote(_Answer):
    appointment_id: str
    kind: Literal["cancel", "reschedule"]
    at: AwareDatetime
    late: bool
    free_until: AwareDatetime
    fee: Money | None
    taken_from: tuple[QuotedStep, ...]
    policy_version: str


class TimelineEntry(_Answer):
    at: AwareDatetime | None
    what: Literal["message", "ledger"]
    kind: str
    status: str
    amount: Money | None = None
    entry_id: str | None = None


class Timeline(_Answer):
    appointment_id: str
    status: str
    starts_at: AwareDatetime
    execution_name: str | None
    execution_console_url: str | None
    execution_starts_at: AwareDatetime | None = Field(
        None, description="When a schedule starts (or started) the run, shortly before its first step; the console "
                          "lists it from then")
    entries: tuple[TimelineEntry, ...]


def _amounts(balances: Mapping[str, int]) -> tuple[Money, ...]:
    return tuple(Money(amount=amount, currency=currency) for currency, amount in sorted(balances.items()) if amount)


def console_url(execution_arn: str) -> str:
    region = execution_arn.split(":")[3]
    return f"https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution_arn}"


class SpaDesk:
    def __init__(self, store: Stores, packs: Mapping[str, PolicyPack], executions: Executions) -> None:
        self._store = store
        self._packs = PolicyPacks.of(packs)
        self._executions = executions

    def standing(self, spa_id: str, client_id: str) -> ClientStanding:
        client = self._client(spa_id, client_id)
        return ClientStanding(client_id=client_id, strikes=client.strike_count, prepay_required=client.prepay_required,
                              card_on_file=bool(client.stripe_customer_id and client.default_payment_method_id),
                              outstanding=_amounts(client.outstanding), credit=_amounts(client.credit))

    def booking_requirements(self, spa_id: str, client_id: str | None, location_id: str,
                             party_size: int) -> BookingRequirements:
        """A client the system has not met yet has no strikes and owes nothing."""
        pack = self._packs[location_id] if location_id in self._packs else None
        if pack is None or pack.spa.id != spa_id:
            raise NotFound("no location with this id at this spa")
        client = self._store.clients.get(client_key(spa_id, client_id)) if client_id else None
        strikes = client.strike_count if client else 0
        required = engine.booking_requirements(pack, party_size, strikes)
        return BookingRequirements(
            client_id=client_id or "", location_id=location_id, party_size=party_size,
            prepay_in_full=required.prepay_in_full or bool(client and client.prepay_required),
            card_on_file_required=required.card_on_file,
            card_on_file=bool(client and client.stripe_customer_id and client.default_payment_method_id),
            gift_certificate_accepted=required.gift_certificate_accepted,
            restricted_booking_times=required.restricted_booking_times,
            outstanding_balance_due=_amounts(client.outstanding) if client else ())

    def cancellation_quote(self, spa_id: str, appointment_id: str, kind: Literal["cancel", "reschedule"],
                           now: datetime) -> CancellationQuote:
        stored = self._appointment(spa_id, appointment_id)
        if stored.status not in OPEN_STATUSES:
            raise NotOpen(f"the visit is {stored.status.value}: there is nothing to {kind}")
        pack = self._packs.for_visit(stored)
        visit = stored.to_domain()
        decision = engine.classify_cancellation(pack, visit, now, kind=kind)
        fee = engine.fee_for(pack, visit, decision.fee_reason) if decision.fee_reason else None
        steps = engine.settlement_plan(pack, visit, fee).steps if fee and not fee.is_zero else ()
        return CancellationQuote(
            appointment_id=appointment_id, kind=kind, at=now, late=decision.classification == "late",
            free_until=visit.starts_at - decision.window, fee=fee if steps else None,
            taken_from=tuple(QuotedStep(source=s.source, amount=s.amount, sessions=s.sessions) for s in steps),
            policy_version=pack.policy_version)

    def timeline(self, spa_id: str, appointment_id: str) -> Timeline:
        stored = self._appointment(spa_id, appointment_id)
        messages = [TimelineEntry(at=m.sent_at or m.due_at, what="message", kind=m.kind, status=m.status, amount=m.fee)
                    for m in stored.messages]
        ledger = [TimelineEntry(at=e.created_at, what="ledger", kind=e.purpose, status=e.status.value, amount=e.amount,
                                entry_id=e.entry_id.partition("#")[2])
                  for e in self._store.ledger.for_appointment(stored.appointment_id)]
        entries = sorted(messages + ledger, key=lambda e: (e.at is None, e.at))
        arn = stored.execution_arn
        return Timeline(appointment_id=appointment_id, status=stored.status.value, starts_at=stored.starts_at,
                        execution_name=stored.execution_name, execution_console_url=console_url(arn) if arn else None,
                        execution_starts_at=stored.run.starts_at if stored.run else None, entries=tuple(entries))

    def waive_fee(self, spa_id: str, appointment_id: str, purpose: str, admin_id: str) -> StartedExecution:
        if purpose not in CARD_PURPOSES:
            raise NotWaivable(f"the fee to waive is one of {', '.join(CARD_PURPOSES)}")
        stored = self._appointment(spa_id, appointment_id)
        return self._executions.start_waiver(stored.appointment_id, purpose, admin_id)

    def clear_prepay(self, spa_id: str, client_id: str, admin_id: str, now: datetime) -> ClientStanding:
        client = self._client(spa_id, client_id)
        if client.prepay_required:
            self._store.clients.clear_prepay_required(client.client_id, admin_id, now)
        return self.standing(spa_id, client_id)

    def _client(self, spa_id: str, client_id: str) -> Client:
        client = self._store.clients.get(client_key(spa_id, client_id))
        if client is None or client.erased:
            raise NotFound("no client with this id at this spa")
        return client

    def _appointment(self, spa_id: str, appointment_id: str) -> Appointment:
        stored = self._store.appointments.get(appointment_key(spa_id, appointment_id))
        if stored is None:
            raise NotFound("no appointment with this id at this spa")
        return stored
