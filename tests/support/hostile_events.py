"""Hostile booking-site events, and the oracle that judges how the catalogue refuses them.

The events are the catalogue's own examples mutated the ways a broken or hostile sender would (fields
dropped, repeated, retyped, padded, nested, moved; bad times, numbers JSON cannot carry, text that is not
Unicode, other detail-types and sources), plus valid variants at the edges of every bound and random JSON.
The oracle: a refusal names a field that exists in the event (or that the catalogue requires), and its
text repeats none of the event's strings.

A string counts as repeated only if it is not one of the catalogue's own words (its field names, schema
text, messages and limits): a client named "client" cannot be told apart from the field ``detail.client``.
"""

from __future__ import annotations

import copy
import inspect
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st
from pydantic_core._pydantic_core import list_all_errors

from medspa import money
from medspa.domain import appointment
from medspa.events import (
    DETAIL_TYPES,
    ENVELOPE_MODELS,
    AppointmentBooked,
    InvalidBookingEvent,
    catalogue,
    parse_booking_event,
)
from medspa.events.examples import EXAMPLES
from medspa.events.history import fold
from medspa.events.schemas import schema_for
from medspa.policy.loader import load_packs

ROOT = catalogue.ROOT
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")


def _field_names() -> set[str]:
    names: set[str] = set()
    models = [*ENVELOPE_MODELS.values()]
    while models:
        model = models.pop()
        for name, info in model.model_fields.items():
            names |= {name, info.alias or name}
            for candidate in _models_in(info.annotation):
                models.append(candidate)
    return names


def _models_in(annotation: Any) -> Iterator[type]:
    if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
        yield annotation
    for argument in getattr(annotation, "__args__", ()):
        yield from _models_in(argument)


FIELD_NAMES = frozenset(_field_names())
VOCABULARY = "\n".join([
    *(json.dumps(schema_for(detail_type)) for detail_type in DETAIL_TYPES),
    *(inspect.getsource(module) for module in (catalogue, appointment, money)),
    *(error["message_template_python"] for error in list_all_errors()),
    *(str(limit) for limit in (catalogue.DETAIL_MAX_BYTES, catalogue.EVENT_MAX_BYTES, catalogue.MAX_DEPTH,
                               appointment.MAX_AMOUNT, appointment.MAX_VISIT_MINUTES, 2**31 - 1)),
])


# --- walking an event without recursion (a hostile one may be deeper than Python's stack) -------


def nodes(value: Any) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), value)]
    while stack:
        path, node = stack.pop()
        yield path, node
        if isinstance(node, dict):
            stack.extend(((*path, key), item) for key, item in node.items())
        elif isinstance(node, list | tuple):
            stack.extend(((*path, index), item) for index, item in enumerate(node))


def strings_in(value: Any) -> set[str]:
    return {node for _, node in nodes(value) if isinstance(node, str)}


def keys_in(value: Any) -> set[str]:
    return {key for _, node in nodes(value) if isinstance(node, dict) for key in node if isinstance(key, str)}


def decoded(payload: Any) -> Any:
    """The event as the parser sees it, for checking paths; ``None`` when it is not JSON at all."""
    if not isinstance(payload, str | bytes):
        return payload
    try:
        return json.loads(payload, parse_int=lambda literal: int(literal) if len(literal) <= 1000 else None)
    except (ValueError, RecursionError):
        return None


def _segments(field: str) -> list[str | int]:
    return [int(part[1:-1]) if part.startswith("[") else part for part in re.findall(r"\[\d+\]|[^.\[\]]+", field)]


def field_is_real(field: str | None, event: Any, reason: str) -> bool:
    """The field is in the event, or is one the catalogue requires there; the root only for a non-object."""
    if not field:
        return False
    if field == ROOT:
        return not isinstance(event, dict) or "key whose name is not repeated" in reason or "longer than" in reason
    node = event
    *parents, last = _segments(field)
    for segment in parents:
        if isinstance(node, dict) and segment in node or isinstance(node, list) and isinstance(segment, int) \
                and segment < len(node):
            node = node[segment]
        else:
            return False
    if isinstance(node, dict):
        return last in node or last in FIELD_NAMES
    return isinstance(node, list) and isinstance(last, int) and last < len(node)


def echoed(text: str, payload: Any) -> list[str]:
    """The event's strings (values, and keys that are not plain names) that ``text`` repeats."""
    event = decoded(payload)
    candidates = strings_in(event) | {k for k in keys_in(event) if not NAME.fullmatch(k)}
    if isinstance(payload, str | bytes) and event is None:
        candidates.add(payload if isinstance(payload, str) else payload.decode("utf-8", "replace"))
    spoken = VOCABULARY + "\n".join(k for k in keys_in(event) if NAME.fullmatch(k))
    return sorted(s for s in candidates if len(s) >= 4 and s in text and s not in spoken)


