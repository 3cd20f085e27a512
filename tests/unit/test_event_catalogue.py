"""The booking-site event catalogue: parsing, clear PII-free errors, and published schemas that cannot drift."""

from __future__ import annotations

import copy
import json
import types
import typing
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from medspa.money import Money
from medspa.events import (
    DETAIL_MODELS,
    DETAIL_TYPES,
    AppointmentBooked,
    InvalidBookingEvent,
    OutstandingBalancePaid,
    parse_booking_envelope,
    parse_booking_event,
)
from medspa.events.catalogue import DETAIL_MAX_BYTES, EVENT_MAX_BYTES, MAX_DEPTH
from medspa.events.examples import EXAMPLES
from medspa.events.schemas import render

DOCS = Path(__file__).resolve().parents[2] / "docs" / "events"


def example(detail_type: str = "AppointmentBooked") -> dict:
    return copy.deepcopy(EXAMPLES[detail_type])


def rejection(event: dict) -> InvalidBookingEvent:
    with pytest.raises(InvalidBookingEvent) as caught:
        parse_booking_event(event)
    return caught.value


def set_path(event: dict, path: str, value: object) -> dict:
    *parents, leaf = path.split(".")
    node = event
    for key in parents:
        node = node[key]
    node[leaf] = value
    return event


# --- examples and published documents ------------------------------------------------------------


@pytest.mark.parametrize("detail_type", DETAIL_TYPES)
def test_every_example_parses_to_its_model(detail_type: str) -> None:
    parsed = parse_booking_event(example(detail_type))
    assert type(parsed) is DETAIL_MODELS[detail_type]


@pytest.mark.parametrize("detail_type", DETAIL_TYPES)
def test_committed_examples_parse(detail_type: str) -> None:
    event = json.loads((DOCS / "examples" / f"{detail_type}.json").read_text(encoding="utf-8"))
    assert type(parse_booking_event(event)) is DETAIL_MODELS[detail_type]


@pytest.mark.parametrize("relative", sorted(render()))
def test_committed_docs_equal_the_models(relative: str) -> None:
    path = DOCS / relative
    assert path.exists(), f"docs/events/{relative} missing: run tools/publish_event_schemas.py"
    assert path.read_text(encoding="utf-8") == render()[relative], (
        f"docs/events/{relative} is stale: run tools/publish_event_schemas.py"
    )


def test_no_orphan_documents() -> None:
    committed = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.json")}
    assert committed == set(render())


def test_every_detail_type_is_documented_in_the_readme() -> None:
    readme = (DOCS / "README.md").read_text(encoding="utf-8")
    assert all(f"`{name}`" in readme for name in DETAIL_TYPES)


def test_schema_describes_the_envelope_with_a_fixed_detail_type() -> None:
    schema = json.loads(render()["AppointmentBooked.schema.json"])
    assert schema["properties"]["detail-type"]["const"] == "AppointmentBooked"
    assert {"source", "detail-type", "detail"} <= set(schema["required"])
    assert schema["$defs"]["AppointmentBooked"]["additionalProperties"] is False


def test_parsed_booking_keeps_money_exact_and_times_aware() -> None:
    booked = parse_booking_event(example())
    assert isinstance(booked, AppointmentBooked)
    assert booked.service.price == Money(amount=42000, currency="USD")
    assert booked.payment.deposit == Money(amount=5000, currency="USD")
    assert booked.starts_at == datetime(2025, 3, 14, 18, 30, tzinfo=UTC)
    assert booked.client.sms_opt_in is True


def test_envelope_exposes_the_vendor_and_ignores_aws_keys() -> None:
    event = example("FeeWaived")
    event["replay-name"] = "nightly-replay"
    envelope = parse_booking_envelope(event)
    assert envelope.vendor == "acuity"
    assert parse_booking_envelope(example()).vendor is None


def test_python_datetimes_are_accepted_when_aware() -> None:
    event = set_path(example(), "detail.starts_at", datetime(2025, 3, 14, 18, 30, tzinfo=UTC))
    assert parse_booking_event(event).starts_at == datetime(2025, 3, 14, 18, 30, tzinfo=UTC)


# --- rejections ----------------------------------------------------------------------------------


