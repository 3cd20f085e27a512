"""The outbox's sender: each sending identity's messages leave at that identity's rate, once, and only while useful.

A US 10DLC number texts 1 message a second, a toll-free number 3; at 08:00 thousands of reminders fall due in one
time zone. So the lifecycle queues messages (:class:`medspa.ports.OutgoingMessage`) and this sender, fed by the
identity's queue with a small ``MaximumConcurrency``, paces them. It never waits inside a Lambda:

1. On every delivery, a message the visit has overtaken (``useful_until``) is dropped. In quiet hours (the
   location's, carried by the message) it is dropped if quiet hours outlast its use, and otherwise waits for
   their end and takes a new slot there, behind the morning's queue. Nothing is ever sent in quiet hours.
   At its slot, a message whose number or address has opted out since it was queued (a STOP during a long
   morning queue) is dropped: consent is read at send time, as the notifier reads it at queue time.
2. A message without a slot asks the identity's pacer for the next free moment (one atomic write; two senders
   never get the same moment). If that moment is later than now, the message goes back on the queue delayed
   until then (SQS delays at most 15 minutes, so a long backlog comes round a few times; its slot stands).
3. The right to send is claimed under the message's id before the provider is called, so a redelivered message
   is not sent twice; a claim whose send may have happened is never retried ("maybe sent" is not resent). The
   provider refusing the message releases the claim and the queue retries it, up to its dead-letter queue.
4. The outcome (sent with the provider's id, or dropped with the reason) settles the visit's message log entry,
   which is what the spa's admins, the simulator's report and the lifecycle read.

Every drop is logged with its reason and counted (``MessageDropped``), so on-call sees a backlog that outran
its use before a client does.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from medspa.domain.booking import MessageResult
from medspa.domain.wallclock import end_of_quiet_hours, in_quiet_hours
from medspa.policy.schema import QuietHours, Source
from medspa.ports import Counted, Messenger, Metrics, Outbox, OutgoingMessage, Pacer, SendClaims
from medspa.ports.consent import ConsentBook
from medspa.ports.store import AppointmentNotFound, AppointmentStore

logger = logging.getLogger(__name__)

MAX_DELAY = timedelta(seconds=900)  # SQS's longest DelaySeconds
Handled = Literal["sent", "later", "dropped", "duplicate"]
DropReason = Literal["visit_started", "quiet_hours", "opted_out"]
_CARRIED = Source(assumption="The location's quiet hours when the message was queued, carried by the message")


def send_now(messenger: Messenger, message: OutgoingMessage) -> str:
    """Hand ``message`` to its provider; the provider's message id."""
    if message.channel == "sms":
        return messenger.send_sms(message.to, message.body)
    return messenger.send_email(message.to, message.subject or "", message.body,
                                unsubscribe_url=message.unsubscribe_url or "")


class OutboxSender:
    def __init__(self, messenger: Messenger, outbox: Outbox, pacer: Pacer, claims: SendClaims,
                 appointments: AppointmentStore, consent: ConsentBook, metrics: Metrics) -> None:
        self._messenger = messenger
        self._consent = consent
        self._outbox = outbox
        self._pacer = pacer
        self._claims = claims
        self._appointments = appointments
        self._metrics = metrics

    def handle(self, message: OutgoingMessage, now: datetime) -> Handled:
        """Take one delivery of ``message`` from its queue. Raises only when the provider refused it, for the
        queue to retry."""
        if message.useful_until is not None and now >= message.useful_until:
            return self._drop(message, "visit_started", now)
        if (ends := _quiet_until(message, now)) is not None:
            if message.useful_until is not None and ends >= message.useful_until:
                return self._drop(message, "quiet_hours", now)
            return self._later(message.model_copy(update={"slot": None}), ends, now)
        if message.slot is None:
            message = message.model_copy(update={"slot": self._pacer.reserve(message.identity, now)})
        assert message.slot is not None
        if message.slot > now:
            return self._later(message, message.slot, now)
        if self._consent.opted_out(message.channel, message.to, message.spa_id):
            return self._drop(message, "opted_out", now)
        if not self._claims.claim(message.spa_id, message.id, now):
            logger.info("message not sent again", extra=_about(message))
            return "duplicate"
        try:
            provider_id = send_now(self._messenger, message)
        except Exception:
            self._claims.release(message.spa_id, message.id)
            raise
        logger.info("message sent", extra=_about(message) | {"message_id": provider_id,
                                                              "late_seconds": int((now - message.queued_at).total_seconds())})
        self._metrics.count(Counted.MESSAGE_SENT, message.spa_id, channel=message.channel)
        self._settle(message, MessageResult(channel=message.channel, status="sent", message_id=provider_id), now)
        return "sent"

    def _later(self, message: OutgoingMessage, when: datetime, now: datetime) -> Handled:
        delay = min(when - now, MAX_DELAY)
        self._outbox.put(message, delay_seconds=max(1, math.ceil(delay.total_seconds())))
        return "later"

    def _drop(self, message: OutgoingMessage, reason: DropReason, now: datetime) -> Handled:
        logger.warning("message dropped", extra=_about(message) | {"reason": reason})
        self._metrics.count(Counted.MESSAGE_DROPPED, message.spa_id, channel=message.channel)
        self._settle(message, MessageResult(channel=message.channel, status="dropped", error=reason), now)
        return "dropped"

    def _settle(self, message: OutgoingMessage, result: MessageResult, now: datetime) -> None:
        if message.appointment_id is None or message.key is None:
            return
        try:
            self._appointments.record_delivery(message.appointment_id, message.key, result, now)
        except AppointmentNotFound:  # erased since it was queued: nothing left to settle
            logger.info("message log gone", extra=_about(message))


def _quiet_until(message: OutgoingMessage, now: datetime) -> datetime | None:
    """The end of the quiet hours ``now`` falls in, for a message they hold; None when it may go."""
    quiet = QuietHours(starts=message.quiet_starts, ends=message.quiet_ends, source=_CARRIED)
    zone = ZoneInfo(message.zone)
    if message.urgent or not in_quiet_hours(now, quiet, zone):
        return None
    return end_of_quiet_hours(now, quiet, zone)


def _about(message: OutgoingMessage) -> dict[str, str | None]:
    """What a log line may say about a message: never its recipient or its text."""
    return {"outbox_id": message.id, "kind": message.kind, "channel": message.channel,
            "appointment_id": message.appointment_id}
