"""The outbox's sender on in-memory adapters: each identity's rate, once, never in quiet hours, only while useful.

The queue is played by :func:`drain`: every message put back comes round when its delay is over, as SQS delivers
it, and the sender is handed it with that moment as ``now``. Bijoux's quiet hours are 21:00 to 08:00 in New York.
"""

from __future__ import annotations

import heapq
import itertools
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from medspa.adapters.messaging import InMemoryMessenger
from medspa.adapters.outbox import InMemoryOutbox, InMemoryPacer, InMemorySendClaims
from medspa.adapters.store.consent import InMemoryConsent
from medspa.domain.booking import MessageResult
from medspa.messages.templates import load_templates
from medspa.ports import Counted, OutgoingMessage
from medspa.services.notifications import NotificationService
from medspa.services.outbox import OutboxSender
from tests.support.packs import BIJOUX, PACKS
from tests.unit.test_messages import client as a_client
from tests.unit.test_messages import context as a_context

NEW_YORK = ZoneInfo("America/New_York")
EIGHT = datetime(2026, 6, 9, 8, 0, tzinfo=NEW_YORK)
VISIT = datetime(2026, 6, 9, 14, 0, tzinfo=NEW_YORK)


class Settled:
    def __init__(self) -> None:
        self.results: list[tuple[str, str, MessageResult]] = []

    def record_delivery(self, appointment_id: str, key: str, result: MessageResult, now: datetime) -> Any:
        self.results.append((appointment_id, key, result))


class Counts:
    def __init__(self) -> None:
        self.counted: list[tuple[Counted, str | None, str | None]] = []

    def count(self, what: Counted, spa_id: str | None, channel: str | None = None) -> None:
        self.counted.append((what, spa_id, channel))


class Outbox:
    def __init__(self, sms_per_second: float = 1) -> None:
        self.messenger, self.queue, self.settled, self.metrics = InMemoryMessenger(), InMemoryOutbox(), Settled(), Counts()
        self.claims, self.consent = InMemorySendClaims(), InMemoryConsent()
        self.sender = OutboxSender(self.messenger, self.queue, InMemoryPacer({"sms": sms_per_second, "email": 14}),
                                   self.claims, self.settled, self.consent, self.metrics)  # type: ignore[arg-type]
        self.sent_at: list[tuple[datetime, str]] = []

    def drain(self, arrivals: list[tuple[datetime, OutgoingMessage]]) -> list[str]:
        """Deliver each arrival at its moment and every put-back copy after its delay; what each delivery did."""
        order = itertools.count()
        due = [(at, next(order), m) for at, m in arrivals]
        heapq.heapify(due)
        outcomes = []
        while due:
            now, _, message = heapq.heappop(due)
            before = len(self.queue.queued)
            sms_before = len(self.messenger.sms)
            outcomes.append(self.sender.handle(message, now))
            if len(self.messenger.sms) > sms_before:
                self.sent_at.append((now, message.id))
            for again, delay in self.queue.queued[before:]:
                heapq.heappush(due, (now + timedelta(seconds=delay), next(order), again))
        return outcomes


def reminder(n: int, *, queued_at: datetime = EIGHT, useful_until: datetime | None = VISIT,
             channel: str = "sms") -> OutgoingMessage:
    return OutgoingMessage(id=f"bijoux#apt-{n}/reminder_morning_of@x/{channel}", spa_id="bijoux", channel=channel,
                           kind="reminder_morning_of", to="+14075550123" if channel == "sms" else "ada@example.com",
                           body="See you today", subject="Today" if channel == "email" else None,
                           unsubscribe_url="https://api.example.com/u" if channel == "email" else None,
                           appointment_id=f"bijoux#apt-{n}", key="reminder_morning_of@x", queued_at=queued_at,
                           useful_until=useful_until, quiet_starts=time(21), quiet_ends=time(8),
                           zone="America/New_York")


def test_a_mornings_texts_leave_one_a_second_each_once_and_the_sender_never_waits() -> None:
    outbox = Outbox(sms_per_second=1)
    outcomes = outbox.drain([(EIGHT, reminder(n)) for n in range(30)])
    assert outcomes.count("sent") == 30 and len(outbox.messenger.sms) == 30
    assert [at for at, _ in outbox.sent_at] == [EIGHT + timedelta(seconds=s) for s in range(30)]
    assert sorted(i for _, i in outbox.sent_at) == sorted(reminder(n).id for n in range(30))
    assert all(0 < delay <= 900 for _, delay in outbox.queue.queued)  # put back on the queue, not waited for
    assert [r.status for _, _, r in outbox.settled.results] == ["sent"] * 30
    assert outbox.metrics.counted == [(Counted.MESSAGE_SENT, "bijoux", "sms")] * 30


def test_a_backlog_longer_than_sqs_delays_comes_round_until_its_moment() -> None:
    outbox = Outbox(sms_per_second=0.5)
    outbox.drain([(EIGHT, reminder(n)) for n in range(500)])
    assert outbox.sent_at[-1][0] == EIGHT + timedelta(seconds=998)
    assert max(delay for _, delay in outbox.queue.queued) == 900


def test_a_message_delivered_twice_is_sent_once() -> None:
    outbox = Outbox()
    assert outbox.drain([(EIGHT, reminder(1)), (EIGHT + timedelta(seconds=5), reminder(1))]) == ["sent", "duplicate"]
    assert len(outbox.messenger.sms) == 1 and len(outbox.settled.results) == 1


