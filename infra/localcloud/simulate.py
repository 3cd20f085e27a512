"""``medspa simulate``: play a scenario of booking-site events against the deployed system, report what it did.

A scenario (format: ``docs/simulate.md``) is a start time, the spa's clients with their test cards, and
booking-site events in the catalogue's own format, each at a virtual time. :func:`run_scenario` opens a
local cloud at the start, deploys ``template.yaml``, creates every client's Stripe customer and card in
the fake Stripe, delivers each event through the real path (EventBridge ``PutEvents`` on the booking bus,
or the inbound SMS topic) when the virtual clock reaches it, runs on until the scenario's ``until`` (or
until nothing is left to do), and returns the report: every message sent, every ledger entry, each
appointment's final state and lifecycle executions, each client's strikes, flags and balances, the events
sent back to the booking site, the quarantined inputs, what became of each input, and a summary per
location with where its fees went.

Decisions:

* The whole scenario is checked before anything is deployed, as the intake will check it (catalogue,
  the spa's authorised sources and locations, the clients and appointments an event names, rising
  booking versions): the scenario is the spa owner's own file, and a problem found after the deploy
  and a month of virtual time, or as a traceback, does not tell them which line to fix. The error is
  one line naming the entry and the field (:class:`ScenarioError`).
* The report accounts for every input from what the run left behind: the quarantine and the intake
  queue hold each event's EventBridge id, so an input is quarantined, still pending, held or applied
  by evidence, not by what the runner expected (``inputs[].outcome``).
* Money in the summary is derived from the report's own ledger lines (:func:`money_summary`), so the
  summary, the HTML page and the ledger cannot disagree.
* The runner is harness, not product: the rule and queue that capture the system's events to the booking
  site are created at run time, never in ``template.yaml``.
* Stripe ids are not known when a scenario is written (the fake generates them), so the scenario names a
  test card per client and the runner fills ``stripe_customer_id``/``stripe_payment_method_id`` into that
  client's events. Stripe's declining test cards already fail when attached; for them the test token
  itself stands for "a card that was good when saved and declines now" (``fakestripe.save_test_card``).
* What happens during the run is recorded as it happens, by idle hooks of the virtual clock:
  :class:`SentMessageTap` stamps each SMS and email moto records with the virtual instant it appeared, and
  :class:`QueueRecorder` reads the outbox and the intake DLQ before SQS retention (which the virtual
  clock enforces) could drop anything. The appointments' message log adds each message's kind and
  appointment; a message no log names is still listed, with ``kind`` null.
* Every time in the report is UTC ISO-8601 with ``Z``; local times carry their offset.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import stripe

from fakestripe import save_test_card
from localcloud.cloud import REPO_ROOT, LocalCloud
from medspa.adapters.store import Store, TableNames
from medspa.domain.keys import spa_of, split_key
from medspa.events import (
    DETAIL_MODELS,
    DETAIL_TYPES,
    AppointmentBooked,
    BookingEvent,
    ClientErasureRequested,
    FeeWaived,
    InvalidBookingEvent,
    parse_booking_event,
)
from medspa.policy.loader import PolicyPacks, load_packs
from medspa.policy.tenants import Tenant, load_tenants

SCENARIOS_DIR = REPO_ROOT / "samples" / "scenarios"
REPORT_FORMAT = "medspa.simulate.report/1"
LIFECYCLE = "AppointmentLifecycleStateMachine"
DEFAULT_SMS_DESTINATION = "+10000000000"
OUTBOX_RULE = "medspa-simulate-to-booking-site"


class ScenarioError(ValueError):
    """The scenario cannot be played as written. One line that names the entry and the field
    (``events[3].detail.location_id: ...``), so the owner can fix the file without reading a traceback."""


# ====================================================================== the scenario


@dataclass(frozen=True)
class ScenarioClient:
    spa_id: str
    id: str
    card: str | None
    contact: Mapping[str, Any]

    @property
    def key(self) -> str:
        return f"{self.spa_id}#{self.id}"


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    start: datetime
    until: datetime | None
    clients: tuple[ScenarioClient, ...]
    entries: tuple[Mapping[str, Any], ...]
    file: str | None = None


_CONTACT_KEYS = ("phone", "email", "sms_opt_in", "email_opt_in")
_TOP_KEYS = ("name", "description", "start", "until", "clients", "events")
_CLIENT_KEYS = ("spa_id", "id", "card", *_CONTACT_KEYS)
_EVENT_KEYS = ("at", "detail_type", "detail", "source", "card", "expect_rejected")
_SMS_KEYS = ("from", "to", "body")
_EXAMPLE_TIME = "an ISO-8601 time with an offset, e.g. 2026-03-05T15:00:00Z"


def _shown(value: Any) -> str:
    """A value of the owner's own file, quoted in an error: short, and on one line."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _time(value: Any, where: str) -> datetime:
    if value is None:
        raise ScenarioError(f"{where}: required, {_EXAMPLE_TIME}")
    if not isinstance(value, str):
        raise ScenarioError(f"{where}: {_shown(value)} is not a string; expected {_EXAMPLE_TIME}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ScenarioError(f"{where}: {_shown(value)} is not {_EXAMPLE_TIME}") from None
    if moment.tzinfo is None:
        raise ScenarioError(f"{where}: {_shown(value)} has no offset (use Z or +hh:mm)")
    return moment.astimezone(UTC)


def _unknown_keys(where: str, given: Mapping[str, Any], allowed: Iterable[str]) -> None:
    extra = sorted(str(k) for k in set(given) - set(allowed))
    if extra:
        keys = f"key{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))}; allowed: {', '.join(allowed)}"
        raise ScenarioError(f"{where}: unknown {keys}" if where else f"unknown top-level {keys}")


def _read(source: Path | str) -> Any:
    try:
        text = Path(source).read_text(encoding="utf-8")
    except OSError as error:
        raise ScenarioError(f"cannot read the file: {error.strerror or type(error).__name__}") from None
    except UnicodeDecodeError:
        raise ScenarioError("not JSON: the file is not UTF-8 text") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ScenarioError(f"not JSON: {error.msg} at line {error.lineno}, column {error.colno}") from None


def load_scenario(source: Path | str | Mapping[str, Any]) -> Scenario:
    """A scenario from a file or an already-parsed dict, checked for shape; raises :class:`ScenarioError`.

    The events themselves (catalogue, tenancy, references) are checked by :func:`prepare_inputs`;
    :func:`validate_scenario` does both, as :func:`run_scenario` does before it deploys anything.
    """
    file = None
    if isinstance(source, (str, Path)):
        file = Path(source).name
        spec = _read(source)
    else:
        spec = source
    if not isinstance(spec, Mapping):
        raise ScenarioError(f"a scenario is a JSON object {{start, events, ...}}, not {_json_type(spec)}")
    _unknown_keys("", spec, _TOP_KEYS)
    for key in ("name", "description"):
        if spec.get(key) is not None and not isinstance(spec[key], str):
            raise ScenarioError(f"{key}: must be a string")
    start = _time(spec.get("start"), "start")
    until = _time(spec["until"], "until") if spec.get("until") is not None else None
    if not isinstance(spec.get("events"), list):
        raise ScenarioError("events: required, a list of entries" if "events" not in spec
                            else f"events: must be a list of entries, not {_json_type(spec['events'])}")
    clients = _clients(spec.get("clients") or [])
    entries = [_entry(entry, f"events[{i}]", i) for i, entry in enumerate(spec["events"])]
    listed = {c.key for c in clients}
    for e in entries:
        if e.get("card") is not None and f"{e['detail'].get('spa_id')}#{e['detail'].get('client_id')}" not in listed:
            raise ScenarioError(f"events[{e['index']}].card: client {_shown(e['detail'].get('client_id'))} of "
                                f"{e['detail'].get('spa_id')} is not in the clients section, so the runner "
                                "has no Stripe customer to save the card on")
    entries.sort(key=lambda e: (e["at_utc"], e["index"]))  # stable: same-instant entries keep file order
    early = min((e for e in entries if e["at_utc"] < start), key=lambda e: e["index"], default=None)
    if early is not None:
        raise ScenarioError(f"events[{early['index']}].at: before the scenario's start")
    if until is not None and entries and until < entries[-1]["at_utc"]:
        raise ScenarioError(f"until: before events[{entries[-1]['index']}].at, the last entry")
    return Scenario(name=spec.get("name") or (Path(file).stem if file else "scenario"),
                    description=spec.get("description") or "", start=start, until=until, clients=tuple(clients),
                    entries=tuple(entries), file=file)


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), "a value")


