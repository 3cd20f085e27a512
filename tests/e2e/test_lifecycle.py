"""The AppointmentLifecycle end to end: booking-site events on the bus, the real state machine, SNS/SES,
the fake Stripe through the real SDK, all under the virtual clock.

Bijoux (America/New_York) reminds 48 hours before and at 08:00 on the morning of. US daylight saving
starts on Sunday 8 March 2026, between the booking and the visit, so the two reminders sit on
different UTC offsets.
"""

from __future__ import annotations

import json
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
    # The check-in leaves nothing to do: the one run is stopped, with the reason an admin reads, and none follows.
    (run,) = site.executions("apt-1")
    assert (run["status"], run["stopDate"]) == ("ABORTED", VISIT - timedelta(minutes=5))
    stopped = next(e for e in cloud.client("stepfunctions").get_execution_history(executionArn=run["executionArn"])[
        "events"] if e["type"] == "ExecutionAborted")["executionAbortedEventDetails"]
    assert stopped["error"] == "NothingLeftToDo"
    assert stopped["cause"].startswith("Nothing left to do after booking version 2: client checked in")
    assert site.ledger("apt-1") == []


def test_a_no_show_at_bijoux_is_charged_50_dollars_to_the_card_and_counts_a_strike(cloud, site):
    site.client("bijoux", "c-ben")
    site.book("apt-2", "c-ben", "bijoux", VISIT, **INJECTION)
    cloud.run_until_idle()

    stored = site.stored("apt-2")
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

    stored = site.stored("apt-3")
    assert stored.status is AppointmentStatus.AUTO_CANCELLED
    assert [(kind, status) for kind, status, _ in site.messages("apt-3")] == [
        ("confirmation_request", "sent"), ("auto_cancelled", "sent")]
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
    assert site.stored("apt-4").status is AppointmentStatus.CONFIRMED
    assert site.inbox() == []


def test_a_throttled_read_is_retried_by_the_state_machine(cloud, site, monkeypatch):
    site.client("bijoux", "c-ed")
    site.book("apt-5", "c-ed", "bijoux", VISIT, **INJECTION)
    cloud.run_until(utc(2026, 3, 7, 10))  # its schedule started the run at 04:00 EST, 6 hours before the card check
    appointments = sys.modules["lambda_LifecycleFunction"].service()._store.appointments
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
    # The lifecycle function's first read after the patch: the 48-hour reminder (Sunday 14:00 EDT). The card
    # check before it is the settlement function's, which plans what follows it from its own store.
    assert failed[0]["timestamp"] == utc(2026, 3, 8, 18)
    assert site.messages("apt-5")[0][:2] == ("reminder_48h", "sent")


BIJOUX_SCHEDULE = [  # (service, category, minutes, fee in cents) per Bijoux's published fee schedule
    ("Botox forehead", "injection_laser", 30, 5000),
    ("Laser hair removal", "injection_laser", 60, 10000),
    ("Filler", "injection_laser", 45, 10000),  # 31-59 minutes: the pack's stated reading ($100)
    ("Signature facial", "esthetician", 60, 5000),
    ("Myers IV", "injection_laser", 45, 3000),  # "IV" is wellness whatever the site's category
    ("Vitamin B12 shot", "wellness", 15, 3000),
    ("New client consultation", "consultation", 30, 5000),
    ("Hormone pellet", "pellet_insertion", 30, 5000),
]


def test_each_fee_in_bijouxs_schedule_is_charged_for_a_late_cancel_and_nothing_for_an_on_time_one(cloud, site):
    for n, (name, category, minutes, _) in enumerate(BIJOUX_SCHEDULE):
        site.client("bijoux", f"c-{n}")
        site.book(f"apt-s{n}", f"c-{n}", "bijoux", VISIT, name=name, category=category, minutes=minutes,
                  price=30000)
    site.client("bijoux", "c-early")
    site.book("apt-early", "c-early", "bijoux", VISIT, **INJECTION)
    cloud.run_until(VISIT - timedelta(hours=72))
    site.send("AppointmentCancelled", "apt-early", by="client")
    cloud.run_until(VISIT - timedelta(hours=47, minutes=59))  # one minute inside the 48-hour window
    for n in range(len(BIJOUX_SCHEDULE)):
        site.send("AppointmentCancelled", f"apt-s{n}", by="client")
    cloud.run_until_idle()

    charged = {n: site.ledger(f"apt-s{n}") for n in range(len(BIJOUX_SCHEDULE))}
    assert charged == {n: [("late_cancel_fee", "charge", fee, "succeeded")]
                       for n, (*_, fee) in enumerate(BIJOUX_SCHEDULE)}
    assert site.ledger("apt-early") == []
    assert cloud.stripe.charges_total() == sum(fee for *_, fee in BIJOUX_SCHEDULE)
    assert site.store.clients.get("bijoux#c-0").strike_count == 1
    assert site.store.clients.get("bijoux#c-early").strike_count == 0
    assert ("late_cancel_fee_charged", "sent") in [m[:2] for m in site.messages("apt-s1")]


