"""A queued record turned away by the Stripe budget comes back after a while of its own, not after the queue's
fixed visibility timeout.

Why: webhooks come in bursts (a morning's no-show fees decline together, and Stripe tells each one). Records
that all failed in one second would all come back in one second again, be turned away again, and reach the
dead-letter queue after five receives though nothing is wrong. Each retry waits a full-jitter while in a window
that doubles with every receive (capped), taken from a hash of the message and its receive count: spread, and
the same in every run.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

FIRST_WINDOW_SECONDS = 30
LAST_WINDOW_SECONDS = 900


def backoff_seconds(message_id: str, receives: int) -> int:
    """How long the record stays hidden after its ``receives``-th receive failed: 1 to the window's seconds."""
    window = min(LAST_WINDOW_SECONDS, FIRST_WINDOW_SECONDS * 2 ** max(0, receives - 1))
    digest = hashlib.blake2b(f"{message_id}:{receives}".encode(), digest_size=8).digest()
    return 1 + int.from_bytes(digest, "big") % window


class Redelivery:
    """Hides a failed record of one queue for its backoff (``sqs:ChangeMessageVisibility`` on that queue)."""

    def __init__(self, sqs: Any, queue_url: str) -> None:
        self._sqs, self._queue_url = sqs, queue_url

    def later(self, record: SQSRecord) -> int:
        seconds = backoff_seconds(record.message_id, int(record.attributes.approximate_receive_count))
        self._sqs.change_message_visibility(QueueUrl=self._queue_url, ReceiptHandle=record.receipt_handle,
                                            VisibilityTimeout=seconds)
        return seconds
