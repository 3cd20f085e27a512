"""Consent belongs to a phone number or an email address, not to a client record.

A client record is the booking site's view of a person at one spa; the person who replied STOP is the
owner of a phone number. So an opt-out is recorded against the address, and every send looks the
address up at send time: a client created later with an opted-out number is not texted.

Scope, decided here:

* SMS: one record per number for EVERY spa (:data:`EVERY_SPA`). The spas of a deployment text from
  its number(s), and the carriers and End User Messaging keep their own opt-out list per number; a
  person who replied STOP asked that number to stop texting them, not one spa among several. START
  undoes it for every spa, symmetrically.
* Email: one record per (spa, address). An unsubscribe link sits in one spa's email and the person
  asked that spa to stop; another spa they book with keeps its own consent.

Addresses are compared as :func:`normalise_phone` / :func:`normalise_email` give them: E.164 for a
phone number; an email address trimmed and lower-cased as a whole (RFC 5321 lets the local part be
case-sensitive, but no mailbox provider our clients use treats it so, and ``Ana@`` unsubscribing
while ``ana@`` keeps receiving would be the worse error).

Unsubscribe links (:func:`unsubscribe_token`): the token is ``v1.<signature>``, the signature an
HMAC-SHA256 with the deployment's secret over (purpose, spa, address). Nothing in the link reads as
the address or the spa; the service stores signature -> (spa, address) when it sends the email and,
when the link comes back, finds the pair by the signature and recomputes the HMAC before acting, so a
token not issued by the system is refused and no store entry can be forged without the secret.
Rotating the secret retires every link already sent (their pages then say the link is not valid).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Literal

EVERY_SPA = "*"
UNSUBSCRIBE = "unsubscribe"
TOKEN_VERSION = "v1"
How = Literal["keyword", "link", "admin"]
ConsentChannel = Literal["sms", "email"]

_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
_TOKEN = re.compile(r"^v1\.[A-Za-z0-9_-]{43}$")


class InvalidUnsubscribeLink(ValueError):
    """The link cannot be honoured; the message is a reason for the person, never the token."""


def normalise_phone(phone: str) -> str:
    if not _E164.match(phone or ""):
        raise ValueError("phone number is not E.164")
    return phone


def normalise_email(address: str) -> str:
    normal = (address or "").strip().lower()
    if "@" not in normal or any(c.isspace() for c in normal):
        raise ValueError("not an email address")
    return normal


def normalise(channel: ConsentChannel, address: str) -> str:
    return normalise_phone(address) if channel == "sms" else normalise_email(address)


def consent_scope(channel: ConsentChannel, spa_id: str) -> str:
    """Which spas a consent record of ``channel`` speaks for (see the module docstring)."""
    return EVERY_SPA if channel == "sms" else spa_id


def _signature(secret: bytes, purpose: str, spa_id: str, email: str) -> str:
    if len(secret) < 32:
        raise ValueError("the signing secret must be at least 32 bytes")
    message = "\x1f".join((TOKEN_VERSION, purpose, spa_id, normalise_email(email))).encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def unsubscribe_token(secret: bytes, spa_id: str, email: str, purpose: str = UNSUBSCRIBE) -> str:
    return f"{TOKEN_VERSION}.{_signature(secret, purpose, spa_id, email)}"


def token_reference(token: str | None) -> str:
    """The stored reference a well-formed token names; :class:`InvalidUnsubscribeLink` otherwise."""
    if not token:
        raise InvalidUnsubscribeLink("the link is incomplete: it carries no token")
    if not _TOKEN.match(token):
        raise InvalidUnsubscribeLink("the link is damaged: its token is not one this system issues")
    return token.partition(".")[2]


def token_matches(secret: bytes, token: str, spa_id: str, email: str, purpose: str = UNSUBSCRIBE) -> bool:
    return hmac.compare_digest(token_reference(token), _signature(secret, purpose, spa_id, email))


def mask_email(email: str) -> str:
    """``a***@example.com``: enough for the person to recognise their address on the page."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"
