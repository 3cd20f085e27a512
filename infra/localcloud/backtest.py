"""``medspa backtest``: play a scenario through the real services in one process, on a virtual clock.

The simulator (``localcloud.simulate``) plays a scenario through the deployed system: moto, Step Functions,
the fake Stripe, about a second of real time per appointment. A spa owner asking "what would this policy have
done to last year's bookings?" needs tens of thousands of appointments in seconds, so this engine runs the same
services (intake, lifecycle, fee steps, settlement, card checks, notifications, inbound SMS) on the in-memory
adapters, and takes the lifecycle loop itself, as ``statemachines/appointment_lifecycle.asl.json`` takes it:
plan, wait until the step is due, act, plan again. The steps are the services' own; only the waiting differs.

Decisions:

* The same scenario file serves both engines: it is read and checked by ``localcloud.scenario`` (the same
  one-line errors), and its placeholder Stripe ids stand for the cards, each behaving as its fake Stripe test
  card does (:func:`card_behaviour`).
* Wake-ups are a priority queue ordered by (due time, order queued): every due step of every appointment is
  taken in time order, and an appointment nobody will touch again costs nothing while it waits. Each wake-up
  re-plans before acting, as each Wait state is followed by a task that re-reads the appointment.
* The report has the simulator's keys for what both engines know (appointments, ledger, messages, clients,
  events to the booking site, inputs, summary per location), built by the same line functions
  (``localcloud.report``), so the differential test compares like with like. Executions are not Step
  Functions executions here; each appointment lists none and the state transitions count zero.
* Memberships and prepaid courses are played as the MembershipDrafts machine plays them: a daily run at 09:00
  local in every time zone whose location has a membership or prepaid rule (the template's schedules, one per
  such zone) takes each due membership's step and then each due course's; a sign-up or an unfreeze whose dues
  are due at once gets a run of its own for that membership as soon as the intake has folded the event, named
  as the intake names it, so a repeat starts nothing. Daily runs fire on the way and never keep a run going:
  a scenario without ``until`` ends with its last appointment step, as the simulator's does.
"""

from __future__ import annotations

import functools
import gc
import heapq
import itertools
import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from datetime import time as local_time
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from zoneinfo import ZoneInfo

from medspa.adapters.booking_site import InMemoryBookingSite
from medspa.adapters.executions import InMemoryExecutions, draft_run_name
from medspa.adapters.memory_payments import CardBehaviour, InMemoryPayments
from medspa.adapters.messaging import InMemoryMessenger
from medspa.adapters.store.memory import InMemoryStore
from medspa.domain.membership import local_day
from medspa.events import FeeWaived, parse_booking_event
from medspa.messages.templates import load_templates
from medspa.policy.loader import PolicyPackError, PolicyPacks, load_pack, load_packs
from medspa.policy.schema import PolicyPack
from medspa.policy.tenants import load_tenants
from medspa.services.card_check import CardChecks
from medspa.services.confirm_link import EmailConfirmation
from medspa.services.courses import CourseService
from medspa.services.fees import FeeSteps
from medspa.services.inbound_sms import InboundSmsService, parse_inbound_message
from medspa.services.ingest import IngestOutcome, IngestService
from medspa.services.lifecycle import LifecycleService, StepRequest, StepResult
from medspa.services.memberships import MembershipService
from medspa.services.notifications import NotificationService
from medspa.services.settlement import SettlementService
from medspa.services.unsubscribe import EmailUnsubscribe

from localcloud.report import (
    REPORT_FORMAT,
    appointment_line,
    client_line,
    iso,
    ledger_and_memberships,
    messages_from,
    summarize,
)
from localcloud.scenario import Input, Scenario, StripeIds, load_scenario, prepare_inputs

__all__ = ["BACKTEST_KEYS", "COMPARISON_FORMAT", "InProcessSpa", "card_behaviour", "compare_packs", "run_backtest",
           "what_if"]

