"""A morning's reminders through the deployed outbox: the load test of issue 13, at a size this machine holds.

``drain_a_morning`` queues the reminders the way the lifecycle does (``SqsOutbox`` on the deployed SMS queue, at
07:59:50 New York, inside Bijoux's quiet hours that end at 08:00) and lets the deployed outbox function drain them
under the virtual clock. ``tests/e2e/test_outbox.py`` holds it to the rules at 300 messages;
``benchmarks/outbox_drain.py`` runs it at 2,000 and prints the figures beside the capacity report's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from localcloud.capture import SentMessageTap
from localcloud.cloud import LocalCloud
from localcloud.clock import utc
from medspa.adapters.outbox import SqsOutbox
from medspa.ports import OutgoingMessage

NEW_YORK = ZoneInfo("America/New_York")
QUEUED = datetime(2026, 3, 10, 7, 59, 50, tzinfo=NEW_YORK)
EIGHT = datetime(2026, 3, 10, 8, 0, tzinfo=NEW_YORK)
START = utc(2026, 3, 9, 15)


@dataclass(frozen=True)
class Drained:
    """What left (the provider's record, with virtual send times), what was dropped, what reached the DLQ."""

    sent: list[tuple[datetime, str]]  # (virtual time, text) of each SMS the provider took
    dropped: float
    dead_letters: int
    queued: int
    per_second: float


def morning_reminder(n: int, *, useful_until: datetime) -> OutgoingMessage:
    return OutgoingMessage(id=f"bijoux#load-{n}/reminder_morning_of@x/sms", spa_id="bijoux", channel="sms",
                           kind="reminder_morning_of", to=f"+1407555{n:04d}", body=f"reminder {n}", queued_at=QUEUED,
                           useful_until=useful_until, quiet_starts=time(21), quiet_ends=time(8), zone="America/New_York")


def drain_a_morning(cloud: LocalCloud, reminders: int, *, repeated: int = 0, overtaken: int = 0) -> Drained:
    """Queue ``reminders`` for visits at noon, ``repeated`` of them twice more (an at-least-once queue delivers
    again), and ``overtaken`` more for visits at 08:01 behind them; run until the outbox is empty."""
    cloud.run_until(QUEUED)
    tap = SentMessageTap(cloud.region)
    assert cloud.clock is not None
    cloud.clock.add_idle_hook(tap)
    environment = cloud.function_environment("OutboxFunction")
    sqs = cloud.client("sqs")
    outbox = SqsOutbox(sqs, {"sms": environment["SMS_OUTBOX_QUEUE_URL"]})
    noon = EIGHT.replace(hour=12)
    messages = [morning_reminder(n, useful_until=noon) for n in range(reminders)]
    messages += messages[:repeated] * 2
    messages += [morning_reminder(reminders + n, useful_until=EIGHT + timedelta(minutes=1)) for n in range(overtaken)]
    for message in messages:
        outbox.put(message)
    cloud.run_until_idle()
    [dlq] = [url for url in sqs.list_queues(QueueNamePrefix="medspa-")["QueueUrls"] if url.endswith("-outbox-dlq")]
    dead = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])
    return Drained(sent=[(m["at"], m["text"]) for m in tap.sent if m["channel"] == "sms"],
                   dropped=cloud.metric_sum("MessageDropped", channel="sms"),
                   dead_letters=int(dead["Attributes"]["ApproximateNumberOfMessages"]), queued=len(messages),
                   per_second=float(environment["SMS_MESSAGES_PER_SECOND"]))


