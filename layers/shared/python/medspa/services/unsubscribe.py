"""Email unsubscribe links: issued with every email, honoured by the HTTP API's ``/unsubscribe``.

The link is ``<UNSUBSCRIBE_URL>?token=v1.<signature>`` (:mod:`medspa.domain.consent` says why the
address is not in it). Opening it (GET) only shows a page with a button: mail scanners and link
previews fetch every link in a message, and a GET that unsubscribed would unsubscribe people who
never clicked. The button, and a mail provider's one-click ``List-Unsubscribe-Post`` (RFC 8058), POST
to the same address, and that records the opt-out for the (spa, address) the link was signed for.
Repeating it changes nothing a person can see, so a double click or a provider's retry is harmless.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict

from medspa.domain.consent import (
    InvalidUnsubscribeLink,
    mask_email,
    token_matches,
    token_reference,
    unsubscribe_token,
)
from medspa.ports.consent import ConsentBook

NOT_ISSUED = "the link is not valid: this system did not issue it, or it has been altered"


class UnsubscribeTarget(BaseModel):
    """Whom a valid link unsubscribes; only the masked address, so it may be logged or shown."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    spa_id: str
    spa_name: str
    masked_email: str


class EmailUnsubscribe:
    def __init__(self, consent: ConsentBook, secret: Callable[[], bytes], link_base: str | None,
                 spa_names: Mapping[str, str]) -> None:
        """``secret`` is called when a link is made or checked, so a handler can fetch it lazily
        (from SSM) inside an invocation. ``link_base`` is the public https:// address of
        ``/unsubscribe``; the HTTP API's own function checks links but makes none, and cannot be told
        its API's address (the API refers to the function: a reference back would be a cycle)."""
        if link_base is not None and (not link_base.startswith("https://") or "?" in link_base):
            raise ValueError("link_base must be an https:// address without a query")
        self._consent = consent
        self._secret = secret
        self._base = link_base
        self._spa_names = dict(spa_names)

    def link_for(self, spa_id: str, email: str, now: datetime) -> str:
        if self._base is None:
            raise RuntimeError("this EmailUnsubscribe was built without the link address")
        token = unsubscribe_token(self._secret(), spa_id, email)
        self._consent.remember_link(token_reference(token), spa_id, email, now)
        return f"{self._base}?token={quote(token, safe='.')}"

    def _target(self, token: str | None) -> tuple[str, str]:
        reference = token_reference(token)
        found = self._consent.link(reference)
        if found is None or not token_matches(self._secret(), token or "", *found):
            raise InvalidUnsubscribeLink(NOT_ISSUED)
        return found

    def read(self, token: str | None) -> UnsubscribeTarget:
        """What the confirmation page shows; :class:`InvalidUnsubscribeLink` for a link not ours."""
        spa_id, email = self._target(token)
        return UnsubscribeTarget(spa_id=spa_id, spa_name=self._spa_names.get(spa_id, spa_id),
                                 masked_email=mask_email(email))

    def unsubscribe(self, token: str | None, now: datetime) -> UnsubscribeTarget:
        spa_id, email = self._target(token)
        self._consent.record("email", email, spa_id, opted_out=True, how="link", at=now, evidence="unsubscribe link")
        return UnsubscribeTarget(spa_id=spa_id, spa_name=self._spa_names.get(spa_id, spa_id),
                                 masked_email=mask_email(email))
