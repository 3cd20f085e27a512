"""Clients: contact details, opt-outs, strikes, the prepay flag and per-currency balances.

Every change here is one conditional UpdateItem, never read-modify-write: a Lambda retried after a
timeout, or two executions settling on the same day, must not double a strike or a balance. Strikes
are keyed by (appointment, reason); balance movements are keyed by the ledger entry that justifies
them and remembered on the client, so applying the same movement again changes nothing.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any


from medspa.domain.client import Channel, Client, ClientProfile, Strike
from medspa.money import Money

from .errors import ClientErased, ClientNotFound, InsufficientBalance
from .models import ClientRecord, update_if, utc_iso

_REASON = re.compile(r"^[a-z][a-z0-9_]*$")
_E164 = re.compile(r"^\+[1-9]\d{1,14}$")


def _plain(value: Any) -> dict[str, Any]:
    return value.as_dict() if value is not None else {}


def _to_client(record: ClientRecord) -> Client:
    strikes = sorted(
        (Strike(appointment_id=s["appointment_id"], reason=s["reason"], at=datetime.fromisoformat(s["at"]))
         for s in _plain(record.strikes).values()),
        key=lambda s: (s.at, s.appointment_id, s.reason),
    )
    return Client(
        client_id=record.client_id,
        spa_id=record.spa_id,
        phone=record.phone,
        email=record.email,
        sms_opt_out=bool(record.sms_opt_out),
        email_opt_out=bool(record.email_opt_out),
        sms_consent=record.sms_consent is not False,
        email_consent=record.email_consent is not False,
        stripe_customer_id=record.stripe_customer_id,
        default_payment_method_id=record.default_payment_method_id,
        strikes=tuple(strikes),
        prepay_required=bool(record.prepay_required),
        prepay_set_at=record.prepay_set_at,
        prepay_cleared_by=record.prepay_cleared_by,
        prepay_cleared_at=record.prepay_cleared_at,
        outstanding={c: int(a) for c, a in _plain(record.outstanding).items()},
        credit={c: int(a) for c, a in _plain(record.credit).items()},
        created_at=record.created_at,
        updated_at=record.updated_at,
        erased_at=record.erased_at,
        stripe_customers=tuple(sorted(record.stripe_customer_ids or ())),
        known_contacts=tuple(sorted((Channel(channel), address) for channel, _, address
                                    in (k.partition("#") for k in record.known_contacts or ()))),
        first_name=record.first_name,
    )


def _contacts(phone: str | None, email: str | None) -> set[str]:
    return {f"{channel}#{address}" for channel, address in ((Channel.SMS, phone), (Channel.EMAIL, email)) if address}


class ClientRepository:
    def __init__(self, model: type[ClientRecord]) -> None:
        self._model = model

    def _record(self, client_id: str) -> ClientRecord | None:
        try:
            return self._model.get(client_id, consistent_read=True)
        except self._model.DoesNotExist:
            return None

    def _require(self, client_id: str) -> ClientRecord:
        record = self._record(client_id)
        if record is None:
            raise ClientNotFound(client_id)
        return record

    def get(self, client_id: str) -> Client | None:
        record = self._record(client_id)
        return _to_client(record) if record else None

    def find_by_phone(self, phone: str) -> list[Client]:
        """Every client (at any spa) with this E.164 number, by client id; ``[]`` for a malformed number.

        Reads the ``by_phone`` index, so a client saved a moment ago may be missing (eventually
        consistent); the phone number is never logged or echoed in an error.
        """
        if not _E164.match(phone or ""):
            return []
        return sorted((_to_client(r) for r in self._model.by_phone.query(phone)), key=lambda c: c.client_id)

    def save_profile(self, profile: ClientProfile, now: datetime) -> Client:
        """Create the client or refresh their details, never touching strikes, flags or balances."""
        m = self._model
        details = profile.model_dump(exclude={"client_id"}, exclude_none=True)
        actions = [getattr(m, name).set(value) for name, value in details.items()]
        if profile.stripe_customer_id:
            actions.append(m.stripe_customer_ids.add({profile.stripe_customer_id}))
        if contacts := _contacts(profile.phone, profile.email):
            actions.append(m.known_contacts.add(contacts))
        actions += [
            m.sms_opt_out.set(m.sms_opt_out | False),
            m.email_opt_out.set(m.email_opt_out | False),
            m.prepay_required.set(m.prepay_required | False),
            m.strikes.set(m.strikes | {}),
            m.outstanding.set(m.outstanding | {}),
            m.credit.set(m.credit | {}),
            m.created_at.set(m.created_at | now),
            m.updated_at.set(now),
        ]
        return _to_client(update_if(m, profile.client_id, actions, None))

    def add_strike(self, client_id: str, appointment_id: str, reason: str, at: datetime) -> tuple[int, bool]:
        """Count a no-show or late cancel once, however often the settlement step is retried: the client's
        strikes, and whether this call added one."""
        if not appointment_id or not _REASON.match(reason):
            raise ValueError(f"a strike needs an appointment id and a lower_snake_case reason, got {reason!r}")
        m = self._model
        strike = m.strikes[f"{appointment_id}#{reason}"]
        actions = [strike.set({"appointment_id": appointment_id, "reason": reason, "at": utc_iso(at)}),
                   m.updated_at.set(at)]
        record = update_if(m, client_id, actions, m.client_id.exists() & strike.does_not_exist())
        return len(_plain((record or self._require(client_id)).strikes)), record is not None

    def remove_strike(self, client_id: str, appointment_id: str, reason: str, now: datetime) -> int | None:
        """Take back a strike the visit no longer earns; the count left, or ``None`` if there was none to take."""
        m = self._model
        strike = m.strikes[f"{appointment_id}#{reason}"]
        record = update_if(m, client_id, [strike.remove(), m.updated_at.set(now)], m.client_id.exists() & strike.exists())
        return len(_plain(record.strikes)) if record is not None else None

    def set_prepay_required(self, client_id: str, now: datetime) -> Client:
        """Flag the client to prepay at booking; setting it again keeps the original time."""
        m = self._model
        actions = [m.prepay_required.set(True), m.prepay_set_at.set(now), m.updated_at.set(now),
                   m.prepay_cleared_by.remove(), m.prepay_cleared_at.remove()]
        not_yet = m.client_id.exists() & (m.prepay_required.does_not_exist() | (m.prepay_required == False))  # noqa: E712
        return _to_client(update_if(m, client_id, actions, not_yet) or self._require(client_id))

    def clear_prepay_required(self, client_id: str, cleared_by: str, now: datetime) -> Client:
        """Staff lift the prepay flag; who did it and when is kept for the audit."""
        m = self._model
        actions = [m.prepay_required.set(False), m.prepay_cleared_by.set(cleared_by),
                   m.prepay_cleared_at.set(now), m.updated_at.set(now)]
        is_set = m.client_id.exists() & (m.prepay_required == True)  # noqa: E712
        return _to_client(update_if(m, client_id, actions, is_set) or self._require(client_id))

    def set_opt_out(self, client_id: str, channel: Channel, opted_out: bool, now: datetime) -> Client:
        m = self._model
        flag = m.sms_opt_out if Channel(channel) is Channel.SMS else m.email_opt_out
        record = update_if(m, client_id, [flag.set(opted_out), m.updated_at.set(now)], m.client_id.exists())
        return _to_client(record or self._require(client_id))

    def add_outstanding(self, client_id: str, amount: Money, entry_id: str, now: datetime) -> Money:
        """An unpaid fee becomes due at the next visit; returns what the client now owes."""
        return self._move("outstanding", client_id, amount, entry_id, now, increase=True)

    def settle_outstanding(self, client_id: str, amount: Money, entry_id: str, now: datetime) -> Money:
        return self._move("outstanding", client_id, amount, entry_id, now, increase=False)

    def add_credit(self, client_id: str, amount: Money, entry_id: str, now: datetime) -> Money:
        return self._move("credit", client_id, amount, entry_id, now, increase=True)

    def spend_credit(self, client_id: str, amount: Money, entry_id: str, now: datetime) -> Money:
        return self._move("credit", client_id, amount, entry_id, now, increase=False)

    def _move(self, balance: str, client_id: str, amount: Money, entry_id: str, now: datetime, *, increase: bool) -> Money:
        if amount.amount <= 0:
            raise ValueError(f"a balance movement must be positive, got {amount}")
        m = self._model
        held = getattr(m, balance)[amount.currency]
        condition = m.client_id.exists() & ~m.applied_entries.contains(entry_id)
        if increase:
            new_value = (held | 0) + amount.amount
        else:
            new_value = held - amount.amount
            condition &= held >= amount.amount
        actions = [held.set(new_value), m.applied_entries.add({entry_id}), m.updated_at.set(now)]
        record = update_if(m, client_id, actions, condition)
        if record is None:
            record = self._require(client_id)
            if entry_id not in (record.applied_entries or set()):
                raise InsufficientBalance(f"{client_id} holds less {balance} than {amount}")
        return Money(amount=int(_plain(getattr(record, balance)).get(amount.currency, 0)), currency=amount.currency)

    # ---------------------------------------------------------------- privacy requests (medspa.services.privacy)

    def with_email(self, spa_id: str, email: str) -> list[Client]:
        """Every client of ``spa_id`` with this address, compared case-blind.

        A scan: there is no email index, and only an erasure asks (is this address anyone else's?),
        rarely enough that an index every booking would pay for is not worth it.
        """
        m, wanted = self._model, email.strip().lower()
        return sorted((_to_client(r) for r in m.scan(m.spa_id == spa_id)
                       if r.email and r.email.strip().lower() == wanted), key=lambda c: c.client_id)

    def correct_contact(self, client_id: str, *, phone: str | None, email: str | None, now: datetime,
                        first_name: str | None = None) -> Client:
        """Replace a wrong first name, phone or email (``None`` leaves it); never for an erased client."""
        if phone is not None and not _E164.match(phone):
            raise ValueError("phone must be E.164")
        m = self._model
        actions = [m.updated_at.set(now)]
        actions += [m.first_name.set(first_name)] if first_name is not None else []
        actions += [m.phone.set(phone)] if phone is not None else []
        actions += [m.email.set(email)] if email is not None else []
        actions += [m.known_contacts.add(contacts)] if (contacts := _contacts(phone, email)) else []
        record = update_if(m, client_id, actions, m.client_id.exists() & m.erased_at.does_not_exist())
        if record is None:
            if self._require(client_id).erased_at is not None:
                raise ClientErased(client_id)
        return _to_client(record or self._require(client_id))

    def mark_erased(self, client_id: str, now: datetime) -> Client:
        """The tombstone, set first: from here on every event naming the client is refused. The first
        erasure's time is kept, so a retried request finishes the job without rewriting history."""
        m = self._model
        record = update_if(m, client_id, [m.erased_at.set(m.erased_at | now), m.updated_at.set(now)],
                           m.client_id.exists())
        return _to_client(record or self._require(client_id))

    def forget(self, client_id: str, now: datetime) -> Client:
        """Remove everything that reaches or describes the person; keep the key, the erasure time and the
        balances (money owed either way is the business's record, not the person's profile)."""
        m = self._model
        actions = [m.first_name.remove(), m.phone.remove(), m.email.remove(), m.stripe_customer_id.remove(),
                   m.stripe_customer_ids.remove(),
                   m.known_contacts.remove(),
                   m.default_payment_method_id.remove(), m.sms_consent.remove(), m.email_consent.remove(),
                   m.sms_opt_out.set(False), m.email_opt_out.set(False), m.strikes.set({}),
                   m.prepay_required.set(False), m.prepay_set_at.remove(), m.prepay_cleared_by.remove(),
                   m.prepay_cleared_at.remove(), m.updated_at.set(now)]
        record = update_if(m, client_id, actions, m.erased_at.exists())
        if record is None:
            self._require(client_id)
            raise ValueError(f"{client_id} is not marked erased: mark_erased comes first")
        return _to_client(record)
