"""``IngestService`` on the in-memory adapters: booking-site events in, one lifecycle run per appointment out.

The intake's promises (``medspa.services.ingest``): a booking starts its run (from a schedule 6 hours before its
first step when that is later: ``SCHEDULED`` here until then); a duplicate changes nothing; any
delivery order of the same events gives the same appointment; an event that arrives before its booking is held
until the booking comes; a newer version stops the old run and starts its own; a version claimed twice, a source
the spa did not authorise, or a location of another spa is refused and changes nothing. Bijoux's and 406's seed
packs; times passed in.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest

from medspa.domain.booking import AppointmentStatus
from medspa.domain.keys import appointment_key, client_key
from medspa.ports.store import ConflictingEvent
from medspa.services.ingest import EventRefused, NotKnownHere
from tests.support.memory_spa import MemorySpa
from tests.support.packs import BIJOUX

VISIT = datetime.combine(datetime(2026, 6, 9).date(), time(14), BIJOUX.zone)
BOOKED_AT = VISIT - timedelta(days=10)
KEY = appointment_key("bijoux", "apt-1")
LIVE = ("RUNNING", "SCHEDULED")  # a run acting, or due to start from its schedule
IDS = {"spa_id": "bijoux", "appointment_id": "apt-1"}


def booked(spa: MemorySpa, **changes: Any) -> Any:
    detail: dict[str, Any] = {**IDS, "booking_version": 1, "location_id": "bijoux",
                              "client": {"id": "c-1", "first_name": "Ada", "phone": "+14075550123",
                                         "sms_opt_in": True},
                              "service": {"name": "Botox forehead", "category": "injection_laser",
                                          "duration_minutes": 30, "price": {"amount": 42_000, "currency": "USD"}},
                              "starts_at": VISIT.isoformat(),
                              "payment": {"card_on_file": True, "stripe_customer_id": "cus_c1",
                                          "stripe_payment_method_id": "pm_1"}}
    return spa.event("AppointmentBooked", BOOKED_AT, **(detail | changes))


def cancelled(spa: MemorySpa, version: int = 2, hours_before: int = 10) -> Any:
    return spa.event("AppointmentCancelled", VISIT - timedelta(hours=hours_before), **IDS, booking_version=version,
                     by="client")


def rescheduled(spa: MemorySpa, version: int, days_later: int, *, at: datetime) -> Any:
    return spa.event("AppointmentRescheduled", at, **IDS, booking_version=version,
                     starts_at=(VISIT + timedelta(days=days_later)).isoformat())


@pytest.fixture
def spa() -> MemorySpa:
    return MemorySpa(BOOKED_AT)


def test_a_booking_stores_the_visit_and_the_client_and_schedules_its_run_6_hours_before_the_card_check(
        spa: MemorySpa) -> None:
    outcome = spa.deliver(booked(spa))

    assert (outcome.action, outcome.applied, outcome.execution_name) == ("scheduled", True, "bijoux.apt-1-v1")
    card_check = datetime.combine(VISIT.date() - timedelta(days=3), time(10), BIJOUX.zone)
    assert spa.runs.scheduled == {"bijoux.apt-1-v1": card_check - timedelta(hours=6)}
    assert spa.appointment(KEY).run.starts_at == card_check - timedelta(hours=6)
    stored = spa.appointment(KEY)
    assert (stored.status, stored.booking_version, stored.starts_at, stored.policy_version) == (
        AppointmentStatus.BOOKED, 1, VISIT, BIJOUX.policy_version)
    assert stored.execution_name == "bijoux.apt-1-v1" and stored.execution_arn == spa.runs.arn("bijoux.apt-1-v1")
    assert {name: status for name, (_, status) in spa.runs.runs.items()} == {"bijoux.apt-1-v1": "SCHEDULED"}
    client = spa.store.clients.get(client_key("bijoux", "c-1"))
    assert client is not None and (client.phone, client.stripe_customer_id, client.default_payment_method_id) == (
        "+14075550123", "cus_c1", "pm_1")


def test_the_same_event_delivered_twice_changes_nothing(spa: MemorySpa) -> None:
    event = booked(spa)
    spa.deliver(event)
    before = spa.appointment(KEY)
    again = spa.deliver(event)

    assert (again.action, again.applied, again.execution_name) == ("unchanged", False, "bijoux.apt-1-v1")
    assert spa.appointment(KEY) == before
    assert len(spa.runs.runs) == 1


def test_a_cancel_that_overtakes_its_booking_is_held_then_folded_to_the_same_visit_as_in_order(
        spa: MemorySpa) -> None:
    in_order = MemorySpa(BOOKED_AT)
    cancel_then, booking_then = cancelled(in_order), booked(in_order)  # the same event ids as below
    for event in (booking_then, cancel_then):
        in_order.deliver(event)

    cancel = cancelled(spa)
    held = spa.deliver(cancel)
    assert (held.action, held.applied) == ("held_until_booked", False)
    assert spa.store.appointments.get(KEY) is None and spa.runs.runs == {}
    folded = spa.deliver(booked(spa))
    repeat = spa.deliver(cancel)  # SQS delivers it again

    assert folded.action == "started" and repeat.action == "unchanged"  # a late cancel: its fee is due now
    ours, theirs = spa.appointment(KEY), in_order.appointment(KEY)
    assert ours.status is AppointmentStatus.CANCELLED
    assert [v.reason for v in ours.facts.violations] == ["late_cancel"]
    volatile = {"record_version"}  # how many writes it took differs; what they wrote does not
    assert ours.model_dump(exclude=volatile) == theirs.model_dump(exclude=volatile)
    assert [n for n, (_, s) in spa.runs.runs.items() if s in LIVE] == [ours.execution_name]
    assert [n for n, (_, s) in in_order.runs.runs.items() if s in LIVE] == [theirs.execution_name]


def test_a_newer_version_stops_the_old_run_and_a_late_older_event_refolds_it(spa: MemorySpa) -> None:
    spa.deliver(booked(spa))
    moved = spa.deliver(rescheduled(spa, 2, 7, at=BOOKED_AT + timedelta(days=1)))
    assert (moved.action, moved.execution_name) == ("scheduled", "bijoux.apt-1-v2")
    assert spa.runs.runs["bijoux.apt-1-v1"][1] == "UNSCHEDULED"  # it had not started: its schedule is deleted
    assert spa.appointment(KEY).starts_at == VISIT + timedelta(days=7)

    # v4 arrives before v3: the visit is cancelled (v4); then v3's move, older, is folded in under it.
    cancel = spa.deliver(spa.event("AppointmentCancelled", BOOKED_AT + timedelta(days=3), **IDS, booking_version=4,
                                   by="client"))
    # Cancelled in time, nothing is left to do: v2's run is stopped and no run replaces it.
    assert (cancel.action, cancel.execution_name) == ("stopped_nothing_left", None)
    assert spa.runs.runs["bijoux.apt-1-v2"][1] == "UNSCHEDULED"
    late = spa.deliver(rescheduled(spa, 3, 14, at=BOOKED_AT + timedelta(days=2)))
    stored = spa.appointment(KEY)
    assert (stored.booking_version, stored.revision, stored.status) == (4, 4, AppointmentStatus.CANCELLED)
    assert stored.starts_at == VISIT + timedelta(days=14), "the move v3 made stands under the cancel"
    # The refold leaves the next step as it was (none), so the appointment stays idle: nothing runs for it.
    assert stored.run is not None and stored.run.idle
    assert (late.action, late.execution_name) == ("unchanged", None)
    assert [n for n, (_, s) in spa.runs.runs.items() if s in LIVE] == []


def test_a_version_claimed_by_two_events_is_refused(spa: MemorySpa) -> None:
    spa.deliver(booked(spa))
    spa.deliver(cancelled(spa))
    before = spa.appointment(KEY)
    with pytest.raises(ConflictingEvent):
        spa.deliver(rescheduled(spa, 2, 7, at=BOOKED_AT + timedelta(days=1)))
    assert spa.appointment(KEY) == before


@pytest.mark.parametrize("source, changes, field", [
    ("someone-else", {}, "source"),
    ("booking-site", {"location_id": "406medicalspa"}, "detail.location_id"),
])
def test_an_event_from_an_unauthorised_source_or_for_another_spas_location_is_refused(
        spa: MemorySpa, source: str, changes: dict[str, Any], field: str) -> None:
    with pytest.raises(EventRefused) as refused:
        spa.deliver(booked(spa, **changes), source=source)
    assert refused.value.field == field
    assert spa.store.appointments.items == {} and spa.store.clients.items == {} and spa.runs.runs == {}


def test_admin_events_act_on_known_clients_only(spa: MemorySpa) -> None:
    with pytest.raises(NotKnownHere):
        spa.deliver(spa.event("PrepayRequirementCleared", BOOKED_AT, spa_id="bijoux", client_id="c-1",
                              admin_id="admin-1"))
    spa.deliver(booked(spa))
    client_id = client_key("bijoux", "c-1")
    spa.store.clients.set_prepay_required(client_id, BOOKED_AT)
    cleared = spa.deliver(spa.event("PrepayRequirementCleared", BOOKED_AT + timedelta(hours=1), spa_id="bijoux",
                                    client_id="c-1", admin_id="admin-1"))
    card = spa.deliver(spa.event("CardUpdated", BOOKED_AT + timedelta(hours=2), spa_id="bijoux", client_id="c-1",
                                 stripe_customer_id="cus_c1", stripe_payment_method_id="pm_2"))

    assert (cleared.action, card.action) == ("prepay_cleared", "card_updated")
    client = spa.store.clients.get(client_id)
    assert client is not None and not client.prepay_required and client.prepay_cleared_by == "admin-1"
    assert client.default_payment_method_id == "pm_2" and client.phone == "+14075550123"


def test_an_event_that_leaves_the_next_step_as_it_was_is_read_by_the_run_already_waiting(spa: MemorySpa) -> None:
    """Bijoux asks for no confirmation: confirming changes nothing the run waits for, so no execution starts or
    stops; the run's steps still act, and the 48-hour reminder goes out on time."""
    spa.deliver(booked(spa))
    confirmed = spa.send("AppointmentConfirmed", BOOKED_AT + timedelta(days=1), **IDS, booking_version=2,
                         channel="sms")
    stored = spa.appointment(KEY)
    assert (confirmed.action, confirmed.execution_name) == ("unchanged", "bijoux.apt-1-v1")
    assert stored.booking_version == 2 and stored.run_identity == (1, 1) and stored.confirmed
    assert {n: s for n, (_, s) in spa.runs.runs.items()} == {"bijoux.apt-1-v1": "SCHEDULED"}
    spa.run_until(KEY, VISIT - timedelta(hours=47))
    assert spa.appointment(KEY).message(f"reminder_48h@{VISIT.astimezone(UTC):%Y-%m-%dT%H:%MZ}") is not None