def test_the_third_strike_makes_the_client_prepay_tells_them_and_the_booking_site(cloud, site):
    site.client("bijoux", "c-fay")
    for n in range(3):
        site.book(f"apt-f{n}", "c-fay", "bijoux", VISIT + timedelta(days=n), **INJECTION)
    cloud.run_until(VISIT + timedelta(days=1, hours=12))
    assert not site.store.clients.get("bijoux#c-fay").prepay_required  # two strikes
    cloud.run_until_idle()

    client = site.store.clients.get("bijoux#c-fay")
    assert client.strike_count == 3 and client.prepay_required
    assert client.prepay_set_at == VISIT + timedelta(days=2, minutes=15)
    assert ("prepay_required", "sent") in [m[:2] for m in site.messages("apt-f2")]
    restricted = [d for kind, d in site.inbox() if kind == "ClientBookingRestricted"]
    assert [(d["client_id"], d["strike_count"], d["prepay_required"]) for d in restricted] == [("c-fay", 3, True)]

    site.send("PrepayRequirementCleared", spa_id="bijoux", client_id="c-fay", admin_id="admin-maria")
    cloud.run_for(timedelta(minutes=1))
    cleared = site.store.clients.get("bijoux#c-fay")
    assert (cleared.prepay_required, cleared.prepay_cleared_by, cleared.strike_count) == (False, "admin-maria", 3)


def test_a_declined_card_leaves_the_fee_outstanding_is_retried_with_new_keys_and_a_new_card_pays_it(cloud, site):
    site.client("bijoux", "c-gus", card="chargeCustomerFail")  # saved fine, declines when charged
    site.book("apt-g", "c-gus", "bijoux", VISIT, **INJECTION)
    decided = VISIT + timedelta(minutes=15)
    cloud.run_until(decided + timedelta(hours=30))
    assert site.store.clients.get("bijoux#c-gus").outstanding == {"USD": 5000}
    assert [m[:2] for m in site.messages("apt-g")][-1] == ("fee_declined", "sent")

    customer = site.clients["c-gus"]["payment"]["stripe_customer_id"]
    good = site.stripe.v1.payment_methods.attach("pm_card_visa", params={"customer": customer}).id
    site.send("CardUpdated", spa_id="bijoux", client_id="c-gus", stripe_customer_id=customer,
              stripe_payment_method_id=good)
    cloud.run_until_idle()

    assert site.ledger("apt-g") == [("no_show_fee", "charge", 5000, "declined"),  # the no-show itself
                                    ("no_show_fee", "charge", 5000, "declined"),  # +24 h, the old card
                                    ("no_show_fee", "charge", 5000, "succeeded")]  # +72 h, the new card
    entries = sorted(site.store.ledger.for_appointment(site.key("apt-g")), key=lambda e: e.attempt)
    assert len({e.stripe_idempotency_key for e in entries}) == 3
    assert [e.created_at for e in entries] == [decided, decided + timedelta(hours=24), decided + timedelta(hours=72)]
    assert site.store.clients.get("bijoux#c-gus").outstanding == {"USD": 0}
    assert cloud.stripe.charges_total() == 5000


