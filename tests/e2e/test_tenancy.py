"""Tenant isolation through the real intake: every cross-tenant attempt is refused and changes nothing.

Two spas share one deployment and one bus. Glow's own vendor publishes as ``booking-site.glow``; it may
speak for Glow only (``medspa/policy/spas/glow.toml``). Bijoux and Glow both use the booking-site ids
``apt-1`` and ``c-1``: the keys carry the spa, so the two visits never meet.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from localcloud.clock import utc
from medspa.adapters.store import AppointmentStatus
from tests.e2e.booking_site import quarantined, run_starts

pytestmark = pytest.mark.e2e

GLOW_VENDOR = "booking-site.glow"
VISIT = utc(2026, 3, 12, 15)
BOTOX = dict(name="Botox", category="injection_laser", minutes=30, price=40_000)
FACIAL = dict(name="Facial", category="esthetics", minutes=60, price=120_000)


@pytest.fixture
def bijoux_visit(cloud, site):
    """Bijoux's client c-1 (good card) with visit apt-1, booked through the platform's booking site."""
    site.client("bijoux", "c-1", card="visa")
    site.book("apt-1", "c-1", "bijoux", VISIT, **BOTOX)
    cloud.run_for(timedelta(minutes=5))
    before = site.stored("apt-1")
    assert before is not None and before.status is AppointmentStatus.BOOKED
    return before


def _as_glow_vendor(site, detail_type: str, **detail) -> None:
    site.sent += 1
    site.publish(detail_type, {"event_id": f"evil-{site.sent}", "occurred_at": site.cloud.now().isoformat(),
                               **detail}, source=GLOW_VENDOR)


@pytest.mark.parametrize(("detail_type", "detail"), [
    ("AppointmentCancelled", {"appointment_id": "apt-1", "booking_version": 9, "by": "client"}),
    ("AppointmentMarkedNoShow", {"appointment_id": "apt-1", "booking_version": 9, "marked_by": "desk-1"}),
    ("CardUpdated", {"client_id": "c-1", "stripe_customer_id": "cus_Evil1", "stripe_payment_method_id": "pm_evil1"}),
    ("FeeWaived", {"appointment_id": "apt-1", "purpose": "late_cancel_fee", "admin_id": "a-1", "reason": "goodwill"}),
    ("PrepayRequirementCleared", {"client_id": "c-1", "admin_id": "a-1"}),
], ids=["cancel", "no_show", "card_update", "waiver", "prepay_clear"])
def test_a_vendor_cannot_speak_for_a_spa_that_did_not_authorise_it(cloud, site, bijoux_visit, detail_type, detail):
    client_before = site.store.clients.get("bijoux#c-1")
    _as_glow_vendor(site, detail_type, spa_id="bijoux", **detail)
    cloud.run_for(timedelta(days=3))

    [(event, reason)] = quarantined(cloud)
    assert event["detail-type"] == detail_type
    assert reason.startswith("source:") and "speak for the spa in detail.spa_id" in reason
    assert GLOW_VENDOR not in reason
    after = site.stored("apt-1")
    assert (after.status, after.booking_version, after.fees) == (AppointmentStatus.BOOKED, 1, {})
    assert site.store.clients.get("bijoux#c-1") == client_before
    assert site.ledger("apt-1") == []


def test_a_vendor_cannot_book_for_another_spa_nor_at_another_spas_location(cloud, site):
    site.client("glow", "g-1", card="visa")
    booked = dict(event_id="b-1", occurred_at=cloud.now().isoformat(), booking_version=1,
                  client={"id": "g-1"}, starts_at=VISIT.isoformat(),
                  service={"name": "Facial", "category": "esthetics", "duration_minutes": 60,
                           "price": {"amount": 120_000, "currency": "HKD"}})
    site.publish("AppointmentBooked", {**booked, "spa_id": "bijoux", "appointment_id": "apt-b",
                                       "location_id": "bijoux"}, source=GLOW_VENDOR)
    site.publish("AppointmentBooked", {**booked, "spa_id": "glow", "appointment_id": "apt-g",
                                       "location_id": "bijoux", "event_id": "b-2"}, source=GLOW_VENDOR)
    site.publish("AppointmentBooked", {**booked, "spa_id": "nowhere", "appointment_id": "apt-n",
                                       "location_id": "glow-hk", "event_id": "b-3"}, source=GLOW_VENDOR)
    cloud.run_for(timedelta(minutes=5))

    reasons = {event["detail"]["event_id"]: reason for event, reason in quarantined(cloud)}
    assert reasons["b-1"].startswith("source:")
    assert reasons["b-2"] == "detail.location_id: not a location of the spa in detail.spa_id"
    assert reasons["b-3"] == "detail.spa_id: no spa with this id is served here"
    assert "nowhere" not in reasons["b-3"]
    assert [site.store.appointments.get(k) for k in ("bijoux#apt-b", "glow#apt-g", "nowhere#apt-n")] == [None] * 3


@pytest.mark.parametrize(("detail_type", "detail", "field"), [
    ("CardUpdated", {"client_id": "c-1", "stripe_customer_id": "cus_Evil1", "stripe_payment_method_id": "pm_evil1"},
     "detail.client_id"),
    ("FeeWaived", {"appointment_id": "apt-1", "purpose": "late_cancel_fee", "admin_id": "a-1", "reason": "goodwill"},
     "detail.appointment_id"),
    ("PrepayRequirementCleared", {"client_id": "c-1", "admin_id": "a-1"}, "detail.client_id"),
], ids=["card_update", "waiver", "prepay_clear"])
def test_a_spa_cannot_reach_another_spas_client_or_visit_by_naming_its_booking_site_id(
        cloud, site, bijoux_visit, detail_type, detail, field):
    """Glow's vendor names Bijoux's ids under Glow: Glow has no such record, so after the retries that allow
    for a booking still on its way, the event is quarantined with the reason; Bijoux's records are untouched."""
    client_before = site.store.clients.get("bijoux#c-1")
    _as_glow_vendor(site, detail_type, spa_id="glow", **detail)
    cloud.run_for(timedelta(days=1))

    [(event, reason)] = quarantined(cloud)
    assert reason.startswith(f"{field}: no ") and "at the spa in detail.spa_id" in reason
    assert site.store.clients.get("bijoux#c-1") == client_before
    assert site.store.clients.get("glow#c-1") is None
    assert site.stored("apt-1").execution_name == "bijoux.apt-1-v1"  # its run, still waiting for its start
    assert run_starts(cloud) == ["bijoux.apt-1-v1"] and site.executions("apt-1") == []


