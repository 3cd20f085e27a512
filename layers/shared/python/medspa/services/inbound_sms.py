"""Inbound SMS replies (AWS End User Messaging two-way SMS): CONFIRM, STOP, START, HELP.

The rules, written down because the seeds say only "reply STOP or UNSUBSCRIBE":

* Which words count. STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, OPTOUT and REVOKE opt out, START
  and UNSTOP opt back in, HELP and INFO ask for help, at every location and from any number
  (:mod:`medspa.policy.keywords`; a pack may add words, never take one over). A message is a keyword
  only if nothing else is left once spacing, punctuation, symbols and case are set aside: "Stop!",
  "S.T.O.P" and "opt out" count, "please stop texting" does not and is left for staff.
* Who sent it. The sender is known only by phone number, and one person may be a client of several
  spas: every client with that number is found (``by_phone`` index). A client's own words come from
  the pack of their soonest upcoming visit, else any pack of their spa (the first by location id); a
  number no client has is read with the base words plus every pack's additions. These are the
  location's current packs, not the versions visits were booked under: a reply is read today, with
  the words the location uses today and its contact line for HELP. If packs read the
  same text differently, opt-out wins, then opt-in, then confirm (honouring STOP is the safe reading).
* STOP writes the number's consent record (:mod:`medspa.domain.consent`): opted out, when, how
  (``keyword``) and the inbound message id. One record per number speaks for EVERY spa: the
  carriers' and End User Messaging's opt-out lists are per number too, and the person asked the
  number to stop texting, not one spa among several. Every SMS send reads that record at send time,
  so a client the booking site creates later with this number is not texted either. Email is
  untouched (it has its own link). START writes the record back to opted in, for every spa, and
  clears the per-client ``sms_opt_out`` flags older releases set. Each change carries the time SNS
  received the message, and an older change never overwrites a newer one, so a STOP redelivered
  after the START that followed it does not win.
* Replies. An opt-out, an opt-in and a HELP each get exactly one text
  (:func:`medspa.messages.inbound.keyword_reply`): HELP gets the location's contact line from its
  pack (``[contact]``), the opt-out confirmation tells how to resubscribe. The reply is claimed in the
  consent table under the inbound message id before it is sent, so a second delivery of the same
  message (SNS and Lambda both redeliver) sends nothing; a send that fails releases the claim and the
  delivery is retried. The opt-out confirmation is the last text the number gets: the consent record
  is written before it is sent, and every later send reads the record (a lifecycle send already past
  its check a few milliseconds earlier is the only exception, and it is sent before the reply).
  The deployed number's own keyword auto-replies must therefore be OFF in End User Messaging (its
  STOP/HELP keyword messages left empty, see README "Inbound SMS"), or the client gets two.
* CONFIRM is about one visit: the soonest upcoming appointment (starting after now, status ``booked``
  or ``confirmed``) of the clients whose pack reads the text as CONFIRM. If that visit is still open
  (``booked`` and no ``client_confirmed_at``) the client's confirmation is recorded
  (``record_client_confirmation(..., channel="sms")``; the running lifecycle execution reads
  ``client_confirmed_at`` at its confirmation deadline). If it is already confirmed the reply is a
  no-op: it is never passed on to a later visit, so a duplicated delivery or a second "YES" cannot
  confirm a visit nobody asked about. The index read is re-checked with a consistent read before
  writing. No text answers a CONFIRM from here.
* The booking site hears of it: a confirmation recorded here is published as
  ``AppointmentConfirmedByClient`` (``channel`` ``sms``), so the spa's calendar shows what the client
  said. Its ``event_id`` derives from the appointment and the recorded confirmation time, and the
  event is published again whenever a CONFIRM finds the visit already confirmed by SMS: a delivery
  retried after PutEvents failed completes the job, and the booking site deduplicates the rest.
* Nothing here carries or logs a phone number or message text: the outcome (returned and logged)
  has the intent, what was done, how many clients matched, whether consent changed, whether a reply
  went, the confirmed appointment id and the provider's inbound message id.
* Order: End User Messaging does not guarantee that replies arrive in the order they were sent; the
  SNS receive time decides, as above.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from medspa.domain.booking import Appointment, AppointmentStatus
from medspa.domain.client import Channel, Client
from medspa.domain.consent import EVERY_SPA
from medspa.messages.inbound import InboundIntent, keyword_reply, parse_inbound_sms
from medspa.policy.schema import PolicyPack
from medspa.ports import BookingSiteEvents, SmsSender
from medspa.ports.store import Stores
from medspa.services.confirm_link import publish_client_confirmation

logger = logging.getLogger(__name__)

Action = Literal[
    "opted_out",            # STOP: the number's consent record says opted out (every spa)
    "opted_in",             # START: the number's consent record says opted in (every spa)
    "help_answered",        # HELP/INFO: the contact line was texted back
    "confirmed",            # CONFIRM: appointment_id's client confirmation recorded
    "already_confirmed",    # CONFIRM, but the soonest visit was already confirmed
    "nothing_to_confirm",   # CONFIRM, but no upcoming visit
    "unknown_sender",       # CONFIRM from a number no client has
    "not_a_keyword",        # free text: left for staff
]
Reply = Literal["sent", "duplicate", "none"]
_ACTIVE = (AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED)
_PRECEDENCE: tuple[InboundIntent, ...] = ("opt_out", "opt_in", "confirm", "help")
_ANSWERED_WITH: dict[InboundIntent, Action] = {"opt_out": "opted_out", "opt_in": "opted_in", "help": "help_answered"}


class InvalidInboundSms(ValueError):
    """The SNS message is not an End User Messaging inbound SMS; the reason names fields, never values."""


class InboundSms(BaseModel):
    """The JSON End User Messaging publishes for each inbound SMS (field names as AWS sends them)."""

    model_config = ConfigDict(defer_build=True, frozen=True, extra="ignore", populate_by_name=True)

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

    model_config = ConfigDict(defer_build=True, frozen=True)

    intent: InboundIntent
    action: Action
    clients: int = Field(ge=0, description="Clients (at any spa) with the sender's number.")
    consent_changed: bool = Field(False, description="The number's consent record changed (STOP/START).")
    reply: Reply = Field("none", description="The confirmation text: sent now, already sent for this message, none.")
    appointment_id: str | None = Field(None, description="The appointment whose confirmation was recorded.")
    inbound_message_id: str | None = None


class InboundSmsService:
    def __init__(self, store: Stores, packs: Mapping[str, PolicyPack], *, replies: SmsSender,
                 booking_site: BookingSiteEvents | None = None) -> None:
        self._store = store
        self._packs = dict(packs)
        self._replies = replies
        self._booking_site = booking_site
        self._spa_packs: dict[str, PolicyPack] = {}
        for location_id in sorted(self._packs):
            self._spa_packs.setdefault(self._packs[location_id].spa.id, self._packs[location_id])

    def handle(self, message: InboundSms, now: datetime, *, delivery_id: str | None = None,
               received_at: datetime | None = None) -> InboundOutcome:
        """``delivery_id`` (the SNS message id) stands in for a missing inbound message id when
        replies are de-duplicated; ``received_at`` (when SNS received it) orders consent changes."""
        phone = message.origination_number
        clients = self._store.clients.find_by_phone(phone)
        upcoming = {c.client_id: self._upcoming(c, now) for c in clients}
        packs = {c.client_id: p for c in clients if (p := self._pack_for(c, upcoming[c.client_id])) is not None}
        readings = {cid: parse_inbound_sms(message.message_body, pack) for cid, pack in packs.items()}
        if not readings:  # nobody to place at a location: the base words and every pack's own
            readings = {"": parse_inbound_sms(message.message_body, None, also=self._packs.values())}
        intent: InboundIntent = next((i for i in _PRECEDENCE if i in readings.values()), "unknown")
        context = _Context(message, len(clients), delivery_id)

        if intent == "confirm":
            if not clients:
                return self._done(context, intent, "unknown_sender")
            confirming = [cid for cid, reading in readings.items() if reading == "confirm"]
            return self._confirm(context, confirming, upcoming, now)
        if intent not in _ANSWERED_WITH:
            return self._done(context, intent, "not_a_keyword")

        changed = False
        if intent in ("opt_out", "opt_in"):
            changed = self._record_consent(phone, intent == "opt_out", clients, context, received_at or now, now)
        # The reply speaks for the client the message most likely answers: soonest visit, else first by id.
        speaking = sorted((c for c in clients if readings.get(c.client_id) == intent),
                          key=lambda c: (upcoming[c.client_id][0].starts_at if upcoming[c.client_id] else _LAST,
                                         c.client_id))
        pack = packs.get(speaking[0].client_id) if speaking else None
        reply = self._reply(phone, intent, pack, context, now)
        action = _ANSWERED_WITH[intent]
        return self._done(context, intent, action, consent_changed=changed, reply=reply)

    # ------------------------------------------------------------------------------ helpers

    def _record_consent(self, phone: str, opted_out: bool, clients: list[Client], context: "_Context",
                        at: datetime, now: datetime) -> bool:
        consent = self._store.consent
        before = consent.get("sms", phone, EVERY_SPA)
        after = consent.record("sms", phone, EVERY_SPA, opted_out=opted_out, how="keyword", at=at,
                               evidence=context.reply_key)
        if not after.opted_out:  # consent given back: the per-client flags of older releases must not outlive it
            for client in clients:
                if client.sms_opt_out:
                    self._store.clients.set_opt_out(client.client_id, Channel.SMS, False, now)
        return (before is None and after.opted_out) or (before is not None and before.opted_out != after.opted_out)

    def _reply(self, phone: str, intent: InboundIntent, pack: PolicyPack | None, context: "_Context",
               now: datetime) -> Reply:
        key = context.reply_key
        consent = self._store.consent
        if key is not None and not consent.claim_reply(key, intent, now):
            return "duplicate"
        try:
            message_id = self._replies.send_sms(phone, keyword_reply(intent, pack))
        except Exception:
            if key is not None:
                consent.release_reply(key)  # not sent: the redelivery may try again
            raise
        if key is not None:
            consent.reply_sent(key, message_id, now)
        return "sent"

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

    def _confirm(self, context: "_Context", client_ids: list[str], upcoming: Mapping[str, list[Appointment]],
                 now: datetime) -> InboundOutcome:
        visits = sorted((a for cid in client_ids for a in upcoming[cid]), key=lambda a: (a.starts_at, a.appointment_id))
        for visit in visits:
            current = self._store.appointments.get(visit.appointment_id)  # the index may lag a cancellation
            if current is None or current.status not in _ACTIVE or current.starts_at <= now:
                continue
            if current.status is AppointmentStatus.BOOKED and current.client_confirmed_at is None:
                confirmed = self._store.appointments.record_client_confirmation(current.appointment_id, channel="sms",
                                                                                at=now)
                publish_client_confirmation(self._booking_site, confirmed)
                return self._done(context, "confirm", "confirmed", appointment_id=current.appointment_id)
            if current.client_confirmed_via == "sms":
                publish_client_confirmation(self._booking_site, current)  # same id: finishes a failed publish
            return self._done(context, "confirm", "already_confirmed")
        return self._done(context, "confirm", "nothing_to_confirm")

    @staticmethod
    def _done(context: "_Context", intent: InboundIntent, action: Action, *, consent_changed: bool = False,
              reply: Reply = "none", appointment_id: str | None = None) -> InboundOutcome:
        outcome = InboundOutcome(intent=intent, action=action, clients=context.clients,
                                 consent_changed=consent_changed, reply=reply, appointment_id=appointment_id,
                                 inbound_message_id=context.message.inbound_message_id)
        logger.info("inbound sms", extra=outcome.model_dump())
        return outcome


_LAST = datetime.max.replace(tzinfo=UTC)


class _Context:
    """One inbound message as the helpers need it (never logged: it holds the message)."""

    def __init__(self, message: InboundSms, clients: int, delivery_id: str | None) -> None:
        self.message = message
        self.clients = clients
        self.reply_key = message.inbound_message_id or (f"sns-{delivery_id}" if delivery_id else None)
