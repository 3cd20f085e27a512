"""The signed link in a confirmation request email: how a client without a phone confirms their visit.

A client who only gave an email address cannot reply CONFIRM to a text, so 406MedicalSpa's "we confirm
appointments ... via email" needs a link. The token is ``c1.<visit>.<signature>``: the visit is the
stored appointment key (``<spa>#<booking site's id>``, the pseudonymous id every event already
carries; no address, no name), the signature an HMAC-SHA256 with the deployment's signing secret over
(purpose, visit, start time). Signing the start time means a link for a visit that has since moved
confirms nothing: the client confirms the time they were asked about or none. Nothing is stored when
the email is sent; rotating the secret retires every link already sent, as it does unsubscribe links
(the purpose in the signed text keeps one kind of link from ever passing for the other).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from datetime import UTC, datetime

CONFIRM = "confirm"
_TOKEN = re.compile(r"^c1\.([A-Za-z0-9_-]{1,400})\.([A-Za-z0-9_-]{43})$")


class InvalidConfirmLink(ValueError):
    """The link cannot confirm anything; the message is a reason for the person, never the token."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _signature(secret: bytes, appointment_id: str, starts_at: datetime) -> str:
    if len(secret) < 32:
        raise ValueError("the signing secret must be at least 32 bytes")
    start = starts_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    message = "\x1f".join(("c1", CONFIRM, appointment_id, start)).encode()
    return _b64(hmac.new(secret, message, hashlib.sha256).digest())


def confirm_token(secret: bytes, appointment_id: str, starts_at: datetime) -> str:
    return f"c1.{_b64(appointment_id.encode())}.{_signature(secret, appointment_id, starts_at)}"


def confirm_token_visit(token: str | None) -> str:
    """The appointment key a well-formed token names (not yet verified); :class:`InvalidConfirmLink` otherwise."""
    if not token:
        raise InvalidConfirmLink("the link is incomplete: it carries no token")
    match = _TOKEN.match(token)
    if match is None:
        raise InvalidConfirmLink("the link is damaged: its token is not one this system issues")
    encoded = match.group(1)
    try:
        return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidConfirmLink("the link is damaged: its token is not one this system issues") from None


def confirm_token_matches(secret: bytes, token: str, appointment_id: str, starts_at: datetime) -> bool:
    match = _TOKEN.match(token or "")
    return match is not None and hmac.compare_digest(match.group(2), _signature(secret, appointment_id, starts_at))