# --- what comes after the parser -----------------------------------------------------------------

PACKS = load_packs()
BOOKED = parse_booking_event(EXAMPLES["AppointmentBooked"])


def held_downstream(detail: Any) -> None:
    """Raise if an accepted event would break what comes after the parser.

    The intake stores ``model_dump_json()`` and reads the history back with ``model_validate_json``;
    every time is converted to UTC; an appointment event is folded with its booking under the packs.
    """
    again = type(detail).model_validate_json(detail.model_dump_json())
    assert again == detail, "the stored form reads back differently"
    for value in (getattr(detail, name) for name in type(detail).model_fields):
        if isinstance(value, datetime):
            value.astimezone(UTC)
    if isinstance(detail, AppointmentBooked):
        fold([detail], PACKS)
    elif getattr(detail, "booking_version", 1) > 1:
        booked = BOOKED.model_copy(update={"spa_id": detail.spa_id, "appointment_id": detail.appointment_id})
        fold([booked, detail], PACKS)


# --- the figures ---------------------------------------------------------------------------------


@dataclass
class Tally:
    tried: int = 0
    crashes: int = 0
    without_field: int = 0
    lost: int = 0
    echoes: int = 0

    def line(self, what: str = "fuzz") -> str:
        return (f"{what}: events tried {self.tried}, crashes {self.crashes}, reasons without a field "
                f"{self.without_field}, valid events lost {self.lost}, echoes {self.echoes}")

    def judge(self, payload: Any, *, valid: bool) -> list[str]:
        """Parse one event and count what went wrong; the problems, empty when the parser behaved."""
        self.tried += 1
        try:
            detail = parse_booking_event(payload)
        except InvalidBookingEvent as error:
            problems = []
            if valid:
                self.lost += 1
                problems.append(f"a valid event was refused: {error}")
            if not field_is_real(error.field, decoded(payload), error.reason):
                self.without_field += 1
                problems.append(f"the refusal names no field of the event: {error.field!r} in {error}")
            if repeated := echoed(f"{error} {error.field} {error.detail_type}", payload):
                self.echoes += 1
                problems.append(f"the refusal repeats {repeated!r}: {error}")
            return problems
        except Exception as error:  # noqa: BLE001 - counting them is the point
            self.crashes += 1
            return [f"the parser crashed: {type(error).__name__}"]
        try:
            held_downstream(detail)
        except Exception as error:  # noqa: BLE001
            self.crashes += 1
            return [f"an accepted event broke what follows the parser: {type(error).__name__}: {error}"]
        return []


# --- hostile values ------------------------------------------------------------------------------

SURROGATES = st.sampled_from(["\ud800", "\udfff", "\ud83d"])
text = st.text(max_size=40)
odd_text = st.builds(lambda a, s, b: a + s + b, text, SURROGATES, text)
huge_text = st.integers(1, 40).map(lambda k: "Zq\u00e9\U0001f600" + "xy\u00e9" * (k * 1000))
numbers = st.one_of(
    st.integers(),
    st.sampled_from([0, -1, 51, 1441, 2**31 - 1, 2**31, 2**53 + 1, 2**63, -(2**63) - 1, 100_000_000, 10**30,
                     10**400, -(10**5000)]),
    st.floats(allow_nan=True, allow_infinity=True),
)
offsets = st.one_of(
    st.sampled_from(["Z", "z", "", "+00:00", "-00:00", "+14:00", "+14:01", "-12:00", "-12:01", "+23:59", "-23:59",
                     "+24:00", "+05", "+0530", "+05:30:15", " +05:00", "UTC"]),
    st.builds(lambda sign, h, m: f"{sign}{h:02d}:{m:02d}", st.sampled_from("+-"), st.integers(0, 30),
              st.integers(0, 70)),
)
stamps = st.one_of(
    st.builds(
        lambda y, mo, d, h, mi, s, offset: f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{offset}",
        st.one_of(st.integers(0, 9999), st.sampled_from([1, 1999, 2000, 2100, 2101, 9999])),
        st.integers(0, 13), st.integers(0, 32), st.integers(0, 25), st.integers(0, 61), st.integers(0, 61), offsets,
    ),
    # the edges where converting to UTC overflows or leaves the range
    st.sampled_from(["9999-12-31T23:59:59-05:00", "9999-12-31T23:59:59.999999-12:00", "0001-01-01T00:00:00+05:00",
                     "0001-01-01T00:00:00+14:00", "2100-12-31T23:59:59-01:00", "2000-01-01T00:00:00+00:01"]),
)


