"""The store in memory: appointments, clients and the ledger in dicts, for fast service tests and the backtest.

Each class implements its port (``medspa.ports.store``) with the semantics of the pynamodb repository beside it,
condition for condition: a conditional write that DynamoDB would refuse is refused here with the same error or
the same "nothing changed" answer, versions move the same way, and what comes back has gone through the same
serialisation (times in UTC, the JSON-held parts of an appointment written and read as JSON).
``tests/integration/test_store_contracts.py`` runs the same assertions against both, so they cannot drift.

Nothing here is thread-safe: one process, one engine.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from operator import attrgetter
from typing import Any, TypeVar

from pydantic import BaseModel

from medspa.domain.appointment import PaymentContext, Service
from medspa.domain.booking import (
    Appointment,
    AppointmentBooking,
    AppointmentStatus,
    BookingFacts,
    CardCheck,
    FeeState,
    LifecycleOutcome,
    LifecycleRun,
    MessageLog,
    MessageResult,
)
from medspa.domain.client import Channel, Client, ClientProfile, Strike
from medspa.domain.ledger import STRIPE_KEY_PREFIX, EntryKind, EntryStatus, LedgerEntry, ledger_entry_id, \
    stripe_idempotency_key
from medspa.money import Money
from medspa.ports.store import (
    LEDGER_OUTCOMES,
    AppointmentNotFound,
    ClientErased,
    ClientNotFound,
    ConcurrentUpdate,
    ConflictingEvent,
    InsufficientBalance,
    LedgerConflict,
    LedgerEntryNotFound,
    StaleVersion,
    UpsertResult,
)

from .consent import InMemoryConsent
from .courses import InMemoryCourses
from .memberships import InMemoryMemberships

_REASON = re.compile(r"^[a-z][a-z0-9_]*$")
_E164 = re.compile(r"^\+[1-9]\d{1,14}$")


def _utc(value: datetime) -> datetime:
    """What DynamoDB gives back for a time: the same instant, in UTC (``models.utc_iso`` refuses naive times)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: pass a UTC-aware time")
    return value.astimezone(UTC)