def _clients(items: Any) -> list[ScenarioClient]:
    if not isinstance(items, list):
        raise ScenarioError(f"clients: must be a list of clients, not {_json_type(items)}")
    tenants = _tenants()
    clients = []
    for i, item in enumerate(items):
        where = f"clients[{i}]"
        if not isinstance(item, Mapping):
            raise ScenarioError(f"{where}: a client is a JSON object {{spa_id, id, card?, phone?, ...}}")
        _unknown_keys(where, item, _CLIENT_KEYS)
        for key in ("spa_id", "id"):
            if not isinstance(item.get(key), str) or not item[key]:
                raise ScenarioError(f"{where}.{key}: required, a non-empty string")
        if item["spa_id"] not in tenants:
            raise ScenarioError(f"{where}.spa_id: {_shown(item['spa_id'])} is not a spa served here "
                                f"(spas: {', '.join(sorted(tenants))})")
        card = item.get("card")
        if card is not None and (not isinstance(card, str) or not _known_card(card)):
            raise ScenarioError(f"{where}.card: {_shown(card)} is not a fake Stripe test card (e.g. visa, mastercard, "
                                "visa_chargeDeclined; infra/fakestripe/cards.py)")
        clients.append(ScenarioClient(item["spa_id"], item["id"], card,
                                      {k: item[k] for k in _CONTACT_KEYS if k in item}))
        if len({c.key for c in clients}) != len(clients):
            raise ScenarioError(f"{where}: {item['spa_id']}#{item['id']} is already listed (spa_id + id twice)")
    return clients


def _entry(entry: Any, where: str, index: int) -> dict[str, Any]:
    """The shape of one entry; what its detail says is checked by :func:`prepare_inputs`."""
    if not isinstance(entry, Mapping):
        raise ScenarioError(f"{where}: an entry is a JSON object {{at, detail_type, detail}} or {{at, inbound_sms}}")
    at = _time(entry.get("at"), f"{where}.at")
    if "inbound_sms" in entry:
        _unknown_keys(where, entry, ("at", "inbound_sms"))
        sms = entry["inbound_sms"]
        if not isinstance(sms, Mapping):
            raise ScenarioError(f"{where}.inbound_sms: a JSON object {{from, to?, body}}")
        _unknown_keys(f"{where}.inbound_sms", sms, _SMS_KEYS)
        for key in ("from", "body"):
            if not isinstance(sms.get(key), str):
                raise ScenarioError(f"{where}.inbound_sms.{key}: required, a string")
        if sms.get("to") is not None and not isinstance(sms["to"], str):
            raise ScenarioError(f"{where}.inbound_sms.to: must be a string")
        return {**entry, "index": index, "at_utc": at}
    _unknown_keys(where, entry, _EVENT_KEYS)
    rejected = entry.get("expect_rejected", False)
    if not isinstance(rejected, bool):
        raise ScenarioError(f"{where}.expect_rejected: must be true or false")
    kind = entry.get("detail_type")
    if not isinstance(kind, str):
        sms = "; or inbound_sms for an SMS reply" if kind is None else ""
        raise ScenarioError(f"{where}.detail_type: required, a detail-type of the catalogue "
                            f"({', '.join(DETAIL_TYPES)}){sms}")
    if kind not in DETAIL_MODELS and not rejected:
        raise ScenarioError(f"{where}.detail_type: {_shown(kind)} is not a detail-type of the catalogue "
                            f"({', '.join(DETAIL_TYPES)})")
    if not isinstance(entry.get("detail"), Mapping):
        raise ScenarioError(f"{where}.detail: required, a JSON object (the detail as the catalogue defines it)")
    source = entry.get("source", "booking-site")
    if not isinstance(source, str) or not source.startswith("booking-site"):
        raise ScenarioError(f"{where}.source: {_shown(source)} does not start with booking-site, so the bus would "
                            "not route it to the intake at all")
    card = entry.get("card")
    if card is not None and kind != "CardUpdated":
        raise ScenarioError(f"{where}.card: only a CardUpdated event names a new card")
    if card is not None and (not isinstance(card, str) or not _known_card(card)):
        raise ScenarioError(f"{where}.card: {_shown(card)} is not a fake Stripe test card")
    return {**entry, "index": index, "at_utc": at}


def _known_card(card: str) -> bool:
    """``visa`` or ``pm_card_visa``: a test card the fake Stripe knows."""
    from fakestripe.cards import BY_PM_TOKEN

    return f"pm_card_{card.removeprefix('pm_card_')}" in BY_PM_TOKEN


def _tenants() -> Mapping[str, Tenant]:
    """The spas this deployment serves, as the intake reads them (``medspa.policy.tenants``)."""
    return load_tenants(load_packs())


# ====================================================================== inputs, filled and validated


@dataclass(frozen=True)
class StripeIds:
    """What the runner created in (fake) Stripe: a customer per client, their card, and each new card."""

    customers: Mapping[str, str]  # client key -> cus_...
    cards: Mapping[str, str | None]  # client key -> pm_... of the card they booked with (None: no card)
    new_cards: Mapping[int, str] = field(default_factory=dict)  # CardUpdated entry index -> pm_...

    @classmethod
    def placeholders(cls, scenario: Scenario) -> StripeIds:
        """Well-formed stand-ins, to validate a scenario without a Stripe."""
        return cls(
            customers={c.key: f"cus_scenario{n}" for n, c in enumerate(scenario.clients)},
            cards={c.key: f"pm_scenario{n}" if c.card else None for n, c in enumerate(scenario.clients)},
            new_cards={e["index"]: f"pm_scenarionew{e['index']}" for e in scenario.entries if e.get("card")},
        )


@dataclass(frozen=True)
class Input:
    """One scenario entry as the runner will deliver it."""

    index: int
    at: datetime
    kind: str  # "event" | "inbound_sms"
    envelope: Mapping[str, Any] | None = None  # {"source", "detail-type", "detail"}
    sms: Mapping[str, Any] | None = None
    expect_rejected: bool = False
    appointment_id: str | None = None  # an inbound SMS: the sender's next visit, for the timeline only

    @property
    def detail(self) -> Mapping[str, Any]:
        return (self.envelope or {}).get("detail") or {}


def prepare_inputs(scenario: Scenario, ids: StripeIds) -> list[Input]:
    """Fill what a scenario may leave out, then check every event as the deployed system will.

    Filled when absent: ``occurred_at`` (the entry's ``at``), ``event_id`` (``<scenario>-<index>``), the
    client's contact details in an AppointmentBooked ``client`` (from the ``clients`` section), and the
    client's Stripe ids in an AppointmentBooked ``payment`` whose ``card_on_file`` is true and in a
    CardUpdated. Then each event must pass what the intake checks (the catalogue, the spa's sources and
    locations), name only clients and appointments booked before it, and raise its appointment's
    ``booking_version``: otherwise the run would quarantine it, hold it or fail later, far from the
    line of the file that caused it. An event marked ``expect_rejected`` must fail one of the intake's
    checks instead, and is delivered as written.

    Every problem is collected; the error names the first in file order and counts the rest.
    """
    clients = {c.key: c for c in scenario.clients}
    tenants = _tenants()
    visits = _Visits()
    known = _Known()
    problems: list[tuple[int, str]] = []
    inputs = []
    for entry in scenario.entries:
        index, at = entry["index"], entry["at_utc"]
        if "inbound_sms" in entry:
            sms = entry["inbound_sms"]
            inputs.append(Input(index, at, "inbound_sms", sms=sms, appointment_id=visits.next_for(sms["from"], at)))
            continue
        where = f"events[{index}]"
        detail = json.loads(json.dumps(entry["detail"]))
        envelope = {"source": entry.get("source", "booking-site"), "detail-type": entry["detail_type"],
                    "detail": detail}
        rejected = bool(entry.get("expect_rejected"))
        if not rejected:
            detail.setdefault("occurred_at", entry["at"])
            detail.setdefault("event_id", f"{scenario.name}-{index}")
            problem = _spa_problem(detail, tenants) or _stripe_problem(entry, detail, clients, ids)
            if problem is not None:
                problems.append((index, f"{where}.{problem}"))
                continue
            _fill_client(entry, detail, clients, ids)
        refusals: list[str] = []  # each "<field path>: <why>", as the intake would say it
        try:
            event = parse_booking_event(envelope)
        except InvalidBookingEvent as error:
            refusals.append(error.reason)
        else:
            refusals += _tenancy_refusals(event, envelope["source"], tenants) + known.refusals(event)
        if rejected:
            if not refusals:
                problems.append((index, f"{where}.expect_rejected: true, but the intake would accept this event (it "
                                        "passes the catalogue, the spa's sources and locations, and its references)"))
            inputs.append(Input(index, at, "event", envelope=envelope, expect_rejected=True))
            continue
        if refusals:
            problems.append((index, _at(where, refusals[0])))
            continue
        version = known.version_problem(event)
        if version is not None:
            problems.append((index, f"{where}.detail.booking_version: {version}"))
        known.track(event, index)
        visits.track(entry["detail_type"], detail)
        inputs.append(Input(index, at, "event", envelope=envelope))
    if problems:
        problems.sort()
        more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
        raise ScenarioError(" ".join(problems[0][1].split()) + more)
    return inputs


