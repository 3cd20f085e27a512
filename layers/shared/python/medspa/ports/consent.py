"""The consent book: each contact address's consent, the unsubscribe links sent to it, keyword replies sent once.

Senders, the inbound SMS service, the unsubscribe page and the privacy service reach it only through
:class:`ConsentBook`; the DynamoDB repository (``medspa.adapters.store.consent``) and its in-memory twin implement
it, held to the same contract by ``tests/integration/test_store_contracts.py``. Why consent belongs to an address
and how far a record reaches: :mod:`medspa.domain.consent`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict

from medspa.domain.consent import ConsentChannel, How


class Consent(BaseModel):
    """One address's consent for one channel and scope (no address in ``repr``: it is PII)."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    channel: ConsentChannel
    scope: str
    opted_out: bool
    changed_at: AwareDatetime
    how: How
    evidence: str | None = None

    def __repr__(self) -> str:
        return (f"Consent(channel={self.channel!r}, scope={self.scope!r}, opted_out={self.opted_out!r}, "
                f"how={self.how!r})")


class ConsentBook(Protocol):
    """Every call takes the address as given and compares it normalised; ``ValueError`` (without the address)
    for one that is not a phone number or an email address."""

    def get(self, channel: ConsentChannel, address: str, spa_id: str) -> Consent | None:
        """The record that governs ``address`` at ``spa_id``, read consistently: a STOP a moment ago counts."""
        ...

    def opted_out(self, channel: ConsentChannel, address: str, spa_id: str) -> bool: ...

    def record(self, channel: ConsentChannel, address: str, spa_id: str, *, opted_out: bool, how: How,
               at: datetime, evidence: str | None = None) -> Consent:
        """Store the change unless a later one is stored, so a retried STOP cannot undo the START that followed
        it; returns what is stored either way."""
        ...

    def remember_link(self, reference: str, spa_id: str, email: str, now: datetime) -> None:
        """Map an unsubscribe token's reference to the (spa, address) it was signed for; every email repeats it."""
        ...

    def link(self, reference: str) -> tuple[str, str] | None: ...

    def claim_reply(self, inbound_message_id: str, intent: str, now: datetime) -> bool:
        """``False`` if the reply to this inbound message was claimed before: a redelivery sends nothing."""
        ...

    def reply_sent(self, inbound_message_id: str, message_id: str, now: datetime) -> None: ...

    def release_reply(self, inbound_message_id: str) -> None:
        """Give up a claim whose send failed, so the redelivery may try again."""
        ...

    def forget(self, channel: ConsentChannel, address: str, spa_id: str) -> bool:
        """Delete the record that governs ``address`` at ``spa_id`` (an erasure; the caller has checked the address
        is no one else's); ``False`` if there was none."""
        ...

    def forget_links(self, spa_id: str, email: str) -> int:
        """Delete the unsubscribe links sent to ``email`` for ``spa_id``; returns how many."""
        ...


__all__ = ["Consent", "ConsentBook"]
