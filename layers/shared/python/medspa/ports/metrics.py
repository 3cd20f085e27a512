"""What a spa owner and an on-call engineer count: outcomes, each counted where the system records it."""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol


class Counted(StrEnum):
    """The metric names, in the spa's words. Each is counted where its outcome is recorded, and only by the call
    that recorded it, so a retried step does not count it again; a crash between the record and the count loses
    that one count (metrics watch the system; the ledger is the account)."""

    FEE_CHARGED = "FeeCharged"  # the card paid it: at its step, at a dunning retry, or found paid by dunning
    FEE_APPLIED = "FeeApplied"  # taken from a deposit, prepayment, course session or gift certificate
    FEE_DECLINED = "FeeDeclined"  # the card declined or needs the client to authenticate; dunning follows
    FEE_OUTSTANDING = "FeeOutstanding"  # no card to charge: owed at the next visit
    FEE_WAIVED = "FeeWaived"  # by an admin
    FEE_RELEASED = "FeeReleased"  # given back: the client was there after all
    PAID_LATER = "PaidLater"  # a declined or authenticating charge (fee or draft) the ledger learns was paid since
    DISPUTED = "Disputed"  # a client's bank disputed a charge
    NO_SHOW = "NoShow"
    AUTO_CANCELLED = "AutoCancelled"  # not confirmed by the deadline
    STRIKE_RECORDED = "StrikeRecorded"
    PREPAY_REQUIRED = "PrepayRequired"  # a client's strikes reached the threshold
    MESSAGE_SENT = "MessageSent"
    MESSAGE_SKIPPED = "MessageSkipped"  # opted out, or no contact on the channel
    MESSAGE_FAILED = "MessageFailed"  # the provider refused it
    MESSAGE_DROPPED = "MessageDropped"  # the outbox held it until it was no use: the visit began, or quiet hours
    EVENT_QUARANTINED = "EventQuarantined"  # a booking-site event that cannot be applied, with its reason
    DRAFT_COLLECTED = "DraftCollected"  # a membership's monthly draft
    DRAFT_DECLINED = "DraftDeclined"


class Metrics(Protocol):
    def count(self, what: Counted, spa_id: str | None, channel: str | None = None) -> None:
        """One more ``what`` for ``spa_id`` (None when the spa is not known, as for an unreadable event);
        ``channel`` (sms, email) for messages."""


class NotCounted:
    """For a service built where nothing is watched (a test of something else)."""

    def count(self, what: Counted, spa_id: str | None, channel: str | None = None) -> None:
        return None


NOT_COUNTED = NotCounted()
