"""Membership drafts under random faults: no month drafted twice and none lost, in seeded trials (issue 9).

Every trial is one to three memberships at MassageLuXe Austin (America/Chicago), each with its own Stripe
customer and card (about one in five declines every charge, so the dunning retries and the outstanding
balance are exercised), started on a seeded draft day (the 29th-31st often, so February and April clamp the
draft date), and taken through the deployed system for about three months of virtual time: membership
events on the bus -> SQS intake -> ingest Lambda -> the membership's record; EventBridge Scheduler at 09:00
Chicago time (and the sign-up's or unfreeze's own run) -> the MembershipDrafts state machine -> the
memberships Lambda -> the fake Stripe through the real ``stripe`` SDK -> the ledger in DynamoDB (moto).
Members freeze (on time, or with a form that comes back too late), unfreeze, cancel, in seeded combinations.

Faults, drawn per trial from ``random.Random(f"{SEED}:{n}")`` (several may combine):

* runs: a second firing of the day's schedule for the zone (queued with the first, same input, another
  name); a "redrive" of the day's run at the same instant after it ended or while its retries sleep, seconds
  later, or hours later; the sign-up's or unfreeze's own run started twice. Step Functions' own redrive
  re-runs a Map's failed iterations with the same input, so a second execution of the same input is the
  harsher case: every iteration runs again, failed or not;
* the drafts Lambda dying after Stripe answered: before the ledger heard, or after the ledger heard but
  before the Draft fact was kept on the membership, or just after it was kept. A Lambda that dies reaches
  Step Functions as ``Lambda.Unknown``; the local runtime names the error after the exception's class, so
  the death is an exception whose class is named ``Lambda.Unknown``, retried by the ASL's ``Retry``;
* the same death on every try of one draft date, all day, so the Map's ``Catch`` leaves the membership due
  for tomorrow with Stripe's charge taken and the ledger still pending, while the member's freeze or
  cancellation form comes back that afternoon (the form is moved to a draft date for this). The ASL says
  tomorrow's run takes the same ledger entry up again; this is what holds it to that;
* Stripe, aimed at the membership's own n-th request (armed on the fake right before it is sent; one actor
  runs at a time, so the next request is the membership's): a 500 in front of the endpoint, a 429
  ``rate_limit``, a 429 ``lock_timeout``, the connection dropped after the charge succeeded;
* membership events delivered twice (the copy minutes to a day and a half later), and a form's request
  delivered after the completed form (the intake holds the completion, refuses it for want of a request,
  and refolds when the request arrives).

The all-day death found that tomorrow's run did not take the same entry up: it planned from the membership
as the form had left it, so a freeze drafted the month again as $5 frozen dues beside the $79 Stripe had
already taken, and a cancellation left that charge pending for good, the membership gone from the due
index. ``MembershipService`` now finishes every draft whose outcome never reached the membership before it
plans anything (look-up first), and ``refold`` keeps a membership with such a draft in the due index.

Events happen in the afternoon (11:00-22:00 local) and on-time forms come back the same afternoon, so no
event is ever ambiguous against the 09:00 draft; an unfreeze never falls on a draft date (it would draft
the frozen month and the reactivation on one day, which this oracle does not model).

Checked from Stripe's side and the store's, never from the service's answers, per membership: the months
that should have been drafted are computed here from the start date, the draft-day rule (the month's last
day when it is shorter) and the membership's freeze, unfreeze and cancel moments, by a plain loop that
shares no code with the product's fold. A good card: every succeeded PaymentIntent of the member's
customer is put in the month whose draft date it follows (Stripe's ``created``, Chicago date), and each
month holds exactly one, of the right amount ($5 frozen, full dues, full dues less LuXe Bux on
unfreeze), its ledger entry ``succeeded`` with that PaymentIntent; a declining card: no succeeded charge,
one PaymentIntent per dunning attempt due (no attempt made twice), each attempt's ledger entry
``declined``, every month declined on all four attempts owed as outstanding balance; a good card's
membership ends in the expected status. For all: no ledger entry ``pending``, every MembershipDrafts
execution ``SUCCEEDED``, nothing in the intake DLQ, and every armed Stripe fault hit the request it was
meant for.

Determinism: seeded plans, the virtual clock, one actor at a time, and the ASL's ``JitterStrategy: FULL``
drawn from a seeded ``random.Random``. The other zones' daily schedules (Phoenix, Hong Kong) are disabled:
no trial has a member there, and their empty runs would be most of the real time.

``MEDSPA_MEMBERSHIP_FAULT_TRIALS`` (the suite: 40; ``make faults``: 500), ``MEDSPA_MEMBERSHIP_FAULT_SEED``
and ``MEDSPA_MEMBERSHIP_FAULT_WORKERS`` (processes) change the run. Trials run in batches of up to 25 per
local cloud (they share the zone's daily runs, as members of one spa do); a batch's outcome depends on its
trials alone, so the figures are the same for any number of workers. A failure names the trial, and its
plan is a function of (seed, number) alone.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import os
import random
import time
import warnings
from calendar import monthrange
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from moto.stepfunctions.parser.asl.component.common.retry import jitter_strategy_decl

from localcloud.cloud import LocalCloud
from localcloud.clock import utc
from medspa.adapters.executions import MembershipDraftRuns, execution_name
from medspa.adapters.payments import StripePayments
from medspa.adapters.store import EntryStatus
from medspa.adapters.store.ledger import LedgerRepository
from medspa.adapters.store.memberships import MembershipRepository
from medspa.services.memberships import MembershipService

pytestmark = pytest.mark.e2e

SEED = int(os.environ.get("MEDSPA_MEMBERSHIP_FAULT_SEED", "20260901"))
TRIALS = int(os.environ.get("MEDSPA_MEMBERSHIP_FAULT_TRIALS", "40"))  # `make faults` runs the 500
BATCH = 25  # trials per local cloud: every live execution is a thread, and each baton hand-off wakes all
WORKERS = int(os.environ.get("MEDSPA_MEMBERSHIP_FAULT_WORKERS", str(min(os.cpu_count() or 1, 2))))
ZONE = ZoneInfo("America/Chicago")
ZONE_INPUT = json.dumps({"time_zone": "America/Chicago", "membership_id": None})
START = utc(2026, 1, 20, 12)
DAY = timedelta(days=1)


def local(day: date, hour: int = 9, minute: int = 0) -> datetime:
    """A Chicago wall-clock time as UTC."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZONE).astimezone(UTC)