def nest(depth: int, leaf: Any, as_list: bool) -> Any:
    for level in range(depth):
        leaf = [leaf] if as_list and level % 2 else {"more": leaf}
    return leaf


deep = st.builds(nest, st.integers(4, 600), st.one_of(text, numbers), st.booleans())
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), text),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(text, inner, max_size=4)),
    max_leaves=12,
)
hostile = st.one_of(
    st.none(), st.booleans(), numbers, text, odd_text, huge_text, stamps, deep, json_values,
    st.sampled_from([*DETAIL_TYPES, "client", "spa", "USD", "usd", "sms", "+14075550123", "cus_", "pm_1",
                     "booking-site", "", " ", "\x00", "null", "true", "1e999", "NaN"]),
    st.builds(set, st.lists(st.integers(), max_size=3)),
    st.dictionaries(st.integers(), st.integers(), min_size=1, max_size=2),
)


# --- mutations of valid examples -----------------------------------------------------------------


def _paths(event: dict[str, Any]) -> list[tuple[str | int, ...]]:
    return sorted((path for path, _ in nodes(event) if path), key=repr)


def _at(event: Any, path: tuple[str | int, ...]) -> Any:
    for segment in path:
        event = event[segment]
    return event


def dumps_repeating(value: Any, where: tuple[str | int, ...], key: str, second: Any) -> str:
    """JSON text in which the object at ``where`` gives ``key`` a second time, with ``second``."""
    if not where:
        parts = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in value.items()]
        return "{" + ", ".join([*parts, f"{json.dumps(key)}: {json.dumps(second)}"]) + "}"
    head, rest = where[0], where[1:]
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: " + (dumps_repeating(v, rest, key, second) if k == head
                                                      else json.dumps(v)) for k, v in value.items()) + "}"
    return "[" + ", ".join(dumps_repeating(v, rest, key, second) if i == head else json.dumps(v)
                           for i, v in enumerate(value)) + "]"


def as_text(event: Any) -> str | None:
    try:
        return json.dumps(event, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return None


@st.composite
def mutated_events(draw: st.DrawFn, *, bus_only: bool = False) -> Any:
    """A valid example with one to three mutations; sometimes as the JSON text SQS would carry.

    ``bus_only`` mutates only what a booking site controls (the detail, the detail-type, the vendor
    part of the source) and returns ``(event, repeat)``: the event, and ``(object path, key, value)``
    to give a key twice in the detail's JSON text, or None.
    """
    event = copy.deepcopy(EXAMPLES[draw(st.sampled_from(DETAIL_TYPES))])
    repeat = None
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(event) if not bus_only or len(p) > 1 and p[0] == "detail"]
        objects = [p for p in paths if isinstance(_at(event, p), dict)] + [("detail",) if bus_only else ()]
        objects = [p for p in objects if isinstance(_at(event, p), dict)]
        kind = draw(st.sampled_from(["drop", "retype", "retype", "add", "move", "repeat", "detail-type", "source",
                                     "retime", "renumber", "reword"]))
        like = {"retime": (stamps, lambda v: isinstance(v, str) and v[:2] in ("19", "20")),
                "renumber": (numbers, lambda v: isinstance(v, int) and not isinstance(v, bool)),
                "reword": (st.one_of(odd_text, huge_text, text), lambda v: isinstance(v, str))}
        if kind in like:
            values, fits = like[kind]
            same_kind = [p for p in paths if fits(_at(event, p))]
            if same_kind:
                path = draw(st.sampled_from(same_kind))
                _at(event, path[:-1])[path[-1]] = draw(values)
        elif kind in ("drop", "retype", "move") and paths:
            path = draw(st.sampled_from(paths))
            parent, leaf = _at(event, path[:-1]), path[-1]
            if kind == "drop" and isinstance(parent, dict):
                del parent[leaf]
            elif kind == "retype":
                parent[leaf] = draw(hostile)
            elif kind == "move":
                origin = draw(st.sampled_from(paths))
                parent[leaf] = None if origin[:len(path)] == path else copy.deepcopy(_at(event, origin))
        elif kind == "add" and objects:
            key = draw(st.one_of(text, st.sampled_from(sorted(FIELD_NAMES))))
            _at(event, draw(st.sampled_from(objects)))[key] = draw(hostile)
        elif kind == "repeat":
            repeat = draw(hostile)
        elif kind == "detail-type":
            printable = st.text(st.characters(categories=("L", "N", "P", "S", "Zs")), min_size=1, max_size=60)
            event["detail-type"] = draw(st.one_of(st.sampled_from(DETAIL_TYPES), printable,
                                                  *([] if bus_only else [text, hostile])))
        elif kind == "source":
            near_misses = st.from_regex(r"\A[a-zA-Z0-9._-]{0,80}\Z").map(lambda vendor: "booking-site" + vendor)
            event["source"] = draw(st.one_of(near_misses, *([] if bus_only else [hostile])))
    if repeat is not None:
        objects = [p for p in _paths(event)
                   if (not bus_only or p[:1] == ("detail",)) and isinstance(_at(event, p), dict)]
        where = draw(st.sampled_from(objects or [()]))
        keys = sorted(k for k in _at(event, where) if isinstance(k, str))
        repeat = (where, draw(st.sampled_from(keys)), repeat) if keys else None
    if bus_only:
        return event, repeat
    if repeat is None and not draw(st.booleans()):
        return event
    try:
        return dumps_repeating(event, *repeat) if repeat is not None else as_text(event) or event
    except (TypeError, ValueError, RecursionError):
        return event