def _at(where: str, refusal: str) -> str:
    """``events[3]`` + ``detail.location_id: ...`` -> ``events[3].detail.location_id: ...``."""
    return f"{where} {refusal}" if refusal.startswith("(") else f"{where}.{refusal}"


def _spa_problem(detail: Mapping[str, Any], tenants: Mapping[str, Tenant]) -> str | None:
    """Said first: a spa this deployment does not serve makes every other check of the event moot."""
    spa = detail.get("spa_id")
    if isinstance(spa, str) and spa not in tenants:
        return f"detail.spa_id: {_shown(spa)} is not a spa served here (spas: {', '.join(sorted(tenants))})"
    return None


def _tenancy_refusals(event: BookingEvent, source: str, tenants: Mapping[str, Tenant]) -> list[str]:
    """What the intake refuses for tenancy (``IngestService._authorise``), said for the scenario's author."""
    tenant = tenants.get(event.spa_id)
    if tenant is None:
        return [_spa_problem({"spa_id": event.spa_id}, tenants) or "detail.spa_id: not a spa served here"]
    refusals = []
    if not tenant.may_speak(source):
        refusals.append(f"source: {_shown(source)} is not authorised to speak for {event.spa_id} "
                        f"(its sources: {', '.join(tenant.event_sources)})")
    if isinstance(event, AppointmentBooked) and event.location_id not in tenant.locations:
        owner = next((t.spa_id for t in tenants.values() if event.location_id in t.locations), None)
        refusals.append(f"detail.location_id: {_shown(event.location_id)} is "
                        + (f"a location of {owner}, not of {event.spa_id}" if owner else
                           f"not a location of {event.spa_id}")
                        + f" (its locations: {', '.join(sorted(tenant.locations))})")
    return refusals


class _Known:
    """What the scenario has booked (and erased) so far, in delivery order, as the intake will see it: an
    admin event naming a client or appointment not booked yet is retried, then quarantined; an event
    naming an erased client is quarantined; and a booking version that does not rise is stale to the fold
    (or a conflict, at the same version), so the run would not show it."""

    def __init__(self) -> None:
        self._clients: set[tuple[str, str]] = set()
        self._erased: set[tuple[str, str]] = set()
        self._appointments: dict[tuple[str, str], str] = {}  # appointment -> its client's booking-site id
        self._versions: dict[tuple[str, str], tuple[int, int]] = {}  # appointment -> (version, entry index)

    def refusals(self, event: BookingEvent) -> list[str]:
        spa = event.spa_id
        client_id, field = getattr(event, "client_id", None), "detail.client_id"
        if isinstance(event, AppointmentBooked):
            client_id, field = event.client.id, "detail.client.id"
        elif client_id is None and getattr(event, "appointment_id", None) is not None:
            client_id, field = self._appointments.get((spa, event.appointment_id)), "detail.appointment_id"
        if (spa, client_id) in self._erased and not isinstance(event, ClientErasureRequested):
            return [f"{field}: names client {_shown(client_id)} of {spa}, erased by an earlier entry, so the "
                    "intake would refuse it"]
        if isinstance(event, FeeWaived) and (spa, event.appointment_id) not in self._appointments:
            return [f"detail.appointment_id: {_shown(event.appointment_id)} is not booked by an earlier entry, "
                    "so the intake would quarantine this waiver"]
        named = getattr(event, "client_id", None)
        if named is not None and (spa, named) not in self._clients:
            return [f"detail.client_id: {_shown(named)} has no booking at {spa} before this entry, "
                    "so the intake would not know the client and would quarantine the event"]
        return []

    def version_problem(self, event: BookingEvent) -> str | None:
        version = getattr(event, "booking_version", None)
        if version is None:
            return None
        before = self._versions.get((event.spa_id, event.appointment_id))
        if before is not None and version <= before[0]:
            return (f"{version} does not increase on events[{before[1]}] (version {before[0]}) of appointment "
                    f"{event.appointment_id}")
        return None

    def track(self, event: BookingEvent, index: int) -> None:
        if isinstance(event, AppointmentBooked):
            self._clients.add((event.spa_id, event.client.id))
            self._appointments[(event.spa_id, event.appointment_id)] = event.client.id
        if isinstance(event, ClientErasureRequested):
            self._erased.add((event.spa_id, event.client_id))
        version = getattr(event, "booking_version", None)
        if version is not None:
            self._versions[(event.spa_id, event.appointment_id)] = (version, index)


def _stripe_problem(entry: Mapping[str, Any], detail: Mapping[str, Any], clients: Mapping[str, ScenarioClient],
                    ids: StripeIds) -> str | None:
    """A card the runner is asked to fill in but cannot: the client, or their card, is not in ``clients``."""
    spa = detail.get("spa_id")
    if entry["detail_type"] == "AppointmentBooked":
        client = detail.get("client") if isinstance(detail.get("client"), Mapping) else {}
        payment = detail.get("payment") if isinstance(detail.get("payment"), Mapping) else {}
        if payment.get("card_on_file") is True and "stripe_payment_method_id" not in payment:
            key = f"{spa}#{client.get('id')}"
            if key not in clients:
                return (f"detail.payment.card_on_file: true, but client {_shown(client.get('id'))} of {spa} is not in "
                        "the clients section, so the runner has no card to fill in")
            if not ids.cards.get(key):
                return (f"detail.payment.card_on_file: true, but client {_shown(client.get('id'))} of {spa} has no "
                        "card in the clients section")
    elif entry["detail_type"] == "CardUpdated":
        key = f"{spa}#{detail.get('client_id')}"
        if "stripe_customer_id" not in detail and key not in clients:
            return (f"detail.client_id: {_shown(detail.get('client_id'))} of {spa} is not in the clients section, "
                    "so the runner has no Stripe customer to fill in")
        if ("stripe_payment_method_id" not in detail and not entry.get("card") and key in clients
                and not ids.cards.get(key)):
            return "card: required here (a test card name): the client has no card in the clients section either"
    return None


class _Visits:
    """Which appointment an inbound SMS most likely answers: the sender's next visit, as booked so far."""

    def __init__(self) -> None:
        self._phone_client: dict[str, str] = {}
        self._visits: dict[str, tuple[str, datetime]] = {}  # appointment -> (client key, starts_at)

    def track(self, detail_type: str, detail: Mapping[str, Any]) -> None:
        appointment = f"{detail.get('spa_id')}#{detail.get('appointment_id')}"
        if detail_type == "AppointmentBooked":
            key = f"{detail['spa_id']}#{detail['client']['id']}"
            if detail["client"].get("phone"):
                self._phone_client[detail["client"]["phone"]] = key
            self._visits[appointment] = (key, _time(detail["starts_at"], "starts_at"))
        elif detail_type == "AppointmentRescheduled" and appointment in self._visits:
            self._visits[appointment] = (self._visits[appointment][0], _time(detail["starts_at"], "starts_at"))
        elif detail_type == "AppointmentCancelled":
            self._visits.pop(appointment, None)

    def next_for(self, phone: str, at: datetime) -> str | None:
        client = self._phone_client.get(phone)
        upcoming = sorted((start, a) for a, (key, start) in self._visits.items() if key == client and start > at)
        return split_key(upcoming[0][1])[1] if upcoming else None