BACKTEST_KEYS = ("format", "engine", "scenario", "started_at", "ended_at", "real_seconds", "inputs", "messages",
                 "ledger", "appointments", "clients", "memberships", "drafts", "expiries", "events_to_booking_site",
                 "summary")
COMPARISON_FORMAT = "medspa-backtest-comparison/1"
STEPS_PER_WAKE_UP = 300  # a plan that keeps answering "due now" without changing anything is a bug, said loudly
DEFAULT_SMS_DESTINATION = "+10000000000"  # as localcloud.capture, without importing the cloud's run
DAILY_RUN = "\x00daily drafts run "  # a wake-up's key no appointment key can be, followed by the time zone
DAILY_RUN_AT = 9  # the template's cron(0 9 * * ? *) per zone


class _DraftRunsNow:
    """``DraftRuns`` in process: the membership whose dues are due at once is drafted once the intake is done
    with the event, as the run the intake starts would; a run's name (membership, due date, attempt) is taken
    once, as Step Functions takes it."""

    def __init__(self) -> None:
        self.started: set[str] = set()
        self.pending: list[str] = []

    def start_now(self, membership_id: str, due_on: date, attempt: int, why: str = "") -> None:
        name = draft_run_name(membership_id, due_on, attempt, why)
        if name not in self.started:
            self.started.add(name)
            self.pending.append(membership_id)


class _ClockedMessenger(InMemoryMessenger):
    """The in-memory messenger that also notes when each message went, as moto's sent-message log does."""

    def __init__(self, clock: Any) -> None:
        super().__init__()
        self._clock = clock
        self.sent: list[dict[str, Any]] = []

    def send_sms(self, phone: str, body: str) -> str:
        message_id = super().send_sms(phone, body)
        self.sent.append({"message_id": message_id, "channel": "sms", "to": phone, "subject": None, "text": body,
                          "at": self._clock()})
        return message_id

    def send_email(self, to_address: str, subject: str, body: str, *, unsubscribe_url: str) -> str:
        message_id = super().send_email(to_address, subject, body, unsubscribe_url=unsubscribe_url)
        self.sent.append({"message_id": message_id, "channel": "email", "to": to_address, "subject": subject,
                          "text": body, "at": self._clock()})
        return message_id