def test_an_admins_waiver_refunds_a_charged_fee(cloud, site):
    site.client("bijoux", "c-hal")
    site.book("apt-h", "c-hal", "bijoux", VISIT, **INJECTION)
    cloud.run_until(VISIT + timedelta(hours=2))
    site.send("FeeWaived", "apt-h", purpose="no_show_fee", admin_id="admin-maria", reason="Medical emergency")
    cloud.run_until_idle()

    assert site.ledger("apt-h") == [("no_show_fee", "charge", 5000, "succeeded"),
                                    ("no_show_fee_refund", "refund", 5000, "succeeded")]
    assert cloud.stripe.refunds_total() == 5000
    assert ("fee_waived", "sent") in [m[:2] for m in site.messages("apt-h")]
    assert [e["name"] for e in site.executions("apt-h")][-1] == "bijoux.apt-h-waive-no_show_fee"


def test_a_waiver_that_finds_no_fee_says_so_and_its_run_succeeds_without_a_notice(cloud, site):
    """A waiver acts on what was charged or is owed when it arrives (the catalogue: an action on a ledger
    entry). One sent before any fee changes nothing, and its run must say that, not fail for want of a notice."""
    site.client("bijoux", "c-hal")
    site.book("apt-h", "c-hal", "bijoux", VISIT, **INJECTION)
    cloud.run_until(VISIT - timedelta(days=3))
    site.send("FeeWaived", "apt-h", purpose="no_show_fee", admin_id="admin-maria", reason="Asked in advance")
    cloud.run_until(VISIT - timedelta(days=2, hours=12))

    waiver = next(e for e in site.executions("apt-h") if e["name"] == "bijoux.apt-h-waive-no_show_fee")
    assert waiver["status"] == "SUCCEEDED"
    history = cloud.client("stepfunctions").get_execution_history(executionArn=waiver["executionArn"])["events"]
    said = [json.loads(e["stateExitedEventDetails"]["output"])["last"]["done"] for e in history
            if e["type"] == "TaskStateExited"]
    assert said == ["no_show: nothing to waive, no fee was charged or is owed", "nothing to tell the client"]
    assert site.ledger("apt-h") == []
    assert "fee_waived" not in [m[0] for m in site.messages("apt-h")]


@pytest.mark.parametrize("cloud", [utc(2026, 3, 2, 2)], indirect=True)
def test_glow_charges_hk500_for_a_late_reschedule_and_takes_a_course_session_for_a_no_show(cloud, site):
    visit = utc(2026, 3, 10, 6)  # 14:00 HKT
    site.client("glow", "c-ivy", phone="+85291234567")
    site.client("glow", "c-jo", phone="+85291234568")
    site.book("apt-i", "c-ivy", "glow-hk", visit, name="HydraFacial", category="facial", minutes=60, price=180000)
    site.book("apt-j", "c-jo", "glow-hk", visit, name="HydraFacial", category="facial", minutes=60, price=180000,
              course_id="course-77", course_session_available=True)
    cloud.run_until(visit - timedelta(hours=5))
    site.send("AppointmentRescheduled", "apt-i", starts_at=(visit + timedelta(days=3)).isoformat())
    cloud.run_until(visit + timedelta(hours=1))

    assert site.ledger("apt-i") == [("late_reschedule_fee", "charge", 50000, "succeeded")]
    assert site.ledger("apt-j") == [("no_show_fee_course_session", "deduction", 180000, "succeeded")]
    assert cloud.stripe.charges_total(currency="hkd") == 50000
    assert ("fee_applied", "sent") in [m[:2] for m in site.messages("apt-j")]
    assert "HK$500.00" in " ".join(sms_texts())


@pytest.mark.parametrize("cloud", [utc(2026, 3, 2, 17)], indirect=True)
def test_massageluxe_charges_the_full_price_of_a_missed_massage_at_the_end_of_the_slot(cloud, site):
    visit = utc(2026, 3, 10, 17)  # 10:00 MST in Scottsdale (no DST in Arizona)
    site.client("massageluxe", "c-kai", phone="+14805550123")
    site.book("apt-k", "c-kai", "massageluxe-scottsdale", visit, name="Swedish massage", category="massage",
              minutes=60, price=12900)
    cloud.run_until_idle()

    [charge] = site.store.ledger.for_appointment(site.key("apt-k"))
    assert (charge.purpose, charge.amount.amount, charge.created_at) == ("no_show_fee", 12900,
                                                                         visit + timedelta(minutes=60))


