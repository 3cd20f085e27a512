"""The data the services keep: appointments, clients, the money ledger and prepaid courses, as typing Protocols.

Each Protocol lists exactly the calls the services make; the pynamodb repositories (``medspa.adapters.store``)
implement them, and so do the in-memory ones beside them (``medspa.adapters.store.memory``), held to the same
contract by ``tests/integration/test_store_contracts.py``. What each call guarantees (idempotency, conditional
writes, which error a conflict raises) is written on the call here, because both implementations must keep it.

The errors live here, below both implementations, so a service catches the same class whichever store it runs
on. Their names are a contract with the state machines (``ErrorEquals: ["StoreUnavailable"]`` matches the
class *name*), so they must never be renamed; ``medspa.adapters.store.errors`` re-exports them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any, NamedTuple, Protocol

from medspa.domain.booking import (
    Appointment,
    AppointmentBooking,
    CardCheck,
    FeeState,
    LifecycleOutcome,
    LifecycleRun,
    MessageLog,
    MessageResult,
)
from medspa.domain.client import Channel, Client, ClientProfile
from medspa.domain.course import Course
from medspa.domain.ledger import EntryKind, EntryStatus, LedgerEntry
from medspa.money import Money
from medspa.ports.consent import ConsentBook
from medspa.ports.memberships import MembershipStore

# ------------------------------------------------------------------------------------------------ errors


class StoreError(Exception):
    """Base of every data-layer failure a caller is expected to handle."""


class NotFound(StoreError, LookupError):
    """The record a write depends on does not exist (yet): the caller's event arrived too early."""


class AppointmentNotFound(NotFound):
    pass


class ClientNotFound(NotFound):
    pass


class LedgerEntryNotFound(NotFound):
    pass


class ClientErased(StoreError):
    """The client's data was erased at their request: nothing may be written about them as a person again."""


class StaleVersion(StoreError):
    """A newer booking version already won: the writer acts on an appointment that no longer exists as it saw it."""


class ConflictingEvent(StoreError, ValueError):
    """Two different booking-site events claim the same booking_version of one appointment."""


class ConcurrentUpdate(StoreError):
    """Someone changed the record after it was read: re-read it and decide again rather than overwrite."""


class InsufficientBalance(StoreError):
    """Settling or spending more than the client owes or holds would invent money."""


class LedgerConflict(StoreError):
    """The outcome would rewrite money history (e.g. a charge that succeeded cannot later be declined)."""


class StoreUnavailable(StoreError):
    """DynamoDB throttled or failed transiently: the same call may succeed later (state machines Retry it)."""


# ------------------------------------------------------------------------------------------------ values


class UpsertResult(NamedTuple):
    applied: bool
    appointment: Appointment


LEDGER_OUTCOMES: dict[EntryStatus, tuple[EntryStatus, ...]] = {
    EntryStatus.SUCCEEDED: (EntryStatus.PENDING, EntryStatus.REQUIRES_ACTION, EntryStatus.DECLINED),
    EntryStatus.DECLINED: (EntryStatus.PENDING, EntryStatus.REQUIRES_ACTION),
    EntryStatus.FAILED: (EntryStatus.PENDING, EntryStatus.REQUIRES_ACTION),
    EntryStatus.REQUIRES_ACTION: (EntryStatus.PENDING,),
}
"""Each outcome a ledger entry may take, and the statuses it may follow. ``requires_action`` is not final: the
client may still authenticate (3-D Secure) and Stripe's webhook then reports success or failure. Nor is a decline:
the client may come back and pay the same intent with another card. Every other move is a ``LedgerConflict``."""


# ------------------------------------------------------------------------------------------------ ports


