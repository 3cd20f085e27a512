"""``LifecycleService`` and the fee steps on the in-memory adapters: a visit's whole life in milliseconds.

Each story is Bijoux Med Spa's published policy (``seeds/000``, ``policy/packs/bijoux.toml``): reminders 48 hours
before and the morning of; a cancel inside 48 hours or a no-show costs a 30-minute injection $50, charged to the
card on file; "if a client has three instances of no-show or late cancellation, they will be required to prepay
for future services at the time of booking". Booking-site events go through the real intake, the lifecycle loop
is taken as the state machine takes it (``tests.support.memory_spa``), money goes through the real settlement
service to ``InMemoryPayments``. Time is passed in; nothing sleeps.
"""

from __future__ import annotations

import itertools
from datetime import datetime, time, timedelta

import pytest

from medspa.domain.booking import AppointmentStatus
from medspa.domain.keys import appointment_key, client_key
from medspa.domain.ledger import EntryKind, EntryStatus, ledger_entry_id
from medspa.money import Money
from medspa.services.lifecycle import StepRequest
from tests.support.memory_spa import MemorySpa
from tests.support.packs import BIJOUX

VISIT = datetime.combine(datetime(2026, 6, 9).date(), time(14), BIJOUX.zone)  # a Tuesday, 14:00 in New York
BOTOX = {"name": "Botox forehead", "category": "injection_laser", "duration_minutes": 30,
         "price": {"amount": 42_000, "currency": "USD"}}
_ids = itertools.count(1)


def usd(cents: int) -> Money:
    return Money(amount=cents, currency="USD")


@pytest.fixture
def spa() -> MemorySpa:
    return MemorySpa(VISIT - timedelta(days=10))


def book(spa: MemorySpa, *, client: str = "c-1", starts_at: datetime = VISIT, card: str | None = "pm_pays",
         behaviour: str = "pays") -> tuple[str, str]:
    """Book a 30-minute Botox at Bijoux for ``client`` (card on file ``card``, which ``behaviour``s)."""
    appointment = f"apt-{next(_ids)}"
    payment: dict[str, object] = {"card_on_file": card is not None}
    if card is not None:
        spa.payments.cards[card] = behaviour  # type: ignore[assignment]
        payment |= {"stripe_customer_id": f"cus_{client.replace('-', '')}", "stripe_payment_method_id": card}
    outcome = spa.send("AppointmentBooked", spa.now, spa_id="bijoux", appointment_id=appointment, booking_version=1,
                       location_id="bijoux", client={"id": client, "first_name": "Ada", "phone": "+14075550123",
                                                     "sms_opt_in": True},
                       service=BOTOX, starts_at=starts_at.isoformat(), payment=payment)
    assert outcome.action in ("started", "scheduled")  # the test takes the steps itself, schedule or not
    return appointment_key("bijoux", appointment), client_key("bijoux", client)


def miss(spa: MemorySpa, appointment_id: str) -> None:
    """Nobody checks in: the lifecycle decides the no-show and settles it (the clock then stands a day later)."""
    spa.run_until(appointment_id, spa.appointment(appointment_id).starts_at + timedelta(days=1))


def test_an_attended_visit_gets_both_reminders_and_costs_nothing(spa: MemorySpa) -> None:
    appointment_id, client_id = book(spa)
    spa.send("ClientCheckedIn", VISIT - timedelta(minutes=5), spa_id="bijoux", appointment_id=appointment_id[7:],
             booking_version=2, arrived_at=(VISIT - timedelta(minutes=5)).isoformat())
    spa.run_until(appointment_id, VISIT + timedelta(days=30))

    stored = spa.appointment(appointment_id)
    reminders = [(m.kind, m.status, m.sent_at) for m in stored.messages if m.kind.startswith("reminder_")]
    assert reminders == [("reminder_48h", "sent", VISIT - timedelta(hours=48)),
                         ("reminder_morning_of", "sent", reminders[1][2])]
    assert reminders[1][2] is not None and reminders[1][2].astimezone(BIJOUX.zone).date() == VISIT.date()
    assert len(spa.messenger.sms) == 2 and all(s.phone == "+14075550123" for s in spa.messenger.sms)
    assert stored.status is AppointmentStatus.CHECKED_IN
    assert spa.lifecycle.plan(spa.request(appointment_id), spa.now).why_done == "Visit attended"
    assert spa.store.ledger.for_client(client_id) == [] and spa.payments.charged == []
    assert spa.store.clients.get(client_id).strikes == ()  # type: ignore[union-attr]


