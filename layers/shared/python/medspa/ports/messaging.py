"""Sending a client a text or an email; the provider's message id comes back, nothing personal is logged."""

from __future__ import annotations

from datetime import datetime, time
from typing import Literal, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class InvalidRecipient(ValueError):
    """The phone number is not E.164 or the address is not an email address (value not echoed)."""


class SmsSender(Protocol):
    def send_sms(self, phone: str, body: str) -> str:
        """Send and return the provider's message id."""
        ...


class EmailSender(Protocol):
    def send_email(self, to_address: str, subject: str, body: str, *, unsubscribe_url: str) -> str:
        """Send with ``List-Unsubscribe`` pointing at ``unsubscribe_url``; return the provider's message id."""
        ...


class Messenger(SmsSender, EmailSender, Protocol):
    """Both channels; what :class:`medspa.services.notifications.NotificationService` needs."""


class OutgoingMessage(BaseModel):
    """One text or email on its way through the outbox of its sending identity (the SMS number or pool, the
    email sender). It carries what the sender needs to decide at send time, long after it was queued: whether it
    is still useful (``useful_until``, the visit's start for a reminder), and the location's quiet hours.

    It holds the recipient and the text, so it lives only in the outbox queue (encrypted at rest); logs and
    Step Functions history get its ``id``, kind and channel."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    id: str = Field(description="Deterministic per notification and channel: the sender sends each id once")
    spa_id: str
    channel: Literal["sms", "email"]
    kind: str
    to: str
    body: str
    subject: str | None = None
    unsubscribe_url: str | None = None
    appointment_id: str | None = Field(None, description="With ``key``: the message log entry the outcome settles")
    key: str | None = None
    queued_at: AwareDatetime
    useful_until: AwareDatetime | None = Field(None, description="Dropped, not sent, from this instant on")
    quiet_starts: time
    quiet_ends: time
    zone: str
    urgent: bool = Field(False, description="Sent in quiet hours too (no kind is, unless configured)")
    slot: AwareDatetime | None = Field(None, description="The moment the identity's rate gave it; set by the sender")

    @property
    def identity(self) -> str:
        """The sending identity whose rate it spends: this deployment has one per channel."""
        return self.channel


class Outbox(Protocol):
    def put(self, message: OutgoingMessage, *, delay_seconds: int = 0) -> None:
        """Queue ``message`` on its identity's queue, receivable after ``delay_seconds`` (at most 900)."""
        ...


class Pacer(Protocol):
    def reserve(self, identity: str, now: datetime) -> datetime:
        """The next free moment of ``identity``'s rate, at ``now`` or later, taken for one message."""
        ...


class SendClaims(Protocol):
    def claim(self, spa_id: str, message_id: str, now: datetime) -> bool:
        """Take the right to send ``message_id``: False if it was taken before (sent, or maybe sent)."""
        ...

    def release(self, spa_id: str, message_id: str) -> None:
        """Give the right back: the provider refused the message, so nothing was sent and a retry may send."""
        ...