def _fill_client(entry: Mapping[str, Any], detail: dict[str, Any], clients: Mapping[str, ScenarioClient],
                 ids: StripeIds) -> None:
    spa = detail.get("spa_id")
    if entry["detail_type"] == "AppointmentBooked" and isinstance(detail.get("client"), dict):
        client = clients.get(f"{spa}#{detail['client'].get('id')}")
        if client is None:
            return
        for key, value in client.contact.items():
            detail["client"].setdefault(key, value)
        payment = detail.setdefault("payment", {})
        if payment.get("card_on_file") and ids.cards.get(client.key):
            payment.setdefault("stripe_customer_id", ids.customers[client.key])
            payment.setdefault("stripe_payment_method_id", ids.cards[client.key])
    elif entry["detail_type"] == "CardUpdated":
        key = f"{spa}#{detail.get('client_id')}"
        if key in ids.customers:
            detail.setdefault("stripe_customer_id", ids.customers[key])
            card = ids.new_cards.get(entry["index"]) or ids.cards.get(key)
            if card:
                detail.setdefault("stripe_payment_method_id", card)


def validate_scenario(source: Path | str | Mapping[str, Any]) -> list[Input]:
    """Parse the scenario and validate every event, with placeholder Stripe ids; raises ScenarioError."""
    scenario = load_scenario(source)
    return prepare_inputs(scenario, StripeIds.placeholders(scenario))


# ====================================================================== Stripe set-up


def create_stripe_ids(client: stripe.StripeClient, scenario: Scenario,
                      pause: Callable[[], None] | None = None) -> StripeIds:
    """A customer per scenario client, with their card; a fresh card for each CardUpdated that names one.

    All at the scenario's start instant, so Stripe's rate limit (which refills with the virtual clock) may
    refuse a large cast: ``pause`` then lets a virtual second pass and the request is made again.
    """
    def call(request: Callable[[], Any]) -> Any:
        for _ in range(60):
            try:
                return request()
            except stripe.RateLimitError:
                if pause is None:
                    raise
                pause()
        return request()

    customers, cards, new_cards = {}, {}, {}
    for c in scenario.clients:
        customers[c.key] = call(lambda: client.v1.customers.create()).id
        cards[c.key] = save_test_card(client, customers[c.key], c.card, call) if c.card else None
    for entry in scenario.entries:
        if entry.get("card"):
            key = f"{entry['detail'].get('spa_id')}#{entry['detail'].get('client_id')}"
            if key not in customers:
                raise ScenarioError(f"events[{entry['index']}]: client {key} is not in the clients section")
            new_cards[entry["index"]] = save_test_card(client, customers[key], entry["card"], call)
    return StripeIds(customers, cards, new_cards)


# ====================================================================== capture: messages, outbound events


class SentMessageTap:
    """An idle hook of the clock: stamps each SMS and email moto records with the virtual time it appeared.

    moto keeps no send time. The clock polls idle hooks whenever every execution is blocked and before
    time moves, so whatever appeared since the last poll was sent at the current virtual instant.
    """

    def __init__(self, region: str) -> None:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.ses.models import ses_backends
        from moto.sns.models import sns_backends

        self._sns = sns_backends[DEFAULT_ACCOUNT_ID][region]
        self._ses = ses_backends[DEFAULT_ACCOUNT_ID][region]
        self._seen_sms = len(self._sns.sms_messages)
        self._seen_email = len(self._ses.sent_messages)
        self.sent: list[dict[str, Any]] = []

    def poll(self, now: datetime) -> bool:
        sms = list(self._sns.sms_messages.items())
        for message_id, (phone, text) in sms[self._seen_sms:]:
            self.sent.append({"at": now, "channel": "sms", "message_id": message_id, "to": phone,
                              "subject": None, "text": text})
        emails = self._ses.sent_messages
        for message in emails[self._seen_email:]:
            to = (getattr(message, "destinations", None) or {})
            to = to.get("ToAddresses", [None])[0] if isinstance(to, dict) else (to or [None])[0]
            subject, text = getattr(message, "subject", None), getattr(message, "body", None)
            raw = getattr(message, "raw_data", None)
            if raw is not None:  # the system sends MIME (List-Unsubscribe headers): read it as a mail client would
                mime = email.message_from_string(raw, policy=email.policy.default)
                part = mime.get_body(("plain",))
                to, subject, text = mime["To"] or to, mime["Subject"], part.get_content() if part else raw
            self.sent.append({"at": now, "channel": "email", "message_id": message.id, "to": to,
                              "subject": subject, "text": text})
        self._seen_sms, self._seen_email = len(sms), len(emails)
        return False

    def next_due(self, now: datetime) -> datetime | None:
        return None


class QueueRecorder:
    """An idle hook of the clock: records each message of an SQS queue soon after it arrives.

    Read at the end only, a long scenario would lose messages: SQS drops a message after its retention
    period (4 days by default, 14 at most), and the virtual clock makes that happen. ``consume`` deletes
    what it read (a queue of the runner's own). Otherwise (the intake DLQ, which is the system's) what it
    read is hidden for :data:`WATCH_HIDDEN_FOR`, the longest SQS allows, and never deleted: so a read
    receives only the messages not read yet, whether one arrived alone or dozens at the same instant,
    and every 12 virtual hours the old ones show again and are read once more (kept once, by MessageId),
    so only their receive count changes.

    Whether to read at all is decided by the queue's newest message and its length (:func:`_arrivals`),
    not by a count of visible messages: that count falls when a read hides messages and rises when they
    show again, so it once matched by chance and a second quarantine at the same instant went unread.
    """

    def __init__(self, sqs: Any, url: str, *, consume: bool) -> None:
        self._sqs, self.url, self._consume = sqs, url, consume
        self._read_at: tuple[int, str | None] | None = None  # _arrivals() when last read to the end
        self.messages: dict[str, dict[str, Any]] = {}  # MessageId -> message, in arrival order

    def poll(self, now: datetime) -> bool:
        arrivals = _arrivals(self._sqs, self.url)
        if arrivals == self._read_at or arrivals[0] == 0:
            return False
        read = _receive_all(self._sqs, self.url, hidden_for=None if self._consume else WATCH_HIDDEN_FOR)
        for message in read:
            self.messages.setdefault(message["MessageId"], message)
        if self._consume:
            handles = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(read)]
            for batch in (handles[i:i + 10] for i in range(0, len(handles), 10)):
                self._sqs.delete_message_batch(QueueUrl=self.url, Entries=batch)
        self._read_at = _arrivals(self._sqs, self.url)
        return False

    def next_due(self, now: datetime) -> datetime | None:
        return None


def _arrivals(sqs: Any, url: str) -> tuple[int, str | None]:
    """How many messages the queue holds, visible or not, and the newest one's id: any arrival changes it.

    Read from moto's queue: through the API every call costs moto a pass over every message for each
    attribute (25 ms at 150 messages), and the recorders are polled at every idle moment of the clock.
    """
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sqs.models import sqs_backends

    held = sqs_backends[DEFAULT_ACCOUNT_ID][sqs.meta.region_name].get_queue(url.rsplit("/", 1)[1])._messages
    return len(held), (held[-1].id if held else None)


WATCH_HIDDEN_FOR = 43200  # seconds: SQS's maximum visibility timeout (12 hours)


