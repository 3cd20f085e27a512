"""A paper model of the AWS and Stripe quotas a chain of spas meets, for ``medspa capacity``.

It models the design as it stands, not as it should become (DESIGN.md, "Scale: the quotas that shape the
design"): one AppointmentLifecycle execution per appointment, started by a one-time Scheduler schedule shortly
before its first step (the pack's run_start) and open until its last step (the visit and, for a declined fee,
the whole dunning schedule); an event that does not move the next step does not restart it; a waiver runs in the
short FeeWaiver machine. The steps due at one local time (the morning reminder, the card check) wake together,
or over the pack's ``spread_minutes`` window. Texts and emails go through the outbox, which sends at each
identity's rate, so a peak above it becomes a delay (:func:`last_message_late_seconds`). Every Stripe call takes a
unit of the shared budget (``StripeRequestsPerSecond``), so Stripe never sees more than the budget; the card checks
share the drafts' capped part of it. A burst above it waits, each call retried by the ``stripe_budget_spent`` policy until that policy's patience runs out
(:func:`budget_patience_seconds`), and the drafts, paced by their Map, take as long as their share allows.

Every figure is arithmetic on named assumptions (:class:`Assumptions`), each with the reason for its default,
so a reader can disagree with one and rerun. Headroom is ``quota / peak``: 2.0 means twice the peak fits, below
1.0 the limit is hit (throttled, queued or refused, depending on the service). Nothing here calls AWS or Stripe.
"""

from __future__ import annotations

import heapq
import json
import random
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from localcloud.backtest import card_behaviour
from medspa.domain.keys import appointment_key, client_key, spa_key
from medspa.policy.schema import MAX_SPREAD_MINUTES, TimeZoneName
from medspa.adapters.stripe_budget import DRAFT_STEP_SECONDS, drafts_max_concurrency
from medspa.adapters.stripe_budget import InMemoryBudget
from medspa.adapters.stripe_budget import drafts_per_second as drafts_per_second_of
from medspa.ports.payments import PaymentProviderThrottled
from medspa.ports.memberships import DEFAULT_DUE_SHARDS

DAYS_PER_MONTH = 30.0
"""A month of bookings, spread evenly: the model is about peaks within a day, not about month lengths."""


class IdentityKind(StrEnum):
    TEN_DLC = "10dlc"
    TOLL_FREE = "toll_free"
    SHORT_CODE = "short_code"


class RegionClass(StrEnum):
    BIG_THREE = "big_three"
    """us-east-1, us-west-2, eu-west-1: Step Functions' larger default quotas."""
    ELSEWHERE = "elsewhere"


class LeadTime(BaseModel):
    """A share of the visits booked this many days ahead."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    share: float = Field(gt=0, le=1)
    days_ahead: float = Field(ge=0)


class TimeZoneShare(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    time_zone: TimeZoneName
    share: float = Field(gt=0, le=1)


class SendingIdentities(BaseModel):
    """The account's SMS origination identities (each texts at its own rate)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: IdentityKind = IdentityKind.TEN_DLC
    count: int = Field(default=1, ge=1)


