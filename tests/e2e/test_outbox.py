"""Messages through the outbox (issue 13): each sending identity's queue drains at the identity's configured rate
(the template's ``SmsMessagesPerSecond``, 1 for a 10DLC number), nothing is lost, nothing is sent twice or in quiet
hours, a reminder the visit overtook is dropped, and the last message of a morning leaves when the capacity report
says it will.

The load test queues a morning's reminders the way the lifecycle does (``SqsOutbox`` on the deployed queue, at
07:59:50 New York, inside Bijoux's quiet hours that end at 08:00) and lets the deployed outbox function drain them.
``benchmarks/outbox_drain.py`` runs the same at 2,000 messages and prints the figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from localcloud.capacity import last_message_late_seconds
from localcloud.capture import SentMessageTap
from localcloud.cloud import LocalCloud
from localcloud.clock import utc
from medspa.adapters.outbox import SqsOutbox
from medspa.ports import OutgoingMessage
from tests.e2e.booking_site import BookingSite

pytestmark = pytest.mark.e2e

NEW_YORK = ZoneInfo("America/New_York")
QUEUED = datetime(2026, 3, 10, 7, 59, 50, tzinfo=NEW_YORK)
EIGHT = datetime(2026, 3, 10, 8, 0, tzinfo=NEW_YORK)


@dataclass(frozen=True)
class Drained:
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


@pytest.mark.parametrize("cloud", [utc(2026, 3, 9, 15)], indirect=True)
def test_300_reminders_due_at_eight_leave_one_a_second_once_each_and_none_in_quiet_hours(cloud) -> None:
    drained = drain_a_morning(cloud, 300, repeated=20, overtaken=5)

    texts = [text for _, text in drained.sent]
    assert sorted(texts) == sorted(f"reminder {n}" for n in range(300))  # nothing lost, nothing twice
    times = [at for at, _ in drained.sent]
    assert min(times) == EIGHT  # not one in quiet hours, although queued ten seconds before they ended
    assert all(later - earlier >= timedelta(seconds=1 / drained.per_second) for earlier, later in zip(times, times[1:]))
    assert (max(times) - EIGHT).total_seconds() == last_message_late_seconds(300, drained.per_second) == 299
    assert drained.dropped == 5  # the 08:01 visits' reminders came round at 08:05: no use then
    assert drained.dead_letters == 0


@pytest.mark.parametrize("cloud", [utc(2026, 3, 2, 15)], indirect=True)
def test_the_morning_reminders_of_one_days_visits_leave_one_a_second_and_their_log_says_when(cloud) -> None:
    site = BookingSite(cloud)
    visits = [f"apt-{n}" for n in range(6)]
    for n, appointment in enumerate(visits):
        site.client("bijoux", f"c-{n}", phone=f"+140755501{n:02d}")
        site.book(appointment, f"c-{n}", "bijoux", utc(2026, 3, 10, 14 + n), name="Facial", category="facial",
                  minutes=60, price=15000)
    cloud.run_until(utc(2026, 3, 10, 13))

    sent = sorted(at for appointment in visits for kind, status, at in site.messages(appointment)
                  if kind == "reminder_morning_of" and status == "sent" and at is not None)
    assert sent == [EIGHT + timedelta(seconds=s) for s in range(6)]
    assert {status for appointment in visits for _, status, _ in site.messages(appointment)} == {"sent"}
