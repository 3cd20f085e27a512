"""A draft day at the Stripe rate limit: thousands of memberships due at once, drafted by the real state machine.

What runs: ``MEMBERSHIPS`` MassageLuXe Austin memberships (each its own Stripe customer and card) signed up through
the bus and the intake, all due on one day; at 09:00 Chicago time EventBridge Scheduler starts MembershipDrafts,
whose Distributed Map drafts each one through the memberships Lambda, the real ``stripe`` SDK and the fake Stripe
with its account-wide token bucket of 25 requests a second (Stripe's test-mode limit), under the virtual clock.
Then the day's run is started again with the same input, the harshest redrive (every iteration runs again, not
only failed ones), and every customer must still hold exactly one charge.

In the local cloud a Lambda takes no virtual time, which would let any concurrency saturate the bucket. So each
draft step's Lambda here takes ``STEP_S`` of virtual time, which is what bounds the rate on AWS: at most
MaxConcurrency drafts are in flight, each for about half a second. The figure printed is the sustained draft rate (the drafts beyond the
bucket's initial burst of 25, over the time from the first draft to the last) as a fraction of 25 a second; every
draft is one request, so it is also the share of the rate limit spent on drafts that succeeded. Since the shared
Stripe budget (issue 13: ``medspa/adapters/stripe_budget.py``) drafts may take at most half of each second (12 of
25), the rest being kept for fees, so the ceiling of this figure is about 0.48 (not re-measured yet).

Run: ``make bench`` or ``.venv/bin/python benchmarks/membership_drafts.py [memberships]``.
"""

from __future__ import annotations

import json
import logging
import random
import sys
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from moto.stepfunctions.parser.asl.component.common.retry import jitter_strategy_decl

from fakestripe import client_for, save_test_card
from localcloud.cloud import LocalCloud
from medspa.adapters.store import EntryKind, EntryStatus, Store, TableNames

MEMBERSHIPS = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
RATE_LIMIT = 25.0  # the fake Stripe's token bucket, requests a second (burst = rate)
STEP_S = 0.5  # a draft step's Lambda: Stripe's PaymentIntent create (~350 ms) and the step's DynamoDB reads and writes
ZONE = ZoneInfo("America/Chicago")
DRAFT_DAY = date(2026, 3, 2)
ZONE_INPUT = json.dumps({"time_zone": ZONE.key, "membership_id": None})
PLAN = {"name": "LuXe 60", "monthly_dues": {"amount": 7900, "currency": "USD"}, "service_credits_per_month": 1}


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZONE).astimezone(UTC)


def only_chicago(cloud: LocalCloud) -> None:
    """The other zones' daily runs have no member here; disabled so the figures are the day's drafts alone."""
    scheduler = cloud.client("scheduler")
    for page in scheduler.get_paginator("list_schedules").paginate():
        for schedule in page["Schedules"]:
            held = scheduler.get_schedule(Name=schedule["Name"], GroupName=schedule.get("GroupName", "default"))
            if held.get("ScheduleExpressionTimezone") != ZONE.key:
                scheduler.update_schedule(**{k: held[k] for k in (
                    "Name", "GroupName", "ScheduleExpression", "ScheduleExpressionTimezone", "Target",
                    "FlexibleTimeWindow")}, State="DISABLED")


def sign_up(cloud: LocalCloud, n: int) -> None:
    """Customers and cards in Stripe (paced under the bucket), then ``MembershipStarted`` on the bus, ten a call."""
    stripe, bus = client_for(cloud.stripe), cloud.deployment.outputs["BookingEventsBusName"]
    events = []
    for i in range(n):
        customer = stripe.v1.customers.create().id
        method = save_test_card(stripe, customer, "visa")
        client = {"id": f"c-{i:05d}", "first_name": "Member", "phone": f"+1512{i:07d}", "sms_opt_in": True}
        events.append({"event_id": f"bench-{i}", "occurred_at": cloud.now().isoformat(), "spa_id": "massageluxe",
                       "membership_id": f"mem-{i:05d}", "membership_version": 1, "client": client,
                       "location_id": "massageluxe-austin", "plan": PLAN, "starts_on": DRAFT_DAY.isoformat(),
                       "payment": {"stripe_customer_id": customer, "stripe_payment_method_id": method}})
        if i % 10 == 9:
            cloud.run_for(timedelta(seconds=1))  # 20 requests a second, under the bucket
    for start in range(0, n, 10):
        entries = [{"Source": "booking-site", "DetailType": "MembershipStarted", "Detail": json.dumps(e),
                    "EventBusName": bus} for e in events[start:start + 10]]
        assert cloud.client("events").put_events(Entries=entries)["FailedEntryCount"] == 0