# --- valid variants at the edges of every bound --------------------------------------------------

unicode_text = st.characters(codec="utf-8")
ids = st.one_of(st.text(unicode_text, min_size=1, max_size=128), st.just("\U0001f600" * 128), st.just("i" * 128))
free_text = st.one_of(st.text(unicode_text, min_size=1, max_size=1000), st.just("\U0001f600" * 1000))
instants = st.datetimes(
    min_value=datetime(2000, 1, 1, 14), max_value=datetime(2100, 12, 31, 11),
    timezones=st.integers(-12 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes))),
).map(datetime.isoformat)
amounts = st.one_of(st.integers(0, 99_999_999), st.sampled_from([0, 99_999_999]))
phones = st.from_regex(r"\A\+[1-9][0-9]{1,14}\Z")
emails = st.from_regex(r"\A[a-z0-9._%+-]{1,64}@[a-z0-9-]{1,63}\.[a-z]{2,24}\Z")
vendors = st.from_regex(r"\A[a-z0-9][a-z0-9-]{0,62}\Z")


@st.composite
def valid_events(draw: st.DrawFn, detail_types: tuple[str, ...] = DETAIL_TYPES) -> dict[str, Any]:
    """An example with many fields redrawn anywhere inside their bounds: each must still parse."""
    detail_type = draw(st.sampled_from(detail_types))
    event = copy.deepcopy(EXAMPLES[detail_type])
    detail = event["detail"]
    event["source"] = draw(st.one_of(st.just("booking-site"), vendors.map(lambda v: f"booking-site.{v}")))
    for key in ("event_id", "spa_id", "appointment_id", "client_id", "location_id", "admin_id", "marked_by",
                "ledger_entry_id"):
        if key in detail and draw(st.booleans()):
            detail[key] = draw(ids)
    for key in ("occurred_at", "starts_at", "arrived_at"):
        if key in detail:
            detail[key] = draw(instants)
    if "booking_version" in detail:
        detail["booking_version"] = draw(st.one_of(st.integers(1, 2**31 - 1), st.just(2**31 - 1)))
    if "reason" in detail:
        detail["reason"] = draw(free_text)
    if "purpose" in detail:
        detail["purpose"] = draw(st.from_regex(r"\A[a-z][a-z0-9_]{0,63}\Z"))
    if detail_type in ("AppointmentBooked", "AppointmentRescheduled") and "service" in detail:
        currency = draw(st.sampled_from(["USD", "HKD", "JPY"]))
        detail["service"] = {
            "name": draw(st.text(unicode_text, min_size=1, max_size=200)),
            "category": draw(st.text(unicode_text, min_size=1, max_size=64)),
            "duration_minutes": draw(st.integers(1, 1440)),
            "price": {"amount": draw(amounts), "currency": currency},
        }
        if detail_type == "AppointmentBooked":
            detail["party_size"] = draw(st.integers(1, 50))
            detail["client"].update(id=draw(ids), phone=draw(phones), email=draw(emails),
                                    sms_opt_in=draw(st.booleans()))
            for name in ("deposit", "prepaid", "gift_certificate"):
                detail["payment"][name] = draw(st.one_of(st.none(), st.builds(
                    lambda amount, currency=currency: {"amount": amount, "currency": currency}, amounts)))
    return event
