"""The outbox in AWS: an SQS queue per sending identity, and the sender's pace and claims in one DynamoDB table.

* **Queues** (``SmsOutboxQueue``, ``EmailOutboxQueue``): a message is queued on its identity's queue with its
  body and recipient (SQS encrypts at rest); the sender's event source mapping reads it with a small
  ``MaximumConcurrency``. A message put back for later uses ``DelaySeconds``.
* **Pace** (``OutboxTable`` item ``pace#<identity>``): the identity's next free moment, ``next_free`` in epoch
  milliseconds. Taking one moment is one write: a conditional ``SET`` when the identity is idle (its next free
  moment has passed: the message goes now), else an atomic ``ADD`` of one interval, whose new value says which
  moment was taken. Two senders can never take the same moment, and the queue drains at exactly the rate. At 1 to
  100 messages a second the item is far below a partition's 1,000 writes a second.
* **Claims** (item ``<spa>#sent#<message id>``): a conditional put before the provider is called. Items expire
  (TTL) after SQS's longest retention, past which no copy of the message can come back.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from medspa.ports.messaging import OutgoingMessage

KEPT = timedelta(days=15)  # SQS keeps a message 14 days at most


def _code(error: Exception) -> str | None:
    return getattr(error, "response", {}).get("Error", {}).get("Code")


class SqsOutbox:
    def __init__(self, sqs: Any, queue_urls: Mapping[str, str]) -> None:
        self._sqs = sqs
        self._queues = dict(queue_urls)

    def put(self, message: OutgoingMessage, *, delay_seconds: int = 0) -> None:
        self._sqs.send_message(QueueUrl=self._queues[message.identity], MessageBody=message.model_dump_json(),
                               DelaySeconds=min(max(delay_seconds, 0), 900))


class DynamoPacer:
    def __init__(self, dynamodb: Any, table: str, per_second: Mapping[str, float]) -> None:
        self._db, self._table = dynamodb, table
        self._interval_ms = {identity: max(1, round(1000 / rate)) for identity, rate in per_second.items()}

    def reserve(self, identity: str, now: datetime) -> datetime:
        interval, at = self._interval_ms[identity], int(now.timestamp() * 1000)
        key = {"pk": {"S": f"pace#{identity}"}}
        try:
            self._db.update_item(TableName=self._table, Key=key, UpdateExpression="SET next_free = :next",
                                 ConditionExpression="attribute_not_exists(next_free) OR next_free <= :now",
                                 ExpressionAttributeValues={":next": {"N": str(at + interval)}, ":now": {"N": str(at)}})
            return now
        except Exception as error:  # botocore's errors are made per client; matched by their code
            if _code(error) != "ConditionalCheckFailedException":
                raise
        taken = self._db.update_item(TableName=self._table, Key=key, UpdateExpression="ADD next_free :interval",
                                     ExpressionAttributeValues={":interval": {"N": str(interval)}},
                                     ReturnValues="UPDATED_NEW")
        return datetime.fromtimestamp((int(taken["Attributes"]["next_free"]["N"]) - interval) / 1000, UTC)


class DynamoSendClaims:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db, self._table = dynamodb, table

    def claim(self, spa_id: str, message_id: str, now: datetime) -> bool:
        try:
            self._db.put_item(TableName=self._table, Item={
                "pk": {"S": f"{spa_id}#sent#{message_id}"}, "claimed_at": {"S": now.isoformat()},
                "expires_at": {"N": str(int((now + KEPT).timestamp()))}},
                ConditionExpression="attribute_not_exists(pk)")
            return True
        except Exception as error:
            if _code(error) != "ConditionalCheckFailedException":
                raise
            return False

    def release(self, spa_id: str, message_id: str) -> None:
        self._db.delete_item(TableName=self._table, Key={"pk": {"S": f"{spa_id}#sent#{message_id}"}})


class InMemoryOutbox:
    """Queued messages in a list, with their delays, for unit tests of what is queued and put back."""

    def __init__(self) -> None:
        self.queued: list[tuple[OutgoingMessage, int]] = []

    def put(self, message: OutgoingMessage, *, delay_seconds: int = 0) -> None:
        self.queued.append((OutgoingMessage.model_validate_json(message.model_dump_json()), delay_seconds))


class InMemoryPacer:
    def __init__(self, per_second: Mapping[str, float]) -> None:
        self._interval = {identity: timedelta(seconds=1 / rate) for identity, rate in per_second.items()}
        self.next_free: dict[str, datetime] = {}

    def reserve(self, identity: str, now: datetime) -> datetime:
        moment = max(now, self.next_free.get(identity, now))
        self.next_free[identity] = moment + self._interval[identity]
        return moment


class InMemorySendClaims:
    def __init__(self) -> None:
        self.claimed: set[tuple[str, str]] = set()

    def claim(self, spa_id: str, message_id: str, now: datetime) -> bool:
        if (spa_id, message_id) in self.claimed:
            return False
        self.claimed.add((spa_id, message_id))
        return True

    def release(self, spa_id: str, message_id: str) -> None:
        self.claimed.discard((spa_id, message_id))
