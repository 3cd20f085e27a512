"""Inbound SMS replies (AWS End User Messaging two-way SMS): CONFIRM, STOP, START, HELP.

The rules, written down because the seeds say only "reply STOP or UNSUBSCRIBE":

* Who sent it. The sender is known only by phone number, and one person may be a client of several
  spas (client ids are ``<spa>#<id>``): every client with that number is found (``by_phone`` index).
  An unknown number is a no-op.
* Which words count. Each client's keywords come from the pack of the location of their soonest
  upcoming appointment, else from any pack of their spa (the first by location id). The whole
  message must be the keyword (:func:`medspa.messages.inbound.parse_inbound_sms`); anything else is
  a no-op left for staff. If the packs of different clients read the same text differently, opt-out
  wins, then opt-in, then confirm (honouring STOP is the safe reading).
* STOP (any pack's ``opt_out`` word) sets ``sms_opt_out`` on EVERY client with that number, at every
  spa: the carrier-level opt-out that End User Messaging records is per number too, and the person
  asked to stop receiving texts, not texts from one spa. Email is untouched.
* START (``opt_in``) clears ``sms_opt_out`` on every client with that number, symmetrically.
* CONFIRM (``confirm``) is about one visit: the soonest upcoming appointment (starting after now,
  status ``booked`` or ``confirmed``) of the clients whose pack reads the text as CONFIRM. If that
  visit is still open (``booked`` and no ``client_confirmed_at``) the client's confirmation is
  recorded (``record_client_confirmation(..., channel="sms")``; the running lifecycle execution
  reads ``client_confirmed_at`` at its confirmation deadline). If it is already confirmed the reply
  is a no-op: it is never passed on to a later visit, so a duplicated delivery or a second "YES"
  cannot confirm a visit nobody asked about. The index read is re-checked with a consistent read
  before writing.
* HELP/INFO: no reply from here. HELP and STOP are mandatory keywords of every End User Messaging
  number, which answers them itself with the number's configured keyword message (and adds STOP
  senders to its opt-out list); a second reply from this function would double it.
* Nothing here carries or logs a phone number or message text: the outcome (returned and logged)
  has the intent, what was done, how many clients matched and changed, the confirmed appointment id
  and the provider's inbound message id.
* Order: End User Messaging does not guarantee that replies arrive in the order they were sent, so a
  STOP and a START sent seconds apart may be applied in either order (last applied wins).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from medspa.adapters.store import Appointment, AppointmentStatus, Channel, Client, Store
from medspa.messages.inbound import InboundIntent, parse_inbound_sms
from medspa.policy.schema import PolicyPack

logger = logging.getLogger(__name__)

Action = Literal[
    "opted_out",            # STOP: sms_opt_out set on every client with the number
    "opted_in",             # START: sms_opt_out cleared on every client with the number
    "confirmed",            # CONFIRM: appointment_id's client confirmation recorded
    "already_confirmed",    # CONFIRM, but the soonest visit was already confirmed
    "nothing_to_confirm",   # CONFIRM, but no upcoming visit
    "help_left_to_aws",     # HELP/INFO: answered by End User Messaging's keyword response
    "not_a_keyword",        # free text: left for staff
    "unknown_sender",       # no client has this number
    "no_policy",            # the clients' spas have no pack deployed here
]
_ACTIVE = (AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED)
_PRECEDENCE: tuple[InboundIntent, ...] = ("opt_out", "opt_in", "confirm", "help")


class InvalidInboundSms(ValueError):
    """The SNS message is not an End User Messaging inbound SMS; the reason names fields, never values."""


class InboundSms(BaseModel):
    """The JSON End User Messaging publishes for each inbound SMS (field names as AWS sends them)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    origination_number: Annotated[str, StringConstraints(pattern=r"^\+[1-9]\d{1,14}$")] = Field(
        alias="originationNumber", description="The client's phone (E.164).")
    destination_number: str | None = Field(None, alias="destinationNumber", description="The spa's number.")
    message_keyword: str | None = Field(None, alias="messageKeyword")
    message_body: str = Field(alias="messageBody", max_length=1600)
    inbound_message_id: str | None = Field(None, alias="inboundMessageId", max_length=200)
    previous_published_message_id: str | None = Field(None, alias="previousPublishedMessageId")

    def __repr__(self) -> str:  # a stray log of the model must not print the phone or the text
        return f"InboundSms(inbound_message_id={self.inbound_message_id!r})"

    __str__ = __repr__