class BookingSiteOutbox(QueueRecorder):
    """The events the system sends back to the booking site (``source`` ``medspa...`` on the same bus),
    captured by a rule and a queue the runner creates; harness infrastructure, not in template.yaml."""

    def __init__(self, cloud: LocalCloud, bus: str) -> None:
        sqs = cloud.client("sqs")
        url = sqs.create_queue(QueueName="medspa-simulate-booking-site-outbox",
                               Attributes={"MessageRetentionPeriod": "1209600"})["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events = cloud.client("events")
        events.put_rule(Name=OUTBOX_RULE, EventBusName=bus, EventPattern=json.dumps({"source": [{"prefix": "medspa"}]}))
        events.put_targets(Rule=OUTBOX_RULE, EventBusName=bus, Targets=[{"Id": "outbox", "Arn": arn}])
        super().__init__(sqs, url, consume=True)

    def events(self) -> list[dict[str, Any]]:
        out = []
        for message in self.messages.values():
            event = json.loads(message["Body"])
            detail = event.get("detail") or {}
            out.append({"at": _iso(_parse_time(event.get("time"))), "source": event.get("source"),
                        "detail_type": event.get("detail-type"), "appointment_id": detail.get("appointment_id"),
                        "detail": detail})
        return sorted(out, key=lambda e: e["at"] or "")


def _visible(sqs: Any, url: str) -> int:
    return int(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
               ["Attributes"]["ApproximateNumberOfMessages"])


def _receive_all(sqs: Any, url: str, hidden_for: int | None = None) -> list[dict[str, Any]]:
    """Everything visible now, ten at a time (SQS's most per receive). A received message stays invisible
    for the visibility timeout, which on the virtual clock does not pass while we read, so the loop ends.

    ``hidden_for`` (seconds) hides what was read for that long, without ChangeMessageVisibility: SQS
    refuses that on a message sent more than 12 hours ago, and a quarantine may hold a message for days.
    An empty answer while messages are still visible is moto meeting a message past its retention
    period (it stops the receive there, and hides that message): reading on gets the ones behind it.
    """
    out: list[dict[str, Any]] = []
    timeout = {} if hidden_for is None else {"VisibilityTimeout": hidden_for}
    left = None
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                                    AttributeNames=["SentTimestamp"], **timeout).get("Messages", [])
        out += batch
        if batch:
            continue
        visible = _visible(sqs, url)
        if visible == 0 or visible == left:
            return out
        left = visible


# ====================================================================== the run


def run_scenario(source: Path | str | Mapping[str, Any], report: Path | str | None = None, *,
                 html: Path | str | None = None) -> dict[str, Any]:
    """Run one scenario in its own local cloud; write the JSON report to ``report`` and the owner's HTML page
    to ``html`` if given; return the report.

    The whole scenario is checked first, with placeholder Stripe ids: a typo found after the deploy and
    a month of virtual time would cost the owner the run, and a traceback would not say which line.
    """
    scenario = load_scenario(source)
    prepare_inputs(scenario, StripeIds.placeholders(scenario))
    began = time.perf_counter()
    with LocalCloud(scenario.start) as cloud:
        deployment = cloud.deploy({"LogLevel": "WARNING"})
        deployed = time.perf_counter() - began
        fake, owned = _fake_stripe(cloud)
        try:
            from fakestripe import client_for

            ids = create_stripe_ids(client_for(fake), scenario, pause=lambda: cloud.run_for(timedelta(seconds=1)))
            inputs = prepare_inputs(scenario, ids)
            recorders = Recorders(
                tap=SentMessageTap(cloud.region),
                outbox=BookingSiteOutbox(cloud, deployment.outputs["BookingEventsBusName"]),
                dlq=QueueRecorder(cloud.client("sqs"), deployment.outputs["IntakeDeadLetterQueueUrl"], consume=False)
                if deployment.outputs.get("IntakeDeadLetterQueueUrl") else None,
            )
            assert cloud.clock is not None
            for hook in recorders.hooks():
                cloud.clock.add_idle_hook(hook)
            ran_from = time.perf_counter()
            delivered = [_deliver(cloud, scenario, item) for item in _run_inputs(cloud, inputs)]
            if scenario.until is not None:
                cloud.run_until(scenario.until)
            else:
                cloud.run_until_idle()
            ran = time.perf_counter() - ran_from
            result = _collect(cloud, scenario, delivered, recorders, ids)
        finally:
            if owned:
                fake.stop()
    result.update(real_seconds=round(time.perf_counter() - began, 3), deploy_seconds=round(deployed, 3),
                  run_seconds=round(ran, 3), fake_stripe="cloud" if not owned else "runner")
    result = {key: result[key] for key in REPORT_KEYS if key in result}
    if report is not None:
        Path(report).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    if html is not None:
        from localcloud.report_html import write_html

        write_html(result, html)
    return result


REPORT_KEYS = ("format", "scenario", "started_at", "ended_at", "real_seconds", "deploy_seconds", "run_seconds",
               "fake_stripe", "inputs", "messages", "ledger", "appointments", "clients", "events_to_booking_site",
               "quarantined", "summary")


def _fake_stripe(cloud: LocalCloud) -> tuple[Any, bool]:
    """The cloud's own fake Stripe once the deployment wires one; until then one of ours, not wired to the
    functions (so fees cannot reach it), with its rate limit off because virtual time stands still."""
    fake = getattr(cloud, "stripe", None)
    if fake is not None:
        return fake, False
    from fakestripe import FakeStripe

    return FakeStripe(rate_limit_per_second=None).start(), True


def _run_inputs(cloud: LocalCloud, inputs: Iterable[Input]) -> Iterable[Input]:
    for item in inputs:
        cloud.run_until(item.at)
        yield item


def _deliver(cloud: LocalCloud, scenario: Scenario, item: Input) -> dict[str, Any]:
    """Deliver one input at the current virtual time; return its line in the report's ``inputs``."""
    line: dict[str, Any] = {"index": item.index, "at": _iso(item.at), "kind": item.kind}
    assert cloud.deployment is not None
    outputs = cloud.deployment.outputs
    if item.kind == "inbound_sms":
        sms = item.sms or {}
        line |= {"from": mask(sms["from"]), "to": sms.get("to") or DEFAULT_SMS_DESTINATION, "body": sms["body"],
                 "appointment_id": item.appointment_id}
        topic = outputs.get("InboundSmsTopicArn")
        if not topic:
            line["not_delivered"] = "no inbound SMS topic in this deployment"
            return line
        cloud.client("sns").publish(TopicArn=topic, Message=json.dumps(inbound_sms_message(scenario, item)))
        return line
    envelope, detail = item.envelope or {}, item.detail
    line |= {"source": envelope["source"], "detail_type": envelope["detail-type"], "spa_id": detail.get("spa_id"),
             "appointment_id": detail.get("appointment_id"), "event_id": detail.get("event_id"),
             "booking_version": detail.get("booking_version"),
             "facts": {k: _fact(detail[k]) for k in _FACTS if detail.get(k) is not None}}
    if item.expect_rejected:
        line["expect_rejected"] = True
    response = cloud.client("events").put_events(Entries=[{
        "Source": envelope["source"], "DetailType": envelope["detail-type"], "Detail": json.dumps(detail),
        "EventBusName": outputs["BookingEventsBusName"],
    }])
    if response["FailedEntryCount"]:
        line["not_delivered"] = response["Entries"][0].get("ErrorMessage", "PutEvents failed")
    else:
        line[_BUS_ID] = response["Entries"][0]["EventId"]  # the "id" the intake and its quarantine see
    return line


_BUS_ID = "_event_bus_id"  # kept on an input's line until the report is collected, then removed


# Detail fields shown in the report's inputs and the timeline: what happened, never who (no PII).
_FACTS = ("starts_at", "location_id", "party_size", "service", "payment", "by", "channel", "arrived_at", "marked_by",
          "client_id", "purpose", "ledger_entry_id", "admin_id")


def _fact(value: Any) -> Any:
    if isinstance(value, dict) and "name" in value and "price" in value:  # a service
        return {"name": value["name"], "category": value.get("category"),
                "duration_minutes": value.get("duration_minutes"), "price": value["price"]}
    if isinstance(value, dict):  # the payment: what was put up, not the Stripe ids
        return {k: v for k, v in value.items() if not k.startswith("stripe_")}
    return value


def inbound_sms_message(scenario: Scenario, item: Input) -> dict[str, str]:
    """The AWS End User Messaging two-way SMS payload an SNS subscriber receives."""
    sms = item.sms or {}
    return {
        "originationNumber": sms["from"],
        "destinationNumber": sms.get("to") or DEFAULT_SMS_DESTINATION,
        "messageKeyword": "KEYWORD",
        "messageBody": sms["body"],
        "inboundMessageId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"medspa-simulate/{scenario.name}/{item.index}")),
    }