def test_a_client_who_gave_no_sms_consent_gets_no_sms_and_the_log_says_why(cloud, site):
    site.client("bijoux", "c-lu", sms_opt_in=False)
    site.book("apt-l", "c-lu", "bijoux", VISIT, **INJECTION)
    cloud.run_until(VISIT - timedelta(hours=1))

    assert [m[:2] for m in site.messages("apt-l")] == [("reminder_48h", "skipped"), ("reminder_morning_of", "skipped")]
    assert sms_texts() == []
    [log, _] = site.stored("apt-l").messages
    assert [(r.channel, r.status) for r in log.results] == [("sms", "skipped_opted_out"), ("email", "skipped_no_contact")]


def test_a_visit_booked_fourteen_months_ahead_waits_as_a_schedule_and_still_gets_its_reminders(cloud, site):
    """No execution waits out the year: the run is a schedule until 6 hours before the card check (10:00 EDT
    three days before), so Step Functions' one-year limit on an execution never comes near."""
    visit = utc(2027, 5, 4, 18)  # 14 months ahead
    site.client("bijoux", "c-max")
    site.book("apt-m", "c-max", "bijoux", visit, **INJECTION)
    cloud.run_for(timedelta(minutes=5))
    assert site.executions("apt-m") == [] and site.stored("apt-m").run.starts_at == utc(2027, 5, 1, 8)

    site.send("AppointmentConfirmed", "apt-m", channel="web")  # Bijoux waits for no confirmation: the schedule stands
    cloud.run_for(timedelta(minutes=5))
    assert site.stored("apt-m").execution_name == "bijoux.apt-m-v1" and site.executions("apt-m") == []
    moved = visit + timedelta(days=1)
    site.send("AppointmentRescheduled", "apt-m", starts_at=moved.isoformat())  # a move replaces the schedule
    cloud.run_until(moved - timedelta(hours=1))
    assert {e["name"]: e["status"] for e in site.executions("apt-m")} == {"bijoux.apt-m-v3": "RUNNING"}
    assert [m[:2] for m in site.messages("apt-m")] == [("reminder_48h", "sent"), ("reminder_morning_of", "sent")]


@pytest.mark.parametrize("cloud", [utc(2026, 3, 2, 16)], indirect=True)
def test_cancelling_a_visit_the_system_already_auto_cancelled_or_called_a_no_show_costs_nothing_more(cloud, site):
    site.client("406medicalspa", "c-ned", phone="+14065550113")
    site.client("bijoux", "c-oz")
    visit = utc(2026, 3, 10, 17)
    site.book("apt-n", "c-ned", "406medicalspa", visit, name="Hydrafacial", category="esthetics", minutes=60,
              price=20000, deposit=5000)
    site.book("apt-o", "c-oz", "bijoux", VISIT, **INJECTION)
    cloud.run_until(utc(2026, 3, 10, 2))  # after 406's deadline
    site.send("AppointmentCancelled", "apt-n", by="client")
    cloud.run_until(VISIT + timedelta(hours=1))  # after Bijoux's no-show decision
    site.send("AppointmentCancelled", "apt-o", by="spa")
    cloud.run_until_idle()

    assert site.ledger("apt-n") == [] and site.store.clients.get("406medicalspa#c-ned").strike_count == 0
    assert site.ledger("apt-o") == [("no_show_fee", "charge", 5000, "succeeded")]
    assert site.store.clients.get("bijoux#c-oz").strike_count == 1


@pytest.mark.parametrize(("function", "payload", "field"), [
    ("SettlementFunction", {"action": "retry_fee", "appointment_id": "bijoux#apt-1", "reason": "no_show"}, "attempt"),
    ("SettlementFunction", {"action": "settle_fee", "appointment_id": "bijoux#apt-1", "reason": None}, "reason"),
    ("SettlementFunction", {"action": "refund_everything", "appointment_id": "bijoux#apt-1"}, "action"),
    ("LifecycleFunction", {"action": "send_message", "appointment_id": "bijoux#apt-1", "booking_version": 1}, "key"),
])
def test_a_malformed_task_payload_fails_the_task_naming_the_field_instead_of_taking_a_default(cloud, function,
                                                                                              payload, field):
    answer = cloud.client("lambda").invoke(FunctionName=cloud.deployment.physical(function),
                                           Payload=json.dumps(payload).encode())
    error = json.loads(answer["Payload"].read())
    assert answer.get("FunctionError")
    assert error["errorType"] == "ValidationError" and field in error["errorMessage"]
