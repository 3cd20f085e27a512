"""The bearer token a spa's booking site and admins present to the spa API: ``sa1.<spa>.<signature>``.

The signature is an HMAC-SHA256, with the deployment's spa-API secret (SSM), over the purpose and the spa id,
so a token speaks for exactly one spa and cannot be altered to speak for another. Nothing is stored: the
operator issues a spa its token (``medspa-admin token <spa>``), and rotating the secret revokes every token at
once. A token's spa is checked against the spa in the path on every request (``services/spa_desk``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

_TOKEN = re.compile(r"^sa1\.([a-z0-9][a-z0-9_-]{0,62})\.([A-Za-z0-9_-]{43})$")


class InvalidApiToken(ValueError):
    """The request carries no token this deployment issued; the message never repeats what was sent."""


def _signature(secret: bytes, spa_id: str) -> str:
    if len(secret) < 32:
        raise ValueError("the signing secret must be at least 32 bytes")
    digest = hmac.new(secret, "\x1f".join(("sa1", "spa-api", spa_id)).encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def api_token(secret: bytes, spa_id: str) -> str:
    if not _TOKEN.match(f"sa1.{spa_id}.{'A' * 43}"):
        raise ValueError("a spa id is lower-case letters, digits, '_' and '-'")
    return f"sa1.{spa_id}.{_signature(secret, spa_id)}"


def spa_of_token(secret: bytes, authorization: str | None) -> str:
    """The spa an ``Authorization: Bearer <token>`` header speaks for."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise InvalidApiToken("send the spa's API token as 'Authorization: Bearer <token>'")
    match = _TOKEN.match(token.strip())
    if match is None or not hmac.compare_digest(match.group(2), _signature(secret, match.group(1))):
        raise InvalidApiToken("the API token is not one this deployment issued")
    return match.group(1)