def test_a_cancel_inside_48_hours_is_charged_the_late_cancel_fee_once_and_counts_a_strike(spa: MemorySpa) -> None:
    appointment_id, client_id = book(spa)
    cancelled_at = VISIT - timedelta(hours=10)
    spa.send("AppointmentCancelled", cancelled_at, spa_id="bijoux", appointment_id=appointment_id[7:],
             booking_version=2, by="client")
    spa.run_until(appointment_id, VISIT + timedelta(days=30))

    entry = spa.store.ledger.get(ledger_entry_id(appointment_id, "late_cancel_fee", 1))
    assert entry is not None
    assert (entry.kind, entry.amount, entry.status, entry.client_id) == (
        EntryKind.CHARGE, usd(5_000), EntryStatus.SUCCEEDED, client_id)
    assert [c.amount for c in spa.payments.charged] == [usd(5_000)]
    assert spa.payments.charged[0].payment_intent_id == entry.stripe_payment_intent_id
    stored = spa.appointment(appointment_id)
    assert stored.status is AppointmentStatus.CANCELLED and stored.fees["late_cancel"].outcome == "settled"
    assert [(d["appointment_id"], d["fee"]) for d in spa.published("FeeCharged")] == [
        (appointment_id[7:], {"amount": 5_000, "currency": "USD"})]
    client = spa.store.clients.get(client_id)
    assert client is not None and [(s.appointment_id, s.reason) for s in client.strikes] == [
        (appointment_id, "late_cancel")]
    assert not client.prepay_required
    assert any(m.kind.startswith("late_cancel") and m.status == "sent" for m in stored.messages)

    # The state machine retries a step after a timeout: the same step again moves no money and counts nothing.
    run = spa.request(appointment_id)
    spa.take(run, "settle_fee", "late_cancel")
    spa.take(run, "count_strike", "late_cancel")
    assert len(spa.payments.charged) == 1 and spa.store.clients.get(client_id).strike_count == 1  # type: ignore[union-attr]
    assert len(spa.store.ledger.for_appointment(appointment_id)) == 1


def test_a_cancel_two_days_ahead_is_free(spa: MemorySpa) -> None:
    appointment_id, client_id = book(spa)
    spa.send("AppointmentCancelled", VISIT - timedelta(hours=49), spa_id="bijoux", appointment_id=appointment_id[7:],
             booking_version=2, by="client")
    spa.run_until(appointment_id, VISIT + timedelta(days=30))

    assert spa.appointment(appointment_id).status is AppointmentStatus.CANCELLED
    assert spa.store.ledger.for_client(client_id) == [] and spa.published("FeeCharged") == []
    assert spa.store.clients.get(client_id).strikes == ()  # type: ignore[union-attr]
    assert not any(m.kind.startswith("reminder_") for m in spa.appointment(appointment_id).messages)


def test_a_no_show_is_decided_charged_and_recorded_as_a_strike(spa: MemorySpa) -> None:
    appointment_id, client_id = book(spa)
    miss(spa, appointment_id)

    stored = spa.appointment(appointment_id)
    assert stored.status is AppointmentStatus.NO_SHOW and stored.outcome is not None
    no_show_at = stored.outcome.at
    assert VISIT < no_show_at < VISIT + timedelta(hours=2)
    entry = spa.store.ledger.get(ledger_entry_id(appointment_id, "no_show_fee", 1))
    assert entry is not None and (entry.amount, entry.status) == (usd(5_000), EntryStatus.SUCCEEDED)
    client = spa.store.clients.get(client_id)
    assert client is not None and [(s.reason, s.at) for s in client.strikes] == [("no_show", no_show_at)]
    assert [(d["reason"], d["strike_count"], d["threshold"]) for d in spa.published("ClientStrikeRecorded")] == [
        ("no_show", 1, 3)]
    actions = [action for _, action, _ in spa.steps]
    assert actions.index("decide_attendance") < actions.index("settle_fee") < actions.index("count_strike")


def test_the_third_strike_requires_prepayment_and_tells_the_booking_site(spa: MemorySpa) -> None:
    first, client_id = book(spa, starts_at=VISIT)
    second, _ = book(spa, starts_at=VISIT + timedelta(days=7))
    third, _ = book(spa, starts_at=VISIT + timedelta(days=14))
    miss(spa, first)
    spa.send("AppointmentCancelled", VISIT + timedelta(days=7, hours=-3), spa_id="bijoux",
             appointment_id=second[7:], booking_version=2, by="client")
    spa.run_until(second, VISIT + timedelta(days=8))
    client = spa.store.clients.get(client_id)
    assert client is not None and client.strike_count == 2 and not client.prepay_required
    assert spa.published("ClientBookingRestricted") == []

    miss(spa, third)
    client = spa.store.clients.get(client_id)
    assert client is not None and client.strike_count == 3 and client.prepay_required
    assert client.prepay_set_at is not None and client.prepay_set_at > VISIT + timedelta(days=14)
    assert [(d["client_id"], d["strike_count"], d["prepay_required"]) for d in spa.published(
        "ClientBookingRestricted")] == [("c-1", 3, True)]
    assert [m.status for m in spa.appointment(third).messages if m.kind == "prepay_required"] == ["sent"]
    assert [e.purpose for e in spa.store.ledger.for_client(client_id)] == [
        "no_show_fee", "late_cancel_fee", "no_show_fee"]

    # The next booking is told to the booking site as lacking the prepayment the flag asks for.
    fourth, _ = book(spa, starts_at=VISIT + timedelta(days=30))
    spa.run_until(fourth, spa.now)
    unmet = [d["unmet"] for d in spa.published("BookingRequirementsUnmet") if d["appointment_id"] == fourth[7:]]
    assert unmet == [["prepay_in_full"]]