# ====================================================================== the report


@dataclass
class Recorders:
    """What the run records as it goes (idle hooks of the clock), read once more at the end."""

    tap: SentMessageTap
    outbox: BookingSiteOutbox
    dlq: QueueRecorder | None

    def hooks(self) -> list[Any]:
        return [hook for hook in (self.tap, self.outbox, self.dlq) if hook is not None]


def _collect(cloud: LocalCloud, scenario: Scenario, inputs: list[dict[str, Any]], recorders: Recorders,
             ids: StripeIds) -> dict[str, Any]:
    tables = TableNames.from_env(cloud.function_environment("LifecycleFunction"))
    store = Store(tables, region=cloud.region)
    dynamodb = cloud.client("dynamodb")
    stored = [store.appointments.get(i) for i in _scan_keys(dynamodb, tables.appointments, "appointment_id")]
    stored = [a for a in stored if a is not None]
    for hook in recorders.hooks():
        hook.poll(cloud.now())
    packs = load_packs()
    executions = _executions(cloud)
    appointments = [_appointment(a, packs, executions.pop(a.appointment_id, [])) for a in stored]
    appointments.sort(key=lambda a: (a["starts_at"], a["spa_id"], a["appointment_id"]))
    ledger = [store.ledger.get(i) for i in _scan_keys(dynamodb, tables.ledger, "entry_id")]
    ledger_lines = sorted((_ledger_line(e) for e in ledger if e is not None), key=lambda e: (e["created_at"], e["entry_id"]))
    clients = [store.clients.get(i) for i in _scan_keys(dynamodb, tables.clients, "client_id")]
    cards = {c.key: c.card for c in scenario.clients}
    client_lines = [_client_line(c, cards, ids, store.consent) for c in clients if c is not None]
    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "scenario": {"name": scenario.name, "description": scenario.description, "file": scenario.file},
        "started_at": _iso(scenario.start),
        "ended_at": _iso(cloud.now()),
        "inputs": inputs,
        "messages": messages_from(stored, recorders.tap.sent),
        "ledger": ledger_lines,
        "appointments": appointments,
        "clients": client_lines,
        "events_to_booking_site": recorders.outbox.events(),
        "quarantined": _quarantined(recorders.dlq, {line[_BUS_ID]: line["index"] for line in inputs
                                                     if line.get(_BUS_ID)}),
    }
    booked = {(a["spa_id"], a["appointment_id"]) for a in appointments}
    backlog = _intake_backlog(cloud, recorders.dlq.url) if recorders.dlq else set()
    for line in inputs:
        line["outcome"] = _outcome(line, report["quarantined"], backlog, booked)
        line.pop(_BUS_ID, None)
    if executions:  # executions whose appointment is not in the table (should not happen): keep them visible
        report["appointments"] += [{"appointment_id": _site_id(k), "spa_id": spa_of(k), "status": None, "executions": v}
                                   for k, v in executions.items()]
    report["summary"] = summarize(report)
    return report


OUTCOMES = ("applied", "held", "quarantined", "pending", "not_delivered", "delivered")


def _outcome(line: Mapping[str, Any], quarantined: list[dict[str, Any]], backlog: set[str],
             booked: set[tuple[Any, Any]]) -> str:
    """What became of one input, from what the run left behind rather than from what the runner expected.

    An event reaches the intake by its EventBridge id, which the quarantined copy and the intake queue's
    message keep: so it is ``quarantined`` if the quarantine holds it, ``pending`` if the intake still
    holds it (a retry the run's ``until`` cut short), and otherwise the intake took it: ``applied``, or
    ``held`` for an appointment event whose booking never arrived (the intake keeps it for the fold).
    An inbound SMS goes to its own function, which quarantines nothing: ``delivered``.
    """
    if line.get("not_delivered"):
        return "not_delivered"
    if line["kind"] == "inbound_sms":
        return "delivered"
    if any(q.get("input_index") == line["index"] for q in quarantined):
        return "quarantined"
    if line.get(_BUS_ID) in backlog:
        return "pending"
    if line.get("booking_version") is not None and (line.get("spa_id"), line.get("appointment_id")) not in booked:
        return "held"
    return "applied"


