"""Client notifications: which channel, whether now, what text, and a record of what happened.

Decisions (written down because the seeds are silent):

* Channels. Reminders, confirmation requests and the thank-you for a confirmation go to ONE
  channel: SMS when the client has a phone and has not opted out (a reply keyword works there),
  otherwise email; if the SMS send fails the email is tried. Auto-cancel, fee (charged, applied,
  outstanding, waived, declined), prepay (required, cleared) and prepayment-credited notices concern
  the client's booking or money, so they go to EVERY channel the client can be reached on (the email
  doubles as a receipt).
* Opt-outs are absolute and belong to the address, not the client: before anything is sent, the
  phone's and the email address's consent records are read (consistent reads, at send time, so a
  client the booking site created after the number replied STOP is not texted; see
  :mod:`medspa.domain.consent`). No SMS to a number that opted out, without the consent the booking
  site recorded (``sms_opt_in``), or without a phone; no email to an address unsubscribed from this
  spa, without ``email_opt_in``, or without an address. The per-client ``sms_opt_out`` /
  ``email_opt_out`` flags that older releases set are still honoured. Each skipped channel is
  reported, so the audit shows why a client heard nothing.
* Every email carries a signed unsubscribe link for its (spa, address), in the body and as the
  ``List-Unsubscribe`` header (:class:`UnsubscribeLinks`). A confirmation request email also carries
  a signed link that confirms the visit (:class:`ConfirmLinks`), so a client without a phone can
  confirm as a texting client does.
* Quiet hours. Nothing is sent while the location's quiet hours are in force (the pack says "no
  client messages"); the result is ``deferred_quiet_hours`` with ``send_after`` = the end of quiet
  hours, and the caller (a Wait state) re-invokes then. The engine already schedules reminders
  outside quiet hours, so in practice this catches auto-cancel and fee notices produced at night.
  ``urgent_kinds`` lists kinds allowed through anyway; none are by default.
* Messaging follows the location's CURRENT pack (quiet hours and keywords are about how the spa
  messages today), not the pack version the appointment was booked under.
* The result carries no text, phone or address: it is returned into Step Functions history, which
  admins read; only kind, channel, status and provider message id. Logs carry the same.
* Membership and course notices (declined dues, services, certificates or course sessions about to expire)
  are about the client's money and what they paid for, so they go to every channel, like fee notices. They
  are rendered from an ``AccountContext`` (no visit, no treatment) and follow the location's current pack.
* Sending is not idempotent here: a caller that retries after a partial send may send twice. The
  lifecycle step should record the returned message ids and not re-notify a kind already sent.
* The outbox. Built with one (``outbox=``, as every deployed function is), the service renders and checks
  everything as above and then queues each channel's message on its sending identity's outbox
  (:class:`medspa.ports.OutgoingMessage`, status ``queued``) instead of calling the provider. The outbox's
  sender (:mod:`medspa.services.outbox`) sends at the identity's rate and reports back to the message log, so
  a morning's reminders never wait on throttling inside a lifecycle step. Without an outbox (the backtest, unit
  tests) the provider is called at once. A queued message carries ``useful_until``: a reminder, a confirmation
  request or its thank-you is useless once the visit starts, and the sender drops it then; notices about money
  and the account are always worth sending. A queued SMS that the sender cannot deliver is retried by the
  queue, not sent by email instead (the email fallback is for a channel that cannot even be queued).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Literal, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict

from medspa.domain.client import Channel, Client
from medspa.domain.wallclock import end_of_quiet_hours, in_quiet_hours
from medspa.messages.render import AppointmentContext, MessageContext, render_email, render_sms, subject_of
from medspa.messages.templates import TemplateLibrary, reminder_name, template_key
from medspa.policy.loader import PolicyPacks
from medspa.policy.schema import PolicyPack
from medspa.ports import Messenger, Outbox, OutgoingMessage
from medspa.ports.consent import ConsentBook
from medspa.services.outbox import send_now

logger = logging.getLogger(__name__)

Status = Literal["sent", "queued", "deferred_quiet_hours", "skipped_opted_out", "skipped_no_contact", "failed"]
ONE_CHANNEL_KINDS = frozenset({"confirmation_request", "confirmation_received"})  # plus every reminder_<name>


class SentMessage(BaseModel):
    """The outcome for one channel of one notification (no message text, no contact details)."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    kind: str
    channel: Channel
    status: Status
    message_id: str | None = None
    send_after: AwareDatetime | None = None
    error: str | None = None

    @property
    def sent(self) -> bool:
        return self.status == "sent"


class UnsubscribeLinks(Protocol):
    def link_for(self, spa_id: str, email: str, now: datetime) -> str:
        """The https:// link that unsubscribes ``email`` from ``spa_id``'s emails."""
        ...


class ConfirmLinks(Protocol):
    def link_for(self, appointment_id: str, starts_at: datetime) -> str:
        """The https:// link that confirms this visit at this start time."""
        ...