def _model_in(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _required_paths(model: type[BaseModel], data: dict, prefix: str) -> list[str]:
    paths = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        if field.is_required():
            paths.append(f"{prefix}.{key}")
        nested = _model_in(field.annotation)
        if nested is not None and isinstance(data.get(key), dict):
            paths += _required_paths(nested, data[key], f"{prefix}.{key}")
    return paths


REQUIRED = [
    (detail_type, path)
    for detail_type, model in DETAIL_MODELS.items()
    for path in ["source", "detail", *_required_paths(model, EXAMPLES[detail_type]["detail"], "detail")]
]


@pytest.mark.parametrize(("detail_type", "path"), REQUIRED, ids=[f"{t}:{p}" for t, p in REQUIRED])
def test_each_required_field_missing_is_named(detail_type: str, path: str) -> None:
    event = example(detail_type)
    *parents, leaf = path.split(".")
    node = event
    for key in parents:
        node = node[key]
    del node[leaf]
    error = rejection(event)
    assert error.field == path
    assert f"{path}: Field required" in str(error)
    assert detail_type in str(error)


def test_the_catalogue_requires_the_common_envelope() -> None:
    required = {path for detail_type, path in REQUIRED if detail_type == "AppointmentCompleted"}
    assert {"detail.event_id", "detail.occurred_at", "detail.spa_id", "detail.appointment_id",
            "detail.booking_version"} <= required
    card = {path for detail_type, path in REQUIRED if detail_type == "CardUpdated"}
    assert "detail.booking_version" not in card


AWARE_TIMES = [
    (detail_type, f"detail.{key}")
    for detail_type, event in EXAMPLES.items()
    for key in ("occurred_at", "starts_at", "arrived_at")
    if key in event["detail"]
]


@pytest.mark.parametrize(("detail_type", "path"), AWARE_TIMES)
def test_naive_times_are_rejected_by_name(detail_type: str, path: str) -> None:
    error = rejection(set_path(example(detail_type), path, "2025-03-14T14:30:00"))
    assert error.field == path
    assert "timezone" in error.reason


def test_naive_python_datetime_is_rejected() -> None:
    error = rejection(set_path(example(), "detail.starts_at", datetime(2025, 3, 14, 14, 30)))
    assert error.field == "detail.starts_at"


@pytest.mark.parametrize(
    "path",
    ["detail.service.price.amount", "detail.payment.deposit.amount"],
)
@pytest.mark.parametrize("amount", [420.0, 420.5, "42000", True])
def test_money_must_be_integer_minor_units(path: str, amount: object) -> None:
    error = rejection(set_path(example(), path, amount))
    assert error.field == path
    assert str(error).endswith(f"{path}: Input should be a valid integer")


@pytest.mark.parametrize("currency", ["usd", "US", "USDX", 840])
def test_currency_is_three_upper_case_letters(currency: object) -> None:
    assert rejection(set_path(example(), "detail.service.price.currency", currency)).field == (
        "detail.service.price.currency"
    )


def test_negative_and_mixed_currency_payments_are_rejected() -> None:
    negative = rejection(set_path(example(), "detail.payment.deposit", {"amount": -1, "currency": "USD"}))
    assert negative.field == "detail.payment.deposit"
    mixed = rejection(set_path(example(), "detail.payment.deposit", {"amount": 5000, "currency": "HKD"}))
    assert "payment.deposit.currency" in mixed.reason


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("detail.service.duration_minutes", 30.0),
        ("detail.service.duration_minutes", "30"),
        ("detail.party_size", 0),
        ("detail.client.sms_opt_in", "true"),
        ("detail.booking_version", 0),
        ("detail.booking_version", "1"),
        ("detail.booking_version", True),
        ("detail.payment.stripe_customer_id", "pm_123"),
    ],
)
def test_lax_coercions_are_refused(path: str, value: object) -> None:
    assert rejection(set_path(example(), path, value)).field == path


@pytest.mark.parametrize("path", ["detail", "detail.client", "detail.service", "detail.payment"])
def test_extra_fields_are_rejected(path: str) -> None:
    # Money (medspa/money.py) is shared with the store and ignores unknown keys; not tested here.
    event = example()
    set_path(event, f"{path}.loyalty_tier", "gold")
    error = rejection(event)
    assert error.field == f"{path}.loyalty_tier"
    assert "Extra inputs are not permitted" in error.reason


@pytest.mark.parametrize("detail_type", ["AppointmentEaten", "appointmentbooked", "", 42, None])
def test_unknown_detail_type_is_named_but_not_repeated(detail_type: object) -> None:
    event = example()
    event["detail-type"] = detail_type
    error = rejection(event)
    assert error.field == "detail-type"
    assert error.detail_type is None
    assert f"'{detail_type}'" not in str(error) and "Eaten" not in str(error) and "appointmentbooked" not in str(error)