END = local(date(2026, 5, 1), 21)  # the last day's 09:00 run is over; nothing else happens after 22:00
LAST_DAY = date(2026, 5, 1)
PLANS = [{"name": "LuXe 60", "monthly_dues": {"amount": 7900, "currency": "USD"}, "service_credits_per_month": 1},
         {"name": "LuXe 90", "monthly_dues": {"amount": 10900, "currency": "USD"}, "service_credits_per_month": 1}]
FROZEN_DRAFT = 500
RETRY_AFTER_DAYS = (0, 1, 3, 7)  # the month's draft date, then the pack's [membership.drafts] retries
FORM_HOURS = 48
GOOD_CARD = "visa"
DECLINING_CARDS = ["chargeCustomerFail", "visa_chargeDeclinedInsufficientFunds"]
STORIES = ["plain", "plain", "freeze", "freeze_unfreeze", "freeze_unfreeze", "cancel", "freeze_cancel",
           "freeze_unfreeze_cancel", "late_freeze", "late_cancel"]
STRIPE_FAULTS = ["500", "429", "lock_timeout", "drop"]
RUN_FAULTS = ["second_firing", "redrive_same_instant", "redrive_seconds_later", "redrive_hours_later"]
FAULT_KINDS = [*RUN_FAULTS, "redrive_own_run", "crash_before_ledger", "crash_before_fact", "crash_after_fact",
               "crash_until_left_due",
               "500", "429", "lock_timeout", "drop_after_charge", "duplicate_event", "out_of_order"]
CHARGE_PURPOSES = ("membership_dues", "frozen_dues")

# How a Lambda that dies (timeout, OOM) reaches Step Functions: the runtime reports the class name.
LambdaUnknown = type("Lambda.Unknown", (Exception,), {
    "__module__": __name__, "__doc__": "The drafts Lambda died mid-invocation (timeout, out of memory)."})


def draft_date(year: int, month: int, day: int) -> date:
    """The oracle's own calendar: the draft day, or the month's last day when the month is shorter."""
    return date(year, month, min(day, monthrange(year, month)[1]))