def _intake_backlog(cloud: LocalCloud, dlq_url: str) -> set[str]:
    """The EventBridge ids of the events still in the intake queue (the queue whose dead letters go to the
    quarantine). SQS shows nobody the body of a message in flight, so this harness reads moto's queue."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sqs.models import sqs_backends

    dlq_arn = cloud.client("sqs").get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"]
    ids: set[str] = set()
    for queue in sqs_backends[DEFAULT_ACCOUNT_ID][cloud.region].queues.values():
        if (queue.redrive_policy or {}).get("deadLetterTargetArn") != dlq_arn:
            continue
        for message in queue._messages:
            try:
                ids.add(json.loads(message.body)["id"])
            except (ValueError, KeyError, TypeError):
                continue
    return ids


def _scan_keys(dynamodb: Any, table: str, key: str) -> list[str]:
    """Every item's key: the report reads each item back through the store's public get()."""
    keys: list[str] = []
    for page in dynamodb.get_paginator("scan").paginate(
            TableName=table, ProjectionExpression="#k", ExpressionAttributeNames={"#k": key}):
        keys += [item[key]["S"] for item in page["Items"]]
    return sorted(keys)


def _appointment(a: Any, packs: PolicyPacks, executions: list[dict[str, Any]]) -> dict[str, Any]:
    pack = packs.for_visit(a) if a.location_id in packs else None  # the version it was booked under
    zone = pack.zone if pack else UTC
    line = {
        "appointment_id": _site_id(a.appointment_id),
        "client_id": a.client_id,
        "spa_id": a.spa_id,
        "location_id": a.location_id,
        "time_zone": str(getattr(zone, "key", "UTC")),
        "service": {"name": a.service.name, "category": a.service.category,
                    "duration_minutes": a.service.duration_minutes, "price": _money(a.service.price)},
        "party_size": a.party_size,
        "status": str(a.status),
        "booking_version": a.booking_version,
        "policy_version": a.policy_version,
        "starts_at": _iso(a.starts_at),
        "starts_at_local": a.starts_at.astimezone(zone).isoformat(),
        **_booking_facts(a),
        "executions": sorted(executions, key=lambda e: (e["started_at"], e["name"])),
    }
    return line


def _booking_facts(a: Any) -> dict[str, Any]:
    """Confirmation, check-in, cancellation, violations and fees, from whichever fields the stored
    appointment has (the lifecycle keeps booking-site facts in ``facts`` and SMS replies apart)."""
    facts = getattr(a, "facts", None)
    by_site = getattr(a, "confirmed_at", None) or getattr(facts, "confirmed_at", None)
    by_client = getattr(a, "client_confirmed_at", None)
    confirmed = min((t for t in (by_site, by_client) if t is not None), default=None)
    via = None
    if confirmed is not None:
        via = (getattr(a, "client_confirmed_via", None) or "sms") if confirmed == by_client else "booking_site"
    fees = getattr(a, "fees", None) or {}
    return {
        "confirmed_at": _iso(confirmed),
        "confirmed_via": via,
        "checked_in_at": _iso(getattr(a, "checked_in_at", None) or getattr(facts, "arrived_at", None)),
        "cancelled_by": getattr(facts, "cancelled_by", None),
        "violations": [{"reason": v.reason, "notice_minutes": v.notice_minutes, "fee_waived": v.fee_waived}
                       for v in getattr(facts, "violations", ())],
        "fees": [{"reason": f.reason, "outcome": f.outcome, "fee": _money(f.fee) if f.fee else None,
                  "attempt": f.attempt} for _, f in sorted(fees.items())],
    }


def _executions(cloud: LocalCloud) -> dict[str, list[dict[str, Any]]]:
    """Every AppointmentLifecycle execution, by the appointment its input names."""
    sfn = cloud.client("stepfunctions")
    arn = cloud.state_machine_arn(LIFECYCLE)
    by_appointment: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=arn):
        for listed in page["executions"]:
            described = sfn.describe_execution(executionArn=listed["executionArn"])
            payload = json.loads(described.get("input") or "{}")
            history = [e for p in sfn.get_paginator("get_execution_history").paginate(
                executionArn=listed["executionArn"]) for e in p["events"]]
            states = [{"at": _iso(e["timestamp"]), "name": e["stateEnteredEventDetails"]["name"],
                       "type": e["type"].removesuffix("StateEntered")}
                      for e in history if e["type"].endswith("StateEntered")]
            ended = next((e for e in reversed(history) if e["type"] in _END_DETAILS), None)
            details = ended.get(_END_DETAILS[ended["type"]], {}) if ended else {}
            by_appointment[payload.get("appointment_id", listed["name"])].append({
                "name": listed["name"],
                "booking_version": payload.get("booking_version"),
                "status": described["status"],
                "started_at": _iso(described["startDate"]),
                "stopped_at": _iso(described.get("stopDate")),
                "error": details.get("error") or described.get("error"),
                "cause": details.get("cause") or described.get("cause"),
                "state_transitions": len(states),
                "states": states,
            })
    return dict(by_appointment)


_END_DETAILS = {"ExecutionAborted": "executionAbortedEventDetails", "ExecutionFailed": "executionFailedEventDetails",
                "ExecutionTimedOut": "executionTimedOutEventDetails"}


def _ledger_line(e: Any) -> dict[str, Any]:
    return {
        "entry_id": e.entry_id, "appointment_id": _site_id(e.appointment_id), "client_id": e.client_id,
        "purpose": e.purpose, "kind": str(e.kind), "amount": _money(e.amount), "status": str(e.status),
        "attempt": e.attempt, "stripe_payment_intent_id": e.stripe_payment_intent_id,
        "stripe_refund_id": e.stripe_refund_id, "decline_code": e.decline_code,
        "failure_message": e.failure_message, "created_at": _iso(e.created_at), "updated_at": _iso(e.updated_at),
    }


def _opted_out(consent: Any, channel: str, address: str | None, spa_id: str) -> bool:
    """Opt-outs belong to the address (medspa.domain.consent), so the report reads the consent record."""
    try:
        return bool(address) and consent.opted_out(channel, address, spa_id)
    except ValueError:
        return False


def _client_line(c: Any, cards: Mapping[str, str | None], ids: StripeIds, consent: Any) -> dict[str, Any]:
    return {
        "client_id": c.client_id, "spa_id": c.spa_id, "card": cards.get(c.client_id),
        "stripe_customer_id": c.stripe_customer_id or ids.customers.get(c.client_id),
        "strikes": [{"reason": s.reason, "appointment_id": _site_id(s.appointment_id), "at": _iso(s.at)}
                    for s in c.strikes],
        "prepay_required": c.prepay_required, "prepay_set_at": _iso(c.prepay_set_at),
        "prepay_cleared_by": c.prepay_cleared_by, "prepay_cleared_at": _iso(c.prepay_cleared_at),
        "outstanding": {k: v for k, v in sorted(c.outstanding.items()) if v},
        "credit": {k: v for k, v in sorted(c.credit.items()) if v},
        "sms_opt_out": c.sms_opt_out or _opted_out(consent, "sms", c.phone, c.spa_id),
        "email_opt_out": c.email_opt_out or _opted_out(consent, "email", c.email, c.spa_id),
    }


def _quarantined(dlq: QueueRecorder | None, inputs: Mapping[str, int]) -> list[dict[str, Any]]:
    """Each quarantined message, with the input it came from (by EventBridge id, which the quarantined copy
    keeps even when an erased client's details are taken out of it)."""
    out = []
    for message in (dlq.messages.values() if dlq else ()):
        try:
            event = json.loads(message["Body"])
        except ValueError:
            event = {}
        detail = event.get("detail") if isinstance(event, dict) and isinstance(event.get("detail"), dict) else {}
        attributes = message.get("MessageAttributes") or {}
        sent = int(message.get("Attributes", {}).get("SentTimestamp", 0)) / 1000
        out.append({"at": _iso(datetime.fromtimestamp(sent, UTC)) if sent else None,
                    "detail_type": event.get("detail-type") if isinstance(event, dict) else None,
                    "appointment_id": detail.get("appointment_id"), "event_id": detail.get("event_id"),
                    "rejection_reason": attributes.get("rejection_reason", {}).get("StringValue"),
                    "input_index": inputs.get(event.get("id")) if isinstance(event, dict) else None})
    return sorted(out, key=lambda q: (q["at"] or "", q["input_index"] if q["input_index"] is not None else -1))


# ---------------------------------------------------------------------- messages


def _plain(value: Any) -> Any:
    """A message-log entry as a dict, whether the model stores pydantic objects or maps."""
    if hasattr(value, "model_dump"):
        return value.model_dump()
    if hasattr(value, "as_dict"):
        return value.as_dict()
    return dict(value) if isinstance(value, Mapping) else value


def messages_from(appointments: Iterable[Any], recorded: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every message moto recorded, joined by message id with the appointments' message logs.

    A log entry adds the kind and the appointment. Log results that sent nothing (opted out, deferred,
    failed) are listed too, with their status and no text. Before the lifecycle keeps a log
    (``Appointment.messages``), every message is listed with ``kind`` and ``appointment_id`` null.
    """
    logged: dict[str, dict[str, Any]] = {}
    unsent: list[dict[str, Any]] = []
    for a in appointments:
        for entry in map(_plain, getattr(a, "messages", None) or ()):
            for result in map(_plain, entry.get("results") or ()):
                line = {"appointment_id": _site_id(a.appointment_id), "client_id": a.client_id, "kind": entry.get("kind"),
                        "key": entry.get("key"), "at": _iso(entry.get("sent_at")) or _iso(entry.get("due_at")),
                        "channel": str(result.get("channel")), "status": str(result.get("status")),
                        "error": result.get("error")}
                if result.get("message_id"):
                    logged[result["message_id"]] = line
                else:
                    unsent.append(line | {"to": None, "subject": None, "text": None, "message_id": None})
    out = []
    for sent in recorded:
        line = {"appointment_id": None, "client_id": None, "kind": None, "key": None, "status": "sent",
                "error": None} | logged.pop(sent["message_id"], {})
        out.append(line | {"at": line.get("at") or _iso(sent["at"]), "channel": sent["channel"],
                           "to": mask(sent["to"]), "subject": sent["subject"], "text": sent["text"],
                           "message_id": sent["message_id"]})
    for message_id, line in logged.items():  # logged as sent, but not recorded by moto: listed without text
        out.append(line | {"to": None, "subject": None, "text": None, "message_id": message_id})
    fields = ("at", "appointment_id", "client_id", "kind", "key", "channel", "status", "to", "subject", "text",
              "message_id", "error")
    return sorted(({k: m.get(k) for k in fields} for m in out + unsent), key=lambda m: m["at"] or "")


def mask(contact: str | None) -> str | None:
    """``+14075550123`` -> ``+1******0123``; ``ana@example.com`` -> ``a***@example.com``."""
    if not contact:
        return contact
    if "@" in contact:
        local, _, domain = contact.partition("@")
        return f"{local[:1]}***@{domain}"
    return contact[:2] + "*" * max(len(contact) - 6, 0) + contact[-4:]


# ---------------------------------------------------------------------- summary


def summarize(report: Mapping[str, Any]) -> dict[str, Any]:
    """Per location, from the report's own sections (so the summary never disagrees with them)."""
    location_of = {(a.get("spa_id"), a["appointment_id"]): a.get("location_id") for a in report["appointments"]}
    home: dict[str, str] = {}  # a client's location: that of their first appointment in the scenario
    for a in sorted(report["appointments"], key=lambda a: a.get("starts_at") or ""):
        home.setdefault(a.get("client_id"), a.get("location_id"))
    rows: dict[str, dict[str, Any]] = {}

    def row(location: str | None) -> dict[str, Any]:
        location = location or "(none)"
        return rows.setdefault(location, {
            "location_id": location, "spa_id": None, "appointments": 0, "reminders_sent": 0,
            "confirmation_requests": 0, "confirmations": 0, "auto_cancels": 0, "cancellations": 0,
            "no_shows": 0, "completed": 0, "fees_charged": {"count": 0, "total": {}},
            "fees_covered": {"count": 0, "total": {}}, "fees_declined": 0,
            "outstanding": {}, "strikes": 0, "prepay_flags": 0, "messages_sent": 0, "state_transitions": 0,
        })

    for a in report["appointments"]:
        r = row(a.get("location_id"))
        r["spa_id"] = a.get("spa_id")
        r["appointments"] += 1
        r["confirmations"] += a.get("confirmed_at") is not None
        status = a.get("status")
        r["auto_cancels"] += status == "auto_cancelled"
        r["cancellations"] += status == "cancelled"
        r["no_shows"] += status == "no_show"
        r["completed"] += status == "completed"
        r["state_transitions"] += sum(e["state_transitions"] for e in a.get("executions", []))
    notified: set[tuple[tuple[str | None, str | None], str]] = set()
    for m in report["messages"]:
        if m["status"] != "sent":
            continue
        visit = _visit(m)
        r = row(location_of.get(visit) or home.get(m["client_id"]))
        r["messages_sent"] += 1
        kind = m.get("kind") or ""
        if (visit, kind) in notified:
            continue  # one notification on two channels counts once
        notified.add((visit, kind))
        r["reminders_sent"] += kind.startswith("reminder")
        r["confirmation_requests"] += kind == "confirmation_request"
    for e in report["ledger"]:
        if "fee" not in e["purpose"].split("_"):
            continue
        r = row(location_of.get(_visit(e)))
        if e["status"] == "succeeded" and e["kind"] in ("charge", "forfeit", "deduction"):
            moved = r["fees_charged" if e["kind"] == "charge" else "fees_covered"]
            moved["count"] += 1
            moved["total"][e["amount"]["currency"]] = moved["total"].get(e["amount"]["currency"], 0) + e["amount"]["amount"]
        elif e["kind"] == "charge" and e["status"] in ("declined", "requires_action", "failed"):
            r["fees_declined"] += 1
    for c in report["clients"]:
        for strike in c["strikes"]:
            row(location_of.get((c["spa_id"], strike["appointment_id"])) or home.get(c["client_id"]))["strikes"] += 1
        r = row(home.get(c["client_id"]))
        r["prepay_flags"] += bool(c["prepay_required"])
        for currency, amount in c["outstanding"].items():
            r["outstanding"][currency] = r["outstanding"].get(currency, 0) + amount
    for location, money in money_summary(report["ledger"], location_of).items():
        row(location)["money"] = money
    for r in rows.values():
        money = r.setdefault("money", _no_money())
        for key in _MONEY_KEYS:
            money[key] = dict(sorted(money[key].items()))
        for fee in money["fees"].values():
            fee["total"] = dict(sorted(fee["total"].items()))
    locations = sorted(rows.values(), key=lambda r: r["location_id"])
    outcomes = [line.get("outcome") for line in report["inputs"]]
    return {
        "locations": locations,
        "inputs": {outcome: outcomes.count(outcome) for outcome in OUTCOMES},
        "appointments_simulated": len(report["appointments"]),
        "executions": sum(len(a.get("executions", [])) for a in report["appointments"]),
        "state_transitions": sum(r["state_transitions"] for r in locations),
        "messages_sent": sum(r["messages_sent"] for r in locations),
        "events_to_booking_site": len(report["events_to_booking_site"]),
        "quarantined": len(report["quarantined"]),
    }


FEE_REASONS = ("late_cancel", "no_show", "late_reschedule")
_FEE_PURPOSE = re.compile(r"^(?P<reason>[a-z][a-z0-9_]*?)_fee(?:_(?P<step>[a-z0-9_]+))?$")
_MONEY_KEYS = ("assessed", "collected", "covered", "outstanding", "waived", "forfeited")


def money_summary(ledger: Iterable[Mapping[str, Any]], location_of: Mapping[tuple[Any, Any], Any]
                  ) -> dict[str, dict[str, Any]]:
    """Where each location's fees went, by location and currency, from the report's ledger lines alone.

    A fee is one (appointment, reason): ``no_show_fee`` is its card charge (attempt 1 the settlement,
    later attempts dunning), ``no_show_fee_<source>`` what the policy took from a deposit, prepayment,
    course session or gift certificate (``forfeit``, ``deduction``) or left owed (``outstanding``),
    ``no_show_fee_refund`` and ``no_show_fee_waiver`` what staff forgave. So each fee splits exactly:
    assessed = collected + covered + waived + outstanding, where

    * assessed: the settlement's steps, each once (the card's attempt 1, whatever its status, plus the
      other sources);
    * collected: card charges that succeeded, on any attempt, less fee refunds;
    * covered: deposits, prepayments, course sessions and gift certificates taken for the fee;
    * waived: fee refunds plus owed balances staff cancelled;
    * outstanding: the rest, still owed (a charge still pending counts here until Stripe answers).

    ``forfeited`` is every deposit or prepayment kept (``forfeit`` entries that succeeded, for a fee or
    not): the part of ``covered`` the client lost outright, plus any forfeit that was not a fee.
    """
    rows: dict[str, dict[str, Any]] = {}

    def row(location: Any) -> dict[str, Any]:
        return rows.setdefault(location or "(none)", _no_money())

    fees: dict[tuple[Any, ...], dict[str, Any]] = {}
    for e in ledger:
        visit = _visit(e)
        amount, currency, succeeded = e["amount"]["amount"], e["amount"]["currency"], e["status"] == "succeeded"
        if e["kind"] == "forfeit" and succeeded:
            _add(row(location_of.get(visit))["forfeited"], currency, amount)
        matched = _FEE_PURPOSE.match(e["purpose"])
        if matched is None:
            continue
        step = matched["step"]
        fee = fees.setdefault((*visit, matched["reason"], currency), {
            "location": location_of.get(visit), "reason": matched["reason"], "currency": currency,
            "assessed": 0, "collected": 0, "covered": 0, "waived": 0})
        if e["kind"] == "charge" and step is None:
            fee["assessed"] += amount if e["attempt"] == 1 else 0
            fee["collected"] += amount if succeeded else 0
        elif e["kind"] in ("forfeit", "deduction") and step is not None:
            fee["assessed"] += amount
            fee["covered"] += amount if succeeded else 0
        elif e["kind"] == "outstanding" and step is not None:
            fee["assessed"] += amount
        elif e["kind"] == "refund" and step == "refund" and succeeded:
            fee["collected"] -= amount
            fee["waived"] += amount
        elif e["kind"] == "credit" and step == "waiver" and succeeded:
            fee["waived"] += amount
    for fee in fees.values():
        r, currency = row(fee["location"]), fee["currency"]
        if fee["assessed"]:
            by_reason = r["fees"].setdefault(fee["reason"], {"count": 0, "total": {}})
            by_reason["count"] += 1
            _add(by_reason["total"], currency, fee["assessed"])
        outstanding = fee["assessed"] - fee["collected"] - fee["covered"] - fee["waived"]
        for key, value in (("assessed", fee["assessed"]), ("collected", fee["collected"]),
                           ("covered", fee["covered"]), ("waived", fee["waived"]), ("outstanding", outstanding)):
            if value:
                _add(r[key], currency, value)
    return rows


def _no_money() -> dict[str, Any]:
    return {"fees": {reason: {"count": 0, "total": {}} for reason in FEE_REASONS}, **{key: {} for key in _MONEY_KEYS}}


def _add(totals: dict[str, int], currency: str, amount: int) -> None:
    totals[currency] = totals.get(currency, 0) + amount


# ---------------------------------------------------------------------- values


def _site_id(key: str) -> str:
    """The report names a visit as its booking site does (``apt-1``) beside its ``spa_id``, not by the stored key."""
    return split_key(key)[1]


def _visit(line: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(spa, appointment) of a message or ledger line: two spas may both have an appointment ``apt-1``."""
    client = line.get("client_id")
    return (spa_of(client) if client else None), line.get("appointment_id")


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = _parse_time(value)
        if value is None:
            return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _money(money: Any) -> dict[str, Any]:
    return {"amount": int(money.amount), "currency": money.currency}
