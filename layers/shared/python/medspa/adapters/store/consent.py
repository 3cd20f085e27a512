"""Consent records by contact address, the unsubscribe links that point at them, and keyword replies.

Why a table of its own (``ConsentTable`` in template.yaml) rather than flags on client records: a STOP
must hold for a client the booking site creates next month with the same number, and the functions
that change consent (inbound SMS, the unsubscribe page) need no access to client records at all.

* A consent record is keyed by the normalised address and the scope the channel uses
  (:func:`medspa.domain.consent.consent_scope`: ``*`` for SMS, the spa for email). It holds the
  current state with when and how it last changed (``keyword``, ``link``, ``admin``) and the evidence
  (the inbound message id, or the link's purpose). A write carries its time and is refused if a later
  change is already stored, so a retried STOP cannot undo the START that followed it.
* A link item maps an unsubscribe token's reference to the (spa, address) it was signed for; written
  (idempotently) each time an email is sent, read when the link comes back.
* A reply item is claimed (conditional put) before a keyword's confirmation text is sent, so a second
  delivery of the same inbound message sends nothing. A send that fails releases the claim and the
  delivery is retried; a claim left ``sending`` by a crash is not resent (like the lifecycle's
  messages: "maybe sent" is not sent twice).

Nothing here logs or echoes an address.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pynamodb.constants import ALL_NEW
from pynamodb.exceptions import PutError, UpdateError

from medspa.domain.consent import ConsentChannel, How, consent_scope, normalise
from medspa.ports.consent import Consent

from .errors import transient_errors_named
from .models import ConsentItem, condition_failed

REPLY_KEPT_FOR = timedelta(days=30)  # SNS/Lambda redeliver within hours; a month is ample


def _subject(channel: ConsentChannel, address: str) -> str:
    return f"{channel}#{normalise(channel, address)}"


class ConsentRepository:
    def __init__(self, model: type[ConsentItem]) -> None:
        self._model = model

    def _item(self, subject: str, scope: str) -> ConsentItem | None:
        try:
            with transient_errors_named():
                return self._model.get(subject, scope, consistent_read=True)
        except self._model.DoesNotExist:
            return None

    def get(self, channel: ConsentChannel, address: str, spa_id: str) -> Consent | None:
        """The record that governs ``address`` at ``spa_id`` (a consistent read: a STOP a moment ago counts)."""
        scope = consent_scope(channel, spa_id)
        item = self._item(_subject(channel, address), scope)
        if item is None or item.opted_out is None or item.changed_at is None:
            return None
        return Consent(channel=channel, scope=scope, opted_out=item.opted_out, changed_at=item.changed_at,
                       how=item.how, evidence=item.evidence)

    def opted_out(self, channel: ConsentChannel, address: str, spa_id: str) -> bool:
        found = self.get(channel, address, spa_id)
        return found is not None and found.opted_out

    def record(self, channel: ConsentChannel, address: str, spa_id: str, *, opted_out: bool, how: How,
               at: datetime, evidence: str | None = None) -> Consent:
        """Store the change unless a later one is stored; returns what is stored either way."""
        m = self._model
        scope = consent_scope(channel, spa_id)
        subject = _subject(channel, address)
        actions = [m.opted_out.set(opted_out), m.changed_at.set(at), m.how.set(how), m.updated_at.set(at),
                   m.created_at.set(m.created_at | at)]
        actions.append(m.evidence.set(evidence) if evidence else m.evidence.remove())
        newer_or_first = m.changed_at.does_not_exist() | (m.changed_at <= at)
        try:
            with transient_errors_named():
                m._get_connection().update_item(subject, scope, actions=actions, condition=newer_or_first,
                                                return_values=ALL_NEW)
        except UpdateError as error:
            if not condition_failed(error):
                raise
        stored = self.get(channel, address, spa_id)
        assert stored is not None
        return stored

    def remember_link(self, reference: str, spa_id: str, email: str, now: datetime) -> None:
        m = self._model
        with transient_errors_named():
            m._get_connection().update_item(
                f"link#{reference}", "email",
                actions=[m.spa_id.set(spa_id), m.address.set(normalise("email", email)), m.purpose.set("unsubscribe"),
                         m.created_at.set(m.created_at | now), m.updated_at.set(now)])

    def link(self, reference: str) -> tuple[str, str] | None:
        item = self._item(f"link#{reference}", "email")
        if item is None or not item.spa_id or not item.address:
            return None
        return item.spa_id, item.address

    def claim_reply(self, inbound_message_id: str, intent: str, now: datetime) -> bool:
        item = self._model(f"reply#{inbound_message_id}", "sms", intent=intent, status="sending", created_at=now,
                           updated_at=now, expires_at=now + REPLY_KEPT_FOR)
        try:
            with transient_errors_named():
                item.save(condition=self._model.subject.does_not_exist())
        except PutError as error:
            if condition_failed(error):
                return False
            raise
        return True

    def reply_sent(self, inbound_message_id: str, message_id: str, now: datetime) -> None:
        m = self._model
        with transient_errors_named():
            m._get_connection().update_item(f"reply#{inbound_message_id}", "sms", actions=[
                m.status.set("sent"), m.message_id.set(message_id), m.updated_at.set(now)])

    def release_reply(self, inbound_message_id: str) -> None:
        with transient_errors_named():
            self._model._get_connection().delete_item(f"reply#{inbound_message_id}", "sms")

    # Erasure (medspa.services.privacy): the caller has checked the address is no one else's.

    def forget(self, channel: ConsentChannel, address: str, spa_id: str) -> bool:
        """Delete the consent record that governs ``address`` at ``spa_id``; ``False`` if there was none."""
        scope = consent_scope(channel, spa_id)
        subject = _subject(channel, address)
        if self._item(subject, scope) is None:
            return False
        with transient_errors_named():
            self._model._get_connection().delete_item(subject, scope)
        return True

    def forget_links(self, spa_id: str, email: str) -> int:
        """Delete the unsubscribe links sent to ``email`` for ``spa_id`` (a scan: erasure is rare); returns how many."""
        m, address = self._model, normalise("email", email)
        with transient_errors_named():
            found = [item.subject for item in m.scan(m.subject.startswith("link#") & (m.spa_id == spa_id)
                                                     & (m.address == address))]
            for subject in found:
                m._get_connection().delete_item(subject, "email")
        return len(found)


@dataclass
class InMemoryConsent:
    """A :class:`medspa.ports.consent.ConsentBook` in a dict, for unit tests; the store's contract test runs it and
    the table against the same cases."""

    records: dict[tuple[str, str], Consent] = field(default_factory=dict)
    links: dict[str, tuple[str, str]] = field(default_factory=dict)
    replies: dict[str, str] = field(default_factory=dict)

    def get(self, channel: ConsentChannel, address: str, spa_id: str) -> Consent | None:
        return self.records.get((_subject(channel, address), consent_scope(channel, spa_id)))

    def opted_out(self, channel: ConsentChannel, address: str, spa_id: str) -> bool:
        found = self.get(channel, address, spa_id)
        return found is not None and found.opted_out

    def record(self, channel: ConsentChannel, address: str, spa_id: str, *, opted_out: bool, how: How,
               at: datetime, evidence: str | None = None) -> Consent:
        key = (_subject(channel, address), consent_scope(channel, spa_id))
        stored = self.records.get(key)
        if stored is None or stored.changed_at <= at:
            self.records[key] = Consent(channel=channel, scope=key[1], opted_out=opted_out, changed_at=at, how=how,
                                        evidence=evidence)
        return self.records[key]

    def remember_link(self, reference: str, spa_id: str, email: str, now: datetime) -> None:
        self.links[reference] = (spa_id, normalise("email", email))

    def link(self, reference: str) -> tuple[str, str] | None:
        return self.links.get(reference)

    def claim_reply(self, inbound_message_id: str, intent: str, now: datetime) -> bool:
        if inbound_message_id in self.replies:
            return False
        self.replies[inbound_message_id] = "sending"
        return True

    def reply_sent(self, inbound_message_id: str, message_id: str, now: datetime) -> None:
        self.replies[inbound_message_id] = "sent"

    def release_reply(self, inbound_message_id: str) -> None:
        self.replies.pop(inbound_message_id, None)

    def forget(self, channel: ConsentChannel, address: str, spa_id: str) -> bool:
        return self.records.pop((_subject(channel, address), consent_scope(channel, spa_id)), None) is not None

    def forget_links(self, spa_id: str, email: str) -> int:
        sent_to = (spa_id, normalise("email", email))
        found = [reference for reference, pair in self.links.items() if pair == sent_to]
        for reference in found:
            del self.links[reference]
        return len(found)
