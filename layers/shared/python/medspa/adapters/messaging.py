"""Sending client messages: SNS SMS and SES v2 email behind a small :class:`Messenger` protocol.

The notification service depends only on the protocol, so unit tests use
:class:`InMemoryMessenger` and production wires :class:`AwsMessenger`. Logs never carry a body, a
phone number or an address (PII): only the channel and the provider's message id.

Every email carries its unsubscribe link twice: in the body (the template's footer) and as the
``List-Unsubscribe`` header with ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058), which
mail providers turn into their own "Unsubscribe" button and POST to without opening the page. The
message is built here as MIME and sent as SES v2 ``Content.Raw``: botocore 1.44's ``Content.Simple``
accepts ``Headers`` too, but the local cloud's SES (moto 5.2.5) drops them, and a header no test can
see is a header that can silently disappear. (SES signs with DKIM after the headers are set, so the
providers that require one-click unsubscribe for bulk senders accept them.)
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from medspa.ports.messaging import EmailSender, InvalidRecipient, SmsSender

logger = logging.getLogger(__name__)

_E164 = re.compile(r"^\+[1-9]\d{1,14}$")


def _require_phone(phone: str) -> None:
    if not _E164.match(phone or ""):
        raise InvalidRecipient("phone number is not E.164")


def _require_address(address: str) -> None:
    if not address or "@" not in address or any(c.isspace() for c in address):
        raise InvalidRecipient("not an email address")


class SnsSmsSender:
    """SNS ``Publish`` to a phone number, always Transactional (reminders must not be throttled as
    promotional traffic, and transactional routes reach more carriers)."""

    def __init__(self, sns_client: Any, sender_id: str | None = None) -> None:
        self._sns = sns_client
        self._sender_id = sender_id

    def send_sms(self, phone: str, body: str) -> str:
        _require_phone(phone)
        attributes = {"AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"}}
        if self._sender_id:
            attributes["AWS.SNS.SMS.SenderID"] = {"DataType": "String", "StringValue": self._sender_id}
        response = self._sns.publish(PhoneNumber=phone, Message=body, MessageAttributes=attributes)
        message_id = response["MessageId"]
        logger.info("sms sent", extra={"channel": "sms", "message_id": message_id})
        return message_id


def _require_https(url: str) -> None:
    if not url.startswith("https://") or any(c.isspace() or c in "<>" for c in url):
        raise ValueError("the unsubscribe link must be an https:// address")


def mime_email(from_address: str, to_address: str, subject: str, body: str, unsubscribe_url: str) -> bytes:
    """A plain-text UTF-8 message with the one-click unsubscribe headers (RFC 2369, RFC 8058)."""
    from email.message import EmailMessage  # here: only a function that emails pays for the email package
    from email.policy import SMTP

    _require_https(unsubscribe_url)
    message = EmailMessage(policy=SMTP)
    message["From"] = from_address
    message["To"] = to_address
    message["Subject"] = subject
    message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(body)
    return message.as_bytes()


class SesEmailSender:
    """SES v2 ``SendEmail`` of a MIME message (``Content.Raw``); the sender identity must be verified."""

    def __init__(self, sesv2_client: Any, from_address: str) -> None:
        _require_address(from_address)
        self._ses = sesv2_client
        self._from = from_address

    def send_email(self, to_address: str, subject: str, body: str, *, unsubscribe_url: str) -> str:
        _require_address(to_address)
        raw = mime_email(self._from, to_address, subject, body, unsubscribe_url)
        # Recipients come from the To header: naming them again in Destination would be a second copy.
        response = self._ses.send_email(FromEmailAddress=self._from, Content={"Raw": {"Data": raw}})
        message_id = response["MessageId"]
        logger.info("email sent", extra={"channel": "email", "message_id": message_id})
        return message_id


class AwsMessenger:
    """Both AWS senders as one :class:`Messenger`."""

    def __init__(self, sms: SmsSender, email: EmailSender) -> None:
        self._sms = sms
        self._email = email

    def send_sms(self, phone: str, body: str) -> str:
        return self._sms.send_sms(phone, body)

    def send_email(self, to_address: str, subject: str, body: str, *, unsubscribe_url: str) -> str:
        return self._email.send_email(to_address, subject, body, unsubscribe_url=unsubscribe_url)


@dataclass(frozen=True)
class RecordedSms:
    message_id: str
    phone: str
    body: str


@dataclass(frozen=True)
class RecordedEmail:
    message_id: str
    to_address: str
    subject: str
    body: str
    unsubscribe_url: str


@dataclass
class InMemoryMessenger:
    """A fake :class:`Messenger` for unit tests: records what was sent; ``fail_sms`` /
    ``fail_email`` make the next sends on that channel raise, like a throttled provider."""

    sms: list[RecordedSms] = field(default_factory=list)
    emails: list[RecordedEmail] = field(default_factory=list)
    fail_sms: bool = False
    fail_email: bool = False

    def _next_id(self) -> str:
        return f"fake-{len(self.sms) + len(self.emails) + 1}"

    def send_sms(self, phone: str, body: str) -> str:
        _require_phone(phone)
        if self.fail_sms:
            raise ConnectionError("fake SMS provider unavailable")
        message_id = self._next_id()
        self.sms.append(RecordedSms(message_id, phone, body))
        return message_id

    def send_email(self, to_address: str, subject: str, body: str, *, unsubscribe_url: str) -> str:
        _require_address(to_address)
        _require_https(unsubscribe_url)
        if self.fail_email:
            raise ConnectionError("fake email provider unavailable")
        message_id = self._next_id()
        self.emails.append(RecordedEmail(message_id, to_address, subject, body, unsubscribe_url))
        return message_id