class _Shared(dict[str, Any]):
    """The one mutable kind of field in what a read gives back (an appointment's fees, a client's balances), made
    read-only, so one read-back can be handed to every caller with nothing to copy: changing it raises, where a
    plain copy would have changed only the caller's. A copy of it is a plain dict again."""

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("read from the store, shared with every reader: copy it (dict(...)) to change it")

    __setitem__ = __delitem__ = __ior__ = clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]

    def __copy__(self) -> dict[str, Any]:
        return dict(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        return copy.deepcopy(dict(self), memo)

    def __reduce__(self) -> tuple[type[dict[str, Any]], tuple[dict[str, Any]]]:
        return dict, (dict(self),)


# ------------------------------------------------------------------------------------------------ appointments

_Part = TypeVar("_Part", bound=BaseModel)


@lru_cache(maxsize=1 << 16)
def _read(model: type[_Part], text: str) -> _Part:
    """A JSON-held part read back, once per distinct text: the parts are frozen models of frozen values, so one
    reading can be handed to every caller, and a changed part is a new text. The backtest reads each appointment
    tens of times between two writes; parsing every time was most of its cost."""
    return model.model_validate_json(text)


def _effective_status(item: dict[str, Any], outcome: LifecycleOutcome | None) -> AppointmentStatus:
    if outcome is not None and outcome.revision == (item.get("revision") or 0) and outcome.status != "attended":
        return AppointmentStatus(outcome.status)
    return AppointmentStatus(item["status"])


def _to_appointment(item: dict[str, Any]) -> Appointment:
    outcome = _read(LifecycleOutcome, item["outcome"]) if item.get("outcome") else None
    messages = sorted((_read(MessageLog, v) for v in item["messages"].values()), key=lambda m: (m.due_at, m.key))
    return Appointment(
        revision=item.get("revision") or 0,
        version_revision=item.get("version_revision") or 0,
        version_stored_at=item.get("version_stored_at"),
        booking_status=AppointmentStatus(item["status"]),
        facts=_read(BookingFacts, item["facts"]) if item.get("facts") else BookingFacts(),
        messages=tuple(messages),
        fees={k: _read(FeeState, v) for k, v in item["fees"].items()},
        outcome=outcome,
        card_check=_read(CardCheck, item["card_check"]) if item.get("card_check") else None,
        told_booking_site=frozenset(item.get("told_booking_site") or ()),
        run=_read(LifecycleRun, item["run"]) if item.get("run") else None,
        appointment_id=item["appointment_id"],
        client_id=item["client_id"],
        location_id=item["location_id"],
        policy_version=item["policy_version"],
        service=item["service"],
        starts_at=item["starts_at"],
        party_size=item["party_size"],
        status=_effective_status(item, outcome),
        booking_version=item["booking_version"],
        last_event_id=item.get("last_event_id"),
        payment=item.get("payment") or PaymentContext(),
        execution_name=item.get("execution_name"),
        execution_arn=item.get("execution_arn"),
        confirmed_at=item.get("confirmed_at"),
        checked_in_at=item.get("checked_in_at"),
        client_confirmed_at=item.get("client_confirmed_at"),
        client_confirmed_via=item.get("client_confirmed_via"),
        created_at=item["created_at"],
        updated_at=item["updated_at"],
        record_version=item["record_version"],
    )


@lru_cache(maxsize=1 << 14)
def _held_event(text: str) -> tuple[str, str]:
    """A kept event as ``history`` gives it back: each event is read again at every later event of its visit."""
    held = json.loads(text)
    return held["detail_type"], json.dumps(held["detail"])


@dataclass
class InMemoryAppointments:
    """``AppointmentStore`` in a dict of items shaped like the DynamoDB ones (``AppointmentRepository``)."""

    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    _read_back: dict[str, tuple[dict[str, Any], int, Appointment]] = field(
        default_factory=dict, init=False, repr=False, compare=False)
    _of_client: dict[str, set[str]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def get(self, appointment_id: str) -> Appointment | None:
        item = self.items.get(appointment_id)
        return self._read(item) if item is not None and item.get("client_id") is not None else None

    def _read(self, item: dict[str, Any]) -> Appointment:
        """The appointment ``item`` holds, built once per record version: every write here moves the version,
        as every conditional write in DynamoDB does, so an item at the same version reads back the same. It is
        frozen and its ``fees`` read-only, so every reader shares it and none can change what is stored."""
        held = self._read_back.get(item["appointment_id"])
        if held is None or held[0] is not item or held[1] != item["record_version"]:
            built = _to_appointment(item)
            held = (item, item["record_version"], built.model_copy(update={"fees": _Shared(built.fees)}))
            self._read_back[item["appointment_id"]] = held
        return held[2]

    def _require(self, appointment_id: str) -> Appointment:
        current = self.get(appointment_id)
        if current is None:
            raise AppointmentNotFound(appointment_id)
        return current

    def _booked(self, appointment_id: str) -> dict[str, Any] | None:
        """The item a lifecycle write lands on (``appointment_id.exists()``); one with no booking yet counts as
        none here, where DynamoDB would write and then fail to read an appointment back."""
        item = self.items.get(appointment_id)
        return item if item is not None and item.get("client_id") is not None else None

    def _written(self, item: dict[str, Any], **changes: Any) -> Appointment:
        item.update(changes)
        item["record_version"] = item.get("record_version", 0) + 1
        return self._read(item)

    def upsert_from_booking(self, booking: AppointmentBooking, now: datetime) -> UpsertResult:
        now = _utc(now)
        item = self.items.get(booking.appointment_id)
        version = booking.booking_version
        newer = item is None or item.get("client_id") is None or item["booking_version"] < version
        refold = (not newer and bool(booking.revision) and item is not None
                  and item["booking_version"] == version and item.get("revision") is not None
                  and item["revision"] < booking.revision)
        if not newer and not refold:
            return UpsertResult(applied=False, appointment=self._require(booking.appointment_id))
        item = self.items.setdefault(booking.appointment_id, {"appointment_id": booking.appointment_id})
        if item.get("client_id") != booking.client_id:  # the index for_client reads, as the GSI is kept
            self._of_client.get(item.get("client_id") or "", set()).discard(booking.appointment_id)
            self._of_client.setdefault(booking.client_id, set()).add(booking.appointment_id)
        item.update(
            client_id=booking.client_id, location_id=booking.location_id, policy_version=booking.policy_version,
            service=Service.model_validate(booking.service.model_dump()), starts_at=_utc(booking.starts_at),
            party_size=booking.party_size, status=booking.status.value, booking_version=version,
            last_event_id=booking.event_id, payment=PaymentContext.model_validate(booking.payment.model_dump()),
            created_at=item.get("created_at") or now, updated_at=now, revision=booking.revision,
            facts=booking.facts.model_dump_json(exclude_defaults=True), version_stored_at=now,
            messages=item.get("messages") or {}, fees=item.get("fees") or {},
        )
        if newer:
            item["version_revision"] = booking.revision
        item["record_version"] = item.get("record_version", 0) + 1
        return UpsertResult(applied=True, appointment=self._read(item))

    def record_event(self, appointment_id: str, booking_version: int, detail_type: str, event_id: str,
                     detail_json: str, now: datetime) -> bool:
        item = self.items.setdefault(appointment_id, {"appointment_id": appointment_id})
        for name in ("events", "messages", "fees"):
            item.setdefault(name, {})
        item.setdefault("created_at", _utc(now))
        held = item["events"].get(str(booking_version))
        if held is None:
            entry = {"detail_type": detail_type, "event_id": event_id, "detail": json.loads(detail_json)}
            item["events"][str(booking_version)] = json.dumps(entry)
            item["record_version"] = item.get("record_version", 0) + 1
            return True
        held_id = json.loads(held)["event_id"]
        if held_id != event_id:
            raise ConflictingEvent(f"booking_version {booking_version} of {appointment_id} is already event "
                                   f"{held_id}, not {event_id}")
        return False

    def history(self, appointment_id: str) -> list[tuple[str, str]]:
        item = self.items.get(appointment_id)
        if item is None:
            return []
        return [_held_event(v) for _, v in sorted((item.get("events") or {}).items(), key=lambda kv: int(kv[0]))]

    def _update(self, appointment_id: str, **changes: Any) -> Appointment:
        item = self._booked(appointment_id)
        if item is None:
            raise AppointmentNotFound(appointment_id)
        return self._written(item, **changes)

    def record_message(self, appointment_id: str, log: MessageLog, now: datetime) -> Appointment:
        item = self._booked(appointment_id)
        if item is None:
            raise AppointmentNotFound(appointment_id)
        messages = {**item["messages"], log.key: log.model_dump_json(exclude_defaults=True)}
        return self._written(item, messages=messages, updated_at=_utc(now))

    def record_delivery(self, appointment_id: str, key: str, result: MessageResult, now: datetime) -> Appointment:
        stored = self._require(appointment_id)
        logged = stored.message(key)
        if logged is None:
            return stored
        return self.record_message(appointment_id, logged.delivered(result, now), now)

    def record_fee(self, appointment_id: str, state: FeeState) -> Appointment:
        item = self._booked(appointment_id)
        if item is None:
            raise AppointmentNotFound(appointment_id)
        fees = {**item["fees"], state.reason: state.model_dump_json(exclude_defaults=True)}
        return self._written(item, fees=fees, updated_at=_utc(state.updated_at))

    def record_told(self, appointment_id: str, key: str, now: datetime) -> Appointment:
        item = self._booked(appointment_id)
        if item is None:
            raise AppointmentNotFound(appointment_id)
        told = set(item.get("told_booking_site") or ()) | {key}
        return self._written(item, told_booking_site=told, updated_at=_utc(now))

    def record_card_check(self, appointment_id: str, check: CardCheck) -> Appointment:
        return self._update(appointment_id, card_check=check.model_dump_json(exclude_defaults=True),
                            updated_at=_utc(check.checked_at))

    def record_outcome(self, appointment_id: str, outcome: LifecycleOutcome) -> Appointment:
        item = self.items.get(appointment_id)
        if item is None or item.get("revision") is None or item["revision"] != outcome.revision:
            return self._require(appointment_id)
        return self._written(item, outcome=outcome.model_dump_json(), updated_at=_utc(outcome.at))

    def set_execution(self, appointment_id: str, booking_version: int, execution_name: str, execution_arn: str,
                      now: datetime, revision: int | None = None) -> Appointment:
        item = self.items.get(appointment_id)
        if item is None or item.get("booking_version") != booking_version or (
                revision and item.get("revision") != revision):
            current = self._require(appointment_id)
            raise StaleVersion(
                f"appointment {appointment_id} is at booking version {current.booking_version}, not {booking_version}")
        return self._written(item, execution_name=execution_name, execution_arn=execution_arn, updated_at=_utc(now))

    def choose_run(self, appointment_id: str, booking_version: int, revision: int, run: LifecycleRun,
                   now: datetime) -> Appointment:
        item = self.items.get(appointment_id)
        if item is None or item.get("booking_version") != booking_version or (item.get("revision") or 0) != revision:
            current = self._require(appointment_id)
            raise StaleVersion(f"appointment {appointment_id} is at fold {current.booking_version}.{current.revision}, "
                               f"not {booking_version}.{revision}")
        return self._written(item, run=run.model_dump_json(), updated_at=_utc(now))

    def mark_status(self, appointment_id: str, status: AppointmentStatus, expected_version: int,
                    now: datetime) -> Appointment:
        status, now = AppointmentStatus(status), _utc(now)
        item = self.items.get(appointment_id)
        if item is None or item.get("record_version") != expected_version:
            current = self._require(appointment_id)
            raise ConcurrentUpdate(
                f"appointment {appointment_id} is at record version {current.record_version}, not {expected_version}")
        changes: dict[str, Any] = {"status": status.value, "updated_at": now}
        if status is AppointmentStatus.CONFIRMED:
            changes["confirmed_at"] = item.get("confirmed_at") or now
        if status is AppointmentStatus.CHECKED_IN:
            changes["checked_in_at"] = item.get("checked_in_at") or now
        return self._written(item, **changes)

    def record_client_confirmation(self, appointment_id: str, channel: str, at: datetime) -> Appointment:
        item = self._booked(appointment_id)
        if item is None:
            raise AppointmentNotFound(appointment_id)
        return self._written(item, client_confirmed_at=item.get("client_confirmed_at") or _utc(at),
                             client_confirmed_via=item.get("client_confirmed_via") or channel, updated_at=_utc(at))

    def erase_personal_data(self, appointment_id: str, scrub: Callable[[dict[str, Any]], dict[str, Any]],
                            now: datetime) -> tuple[int, int]:
        item = self.items.get(appointment_id)
        if item is None:
            return 0, 0
        events, changed = {}, 0
        for version, text in (item.get("events") or {}).items():
            entry = json.loads(text)
            scrubbed = scrub(entry["detail"])
            changed += scrubbed != entry["detail"]
            events[version] = json.dumps({**entry, "detail": scrubbed})
        messages, skipped = {}, 0
        for key, text in (item.get("messages") or {}).items():
            log = MessageLog.model_validate_json(text)
            if log.status == "due":
                skipped += 1
                log = log.model_copy(update={"status": "skipped", "results": (
                    MessageResult(channel="any", status="skipped_client_erased"),)})
            messages[key] = log.model_dump_json(exclude_defaults=True)
        if not changed and not skipped:
            return 0, 0
        item.update(events=events, messages=messages, updated_at=_utc(now))
        item["record_version"] = item.get("record_version", 0) + 1
        return changed, skipped

    def for_client(self, client_id: str, starting_from: datetime | None = None) -> list[Appointment]:
        held = (self.items.get(appointment_id) for appointment_id in self._of_client.get(client_id, ()))
        found = [item for item in held if item is not None and item.get("client_id") == client_id
                 and (starting_from is None or item["starts_at"] >= starting_from)]
        return [self._read(i) for i in sorted(found, key=lambda i: (i["starts_at"], i["appointment_id"]))]


# ------------------------------------------------------------------------------------------------ clients


_STRIKE_ORDER = attrgetter("at", "appointment_id", "reason")


def _to_client(item: dict[str, Any]) -> Client:
    strikes = sorted(item["strikes"].values(), key=_STRIKE_ORDER)
    return Client(
        client_id=item["client_id"], spa_id=item["spa_id"], phone=item.get("phone"), email=item.get("email"),
        sms_opt_out=bool(item.get("sms_opt_out")), email_opt_out=bool(item.get("email_opt_out")),
        sms_consent=item.get("sms_consent") is not False, email_consent=item.get("email_consent") is not False,
        stripe_customer_id=item.get("stripe_customer_id"),
        default_payment_method_id=item.get("default_payment_method_id"),
        strikes=tuple(strikes), prepay_required=bool(item.get("prepay_required")),
        prepay_set_at=item.get("prepay_set_at"), prepay_cleared_by=item.get("prepay_cleared_by"),
        prepay_cleared_at=item.get("prepay_cleared_at"),
        outstanding=dict(item["outstanding"]), credit=dict(item["credit"]),
        created_at=item["created_at"], updated_at=item["updated_at"], erased_at=item.get("erased_at"),
        stripe_customers=tuple(sorted(item.get("stripe_customer_ids") or ())),
        known_contacts=tuple(sorted((Channel(channel), address) for channel, _, address
                                    in (k.partition("#") for k in item.get("known_contacts") or ()))),
        first_name=item.get("first_name"),
    )


def _contacts(phone: str | None, email: str | None) -> set[str]:
    return {f"{channel}#{address}" for channel, address in ((Channel.SMS, phone), (Channel.EMAIL, email)) if address}


@dataclass
class InMemoryClients:
    """``ClientStore`` in a dict (``ClientRepository``'s conditions, one write at a time).

    A client is read far more often than written (every plan asks for strikes and balances), so what an item
    reads back as is kept until the next write: every writer opens its item through :meth:`_require` or
    :meth:`_opened`, which forget it."""

    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    _read_back: dict[str, tuple[dict[str, Any], Client]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    def _require(self, client_id: str) -> dict[str, Any]:
        item = self.items.get(client_id)
        if item is None:
            raise ClientNotFound(client_id)
        return self._opened(item)

    def _opened(self, item: dict[str, Any]) -> dict[str, Any]:
        """``item``, about to be written: its read-back is built again on the next read."""
        self._read_back.pop(item["client_id"], None)
        return item

    def _read(self, item: dict[str, Any]) -> Client:
        """The client ``item`` holds, shared by every reader: frozen, its balances read-only."""
        held = self._read_back.get(item["client_id"])
        if held is None or held[0] is not item:
            built = _to_client(item)
            held = (item, built.model_copy(update={"outstanding": _Shared(built.outstanding),
                                                   "credit": _Shared(built.credit)}))
            self._read_back[item["client_id"]] = held
        return held[1]

    def get(self, client_id: str) -> Client | None:
        item = self.items.get(client_id)
        return self._read(item) if item is not None else None

    def find_by_phone(self, phone: str) -> list[Client]:
        if not _E164.match(phone or ""):
            return []
        return [self._read(i) for _, i in sorted(self.items.items()) if i.get("phone") == phone]

    def with_email(self, spa_id: str, email: str) -> list[Client]:
        wanted = email.strip().lower()
        return [self._read(i) for _, i in sorted(self.items.items())
                if i.get("spa_id") == spa_id and i.get("email") and i["email"].strip().lower() == wanted]

    def save_profile(self, profile: ClientProfile, now: datetime) -> Client:
        now = _utc(now)
        item = self._opened(self.items.setdefault(profile.client_id, {"client_id": profile.client_id}))
        item.update(profile.model_dump(exclude={"client_id"}, exclude_none=True))
        if profile.stripe_customer_id:
            item["stripe_customer_ids"] = set(item.get("stripe_customer_ids") or ()) | {profile.stripe_customer_id}
        if contacts := _contacts(profile.phone, profile.email):
            item["known_contacts"] = set(item.get("known_contacts") or ()) | contacts
        for name, default in (("sms_opt_out", False), ("email_opt_out", False), ("prepay_required", False),
                              ("strikes", {}), ("outstanding", {}), ("credit", {}), ("created_at", now)):
            if item.get(name) is None:
                item[name] = default
        item["updated_at"] = now
        return _to_client(item)

    def add_strike(self, client_id: str, appointment_id: str, reason: str, at: datetime) -> tuple[int, bool]:
        if not appointment_id or not _REASON.match(reason):
            raise ValueError(f"a strike needs an appointment id and a lower_snake_case reason, got {reason!r}")
        item = self._require(client_id)
        key = f"{appointment_id}#{reason}"
        if key in item["strikes"]:
            return len(item["strikes"]), False
        item["strikes"] = {**item["strikes"], key: Strike(appointment_id=appointment_id, reason=reason, at=_utc(at))}
        item["updated_at"] = _utc(at)
        return len(item["strikes"]), True

    def remove_strike(self, client_id: str, appointment_id: str, reason: str, now: datetime) -> int | None:
        item = self.items.get(client_id)
        key = f"{appointment_id}#{reason}"
        if item is None or key not in item["strikes"]:
            return None
        self._opened(item)
        item["strikes"] = {k: v for k, v in item["strikes"].items() if k != key}
        item["updated_at"] = _utc(now)
        return len(item["strikes"])

    def set_prepay_required(self, client_id: str, now: datetime) -> Client:
        item = self._require(client_id)
        if not item.get("prepay_required"):
            item.update(prepay_required=True, prepay_set_at=_utc(now), updated_at=_utc(now), prepay_cleared_by=None,
                        prepay_cleared_at=None)
        return _to_client(item)

    def clear_prepay_required(self, client_id: str, cleared_by: str, now: datetime) -> Client:
        item = self._require(client_id)
        if item.get("prepay_required") is True:
            item.update(prepay_required=False, prepay_cleared_by=cleared_by, prepay_cleared_at=_utc(now),
                        updated_at=_utc(now))
        return _to_client(item)

    def set_opt_out(self, client_id: str, channel: Channel, opted_out: bool, now: datetime) -> Client:
        item = self._require(client_id)
        item["sms_opt_out" if Channel(channel) is Channel.SMS else "email_opt_out"] = opted_out
        item["updated_at"] = _utc(now)
        return _to_client(item)

    def add_outstanding(self, client_id: str, amount: Money, entry_id: str, now: datetime) -> Money:
        return self._move("outstanding", client_id, amount, entry_id, now, increase=True)

    def settle_outstanding(self, client_id: str, amount: Money, entry_id: str, now: datetime) -> Money:
        return self._move("outstanding", client_id, amount, entry_id, now, increase=False)

    def add_credit(self, client_id: str, amount: Money, entry_id: str, now: datetime) -> Money:
        return self._move("credit", client_id, amount, entry_id, now, increase=True)

    def spend_credit(self, client_id: str, amount: Money, entry_id: str, now: datetime) -> Money:
        return self._move("credit", client_id, amount, entry_id, now, increase=False)

    def _move(self, balance: str, client_id: str, amount: Money, entry_id: str, now: datetime, *,
              increase: bool) -> Money:
        if amount.amount <= 0:
            raise ValueError(f"a balance movement must be positive, got {amount}")
        item = self._require(client_id)
        applied: set[str] = item.setdefault("applied_entries", set())
        held: int | None = item[balance].get(amount.currency)
        if entry_id not in applied:
            if not increase and (held is None or held < amount.amount):
                raise InsufficientBalance(f"{client_id} holds less {balance} than {amount}")
            held = (held or 0) + (amount.amount if increase else -amount.amount)
            item[balance] = {**item[balance], amount.currency: held}
            applied.add(entry_id)
            item["updated_at"] = _utc(now)
        return Money(amount=held or 0, currency=amount.currency)

    def correct_contact(self, client_id: str, *, phone: str | None, email: str | None, now: datetime,
                        first_name: str | None = None) -> Client:
        if phone is not None and not _E164.match(phone):
            raise ValueError("phone must be E.164")
        item = self._require(client_id)
        if item.get("erased_at") is not None:
            raise ClientErased(client_id)
        changes = {name: value for name, value in (("first_name", first_name), ("phone", phone), ("email", email))
                   if value is not None}
        item.update(changes, updated_at=_utc(now))
        if contacts := _contacts(phone, email):
            item["known_contacts"] = set(item.get("known_contacts") or ()) | contacts
        return _to_client(item)

    def mark_erased(self, client_id: str, now: datetime) -> Client:
        item = self._require(client_id)
        item.update(erased_at=item.get("erased_at") or _utc(now), updated_at=_utc(now))
        return _to_client(item)

    def forget(self, client_id: str, now: datetime) -> Client:
        item = self._require(client_id)
        if item.get("erased_at") is None:
            raise ValueError(f"{client_id} is not marked erased: mark_erased comes first")
        for name in ("first_name", "phone", "email", "stripe_customer_id", "stripe_customer_ids", "known_contacts",
                     "default_payment_method_id", "sms_consent", "email_consent", "prepay_set_at",
                     "prepay_cleared_by", "prepay_cleared_at"):
            item.pop(name, None)
        item.update(sms_opt_out=False, email_opt_out=False, strikes={}, prepay_required=False, updated_at=_utc(now))
        return _to_client(item)


# ------------------------------------------------------------------------------------------------ ledger


@dataclass
class InMemoryLedger:
    """``Ledger`` in a dict keyed by entry id (``LedgerRepository``: first write wins, outcomes move forward once)."""

    entries: dict[str, LedgerEntry] = field(default_factory=dict)

    def get(self, entry_id: str) -> LedgerEntry | None:
        return self.entries.get(entry_id)

    def record_intent(self, *, appointment_id: str, client_id: str, purpose: str, kind: EntryKind, amount: Money,
                      now: datetime, attempt: int = 1, entry_id: str | None = None,
                      settles: Money | None = None) -> LedgerEntry:
        if amount.amount <= 0:
            raise ValueError(f"a ledger amount must be positive (the kind carries the direction), got {amount}")
        if settles is not None and (settles.currency != amount.currency or not 0 <= settles.amount <= amount.amount):
            raise ValueError(f"the part settled ({settles}) must lie between nothing and the amount ({amount})")
        entry_id = entry_id or ledger_entry_id(appointment_id, purpose, attempt)
        existing = self.entries.get(entry_id)
        if existing is not None:
            return existing
        if not appointment_id or not client_id:
            raise ValueError("a ledger entry needs an appointment id and a client id (DynamoDB indexes both)")
        entry = LedgerEntry(
            entry_id=entry_id, appointment_id=appointment_id, client_id=client_id, purpose=purpose, attempt=attempt,
            kind=EntryKind(kind), amount=Money(amount=amount.amount, currency=amount.currency),
            status=EntryStatus.PENDING, stripe_idempotency_key=stripe_idempotency_key(entry_id),
            stripe_payment_intent_id=None, stripe_refund_id=None, decline_code=None, failure_message=None,
            created_at=now, updated_at=now,
            settles=Money(amount=settles.amount, currency=amount.currency) if settles is not None else None)
        self.entries[entry_id] = entry.model_copy(update={"created_at": _utc(now), "updated_at": _utc(now)})
        return entry  # as written, in the caller's zone; read back later, in UTC (as from DynamoDB)

    def record_outcome(self, entry_id: str, status: EntryStatus, now: datetime, *,
                       stripe_payment_intent_id: str | None = None, stripe_refund_id: str | None = None,
                       decline_code: str | None = None, failure_message: str | None = None,
                       keep_time: bool = False) -> LedgerEntry:
        status = EntryStatus(status)
        if status not in LEDGER_OUTCOMES:
            raise ValueError(f"{status} is not an outcome")
        current = self.entries.get(entry_id)
        if current is None:
            raise LedgerEntryNotFound(entry_id)
        if current.status in LEDGER_OUTCOMES[status]:
            changes: dict[str, Any] = {"status": status} | ({} if keep_time else {"updated_at": _utc(now)})
            for name, value in (("stripe_payment_intent_id", stripe_payment_intent_id),
                                ("stripe_refund_id", stripe_refund_id), ("decline_code", decline_code),
                                ("failure_message", failure_message)):
                if value is not None:
                    changes[name] = value
            self.entries[entry_id] = current.model_copy(update=changes)
            return self.entries[entry_id]
        if current.status is status:
            return current
        raise LedgerConflict(f"ledger entry {entry_id} is {current.status}; it cannot become {status}")

    def _sorted(self, found: list[LedgerEntry]) -> list[LedgerEntry]:
        return sorted(found, key=lambda e: (e.created_at, e.entry_id))

    def for_appointment(self, appointment_id: str) -> list[LedgerEntry]:
        return self._sorted([e for e in self.entries.values() if e.appointment_id == appointment_id])

    def for_client(self, client_id: str) -> list[LedgerEntry]:
        return self._sorted([e for e in self.entries.values() if e.client_id == client_id])

    def for_stripe_ref(self, ledger_ref: str) -> LedgerEntry | None:
        key = f"{STRIPE_KEY_PREFIX}{ledger_ref}"
        return next((e for e in self.entries.values() if e.stripe_idempotency_key == key), None)


# ------------------------------------------------------------------------------------------------ the bundle


@dataclass
class InMemoryStore:
    """Every store in memory, by the attribute names of ``Store``: what a service is built with in a unit test or
    the backtest."""

    appointments: InMemoryAppointments = field(default_factory=InMemoryAppointments)
    clients: InMemoryClients = field(default_factory=InMemoryClients)
    ledger: InMemoryLedger = field(default_factory=InMemoryLedger)
    consent: InMemoryConsent = field(default_factory=InMemoryConsent)
    memberships: InMemoryMemberships = field(default_factory=InMemoryMemberships)
    courses: InMemoryCourses = field(default_factory=InMemoryCourses)