class InProcessSpa:
    """Every spa of ``packs`` on in-memory adapters, with the lifecycle loop driven here. ``now`` only moves
    forward; :meth:`play_until` takes every step due by then, across all appointments, in time order."""

    def __init__(self, now: datetime, packs: PolicyPacks | Mapping[str, Any] | None = None, store: Any = None) -> None:
        """``store`` replaces the in-memory store (the pynamodb one on moto, to compare the two)."""
        self.now = now
        self.packs = packs if packs is not None else load_packs()
        self.store: Any = store if store is not None else InMemoryStore()
        self.runs = InMemoryExecutions()
        self.site = InMemoryBookingSite()
        self.messenger = _ClockedMessenger(lambda: self.now)
        self.payments = InMemoryPayments()
        spas = {p.spa.id: p.spa.name for p in self.packs.values()}
        key = lambda: b"k" * 32  # noqa: E731 - the links are signed as deployed; no one follows them here
        links = EmailUnsubscribe(self.store.consent, key, "https://api.example.com/unsubscribe", spas)
        confirm = EmailConfirmation(self.store, self.packs, key, "https://api.example.com/confirm")
        notifications = NotificationService(self.messenger, load_templates(), self.packs, consent=self.store.consent,
                                            unsubscribe=links, confirm_links=confirm)
        self.lifecycle = LifecycleService(self.store, self.packs, notifications, self.site, self.runs)
        self.settlement = SettlementService(self.store, self.payments, self.packs)
        self.fees = FeeSteps(self.store, self.settlement, self.lifecycle)
        self.cards = CardChecks(self.store, self.payments, self.packs, self.lifecycle)
        by_location = PolicyPacks.of(self.packs)
        self.memberships = MembershipService(self.store, self.store.memberships, by_location, self.settlement,
                                             self.site, notifications)
        self.courses = CourseService(self.store, by_location, self.site, notifications)
        self.draft_runs = _DraftRunsNow()
        self.intake = IngestService(self.store, self.runs, self.packs, load_tenants(self.packs), booking_site=self.site,
                                    memberships=MembershipService(self.store, self.store.memberships, by_location,
                                                                  booking_site=self.site),
                                    draft_runs=self.draft_runs, courses=CourseService(self.store, by_location, self.site))
        self.inbound = InboundSmsService(self.store, self.packs, replies=self.messenger, booking_site=self.site)
        self.steps: list[tuple[datetime, str, str]] = []  # (when, action, key or reason): the loop's own log
        self._wake_ups: list[tuple[datetime, int, str]] = []
        self._order = itertools.count()
        self._queued: dict[str, tuple[datetime, int]] = {}  # appointment -> its earliest wake-up still queued
        for zone in sorted({p.location.time_zone for p in self.packs.values() if p.membership or p.prepaid}):
            self.wake(DAILY_RUN + zone, _next_daily_run(zone, now))

    # ------------------------------------------------------------------------------ inputs

    def deliver(self, event: Any, *, source: str = "booking-site") -> IngestOutcome:
        """The intake applies ``event`` now; the appointment it names is planned again at once, as a started
        execution plans first; an admin's waiver runs to its end, as its short execution does."""
        outcome = self.intake.ingest(event, source, self.now)
        while self.draft_runs.pending:
            self.memberships.take_due_step(self.draft_runs.pending.pop(0), self.now)
        if outcome.action == "waiver_started" and isinstance(event, FeeWaived):
            self.waive(outcome.appointment_id or "", event.purpose, event.admin_id)
        if outcome.appointment_id is not None:
            self.wake(outcome.appointment_id, self.now)
        return outcome

    def waive(self, appointment_id: str, purpose: str, admin_id: str) -> None:
        """As the FeeWaiver state machine runs it: waive the fee, then tell the client if there is a notice."""
        result = self.fees.waive(appointment_id, purpose, admin_id, self.now)
        detail = result.detail or {}
        if detail.get("notice"):
            run = StepRequest(appointment_id=appointment_id, booking_version=detail["booking_version"],
                              revision=detail["revision"])
            self.lifecycle.act(run.model_copy(update={"action": "send_message", "key": detail["notice"]}), self.now)

    def text_in(self, message: Mapping[str, Any], delivery_id: str) -> None:
        """An inbound SMS (the End User Messaging payload), handled as the inbound function handles it."""
        self.inbound.handle(parse_inbound_message(json.dumps(message)), now=self.now, delivery_id=delivery_id,
                            received_at=self.now)
        for appointment_id in self._appointments_of_phone(message.get("originationNumber")):
            self.wake(appointment_id, self.now)  # a reply may confirm a visit: its plan changes

    def _appointments_of_phone(self, phone: Any) -> list[str]:
        if not phone:
            return []
        return [a.appointment_id for c in self.store.clients.find_by_phone(phone)
                for a in self.store.appointments.for_client(c.client_id)]

    # ------------------------------------------------------------------------------ the lifecycle loop

    def wake(self, appointment_id: str, at: datetime) -> None:
        """Queue a wake-up, unless one no later is already queued: that one re-plans, and queues what follows."""
        queued = self._queued.get(appointment_id)
        if queued is not None and queued[0] <= at:
            return
        token = next(self._order)
        self._queued[appointment_id] = (at, token)
        heapq.heappush(self._wake_ups, (at, token, appointment_id))

    def request(self, appointment_id: str) -> StepRequest:
        stored = self.store.appointments.get(appointment_id)
        assert stored is not None, appointment_id
        return StepRequest.run_of(stored)

    def take(self, run: StepRequest, action: str, reason: str | None = None, key: str | None = None,
             attempt: int | None = None) -> StepResult | Any:
        """One step, routed as the state machine routes it: fees and the card check to the settlement function."""
        if action == "settle_fee":
            return self.fees.settle(run.appointment_id, reason or "", self.now)
        if action == "retry_fee":
            return self.fees.retry(run.appointment_id, reason or "", attempt or 2, self.now)
        if action == "release_fee":
            return self.fees.release(run.appointment_id, reason or "", self.now)
        if action == "check_card":
            return self.cards.check(run.appointment_id, run.booking_version, run.revision, self.now)
        return self.lifecycle.act(run.model_copy(update={"action": action, "key": key, "reason": reason,
                                                         "attempt": attempt}), self.now)

    def step_due(self, appointment_id: str, until: datetime) -> datetime | None:
        """Take every step of one appointment due by ``until``, each at its own time, as the execution's Wait
        states would; return when its next step is due (None: nothing left). The clock stops at the last step."""
        for _ in range(STEPS_PER_WAKE_UP):
            stored = self.store.appointments.get(appointment_id)
            if stored is None:
                return None
            run = StepRequest.run_of(stored)
            step = self.lifecycle.plan(run, self.now).next
            if step is None:
                return None
            if step.at > until:
                return step.at
            self.now = max(self.now, step.at)
            self.take(run, step.action, step.reason, step.key, step.attempt)
            self.steps.append((self.now, step.action, step.key or step.reason or ""))
        raise RuntimeError(f"{appointment_id}: the lifecycle kept planning steps that changed nothing")

    def run_until(self, appointment_id: str, until: datetime) -> None:
        """One appointment's steps due by ``until``, then the clock is ``until``: what a unit test of one visit
        drives. Its next step stays queued, so :meth:`play_until` carries on from there."""
        self._queued.pop(appointment_id, None)  # its queued wake-up, if any, is taken now or planned again below
        nxt = self.step_due(appointment_id, until)
        if nxt is not None:
            self.wake(appointment_id, nxt)
        self.now = max(self.now, until)

    def play_until(self, until: datetime) -> None:
        """Every wake-up due by ``until``, across all appointments, in time order; then the clock is ``until``."""
        while self._wake_ups and self._wake_ups[0][0] <= until:
            at, token, appointment_id = heapq.heappop(self._wake_ups)
            if self._queued.get(appointment_id) != (at, token):
                continue  # overtaken by an earlier wake-up, which planned again after it acted
            del self._queued[appointment_id]
            self.now = max(self.now, at)
            if appointment_id.startswith(DAILY_RUN):
                self.daily_run(appointment_id.removeprefix(DAILY_RUN))
                continue
            nxt = self.step_due(appointment_id, self.now)
            if nxt is not None:
                self.wake(appointment_id, nxt)
        self.now = max(self.now, until)

    def play_until_idle(self) -> None:
        """Every step of every appointment, to the last one planned; the daily runs fire on the way."""
        while any(not key.startswith(DAILY_RUN) for key in self._queued):
            self.play_until(self._wake_ups[0][0])

    def daily_run(self, zone: str) -> None:
        """The zone's MembershipDrafts run: each due membership's step, then each due course's; the next at the
        same local time tomorrow."""
        for membership_id in self.memberships.due(zone, self.now):
            self.memberships.take_due_step(membership_id, self.now)
        for course_id in self.courses.due(zone, self.now):
            self.courses.take_due_step(course_id, self.now)
        self.wake(DAILY_RUN + zone, _next_daily_run(zone, self.now))


