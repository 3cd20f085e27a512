"""The scenario a spa owner writes for ``medspa simulate`` (format: ``docs/simulate.md``): its models, its
loading, and the checks that refuse it in one line before anything is deployed.

A scenario is a start time, the spa's clients with their test cards, and booking-site events in the
catalogue's own format, each at a virtual time. :func:`load_scenario` reads it and checks its shape;
:func:`prepare_inputs` fills in what an event may leave out and checks every event as the deployed system
will; :func:`validate_scenario` does both, with placeholder Stripe ids. This module stands apart from the run
(``localcloud.capture``) and the report (``localcloud.report``) because the scenario format is a documented
interface of its own, checked without a cloud: nothing here deploys, sends or touches Stripe.

Decisions:

* The whole scenario is checked before anything is deployed, as the intake will check it (catalogue,
  the spa's authorised sources and locations, the clients and appointments an event names, rising
  booking versions): the scenario is the spa owner's own file, and a problem found after the deploy
  and a month of virtual time, or as a traceback, does not tell them which line to fix. The error is
  one line naming the entry and the field (:class:`ScenarioError`).
* Stripe ids are not known when a scenario is written (the fake generates them), so the scenario names a
  test card per client and the runner fills ``stripe_customer_id``/``stripe_payment_method_id`` into that
  client's events (a booking's card on file, a new card, the card a membership's dues are drafted from). Stripe's declining test cards already fail when attached; for them the test token
  itself stands for "a card that was good when saved and declines now" (``fakestripe.save_test_card``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from localcloud.cloud import REPO_ROOT
from medspa.domain.keys import split_key
from medspa.events import (
    DETAIL_MODELS,
    DETAIL_TYPES,
    AppointmentBooked,
    BookingEvent,
    ClientErasureRequested,
    FeeWaived,
    InvalidBookingEvent,
    MEMBERSHIP_MODELS,
    MembershipStarted,
    ServiceCreditRedeemed,
    parse_booking_event,
)
from medspa.policy.loader import load_packs
from medspa.policy.tenants import Tenant, load_tenants


SCENARIOS_DIR = REPO_ROOT / "samples" / "scenarios"


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
    clients, listed = [], set()
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
        if clients[-1].key in listed:
            raise ScenarioError(f"{where}: {item['spa_id']}#{item['id']} is already listed (spa_id + id twice)")
        listed.add(clients[-1].key)
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
    event: BookingEvent | None = None  # the envelope as the catalogue parsed it, when every check passed

    @property
    def detail(self) -> Mapping[str, Any]:
        return (self.envelope or {}).get("detail") or {}


def prepare_inputs(scenario: Scenario, ids: StripeIds) -> list[Input]:
    """Fill what a scenario may leave out, then check every event as the deployed system will.

    Filled when absent: ``occurred_at`` (the entry's ``at``), ``event_id`` (``<scenario>-<index>``), the
    client's contact details in an AppointmentBooked or MembershipStarted ``client`` (from the ``clients``
    section), and the client's Stripe ids in an AppointmentBooked ``payment`` whose ``card_on_file`` is
    true, in a MembershipStarted ``payment`` and in a CardUpdated. Then each event must pass what the
    intake checks (the catalogue, the spa's sources and locations), name only clients and appointments
    booked before it, and raise its appointment's ``booking_version`` or its membership's
    ``membership_version``: otherwise the run would quarantine it, hold it, fold it where the owner did
    not mean it or fail later, far from the line of the file that caused it. An event marked ``expect_rejected`` must fail one of the intake's
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
            problems.append((index, f"{where}.{version}"))
        known.track(event, index)
        visits.track(entry["detail_type"], detail)
        inputs.append(Input(index, at, "event", envelope=envelope, event=event))
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
    if (isinstance(event, AppointmentBooked | MembershipStarted | ServiceCreditRedeemed)
            and event.location_id not in tenant.locations):
        owner = next((t.spa_id for t in tenants.values() if event.location_id in t.locations), None)
        refusals.append(f"detail.location_id: {_shown(event.location_id)} is "
                        + (f"a location of {owner}, not of {event.spa_id}" if owner else
                           f"not a location of {event.spa_id}")
                        + f" (its locations: {', '.join(sorted(tenant.locations))})")
    return refusals


class _Known:
    """What the scenario has booked, signed up (and erased) so far, in delivery order, as the intake will see
    it: an admin event naming a client or appointment not booked yet is retried, then quarantined; an event
    naming an erased client is quarantined; a booking version that does not rise is stale to the fold (or a
    conflict, at the same version), so the run would not show it; and a membership version that does not
    rise is a conflict (quarantined) or folds before the entries the owner wrote it after."""

    def __init__(self) -> None:
        self._clients: set[tuple[str, str]] = set()
        self._erased: set[tuple[str, str]] = set()
        self._appointments: dict[tuple[str, str], str] = {}  # appointment -> its client's booking-site id
        self._members: dict[tuple[str, str], str] = {}  # membership -> its client's booking-site id
        self._versions: dict[tuple[str, str, str], tuple[int, int]] = {}  # (kind, spa, id) -> (version, entry)

    def refusals(self, event: BookingEvent) -> list[str]:
        spa = event.spa_id
        client_id, field = getattr(event, "client_id", None), "detail.client_id"
        if isinstance(event, AppointmentBooked | MembershipStarted):
            client_id, field = event.client.id, "detail.client.id"
        elif isinstance(event, MEMBERSHIP_MODELS):
            client_id, field = self._members.get((spa, event.membership_id)), "detail.membership_id"
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
        """``<field>: <why>`` when the event's booking or membership version does not rise."""
        versioned = _versioned(event)
        if versioned is None:
            return None
        key, version = versioned
        before = self._versions.get(key)
        if before is not None and version <= before[0]:
            field = "membership_version" if key[0] == "membership" else "booking_version"
            return (f"detail.{field}: {version} does not increase on events[{before[1]}] (version {before[0]}) of "
                    f"{key[0]} {key[2]}")
        return None

    def track(self, event: BookingEvent, index: int) -> None:
        if isinstance(event, AppointmentBooked):
            self._clients.add((event.spa_id, event.client.id))
            self._appointments[(event.spa_id, event.appointment_id)] = event.client.id
        if isinstance(event, MembershipStarted):  # the intake keeps the member as a client of the spa
            self._clients.add((event.spa_id, event.client.id))
            self._members[(event.spa_id, event.membership_id)] = event.client.id
        if isinstance(event, ClientErasureRequested):
            self._erased.add((event.spa_id, event.client_id))
        versioned = _versioned(event)
        if versioned is not None:
            self._versions[versioned[0]] = (versioned[1], index)


def _versioned(event: BookingEvent) -> tuple[tuple[str, str, str], int] | None:
    """(("appointment" or "membership", spa, id), version) of an event that carries a version."""
    if isinstance(event, MEMBERSHIP_MODELS):
        return ("membership", event.spa_id, event.membership_id), event.membership_version
    version = getattr(event, "booking_version", None)
    if version is None:
        return None
    return ("appointment", event.spa_id, event.appointment_id), version


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
    elif entry["detail_type"] == "MembershipStarted":
        client = detail.get("client") if isinstance(detail.get("client"), Mapping) else {}
        payment = detail.get("payment") if isinstance(detail.get("payment"), Mapping) else {}
        declared = "stripe_customer_id" in payment or "stripe_payment_method_id" in payment
        if not declared and f"{spa}#{client.get('id')}" not in clients:
            return (f"detail.client.id: {_shown(client.get('id'))} of {spa} is not in the clients section, so the "
                    "runner has no Stripe customer or card to fill into detail.payment (list the client with a "
                    "card, or give payment's Stripe ids)")
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
    kind = entry["detail_type"]
    if kind in ("AppointmentBooked", "MembershipStarted") and isinstance(detail.get("client"), dict):
        client = clients.get(f"{spa}#{detail['client'].get('id')}")
        if client is None:
            return
        for key, value in client.contact.items():
            detail["client"].setdefault(key, value)
        payment = detail.setdefault("payment", {})
        if not isinstance(payment, dict):
            return
        if kind == "MembershipStarted" and not {"stripe_customer_id", "stripe_payment_method_id"} & set(payment):
            # Dues are drafted from the client's card; a client listed without one is drafted (and declined)
            # until a CardUpdated gives them one, as the booking site would send it.
            payment["stripe_customer_id"] = ids.customers[client.key]
            if ids.cards.get(client.key):
                payment["stripe_payment_method_id"] = ids.cards[client.key]
        elif kind == "AppointmentBooked" and payment.get("card_on_file") and ids.cards.get(client.key):
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