class PathCost(BaseModel):
    """What one appointment's path costs Step Functions, as ``make bench`` (benchmarks/lifecycle_paths.py)
    measured it from the execution histories."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    state_transitions: int
    executions: int
    stopped: int = Field(description="Executions stopped by an event that moved the next step")


HAPPY_PATH = PathCost(state_transitions=12, executions=1, stopped=1)
"""Booked, reminded, confirmed, checked in, completed: the check-in leaves nothing to do, so it stops the one
run and starts none (measured after idle runs; 15 over 2 before)."""

WORST_PATH = PathCost(state_transitions=54, executions=4, stopped=1)
"""A late reschedule whose fee declines through dunning, then a no-show fee declined too, both waived: the
reschedule stops the first run; the two waivers are FeeWaiver executions of their own, two transitions each."""


class Assumptions(BaseModel):
    """The model's assumptions. Each default says why it is what it is; change one to see what it moves."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    happy_path: PathCost = HAPPY_PATH
    worst_path: PathCost = WORST_PATH
    dunning_days: float = Field(default=7.0, description=(
        "The packs' dunning schedules retry a declined fee 24, 72 and 168 hours after it (Glow stops at 72): "
        "the run stays open a week after the visit"))
    worst_path_fee_cycles: int = Field(default=2, description=(
        "The worst path declines twice (late reschedule, then no-show), so its run waits out dunning twice"))
    business_hours_per_day: float = Field(default=10.0, description=(
        "The packs open 10:00 to 20:00 most days: bookings and visits happen in these hours"))
    peak_hour_factor: float = Field(default=2.0, description=(
        "The busiest hour has twice the mean hour's bookings (lunch and after work); a guess, no data yet"))
    wake_spread_seconds: float = Field(default=60.0, description=(
        "Steps due at one local time (the morning reminder, the card check) all wake at that second, unless the "
        "pack spreads them; Step Functions fires the timers within seconds and Lambda adds 1,000 instances per "
        "10 s, so taking the burst as spread over a minute is generous: the real peak is higher"))
    transitions_per_wake: int = Field(default=3, description=(
        "A wake-up enters the task, the Choice after it and the next Wait (the ASL's loop)"))
    task_share_of_transitions: float = Field(default=1 / 3, description=(
        "One transition in three is a Task (Lambda) in that loop; the rest are Choices and Waits"))
    task_seconds: float = Field(default=0.5, description=(
        "A task reads DynamoDB, maybe calls Stripe or SMS, writes back: about half a second warm "
        "(the MembershipDrafts Map comment measures a draft step at that)"))
    ingest_invocations_per_appointment: float = Field(default=4.0, description=(
        "The happy path's four booking-site events (booked, confirmed, checked in, completed), each one "
        "invocation of the intake"))
    sms_share_of_reminders: float = Field(default=0.9, description=(
        "Clients who opted in to texts; most booking sites ask at booking, and the seeds' clients mostly do"))
    email_share_of_reminders: float = Field(default=0.3, description=(
        "Clients reminded by email as well or instead (no SMS consent); a guess"))
    fee_share: float = Field(default=0.05, description=(
        "Visits ending in a late-cancel, late-reschedule or no-show fee: the seeds' spas charge because a few "
        "in a hundred miss; a guess"))
    card_check_days_before: float = Field(default=3.0, description=(
        "The packs check the card on file 3 days before the visit, at 10:00 local time"))
    run_start_hours_before: float = Field(default=6.0, description=(
        "The packs' run_start: an appointment's execution starts 6 hours before its first step (the card check "
        "for a visit booked further ahead), from a one-time Scheduler schedule made at booking"))
    run_start_window_minutes: float = Field(default=60.0, description=(
        "The schedules' flexible window: the runs of one morning's card checks start spread over an hour"))
    stripe_requests_per_card_check: int = Field(default=2, description=(
        "A PaymentMethod retrieve (the expiry) and a SetupIntent create (the issuer's answer)"))
    stripe_requests_per_charge: int = Field(default=1, description=(
        "A PaymentIntent created and confirmed in one request (a fee, a retry, a draft)"))
    draft_step_seconds: float = Field(default=DRAFT_STEP_SECONDS, description=(
        "One draft step, as the MembershipDrafts Map comment measured it"))
    share_of_memberships_drafted_on_the_1st: float = Field(default=0.5, description=(
        "Dues are drafted on the day a membership started; many spas sell memberships to start on the 1st, so "
        "half of them draft that day; a guess"))
    due_index_writes_per_draft: int = Field(default=2, description=(
        "A draft moves the membership's due date: the by_due_day index deletes and puts an entry in the same "
        "shard's partition"))
    due_index_shards: int = Field(default=DEFAULT_DUE_SHARDS, description=(
        "DUE_INDEX_SHARDS (template DueIndexShards): the by_due_day key is time zone and shard"))


