"""The AppointmentLifecycle end to end: booking-site events on the bus, the real state machine, SNS/SES,
the fake Stripe through the real SDK, all under the virtual clock.

Bijoux (America/New_York) reminds 48 hours before and at 08:00 on the morning of. US daylight saving
starts on Sunday 8 March 2026, between the booking and the visit, so the two reminders sit on
different UTC offsets.
"""

from __future__ import annotations

import sys
from datetime import timedelta

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns.models import sns_backends

from localcloud.clock import utc
from medspa.adapters.store import AppointmentStatus, StoreUnavailable

pytestmark = pytest.mark.e2e

START = utc(2026, 3, 2, 15)  # Monday 10:00 EST
VISIT = utc(2026, 3, 10, 18)  # Tuesday 14:00 EDT
INJECTION = dict(name="Botox forehead", category="injection_laser", minutes=30, price=45000)


@pytest.fixture
def cloud(request):
    from localcloud.cloud import LocalCloud

    with LocalCloud(getattr(request, "param", START)) as cloud:
        cloud.deploy({"LogLevel": "WARNING"})
        yield cloud


def sms_texts() -> list[str]:
    return [text for _, (_, text, *_) in sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sms_messages.items()]


def test_reminders_go_at_48h_and_at_0800_local_across_the_dst_change_and_a_checked_in_visit_ends(cloud, site):
    site.client("bijoux", "c-ana")
    site.book("apt-1", "c-ana", "bijoux", VISIT, **INJECTION)
    cloud.run_until(VISIT - timedelta(minutes=5))
    site.send("ClientCheckedIn", "apt-1", arrived_at=(VISIT - timedelta(minutes=5)).isoformat())
    cloud.run_until_idle()

    assert site.messages("apt-1") == [
        ("reminder_48h", "sent", utc(2026, 3, 8, 18)),  # 48 elapsed hours before 14:00 EDT
        ("reminder_morning_of", "sent", utc(2026, 3, 10, 12)),  # 08:00 EDT (13:00 UTC under EST)
    ]
    texts = sms_texts()
    assert len(texts) == 2 and all(t.endswith("Reply STOP to opt out.") for t in texts)
    assert all("Botox" not in t for t in texts), "no treatment names in SMS"
    first, second = site.executions("apt-1")
    assert (first["status"], second["status"]) == ("ABORTED", "SUCCEEDED")
    assert site.states_entered(second["executionArn"])[-1][1] == "Done: nothing left to do"
    assert site.ledger("apt-1") == []


def test_a_no_show_at_bijoux_is_charged_50_dollars_to_the_card_and_counts_a_strike(cloud, site):
    site.client("bijoux", "c-ben")
    site.book("apt-2", "c-ben", "bijoux", VISIT, **INJECTION)
    cloud.run_until_idle()

    stored = site.store.appointments.get("apt-2")
    assert stored.status is AppointmentStatus.NO_SHOW
    assert site.ledger("apt-2") == [("no_show_fee", "charge", 5000, "succeeded")]
    assert cloud.stripe.charges_total() == 5000
    [strike] = site.store.clients.get("bijoux#c-ben").strikes
    assert (strike.reason, strike.at) == ("no_show", VISIT + timedelta(minutes=15))
    assert [m[:2] for m in site.messages("apt-2")][-1] == ("no_show_fee_charged", "sent")
    assert "$50.00" in sms_texts()[-1]
    states = [name for _, name in site.states_entered(site.executions("apt-2")[0]["executionArn"])]
    assert states.index("Decide: attended or no-show") < states.index("Charge the fee") < states.index(
        "Count the strike")
    kinds = [kind for kind, _ in site.inbox()]
    assert kinds == ["FeeCharged", "ClientStrikeRecorded"]


@pytest.mark.parametrize("cloud", [utc(2026, 3, 2, 16)], indirect=True)
def test_406_auto_cancels_an_unconfirmed_visit_tells_the_client_and_the_booking_site_without_fee_or_strike(
        cloud, site):
    site.client("406medicalspa", "c-cy", phone="+14065550111")
    visit = utc(2026, 3, 10, 17)  # Tuesday 11:00 MDT; deadline: end of business Monday
    site.book("apt-3", "c-cy", "406medicalspa", visit, name="Hydrafacial", category="esthetics", minutes=60,
              price=20000)
    cloud.run_until_idle()

    stored = site.store.appointments.get("apt-3")
    assert stored.status is AppointmentStatus.AUTO_CANCELLED
    kinds = [kind for kind, *_ in site.messages("apt-3")]
    assert kinds[-2:] == ["confirmation_request", "auto_cancelled"] or kinds[-1] == "auto_cancelled"
    assert "confirmation_request" in kinds
    assert site.ledger("apt-3") == [] and site.store.clients.get("406medicalspa#c-cy").strikes == ()
    [(kind, detail)] = site.inbox()
    assert (kind, detail["reason"], detail["appointment_id"]) == (
        "AppointmentAutoCancelled", "not_confirmed_by_deadline", "apt-3")


@pytest.mark.parametrize("cloud", [utc(2026, 3, 2, 16)], indirect=True)
def test_406_a_confirmed_visit_is_not_cancelled(cloud, site):
    site.client("406medicalspa", "c-di", phone="+14065550112")
    visit = utc(2026, 3, 10, 17)
    site.book("apt-4", "c-di", "406medicalspa", visit, name="Hydrafacial", category="esthetics", minutes=60,
              price=20000)
    cloud.run_until(utc(2026, 3, 9, 16))
    site.send("AppointmentConfirmed", "apt-4", channel="sms")
    cloud.run_until(visit - timedelta(minutes=1))
    assert site.store.appointments.get("apt-4").status is AppointmentStatus.CONFIRMED
    assert site.inbox() == []


def test_a_throttled_read_is_retried_by_the_state_machine(cloud, site, monkeypatch):
    site.client("bijoux", "c-ed")
    site.book("apt-5", "c-ed", "bijoux", VISIT, **INJECTION)
    cloud.run_for(timedelta(hours=1))
    appointments = sys.modules["lambda_LifecycleFunction"].service._store.appointments
    real_get, failures = appointments.get, iter([StoreUnavailable("DynamoDB ThrottlingException")])

    def flaky_get(appointment_id):
        if (error := next(failures, None)) is not None:
            raise error
        return real_get(appointment_id)

    monkeypatch.setattr(appointments, "get", flaky_get)
    cloud.run_until(utc(2026, 3, 8, 19))
    arn = site.executions("apt-5")[0]["executionArn"]
    events = cloud.client("stepfunctions").get_execution_history(executionArn=arn)["events"]
    failed = [e for e in events if e["type"] == "TaskFailed"]
    assert [e["taskFailedEventDetails"]["error"] for e in failed] == ["StoreUnavailable"]
    assert failed[0]["timestamp"] == utc(2026, 3, 8, 18)
    assert site.messages("apt-5")[0][:2] == ("reminder_48h", "sent")