def test_missing_detail_type_and_non_objects() -> None:
    event = example()
    del event["detail-type"]
    assert rejection(event).field == "detail-type"
    with pytest.raises(InvalidBookingEvent):
        parse_booking_event(["not", "an", "event"])  # type: ignore[arg-type]
    with pytest.raises(InvalidBookingEvent) as caught:
        parse_booking_event({**example(), "detail": "{\"event_id\": \"x\"}"})
    assert caught.value.field == "detail"


@pytest.mark.parametrize("source", ["booking-site.acme", "booking-site.mind-body2"])
def test_vendor_sources_are_accepted(source: str) -> None:
    assert parse_booking_event({**example(), "source": source})


@pytest.mark.parametrize("source", ["stripe", "booking-site.", "booking-site.Acme", "booking-sites",
                                    "booking-site." + "a" * 64, 7, None])
def test_other_sources_are_rejected_without_repeating_them(source: object) -> None:
    error = rejection({**example(), "source": source})
    assert error.field == "source"
    assert "stripe" not in str(error) and "Acme" not in str(error) and "aaaa" not in str(error)


def test_cancelled_by_is_client_or_spa() -> None:
    error = rejection(set_path(example("AppointmentCancelled"), "detail.by", "nobody"))
    assert error.field == "detail.by"


def test_every_problem_is_listed() -> None:
    event = example()
    set_path(event, "detail.service.price.amount", 1.5)
    del event["detail"]["location_id"]
    reason = rejection(event).reason
    assert "detail.service.price.amount" in reason and "detail.location_id" in reason


# --- bounds: what the rest of the pipeline can hold ----------------------------------------------

EDGES = [
    ("detail.booking_version", 2**31 - 1, 2**31),
    ("detail.party_size", 50, 51),
    ("detail.service.duration_minutes", 1440, 1441),
    ("detail.service.name", "n" * 200, "n" * 201),
    ("detail.service.category", "c" * 64, "c" * 65),
    ("detail.client.id", "i" * 128, "i" * 129),
    ("detail.client.first_name", "f" * 100, "f" * 101),
    ("detail.client.first_name", "A", ""),
    ("detail.starts_at", "2100-12-31T23:59:59Z", "2101-01-01T00:00:00Z"),
    ("detail.starts_at", "2000-01-01T00:00:00Z", "1999-12-31T23:59:59Z"),
    ("detail.starts_at", "2026-03-14T14:30:00+14:00", "2026-03-14T14:30:00+14:01"),
    ("detail.starts_at", "2026-03-14T14:30:00-12:00", "2026-03-14T14:30:00-12:01"),
    ("detail.occurred_at", "2000-01-01T00:30:00Z", "2000-01-01T00:30:00+01:00"),
]


@pytest.mark.parametrize(("path", "inside", "outside"), EDGES, ids=[f"{p}:{o!s:.30}" for p, _, o in EDGES])
def test_every_bound_is_inclusive_and_refuses_one_past_it_by_name(path: str, inside: object, outside: object) -> None:
    assert parse_booking_event(set_path(example(), path, inside))
    assert rejection(set_path(example(), path, outside)).field == path


@pytest.mark.parametrize("path", ["detail.service.price", "detail.payment.deposit"])
def test_money_is_at_most_the_largest_charge_a_card_can_take(path: str) -> None:
    assert parse_booking_event(set_path(example(), f"{path}.amount", 99_999_999))
    assert rejection(set_path(example(), f"{path}.amount", 100_000_000)).field == path


