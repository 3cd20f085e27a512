"""Messages through the outbox (issue 13): each sending identity's queue drains at the identity's configured rate
(the template's ``SmsMessagesPerSecond``, 1 for a 10DLC number), nothing is lost, nothing is sent twice or in quiet
hours, a reminder the visit overtook is dropped, and the last message of a morning leaves when the capacity report
says it will.

The load test is ``localcloud.loadtest.drain_a_morning`` (``benchmarks/outbox_drain.py`` runs it at 2,000 messages
and prints the figures).
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from localcloud.capacity import last_message_late_seconds
from localcloud.clock import utc
from localcloud.loadtest import EIGHT, START, drain_a_morning
from tests.e2e.booking_site import BookingSite

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("cloud", [START], indirect=True)
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


@pytest.mark.parametrize("cloud", [utc(2026, 3, 2, 15)], indirect=True)
def test_a_client_who_replies_stop_while_the_morning_queue_drains_is_not_texted_and_the_log_says_why(cloud) -> None:
    """Six morning reminders queue at 08:00 and leave one a second. Half a second in, all six clients reply STOP
    (through the deployed inbound path): the first text has gone, the five still waiting for their moment are
    dropped as opted_out when it comes, since the sender reads the number's consent again then."""
    site = BookingSite(cloud)
    visits = {f"apt-{n}": f"+140755502{n:02d}" for n in range(6)}
    for n, (appointment, phone) in enumerate(visits.items()):
        site.client("bijoux", f"c-{n}", phone=phone)
        site.book(appointment, f"c-{n}", "bijoux", utc(2026, 3, 10, 14 + n), name="Facial", category="facial",
                  minutes=60, price=15000)
    cloud.run_until(EIGHT + timedelta(milliseconds=500))
    for n, phone in enumerate(visits.values()):
        cloud.client("sns").publish(TopicArn=cloud.deployment.outputs["InboundSmsTopicArn"], Message=json.dumps({
            "originationNumber": phone, "destinationNumber": "+18005550100", "messageKeyword": "KEYWORD",
            "inboundMessageId": f"in-stop-{n}", "previousPublishedMessageId": "out-1", "messageBody": "STOP"}))
    cloud.run_until(utc(2026, 3, 10, 13))

    morning = [next(m for m in site.stored(appointment).messages if m.kind == "reminder_morning_of")
               for appointment in visits]
    assert sorted((m.status, m.sent_at) for m in morning) == [("dropped", None)] * 5 + [("sent", EIGHT)]
    assert {(r.status, r.error) for m in morning if m.status == "dropped" for r in m.results if r.channel == "sms"} == {
        ("dropped", "opted_out")}
    assert cloud.metric_sum("MessageDropped", channel="sms") == 5
