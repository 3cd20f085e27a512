"""Inbound SMS (CONFIRM / STOP / START / HELP) against the template's tables in moto."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest

from medspa.adapters.store import AppointmentBooking, AppointmentStatus, ClientProfile, Store
from medspa.domain.appointment import Service
from medspa.domain.money import Money
from medspa.services.inbound_sms import (
    InboundSms,
    InboundSmsService,
    InvalidInboundSms,
    parse_inbound_message,
)
from tests.support.packs import PACKS

NOW = datetime(2026, 3, 9, 16, 0, tzinfo=UTC)
PHONE = "+14075550123"
OTHER_PHONE = "+14075550999"
_events = iter(range(10_000))


def sms(body: str, phone: str = PHONE) -> InboundSms:
    return parse_inbound_message(json.dumps({
        "originationNumber": phone, "destinationNumber": "+18005550100", "messageKeyword": "KEYWORD",
        "messageBody": body, "inboundMessageId": "in-1", "previousPublishedMessageId": "out-1"}))


def add_client(store: Store, client_id: str, phone: str | None = PHONE, email: str = "ana@example.com") -> None:
    store.clients.save_profile(ClientProfile(client_id=client_id, spa_id=client_id.split("#")[0], phone=phone,
                                             email=email), NOW - timedelta(days=30))


def book(store: Store, appointment_id: str, client_id: str, location_id: str, starts_in: timedelta,
         status: AppointmentStatus = AppointmentStatus.BOOKED) -> None:
    pack = PACKS[location_id]
    store.appointments.upsert_from_booking(AppointmentBooking(
        appointment_id=appointment_id, client_id=client_id, location_id=location_id,
        policy_version=pack.policy_version,
        service=Service(name="Botox", category="injection_laser", duration_minutes=30,
                        price=Money(amount=20_000, currency=pack.currency)),
        starts_at=NOW + starts_in, status=status, booking_version=1, event_id=f"evt-{next(_events)}",
    ), NOW - timedelta(days=7))


@pytest.fixture
def service(store: Store) -> InboundSmsService:
    return InboundSmsService(store, PACKS)


# --- finding clients by phone -------------------------------------------------------------------

def test_find_by_phone_returns_every_spas_client_with_that_number(store: Store) -> None:
    add_client(store, "glow#c-9")
    add_client(store, "bijoux#c-1")
    add_client(store, "bijoux#c-2", phone=OTHER_PHONE)
    add_client(store, "bijoux#c-3", phone=None)
    assert [c.client_id for c in store.clients.find_by_phone(PHONE)] == ["bijoux#c-1", "glow#c-9"]
    assert store.clients.find_by_phone("+19999999999") == []
    assert store.clients.find_by_phone("407-555-0123") == []


# --- STOP / START -------------------------------------------------------------------------------

def test_stop_opts_every_client_with_the_number_out_of_sms_only(store: Store, service: InboundSmsService) -> None:
    add_client(store, "bijoux#c-1")
    add_client(store, "glow#c-9")
    add_client(store, "bijoux#c-2", phone=OTHER_PHONE)
    outcome = service.handle(sms(" Stop. "), NOW)
    assert (outcome.intent, outcome.action, outcome.clients, outcome.clients_changed) == ("opt_out", "opted_out", 2, 2)
    for client_id in ("bijoux#c-1", "glow#c-9"):
        client = store.clients.get(client_id)
        assert client.sms_opt_out and not client.email_opt_out
    assert not store.clients.get("bijoux#c-2").sms_opt_out
    again = service.handle(sms("STOP"), NOW)
    assert (again.action, again.clients_changed) == ("opted_out", 0)


def test_start_opts_them_back_in(store: Store, service: InboundSmsService) -> None:
    add_client(store, "bijoux#c-1")
    add_client(store, "glow#c-9")
    service.handle(sms("UNSUBSCRIBE"), NOW)
    outcome = service.handle(sms("start"), NOW + timedelta(minutes=5))
    assert (outcome.intent, outcome.action, outcome.clients_changed) == ("opt_in", "opted_in", 2)
    assert not any(c.sms_opt_out for c in store.clients.find_by_phone(PHONE))


def test_keywords_come_from_the_pack_of_the_soonest_visit_else_the_spa(store: Store,
                                                                          service: InboundSmsService) -> None:
    """退訂 is an opt-out word only in Glow's pack; END only in Bijoux's (and MassageLuXe's)."""
    add_client(store, "glow#c-9")
    book(store, "g-1", "glow#c-9", "glow-hk", timedelta(days=2))
    assert service.handle(sms("退訂"), NOW).action == "opted_out"
    add_client(store, "massageluxe#c-5", phone=OTHER_PHONE)  # no visit booked: any MassageLuXe pack
    assert service.handle(sms("end", OTHER_PHONE), NOW).action == "opted_out"
    assert service.handle(sms("退訂", OTHER_PHONE), NOW).action == "not_a_keyword"


def test_opt_out_in_any_of_the_numbers_packs_wins(store: Store, service: InboundSmsService) -> None:
    add_client(store, "bijoux#c-1")
    add_client(store, "glow#c-9")
    outcome = service.handle(sms("退訂"), NOW)  # Glow's word; Bijoux's pack does not know it
    assert (outcome.action, outcome.clients_changed) == ("opted_out", 2)
    assert store.clients.get("bijoux#c-1").sms_opt_out


# --- CONFIRM ------------------------------------------------------------------------------------

def test_confirm_records_the_soonest_open_visit(store: Store, service: InboundSmsService) -> None:
    add_client(store, "406medicalspa#c-4")
    book(store, "past", "406medicalspa#c-4", "406medicalspa", -timedelta(hours=2))
    book(store, "later", "406medicalspa#c-4", "406medicalspa", timedelta(days=9))
    book(store, "soon", "406medicalspa#c-4", "406medicalspa", timedelta(hours=20))
    book(store, "cancelled", "406medicalspa#c-4", "406medicalspa", timedelta(hours=3), AppointmentStatus.CANCELLED)
    version = store.appointments.get("soon").record_version
    outcome = service.handle(sms("Yes!"), NOW)
    assert (outcome.intent, outcome.action, outcome.appointment_id, outcome.clients) == (
        "confirm", "confirmed", "soon", 1)
    soon = store.appointments.get("soon")
    assert (soon.client_confirmed_at, soon.client_confirmed_via) == (NOW, "sms")
    assert soon.status is AppointmentStatus.BOOKED and soon.record_version == version + 1
    assert store.appointments.get("later").client_confirmed_at is None
    assert store.appointments.get("past").client_confirmed_at is None


def test_a_repeated_confirm_is_not_passed_on_to_a_later_visit(store: Store, service: InboundSmsService) -> None:
    add_client(store, "406medicalspa#c-4")
    book(store, "soon", "406medicalspa#c-4", "406medicalspa", timedelta(hours=20))
    book(store, "later", "406medicalspa#c-4", "406medicalspa", timedelta(days=9))
    service.handle(sms("C"), NOW)
    again = service.handle(sms("CONFIRM"), NOW + timedelta(minutes=1))
    assert (again.action, again.appointment_id) == ("already_confirmed", None)
    assert store.appointments.get("soon").client_confirmed_at == NOW
    assert store.appointments.get("later").client_confirmed_at is None


def test_a_visit_the_spa_already_confirmed_is_left_alone(store: Store, service: InboundSmsService) -> None:
    add_client(store, "bijoux#c-1")
    book(store, "a-1", "bijoux#c-1", "bijoux", timedelta(days=1), AppointmentStatus.CONFIRMED)
    assert service.handle(sms("yes"), NOW).action == "already_confirmed"
    assert store.appointments.get("a-1").client_confirmed_at is None


def test_confirm_picks_the_soonest_visit_across_spas(store: Store, service: InboundSmsService) -> None:
    add_client(store, "bijoux#c-1")
    add_client(store, "glow#c-9")
    book(store, "b-1", "bijoux#c-1", "bijoux", timedelta(days=3))
    book(store, "g-1", "glow#c-9", "glow-hk", timedelta(days=1))
    outcome = service.handle(sms("Y"), NOW)
    assert (outcome.appointment_id, outcome.clients) == ("g-1", 2)
    assert store.appointments.get("b-1").client_confirmed_at is None


def test_confirm_with_nothing_upcoming_does_nothing(store: Store, service: InboundSmsService) -> None:
    add_client(store, "bijoux#c-1")
    book(store, "past", "bijoux#c-1", "bijoux", -timedelta(days=1))
    assert service.handle(sms("CONFIRM"), NOW).action == "nothing_to_confirm"
    assert store.appointments.get("past").client_confirmed_at is None


# --- no-ops -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "intent", "action"), [
    ("yes but I'll be 10 minutes late", "unknown", "not_a_keyword"),
    ("cancel", "unknown", "not_a_keyword"),
    ("", "unknown", "not_a_keyword"),
    ("HELP", "help", "help_left_to_aws"),
])
def test_free_text_and_help_change_nothing(store: Store, service: InboundSmsService, body: str, intent: str,
                                            action: str) -> None:
    add_client(store, "bijoux#c-1")
    book(store, "a-1", "bijoux#c-1", "bijoux", timedelta(days=1))
    before = store.clients.get("bijoux#c-1")
    outcome = service.handle(sms(body), NOW)
    assert (outcome.intent, outcome.action, outcome.clients_changed, outcome.appointment_id) == (
        intent, action, 0, None)
    assert store.clients.get("bijoux#c-1") == before
    assert store.appointments.get("a-1").client_confirmed_at is None


