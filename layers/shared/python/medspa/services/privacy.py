"""A client's privacy rights, served for one client of one spa: see everything, correct contact, be erased.

The spas promise them (406MedicalSpa: "Access ... Rectification ... Deletion ... Data Portability ...
in a structured, machine-readable format"; ImageLab: data use limits, opting out of email). The
spa's admin acts for the client, through an admin event on the bus (``ClientDataExportRequested``,
``ClientContactCorrected``, ``ClientErasureRequested``: the intake checks the spa and the source, then
hands it here through the privacy function) or through the admin CLI (``medspa privacy ...``).

What the system holds about a person, and what each request does with it:

* **Client profile** (clients table): the first name the booking site gives (to greet them), phone,
  email, the booking site's consent flags, Stripe customer and card ids, strikes, the prepay flag,
  balances owed and held.
* **Appointments** (appointments table): each visit (service, price, times, status), the booking-site
  events it was folded from, the messages sent (kind, time, channel, provider id: never the text or
  the address), fees and the lifecycle's own decisions. Since this release an appointment's history
  keeps no contact details or Stripe ids (``medspa.events.personal``): they live on the profile only.
* **Ledger** (ledger table): every money movement, by appointment and client key.
* **Consent** (consent table): per phone number (every spa) and per email address (per spa): opted
  in or out, when and how; the unsubscribe links sent to an address.
* **Stripe**: the customer and its cards (the charges themselves are Stripe's payment records).

**Export** returns one JSON document (``FORMAT``) with all of it, the client's earlier privacy requests
included. Asked for on the bus, it is written to the exports bucket (encrypted, deleted by a lifecycle
rule after a few days) under ``<spa>/<client>/<request>.json`` and the booking site is told where
(``ClientDataExported``); asked for at the CLI, it is printed or written to a file.

**Correction** replaces the phone or the email on the profile, which is now the only copy. Consent
stays with the address it was given for: a new number starts with no STOP, the old one keeps its own.

**Erasure**, in an order a retry can finish: the client is marked erased first (from that instant
the intake refuses every event naming them, with the reason, so nothing new about them is stored);
their running lifecycle executions are stopped (nothing more is sent or charged); the Stripe customers
they ever had are deleted; every appointment's stored events lose contact details, Stripe ids and free
text, and every message still due is marked skipped (``skipped_client_erased``); their consent records
and unsubscribe links are deleted unless another client uses the same address (an SMS record is for
every spa, an email record for this spa), for every address they were ever reached at (a number
corrected away may still carry their STOP); earlier exports are deleted; last, the profile loses its
first name, contact details, Stripe ids, consent flags, strikes and prepay flag. Deleting a STOP is the price of
forgetting the number: the carrier's own opt-out list for the sending number still holds it, and a
later booking with the number needs the booking site's consent again.

What "identity removed" means here, decided: the client key (``<spa>#<booking site's id>``) is the
booking site's pseudonymous id, and after erasure no record in this system maps it to a person: the
first name (the only name ever held, on the profile alone), the phone, email and Stripe customer are gone. The key itself stays, because
the business must keep its money records (2-7 years, by jurisdiction) and they must still add up: the
ledger (amounts, currencies, purposes, dates, statuses, Stripe payment ids of charges the business
made), the balances on the tombstone (money still owed or held), and each visit's service, price,
times and status. Strikes and the prepay flag are not money records; they are removed. The booking
site holds the mapping from its id to the person and is told to erase it (``ClientErased``).
Replacing the key with a keyed hash was considered and not done: it would keep nothing less (the
booking site still knows its own id) and would break the tombstone that refuses later events.

Every request is recorded (``medspa.ports.privacy.PrivacyAudit``): who (the admin's staff id), when, what,
for which client key, by which path and with what outcome, as counts and field names only.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict

from medspa.domain.booking import Appointment
from medspa.domain.client import Channel, Client
from medspa.domain.consent import ConsentChannel
from medspa.domain.keys import client_key, split_key
from medspa.domain.ledger import LedgerEntry
from medspa.events import ClientContactCorrected, ClientDataExportRequested, ClientErasureRequested, PrivacyRequest
from medspa.events.personal import as_erased, stripe_customers_in
from medspa.ports import BookingSiteEvents
from medspa.ports.privacy import (
    Action,
    CustomerDeletion,
    ExportShelf,
    PrivacyAudit,
    PrivacyRequestRecord,
    RunStopper,
    Via,
)
from medspa.ports.store import ClientErased, ClientNotFound, Stores

FORMAT = "medspa.client-export/1"
_CONSENT_CHANNEL: dict[Channel, ConsentChannel] = {Channel.SMS: "sms", Channel.EMAIL: "email"}
ERASED_CAUSE = "The client's data was erased at their request"


class ErasureReport(BaseModel):
    """What an erasure changed, as counts: recorded in the audit, printed by the CLI."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    already_erased: bool
    appointments: int
    history_events_scrubbed: int
    messages_skipped: int
    runs_stopped: int
    stripe_customers_deleted: int
    consent_records_deleted: int
    unsubscribe_links_deleted: int
    exports_deleted: int
    ledger_entries_kept: int