def test_two_spas_may_use_the_same_booking_site_ids(cloud, site):
    site.client("bijoux", "c-1", card="visa", phone="+14075550101")
    site.book("apt-1", "c-1", "bijoux", VISIT, **BOTOX)
    glow = site.client("glow", "c-1", card="visa", phone="+85255501010")
    glow_booking = dict(event_id="g-evt-1", occurred_at=cloud.now().isoformat(), spa_id="glow",
                        appointment_id="apt-1", booking_version=1, location_id="glow-hk",
                        client={k: v for k, v in glow["client"].items() if v is not None},
                        starts_at=(VISIT + timedelta(days=1)).isoformat(), payment=glow["payment"],
                        service={"name": "Facial", "category": "esthetics", "duration_minutes": 60,
                                 "price": {"amount": 120_000, "currency": "HKD"}})
    site.publish("AppointmentBooked", glow_booking, source=GLOW_VENDOR)
    cloud.run_for(timedelta(minutes=5))
    site.publish("AppointmentCancelled", {"event_id": "g-evt-2", "occurred_at": cloud.now().isoformat(),
                                          "spa_id": "glow", "appointment_id": "apt-1", "booking_version": 2,
                                          "by": "client"}, source=GLOW_VENDOR)
    cloud.run_for(timedelta(minutes=5))

    bijoux, glow_visit = site.store.appointments.get("bijoux#apt-1"), site.store.appointments.get("glow#apt-1")
    assert (bijoux.status, bijoux.client_id, bijoux.location_id) == (AppointmentStatus.BOOKED, "bijoux#c-1", "bijoux")
    assert (glow_visit.status, glow_visit.client_id, glow_visit.location_id) == (
        AppointmentStatus.CANCELLED, "glow#c-1", "glow-hk")
    listed = cloud.client("stepfunctions").list_executions(
        stateMachineArn=cloud.state_machine_arn("AppointmentLifecycleStateMachine"))["executions"]
    assert listed == [] and glow_visit.run is not None and glow_visit.run.idle  # cancelled in time: nothing to run
    assert run_starts(cloud) == ["bijoux.apt-1-v1"]  # Glow's cancellation deleted Glow's start, not Bijoux's
    assert quarantined(cloud) == []


def test_stripe_sees_the_spa_beside_the_opaque_ledger_reference(cloud, site):
    site.client("bijoux", "c-1", card="visa")
    site.book("apt-1", "c-1", "bijoux", VISIT, **BOTOX)
    cloud.run_for(timedelta(hours=1))
    site.send("AppointmentCancelled", "apt-1", by="client")  # six days ahead of a 48 h window: no fee
    site.send("AppointmentRescheduled", "apt-9", spa_id="bijoux", starts_at=VISIT.isoformat())  # held, no booking
    site.book("apt-2", "c-1", "bijoux", cloud.now() + timedelta(hours=20), **BOTOX)
    cloud.run_for(timedelta(minutes=5))
    site.send("AppointmentCancelled", "apt-2", by="client")  # inside the window: the fee is charged
    cloud.run_for(timedelta(hours=1))

    [intent] = cloud.stripe.payment_intents
    assert set(intent["metadata"]) == {"ledger_ref", "spa_id", "location_id"}
    assert (intent["metadata"]["spa_id"], intent["metadata"]["location_id"]) == ("bijoux", "bijoux")
    assert "apt-2" not in json.dumps(intent)