def _next_daily_run(zone: str, after: datetime) -> datetime:
    """The first 09:00 in ``zone`` strictly after ``after``, DST-correct: the schedule's next fire."""
    tz = ZoneInfo(zone)
    today = local_day(after, tz)
    for day in (today, today + timedelta(days=1)):
        at = datetime.combine(day, local_time(DAILY_RUN_AT), tz).astimezone(UTC)
        if at > after:
            return at
    raise AssertionError("09:00 tomorrow is always after now")


def card_behaviour(card: str) -> CardBehaviour:
    """What a fake Stripe test card (``infra/fakestripe/cards.py``) does to an off-session charge."""
    from fakestripe.cards import BY_PM_TOKEN, EXPIRED_CARD

    test_card = BY_PM_TOKEN[f"pm_card_{card.removeprefix('pm_card_')}"]
    if test_card.decline is EXPIRED_CARD:
        return "expired"
    if test_card.decline is not None:
        return "declines"
    if getattr(test_card, "auth", None) == "always":
        return "needs_authentication"
    return "pays"


def _save_card(payments: InMemoryPayments, payment_method_id: str, card: str) -> None:
    """The test card behind a placeholder payment method: how it answers a charge, and a card check."""
    from fakestripe.cards import BY_PM_TOKEN

    payments.cards[payment_method_id] = card_behaviour(card)
    test_card = BY_PM_TOKEN[f"pm_card_{card.removeprefix('pm_card_')}"]
    if test_card.decline is not None and test_card.decline_on_attach:  # fakestripe's _setup_decline
        payments.declined_when_checked.add(payment_method_id)


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _without_cyclic_gc(run: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run with the cycle collector paused, as it was before afterwards.

    A backtest only grows its heap (the scenario, the store, what was sent) and makes next to no cycles (none
    are found in a generated run of 5,000 visits), but each full collection walks the whole heap again: a fifth
    of such a run's time, measured (two fifths before the store kept its reads). Reference counting still frees
    everything else as it goes, and any cycle made is collected once the run is over."""
    @functools.wraps(run)
    def paused(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        if not gc.isenabled():
            return run(*args, **kwargs)
        gc.disable()
        try:
            return run(*args, **kwargs)
        finally:
            gc.enable()
    return paused


@_without_cyclic_gc
def run_backtest(source: Path | str | Mapping[str, Any], report: Path | str | None = None,
                 packs: PolicyPacks | None = None) -> dict[str, Any]:
    """Play one scenario through the in-process engine (under ``packs``, the bundled ones by default); write the
    JSON report to ``report`` if given; return it."""
    began = time.perf_counter()
    scenario = load_scenario(source)
    ids = StripeIds.placeholders(scenario)
    inputs = prepare_inputs(scenario, ids)
    spa = InProcessSpa(scenario.start, packs)
    for client in scenario.clients:
        if client.card:
            _save_card(spa.payments, ids.cards[client.key] or "", client.card)
    for entry in scenario.entries:
        if entry.get("card"):
            _save_card(spa.payments, ids.new_cards[entry["index"]], entry["card"])
    lines = [_play(spa, scenario, item) for item in inputs]
    if scenario.until is not None:
        spa.play_until(scenario.until)
    else:
        spa.play_until_idle()
    result = _report(spa, scenario, ids, lines)
    result["real_seconds"] = round(time.perf_counter() - began, 3)
    result = {key: result[key] for key in BACKTEST_KEYS if key in result}
    if report is not None:
        Path(report).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return result


def what_if(packs: PolicyPacks, pack: PolicyPack) -> PolicyPacks:
    """``packs`` with ``pack`` as its location's only version: every visit there is judged by it, whatever version
    its booking names, as if its clients had accepted it. That is the question a what-if asks; the other
    locations keep their history."""
    if pack.location_id not in packs:
        raise PolicyPackError(f"location.id: {pack.location_id!r} is not a location of the bundled packs "
                              f"({', '.join(sorted(packs))})")
    history = [packs.accepted(location, version) for location in packs if location != pack.location_id
               for version in packs.versions(location) if version != packs[location].policy_version]
    return PolicyPacks({**packs, pack.location_id: pack}, history)


def compare_packs(source: Path | str | Mapping[str, Any], pack_files: Sequence[Path | str],
                  report: Path | str | None = None) -> dict[str, Any]:
    """The scenario played once per policy, side by side: under the bundled packs and one pack file, or under
    each of two or more pack files. Each pack replaces its own location's pack (:func:`what_if`); the rest stay
    as bundled. Returns (and writes to ``report``) each variant's label, the pack it put in place and its
    summary: the figures the simulator's report has per location."""
    bundled = load_packs()
    variants: list[tuple[str, PolicyPacks, str | None]] = [] if len(pack_files) > 1 else [("bundled", bundled, None)]
    for file in pack_files:
        pack = load_pack(file)
        variants.append((Path(file).stem, what_if(bundled, pack), f"{pack.location_id}@{pack.policy_version}"))
    played = [(label, placed, run_backtest(source, packs=packs)) for label, packs, placed in variants]
    result = {"format": COMPARISON_FORMAT, "engine": "backtest",
              "scenario": played[0][2]["scenario"],
              "variants": [{"label": label, "pack": placed, "summary": run["summary"],
                            "real_seconds": run["real_seconds"]} for label, placed, run in played]}
    if report is not None:
        Path(report).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return result


def _play(spa: InProcessSpa, scenario: Scenario, item: Input) -> dict[str, Any]:
    """Bring the clock to the input's time (taking every step due before it), then deliver it."""
    spa.play_until(item.at)
    line: dict[str, Any] = {"index": item.index, "at": iso(item.at), "kind": item.kind}
    if item.kind == "inbound_sms":
        sms = item.sms or {}
        spa.text_in({"originationNumber": sms["from"], "destinationNumber": sms.get("to") or DEFAULT_SMS_DESTINATION,
                     "messageKeyword": "KEYWORD", "messageBody": sms["body"],
                     "inboundMessageId": str(uuid.uuid5(uuid.NAMESPACE_URL,
                                                        f"medspa-simulate/{scenario.name}/{item.index}"))},
                    delivery_id=f"{scenario.name}-{item.index}")
        return line | {"outcome": "delivered"}
    envelope = item.envelope or {}
    line |= {"detail_type": envelope.get("detail-type"), "appointment_id": item.detail.get("appointment_id")}
    try:
        event = item.event if item.event is not None else parse_booking_event(envelope)  # as prepare_inputs parsed it
        outcome = spa.deliver(event, source=envelope.get("source", "booking-site"))
    except Exception as error:  # the intake's refusals: the simulator's DLQ, named by class only
        return line | {"outcome": "quarantined", "reason": type(error).__name__}
    return line | {"outcome": "held" if outcome.action.startswith("held") else "applied"}


def _report(spa: InProcessSpa, scenario: Scenario, ids: StripeIds, inputs: list[dict[str, Any]]) -> dict[str, Any]:
    store = spa.store
    stored = [a for a in map(store.appointments.get, sorted(store.appointments.items)) if a is not None]
    clients = [c for c in map(store.clients.get, sorted(store.clients.items)) if c is not None]
    appointments = sorted((appointment_line(a, spa.packs, []) for a in stored),
                          key=lambda a: (a["starts_at"], a["spa_id"], a["appointment_id"]))
    cards = {c.key: c.card for c in scenario.clients}
    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "engine": "backtest",
        "scenario": {"name": scenario.name, "description": scenario.description, "file": scenario.file},
        "started_at": iso(scenario.start),
        "ended_at": iso(spa.now),
        "inputs": inputs,
        "messages": messages_from(stored, spa.messenger.sent, clients),
        **ledger_and_memberships(store.ledger.entries.values(), map(store.memberships.read, store.memberships.items),
                                 spa.packs, []),
        "appointments": appointments,
        "clients": [client_line(c, cards, ids, store.consent) for c in clients],
        "events_to_booking_site": [{"detail_type": kind, "detail": detail} for kind, _, detail in spa.site.received],
        "quarantined": [],
    }
    report["summary"] = summarize(report)
    return report