class CapacityInputs(BaseModel):
    """What an operator knows about a chain: its size, its bookings, where it is, and how it texts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = "custom"
    spas: int = Field(ge=1)
    appointments_per_month: float = Field(ge=0)
    memberships_per_month: float = Field(default=0, ge=0, description="Membership dues drafted per month: one per "
                                                                      "active membership")
    lead_times: tuple[LeadTime, ...] = Field(min_length=1)
    time_zones: tuple[TimeZoneShare, ...] = Field(min_length=1)
    sending_identities: SendingIdentities = SendingIdentities()
    declined_share: float = Field(default=0.02, ge=0, le=1, description=(
        "Visits whose fee declines and runs the dunning schedule (the worst path)"))
    region: RegionClass = RegionClass.BIG_THREE
    reminder_spread_minutes: int = Field(default=0, ge=0, le=MAX_SPREAD_MINUTES, description=(
        "The packs' morning-of reminder spread_minutes: the texts fall due over that window, not in one second"))
    card_check_spread_minutes: int = Field(default=0, ge=0, le=MAX_SPREAD_MINUTES, description=(
        "The packs' [card_check] spread_minutes: the checks reach the Stripe budget over that window"))
    stripe_requests_per_second: int = Field(default=25, ge=1, description=(
        "The shared Stripe budget (template StripeRequestsPerSecond), sized from the account's limit"))
    stripe_drafts_share: float = Field(default=0.5, gt=0, le=1, description=(
        "The drafts' share of each second of the budget (template StripeDraftsShare)"))

    @model_validator(mode="after")
    def _shares_sum_to_one(self) -> CapacityInputs:
        for label, shares in (("lead_times", [lt.share for lt in self.lead_times]),
                              ("time_zones", [tz.share for tz in self.time_zones])):
            if abs(sum(shares) - 1) > 1e-6:
                raise ValueError(f"{label}: the shares add up to {sum(shares):g}, not 1")
        return self


class Quota(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    name: str
    unit: str
    adjustable: bool
    doc: str = Field(description="The doc's short name, for a table cell")
    source: str
    url: str | None = None


_SFN_QUOTAS = ("AWS Step Functions Developer Guide, Quotas", "https://docs.aws.amazon.com/step-functions/latest/dg/"
               "service-quotas.html")
_DESIGN = "DESIGN.md, Scale: the quotas that shape the design"

QUOTAS: tuple[Quota, ...] = (
    Quota(key="open_executions", doc="Step Functions quotas", name="Step Functions open executions", unit="executions", adjustable=True,
          source=f"{_SFN_QUOTAS[0]}: open executions (Standard); {_DESIGN}", url=_SFN_QUOTAS[1]),
    Quota(key="schedules", doc="EventBridge Scheduler quotas", name="EventBridge Scheduler schedules", unit="schedules",
          adjustable=True, source=f"Amazon EventBridge Scheduler User Guide, Quotas: schedules per Region; {_DESIGN}",
          url="https://docs.aws.amazon.com/scheduler/latest/UserGuide/scheduler-quotas.html"),
    Quota(key="start_execution", doc="Step Functions quotas", name="Step Functions StartExecution", unit="calls/s", adjustable=True,
          source=f"{_SFN_QUOTAS[0]}: API action throttling, StartExecution refill rate; {_DESIGN}",
          url=_SFN_QUOTAS[1]),
    Quota(key="stop_execution", doc="Step Functions quotas", name="Step Functions StopExecution", unit="calls/s", adjustable=True,
          source=f"{_SFN_QUOTAS[0]}: API action throttling, StopExecution refill rate; {_DESIGN}",
          url=_SFN_QUOTAS[1]),
    Quota(key="state_transitions", doc="Step Functions quotas", name="Step Functions state transitions", unit="transitions/s", adjustable=True,
          source=f"{_SFN_QUOTAS[0]}: state transition throttling (Standard), refill rate; {_DESIGN}",
          url=_SFN_QUOTAS[1]),
    Quota(key="lambda_concurrency", doc="Lambda quotas", name="Lambda concurrent executions", unit="instances", adjustable=True,
          source=f"AWS Lambda Developer Guide, Lambda quotas: concurrent executions; {_DESIGN}",
          url="https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html"),
    Quota(key="sms_per_identity", doc="End User Messaging SMS MPS", name="SMS per origination identity", unit="messages/s", adjustable=True,
          source=f"AWS End User Messaging SMS User Guide: messages per second (MPS) per origination identity "
                 f"(10DLC 1, toll-free 3, short code 100); {_DESIGN}"),
    Quota(key="ses_rate", doc="SES sending quotas", name="SES sending rate", unit="emails/s", adjustable=True,
          source="Amazon SES Developer Guide, Managing your sending quotas: the maximum send rate an account "
                 "gets on leaving the sandbox (commonly 14/s; the console shows the account's own)"),
    Quota(key="stripe_endpoint", doc="Stripe rate limits", name="Stripe requests per endpoint", unit="requests/s", adjustable=True,
          source=f"Stripe docs, Rate limits: 25 requests/s per endpoint (live); {_DESIGN}",
          url="https://docs.stripe.com/rate-limits"),
    Quota(key="stripe_total", doc="Stripe rate limits", name="Stripe operations (live mode)", unit="operations/s", adjustable=True,
          source=f"Stripe docs, Rate limits: 100 operations/s in live mode; {_DESIGN}",
          url="https://docs.stripe.com/rate-limits"),
    Quota(key="stripe_budget_wait", doc="the budget's retry policy", name="Wait for the Stripe budget",
          unit="seconds", adjustable=True,
          source="statemachines/retry_policies.json, stripe_budget_spent: a call turned away by the budget is "
                 "retried 20 times with full jitter; this design's own limit, the longest drain no call gives up on, "
                 "played with the budget and that retrier (a card check then goes on unchecked, a fee's run fails "
                 "and alarms)"),
    Quota(key="drafts_day", doc="the daily drafts run", name="One day's dues drafts", unit="seconds",
          adjustable=True,
          source="template.yaml: MembershipDrafts runs once a day per time zone (09:00 local); its Map, paced by "
                 "the drafts' share of the Stripe budget, must finish a day's drafts before the next run"),
    Quota(key="dynamodb_partition_writes", doc="DynamoDB partitions", name="DynamoDB writes per partition", unit="writes/s", adjustable=False,
          source=f"Amazon DynamoDB Developer Guide, partitions and hot keys: 1,000 write units/s per partition; "
                 f"{_DESIGN}"),
)
QUOTAS_BY_KEY = {q.key: q for q in QUOTAS}

_SMS_RATE = {IdentityKind.TEN_DLC: 1.0, IdentityKind.TOLL_FREE: 3.0, IdentityKind.SHORT_CODE: 100.0}
SES_DEFAULT_RATE = 14.0
"""An account's usual send rate on leaving the SES sandbox (the sandbox itself allows 1/s and 200 a day)."""


