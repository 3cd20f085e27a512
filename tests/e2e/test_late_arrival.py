"""Late arrival, end to end (issue 11, item 2): ``ClientCheckedIn.arrived_at`` against the pack's limit.

Bijoux: "If you're more than 15 minutes late, we may need to reschedule ... Abbreviated treatments are charged at
full value ... a missed appointment may be rescheduled within the same day to avoid a charge". 406: "tardiness of
more than 10 minutes could result in rescheduling". MassageLuXe: minutes late come off the hands-on time ("a
massage at noon ... ready until 12:15 ... will still end at 12:55").

What the system makes of it: a late client inside the limit gets a notice that the visit ends on time at full
price; past it, the visit must be rescheduled and the pack's late-reschedule fee applies, charged at once, or at
the end of the visit's local day where rebooking that day waives it. The front desk hears the same through
``LateArrivalRecorded``. A client whose check-in reaches the system after it called the no-show was there after
all: the no-show fee is released once (refunded or cancelled, the strike taken back, one notice).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns.models import sns_backends

from localcloud.clock import utc
from medspa.policy import loader
from tests.support.pack_versions import copy_of_the_shipped_packs

pytestmark = pytest.mark.e2e

VISIT = utc(2026, 3, 17, 18)  # Tuesday 14:00 EDT at Bijoux; the local cloud starts on Thursday 5 March
INJECTION = dict(name="Botox forehead", category="injection_laser", minutes=30, price=45000)  # fee $50
VISIT_406 = utc(2026, 3, 10, 17)  # Tuesday 11:00 MDT
FACIAL = dict(name="Hydrafacial", category="esthetics", minutes=60, price=30000)  # fee $75
NOON_AUSTIN = utc(2026, 3, 12, 17)  # Thursday 12:00 CDT
MASSAGE = dict(name="Swedish massage", category="massage", minutes=60, price=9900)


def sms_texts() -> list[str]:
    return [text for _, (_, text, *_) in sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sms_messages.items()]


def book_406(site, appointment_id: str, client_id: str, starts_at) -> None:
    """406 cancels a visit not confirmed by the day before: these clients confirm."""
    site.book(appointment_id, client_id, "406medicalspa", starts_at, **FACIAL)
    site.send("AppointmentConfirmed", appointment_id, channel="sms")


def check_in(site, appointment_id: str, arrived_at) -> None:
    site.send("ClientCheckedIn", appointment_id, arrived_at=arrived_at.isoformat())


def arrive(cloud, site, appointment_id: str, arrived_at) -> None:
    """The client checks in at ``arrived_at`` and the front desk records it at once; the system then has a few
    minutes to act on it."""
    cloud.run_until(arrived_at)
    check_in(site, appointment_id, arrived_at)
    cloud.run_for(timedelta(minutes=4))


def told(site, detail_type: str) -> list[dict]:
    return [d for kind, d in site.inbox() if kind == detail_type]


def test_bijoux_a_client_ten_minutes_late_is_told_the_treatment_still_ends_on_time_at_full_price(cloud, site):
    site.client("bijoux", "c-lena")
    site.book("apt-l1", "c-lena", "bijoux", VISIT, **INJECTION)
    arrive(cloud, site, "apt-l1", VISIT + timedelta(minutes=10))

    [notice] = [t for t in sms_texts() if "checked in 10 min" in t]
    assert "still ends at 2:30 PM (20 min) and is charged at full price" in notice
    [recorded] = told(site, "LateArrivalRecorded")
    assert (recorded["appointment_id"], recorded["outcome"], recorded["minutes_late"], recorded["hands_on_minutes"],
            recorded["late_reschedule_fee"]) == ("apt-l1", "shortened", 10, 20, None)

    site.send("AppointmentCompleted", "apt-l1")
    cloud.run_until_idle()
    assert site.ledger("apt-l1") == [] and cloud.stripe.charges_total() == 0
    assert [m[:2] for m in site.messages("apt-l1") if m[0].startswith("late_arrival")] == [
        ("late_arrival_shortened", "sent")]


def test_bijoux_a_client_too_late_who_rebooks_the_same_day_pays_nothing(cloud, site):
    site.client("bijoux", "c-mae")
    site.book("apt-l2", "c-mae", "bijoux", VISIT, **INJECTION)
    arrive(cloud, site, "apt-l2", VISIT + timedelta(minutes=16))

    [notice] = [t for t in sms_texts() if "checked in 16 min" in t]
    assert "Rebook for later today to avoid a $50.00 fee" in notice
    [recorded] = told(site, "LateArrivalRecorded")
    assert recorded["outcome"] == "must_reschedule"
    assert recorded["late_reschedule_fee"] == {"amount": 5000, "currency": "USD"}
    assert recorded["fee_waived_if_rebooked_before"] == utc(2026, 3, 18, 4).isoformat()  # midnight EDT

    site.send("AppointmentRescheduled", "apt-l2", starts_at=(VISIT + timedelta(hours=3)).isoformat())
    cloud.run_until(VISIT + timedelta(hours=3))
    check_in(site, "apt-l2", VISIT + timedelta(hours=3))
    cloud.run_until_idle()

    # Past 15 minutes she was already the no-show the pack decides at 14:15; her check-in released that fee.
    assert site.ledger("apt-l2") == [("no_show_fee", "charge", 5000, "succeeded"),
                                     ("no_show_fee_refund", "refund", 5000, "succeeded")]
    assert site.stored("apt-l2").fees["late_reschedule"].outcome == "no_fee"
    assert site.store.clients.get("bijoux#c-mae").strike_count == 0


def test_bijoux_a_client_too_late_who_does_not_rebook_pays_the_fee_at_the_end_of_the_day(cloud, site):
    site.client("bijoux", "c-noor")
    site.book("apt-l3", "c-noor", "bijoux", VISIT, **INJECTION)
    cloud.run_until(VISIT + timedelta(minutes=20))
    check_in(site, "apt-l3", VISIT + timedelta(minutes=20))
    midnight_edt = utc(2026, 3, 18, 4)
    cloud.run_until(midnight_edt - timedelta(minutes=1))
    assert "late_reschedule" not in site.stored("apt-l3").fees
    assert cloud.stripe.charges_total() == cloud.stripe.refunds_total() == 5000  # the no-show fee, released

    cloud.run_until_idle()
    assert site.ledger("apt-l3") == [("late_reschedule_fee", "charge", 5000, "succeeded"),
                                     ("no_show_fee", "charge", 5000, "succeeded"),
                                     ("no_show_fee_refund", "refund", 5000, "succeeded")]
    assert site.stored("apt-l3").fees["late_reschedule"].updated_at == midnight_edt


def test_406_nine_minutes_late_is_shortened_eleven_must_reschedule_and_costs_the_75_dollar_fee_not_a_no_show(cloud, site):
    site.client("406medicalspa", "c-ora")
    book_406(site, "apt-l4", "c-ora", VISIT_406)
    arrive(cloud, site, "apt-l4", VISIT_406 + timedelta(minutes=9))
    assert [d["outcome"] for d in told(site, "LateArrivalRecorded")] == ["shortened"]

    site.client("406medicalspa", "c-pim")
    book_406(site, "apt-l5", "c-pim", VISIT_406 + timedelta(days=1))
    arrive(cloud, site, "apt-l5", VISIT_406 + timedelta(days=1, minutes=11))

    # At 406 the limit is the no-show time, so she was already the no-show: released, the late reschedule instead.
    assert site.ledger("apt-l5") == [("late_reschedule_fee", "charge", 7500, "succeeded"),
                                     ("no_show_fee", "charge", 7500, "succeeded"),
                                     ("no_show_fee_refund", "refund", 7500, "succeeded")]
    [notice] = [t for t in sms_texts() if "checked in 11 min" in t]
    assert "must be rescheduled and a $75.00 fee applies" in notice
    assert site.store.clients.get("406medicalspa#c-pim").strike_count == 0  # 406 counts no late reschedules
    assert site.ledger("apt-l4") == []


def test_406_a_visit_the_spa_serves_after_calling_the_arrival_too_late_releases_the_fee(cloud, site):
    site.client("406medicalspa", "c-quill")
    book_406(site, "apt-l6", "c-quill", VISIT_406)
    arrive(cloud, site, "apt-l6", VISIT_406 + timedelta(minutes=12))
    assert cloud.stripe.charges_total() - cloud.stripe.refunds_total() == 7500

    site.send("AppointmentCompleted", "apt-l6")
    cloud.run_until_idle()
    assert cloud.stripe.charges_total() == cloud.stripe.refunds_total() == 15000
    assert {r: f.outcome for r, f in site.stored("apt-l6").fees.items()} == {"no_show": "waived",
                                                                              "late_reschedule": "waived"}
    assert [(d["reason"], d["refunded"]) for d in told(site, "FeeReleased")] == [
        ("no_show", {"amount": 7500, "currency": "USD"}), ("late_reschedule", {"amount": 7500, "currency": "USD"})]


def test_bijoux_a_check_in_that_reaches_the_system_after_the_no_show_releases_the_fee_and_the_strike_once(
        cloud, site):
    site.client("bijoux", "c-rae")
    site.book("apt-l7", "c-rae", "bijoux", VISIT, **INJECTION)
    cloud.run_until(VISIT + timedelta(minutes=40))
    assert site.ledger("apt-l7") == [("no_show_fee", "charge", 5000, "succeeded")]
    assert site.store.clients.get("bijoux#c-rae").strike_count == 1

    check_in(site, "apt-l7", VISIT + timedelta(minutes=5))  # she was there; the desk's tablet was offline
    site.send("AppointmentCompleted", "apt-l7")
    check_in(site, "apt-l7", VISIT + timedelta(minutes=5))  # the desk sends it again
    cloud.run_until_idle()

    assert site.ledger("apt-l7") == [("no_show_fee", "charge", 5000, "succeeded"),
                                     ("no_show_fee_refund", "refund", 5000, "succeeded")]
    assert cloud.stripe.refunds_total() == 5000
    assert site.store.clients.get("bijoux#c-rae").strike_count == 0
    released = [t for t in sms_texts() if "no longer applies" in t]
    assert len(released) == 1 and "$50.00" in released[0]
    [event] = told(site, "FeeReleased")
    assert (event["reason"], event["strike_removed"], event["strike_count"]) == ("no_show", True, 0)


def test_massageluxe_the_seed_example_a_noon_massage_ready_at_12_15_still_ends_at_12_55(cloud, site):
    site.client("massageluxe", "c-tova")
    site.book("apt-l9", "c-tova", "massageluxe-austin", NOON_AUSTIN, **MASSAGE)
    arrive(cloud, site, "apt-l9", NOON_AUSTIN + timedelta(minutes=15))

    [notice] = [t for t in sms_texts() if "checked in 15 min" in t]
    assert "still ends at 12:55 PM (40 min)" in notice
    [recorded] = told(site, "LateArrivalRecorded")
    assert (recorded["outcome"], recorded["hands_on_minutes"]) == ("shortened", 40)
    assert recorded["treatment_ends_at"] == (NOON_AUSTIN + timedelta(minutes=55)).isoformat()


def test_a_pack_may_say_the_no_show_decision_stands_after_a_late_check_in(cloud, site, tmp_path, monkeypatch):
    packs_dir = copy_of_the_shipped_packs(tmp_path)
    bijoux = packs_dir / "bijoux.toml"
    text = bijoux.read_text(encoding="utf-8")
    assert text.count('[no_show]\ndecided_at = "start_plus_grace"\n') == 1
    bijoux.write_text(text.replace('[no_show]\ndecided_at = "start_plus_grace"\n',
                                   '[no_show]\ndecided_at = "start_plus_grace"\nfee_stands_after_check_in = true\n'),
                      encoding="utf-8")
    monkeypatch.setattr(loader, "PACKS_DIR", packs_dir)
    cloud.redeploy_code()
    site.client("bijoux", "c-uma")
    site.book("apt-l10", "c-uma", "bijoux", VISIT, **INJECTION)
    cloud.run_until(VISIT + timedelta(minutes=40))
    check_in(site, "apt-l10", VISIT + timedelta(minutes=5))
    site.send("AppointmentCompleted", "apt-l10")
    cloud.run_until_idle()

    assert site.ledger("apt-l10") == [("no_show_fee", "charge", 5000, "succeeded")]
    assert cloud.stripe.refunds_total() == 0 and told(site, "FeeReleased") == []
    assert site.store.clients.get("bijoux#c-uma").strike_count == 1


def test_glow_a_client_twenty_minutes_late_on_a_course_loses_the_session_and_the_strike_is_a_late_reschedule(
        cloud, site):
    """Glow: "where the client arrives too late for the service to be provided" the visit is a late reschedule
    (a course session deducted, and a strike, as Glow counts late reschedules); the no-show it already was is
    released: its session given back for the booking system to restore, its strike taken back."""
    site.client("glow", "c-wen", phone="+85291230007")
    start = utc(2026, 3, 12, 3)  # Thursday 11:00 HKT
    site.book("apt-l11", "c-wen", "glow-hk", start, name="HydraFacial", category="facial", minutes=60, price=128000,
              course_id="course-7", course_session_available=True)
    arrive(cloud, site, "apt-l11", start + timedelta(minutes=20))
    cloud.run_until_idle()

    assert [(e[0], e[1]) for e in site.ledger("apt-l11")] == [
        ("late_reschedule_fee_course_session", "deduction"), ("no_show_fee_course_session", "deduction"),
        ("no_show_fee_course_session_released", "credit")]
    fees = site.stored("apt-l11").fees
    assert (fees["no_show"].outcome, fees["late_reschedule"].outcome) == ("waived", "settled")
    client = site.store.clients.get("glow#c-wen")
    assert [s.reason for s in client.strikes] == ["late_reschedule"]
    [released] = told(site, "FeeReleased")
    assert (released["reason"], [g["source"] for g in released["given_back"]]) == ("no_show", ["course_session"])
    assert cloud.stripe.charges_total() == 0
