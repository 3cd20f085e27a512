"""Inbound SMS (CONFIRM / STOP / START / HELP) against the template's tables in moto."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest

from medspa.adapters.booking_site import BookingSiteUnavailable, InMemoryBookingSite
from medspa.adapters.messaging import InMemoryMessenger
from medspa.adapters.store import AppointmentBooking, AppointmentStatus, Channel, ClientProfile, Store
from medspa.domain.appointment import Service
from medspa.money import Money
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
_inbound = iter(range(10_000))


def sms(body: str, phone: str = PHONE, message_id: str | None = None) -> InboundSms:
    """One inbound text; each call is a new message unless ``message_id`` repeats one (a redelivery)."""
    return parse_inbound_message(json.dumps({
        "originationNumber": phone, "destinationNumber": "+18005550100", "messageKeyword": "KEYWORD",
        "messageBody": body, "inboundMessageId": message_id or f"in-{next(_inbound)}",
        "previousPublishedMessageId": "out-1"}))


def add_client(store: Store, client_id: str, phone: str | None = PHONE, email: str = "ana@example.com") -> None:
    store.clients.save_profile(ClientProfile(client_id=client_id, spa_id=client_id.split("#")[0], phone=phone,
                                             email=email), NOW - timedelta(days=30))


def book(store: Store, appointment_id: str, client_id: str, location_id: str, starts_in: timedelta,
         status: AppointmentStatus = AppointmentStatus.BOOKED) -> None:
    pack = PACKS[location_id]
    store.appointments.upsert_from_booking(AppointmentBooking(
        appointment_id=f"{client_id.split('#')[0]}#{appointment_id}", client_id=client_id, location_id=location_id,
        policy_version=pack.policy_version,
        service=Service(name="Botox", category="injection_laser", duration_minutes=30,
                        price=Money(amount=20_000, currency=pack.currency)),
        starts_at=NOW + starts_in, status=status, booking_version=1, event_id=f"evt-{next(_events)}",
    ), NOW - timedelta(days=7))


@pytest.fixture
def texts() -> InMemoryMessenger:
    """The confirmation texts the service sends back."""
    return InMemoryMessenger()


@pytest.fixture
def service(store: Store, texts: InMemoryMessenger) -> InboundSmsService:
    return InboundSmsService(store, PACKS, replies=texts)


def sms_opted_out(store: Store, phone: str = PHONE, spa_id: str = "bijoux") -> bool:
    return store.consent.opted_out("sms", phone, spa_id)


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

def test_stop_opts_the_number_out_of_sms_at_every_spa(store: Store, service: InboundSmsService,
                                                     texts: InMemoryMessenger) -> None:
    add_client(store, "bijoux#c-1")
    add_client(store, "glow#c-9")
    add_client(store, "bijoux#c-2", phone=OTHER_PHONE)
    outcome = service.handle(sms(" Stop. "), NOW)
    assert (outcome.intent, outcome.action, outcome.clients, outcome.consent_changed, outcome.reply) == (
        "opt_out", "opted_out", 2, True, "sent")
    assert all(sms_opted_out(store, spa_id=spa) for spa in ("bijoux", "glow", "406medicalspa", "a-spa-not-yet-seen"))
    record = store.consent.get("sms", PHONE, "bijoux")
    assert (record.how, record.changed_at, record.evidence) == ("keyword", NOW, outcome.inbound_message_id)
    assert not store.consent.opted_out("email", "ana@example.com", "bijoux")
    assert not sms_opted_out(store, OTHER_PHONE)
    again = service.handle(sms("STOP"), NOW)  # a second STOP is a new message: it gets its own confirmation
    assert (again.action, again.consent_changed, again.reply) == ("opted_out", False, "sent")
    assert [t.phone for t in texts.sms] == [PHONE, PHONE]


def test_start_opts_the_number_back_in_and_clears_old_per_client_flags(store: Store, service: InboundSmsService,
                                                                      texts: InMemoryMessenger) -> None:
    add_client(store, "bijoux#c-1")
    add_client(store, "glow#c-9")
    store.clients.set_opt_out("glow#c-9", Channel.SMS, True, NOW)  # what an older release recorded
    service.handle(sms("UNSUBSCRIBE"), NOW)
    outcome = service.handle(sms("start"), NOW + timedelta(minutes=5))
    assert (outcome.intent, outcome.action, outcome.consent_changed) == ("opt_in", "opted_in", True)
    assert not sms_opted_out(store) and store.consent.get("sms", PHONE, "glow").opted_out is False
    assert not any(c.sms_opt_out for c in store.clients.find_by_phone(PHONE))
    assert "subscribed again" in texts.sms[-1].body


def test_a_number_can_opt_out_before_any_client_has_it(store: Store, service: InboundSmsService,
                                                       texts: InMemoryMessenger) -> None:
    outcome = service.handle(sms("REVOKE"), NOW)
    assert (outcome.action, outcome.clients, outcome.reply) == ("opted_out", 0, "sent")
    assert sms_opted_out(store)
    assert texts.sms[0].body.startswith("Appointment texts: you are unsubscribed")


def test_a_stop_redelivered_after_the_start_that_followed_it_does_not_win(store: Store,
                                                                          service: InboundSmsService) -> None:
    add_client(store, "bijoux#c-1")
    stop = sms("STOP")
    service.handle(stop, NOW, received_at=NOW)
    service.handle(sms("START"), NOW + timedelta(minutes=1), received_at=NOW + timedelta(minutes=1))
    late = service.handle(stop, NOW + timedelta(hours=1), received_at=NOW)  # SNS/Lambda retry of the STOP
    assert (late.consent_changed, late.reply) == (False, "duplicate")
    assert not sms_opted_out(store)


# --- one confirmation text per inbound message --------------------------------------------------

@pytest.mark.parametrize("body", ["STOP", "START", "HELP"])
def test_a_redelivered_keyword_is_answered_once(store: Store, service: InboundSmsService, texts: InMemoryMessenger,
                                                body: str) -> None:
    add_client(store, "bijoux#c-1")
    message = sms(body, message_id="in-redelivered")
    first, second = service.handle(message, NOW), service.handle(message, NOW + timedelta(seconds=30))
    assert (first.reply, second.reply) == ("sent", "duplicate")
    assert len(texts.sms) == 1


def test_a_reply_that_could_not_be_sent_is_sent_on_redelivery(store: Store, texts: InMemoryMessenger) -> None:
    add_client(store, "bijoux#c-1")
    message = sms("STOP", message_id="in-retry")
    failing = InboundSmsService(store, PACKS, replies=InMemoryMessenger(fail_sms=True))
    with pytest.raises(ConnectionError):
        failing.handle(message, NOW)
    assert sms_opted_out(store)  # recorded before the reply: the opt-out never waits for SNS
    assert InboundSmsService(store, PACKS, replies=texts).handle(message, NOW).reply == "sent"
    assert len(texts.sms) == 1


def test_help_gets_the_contact_line_of_the_clients_location(store: Store, service: InboundSmsService,
                                                            texts: InMemoryMessenger) -> None:
    add_client(store, "bijoux#c-1")
    add_client(store, "406medicalspa#c-4")
    book(store, "soon", "406medicalspa#c-4", "406medicalspa", timedelta(days=2))
    book(store, "later", "bijoux#c-1", "bijoux", timedelta(days=9))
    outcome = service.handle(sms("help"), NOW)
    assert (outcome.intent, outcome.action, outcome.consent_changed, outcome.reply) == (
        "help", "help_answered", False, "sent")
    [reply] = texts.sms
    assert reply.phone == PHONE and reply.body.startswith("406MedicalSpa: 406-287-6565, hello@406medicalspa.com.")
    assert not sms_opted_out(store)


def test_keywords_come_from_the_pack_of_the_soonest_visit_else_the_spa(store: Store,
                                                                          service: InboundSmsService) -> None:
    """退訂 is an opt-out word only in Glow's pack; END only in Bijoux's (and MassageLuXe's)."""
    add_client(store, "glow#c-9")
    book(store, "g-1", "glow#c-9", "glow-hk", timedelta(days=2))
    assert service.handle(sms("退訂"), NOW).action == "opted_out"
    add_client(store, "massageluxe#c-5", phone=OTHER_PHONE)  # no visit booked: any MassageLuXe pack
    assert service.handle(sms("end", OTHER_PHONE), NOW).action == "opted_out"  # a base word
    assert service.handle(sms("退訂", OTHER_PHONE), NOW).action == "not_a_keyword"


def test_opt_out_in_any_of_the_numbers_packs_wins(store: Store, service: InboundSmsService) -> None:
    add_client(store, "bijoux#c-1")
    add_client(store, "glow#c-9")
    outcome = service.handle(sms("退訂"), NOW)  # Glow's word; Bijoux's pack does not know it
    assert (outcome.action, outcome.consent_changed) == ("opted_out", True)
    assert sms_opted_out(store, spa_id="bijoux")


# --- CONFIRM ------------------------------------------------------------------------------------

def test_confirm_records_the_soonest_open_visit(store: Store, service: InboundSmsService) -> None:
    add_client(store, "406medicalspa#c-4")
    book(store, "past", "406medicalspa#c-4", "406medicalspa", -timedelta(hours=2))
    book(store, "later", "406medicalspa#c-4", "406medicalspa", timedelta(days=9))
    book(store, "soon", "406medicalspa#c-4", "406medicalspa", timedelta(hours=20))
    book(store, "cancelled", "406medicalspa#c-4", "406medicalspa", timedelta(hours=3), AppointmentStatus.CANCELLED)
    version = store.appointments.get("406medicalspa#soon").record_version
    outcome = service.handle(sms("Yes!"), NOW)
    assert (outcome.intent, outcome.action, outcome.appointment_id, outcome.clients) == (
        "confirm", "confirmed", "406medicalspa#soon", 1)
    soon = store.appointments.get("406medicalspa#soon")
    assert (soon.client_confirmed_at, soon.client_confirmed_via) == (NOW, "sms")
    assert soon.status is AppointmentStatus.BOOKED and soon.record_version == version + 1
    assert store.appointments.get("406medicalspa#later").client_confirmed_at is None
    assert store.appointments.get("406medicalspa#past").client_confirmed_at is None


def test_a_repeated_confirm_is_not_passed_on_to_a_later_visit(store: Store, service: InboundSmsService) -> None:
    add_client(store, "406medicalspa#c-4")
    book(store, "soon", "406medicalspa#c-4", "406medicalspa", timedelta(hours=20))
    book(store, "later", "406medicalspa#c-4", "406medicalspa", timedelta(days=9))
    service.handle(sms("C"), NOW)
    again = service.handle(sms("CONFIRM"), NOW + timedelta(minutes=1))
    assert (again.action, again.appointment_id) == ("already_confirmed", None)
    assert store.appointments.get("406medicalspa#soon").client_confirmed_at == NOW
    assert store.appointments.get("406medicalspa#later").client_confirmed_at is None


def test_a_visit_the_spa_already_confirmed_is_left_alone(store: Store, service: InboundSmsService) -> None:
    add_client(store, "bijoux#c-1")
    book(store, "a-1", "bijoux#c-1", "bijoux", timedelta(days=1), AppointmentStatus.CONFIRMED)
    assert service.handle(sms("yes"), NOW).action == "already_confirmed"
    assert store.appointments.get("bijoux#a-1").client_confirmed_at is None


def test_a_confirmation_by_sms_is_sent_to_the_booking_site(store: Store, texts: InMemoryMessenger) -> None:
    inbox = InMemoryBookingSite()
    service = InboundSmsService(store, PACKS, replies=texts, booking_site=inbox)
    add_client(store, "406medicalspa#c-4")
    book(store, "soon", "406medicalspa#c-4", "406medicalspa", timedelta(hours=20))
    service.handle(sms("Yes"), NOW)
    [(kind, event_id, detail)] = inbox.received
    assert kind == "AppointmentConfirmedByClient"
    assert event_id == "406medicalspa#soon:confirmed-by-client:20260309T160000Z"
    assert detail == {"spa_id": "406medicalspa", "appointment_id": "soon", "client_id": "c-4", "booking_version": 1,
                      "channel": "sms", "confirmed_at": NOW.isoformat()}


def test_a_confirmation_whose_event_failed_is_sent_when_the_message_is_redelivered(
        store: Store, texts: InMemoryMessenger) -> None:
    inbox = InMemoryBookingSite(fail_next=1)
    service = InboundSmsService(store, PACKS, replies=texts, booking_site=inbox)
    add_client(store, "406medicalspa#c-4")
    book(store, "soon", "406medicalspa#c-4", "406medicalspa", timedelta(hours=20))
    with pytest.raises(BookingSiteUnavailable):
        service.handle(sms("Yes", message_id="in-once"), NOW)
    assert store.appointments.get("406medicalspa#soon").client_confirmed_at == NOW  # recorded before telling
    redelivered = service.handle(sms("Yes", message_id="in-once"), NOW + timedelta(seconds=30))
    assert redelivered.action == "already_confirmed"
    [(_, event_id, detail)] = inbox.received
    assert event_id.endswith(":20260309T160000Z") and detail["confirmed_at"] == NOW.isoformat()


def test_a_visit_the_booking_site_confirmed_is_not_announced_back(store: Store, texts: InMemoryMessenger) -> None:
    inbox = InMemoryBookingSite()
    add_client(store, "bijoux#c-1")
    book(store, "a-1", "bijoux#c-1", "bijoux", timedelta(days=1), AppointmentStatus.CONFIRMED)
    InboundSmsService(store, PACKS, replies=texts, booking_site=inbox).handle(sms("yes"), NOW)
    assert inbox.received == []


def test_confirm_picks_the_soonest_visit_across_spas(store: Store, service: InboundSmsService) -> None:
    add_client(store, "bijoux#c-1")
    add_client(store, "glow#c-9")
    book(store, "b-1", "bijoux#c-1", "bijoux", timedelta(days=3))
    book(store, "g-1", "glow#c-9", "glow-hk", timedelta(days=1))
    outcome = service.handle(sms("Y"), NOW)
    assert (outcome.appointment_id, outcome.clients) == ("glow#g-1", 2)
    assert store.appointments.get("bijoux#b-1").client_confirmed_at is None


def test_confirm_with_nothing_upcoming_does_nothing(store: Store, service: InboundSmsService) -> None:
    add_client(store, "bijoux#c-1")
    book(store, "past", "bijoux#c-1", "bijoux", -timedelta(days=1))
    assert service.handle(sms("CONFIRM"), NOW).action == "nothing_to_confirm"
    assert store.appointments.get("bijoux#past").client_confirmed_at is None


# --- no-ops -------------------------------------------------------------------------------------

@pytest.mark.parametrize("body", ["yes but I'll be 10 minutes late", "please stop texting me", "can I cancel?!", ""])
def test_free_text_changes_nothing_and_gets_no_reply(store: Store, service: InboundSmsService,
                                                     texts: InMemoryMessenger, body: str) -> None:
    add_client(store, "bijoux#c-1")
    book(store, "a-1", "bijoux#c-1", "bijoux", timedelta(days=1))
    before = store.clients.get("bijoux#c-1")
    outcome = service.handle(sms(body), NOW)
    assert (outcome.intent, outcome.action, outcome.consent_changed, outcome.reply, outcome.appointment_id) == (
        "unknown", "not_a_keyword", False, "none", None)
    assert store.clients.get("bijoux#c-1") == before and store.consent.get("sms", PHONE, "bijoux") is None
    assert store.appointments.get("bijoux#a-1").client_confirmed_at is None
    assert texts.sms == []


def test_a_confirm_from_an_unknown_number_does_nothing(store: Store, service: InboundSmsService,
                                                       texts: InMemoryMessenger) -> None:
    add_client(store, "bijoux#c-1")
    book(store, "a-1", "bijoux#c-1", "bijoux", timedelta(days=1))
    outcome = service.handle(sms("C", phone=OTHER_PHONE), NOW)
    assert (outcome.intent, outcome.action, outcome.clients) == ("confirm", "unknown_sender", 0)
    assert store.appointments.get("bijoux#a-1").client_confirmed_at is None and texts.sms == []


def test_a_client_of_a_spa_without_a_pack_here_can_still_opt_out(store: Store, service: InboundSmsService) -> None:
    add_client(store, "imagelab#c-1")
    outcome = service.handle(sms("STOP"), NOW)
    assert (outcome.action, outcome.clients, outcome.reply) == ("opted_out", 1, "sent")
    assert sms_opted_out(store, spa_id="imagelab")


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