def test_a_declined_card_leaves_the_fee_outstanding_and_plans_the_dunning_retry(spa: MemorySpa) -> None:
    appointment_id, client_id = book(spa, card="pm_broke", behaviour="declines")
    spa.run_until(appointment_id, VISIT + timedelta(hours=2))

    entry = spa.store.ledger.get(ledger_entry_id(appointment_id, "no_show_fee", 1))
    assert entry is not None and entry.status is EntryStatus.DECLINED and entry.decline_code == "insufficient_funds"
    fee = spa.appointment(appointment_id).fees["no_show"]
    assert fee.outcome == "outstanding" and fee.next_retry_at is not None and fee.next_retry_at > spa.now
    plan = spa.lifecycle.plan(spa.request(appointment_id), spa.now)
    assert plan.next is not None and (plan.next.action, plan.next.reason, plan.next.attempt) == (
        "retry_fee", "no_show", 2)
    assert spa.payments.charged == []

    # The client updates the card; the retry charges the new one, under a key of its own.
    spa.payments.cards["pm_new"] = "pays"
    spa.send("CardUpdated", spa.now, spa_id="bijoux", client_id="c-1", stripe_customer_id="cus_c1",
             stripe_payment_method_id="pm_new")
    spa.run_until(appointment_id, fee.next_retry_at)
    retried = spa.store.ledger.get(ledger_entry_id(appointment_id, "no_show_fee", 2))
    assert retried is not None and retried.status is EntryStatus.SUCCEEDED
    assert retried.stripe_idempotency_key != entry.stripe_idempotency_key
    assert spa.appointment(appointment_id).fees["no_show"].outcome == "settled"
    assert [c.amount for c in spa.payments.charged] == [usd(5_000)]


def test_a_run_woken_after_a_newer_booking_version_does_nothing(spa: MemorySpa) -> None:
    appointment_id, _ = book(spa)
    stale = spa.request(appointment_id)
    spa.send("AppointmentRescheduled", VISIT - timedelta(days=5), spa_id="bijoux",
             appointment_id=appointment_id[7:], booking_version=2,
             starts_at=(VISIT + timedelta(days=3)).isoformat())

    plan = spa.lifecycle.plan(stale, spa.now)
    assert plan.current is False and plan.next is None
    result = spa.lifecycle.act(stale.model_copy(update={"action": "decide_attendance"}), spa.now)
    assert result.done.startswith("superseded")
    assert spa.appointment(appointment_id).outcome is None
    with pytest.raises(Exception, match="bijoux#nope"):
        spa.lifecycle.plan(StepRequest(appointment_id="bijoux#nope", booking_version=1), spa.now)


def test_one_task_takes_the_step_it_woke_for_and_the_lifecycle_steps_due_with_it(spa: MemorySpa) -> None:
    """After the late-cancel fee is charged (the settlement function's task), the lifecycle's task counts the
    strike and sends the fee notice in the same invocation, listing both; it stops at the next timed step."""
    appointment_id, client_id = book(spa)
    cancelled_at = VISIT - timedelta(hours=5)  # 09:00 in New York: past quiet hours, the notice goes at once
    spa.send("AppointmentCancelled", cancelled_at, spa_id="bijoux", appointment_id=appointment_id[7:],
             booking_version=2, by="client")
    run = spa.request(appointment_id)
    spa.take(run, "settle_fee", "late_cancel")
    plan = spa.lifecycle.plan(run, spa.now)
    assert plan.next is not None and plan.next.action == "count_strike"

    taken = spa.lifecycle.take(run.model_copy(update={"action": "count_strike", "reason": "late_cancel"}), spa.now)
    assert [(d.done, d.detail.get("key")) for d in taken.did] == [
        ("strike 1 recorded (late_cancel)", None), ("late_cancel_fee_charged: sent", "late_cancel_fee_charged#late_cancel")]
    assert taken.current and (taken.next is None or taken.next.at > spa.now)
    assert spa.store.clients.get(client_id).strike_count == 1  # type: ignore[union-attr]
    again = spa.lifecycle.take(run, spa.now)  # a retry of the task finds every step done
    assert again.did == [] and again.next == taken.next