def default_quota(key: str, inputs: CapacityInputs) -> float:
    """The default for this account's Region class and sending identities (DESIGN.md's table)."""
    big = inputs.region is RegionClass.BIG_THREE
    return {
        "open_executions": 1_000_000.0,
        "schedules": 10_000_000.0,
        "start_execution": 300.0 if big else 150.0,
        "stop_execution": 200.0 if big else 25.0,
        "state_transitions": 5_000.0 if big else 800.0,
        "lambda_concurrency": 1_000.0,
        "sms_per_identity": _SMS_RATE[inputs.sending_identities.kind],
        "ses_rate": SES_DEFAULT_RATE,
        "stripe_endpoint": 25.0,
        "stripe_total": 100.0,
        "stripe_budget_wait": budget_patience_seconds(drafts_per_second_of(inputs.stripe_requests_per_second,
                                                                           inputs.stripe_drafts_share)),
        "drafts_day": 86_400.0,
        "dynamodb_partition_writes": 1_000.0,
    }[key]


class QuotaLoad(BaseModel):
    model_config = ConfigDict(frozen=True)

    quota: Quota
    peak: float
    limit: float
    headroom: float = Field(description="limit / peak; below 1 the limit is hit; infinite when nothing loads it")
    when: str = Field(description="The moment the peak happens, in the spa's words")
    first_hit: bool = False


class CapacityReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    inputs: CapacityInputs
    assumptions: Assumptions
    loads: tuple[QuotaLoad, ...]
    mean_open_days: float
    busiest_time_zone: str
    morning_texts_per_identity: float
    last_text_late_seconds: float
    drafts_seconds: float = Field(description="How long the busiest zone's drafts on the 1st take at their share")
    capped_requests_per_second: int = Field(description="The budget's capped share, the drafts' and card checks'")

    @property
    def first_limit(self) -> QuotaLoad:
        return next(load for load in self.loads if load.first_hit)

    def as_json(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        data["first_limit"] = self.first_limit.quota.key
        for load in data["loads"]:
            if load["headroom"] == float("inf"):
                load["headroom"] = None
        return data


def mean_open_days(inputs: CapacityInputs, assumptions: Assumptions = Assumptions()) -> float:
    """Days an appointment's execution stays open: from shortly before its first step (the card check, or the
    booking when that is nearer) to the visit, and through dunning for the visits whose fee declines (twice on
    the worst path)."""
    opened = assumptions.card_check_days_before + assumptions.run_start_hours_before / 24
    lead = sum(lt.share * min(lt.days_ahead, opened) for lt in inputs.lead_times)
    return lead + inputs.declined_share * assumptions.dunning_days * assumptions.worst_path_fee_cycles


def mean_pending_days(inputs: CapacityInputs, assumptions: Assumptions = Assumptions()) -> float:
    """Days an appointment's run waits as a Scheduler schedule: from booking until it starts."""
    opened = assumptions.card_check_days_before + assumptions.run_start_hours_before / 24
    return sum(lt.share * max(lt.days_ahead - opened, 0.0) for lt in inputs.lead_times)


def _mix(inputs: CapacityInputs, assumptions: Assumptions, field: str) -> float:
    """Per appointment, the happy and the worst path weighted by the share that declines."""
    worst = inputs.declined_share
    happy, bad = getattr(assumptions.happy_path, field), getattr(assumptions.worst_path, field)
    return float((1 - worst) * happy + worst * bad)


def _ratio(limit: float, peak: float) -> float:
    return limit / peak if peak > 0 else float("inf")


def capacity(inputs: CapacityInputs, assumptions: Assumptions = Assumptions()) -> CapacityReport:
    """Each quota's peak load, its default and the headroom; the smallest headroom is the first limit hit."""
    a = assumptions
    per_day = inputs.appointments_per_month / DAYS_PER_MONTH
    busiest = max(inputs.time_zones, key=lambda tz: tz.share)
    busiest_day = per_day * busiest.share
    bookings_per_second = per_day / (a.business_hours_per_day * 3600) * a.peak_hour_factor

    open_days = mean_open_days(inputs, a)
    open_executions = inputs.appointments_per_month * open_days / DAYS_PER_MONTH
    pending_days = mean_pending_days(inputs, a)
    schedules = inputs.appointments_per_month * pending_days / DAYS_PER_MONTH

    checked = sum(lt.share for lt in inputs.lead_times if lt.days_ahead > a.card_check_days_before)
    scheduled_starts = busiest_day * checked / (a.run_start_window_minutes * 60)
    booked_starts = bookings_per_second * _mix(inputs, a, "executions")
    starts = max(booked_starts, scheduled_starts)
    stops = bookings_per_second * _mix(inputs, a, "stopped")

    steady_transitions = bookings_per_second * _mix(inputs, a, "state_transitions")
    reminder_window = max(a.wake_spread_seconds, inputs.reminder_spread_minutes * 60.0)
    morning_wakes = busiest_day / reminder_window
    transitions = max(steady_transitions, morning_wakes * a.transitions_per_wake)

    steady_tasks = steady_transitions * a.task_share_of_transitions + \
        bookings_per_second * a.ingest_invocations_per_appointment
    lambda_concurrency = max(steady_tasks, morning_wakes) * a.task_seconds

    morning_texts = busiest_day * a.sms_share_of_reminders
    texts_per_identity = morning_texts / inputs.sending_identities.count
    sms_rate = default_quota("sms_per_identity", inputs)
    sms_peak = texts_per_identity / reminder_window
    emails = busiest_day * a.email_share_of_reminders / reminder_window

    budget = float(inputs.stripe_requests_per_second)
    drafts_on_the_1st = inputs.memberships_per_month * a.share_of_memberships_drafted_on_the_1st * busiest.share
    map_concurrency = drafts_max_concurrency(inputs.stripe_requests_per_second, inputs.stripe_drafts_share)
    drafts_paced = min(map_concurrency / a.draft_step_seconds,
                       drafts_per_second_of(inputs.stripe_requests_per_second, inputs.stripe_drafts_share)
                       / a.stripe_requests_per_charge)
    drafts_per_second = min(drafts_on_the_1st / a.wake_spread_seconds, drafts_paced)
    drafts_seconds = drafts_on_the_1st / drafts_paced
    fees_per_second = bookings_per_second * a.fee_share
    charges = (drafts_per_second + fees_per_second) * a.stripe_requests_per_charge
    card_checks_due = busiest_day * checked
    card_check_window = max(a.wake_spread_seconds, inputs.card_check_spread_minutes * 60.0)
    card_checks = card_checks_due / card_check_window
    # The card checks' requests, due together (or minute by minute over the pack's window), drain at the capped
    # share they have with the drafts (one request a check at each of two endpoints); the last waits this long,
    # which the retry policy must outlast.
    capped = drafts_per_second_of(inputs.stripe_requests_per_second, inputs.stripe_drafts_share)
    card_check_requests = min(card_checks * a.stripe_requests_per_card_check, capped)
    stripe_endpoint = min(max(charges, card_check_requests / a.stripe_requests_per_card_check), budget)
    stripe_total = min(max(charges, card_check_requests + fees_per_second), budget)
    budget_wait = last_message_late_seconds(card_checks_due * a.stripe_requests_per_card_check, capped,
                                            inputs.card_check_spread_minutes)

    partition_writes = drafts_per_second * a.due_index_writes_per_draft / a.due_index_shards

    zone = busiest.time_zone
    peaks: Mapping[str, tuple[float, str]] = {
        "open_executions": (open_executions, f"every day: {open_days:.1f} days open on average"),
        "schedules": (schedules, f"every day: runs wait {pending_days:.1f} days to start on average"),
        "start_execution": (starts, "the busiest booking hour" if booked_starts >= scheduled_starts
                            else f"the scheduled starts before the card checks in {zone}"),
        "stop_execution": (stops, "the busiest booking hour"),
        "state_transitions": (transitions, f"the morning reminders in {zone}" if transitions > steady_transitions
                              else "the busiest booking hour"),
        "lambda_concurrency": (lambda_concurrency, f"the morning reminders in {zone}" if morning_wakes > steady_tasks
                               else "the busiest booking hour"),
        "sms_per_identity": (sms_peak, f"the morning reminders in {zone}, one identity's share"),
        "ses_rate": (emails, f"the morning reminders in {zone}"),
        "stripe_endpoint": (stripe_endpoint, f"the 1st: dues drafts in {zone} and fees" if charges >= card_checks
                            else f"the 10:00 card checks in {zone}, held to their share"),
        "stripe_total": (stripe_total, "the 1st: dues drafts and fees" if charges >= card_checks
                         else f"the 10:00 card checks in {zone}, held to their share"),
        "stripe_budget_wait": (budget_wait, f"the last of the 10:00 card checks in {zone}, {capped} requests a "
                                            "second"),
        "drafts_day": (drafts_seconds, f"the 1st: the dues drafts in {zone}, {drafts_paced:g} a second"),
        "dynamodb_partition_writes": (partition_writes, f"the 1st: one by_due_day shard of {zone}"),
    }
    loads = []
    for q in QUOTAS:
        (peak, when), limit = peaks[q.key], default_quota(q.key, inputs)
        loads.append(QuotaLoad(quota=q, peak=peak, limit=limit, headroom=_ratio(limit, peak), when=when))
    first = min(range(len(loads)), key=lambda i: loads[i].headroom)
    loads[first] = loads[first].model_copy(update={"first_hit": True})
    return CapacityReport(inputs=inputs, assumptions=a, loads=tuple(loads), mean_open_days=open_days,
                          busiest_time_zone=zone, morning_texts_per_identity=texts_per_identity,
                          last_text_late_seconds=last_message_late_seconds(texts_per_identity, sms_rate,
                                                                           inputs.reminder_spread_minutes),
                          drafts_seconds=drafts_seconds, capped_requests_per_second=capped)


def last_message_late_seconds(messages: float, per_second: float, spread_minutes: int = 0) -> float:
    """How long after its own due moment the last of ``messages`` leaves, one every ``1 / per_second`` seconds
    (the outbox, medspa/services/outbox.py; the budget, for Stripe calls). Unspread, all fall due at one moment
    and the last leaves ``(n - 1) / rate`` after it; the outbox load test holds the local cloud to this. Spread,
    an equal batch falls due at each whole minute of the window: the last leaves when the backlog has drained,
    counted from the last minute, or after its own minute's batch, whichever is later."""
    if messages <= 0:
        return 0.0
    minutes = max(spread_minutes, 1)
    backlog = (messages - 1) / per_second - (minutes - 1) * 60
    return max(backlog, (messages / minutes - 1) / per_second, 0.0)


@cache
def budget_retrier() -> dict[str, Any]:
    """The state machines' ``stripe_budget_spent`` retrier, as statemachines/retry_policies.json names it."""
    policies = json.loads((Path(__file__).resolve().parents[2] / "statemachines" / "retry_policies.json")
                          .read_text(encoding="utf-8"))
    return dict(policies["retriers"]["stripe_budget_spent"])


def budget_burst(calls: int, per_second: int, seed: int = 13) -> tuple[int, float]:
    """``calls`` Stripe calls falling due within one second, each taking a unit of the real budget class
    (``InMemoryBudget``) on a virtual clock and, when turned away, retried as the ``stripe_budget_spent`` retrier
    retries it: a uniform draw up to each capped interval. Returns how many gave up after the last try, and when
    the last call got through. Seeded, so the same inputs give the same figures."""
    retry = budget_retrier()
    now = 0.0
    budget = InMemoryBudget(per_second, 1.0, clock=lambda: now)
    draw = random.Random(seed)
    due = [(draw.random(), n, 0) for n in range(calls)]
    heapq.heapify(due)
    gave_up, last = 0, 0.0
    while due:
        now, n, tries = heapq.heappop(due)
        try:
            budget.take("fees", "capacity model")
            last = now
        except PaymentProviderThrottled:
            if tries == retry["MaxAttempts"]:
                gave_up += 1
                continue
            ceiling = min(retry["IntervalSeconds"] * retry["BackoffRate"] ** tries, retry["MaxDelaySeconds"])
            heapq.heappush(due, (now + draw.uniform(0, ceiling), n, tries + 1))
    return gave_up, last


@cache
def budget_patience_seconds(per_second: int = 25) -> float:
    """The longest a burst may take to drain at the budget's rate before a call gives up: the drain time
    (``(n - 1) / rate``) of the largest burst that :func:`budget_burst` gets through whole.

    Not the retrier's own horizon (about 6 minutes expected): late in a burst the callers left retry up to a minute
    apart, so seconds of the budget go unused and the burst drains slower than the rate; the simulation counts
    that, a formula would not."""
    assert budget_retrier().get("JitterStrategy") == "FULL", "budget_burst draws full jitter"
    whole, lost = 1, per_second * int(sum(_capped_intervals())) + 1  # the retrier's longest horizon: some give up
    while lost - whole > max(1, whole // 100):
        middle = (whole + lost) // 2
        whole, lost = (middle, lost) if budget_burst(middle, per_second)[0] == 0 else (whole, middle)
    return (whole - 1) / per_second


def _capped_intervals() -> list[float]:
    retry = budget_retrier()
    return [min(retry["IntervalSeconds"] * retry["BackoffRate"] ** n, retry.get("MaxDelaySeconds", 1e9))
            for n in range(retry["MaxAttempts"])]


# ====================================================================== the three sizes of issue 13

LEAD_TIMES = (LeadTime(share=0.55, days_ahead=7), LeadTime(share=0.35, days_ahead=28),
              LeadTime(share=0.10, days_ahead=180))
"""Most visits are booked for the next week or month; one in ten at checkout for six months on (the next
injectable or laser session). The issue's own estimate had 10% booked months ahead."""

US_TIME_ZONES = (TimeZoneShare(time_zone="America/New_York", share=0.47),
                 TimeZoneShare(time_zone="America/Chicago", share=0.29),
                 TimeZoneShare(time_zone="America/Denver", share=0.07),
                 TimeZoneShare(time_zone="America/Los_Angeles", share=0.17))
"""A national chain's spas follow the US population by time zone (roughly)."""

EASTERN = (TimeZoneShare(time_zone="America/New_York", share=1.0),)
"""One spa, or a regional chain, in one zone: the whole morning is at the same 08:00 (the issue's 3,300
texts at 08:00 Eastern for 100 spas)."""

PRESETS: Mapping[str, CapacityInputs] = {
    "small": CapacityInputs(name="small: 1 spa, 1,000 appointments a month", spas=1, appointments_per_month=1_000,
                            lead_times=LEAD_TIMES, time_zones=EASTERN),
    "chain100": CapacityInputs(name="chain100: 100 spas, 100,000 appointments a month", spas=100,
                               appointments_per_month=100_000, lead_times=LEAD_TIMES, time_zones=EASTERN),
    "chain1000": CapacityInputs(name="chain1000: 1,000 spas, 1,000,000 appointments and 200,000 memberships a "
                                     "month", spas=1_000, appointments_per_month=1_000_000,
                                memberships_per_month=200_000, lead_times=LEAD_TIMES, time_zones=US_TIME_ZONES),
}
"""The three sizes of issue 13. Each texts through the one dedicated 10DLC number the template has today."""


# ====================================================================== from a scenario


def inputs_from_scenario(scenario: Any, time_zone_of: Mapping[str, str],
                         sending_identities: SendingIdentities = SendingIdentities(),
                         region: RegionClass = RegionClass.BIG_THREE) -> CapacityInputs:
    """The inputs a scenario implies, scaled to a month: its bookings (and how far ahead each was made), its
    locations (each counted as a spa, in its pack's time zone), its memberships, and the share of its
    bookings made on a card that declines. ``scenario`` is a :class:`localcloud.scenario.Scenario`."""
    bookings: dict[str, tuple[str, float, bool]] = {}
    memberships: dict[str, str] = {}
    cards = {c.key: c.card for c in scenario.clients}
    last = scenario.start
    for entry in scenario.entries:
        last = max(last, entry["at_utc"])
        detail = entry.get("detail") or {}
        if entry.get("expect_rejected"):
            continue
        if entry.get("detail_type") == "AppointmentBooked":
            starts = datetime.fromisoformat(detail["starts_at"])
            ahead = max((starts - entry["at_utc"]).total_seconds() / 86400, 0.0)
            card = cards.get(client_key(detail["spa_id"], (detail.get("client") or {}).get("id", "")))
            bookings.setdefault(appointment_key(detail["spa_id"], detail["appointment_id"]),
                                (detail["location_id"], ahead, card is not None and card_behaviour(card) == "declines"))
        elif entry.get("detail_type") == "MembershipStarted":
            memberships.setdefault(spa_key(detail["spa_id"], detail["membership_id"]), detail["location_id"])
    end = scenario.until or last
    months = max((end - scenario.start).total_seconds() / 86400, 1.0) / DAYS_PER_MONTH
    locations = sorted({loc for loc, _, _ in bookings.values()} | set(memberships.values()))
    if not locations:
        raise ValueError("the scenario books no appointment and starts no membership: nothing to scale")
    zones: dict[str, float] = {}
    for loc in locations:
        zone = time_zone_of.get(loc, "UTC")
        zones[zone] = zones.get(zone, 0) + 1 / len(locations)
    return CapacityInputs(
        name=f"scenario {scenario.name}", spas=len(locations),
        appointments_per_month=len(bookings) / months, memberships_per_month=float(len(memberships)),
        lead_times=_lead_times(ahead for _, ahead, _ in bookings.values()) or LEAD_TIMES,
        time_zones=tuple(TimeZoneShare(time_zone=z, share=s) for z, s in sorted(zones.items())),
        sending_identities=sending_identities,
        declined_share=sum(1 for *_, bad in bookings.values() if bad) / max(len(bookings), 1), region=region)


def _lead_times(days: Iterable[float]) -> tuple[LeadTime, ...]:
    """Each booking its own equal share: a scenario is small, and its exact lead times are the mix. None when
    it books nothing (a memberships-only story): the caller falls back to the usual mix, which then weighs
    nothing."""
    every: Sequence[float] = list(days)
    if not every:
        return ()
    return tuple(LeadTime(share=1 / len(every), days_ahead=round(d, 3)) for d in every)
