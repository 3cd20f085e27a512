"""A morning's reminders at one sending identity's rate: the outbox load test of issue 13, at 2,000 messages.

What runs: ``localcloud.loadtest.drain_a_morning`` queues MESSAGES reminders on the deployed SMS outbox at 07:59:50 in
New York (inside Bijoux's quiet hours, which end at 08:00), some of them twice (SQS delivers at least once) and a
few for visits at 08:01 behind them, and the deployed outbox function drains them under the virtual clock at the
template's ``SmsMessagesPerSecond`` (1, a 10DLC number). Printed: what left, twice, in quiet hours or was dropped;
the achieved rate; the last text's delay beside the capacity report's figure for the same count; the real time.
Prints; asserts nothing (``tests/e2e/test_outbox.py`` holds the rules at 300).

Run: ``make bench`` or ``.venv/bin/python benchmarks/outbox_drain.py [messages]``.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter

from localcloud.capacity import last_message_late_seconds
from localcloud.cloud import LocalCloud
from localcloud.loadtest import EIGHT, START, drain_a_morning

MESSAGES = int(sys.argv[1]) if len(sys.argv) > 1 else 2000


def main() -> None:
    logging.disable(logging.WARNING)
    began = time.perf_counter()
    with LocalCloud(START) as cloud:
        cloud.deploy({"LogLevel": "ERROR"})
        drained = drain_a_morning(cloud, MESSAGES, repeated=MESSAGES // 10, overtaken=10)
    real = time.perf_counter() - began
    times = sorted(at for at, _ in drained.sent)
    twice = sum(n - 1 for n in Counter(text for _, text in drained.sent).values() if n > 1)
    late = (times[-1] - EIGHT).total_seconds()
    print(f"outbox drain: {drained.queued:,} queued ({MESSAGES:,} reminders, {MESSAGES // 10:,} delivered twice more, "
          f"10 for 08:01 visits) at {drained.per_second:g} SMS/s")
    print(f"  sent {len(times):,}, lost {MESSAGES - len(set(t for _, t in drained.sent)):,}, twice {twice}, "
          f"in quiet hours {sum(t < EIGHT for t in times)}, dropped {drained.dropped:g}, dead letters "
          f"{drained.dead_letters}")
    print(f"  achieved {(len(times) - 1) / late:.3f} SMS/s; last text {late:,.0f} s after 08:00 "
          f"(capacity report: {last_message_late_seconds(MESSAGES, drained.per_second):,.0f} s); real {real:.0f} s")


if __name__ == "__main__":
    main()