def test_an_unknown_number_is_a_no_op(store: Store, service: InboundSmsService) -> None:
    add_client(store, "bijoux#c-1")
    outcome = service.handle(sms("STOP", phone=OTHER_PHONE), NOW)
    assert (outcome.intent, outcome.action, outcome.clients) == ("unknown", "unknown_sender", 0)
    assert not store.clients.get("bijoux#c-1").sms_opt_out


def test_a_client_of_a_spa_without_a_pack_here_is_a_no_op(store: Store) -> None:
    add_client(store, "imagelab#c-1")
    outcome = InboundSmsService(store, PACKS).handle(sms("STOP"), NOW)
    assert (outcome.action, outcome.clients) == ("no_policy", 1)
    assert not store.clients.get("imagelab#c-1").sms_opt_out


# --- parsing and privacy ------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "reason"), [
    ("not json", "not JSON"),
    ("[1, 2]", "not a JSON object"),
    (json.dumps({"messageBody": "STOP"}), "originationNumber"),
    (json.dumps({"originationNumber": "407-555-0123", "messageBody": "STOP"}), "originationNumber"),
    (json.dumps({"originationNumber": PHONE}), "messageBody"),
    (None, "not JSON"),
])
def test_a_malformed_message_is_refused_naming_fields_not_values(raw, reason: str) -> None:
    with pytest.raises(InvalidInboundSms, match=reason) as error:
        parse_inbound_message(raw)
    assert "407" not in str(error.value) and "STOP" not in str(error.value)
    assert error.value.__cause__ is None  # the validation error (which quotes values) is not chained
    assert error.value.__context__ is None or error.value.__suppress_context__


def test_outcomes_and_logs_carry_no_phone_or_text(store: Store, service: InboundSmsService,
                                                  caplog: pytest.LogCaptureFixture,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logging.getLogger("medspa"), "propagate", True)
    caplog.set_level("DEBUG", logger="medspa")
    add_client(store, "406medicalspa#c-4")
    book(store, "soon", "406medicalspa#c-4", "406medicalspa", timedelta(hours=20))
    outcomes = [service.handle(sms(body), NOW) for body in ("yes", "Call me please", "STOP")]
    outcomes.append(service.handle(sms("Who is this?", phone=OTHER_PHONE), NOW))
    dumped = json.dumps([o.model_dump() for o in outcomes])
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert len(caplog.records) == 4
    for text in (dumped, logged, repr(sms("Call me please")), str(sms("STOP"))):
        assert "5550123" not in text and "5550999" not in text
        assert "Call me" not in text and "Who is this" not in text and "'yes'" not in text