def test_a_refused_message_is_retried_by_the_queue_and_then_sent_once() -> None:
    outbox = Outbox()
    outbox.messenger.fail_sms = True
    with pytest.raises(ConnectionError):
        outbox.sender.handle(reminder(1), EIGHT)
    outbox.messenger.fail_sms = False
    assert outbox.sender.handle(reminder(1), EIGHT + timedelta(minutes=3)) == "sent"
    assert len(outbox.messenger.sms) == 1


def test_a_reminder_the_visit_overtook_is_dropped_with_its_reason_and_counted() -> None:
    outbox = Outbox(sms_per_second=1)
    short = [(EIGHT, reminder(n, useful_until=EIGHT + timedelta(seconds=10))) for n in range(15)]
    outcomes = outbox.drain(short)
    assert outcomes.count("sent") == 10 and outcomes.count("dropped") == 5
    dropped = [r for _, _, r in outbox.settled.results if r.status == "dropped"]
    assert {r.error for r in dropped} == {"visit_started"} and len(dropped) == 5
    assert outbox.metrics.counted.count((Counted.MESSAGE_DROPPED, "bijoux", "sms")) == 5


def test_nothing_goes_in_quiet_hours_a_notice_waits_for_the_morning_and_a_reminder_of_a_past_visit_is_dropped() -> None:
    outbox = Outbox(sms_per_second=1)
    evening = datetime(2026, 6, 8, 20, 59, 50, tzinfo=NEW_YORK)
    fee_notice = reminder(1, queued_at=evening, useful_until=None).model_copy(update={"kind": "no_show_fee_charged"})
    early_visit = reminder(2, queued_at=evening, useful_until=datetime(2026, 6, 9, 7, 30, tzinfo=NEW_YORK))
    backlog = [(evening, reminder(n, queued_at=evening)) for n in range(3, 23)]
    outbox.drain([*backlog, (evening, fee_notice), (evening, early_visit)])
    quiet_end = EIGHT
    times = {i: at for at, i in outbox.sent_at}
    assert all(at.astimezone(NEW_YORK).time() <= time(21) or at >= quiet_end for at in times.values())
    assert len([at for at in times.values() if at < quiet_end]) == 11  # 20:59:50 to 21:00:00 (a sendable edge)
    assert times[fee_notice.id] >= quiet_end
    assert ("bijoux#apt-2", "reminder_morning_of@x",
            MessageResult(channel="sms", status="dropped", error="quiet_hours")) in outbox.settled.results
    assert len(times) == 21  # everything but the reminder of the 07:30 visit


def test_a_number_that_replied_stop_while_its_reminder_waited_in_the_queue_is_not_texted() -> None:
    outbox = Outbox(sms_per_second=1)
    waiting = reminder(1).model_copy(update={"to": "+14075550199"})
    assert [outbox.sender.handle(m, EIGHT) for m in (reminder(0), waiting)] == ["sent", "later"]
    outbox.consent.record("sms", "+14075550199", "bijoux", opted_out=True, how="keyword",
                          at=EIGHT + timedelta(milliseconds=500))
    assert outbox.sender.handle(outbox.queue.queued[-1][0], EIGHT + timedelta(seconds=1)) == "dropped"
    assert len(outbox.messenger.sms) == 1
    assert outbox.settled.results[-1][2] == MessageResult(channel="sms", status="dropped", error="opted_out")


def test_an_urgent_kind_goes_in_quiet_hours() -> None:
    outbox = Outbox()
    night = datetime(2026, 6, 8, 23, 0, tzinfo=NEW_YORK)
    assert outbox.sender.handle(reminder(1, queued_at=night).model_copy(update={"urgent": True}), night) == "sent"


# ------------------------------------------------------------------------------------------------ queuing


def notifier(outbox: InMemoryOutbox) -> NotificationService:
    consent = InMemoryConsent()

    class Links:
        def link_for(self, spa_id: str, email: str, now: datetime) -> str:
            return "https://api.example.com/unsubscribe?t=x"

    return NotificationService(None, load_templates(), PACKS, consent=consent, unsubscribe=Links(), outbox=outbox)


def test_with_an_outbox_the_notifier_queues_on_each_identity_and_calls_no_provider() -> None:
    queue = InMemoryOutbox()
    client = a_client(BIJOUX, first_name="Ada")
    context = a_context(BIJOUX, VISIT, appointment_id="bijoux#apt-1", client_first_name="Ada")
    now = EIGHT - timedelta(days=2)
    reminder_results = notifier(queue).notify(client, "reminder_48h", context, now, key="reminder_48h@x")
    fee_results = notifier(queue).notify(client, "auto_cancelled", context, now, key="auto_cancelled")
    assert [(r.channel.value, r.status, r.message_id) for r in reminder_results] == [("sms", "queued", None)]
    assert [(r.channel.value, r.status) for r in fee_results] == [("sms", "queued"), ("email", "queued")]
    first, *notices = (m for m, _ in queue.queued)
    assert (first.id, first.identity, first.useful_until, first.key) == (
        "bijoux#apt-1/reminder_48h@x/sms", "sms", VISIT, "reminder_48h@x")
    assert [(m.identity, m.useful_until) for m in notices] == [("sms", None), ("email", None)]
    assert notices[1].unsubscribe_url and notices[1].subject and "Ada" in notices[1].body
    assert (first.quiet_starts, first.quiet_ends, first.zone) == (time(21), time(8), "America/New_York")


def test_a_notifier_sends_now_or_through_the_outbox_never_both_or_neither() -> None:
    with pytest.raises(ValueError, match="one of them"):
        NotificationService(InMemoryMessenger(), load_templates(), PACKS, consent=InMemoryConsent(),
                            unsubscribe=None, outbox=InMemoryOutbox())  # type: ignore[arg-type]