def export_prefix(spa_id: str, client_id: str) -> str:
    """``<spa>/<client>/``: the booking site's client id, escaped, so it is one path segment."""
    return f"{spa_id}/{quote(client_id, safe='')}/"


def export_key(spa_id: str, client_id: str, request_id: str) -> str:
    return f"{export_prefix(spa_id, client_id)}{request_id}.json"


def _event_id(action: str, spa_id: str, client_id: str, request_id: str) -> str:
    """Deterministic, so a retried request tells the booking site the same thing under the same id."""
    digest = hashlib.sha256("\x1f".join((action, spa_id, client_id, request_id)).encode()).hexdigest()[:32]
    return f"privacy-{action}-{digest}"


def _local(key: str) -> str:
    return split_key(key)[1]


class PrivacyService:
    def __init__(self, store: Stores, audit: PrivacyAudit, *, payments: CustomerDeletion, executions: RunStopper,
                 exports: ExportShelf | None = None, booking_site: BookingSiteEvents | None = None) -> None:
        self._store = store
        self._audit = audit
        self._payments = payments
        self._executions = executions
        self._exports = exports
        self._booking_site = booking_site

    # ------------------------------------------------------------------ the three rights

    def export(self, spa_id: str, client_id: str, requested_by: str, now: datetime, *,
               request_id: str | None = None, via: Via = "cli") -> dict[str, Any]:
        """Everything held about the client, as one JSON-able document; put on the shelf when asked on the bus."""
        client = self._living(spa_id, client_id)
        request_id = request_id or _cli_request(now)
        appointments = self._store.appointments.for_client(client.client_id)
        ledger = self._ledger(client.client_id, appointments)
        consent = self._consent(client)
        document = {
            "format": FORMAT,
            "generated_at": now.isoformat(),
            "spa_id": spa_id,
            "client_id": client_id,
            "request": {"request_id": request_id, "requested_by": requested_by, "via": via},
            "profile": {
                "first_name": client.first_name, "phone": client.phone, "email": client.email,
                "sms_consent_from_booking_site": client.sms_consent,
                "email_consent_from_booking_site": client.email_consent,
                "sms_opted_out": client.sms_opt_out, "email_opted_out": client.email_opt_out,
                "stripe_customer_id": client.stripe_customer_id,
                "stripe_customers_ever": list(client.stripe_customers),
                "card_on_file": client.default_payment_method_id,
                "former_contacts": [{"channel": str(c), "address": a} for c, a in client.known_contacts
                                    if a not in (client.phone, client.email)],
                "created_at": client.created_at.isoformat(), "updated_at": client.updated_at.isoformat(),
            },
            "strikes": [{"appointment_id": _local(s.appointment_id), "reason": s.reason, "at": s.at.isoformat()}
                        for s in client.strikes],
            "flags": {
                "prepay_required": client.prepay_required,
                "prepay_set_at": client.prepay_set_at.isoformat() if client.prepay_set_at else None,
                "prepay_cleared_by": client.prepay_cleared_by,
                "prepay_cleared_at": client.prepay_cleared_at.isoformat() if client.prepay_cleared_at else None,
            },
            "balances": {"outstanding": client.outstanding, "credit": client.credit},
            "consent": consent,
            "appointments": [self._appointment(a) for a in appointments],
            "ledger": [_ledger_row(e) for e in ledger],
            "privacy_requests": [r.model_dump(mode="json", exclude={"spa_id", "client_id"})
                                 for r in self._audit.for_client(client.client_id)],
        }
        detail: dict[str, Any] = {"appointments": len(appointments), "ledger_entries": len(ledger),
                                  "consent_records": len(consent)}
        if via == "bus":
            shelf = self._shelf()
            detail["export_key"] = export_key(spa_id, client_id, request_id)
            shelf.put(detail["export_key"], document)
        self._record("export", client, request_id, requested_by, via, now, "exported", detail)
        return document

    def correct_contact(self, spa_id: str, client_id: str, *, phone: str | None = None, email: str | None = None,
                        first_name: str | None = None, requested_by: str, now: datetime,
                        request_id: str | None = None, via: Via = "cli") -> Client:
        """Replace a wrong first name, phone or email; the audit names the fields corrected, never their values."""
        if first_name is None and phone is None and email is None:
            raise ValueError("give a first name, a phone, an email or any of them")
        client = self._living(spa_id, client_id)
        corrected = self._store.clients.correct_contact(client.client_id, phone=phone, email=email,
                                                        first_name=first_name, now=now)
        fields = [name for name, value in (("first_name", first_name), ("phone", phone), ("email", email))
                  if value is not None]
        self._record("correct", client, request_id or _cli_request(now), requested_by, via, now, "corrected",
                     {"fields": fields})
        return corrected

    def erase(self, spa_id: str, client_id: str, requested_by: str, now: datetime, *,
              request_id: str | None = None, via: Via = "cli") -> ErasureReport:
        """Erase the client (the order, and what is kept: the module docstring). Safe to run again."""
        key = client_key(spa_id, client_id)
        clients = self._store.clients
        found = clients.get(key)
        if found is None:
            raise ClientNotFound(key)
        client = clients.mark_erased(key, now)
        appointments = self._store.appointments.for_client(key)
        cause = f"{ERASED_CAUSE} (privacy request {request_id or 'from the admin CLI'})"
        stopped = sum(self._executions.stop_if_running(a.execution_arn, error="ClientErased", cause=cause)
                      for a in appointments if a.execution_arn)
        customers = {c for c in (client.stripe_customer_id, *client.stripe_customers) if c is not None}
        for appointment in appointments:
            for _, detail in self._history(appointment):
                customers |= stripe_customers_in(detail)
        deleted_customers = sum(self._payments.delete_customer(c) for c in sorted(customers))
        scrubbed = skipped = 0
        for appointment in appointments:
            events, messages = self._store.appointments.erase_personal_data(appointment.appointment_id, as_erased, now)
            scrubbed, skipped = scrubbed + events, skipped + messages
        consent_deleted, links_deleted = self._forget_consent(client)
        exports_deleted = self._exports.remove_under(export_prefix(spa_id, client_id)) if self._exports else 0
        clients.forget(key, now)
        report = ErasureReport(
            already_erased=found.erased, appointments=len(appointments), history_events_scrubbed=scrubbed,
            messages_skipped=skipped, runs_stopped=stopped, stripe_customers_deleted=deleted_customers,
            consent_records_deleted=consent_deleted, unsubscribe_links_deleted=links_deleted,
            exports_deleted=exports_deleted, ledger_entries_kept=len(self._ledger(key, appointments)))
        finished_before = found.erased and not (found.phone or found.email or found.stripe_customers
                                                or found.first_name)
        self._record("erase", client, request_id or _cli_request(now), requested_by, via, now,
                     "already_erased" if finished_before else "erased", report.model_dump())
        return report

    # ------------------------------------------------------------------ the bus (through the intake)

    def handle(self, event: PrivacyRequest, now: datetime) -> str:
        """Serve an admin event the intake accepted, and tell the booking site the outcome."""
        spa, client, request = event.spa_id, event.client_id, event.request_id
        if isinstance(event, ClientDataExportRequested):
            self.export(spa, client, event.admin_id, now, request_id=request, via="bus")
            shelf = self._shelf()
            self._tell("ClientDataExported", _event_id("export", spa, client, request), {
                "spa_id": spa, "client_id": client, "request_id": request, "bucket": shelf.bucket,
                "key": export_key(spa, client, request), "expires_at": (now + shelf.kept_for).isoformat()})
            return "exported"
        if isinstance(event, ClientContactCorrected):
            self.correct_contact(spa, client, phone=event.phone, email=event.email, first_name=event.first_name,
                                 requested_by=event.admin_id,
                                 now=now, request_id=request, via="bus")
            return "contact_corrected"
        if isinstance(event, ClientErasureRequested):
            self.erase(spa, client, event.admin_id, now, request_id=request, via="bus")
            erased = self._store.clients.get(client_key(spa, client))
            assert erased is not None and erased.erased_at is not None
            self._tell("ClientErased", _event_id("erase", spa, client, request), {
                "spa_id": spa, "client_id": client, "request_id": request, "erased_at": erased.erased_at.isoformat()})
            return "erased"
        raise TypeError(f"not a privacy request: {type(event).__name__}")

    # ------------------------------------------------------------------ reading

    def _living(self, spa_id: str, client_id: str) -> Client:
        key = client_key(spa_id, client_id)
        client = self._store.clients.get(key)
        if client is None:
            raise ClientNotFound(key)
        if client.erased:
            raise ClientErased(key)
        return client

    def _history(self, appointment: Appointment) -> list[tuple[str, dict[str, Any]]]:
        held = self._store.appointments.history(appointment.appointment_id)
        return [(kind, json.loads(detail)) for kind, detail in held]

    def _appointment(self, a: Appointment) -> dict[str, Any]:
        return {
            "appointment_id": _local(a.appointment_id),
            "location_id": a.location_id,
            "policy_version": a.policy_version,
            "service": a.service.model_dump(mode="json"),
            "starts_at": a.starts_at.isoformat(),
            "party_size": a.party_size,
            "status": a.status.value,
            "booking_version": a.booking_version,
            "facts": a.facts.model_dump(mode="json", exclude_defaults=True),
            "client_confirmed_at": a.client_confirmed_at.isoformat() if a.client_confirmed_at else None,
            "client_confirmed_via": a.client_confirmed_via,
            "history": [{"detail_type": kind, "detail": detail} for kind, detail in self._history(a)],
            "messages": [m.model_dump(mode="json", exclude_defaults=True) for m in a.messages],
            "fees": {reason: fee.model_dump(mode="json", exclude_defaults=True) for reason, fee in a.fees.items()},
            "lifecycle_outcome": a.outcome.model_dump(mode="json") if a.outcome else None,
            "card_check": a.card_check.model_dump(mode="json", exclude_defaults=True) if a.card_check else None,
            "lifecycle_run": a.execution_name,
        }

    def _ledger(self, key: str, appointments: list[Appointment]) -> list[LedgerEntry]:
        entries = {e.entry_id: e for e in self._store.ledger.for_client(key)}
        for appointment in appointments:
            entries |= {e.entry_id: e for e in self._store.ledger.for_appointment(appointment.appointment_id)}
        return sorted(entries.values(), key=lambda e: (e.created_at, e.entry_id))

    def _addresses(self, client: Client) -> list[tuple[ConsentChannel, str]]:
        """The client's addresses now and before (a corrected number may still have a STOP recorded)."""
        current: list[tuple[ConsentChannel, str]] = []
        if client.phone:
            current.append(("sms", client.phone))
        if client.email:
            current.append(("email", client.email))
        former = [(_CONSENT_CHANNEL[channel], address) for channel, address in client.known_contacts
                  if (_CONSENT_CHANNEL[channel], address) not in current]
        return current + former

    def _consent(self, client: Client) -> list[dict[str, Any]]:
        found = []
        for channel, address in self._addresses(client):
            try:
                record = self._store.consent.get(channel, address, client.spa_id)
            except ValueError:  # an address that is not one cannot have a record
                continue
            if record is not None:
                found.append({"channel": channel, "address": address,
                              "applies_to": "every spa" if record.scope == "*" else record.scope,
                              "opted_out": record.opted_out, "changed_at": record.changed_at.isoformat(),
                              "how": record.how})
        return found

    # ------------------------------------------------------------------ erasing

    def _forget_consent(self, client: Client) -> tuple[int, int]:
        """Delete the address's consent and links unless someone else is reached at the same address."""
        records = links = 0
        clients = self._store.clients
        for channel, address in self._addresses(client):
            sharers = clients.find_by_phone(address) if channel == "sms" else clients.with_email(client.spa_id, address)
            if any(other.client_id != client.client_id for other in sharers):
                continue
            try:
                records += self._store.consent.forget(channel, address, client.spa_id)
                if channel == "email":
                    links += self._store.consent.forget_links(client.spa_id, address)
            except ValueError:  # not a phone number / email address: no record can be keyed by it
                continue
        return records, links

    # ------------------------------------------------------------------ recording and telling

    def _shelf(self) -> ExportShelf:
        if self._exports is None:
            raise RuntimeError("an export asked for on the bus needs the exports bucket")
        return self._exports

    def _record(self, action: Action, client: Client, request_id: str,
                requested_by: str, via: Via, now: datetime, outcome: str, detail: dict[str, Any]) -> None:
        self._audit.record(PrivacyRequestRecord(
            spa_id=client.spa_id, client_id=client.client_id, action=action, request_id=request_id,
            requested_by=requested_by, via=via, at=now, outcome=outcome, detail=detail))

    def _tell(self, detail_type: str, event_id: str, detail: dict[str, Any]) -> None:
        if self._booking_site is not None:
            self._booking_site.publish(detail_type, event_id, detail)


def _cli_request(now: datetime) -> str:
    return f"cli-{now:%Y%m%dT%H%M%S%f}"


def _ledger_row(e: LedgerEntry) -> dict[str, Any]:
    return {
        "entry_id": _local(e.entry_id), "appointment_id": _local(e.appointment_id), "purpose": e.purpose,
        "attempt": e.attempt, "kind": e.kind.value, "amount": e.amount.model_dump(mode="json"),
        "status": e.status.value, "stripe_payment_intent_id": e.stripe_payment_intent_id,
        "stripe_refund_id": e.stripe_refund_id, "decline_code": e.decline_code,
        "failure_message": e.failure_message, "created_at": e.created_at.isoformat(),
        "updated_at": e.updated_at.isoformat(),
    }


__all__ = ["ERASED_CAUSE", "FORMAT", "ErasureReport", "PrivacyService", "export_key", "export_prefix"]