def parse_inbound_message(raw: str | bytes | None) -> InboundSms:
    """Parse the SNS ``Message`` string; :class:`InvalidInboundSms` names only the offending fields."""
    try:
        data = json.loads(raw or "")
    except (TypeError, ValueError):
        raise InvalidInboundSms("the message is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidInboundSms("the message is not a JSON object")
    try:
        return InboundSms.model_validate(data)
    except ValidationError as error:
        fields = sorted({".".join(str(p) for p in e["loc"]) or "<message>" for e in error.errors()})
        raise InvalidInboundSms(f"invalid or missing fields: {', '.join(fields)}") from None


class InboundOutcome(BaseModel):
    """What one inbound SMS did; no phone number and no message text, so it may be logged and returned."""

    model_config = ConfigDict(frozen=True)

    intent: InboundIntent
    action: Action
    clients: int = Field(ge=0, description="Clients (at any spa) with the sender's number.")
    clients_changed: int = Field(0, ge=0, description="Clients whose SMS opt-out this message changed.")
    appointment_id: str | None = Field(None, description="The appointment whose confirmation was recorded.")
    inbound_message_id: str | None = None


class InboundSmsService:
    def __init__(self, store: Store, packs: Mapping[str, PolicyPack]) -> None:
        self._store = store
        self._packs = dict(packs)
        self._spa_packs: dict[str, PolicyPack] = {}
        for location_id in sorted(self._packs):
            self._spa_packs.setdefault(self._packs[location_id].spa.id, self._packs[location_id])

    def handle(self, message: InboundSms, now: datetime) -> InboundOutcome:
        clients = self._store.clients.find_by_phone(message.origination_number)
        if not clients:
            return self._done(message, "unknown", "unknown_sender", 0)
        upcoming = {c.client_id: self._upcoming(c, now) for c in clients}
        readings: dict[str, InboundIntent] = {}
        for client in clients:
            pack = self._pack_for(client, upcoming[client.client_id])
            if pack is not None:
                readings[client.client_id] = parse_inbound_sms(message.message_body, pack)
        if not readings:
            return self._done(message, "unknown", "no_policy", len(clients))
        intent = next((i for i in _PRECEDENCE if i in readings.values()), "unknown")

        if intent in ("opt_out", "opt_in"):
            opted_out = intent == "opt_out"
            changed = 0
            for client in clients:
                if client.sms_opt_out != opted_out:
                    self._store.clients.set_opt_out(client.client_id, Channel.SMS, opted_out, now)
                    changed += 1
            return self._done(message, intent, "opted_out" if opted_out else "opted_in", len(clients), changed)
        if intent == "confirm":
            confirming = [cid for cid, reading in readings.items() if reading == "confirm"]
            return self._confirm(message, confirming, upcoming, len(clients), now)
        if intent == "help":
            return self._done(message, intent, "help_left_to_aws", len(clients))
        return self._done(message, intent, "not_a_keyword", len(clients))

    # ------------------------------------------------------------------------------ helpers

    def _upcoming(self, client: Client, now: datetime) -> list[Appointment]:
        """The client's visits still expected after ``now``, soonest first (index read)."""
        found = self._store.appointments.for_client(client.client_id, starting_from=now)
        return sorted((a for a in found if a.starts_at > now and a.status in _ACTIVE),
                      key=lambda a: (a.starts_at, a.appointment_id))

    def _pack_for(self, client: Client, upcoming: list[Appointment]) -> PolicyPack | None:
        for appointment in upcoming:
            pack = self._packs.get(appointment.location_id)
            if pack is not None and pack.spa.id == client.spa_id:
                return pack
        return self._spa_packs.get(client.spa_id)

    def _confirm(self, message: InboundSms, client_ids: list[str], upcoming: Mapping[str, list[Appointment]],
                 client_count: int, now: datetime) -> InboundOutcome:
        visits = sorted((a for cid in client_ids for a in upcoming[cid]), key=lambda a: (a.starts_at, a.appointment_id))
        for visit in visits:
            current = self._store.appointments.get(visit.appointment_id)  # the index may lag a cancellation
            if current is None or current.status not in _ACTIVE or current.starts_at <= now:
                continue
            if current.status is AppointmentStatus.BOOKED and current.client_confirmed_at is None:
                self._store.appointments.record_client_confirmation(current.appointment_id, channel="sms", at=now)
                return self._done(message, "confirm", "confirmed", client_count, appointment_id=current.appointment_id)
            return self._done(message, "confirm", "already_confirmed", client_count)
        return self._done(message, "confirm", "nothing_to_confirm", client_count)

    @staticmethod
    def _done(message: InboundSms, intent: InboundIntent, action: Action, clients: int, changed: int = 0,
              appointment_id: str | None = None) -> InboundOutcome:
        outcome = InboundOutcome(intent=intent, action=action, clients=clients, clients_changed=changed,
                                 appointment_id=appointment_id, inbound_message_id=message.inbound_message_id)
        logger.info("inbound sms", extra=outcome.model_dump())
        return outcome
