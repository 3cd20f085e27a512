"""The in-memory store keeps the contract of the pynamodb one, so service tests and backtests on it cannot drift.

Every test runs twice, on ``InMemoryStore`` and on ``Store`` over the template's tables in moto (the privacy audit:
``InMemoryPrivacyAudit`` and its table), with the same assertions: the newest booking version wins in any delivery
order, a duplicate changes nothing and a conflicting event or a stale writer raises the same error, strikes and
balance movements count once, a ledger entry moves only along the allowed outcomes, a later consent change wins
and an erasure forgets only the address's own records, and the audit is append-only. The last test plays one
script of calls against both and requires equal answers, field for field, so a difference nobody thought to assert
still shows.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from medspa.adapters.store import Store
from medspa.adapters.store.audit import InMemoryPrivacyAudit, PrivacyAuditRepository
from medspa.adapters.store.memory import InMemoryStore
from medspa.domain.appointment import PaymentContext, Service
from medspa.domain.booking import (
    AppointmentBooking,
    AppointmentStatus,
    BookingFacts,
    CardCheck,
    FeeState,
    LifecycleOutcome,
    LifecycleRun,
    MessageLog,
    MessageResult,
    Violation,
)
from medspa.domain.client import Channel, ClientProfile
from medspa.domain.ledger import EntryKind, EntryStatus, account_entry_id, ledger_entry_id
from medspa.money import Money
from medspa.ports.privacy import Action, PrivacyAudit, PrivacyRequestRecord
from medspa.ports.store import (
    AppointmentNotFound,
    ClientErased,
    ClientNotFound,
    ConcurrentUpdate,
    ConflictingEvent,
    InsufficientBalance,
    LedgerConflict,
    LedgerEntryNotFound,
    StaleVersion,
    Stores,
)
from tests.support.fixtures import REGION

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
APPT, CLIENT = "bijoux#appt-1", "bijoux#c-1"
PHONE = "+14075550123"


@pytest.fixture(params=["in_memory", "dynamodb"])
def stores(request: pytest.FixtureRequest) -> Stores:
    if request.param == "in_memory":
        return InMemoryStore()
    store: Store = request.getfixturevalue("store")
    return store


def usd(cents: int) -> Money:
    return Money(amount=cents, currency="USD")


def booking(version: int, revision: int = 0, appointment_id: str = APPT, **changes: Any) -> AppointmentBooking:
    fields: dict[str, Any] = dict(
        appointment_id=appointment_id, client_id=CLIENT, location_id="bijoux-nyc", policy_version="bijoux-2026.1",
        service=Service(name="Botox", category="injection", duration_minutes=30, price=usd(40_000 + version)),
        starts_at=T0 + timedelta(days=3, hours=version), status=AppointmentStatus.BOOKED, booking_version=version,
        event_id=f"evt-{version}", payment=PaymentContext(card_on_file=True, prepaid=usd(1_000) if version else None),
        revision=revision)
    return AppointmentBooking(**(fields | changes))


def profile(client_id: str = CLIENT, **details: Any) -> ClientProfile:
    return ClientProfile(client_id=client_id, spa_id=client_id.split("#")[0], **details)


def detail(version: int) -> str:
    return json.dumps({"appointment_id": "appt-1", "booking_version": version, "client": {"phone": "+12125550123"}})


# ------------------------------------------------------------------------------------------------ appointments


def test_an_appointment_is_unknown_until_its_booking_is_folded_though_its_events_are_kept(stores: Stores) -> None:
    appointments = stores.appointments
    assert appointments.get(APPT) is None and appointments.history(APPT) == []
    assert appointments.record_event(APPT, 2, "AppointmentCancelled", "evt-2", detail(2), T0) is True
    assert appointments.get(APPT) is None
    assert appointments.record_event(APPT, 1, "AppointmentBooked", "evt-1", detail(1), T0) is True
    assert [kind for kind, _ in appointments.history(APPT)] == ["AppointmentBooked", "AppointmentCancelled"]
    assert json.loads(appointments.history(APPT)[0][1])["booking_version"] == 1
    with pytest.raises(AppointmentNotFound):
        appointments.record_message(APPT, MessageLog(key="k", kind="k", due_at=T0, status="due"), T0)


def test_the_same_event_twice_is_kept_once_and_another_event_for_its_version_is_a_conflict(stores: Stores) -> None:
    appointments = stores.appointments
    assert appointments.record_event(APPT, 1, "AppointmentBooked", "evt-1", detail(1), T0) is True
    assert appointments.record_event(APPT, 1, "AppointmentBooked", "evt-1", detail(1), T0) is False
    with pytest.raises(ConflictingEvent):
        appointments.record_event(APPT, 1, "AppointmentBooked", "evt-other", detail(1), T0)
    assert len(appointments.history(APPT)) == 1


@pytest.mark.parametrize("order", [(1, 2, 3), (3, 2, 1), (2, 3, 1), (3, 3, 1, 2, 2)])
def test_the_newest_booking_version_wins_whatever_the_delivery_order(stores: Stores, order: tuple[int, ...]) -> None:
    applied = [stores.appointments.upsert_from_booking(booking(v), T0 + timedelta(minutes=i)).applied
               for i, v in enumerate(order)]
    stored = stores.appointments.get(APPT)
    assert stored is not None
    assert (stored.booking_version, stored.last_event_id, stored.service.price) == (3, "evt-3", usd(40_003))
    assert applied == [v == max(order[:i + 1]) and v not in order[:i] for i, v in enumerate(order)]
    assert stored.record_version == sum(applied)
    assert stored.created_at == T0


def test_a_late_event_refolds_the_same_version_but_keeps_when_that_version_first_ran(stores: Stores) -> None:
    appointments = stores.appointments
    appointments.upsert_from_booking(booking(2, revision=1), T0)
    refolded = appointments.upsert_from_booking(booking(2, revision=2, status=AppointmentStatus.CONFIRMED), T0)
    assert refolded.applied and refolded.appointment.revision == 2
    assert refolded.appointment.version_revision == 1 and refolded.appointment.status is AppointmentStatus.CONFIRMED
    again = appointments.upsert_from_booking(booking(2, revision=2), T0 + timedelta(hours=1))
    assert not again.applied and again.appointment == refolded.appointment
    older = appointments.upsert_from_booking(booking(1, revision=5), T0)
    assert not older.applied and older.appointment.booking_version == 2


def test_the_lifecycle_fields_survive_a_newer_booking(stores: Stores) -> None:
    appointments = stores.appointments
    appointments.upsert_from_booking(booking(1), T0)
    appointments.record_message(APPT, MessageLog(key="reminder_48h", kind="reminder_48h", due_at=T0, status="sent",
                                                 sent_at=T0), T0)
    appointments.record_fee(APPT, FeeState(reason="late_cancel", outcome="settled", fee=usd(5_000), updated_at=T0))
    appointments.record_told(APPT, "balance_due@booked", T0)
    appointments.record_told(APPT, "balance_due@booked", T0)
    appointments.set_execution(APPT, 1, "bijoux.appt-1-v1", "arn:v1", T0)
    facts = BookingFacts(violations=(Violation(reason="late_cancel", booking_version=2, decided_at=T0,
                                               notice_minutes=60),))
    stored = appointments.upsert_from_booking(booking(2, facts=facts), T0 + timedelta(hours=1)).appointment
    assert [m.key for m in stored.messages] == ["reminder_48h"]
    assert stored.fees["late_cancel"].fee == usd(5_000)
    assert stored.told_booking_site == frozenset({"balance_due@booked"})
    assert stored.execution_name == "bijoux.appt-1-v1" and stored.facts == facts
    assert stored.version_stored_at == T0 + timedelta(hours=1) and stored.created_at == T0


def test_a_stale_run_cannot_record_its_execution(stores: Stores) -> None:
    appointments = stores.appointments
    with pytest.raises(AppointmentNotFound):
        appointments.set_execution(APPT, 1, "bijoux.appt-1-v1", "arn:v1", T0)
    appointments.upsert_from_booking(booking(2, revision=2), T0)
    with pytest.raises(StaleVersion):
        appointments.set_execution(APPT, 1, "bijoux.appt-1-v1", "arn:v1", T0)
    with pytest.raises(StaleVersion):
        appointments.set_execution(APPT, 2, "bijoux.appt-1-v2", "arn:v2", T0, revision=1)
    stored = appointments.set_execution(APPT, 2, "bijoux.appt-1-v2", "arn:v2", T0, revision=2)
    assert (stored.execution_name, stored.execution_arn) == ("bijoux.appt-1-v2", "arn:v2")


def test_the_run_chosen_for_a_fold_outlives_later_folds_until_another_is_chosen(stores: Stores) -> None:
    appointments = stores.appointments
    run = LifecycleRun(booking_version=1, revision=1, name="bijoux.appt-1-v1", chosen_at="1.1")
    with pytest.raises(AppointmentNotFound):
        appointments.choose_run(APPT, 1, 1, run, T0)
    appointments.upsert_from_booking(booking(1, revision=1), T0)
    chosen = appointments.choose_run(APPT, 1, 1, run, T0)
    assert chosen.run == run and chosen.run_chosen and chosen.run_identity == (1, 1)
    folded = appointments.upsert_from_booking(booking(2, revision=2), T0).appointment
    assert folded.run == run and not folded.run_chosen and folded.run_identity == (1, 1)
    with pytest.raises(StaleVersion):
        appointments.choose_run(APPT, 1, 1, run, T0)
    kept = appointments.choose_run(APPT, 2, 2, run.model_copy(update={"chosen_at": "2.2"}), T0)
    assert kept.run_chosen and kept.run_identity == (1, 1) and kept.booking_version == 2


def test_the_lifecycle_outcome_counts_only_for_the_revision_it_was_planned_from(stores: Stores) -> None:
    appointments = stores.appointments
    appointments.upsert_from_booking(booking(1, revision=1), T0)
    attended = appointments.record_outcome(APPT, LifecycleOutcome(status="attended", revision=1, at=T0))
    assert attended.status is AppointmentStatus.BOOKED and attended.outcome is not None
    no_show = appointments.record_outcome(APPT, LifecycleOutcome(status="no_show", revision=1, at=T0))
    assert no_show.status is AppointmentStatus.NO_SHOW and no_show.booking_status is AppointmentStatus.BOOKED
    stale = appointments.record_outcome(APPT, LifecycleOutcome(status="auto_cancelled", revision=0, at=T0))
    assert stale == no_show
    refolded = appointments.upsert_from_booking(booking(1, revision=2), T0).appointment
    assert refolded.status is AppointmentStatus.BOOKED, "an outcome of an older revision is no longer the status"


def test_a_status_is_written_only_on_top_of_the_version_read(stores: Stores) -> None:
    appointments = stores.appointments
    read = appointments.upsert_from_booking(booking(1), T0).appointment
    mark_status = getattr(appointments, "mark_status")
    confirmed = mark_status(APPT, AppointmentStatus.CONFIRMED, read.record_version, T0 + timedelta(minutes=1))
    assert confirmed.confirmed_at == T0 + timedelta(minutes=1)
    with pytest.raises(ConcurrentUpdate):
        mark_status(APPT, AppointmentStatus.CHECKED_IN, read.record_version, T0)


def test_writes_bump_the_record_version_and_card_checks_and_confirmations_keep_what_they_should(
        stores: Stores) -> None:
    appointments = stores.appointments
    first = appointments.upsert_from_booking(booking(1), T0).appointment
    check = CardCheck(starts_at=first.starts_at, outcome="expired", checked_at=T0, code="expired_card")
    checked = appointments.record_card_check(APPT, check)
    assert checked.card_check == check and checked.card_checked and checked.record_version == first.record_version + 1
    confirmed = appointments.record_client_confirmation(APPT, "sms", T0 + timedelta(hours=1))
    again = appointments.record_client_confirmation(APPT, "email", T0 + timedelta(hours=2))
    assert (again.client_confirmed_at, again.client_confirmed_via) == (T0 + timedelta(hours=1), "sms")
    assert again.confirmed and again.record_version == confirmed.record_version + 1
    for write in (lambda: appointments.record_card_check("bijoux#nope", check),
                  lambda: appointments.record_client_confirmation("bijoux#nope", "sms", T0),
                  lambda: appointments.record_told("bijoux#nope", "k", T0),
                  lambda: appointments.record_fee("bijoux#nope", FeeState(reason="no_show", outcome="no_fee",
                                                                           updated_at=T0))):
        with pytest.raises(AppointmentNotFound):
            write()


def test_a_read_is_the_callers_own_and_every_write_shows_in_the_next_read(stores: Stores) -> None:
    appointments = stores.appointments
    appointments.upsert_from_booking(booking(1), T0)
    fee = FeeState(reason="no_show", outcome="no_fee", updated_at=T0)
    appointments.record_fee(APPT, fee)
    read = appointments.get(APPT)
    assert read is not None
    with contextlib.suppress(TypeError):  # a read shared by every reader refuses changes; a copy may take them
        read.fees.clear()
        read.fees["late_cancel"] = fee
    assert appointments.get(APPT).fees == {"no_show": fee}  # type: ignore[union-attr]
    assert [a.fees for a in appointments.for_client(CLIENT)] == [{"no_show": fee}]
    settled = fee.model_copy(update={"outcome": "settled", "updated_at": T0 + timedelta(minutes=1)})
    appointments.record_fee(APPT, settled)
    appointments.record_told(APPT, "balance_due@booked", T0)
    again = appointments.get(APPT)
    assert again is not None and again.fees == {"no_show": settled}
    assert again.told_booking_site == {"balance_due@booked"}
    assert again.record_version == read.record_version + 2


def test_a_clients_appointments_come_in_start_order(stores: Stores) -> None:
    appointments = stores.appointments
    for n, hours in ((1, 30), (2, 10), (3, 20)):
        appointments.upsert_from_booking(booking(1, appointment_id=f"bijoux#appt-{n}",
                                                 starts_at=T0 + timedelta(hours=hours)), T0)
    assert [a.appointment_id for a in appointments.for_client(CLIENT)] == ["bijoux#appt-2", "bijoux#appt-3",
                                                                          "bijoux#appt-1"]
    assert [a.appointment_id for a in appointments.for_client(CLIENT, T0 + timedelta(hours=20))] == [
        "bijoux#appt-3", "bijoux#appt-1"]
    assert appointments.for_client("bijoux#someone-else") == []
    appointments.upsert_from_booking(booking(2, appointment_id="bijoux#appt-2", client_id="bijoux#c-2",
                                             starts_at=T0 + timedelta(hours=10)), T0)
    assert [a.appointment_id for a in appointments.for_client(CLIENT)] == ["bijoux#appt-3", "bijoux#appt-1"]
    assert [a.appointment_id for a in appointments.for_client("bijoux#c-2")] == ["bijoux#appt-2"]


def test_the_outboxs_word_on_each_channel_settles_the_message_and_a_repeat_changes_nothing(stores: Stores) -> None:
    appointments = stores.appointments
    appointments.upsert_from_booking(booking(1), T0)
    queued = MessageLog(key="fee", kind="no_show_fee_charged", due_at=T0, status="queued", results=(
        MessageResult(channel="sms", status="queued"), MessageResult(channel="email", status="queued")))
    appointments.record_message(APPT, queued, T0)
    later = T0 + timedelta(seconds=40)
    appointments.record_delivery(APPT, "fee", MessageResult(channel="email", status="dropped", error="quiet_hours"), T0)
    half = appointments.get(APPT)
    assert half is not None and half.message("fee") == queued.model_copy(update={"results": (
        queued.results[0], MessageResult(channel="email", status="dropped", error="quiet_hours"))})
    sent = MessageResult(channel="sms", status="sent", message_id="sns-1")
    appointments.record_delivery(APPT, "fee", sent, later)
    appointments.record_delivery(APPT, "fee", MessageResult(channel="sms", status="sent", message_id="sns-2"), later)
    appointments.record_delivery(APPT, "missing", sent, later)
    stored = appointments.get(APPT)
    assert stored is not None and stored.message("fee") == queued.model_copy(update={
        "status": "sent", "sent_at": later, "results": (sent, half.message("fee").results[1])})  # type: ignore[union-attr]
    with pytest.raises(AppointmentNotFound):
        appointments.record_delivery("bijoux#nope", "fee", sent, later)


def test_erasure_scrubs_the_history_and_skips_what_is_due_once(stores: Stores) -> None:
    appointments = stores.appointments
    appointments.record_event(APPT, 1, "AppointmentBooked", "evt-1", detail(1), T0)
    appointments.upsert_from_booking(booking(1), T0)
    appointments.record_message(APPT, MessageLog(key="a", kind="reminder", due_at=T0, status="due"), T0)
    appointments.record_message(APPT, MessageLog(key="b", kind="reminder", due_at=T0, status="sent"), T0)

    def scrub(held: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in held.items() if k != "client"}

    assert appointments.erase_personal_data(APPT, scrub, T0) == (1, 1)
    assert appointments.erase_personal_data(APPT, scrub, T0) == (0, 0)
    assert appointments.erase_personal_data("bijoux#nope", scrub, T0) == (0, 0)
    assert "client" not in json.loads(appointments.history(APPT)[0][1])
    stored = appointments.get(APPT)
    assert stored is not None and [m.status for m in stored.messages] == ["skipped", "sent"]


# ------------------------------------------------------------------------------------------------ clients


def test_a_profile_refresh_keeps_strikes_flags_and_balances(stores: Stores) -> None:
    clients = stores.clients
    created = clients.save_profile(profile(phone="+12125550123", email="ada@example.com", first_name="Ada",
                                           stripe_customer_id="cus_1", sms_consent=False), T0)
    assert (created.sms_opt_out, created.prepay_required, created.strikes, created.sms_consent) == (
        False, False, (), False)
    clients.add_strike(CLIENT, APPT, "no_show", T0)
    clients.set_prepay_required(CLIENT, T0)
    clients.set_opt_out(CLIENT, Channel.SMS, True, T0)
    clients.add_outstanding(CLIENT, usd(7_500), "e-1", T0)
    refreshed = clients.save_profile(profile(email="ada@new.example", stripe_customer_id="cus_2"),
                                     T0 + timedelta(days=1))
    assert (refreshed.phone, refreshed.email, refreshed.first_name) == ("+12125550123", "ada@new.example", "Ada")
    assert refreshed.strike_count == 1 and refreshed.prepay_required and refreshed.sms_opt_out
    assert refreshed.outstanding == {"USD": 7_500} and refreshed.created_at == T0
    assert refreshed.stripe_customers == ("cus_1", "cus_2")
    assert refreshed.known_contacts == ((Channel.EMAIL, "ada@example.com"), (Channel.EMAIL, "ada@new.example"),
                                        (Channel.SMS, "+12125550123"))


def test_a_strike_counts_once_however_often_it_is_recorded(stores: Stores) -> None:
    clients = stores.clients
    with pytest.raises(ClientNotFound):
        clients.add_strike(CLIENT, APPT, "no_show", T0)
    clients.save_profile(profile(), T0)
    assert clients.add_strike(CLIENT, APPT, "no_show", T0) == (1, True)
    assert clients.add_strike(CLIENT, APPT, "no_show", T0 + timedelta(hours=1)) == (1, False)
    assert clients.add_strike(CLIENT, APPT, "late_cancel", T0 + timedelta(hours=2)) == (2, True)
    assert clients.add_strike(CLIENT, "bijoux#appt-2", "no_show", T0 - timedelta(days=1)) == (3, True)
    with pytest.raises(ValueError):
        clients.add_strike(CLIENT, APPT, "No Show", T0)
    client = clients.get(CLIENT)
    assert client is not None
    assert [(s.appointment_id, s.reason, s.at) for s in client.strikes] == [
        ("bijoux#appt-2", "no_show", T0 - timedelta(days=1)), (APPT, "no_show", T0),
        (APPT, "late_cancel", T0 + timedelta(hours=2))]
    assert clients.remove_strike(CLIENT, APPT, "no_show", T0) == 2
    assert clients.remove_strike(CLIENT, APPT, "no_show", T0) is None
    assert clients.remove_strike("bijoux#nobody", APPT, "no_show", T0) is None


def test_the_prepay_flag_keeps_when_it_was_set_and_who_cleared_it(stores: Stores) -> None:
    clients = stores.clients
    with pytest.raises(ClientNotFound):
        clients.set_prepay_required(CLIENT, T0)
    clients.save_profile(profile(), T0)
    assert clients.clear_prepay_required(CLIENT, "admin-1", T0).prepay_cleared_by is None
    assert clients.set_prepay_required(CLIENT, T0).prepay_set_at == T0
    assert clients.set_prepay_required(CLIENT, T0 + timedelta(days=1)).prepay_set_at == T0
    cleared = clients.clear_prepay_required(CLIENT, "admin-1", T0 + timedelta(days=2))
    assert (cleared.prepay_required, cleared.prepay_cleared_by, cleared.prepay_cleared_at) == (
        False, "admin-1", T0 + timedelta(days=2))
    again = clients.set_prepay_required(CLIENT, T0 + timedelta(days=3))
    assert (again.prepay_required, again.prepay_set_at, again.prepay_cleared_by) == (True, T0 + timedelta(days=3), None)


def test_a_balance_moves_once_per_ledger_entry_and_never_below_nothing(stores: Stores) -> None:
    clients = stores.clients
    with pytest.raises(ClientNotFound):
        clients.add_outstanding(CLIENT, usd(100), "e-0", T0)
    clients.save_profile(profile(), T0)
    assert clients.add_outstanding(CLIENT, usd(5_000), "e-1", T0) == usd(5_000)
    assert clients.add_outstanding(CLIENT, usd(5_000), "e-1", T0) == usd(5_000)
    assert clients.add_outstanding(CLIENT, Money(amount=50_000, currency="HKD"), "e-2", T0).amount == 50_000
    with pytest.raises(InsufficientBalance):
        clients.settle_outstanding(CLIENT, usd(6_000), "e-3", T0)
    assert clients.settle_outstanding(CLIENT, usd(5_000), "e-3", T0) == usd(0)
    assert clients.settle_outstanding(CLIENT, usd(5_000), "e-3", T0) == usd(0)
    with pytest.raises(InsufficientBalance):
        clients.spend_credit(CLIENT, usd(1), "e-4", T0)
    assert clients.add_credit(CLIENT, usd(2_500), "e-5", T0) == usd(2_500)
    assert clients.spend_credit(CLIENT, usd(1_000), "e-6", T0) == usd(1_500)
    with pytest.raises(ValueError):
        clients.add_credit(CLIENT, usd(0), "e-7", T0)
    client = clients.get(CLIENT)
    assert client is not None and client.outstanding == {"USD": 0, "HKD": 50_000} and client.credit == {"USD": 1_500}


def test_a_client_read_is_the_callers_own_and_every_write_shows_in_the_next_read(stores: Stores) -> None:
    clients = stores.clients

    def read() -> Any:
        client = clients.get(CLIENT)
        assert client is not None
        return client

    clients.save_profile(profile(phone="+12125550123"), T0)
    with contextlib.suppress(TypeError):
        read().outstanding["USD"] = 1
    assert read().outstanding == {}
    writes: list[tuple[Callable[[], object], Callable[[Any], object]]] = [
        (lambda: clients.save_profile(profile(first_name="Ada"), T0), lambda c: c.first_name),
        (lambda: clients.add_strike(CLIENT, APPT, "no_show", T0), lambda c: len(c.strikes)),
        (lambda: clients.remove_strike(CLIENT, APPT, "no_show", T0), lambda c: len(c.strikes)),
        (lambda: clients.set_prepay_required(CLIENT, T0), lambda c: c.prepay_required),
        (lambda: clients.clear_prepay_required(CLIENT, "admin-1", T0), lambda c: c.prepay_cleared_by),
        (lambda: clients.set_opt_out(CLIENT, Channel.SMS, True, T0), lambda c: c.sms_opt_out),
        (lambda: clients.add_outstanding(CLIENT, usd(500), "e-1", T0), lambda c: c.outstanding),
        (lambda: clients.settle_outstanding(CLIENT, usd(200), "e-2", T0), lambda c: c.outstanding),
        (lambda: clients.add_credit(CLIENT, usd(300), "e-3", T0), lambda c: c.credit),
        (lambda: clients.spend_credit(CLIENT, usd(100), "e-4", T0), lambda c: c.credit),
        (lambda: clients.correct_contact(CLIENT, phone="+12125550199", email=None, now=T0), lambda c: c.phone),
        (lambda: clients.mark_erased(CLIENT, T0), lambda c: c.erased_at),
        (lambda: clients.forget(CLIENT, T0), lambda c: c.phone),
    ]
    for write, seen in writes:
        before = seen(read())
        write()
        assert seen(read()) != before, write


def test_clients_are_found_by_phone_and_by_email_within_a_spa(stores: Stores) -> None:
    clients = stores.clients
    clients.save_profile(profile("bijoux#c-2", phone="+12125550123", email=" Ada@Example.com"), T0)
    clients.save_profile(profile("glow#c-1", phone="+12125550123", email="ada@example.com"), T0)
    clients.save_profile(profile("bijoux#c-3", email="someone@example.com"), T0)
    assert [c.client_id for c in clients.find_by_phone("+12125550123")] == ["bijoux#c-2", "glow#c-1"]
    assert clients.find_by_phone("12125550123") == [] and clients.find_by_phone("+15550000000") == []
    assert [c.client_id for c in clients.with_email("bijoux", "ada@example.com ")] == ["bijoux#c-2"]


def test_an_erased_client_keeps_a_tombstone_and_balances_and_nothing_personal(stores: Stores) -> None:
    clients = stores.clients
    with pytest.raises(ClientNotFound):
        clients.mark_erased(CLIENT, T0)
    clients.save_profile(profile(phone="+12125550123", email="ada@example.com", first_name="Ada",
                                 stripe_customer_id="cus_1", default_payment_method_id="pm_1"), T0)
    corrected = clients.correct_contact(CLIENT, phone="+12125550199", email=None, now=T0, first_name="Adah")
    assert (corrected.phone, corrected.email, corrected.first_name) == ("+12125550199", "ada@example.com", "Adah")
    with pytest.raises(ValueError):
        clients.correct_contact(CLIENT, phone="555", email=None, now=T0)
    with pytest.raises(ValueError):
        clients.forget(CLIENT, T0)
    clients.add_strike(CLIENT, APPT, "no_show", T0)
    clients.add_outstanding(CLIENT, usd(5_000), "e-1", T0)
    assert clients.mark_erased(CLIENT, T0 + timedelta(hours=1)).erased_at == T0 + timedelta(hours=1)
    assert clients.mark_erased(CLIENT, T0 + timedelta(hours=2)).erased_at == T0 + timedelta(hours=1)
    with pytest.raises(ClientErased):
        clients.correct_contact(CLIENT, phone=None, email="x@example.com", now=T0)
    forgotten = clients.forget(CLIENT, T0 + timedelta(hours=2))
    assert (forgotten.phone, forgotten.email, forgotten.first_name, forgotten.stripe_customer_id,
            forgotten.stripe_customers, forgotten.known_contacts, forgotten.strikes) == (None,) * 4 + ((),) * 3
    assert forgotten.outstanding == {"USD": 5_000} and forgotten.erased


# ------------------------------------------------------------------------------------------------ ledger


def intent(stores: Stores, amount: Money = usd(5_000), attempt: int = 1, now: datetime = T0,
           appointment_id: str = APPT) -> Any:
    return stores.ledger.record_intent(appointment_id=appointment_id, client_id=CLIENT, purpose="no_show_fee",
                                       kind=EntryKind.CHARGE, amount=amount, now=now, attempt=attempt)


def test_an_intent_recorded_twice_is_the_first_entry(stores: Stores) -> None:
    first = intent(stores)
    assert first.entry_id == ledger_entry_id(APPT, "no_show_fee", 1) and first.status is EntryStatus.PENDING
    assert intent(stores, usd(9_999), now=T0 + timedelta(hours=1)) == first
    assert stores.ledger.get(first.entry_id) == first and stores.ledger.get("bijoux#x#no_show_fee#1") is None
    with pytest.raises(ValueError):
        intent(stores, usd(0))
    paid = stores.ledger.record_intent(appointment_id=CLIENT, client_id=CLIENT, purpose="desk_payment",
                                       kind=EntryKind.CREDIT, amount=usd(8_000), now=T0,
                                       entry_id=account_entry_id(CLIENT, "desk_payment", "r-1"), settles=usd(5_000))
    assert paid.settles == usd(5_000) and paid.entry_id == account_entry_id(CLIENT, "desk_payment", "r-1")
    with pytest.raises(ValueError):
        stores.ledger.record_intent(appointment_id=APPT, client_id=CLIENT, purpose="x", kind=EntryKind.CREDIT,
                                    amount=usd(100), now=T0, settles=usd(200))


ALLOWED = {  # outcome -> the statuses it may follow; written out here, not imported, so the rule itself is pinned
    EntryStatus.SUCCEEDED: {EntryStatus.PENDING, EntryStatus.REQUIRES_ACTION, EntryStatus.DECLINED},
    EntryStatus.DECLINED: {EntryStatus.PENDING, EntryStatus.REQUIRES_ACTION},
    EntryStatus.FAILED: {EntryStatus.PENDING, EntryStatus.REQUIRES_ACTION},
    EntryStatus.REQUIRES_ACTION: {EntryStatus.PENDING},
}
REACH = {EntryStatus.PENDING: (), EntryStatus.REQUIRES_ACTION: (EntryStatus.REQUIRES_ACTION,),
         EntryStatus.DECLINED: (EntryStatus.DECLINED,), EntryStatus.FAILED: (EntryStatus.FAILED,),
         EntryStatus.SUCCEEDED: (EntryStatus.SUCCEEDED,)}


@pytest.mark.parametrize("start", list(REACH), ids=str)
@pytest.mark.parametrize("outcome", list(ALLOWED), ids=str)
def test_a_ledger_entry_moves_only_along_the_allowed_outcomes(stores: Stores, start: EntryStatus,
                                                              outcome: EntryStatus) -> None:
    ledger, entry = stores.ledger, intent(stores)
    for step in REACH[start]:
        ledger.record_outcome(entry.entry_id, step, T0)
    later = T0 + timedelta(hours=1)
    if start in ALLOWED[outcome]:
        moved = ledger.record_outcome(entry.entry_id, outcome, later, stripe_payment_intent_id="pi_1",
                                      decline_code="card_declined")
        assert (moved.status, moved.updated_at, moved.stripe_payment_intent_id, moved.decline_code) == (
            outcome, later, "pi_1", "card_declined")
    elif start is outcome:
        assert ledger.record_outcome(entry.entry_id, outcome, later) == ledger.get(entry.entry_id)
        assert ledger.get(entry.entry_id).updated_at == T0  # type: ignore[union-attr]
    else:
        with pytest.raises(LedgerConflict):
            ledger.record_outcome(entry.entry_id, outcome, later)
        assert ledger.get(entry.entry_id).status is start  # type: ignore[union-attr]


def test_an_outcome_needs_an_entry_and_is_an_outcome_and_may_keep_the_first_time(stores: Stores) -> None:
    ledger, entry = stores.ledger, intent(stores)
    with pytest.raises(ValueError):
        ledger.record_outcome(entry.entry_id, EntryStatus.PENDING, T0)
    with pytest.raises(LedgerEntryNotFound):
        ledger.record_outcome("bijoux#nope#no_show_fee#1", EntryStatus.SUCCEEDED, T0)
    ledger.record_outcome(entry.entry_id, EntryStatus.REQUIRES_ACTION, T0 + timedelta(hours=1))
    failed = ledger.record_outcome(entry.entry_id, EntryStatus.FAILED, T0 + timedelta(hours=5), keep_time=True,
                                   failure_message="authentication abandoned")
    assert (failed.updated_at, failed.failure_message) == (T0 + timedelta(hours=1), "authentication abandoned")


def test_entries_are_listed_by_visit_and_client_oldest_first_and_found_by_their_stripe_reference(
        stores: Stores) -> None:
    ledger = stores.ledger
    second = intent(stores, attempt=2, now=T0 + timedelta(days=1))
    first = intent(stores, attempt=1, now=T0)
    other = intent(stores, now=T0 + timedelta(days=2), appointment_id="bijoux#appt-2")
    assert [e.entry_id for e in ledger.for_appointment(APPT)] == [first.entry_id, second.entry_id]
    assert [e.entry_id for e in ledger.for_client(CLIENT)] == [first.entry_id, second.entry_id, other.entry_id]
    ref = second.stripe_idempotency_key.removeprefix("medspa-ledger-")
    assert ledger.for_stripe_ref(ref) == second and ledger.for_stripe_ref("0" * 64) is None


# ------------------------------------------------------------------------------------------------ consent


def test_an_sms_opt_out_holds_for_every_spa_and_an_email_one_for_its_spa(stores: Stores) -> None:
    consent = stores.consent
    consent.record("sms", PHONE, "bijoux", opted_out=True, how="keyword", at=T0, evidence="in-1")
    consent.record("email", " Ana@Example.COM", "bijoux", opted_out=True, how="link", at=T0)
    assert consent.opted_out("sms", PHONE, "glow") and consent.opted_out("sms", PHONE, "bijoux")
    assert consent.opted_out("email", "ana@example.com", "bijoux")
    assert not consent.opted_out("email", "ana@example.com", "glow")
    assert not consent.opted_out("sms", "+14075550999", "bijoux")
    record = consent.get("sms", PHONE, "406medicalspa")
    assert record is not None
    assert (record.scope, record.opted_out, record.how, record.changed_at, record.evidence) == (
        "*", True, "keyword", T0, "in-1")
    assert PHONE not in repr(record)


def test_a_later_consent_change_is_never_overwritten_by_an_earlier_one(stores: Stores) -> None:
    consent = stores.consent
    consent.record("sms", PHONE, "bijoux", opted_out=False, how="keyword", at=T0 + timedelta(minutes=1))
    stored = consent.record("sms", PHONE, "bijoux", opted_out=True, how="keyword", at=T0)
    assert (stored.opted_out, stored.changed_at) == (False, T0 + timedelta(minutes=1))
    assert consent.record("sms", PHONE, "bijoux", opted_out=True, how="admin", at=T0 + timedelta(hours=1)).opted_out


def test_an_address_that_is_not_one_is_refused_without_echo(stores: Stores) -> None:
    for channel, address in (("sms", "407-555-0123"), ("email", "not an address")):
        with pytest.raises(ValueError) as error:
            stores.consent.opted_out(channel, address, "bijoux")
        assert address not in str(error.value)


def test_links_map_a_reference_to_the_spa_and_address(stores: Stores) -> None:
    consent = stores.consent
    consent.remember_link("ref-1", "bijoux", "Ana@Example.com", T0)
    consent.remember_link("ref-1", "bijoux", "ana@example.com", T0 + timedelta(days=1))  # every email re-sends it
    assert consent.link("ref-1") == ("bijoux", "ana@example.com")
    assert consent.link("ref-2") is None


def test_a_reply_is_claimed_once_and_released_if_it_could_not_be_sent(stores: Stores) -> None:
    consent = stores.consent
    assert consent.claim_reply("in-1", "opt_out", T0)
    assert not consent.claim_reply("in-1", "opt_out", T0)
    consent.release_reply("in-1")
    assert consent.claim_reply("in-1", "opt_out", T0)
    consent.reply_sent("in-1", "msg-1", T0)
    assert not consent.claim_reply("in-1", "opt_out", T0 + timedelta(hours=2))


def test_forgetting_an_address_deletes_its_own_record_and_links_and_nobody_elses(stores: Stores) -> None:
    consent = stores.consent
    consent.record("sms", PHONE, "bijoux", opted_out=True, how="keyword", at=T0)
    for spa in ("bijoux", "glow"):
        consent.record("email", "ana@example.com", spa, opted_out=True, how="link", at=T0)
    for reference, spa, email in (("ref-1", "bijoux", "ana@example.com"), ("ref-2", "bijoux", "ANA@example.com"),
                                  ("ref-3", "glow", "ana@example.com"), ("ref-4", "bijoux", "bo@example.com")):
        consent.remember_link(reference, spa, email, T0)
    assert consent.forget("sms", PHONE, "glow") is True  # one SMS record serves every spa
    assert consent.forget("sms", PHONE, "bijoux") is False and consent.get("sms", PHONE, "bijoux") is None
    assert consent.forget("email", " Ana@Example.com", "bijoux") is True
    assert consent.opted_out("email", "ana@example.com", "glow")
    assert consent.forget_links("bijoux", "Ana@example.com") == 2
    assert consent.forget_links("bijoux", "ana@example.com") == 0
    assert [consent.link(r) for r in ("ref-1", "ref-2", "ref-3", "ref-4")] == [
        None, None, ("glow", "ana@example.com"), ("bijoux", "bo@example.com")]


def test_reply_claims_expire_through_the_tables_ttl(store: Store) -> None:
    store.consent.claim_reply("in-9", "help", T0)
    item = store.consent._model.get("reply#in-9", "sms", consistent_read=True)
    assert item.expires_at == T0 + timedelta(days=30)


# ------------------------------------------------------------------------------------------------ privacy audit


@pytest.fixture(params=["in_memory", "dynamodb"])
def audit(request: pytest.FixtureRequest) -> PrivacyAudit:
    if request.param == "in_memory":
        return InMemoryPrivacyAudit()
    return PrivacyAuditRepository.bound(request.getfixturevalue("template_tables")["PrivacyAuditTable"], REGION)


def served(client_id: str, action: Action, at: datetime, request_id: str = "req-1") -> PrivacyRequestRecord:
    return PrivacyRequestRecord(spa_id=client_id.split("#")[0], client_id=client_id, action=action,
                                request_id=request_id, requested_by="admin-maria", via="bus", at=at,
                                outcome="done", detail={"fields": ["phone"], "appointments": 2})


def test_the_audit_lists_a_clients_and_a_spas_requests_in_time_order_with_times_in_utc(audit: PrivacyAudit) -> None:
    here = timezone(timedelta(hours=-5))
    first, erased = served(CLIENT, "export", T0.astimezone(here)), served(CLIENT, "erase", T0 + timedelta(hours=1))
    other, elsewhere = served("bijoux#c-2", "correct", T0 + timedelta(minutes=30)), served("glow#c-1", "export", T0)
    for record in (erased, elsewhere, other, first):
        audit.record(record)
    assert audit.for_client(CLIENT) == [first, erased]
    assert audit.for_client(CLIENT)[0].at.utcoffset() == timedelta(0)
    assert audit.for_client(CLIENT)[0].detail == {"fields": ["phone"], "appointments": 2}
    assert audit.for_spa("bijoux") == [first, other, erased]
    assert audit.for_spa("bijoux", since=T0 + timedelta(minutes=15)) == [other, erased]
    assert audit.for_client("bijoux#c-9") == [] and audit.for_spa("406medicalspa") == []


def test_an_audit_record_is_never_overwritten_and_names_a_client_of_its_own_spa(audit: PrivacyAudit) -> None:
    audit.record(served(CLIENT, "erase", T0))
    with pytest.raises(ValueError, match="never overwritten"):
        audit.record(served(CLIENT, "erase", T0).model_copy(update={"outcome": "already_erased"}))
    audit.record(served(CLIENT, "erase", T0, request_id="req-2"))  # served again: recorded again
    with pytest.raises(ValueError, match="belong to the spa"):
        audit.record(served(CLIENT, "export", T0).model_copy(update={"spa_id": "glow"}))
    assert [(r.request_id, r.outcome) for r in audit.for_client(CLIENT)] == [("req-1", "done"), ("req-2", "done")]


# ------------------------------------------------------------------------------------------------ both at once


def _script(stores: Stores) -> list[Any]:
    """A day of calls a service makes, with times in another zone than UTC; every answer (or error) is kept."""
    here = timezone(timedelta(hours=-5))
    t = T0.astimezone(here)
    a, c, led = stores.appointments, stores.clients, stores.ledger
    calls: list[Callable[[], Any]] = [
        lambda: a.record_event(APPT, 1, "AppointmentBooked", "evt-1", detail(1), t),
        lambda: c.save_profile(profile(phone="+12125550123", stripe_customer_id="cus_1"), t),
        lambda: a.upsert_from_booking(booking(1, revision=1, starts_at=t + timedelta(days=2)), t),
        lambda: a.set_execution(APPT, 1, "bijoux.appt-1-v1", "arn:1", t, revision=1),
        lambda: a.record_message(APPT, MessageLog(key="reminder_48h@x", kind="reminder_48h", due_at=t,
                                                  status="sending"), t),
        lambda: a.record_outcome(APPT, LifecycleOutcome(status="no_show", revision=1, at=t + timedelta(days=2))),
        lambda: led.record_intent(appointment_id=APPT, client_id=CLIENT, purpose="no_show_fee", kind=EntryKind.CHARGE,
                                  amount=usd(5_000), now=t + timedelta(days=2)),
        lambda: led.record_outcome(ledger_entry_id(APPT, "no_show_fee", 1), EntryStatus.DECLINED,
                                   t + timedelta(days=2), decline_code="insufficient_funds"),
        lambda: c.add_outstanding(CLIENT, usd(5_000), ledger_entry_id(APPT, "no_show_fee", 1), t),
        lambda: a.record_fee(APPT, FeeState(reason="no_show", outcome="outstanding", fee=usd(5_000),
                                            next_retry_at=t + timedelta(days=3), updated_at=t + timedelta(days=2))),
        lambda: c.add_strike(CLIENT, APPT, "no_show", t + timedelta(days=2)),
        lambda: c.set_prepay_required(CLIENT, t + timedelta(days=2)),
        lambda: a.upsert_from_booking(booking(1, revision=1), t),
        lambda: a.set_execution(APPT, 2, "bijoux.appt-1-v2", "arn:2", t),
        lambda: led.record_outcome(ledger_entry_id(APPT, "no_show_fee", 1), EntryStatus.SUCCEEDED, t,
                                   stripe_payment_intent_id="pi_9"),
        lambda: c.settle_outstanding(CLIENT, usd(5_000), "paid-1", t),
        lambda: a.get(APPT),
        lambda: c.get(CLIENT),
        lambda: led.for_client(CLIENT),
        lambda: a.history(APPT),
    ]
    answers: list[Any] = []
    for call in calls:
        try:
            answer = call()
        except Exception as error:  # noqa: BLE001 - the class and message are the answer
            answer = (type(error).__name__, str(error))
        answers.append(answer.model_dump(mode="json") if hasattr(answer, "model_dump") else
                       [x.model_dump(mode="json") if hasattr(x, "model_dump") else x for x in answer]
                       if isinstance(answer, list | tuple) else answer)
    return answers


def test_both_stores_answer_the_same_script_alike(store: Store) -> None:
    assert _script(InMemoryStore()) == _script(store)