def with_duration(cloud: LocalCloud) -> None:
    """Each draft step's Lambda takes ``STEP_S`` of virtual time: its requests reach Stripe when it starts, its
    iteration goes on when it ends. (The in-process runtime runs one handler at a time, so the time is spent
    after the handler, outside its lock.)"""
    runtime, function = cloud.runtime, cloud.deployment.functions["MembershipsFunction"]
    invoke = runtime.invoke

    def timed(fn: Any, event: Any) -> tuple[str, bool, str]:
        answer = invoke(fn, event)
        payload = json.loads(event) if isinstance(event, (str, bytes)) and event else (event or {})
        if fn.function_name == function and payload.get("action") == "take_due_step":
            cloud.clock.sleep(STEP_S)
        return answer

    runtime.invoke = timed  # type: ignore[method-assign]


def drafts_of(store: Store, n: int) -> list[Any]:
    entries = [e for i in range(n) for e in store.ledger.for_appointment(f"massageluxe#mem-{i:05d}")]
    return [e for e in entries if e.kind is EntryKind.CHARGE]


def main() -> None:
    logging.disable(logging.WARNING)
    began = time.perf_counter()
    with LocalCloud(local(DRAFT_DAY - timedelta(days=2), 10)) as cloud:
        cloud.deploy({"LogLevel": "WARNING"})
        only_chicago(cloud)
        jitter_strategy_decl.random = random.Random("membership-drafts-bench")
        store = Store(TableNames.from_env(cloud.function_environment("MembershipsFunction")), region=cloud.region)
        sign_up(cloud, MEMBERSHIPS)
        cloud.run_until(local(DRAFT_DAY, 8, 59))
        signed_up = time.perf_counter() - began
        requests_before = len(cloud.stripe.requests)
        with_duration(cloud)
        drafting = time.perf_counter()
        cloud.run_until(local(DRAFT_DAY, 12))
        drafted_in = time.perf_counter() - drafting
        day = cloud.stripe.requests[requests_before:]
        entries = drafts_of(store, MEMBERSHIPS)
        charges_before_redrive = Counter(pi["customer"] for pi in cloud.stripe.payment_intents
                                         if pi["status"] == "succeeded")
        sfn, arn = cloud.client("stepfunctions"), cloud.state_machine_arn("MembershipDraftsStateMachine")
        sfn.start_execution(stateMachineArn=arn, name=f"drafts-chicago-{DRAFT_DAY:%Y%m%d}-redrive",
                            input=ZONE_INPUT)
        cloud.run_until(local(DRAFT_DAY, 18))
        runs = Counter(e["status"] for e in sfn.list_executions(stateMachineArn=arn)["executions"])
        charges = Counter(pi["customer"] for pi in cloud.stripe.payment_intents if pi["status"] == "succeeded")

    succeeded = sorted(e.updated_at for e in entries if e.status is EntryStatus.SUCCEEDED)
    window = (succeeded[-1] - succeeded[0]).total_seconds()
    sustained = (len(succeeded) - RATE_LIMIT) / window  # the bucket's first 25 tokens are a burst, not a rate
    statuses = Counter(r.status for r in day)
    print(f"membership drafts: {MEMBERSHIPS} due on {DRAFT_DAY} at 09:00 Chicago, "
          f"{len(succeeded)} drafted in {window:.1f} s of virtual time "
          f"(a draft step's Lambda takes {STEP_S * 1000:.0f} ms)")
    print(f"  sustained draft rate {sustained:.1f}/s = {sustained / RATE_LIMIT:.2f} of Stripe's "
          f"{RATE_LIMIT:.0f} requests/s; {len(day)} requests on the day "
          f"({statuses[200]} answered, {statuses[429]} rate-limited and retried), "
          f"{sum(e.status is EntryStatus.PENDING for e in entries)} left pending")
    print(f"  forced redrive (the day's run again, same input): "
          f"{sum(charges.values()) - sum(charges_before_redrive.values())} new charges, "
          f"{sum(1 for c in charges.values() if c > 1)} customers charged twice, "
          f"{MEMBERSHIPS - len(charges)} never charged; runs {dict(runs)}")
    print(f"  real time: {signed_up:.0f} s to deploy and sign up, {drafted_in:.0f} s for the draft day")


if __name__ == "__main__":
    main()