@pytest.mark.parametrize("instant", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"])
def test_times_that_overflow_in_utc_are_a_field_error_not_a_crash(instant: str) -> None:
    error = rejection(set_path(example("ClientCheckedIn"), "detail.arrived_at", instant))
    assert error.field == "detail.arrived_at"
    assert "2000 to 2100" in error.reason


def test_nesting_deeper_than_the_catalogue_is_refused_where_it_starts() -> None:
    deep: object = "leaf"
    for _ in range(50):
        deep = {"more": deep}
    error = rejection(set_path(example(), "detail.client.notes", deep))
    assert error.field.startswith("detail.client.notes.more")
    assert str(MAX_DEPTH) in error.reason


def test_an_oversized_detail_or_envelope_is_refused_by_size_without_the_text() -> None:
    detail = rejection(set_path(example(), "detail.notes", "Zq-note " * 4000))
    assert (detail.field, "Zq-note" in str(detail)) == ("detail", False)
    assert f"larger than {DETAIL_MAX_BYTES} bytes" in detail.reason
    envelope = rejection({**example(), "replay-name": "r" * (EVENT_MAX_BYTES + 1)})
    assert envelope.field == "replay-name"


@pytest.mark.parametrize(
    ("path", "value"),
    [("detail.booking_version", 10**400), ("detail.party_size", float("nan")),
     ("detail.service.price.amount", float("inf")), ("detail.client.email", "jamie\ud800@example.com"),
     ("detail.client.phone", {1, 2}), ("detail.payment", {1: "x"})],
)
def test_values_json_cannot_carry_are_refused_by_path(path: str, value: object) -> None:
    assert rejection(set_path(example(), path, value)).field == path


def test_a_key_that_is_not_a_name_is_reported_at_its_object_and_not_repeated() -> None:
    event = example()
    event["detail"]["client"]["jamie.rivera@example.com"] = 1
    error = rejection(event)
    assert error.field == "detail.client"
    assert "jamie" not in str(error)


def test_the_json_text_sqs_delivers_is_parsed_and_refused_the_same_way() -> None:
    assert type(parse_booking_event(json.dumps(example()))) is AppointmentBooked
    twice = json.dumps(example()).replace('"booking_version": 1', '"booking_version": 1, "booking_version": 2')
    assert rejection(twice).field == "detail.booking_version"  # type: ignore[arg-type]
    long_number = json.dumps(example()).replace('"party_size": 1', '"party_size": 1' + "0" * 5000)
    assert rejection(long_number).field == "detail.party_size"  # type: ignore[arg-type]
    for text in ["{", "[1, 2]", '"event"', "[" * 100_000 + "]" * 100_000, b"\xff\xfe", " " * (2 * 1024 * 1024)]:
        assert rejection(text).field == "(event)"  # type: ignore[arg-type]


def _widest(length: int) -> str:
    return "\U0001f600" * length  # four bytes in UTF-8: the widest a character gets


def test_the_largest_events_the_field_bounds_allow_parse_well_under_the_size_limit() -> None:
    ids = {key: _widest(128) for key in ("event_id", "spa_id", "appointment_id", "location_id")}
    booked = example()
    booked["detail"].update(ids, booking_version=2**31 - 1, party_size=50)
    booked["detail"]["client"].update(id=_widest(128), email=_widest(249) + "@e.co", phone="+123456789012345",
                                      first_name=_widest(100))
    booked["detail"]["service"].update(name=_widest(200), category=_widest(64), duration_minutes=1440)
    booked["detail"]["payment"].update(stripe_customer_id="cus_" + "C" * 251,
                                       stripe_payment_method_id="pm_" + "P" * 252, course_id=_widest(128), course_session_available=True,
                                       gift_certificate={"amount": 99_999_999, "currency": "USD"},
                                       prepaid={"amount": 99_999_999, "currency": "USD"})
    waived = example("FeeWaived")
    waived["detail"].update({key: _widest(128) for key in ("event_id", "spa_id", "appointment_id", "ledger_entry_id",
                                                          "admin_id")}, purpose="p" * 64, reason=_widest(1000))
    for event in (booked, waived):
        parse_booking_event(event)
        size = len(json.dumps(event["detail"], ensure_ascii=False, separators=(",", ":")).encode())
        assert size <= DETAIL_MAX_BYTES // 2


# --- no PII in errors ----------------------------------------------------------------------------

# "Zq": generated text must not be a piece of the error's own words ("client" is in "detail.client.email").
pii_text = st.text(min_size=6, max_size=40).filter(lambda s: s.strip() == s and len(set(s)) > 2).map(
    lambda s: "Zq" + s)
phones = st.one_of(st.from_regex(r"\A\(?[0-9]{3}\)?[ .-]?[0-9]{3}[ .-][0-9]{4}\Z"), pii_text)
emails = st.one_of(st.from_regex(r"\A[a-z]{3,12}(at| )[a-z]{3,10}\.com\Z"), pii_text)


@settings(max_examples=200, deadline=None)
@given(phone=phones, email=emails)
def test_invalid_contact_values_never_appear_in_errors(phone: str, email: str) -> None:
    event = example()
    event["detail"]["client"].update(phone=phone, email=email)
    try:
        parse_booking_event(event)
    except InvalidBookingEvent as error:
        assert phone not in str(error) and email not in str(error)
        assert phone not in error.reason and email not in error.reason
        assert phone not in repr(error) and email not in repr(error)


@settings(max_examples=100, deadline=None)
@given(
    phone=st.from_regex(r"\A\+1[2-9][0-9]{9}\Z"),
    email=st.from_regex(r"\A[a-z]{6,12}@[a-z]{6,10}\.com\Z"),
    # "Zq": a generated name must not be a piece of the error's own words ("servic" is in "service").
    name=st.text(min_size=6, max_size=60).filter(lambda s: len(set(s)) > 2).map(lambda s: "Zq" + s),
)
def test_valid_contact_values_never_appear_when_something_else_fails(phone: str, email: str, name: str) -> None:
    event = example()
    event["detail"]["client"].update(phone=phone, email=email, nickname=name)
    event["detail"]["service"]["name"] = name
    event["detail"]["service"]["price"]["amount"] = 420.0
    with pytest.raises(InvalidBookingEvent) as caught:
        parse_booking_event(event)
    message = str(caught.value)
    assert phone not in message and email not in message and name not in message


@settings(max_examples=50, deadline=None)
@given(name=st.text(min_size=101, max_size=140).filter(lambda s: len(set(s)) > 2).map(lambda s: f"Zq{s}qZ"))
def test_a_first_name_is_not_echoed(name: str) -> None:
    for wrong in (name, 42):  # too long, or not text
        error = rejection(set_path(example(), "detail.client.first_name", wrong))
        assert error.field == "detail.client.first_name"
        assert name[:20] not in str(error) and name[:20] not in repr(error)


@settings(max_examples=50, deadline=None)
@given(reason=st.text(min_size=1001, max_size=1200).filter(lambda s: len(set(s)) > 2))
def test_free_text_is_not_echoed(reason: str) -> None:
    error = rejection(set_path(example("AppointmentCancelled"), "detail.reason", reason))
    assert error.field == "detail.reason"
    assert reason[:20] not in str(error)


# --- a balance paid at the desk (issue 11: outstanding balances) ---------------------------------


def test_a_desk_payment_parses_to_money_a_reference_and_an_aware_time() -> None:
    paid = parse_booking_event(example("OutstandingBalancePaid"))
    assert isinstance(paid, OutstandingBalancePaid)
    assert paid.amount == Money(amount=50000, currency="HKD")
    assert (paid.client_id, paid.payment_reference, paid.received_by) == ("c-5521", "TILL2-20250408-0147",
                                                                          "staff-frontdesk-03")
    assert paid.paid_at == datetime(2025, 4, 8, 3, 10, tzinfo=UTC)


@pytest.mark.parametrize("amount", [0, -1])
def test_a_desk_payment_of_nothing_or_less_is_refused_by_its_field(amount: int) -> None:
    error = rejection(set_path(example("OutstandingBalancePaid"), "detail.amount.amount", amount))
    assert error.field.startswith("detail.amount") and error.detail_type == "OutstandingBalancePaid"


@pytest.mark.parametrize(("path", "value"), [
    ("detail.amount.amount", 500.0), ("detail.amount.amount", "500"), ("detail.amount.amount", 100_000_000),
    ("detail.amount.currency", "hkd"), ("detail.paid_at", "2025-04-08T11:10:00"),
    ("detail.payment_reference", ""), ("detail.payment_reference", "R" * 65),
    ("detail.payment_reference", "TILL 2"), ("detail.payment_reference", "till#2"),
    ("detail.payment_reference", "-starts-with-a-dash"), ("detail.received_by", ""),
])
def test_a_desk_payment_is_strict_and_bounded_and_names_the_field(path: str, value: object) -> None:
    error = rejection(set_path(example("OutstandingBalancePaid"), path, value))
    assert error.field.startswith("detail.amount" if path.startswith("detail.amount") else path), str(error)
    assert "TILL 2" not in str(error) and "till#2" not in str(error)


def test_the_longest_payment_reference_is_accepted_and_a_booking_version_is_not() -> None:
    assert parse_booking_event(set_path(example("OutstandingBalancePaid"), "detail.payment_reference", "R" * 64))
    error = rejection(set_path(example("OutstandingBalancePaid"), "detail.booking_version", 3))
    assert error.field == "detail.booking_version"