class AppointmentStore(Protocol):
    """Appointments: the booking site's newest version of each booking, its event history, what the lifecycle added.

    Every write but the history's bumps ``record_version``; writes that need the appointment raise
    ``AppointmentNotFound`` when no record exists.
    """

    def get(self, appointment_id: str) -> Appointment | None:
        """The appointment, or ``None`` while no booking is known (only events that arrived early)."""
        ...

    def upsert_from_booking(self, booking: AppointmentBooking, now: datetime) -> UpsertResult:
        """Apply a snapshot if its ``booking_version`` is newer, or the same version with a higher ``revision``
        (an older event folded in late); otherwise change nothing and return the stored appointment. The
        lifecycle's own fields (messages, fees, execution, outcome) survive."""
        ...

    def record_event(self, appointment_id: str, booking_version: int, detail_type: str, event_id: str,
                     detail_json: str, now: datetime) -> bool:
        """Keep an event in the history: ``False`` if this version already holds it (a duplicate),
        ``ConflictingEvent`` if it holds a different event."""
        ...

    def history(self, appointment_id: str) -> list[tuple[str, str]]:
        """(detail_type, detail JSON) of every kept event, oldest version first; ``[]`` for an unknown id."""
        ...

    def record_message(self, appointment_id: str, log: MessageLog, now: datetime) -> Appointment:
        """Set the message under ``log.key`` (replacing it)."""
        ...

    def record_delivery(self, appointment_id: str, key: str, result: MessageResult, now: datetime) -> Appointment:
        """The outbox's outcome for one channel of the message under ``key`` (:meth:`MessageLog.delivered`),
        written on top of what was read, so two channels settled at once both stay."""
        ...

    def record_fee(self, appointment_id: str, state: FeeState) -> Appointment:
        """Set the fee state under ``state.reason`` (replacing it)."""
        ...

    def record_told(self, appointment_id: str, key: str, now: datetime) -> Appointment:
        """Add ``key`` to what the booking site was told (a set: twice is once)."""
        ...

    def record_card_check(self, appointment_id: str, check: CardCheck) -> Appointment:
        """The latest check replaces the one before."""
        ...

    def record_outcome(self, appointment_id: str, outcome: LifecycleOutcome) -> Appointment:
        """Write the lifecycle's outcome only if the appointment is still at ``outcome.revision``; otherwise return
        it unchanged."""
        ...

    def set_execution(self, appointment_id: str, booking_version: int, execution_name: str, execution_arn: str,
                      now: datetime, revision: int | None = None) -> Appointment:
        """Record the run of ``booking_version`` (and ``revision`` when given); ``StaleVersion`` once a newer
        one is stored."""
        ...

    def choose_run(self, appointment_id: str, booking_version: int, revision: int, run: LifecycleRun,
                   now: datetime) -> Appointment:
        """Record which run acts for the fold at ``booking_version`` and ``revision``; ``StaleVersion`` once a
        newer fold is stored."""
        ...

    def record_client_confirmation(self, appointment_id: str, channel: str, at: datetime) -> Appointment:
        """The client confirmed; the first confirmation's time and channel are kept."""
        ...

    def erase_personal_data(self, appointment_id: str, scrub: Callable[[dict[str, Any]], dict[str, Any]],
                            now: datetime) -> tuple[int, int]:
        """Rewrite the kept events through ``scrub`` and skip the messages still due: (events changed, messages
        skipped); a second run changes nothing."""
        ...

    def for_client(self, client_id: str, starting_from: datetime | None = None) -> list[Appointment]:
        """A client's appointments in start order, from ``starting_from`` on."""
        ...


class ClientStore(Protocol):
    """Clients. Strikes are keyed by (appointment, reason) and balance movements by the ledger entry that justifies
    them, so a repeated call changes nothing; a write about an unknown client raises ``ClientNotFound``."""

    def get(self, client_id: str) -> Client | None: ...

    def find_by_phone(self, phone: str) -> list[Client]:
        """Every client with this E.164 number, by client id; ``[]`` for a malformed number."""
        ...

    def with_email(self, spa_id: str, email: str) -> list[Client]:
        """Every client of ``spa_id`` with this address, compared case-blind, by client id."""
        ...

    def save_profile(self, profile: ClientProfile, now: datetime) -> Client:
        """Create the client or refresh the details given (``None`` leaves a value); strikes, flags and balances
        are untouched."""
        ...

    def add_strike(self, client_id: str, appointment_id: str, reason: str, at: datetime) -> tuple[int, bool]:
        """(strikes now held, whether this call added one); ``ValueError`` for a reason not lower_snake_case."""
        ...

    def remove_strike(self, client_id: str, appointment_id: str, reason: str, now: datetime) -> int | None:
        """The strikes left, or ``None`` if there was no such strike."""
        ...

    def set_prepay_required(self, client_id: str, now: datetime) -> Client:
        """Raise the flag; raising it again keeps the first time."""
        ...

    def clear_prepay_required(self, client_id: str, cleared_by: str, now: datetime) -> Client:
        """Lower a raised flag, keeping who and when; a flag not raised is left as it is."""
        ...

    def set_opt_out(self, client_id: str, channel: Channel, opted_out: bool, now: datetime) -> Client: ...

    def add_outstanding(self, client_id: str, amount: Money, entry_id: str, now: datetime) -> Money:
        """Owed more, once per ``entry_id``; returns what is owed now in that currency."""
        ...

    def settle_outstanding(self, client_id: str, amount: Money, entry_id: str, now: datetime) -> Money:
        """Owed less, once per ``entry_id``; ``InsufficientBalance`` for more than is owed."""
        ...

    def add_credit(self, client_id: str, amount: Money, entry_id: str, now: datetime) -> Money: ...

    def spend_credit(self, client_id: str, amount: Money, entry_id: str, now: datetime) -> Money: ...

    def correct_contact(self, client_id: str, *, phone: str | None, email: str | None, now: datetime,
                        first_name: str | None = None) -> Client:
        """Replace a wrong name, phone or email; ``ClientErased`` for an erased client."""
        ...

    def mark_erased(self, client_id: str, now: datetime) -> Client:
        """The tombstone; the first erasure's time is kept."""
        ...

    def forget(self, client_id: str, now: datetime) -> Client:
        """Remove what reaches or describes the person, keeping key, erasure time and balances; ``ValueError``
        unless marked erased first."""
        ...