class NotificationService:
    def __init__(
        self,
        messenger: Messenger | None,
        templates: TemplateLibrary,
        packs: Mapping[str, PolicyPack],
        urgent_kinds: Iterable[str] = (),
        *,
        consent: ConsentBook,
        unsubscribe: UnsubscribeLinks,
        confirm_links: ConfirmLinks | None = None,
        outbox: Outbox | None = None,
    ) -> None:
        if (messenger is None) == (outbox is None):
            raise ValueError("a notifier sends now (messenger) or through the outbox, one of them")
        self._messenger = messenger
        self._outbox = outbox
        self._templates = templates
        self._packs = PolicyPacks.of(packs)
        self._urgent = frozenset(urgent_kinds)
        self._consent = consent
        self._unsubscribe = unsubscribe
        self._confirm_links = confirm_links

    def _pack(self, location_id: str, policy_version: str | None = None) -> PolicyPack:
        """The version the visit was booked under: its reminders are the ones planned, its quiet hours apply."""
        try:
            return self._packs.accepted(location_id, policy_version)
        except KeyError:
            raise ValueError(f"no policy pack for location {location_id!r}") from None

    @staticmethod
    def _validate_kind(kind: str, pack: PolicyPack) -> None:
        template_key(kind)
        name = reminder_name(kind)
        if name is not None and name not in {r.name for r in pack.reminders}:
            raise ValueError(f"{pack.location_id} has no reminder named {name!r}")

    def _reachable(self, client: Client) -> tuple[list[Channel], list[tuple[Channel, Status]]]:
        usable: list[Channel] = []
        skipped: list[tuple[Channel, Status]] = []
        for channel, address, opted_out in ((Channel.SMS, client.phone, client.sms_opt_out or not client.sms_consent),
                                            (Channel.EMAIL, client.email,
                                             client.email_opt_out or not client.email_consent)):
            if not address:
                skipped.append((channel, "skipped_no_contact"))
                continue
            try:
                withdrawn = self._consent.opted_out(channel.value, address, client.spa_id)
            except ValueError:  # not a phone number / email address: nothing could be delivered
                skipped.append((channel, "skipped_no_contact"))
                continue
            if opted_out or withdrawn:
                skipped.append((channel, "skipped_opted_out"))
            else:
                usable.append(channel)
        return usable, skipped

    def notify(self, client: Client, kind: str, appointment_context: MessageContext,
               now: datetime, key: str | None = None) -> list[SentMessage]:
        """Message ``client`` about a visit (``AppointmentContext``) or their account (``AccountContext``).

        ``key`` names the visit's message log entry, which a queued message's outcome settles."""
        ctx = appointment_context
        pack = self._pack(ctx.location_id, ctx.policy_version)
        if client.spa_id != pack.spa.id:
            raise ValueError(f"client of spa {client.spa_id!r} cannot be messaged by {pack.spa.id!r}")
        self._validate_kind(kind, pack)
        usable, skipped = self._reachable(client)
        results = [SentMessage(kind=kind, channel=c, status=s) for c, s in skipped]
        if not usable:
            self._log(results, ctx)
            return results

        one_channel = kind in ONE_CHANNEL_KINDS or reminder_name(kind) is not None
        quiet, zone = pack.messaging.quiet_hours, pack.zone
        if kind not in self._urgent and in_quiet_hours(now, quiet, zone):
            send_after = end_of_quiet_hours(now, quiet, zone)
            chosen = usable[:1] if one_channel else usable
            results += [SentMessage(kind=kind, channel=c, status="deferred_quiet_hours", send_after=send_after)
                        for c in chosen]
            self._log(results, ctx)
            return results

        # Render everything before sending anything, so a template error never half-notifies.
        templates = self._templates.for_location(pack.location_id)
        if (isinstance(ctx, AppointmentContext) and Channel.EMAIL in usable and ctx.confirm_link is None
                and self._confirm_links is not None
                and "confirm_link" in templates.template(kind).placeholders()):
            ctx = ctx.model_copy(update={"confirm_link": self._confirm_links.link_for(ctx.appointment_id, ctx.starts_at)})
        sms = render_sms(templates, pack, kind, ctx) if Channel.SMS in usable else None
        unsubscribe_link = (self._unsubscribe.link_for(client.spa_id, client.email or "", now)
                            if Channel.EMAIL in usable else "")
        email = (render_email(templates, pack, kind, ctx, unsubscribe_link=unsubscribe_link)
                 if Channel.EMAIL in usable else None)
        visit = ctx if isinstance(ctx, AppointmentContext) else None
        for channel in usable:
            outgoing = OutgoingMessage(
                id=f"{subject_of(ctx)}/{key or f'{kind}@{now:%Y%m%dT%H%M%SZ}'}/{channel.value}",
                spa_id=client.spa_id, channel=channel.value, kind=kind,
                to=(client.phone if channel is Channel.SMS else client.email) or "",
                body=(sms or "") if channel is Channel.SMS else email.body if email else "",
                subject=email.subject if channel is Channel.EMAIL and email else None,
                unsubscribe_url=unsubscribe_link if channel is Channel.EMAIL else None,
                appointment_id=visit.appointment_id if visit and key else None, key=key if visit else None,
                queued_at=now, useful_until=visit.starts_at if visit and one_channel else None,
                quiet_starts=quiet.starts, quiet_ends=quiet.ends, zone=pack.location.time_zone,
                urgent=kind in self._urgent)
            try:
                results.append(self._hand_over(outgoing))
            except Exception as err:  # noqa: BLE001 - reported per channel; the other may still go
                results.append(SentMessage(kind=kind, channel=channel, status="failed", error=type(err).__name__))
                continue
            if one_channel:
                break
        self._log(results, ctx)
        return results

    def _hand_over(self, message: OutgoingMessage) -> SentMessage:
        channel = Channel(message.channel)
        if self._outbox is not None:
            self._outbox.put(message)
            return SentMessage(kind=message.kind, channel=channel, status="queued")
        assert self._messenger is not None
        return SentMessage(kind=message.kind, channel=channel, status="sent", message_id=send_now(self._messenger, message))

    @staticmethod
    def _log(results: list[SentMessage], ctx: MessageContext) -> None:
        subject = ("appointment_id" if isinstance(ctx, AppointmentContext) else "subject_id", subject_of(ctx))
        for r in results:
            logger.info("notification", extra={subject[0]: subject[1], "kind": r.kind,
                                               "channel": str(r.channel), "status": r.status,
                                               "message_id": r.message_id, "error": r.error})