def month_after(due: date, day: int) -> date:
    return draft_date(due.year + due.month // 12, due.month % 12 + 1, day)


# ------------------------------------------------------------------------------ plans


@dataclass
class MemberPlan:
    """One membership: its card, start, story (events in version order after the start) and its own faults."""

    n: int
    i: int
    card: str
    plan: dict[str, Any]
    starts_on: date
    signed_at: datetime  # when MembershipStarted happens (and reaches the bus)
    story: str
    events: list[tuple[datetime, str, dict[str, Any]]]  # (moment, detail-type, fields), in version order
    duplicates: list[int]  # indexes into [start, *events] published twice
    out_of_order: list[int]  # indexes of form requests delivered after their completed form
    stripe_faults: dict[int, str]  # the membership's n-th Stripe request -> fault
    crash_before_ledger: set[int]  # the n-th outcome of a charge entry: the Lambda dies before the ledger hears
    crash_fact: dict[int, str]  # the n-th Draft fact kept: the Lambda dies "before" or "after" keeping it
    redrive_own_run: int  # how many extra starts of the sign-up's or unfreeze's own run
    given_up_on: date | None = None  # that draft date's Lambda dies after Stripe answered on every try, all day

    @property
    def membership_id(self) -> str:
        return f"mf-{self.n:04d}-{self.i}"

    @property
    def key(self) -> str:
        return f"massageluxe#{self.membership_id}"

    @property
    def client_id(self) -> str:
        return f"mf{self.n}-{self.i}"

    @property
    def good_card(self) -> bool:
        return self.card == GOOD_CARD

    @property
    def dues(self) -> int:
        return int(self.plan["monthly_dues"]["amount"])


@dataclass
class TrialPlan:
    seed: int
    n: int
    members: list[MemberPlan]
    extra_runs: list[tuple[str, date, timedelta]]  # (kind, local date of the day's run, offset after 09:00)


def _afternoon(rng: random.Random, day: date, first: int = 11, last: int = 15) -> datetime:
    return local(day, rng.randint(first, last), rng.randint(0, 59))


def _form(rng: random.Random, day: date, late: bool) -> tuple[datetime, datetime]:
    """A form sent in the afternoon, back the same afternoon (on time) or 49-60 hours later (too late)."""
    sent = _afternoon(rng, day)
    back = sent + (timedelta(hours=rng.randint(49, 60), minutes=rng.randint(0, 59)) if late
                   else timedelta(hours=rng.randint(1, 6), minutes=rng.randint(0, 59)))
    return sent, back


def _story(rng: random.Random, story: str, starts_on: date,
           on_a_draft_date: bool) -> tuple[list[tuple[datetime, str, dict[str, Any]]], date | None]:
    """The membership's events after the start, dropped from the first one that would fall after the run;
    ``on_a_draft_date`` moves the first form to the afternoon of a draft date, which it returns."""
    events: list[tuple[datetime, str, dict[str, Any]]] = []
    day = starts_on + timedelta(days=rng.randint(1, 25))
    snapped = None
    if on_a_draft_date and story != "plain":
        snapped = draft_date(day.year, day.month, starts_on.day)
        snapped = day = snapped if snapped >= day else month_after(snapped, starts_on.day)
    if "freeze" in story:
        sent, back = _form(rng, day, late=story == "late_freeze")
        events += [(sent, "MembershipFreezeRequested", {"form_sent_at": sent}),
                   (back, "MembershipFreezeFormCompleted", {"submitted_at": back})]
        day = back.astimezone(ZONE).date() + timedelta(days=rng.randint(2, 40))
        if "unfreeze" in story:
            while day == draft_date(day.year, day.month, starts_on.day):
                day += DAY  # an unfreeze on a draft date drafts twice that day: not modelled here
            at = _afternoon(rng, day, 11, 20)
            events.append((at, "MembershipUnfreezeRequested", {}))
            day += timedelta(days=rng.randint(2, 30))
    if "cancel" in story:
        sent, back = _form(rng, day, late=story == "late_cancel")
        events += [(sent, "MembershipCancellationRequested", {"form_sent_at": sent}),
                   (back, "MembershipCancellationFormCompleted",
                    {"submitted_at": back, "paper_certificates": rng.random() < 0.3})]
    kept = []
    for event in events:
        if event[0].astimezone(ZONE).date() >= LAST_DAY:
            break
        kept.append(event)
    return kept, snapped if snapped is not None and snapped < LAST_DAY else None


def _starts_on(rng: random.Random) -> date:
    roll = rng.random()
    if roll < 0.35:
        return date(2026, 1, rng.choice([29, 30, 31]))
    if roll < 0.5:
        return date(2026, 3, rng.choice([29, 30, 31]))  # April clamps to the 30th
    return date(2026, 1, 26) + timedelta(days=rng.randint(0, 24))


def plan_trial(seed: int, n: int) -> TrialPlan:
    rng = random.Random(f"{seed}:{n}")
    members = []
    for i in range(rng.choice([1, 1, 2, 2, 3])):
        card = GOOD_CARD if rng.random() < 0.8 else rng.choice(DECLINING_CARDS)
        starts_on = _starts_on(rng)
        if rng.random() < 0.6:  # signed on the day: its own run drafts at once (before 09:00 too)
            signed_at = local(starts_on, rng.choice([7, 8, *range(10, 21)]), rng.randint(0, 59))
        else:  # signed days ahead: the 09:00 run of the start date drafts it
            signed_at = _afternoon(rng, starts_on - timedelta(days=rng.randint(1, 5)), 10, 20)
        story = rng.choice(STORIES)
        events, given_up_on = _story(rng, story, starts_on, rng.random() < 0.25)
        duplicates = [k for k in range(1 + len(events)) if rng.random() < 0.2]
        requests = [k + 1 for k, (_, _, fields) in enumerate(events)
                    if "form_sent_at" in fields and k + 1 < len(events)]
        out_of_order = [k for k in requests if rng.random() < 0.3]
        stripe_faults: dict[int, str] = {}
        for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
            fault = rng.choice(STRIPE_FAULTS)
            if fault != "drop" or card == GOOD_CARD:  # only a successful charge can lose its answer
                stripe_faults[rng.randint(0, 7)] = fault
        crash_before_ledger = {rng.randint(0, 4) for _ in range(rng.choice([0, 0, 1, 1, 2]))}
        crash_fact = {rng.randint(0, 3): rng.choice(["before", "before", "after"])
                      for _ in range(rng.choice([0, 0, 1, 1, 2]))}
        redrive_own_run = rng.choice([0, 0, 0, 0, 1, 2])
        members.append(MemberPlan(n, i, card, rng.choice(PLANS), starts_on, signed_at, story, events, duplicates,
                                  out_of_order, stripe_faults, crash_before_ledger, crash_fact, redrive_own_run,
                                  given_up_on))
    days = sorted({d for m in members for d in _schedule(m) if START.astimezone(ZONE).date() < d <= LAST_DAY})
    extra_runs = []
    for _ in range(rng.choice([0, 1, 1, 2, 2, 3])):
        kind = rng.choice(RUN_FAULTS)
        offset = {"second_firing": timedelta(0), "redrive_same_instant": timedelta(0),
                  "redrive_seconds_later": timedelta(seconds=rng.randint(1, 30)),
                  "redrive_hours_later": timedelta(minutes=rng.randint(5, 600))}[kind]
        extra_runs.append((kind, rng.choice(days), offset))
    return TrialPlan(seed, n, members, extra_runs)


def _schedule(member: MemberPlan) -> list[date]:
    """Every day a draft or a dunning retry of the membership may be attempted, on its first draft day."""
    days, due = [], member.starts_on
    while due <= LAST_DAY:
        days += [due + timedelta(days=d) for d in RETRY_AFTER_DAYS]
        due = month_after(due, member.starts_on.day)
    return days


# ------------------------------------------------------------------------------ the oracle


@dataclass(frozen=True)
class Expected:
    due_on: date
    purpose: str
    amount: int
    store_credit_used: int = 0


def expected_drafts(member: MemberPlan) -> tuple[list[Expected], str]:
    """What a good card should have paid, month by month, and the membership's status at the end.

    A plain walk through time: the draft at 09:00 on each draft date (the sign-up's at once when it happens on
    the start date, the unfreeze's at once), the forms that came back within 48 hours, in moment order."""
    changes = []
    events = member.events
    for k, (at, kind, fields) in enumerate(events):
        if kind == "MembershipUnfreezeRequested":
            changes.append((at, "unfreeze"))
        elif kind.endswith("FormCompleted"):
            sent = events[k - 1][2]["form_sent_at"]
            if fields["submitted_at"] - sent <= timedelta(hours=FORM_HOURS):
                changes.append((at, "freeze" if "Freeze" in kind else "cancel"))
    changes.sort()
    day, due = member.starts_on.day, member.starts_on
    at: datetime | None = member.signed_at if member.signed_at.astimezone(ZONE).date() == due else local(due)
    status, credit, full_paid, reactivating = "active", 0, 0, False
    drafts: list[Expected] = []
    while True:
        change = changes[0] if changes else None
        if at is not None and at <= END and (change is None or at < change[0]):
            if status == "frozen":
                drafts.append(Expected(due, "frozen_dues", FROZEN_DRAFT))
                credit += FROZEN_DRAFT
            else:
                used = min(credit, member.dues) if reactivating else 0
                drafts.append(Expected(due, "membership_dues", member.dues - used, used))
                credit, full_paid, reactivating = credit - used, full_paid + 1, False
            due = month_after(due, day)
            at = local(due)
            continue
        if change is None:
            return drafts, status
        changes.pop(0)
        moment, what = change
        if what == "freeze" and status == "active" and full_paid >= 1:
            status = "frozen"
        elif what == "unfreeze" and status == "frozen":
            status, reactivating = "active", True
            due = moment.astimezone(ZONE).date()
            day, at = due.day, moment
        elif what == "cancel" and status in ("active", "frozen") and full_paid >= 1:
            status, at, credit = "cancelled", None, 0


def expected_declines(member: MemberPlan) -> tuple[set[tuple[date, int]], int]:
    """A declining card: every dunning attempt due by the end (month, attempt), and the months owed in full.

    Freeze and cancel need a full draft paid first, so a card that never paid keeps its first draft day."""
    attempts, unpaid, due = set(), 0, member.starts_on
    while due <= LAST_DAY:
        for attempt, after in enumerate(RETRY_AFTER_DAYS, start=1):
            if due + timedelta(days=after) <= LAST_DAY:
                attempts.add((due, attempt))
        unpaid += due + timedelta(days=RETRY_AFTER_DAYS[-1]) <= LAST_DAY
        due = month_after(due, member.starts_on.day)
    return attempts, unpaid


# ------------------------------------------------------------------------------ fault injection


@dataclass
class Live:
    """A membership's faults as they are used up."""

    member: MemberPlan
    customer: str
    requests: int = 0
    outcomes: int = 0
    facts: int = 0
    own_runs: int = 0
    carried_drop: bool = False
    armed: str | None = None
    requests_before: int = 0
    unarmed: tuple[int, bool] = (0, False)  # requests and carried_drop before the last arming
    injected: Counter = field(default_factory=Counter)


class Injector:
    """Wraps the Stripe adapter, the ledger's outcome, the membership store's Draft fact and the immediate runs
    in-process (class attributes, so the Lambdas' own instances see the wrappers), arms the fake Stripe's own
    faults right before a membership's request goes out, and starts the extra runs of the zone."""

    def __init__(self, cloud: LocalCloud, plans: list[TrialPlan]) -> None:
        self.cloud, self.fake = cloud, cloud.stripe
        self.sfn, self.arn = cloud.client("stepfunctions"), cloud.state_machine_arn("MembershipDraftsStateMachine")
        self.by_customer: dict[str, Live] = {}
        self.by_key: dict[str, Live] = {}
        self.misfires = 0
        self.counts: Counter = Counter()
        self.steps: Counter = Counter()  # what each due step answered (the Map's results go to S3, not the output)
        self.later: list[tuple[datetime, str]] = []  # (when, execution name) of runs started by the idle hook
        self.queued: dict[date, list[str]] = defaultdict(list)  # local date -> names started with the firing
        for plan in plans:
            for k, (kind, day, offset) in enumerate(plan.extra_runs):
                name = f"drafts-chicago-{day:%Y%m%d}-t{plan.n}-{k}-{kind.replace('_', '-')}"
                if kind == "second_firing":
                    self.queued[day].append(name)
                else:
                    self.later.append((local(day) + offset, name))
                self.counts[kind] += 1
        self.later.sort()

    def add(self, live: Live) -> None:
        self.by_customer[live.customer] = live
        self.by_key[live.member.key] = live

    # ---------------------------------------------------------------- the zone's runs
    def poll(self, now: datetime) -> bool:
        """An idle hook of the clock: the redrives due by now."""
        started = False
        while self.later and self.later[0][0] <= now:
            _, name = self.later.pop(0)
            self.sfn.start_execution(stateMachineArn=self.arn, name=name, input=ZONE_INPUT)
            started = True
        return started

    def next_due(self, now: datetime) -> datetime | None:
        return self.later[0][0] if self.later else None

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        injector, scheduler = self, self.cloud.scheduler
        real_fire = scheduler._fire
        real_charge, real_find = StripePayments.charge_off_session, StripePayments.find_charge
        real_outcome, real_fact = LedgerRepository.record_outcome, MembershipRepository.record_draft
        real_start_now = MembershipDraftRuns.start_now
        real_step = MembershipService.take_due_step

        def fire(schedule: dict[str, Any], when: datetime) -> None:
            real_fire(schedule, when)
            if schedule["Target"].get("Input") and json.loads(schedule["Target"]["Input"])["time_zone"] == ZONE.key:
                for name in injector.queued.pop(when.astimezone(ZONE).date(), []):
                    injector.sfn.start_execution(stateMachineArn=injector.arn, name=name, input=ZONE_INPUT)

        def start_now(self: MembershipDraftRuns, membership_id: str, due_on: date, attempt: int, why: str = "") -> None:
            real_start_now(self, membership_id, due_on, attempt, why)
            live = injector.by_key.get(membership_id)
            while live is not None and live.own_runs < live.member.redrive_own_run:
                live.own_runs += 1
                live.injected["redrive_own_run"] += 1
                name = execution_name(membership_id, suffix=f"{due_on.isoformat()}-a{attempt}-again{live.own_runs}")
                self._sfn.start_execution(stateMachineArn=self._state_machine_arn, name=name,
                                          input=json.dumps({"time_zone": None, "membership_id": membership_id}))

        def charge_off_session(self: StripePayments, customer_id: str, *args: Any, **kwargs: Any) -> Any:
            live = injector.by_customer.get(customer_id)
            if live is None:
                return real_charge(self, customer_id, *args, **kwargs)
            injector._arm(live, "charge")
            try:
                return real_charge(self, customer_id, *args, **kwargs)
            finally:
                injector._landed(live)

        def find_charge(self: StripePayments, customer_id: str, ledger_ref: str) -> Any:
            live = injector.by_customer.get(customer_id)
            if live is None:
                return real_find(self, customer_id, ledger_ref)
            injector._arm(live, "lookup")
            try:
                return real_find(self, customer_id, ledger_ref)
            finally:
                injector._landed(live)

        def record_outcome(self: LedgerRepository, entry_id: str, *args: Any, **kwargs: Any) -> Any:
            parts = entry_id.split("#")
            live = injector.by_key.get("#".join(parts[:2])) if len(parts) == 5 else None
            if live is None or parts[3] not in CHARGE_PURPOSES:
                return real_outcome(self, entry_id, *args, **kwargs)
            live.outcomes += 1
            if parts[2] == str(live.member.given_up_on) and injector.cloud.now().astimezone(ZONE).date() == (
                    live.member.given_up_on):
                live.injected["crash_until_left_due"] += live.injected["crash_until_left_due"] == 0
                raise LambdaUnknown("Task timed out: Stripe answered, the ledger never heard, all day (injected)")
            if live.outcomes - 1 in live.member.crash_before_ledger:
                live.injected["crash_before_ledger"] += 1
                raise LambdaUnknown("Task timed out: Stripe answered, the ledger never heard (injected)")
            return real_outcome(self, entry_id, *args, **kwargs)

        def record_draft(self: MembershipRepository, membership_id: str, *args: Any, **kwargs: Any) -> Any:
            live = injector.by_key.get(membership_id)
            if live is None:
                return real_fact(self, membership_id, *args, **kwargs)
            live.facts += 1
            crash = live.member.crash_fact.get(live.facts - 1)
            if crash == "before":
                live.injected["crash_before_fact"] += 1
                raise LambdaUnknown("Task timed out: the ledger heard, the membership never did (injected)")
            kept = real_fact(self, membership_id, *args, **kwargs)
            if crash == "after":
                live.injected["crash_after_fact"] += 1
                raise LambdaUnknown("Task timed out: the Draft fact was kept, the membership not refolded (injected)")
            return kept

        def take_due_step(self: MembershipService, membership_id: str, now: datetime) -> Any:
            outcome = real_step(self, membership_id, now)
            injector.steps[outcome.outcome] += 1
            return outcome

        monkeypatch.setattr(scheduler, "_fire", fire)
        monkeypatch.setattr(MembershipService, "take_due_step", take_due_step)
        monkeypatch.setattr(MembershipDraftRuns, "start_now", start_now)
        monkeypatch.setattr(StripePayments, "charge_off_session", charge_off_session)
        monkeypatch.setattr(StripePayments, "find_charge", find_charge)
        monkeypatch.setattr(LedgerRepository, "record_outcome", record_outcome)
        monkeypatch.setattr(MembershipRepository, "record_draft", record_draft)

    def _arm(self, live: Live, request: str) -> None:
        fake = self.fake
        live.unarmed = (live.requests, live.carried_drop)
        fault = live.member.stripe_faults.get(live.requests)
        live.requests += 1
        if fault == "drop" and request != "charge":
            live.carried_drop, fault = True, None
        if fault is None and live.carried_drop and request == "charge":
            live.carried_drop, fault = False, "drop"
        live.armed = fault
        if fault is not None:
            {"500": lambda: fake.fail_next(1, 500), "429": fake.rate_limit_next,
             "lock_timeout": fake.lock_timeout_next, "drop": fake.drop_connection_after_next_charge}[fault]()
        live.requests_before = len(fake.requests)

    def _landed(self, live: Live) -> None:
        fake, armed = self.fake, live.armed
        live.armed = None
        if armed is None:
            return
        sent = fake.requests[live.requests_before:]
        if not sent:
            # The Stripe budget turned the call away before it went out (PaymentProviderThrottled): the planned
            # fault is withdrawn and waits for the member's next request that reaches Stripe.
            with fake._lock:
                if armed == "drop":
                    fake._drop_next_charge = False
                else:
                    fake._faults.pop()
            live.requests, live.carried_drop = live.unarmed
            live.injected["budget_spent"] += 1
            return
        if armed == "drop":
            if sent and sent[0].dropped:
                live.injected["drop_after_charge"] += 1
            else:  # a replay charges nothing: disarm, and drop the answer of the next charge instead
                with fake._lock:
                    fake._drop_next_charge = False
                live.carried_drop = True
        elif sent and sent[0].status == (429 if armed in ("429", "lock_timeout") else 500):
            live.injected[armed] += 1
        else:
            self.misfires += 1


# ------------------------------------------------------------------------------ one local cloud


def _body(member: MemberPlan, version: int, moment: datetime, **fields: Any) -> dict[str, Any]:
    return {"event_id": f"mf-{member.n}-{member.i}-{version}", "occurred_at": moment.isoformat(),
            "spa_id": "massageluxe", "membership_id": member.membership_id, "membership_version": version,
            **{k: v.isoformat() if isinstance(v, datetime) else v for k, v in fields.items()}}


def _deliveries(seed: int, member: MemberPlan, known: dict[str, Any],
                counts: Counter) -> list[tuple[datetime, str, dict]]:
    """When each of the membership's events reaches the bus: at its moment, a form's request after the form
    itself, and some twice."""
    rng = random.Random(f"{seed}:{member.n}:{member.i}:deliveries")
    payment = {k: v for k, v in known["payment"].items() if k.startswith("stripe_")}
    started = ("MembershipStarted", _body(
        member, 1, member.signed_at, client={k: v for k, v in known["client"].items() if v is not None},
        location_id="massageluxe-austin", plan=member.plan, starts_on=member.starts_on.isoformat(), payment=payment))
    events = [(member.signed_at, started)] + [
        (moment, (kind, _body(member, version, moment, **fields)))
        for version, (moment, kind, fields) in enumerate(member.events, start=2)]
    at = [moment for moment, _ in events]
    for k in member.out_of_order:
        at[k] = at[k + 1] + timedelta(minutes=rng.randint(1, 90))
        counts["out_of_order"] += 1
    out = [(at[k], kind, body) for k, (_, (kind, body)) in enumerate(events)]
    for k in member.duplicates:
        copy_at = at[k] + timedelta(minutes=rng.randint(1, 2160))
        if copy_at < END - timedelta(hours=1):  # a copy after the run would drive the clock past the oracle's end
            out.append((copy_at, *events[k][1]))
            counts["duplicate_event"] += 1
    return out


def run_batch(seed: int, numbers: list[int], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Deploy a local cloud, run these trials to the end under their faults, and read what happened."""
    from tests.e2e.booking_site import BookingSite

    plans = [plan_trial(seed, n) for n in numbers]
    counts: Counter = Counter()
    with LocalCloud(START) as cloud:
        cloud.deploy({"LogLevel": "WARNING"})
        scheduler = cloud.client("scheduler")
        for page in scheduler.get_paginator("list_schedules").paginate():
            for schedule in page["Schedules"]:
                held = scheduler.get_schedule(Name=schedule["Name"], GroupName=schedule.get("GroupName", "default"))
                if held.get("ScheduleExpressionTimezone") not in (None, ZONE.key):
                    scheduler.update_schedule(**{k: held[k] for k in (
                        "Name", "GroupName", "ScheduleExpression", "ScheduleExpressionTimezone", "Target",
                        "FlexibleTimeWindow")}, State="DISABLED")
        monkeypatch.setattr(jitter_strategy_decl, "random", random.Random(f"{seed}:jitter:{numbers[0]}"))
        site = BookingSite(cloud)
        injector = Injector(cloud, plans)
        injector.install(monkeypatch)
        cloud.clock.add_idle_hook(injector)
        deliveries = []
        lives = []
        for plan in plans:
            for member in plan.members:
                known = site.client("massageluxe", member.client_id, card=member.card,
                                    phone=f"+1512555{(member.n * 3 + member.i) % 10000:04d}")
                live = Live(member, known["payment"]["stripe_customer_id"])
                injector.add(live)
                lives.append(live)
                deliveries += _deliveries(seed, member, known, counts)
                if len(lives) % 10 == 0:
                    cloud.run_for(timedelta(seconds=1))  # the fake's 25 requests/s bucket refills in virtual time
        groups: dict[datetime, list] = defaultdict(list)
        for when, kind, body in sorted(deliveries, key=lambda d: (d[0], d[2]["membership_id"],
                                                                   d[2]["membership_version"])):
            groups[max(when, cloud.now())].append((kind, body))
        for when in sorted(groups):
            cloud.run_until(when)
            site.publish_all(groups[when])
        cloud.run_until(END)
        return _observe(cloud, site, plans, lives, counts + injector.counts) | {"misfires": injector.misfires,
                                                                               "outcomes": injector.steps}


def _observe(cloud: LocalCloud, site: Any, plans: list[TrialPlan], lives: list[Live],
             counts: Counter) -> dict[str, Any]:
    """Read Stripe, the ledger, the clients, the memberships and the executions; judge every membership."""
    from tests.e2e.booking_site import quarantined

    intents: dict[str, list[dict]] = defaultdict(list)
    for intent in cloud.stripe.payment_intents:
        intents[intent["customer"]].append(intent)
    charges = Counter(ch["customer"] for ch in cloud.stripe.charges if ch["status"] == "succeeded")
    sfn = cloud.client("stepfunctions")
    runs: Counter = Counter()
    failures: list[str] = []
    for page in sfn.get_paginator("list_executions").paginate(
            stateMachineArn=cloud.state_machine_arn("MembershipDraftsStateMachine")):
        for execution in page["executions"]:
            runs[execution["status"]] += 1
            if execution["status"] != "SUCCEEDED":
                failures.append(f"execution {execution['name']} is {execution['status']}")
                continue
    dlq = quarantined(cloud)
    if dlq:
        failures.append(f"{len(dlq)} events in the intake DLQ: {[reason for _, reason in dlq][:5]}")

    tally: Counter = Counter()
    by_trial: dict[int, list[str]] = defaultdict(list)
    for live in lives:
        member = live.member
        tally.update(live.injected)
        problems = by_trial[member.n]
        paid = sorted((pi for pi in intents.get(live.customer, []) if pi["status"] == "succeeded"),
                      key=lambda pi: pi["created"])
        ledger = site.store.ledger.for_appointment(member.key)
        entries = {e.entry_id: e for e in ledger}
        client = site.store.clients.get(f"massageluxe#{member.client_id}")
        owed = client.outstanding.get("USD", 0) if client else 0
        stored = site.store.memberships.read(member.key)
        status = stored.membership.status.value if stored and stored.membership else None
        tally["memberships"] += 1
        pending = [e.entry_id for e in ledger if e.status is EntryStatus.PENDING]
        if pending:
            problems.append(f"{member.membership_id}: ledger entries left pending {pending}")
        if member.good_card:
            tally["memberships_good_card"] += 1
            expected, final = expected_drafts(member)
            months: list[list[dict]] = [[] for _ in expected]
            stray = []
            for pi in paid:
                on = datetime.fromtimestamp(pi["created"], UTC).astimezone(ZONE).date()
                k = max((k for k, e in enumerate(expected) if e.due_on <= on), default=None)
                (months[k] if k is not None else stray).append(pi)
            doubles = sum(max(0, len(m) - 1) for m in months) + len(stray) + max(0, charges[live.customer] - len(paid))
            lost = sum(1 for m in months if not m)
            tally["drafts_charged"] += len(paid)
            tally["double_drafts"] += doubles
            tally["lost_drafts"] += lost
            wrong = []
            for e, got in zip(expected, months, strict=True):
                entry = entries.get(f"{member.key}#{e.due_on.isoformat()}#{e.purpose}#1")
                if len(got) == 1 and (got[0]["amount"] != e.amount or entry is None or entry.status is not
                                      EntryStatus.SUCCEEDED or entry.stripe_payment_intent_id != got[0]["id"]):
                    wrong.append((e.due_on.isoformat(), e.purpose, e.amount, got[0]["amount"],
                                  entry.status.value if entry else None))
                credit = entries.get(f"{member.key}#{e.due_on.isoformat()}#store_credit_applied#1")
                if (credit.amount.amount if credit else 0) != e.store_credit_used:
                    wrong.append((e.due_on.isoformat(), "store_credit_applied", e.store_credit_used,
                                  credit.amount.amount if credit else None))
            declined = [pi["id"] for pi in intents.get(live.customer, []) if pi["status"] != "succeeded"]
            if doubles or lost or wrong or declined or owed or status != final:
                tally["inconsistent"] += not (doubles or lost)
                problems.append(
                    f"{member.membership_id} (good card, {member.story}, starts {member.starts_on}): expected "
                    f"{[(e.due_on.isoformat(), e.amount) for e in expected]} ending {final}; Stripe charged "
                    f"{[[(pi['amount'], _day(pi)) for pi in m] for m in months]}, stray {[_day(pi) for pi in stray]}, "
                    f"not succeeded {declined}; wrong {wrong}; owes {owed}; status {status}")
        else:
            tally["memberships_declining_card"] += 1
            attempts, unpaid = expected_declines(member)
            made = {(date.fromisoformat(e.entry_id.split("#")[2]), e.attempt) for e in ledger
                    if e.purpose in CHARGE_PURPOSES and e.status is EntryStatus.DECLINED}
            tried = intents.get(live.customer, [])
            tally["declined_attempts"] += len(made)
            tally["months_unpaid"] += unpaid
            tally["double_drafts"] += len(paid) + charges[live.customer]
            lost = len(attempts - made)
            tally["lost_drafts"] += lost
            if paid or charges[live.customer] or made != attempts or len(tried) != len(attempts) or (
                    owed != unpaid * member.dues):
                tally["inconsistent"] += not (paid or lost)
                problems.append(
                    f"{member.membership_id} (declining card {member.card}, starts {member.starts_on}): expected "
                    f"attempts {sorted((d.isoformat(), a) for d, a in attempts)}, ledger declined "
                    f"{sorted((d.isoformat(), a) for d, a in made)}; Stripe: {len(paid)} succeeded, {len(tried)} "
                    f"payment intents; owes {owed}, expected {unpaid * member.dues}")
    for plan in plans:
        tally["trials"] += 1
        if by_trial[plan.n]:
            failures.append(f"trial {plan.n} (seed {plan.seed}, extra runs {plan.extra_runs}, members "
                            f"{[_describe(m) for m in plan.members]}): " + "; ".join(by_trial[plan.n]))
    errors = Counter(i.error_type for i in cloud.runtime.invocations if i.errored)
    return {"tally": tally + counts, "failures": failures, "errors": errors, "runs": runs,
            "invocations": len(cloud.runtime.invocations)}


def _day(intent: dict) -> str:
    return datetime.fromtimestamp(intent["created"], UTC).astimezone(ZONE).strftime("%m-%d %H:%M")


def _describe(member: MemberPlan) -> str:
    return (f"{member.membership_id} card={member.card} story={member.story} signed={member.signed_at:%m-%dT%H:%M} "
            f"events={[(f'{at:%m-%dT%H:%M}', kind) for at, kind, _ in member.events]} dup={member.duplicates} "
            f"ooo={member.out_of_order} stripe={member.stripe_faults} "
            f"crash_ledger={sorted(member.crash_before_ledger)} "
            f"crash_fact={member.crash_fact} own_runs+={member.redrive_own_run} given_up_on={member.given_up_on}")


# ------------------------------------------------------------------------------ the test


def _batch_in_this_process(seed: int, numbers: list[int]) -> dict[str, Any]:
    """One batch in this process (a worker of the pool, or the test's own process)."""
    if multiprocessing.parent_process() is not None:  # a worker: pytest's capture and warning filters are not here
        warnings.filterwarnings("ignore", message="Tried to parse AWS::")
        logging.disable(logging.WARNING)  # moto's and samtranslator's deploy chatter
    monkeypatch = pytest.MonkeyPatch()
    try:
        return run_batch(seed, numbers, monkeypatch)
    finally:
        monkeypatch.undo()


def run_trials(seed: int, trials: int, workers: int = WORKERS) -> list[dict[str, Any]]:
    """Every batch in a local cloud of its own, side by side in ``workers`` spawned processes."""
    size = math.ceil(trials / math.ceil(trials / BATCH))  # at most BATCH, and batches of even size
    batches = [list(range(first, min(first + size, trials))) for first in range(0, trials, size)]
    if workers <= 1 or len(batches) == 1:
        return [_batch_in_this_process(seed, batch) for batch in batches]
    with ProcessPoolExecutor(min(workers, len(batches)), mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(_batch_in_this_process, [seed] * len(batches), batches))


def test_the_oracle_drafts_a_month_by_the_rules_it_reads():
    """The oracle is the other half of every verdict, so its calendar is pinned by hand."""
    base = MemberPlan(0, 0, GOOD_CARD, PLANS[0], date(2026, 1, 31), local(date(2026, 1, 31), 15), "plain", [], [],
                      [], {}, set(), {}, 0)
    drafts, status = expected_drafts(base)
    assert [(e.due_on.isoformat(), e.amount) for e in drafts] == [
        ("2026-01-31", 7900), ("2026-02-28", 7900), ("2026-03-31", 7900), ("2026-04-30", 7900)]
    assert status == "active"
    sent, back, thaw = local(date(2026, 2, 5), 12), local(date(2026, 2, 5), 14), local(date(2026, 4, 2), 16)
    cancel_sent, cancel_back = local(date(2026, 4, 10), 12), local(date(2026, 4, 10), 13)
    story = MemberPlan(0, 0, GOOD_CARD, PLANS[0], date(2026, 1, 31), local(date(2026, 1, 28), 15), "x", [
        (sent, "MembershipFreezeRequested", {"form_sent_at": sent}),
        (back, "MembershipFreezeFormCompleted", {"submitted_at": back}),
        (thaw, "MembershipUnfreezeRequested", {}),
        (cancel_sent, "MembershipCancellationRequested", {"form_sent_at": cancel_sent}),
        (cancel_back, "MembershipCancellationFormCompleted", {"submitted_at": cancel_back})], [], [], {}, set(), {}, 0)
    drafts, status = expected_drafts(story)
    assert [(e.due_on.isoformat(), e.purpose, e.amount) for e in drafts] == [
        ("2026-01-31", "membership_dues", 7900), ("2026-02-28", "frozen_dues", 500),
        ("2026-03-31", "frozen_dues", 500), ("2026-04-02", "membership_dues", 6900)]
    assert status == "cancelled"
    attempts, unpaid = expected_declines(base)
    assert unpaid == 3 and (date(2026, 4, 30), 2) in attempts and (date(2026, 4, 30), 3) not in attempts


def test_membership_drafts_under_random_faults_are_never_taken_twice_or_lost(capsys) -> None:
    started = time.perf_counter()
    tally, errors, runs, outcomes, failures, invocations, misfires = (Counter(), Counter(), Counter(), Counter(), [],
                                                                      0, 0)
    for result in run_trials(SEED, TRIALS):
        tally += result["tally"]
        errors += result["errors"]
        runs += result["runs"]
        outcomes += result["outcomes"]
        failures += result["failures"]
        invocations += result["invocations"]
        misfires += result["misfires"]
    seconds = time.perf_counter() - started
    faults = {kind: tally[kind] for kind in FAULT_KINDS}
    with capsys.disabled():
        print(f"\nmembership fault trials: {tally['trials']} ({tally['memberships']} memberships: "
              f"{tally['memberships_good_card']} good cards, {tally['memberships_declining_card']} declining), "
              f"drafts charged {tally['drafts_charged']}, declined attempts {tally['declined_attempts']} "
              f"({tally['months_unpaid']} months owed), double drafts {tally['double_drafts']}, lost drafts "
              f"{tally['lost_drafts']}, inconsistent {tally['inconsistent']}; faults injected {faults} "
              f"(withdrawn {tally['budget_spent']} times: the Stripe budget turned the call away first); "
              f"MembershipDrafts executions {dict(runs)}, due steps {dict(outcomes)}; Lambda errors retried by "
              f"Step Functions {dict(errors)}, {invocations} Lambda invocations; real seconds {seconds:.0f} "
              f"({WORKERS} processes, seed {SEED})")

    assert failures == [], "\n".join(failures[:30])
    assert (tally["double_drafts"], tally["lost_drafts"], tally["inconsistent"]) == (0, 0, 0)
    assert tally["trials"] == TRIALS
    assert set(runs) <= {"SUCCEEDED"}
    assert misfires == 0, "an armed Stripe fault hit a request it was not meant for"
    least = max(1, TRIALS // 100)
    untried = {kind: n for kind, n in faults.items() if n < least}
    assert not untried, f"fault kinds injected fewer than {least} times: {untried}"