class Ledger(Protocol):
    """The money ledger: one entry per intended movement, with a deterministic id, written before Stripe is called."""

    def get(self, entry_id: str) -> LedgerEntry | None: ...

    def record_intent(self, *, appointment_id: str, client_id: str, purpose: str, kind: EntryKind, amount: Money,
                      now: datetime, attempt: int = 1, entry_id: str | None = None,
                      settles: Money | None = None) -> LedgerEntry:
        """Write the pending entry, or return the one already under that id (its amount stands)."""
        ...

    def record_outcome(self, entry_id: str, status: EntryStatus, now: datetime, *,
                       stripe_payment_intent_id: str | None = None, stripe_refund_id: str | None = None,
                       decline_code: str | None = None, failure_message: str | None = None,
                       keep_time: bool = False) -> LedgerEntry:
        """Move an entry forward along ``LEDGER_OUTCOMES``; the same outcome again is a no-op, any other move a
        ``LedgerConflict``; ``LedgerEntryNotFound`` for an unknown id; ``ValueError`` for a status not an outcome."""
        ...

    def for_appointment(self, appointment_id: str) -> list[LedgerEntry]:
        """The visit's entries, oldest first."""
        ...

    def for_client(self, client_id: str) -> list[LedgerEntry]:
        """The client's entries, oldest first."""
        ...

    def for_stripe_ref(self, ledger_ref: str) -> LedgerEntry | None:
        """The entry whose Stripe idempotency key ends in ``ledger_ref`` (Stripe's metadata carries it)."""
        ...


class CourseStore(Protocol):
    """Prepaid courses, each written over the version it was read at."""

    def get(self, course_id: str) -> tuple[Course, int] | None: ...

    def create(self, course: Course, due: tuple[str, date] | None, now: datetime) -> bool: ...

    def replace(self, course: Course, read_version: int, due: tuple[str, date] | None, now: datetime) -> bool: ...

    def due(self, shard: str, on_or_before: date) -> list[str]: ...

    @property
    def due_shards(self) -> int:
        """The by_due_day index's shard count (``medspa.ports.memberships.due_shard``)."""
        ...


class Stores(Protocol):
    """The stores a service reads and writes, by the attribute names of ``medspa.adapters.store.Store``."""

    @property
    def appointments(self) -> AppointmentStore: ...

    @property
    def clients(self) -> ClientStore: ...

    @property
    def ledger(self) -> Ledger: ...

    @property
    def consent(self) -> ConsentBook: ...

    @property
    def courses(self) -> CourseStore: ...

    @property
    def memberships(self) -> MembershipStore: ...


__all__ = [
    "AppointmentNotFound", "AppointmentStore", "ClientErased", "ClientNotFound", "ClientStore",
    "ConcurrentUpdate", "ConflictingEvent", "CourseStore", "InsufficientBalance", "LEDGER_OUTCOMES", "Ledger",
    "LedgerConflict", "LedgerEntryNotFound", "NotFound", "StaleVersion", "StoreError", "StoreUnavailable", "Stores",
    "UpsertResult",
]