def test_an_event_that_moves_the_next_step_stops_the_run_and_starts_its_own(spa: MemorySpa) -> None:
    spa.deliver(booked(spa))
    moved = spa.deliver(rescheduled(spa, 2, 1, at=BOOKED_AT + timedelta(days=1)))
    assert (moved.action, spa.appointment(KEY).run_identity) == ("scheduled", (2, 2))
    assert {n: s for n, (_, s) in spa.runs.runs.items()} == {"bijoux.apt-1-v1": "UNSCHEDULED",
                                                            "bijoux.apt-1-v2": "SCHEDULED"}


def test_a_redelivery_that_finds_the_event_folded_but_not_judged_starts_a_run_of_its_own(
        spa: MemorySpa, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Lambda died between storing the fold and choosing the run: what the appointment was before is gone,
    so the redelivery cannot tell whether the event moved the next step, and starts a new run (always safe)."""
    spa.deliver(booked(spa))
    event = spa.event("AppointmentConfirmed", BOOKED_AT + timedelta(days=1), **IDS, booking_version=2, channel="sms")
    appointments = spa.store.appointments

    def crash(*args: Any, **kwargs: Any) -> None:
        raise TimeoutError("the Lambda timed out")

    monkeypatch.setattr(appointments, "choose_run", crash)
    with pytest.raises(TimeoutError):
        spa.deliver(event)
    monkeypatch.undo()
    again = spa.deliver(event)
    assert (again.applied, again.action, again.execution_name) == (False, "scheduled", "bijoux.apt-1-v2")
    assert {n: s for n, (_, s) in spa.runs.runs.items()} == {"bijoux.apt-1-v1": "UNSCHEDULED",
                                                            "bijoux.apt-1-v2": "SCHEDULED"}
    assert spa.deliver(event).action == "unchanged"


def test_a_run_whose_first_step_is_near_starts_at_once_and_one_started_from_its_schedule_is_stopped() -> None:
    """Booked 50 hours ahead, the 48-hour reminder is due within the 6-hour margin: the run starts now. A
    scheduled run the Scheduler has started is stopped like any other when a reschedule moves its next step."""
    near = MemorySpa(VISIT - timedelta(hours=50))
    assert near.deliver(booked(near)).action == "started"
    assert near.runs.scheduled == {} and near.appointment(KEY).run.starts_at is None

    far = MemorySpa(BOOKED_AT)
    far.deliver(booked(far))
    started = far.appointment(KEY).run.starts_at
    assert far.runs.start_due(started) == ["bijoux.apt-1-v1"]
    far.now = started + timedelta(hours=1)
    far.deliver(rescheduled(far, 2, 1, at=far.now))
    assert {n: s for n, (_, s) in far.runs.runs.items()} == {"bijoux.apt-1-v1": "ABORTED",
                                                            "bijoux.apt-1-v2": "SCHEDULED"}
