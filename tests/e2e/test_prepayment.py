"""A prepaid visit's prepayment, end to end (issue 11, item 1): booking-site events on the bus, the fold in the
intake, the AppointmentLifecycle state machine, the fake Stripe, SNS, all under the virtual clock.

Bijoux: "if you reschedule your appointment prior to 24 hours of the appointment time, the prepaid amount
will be credited for future services". 406MedicalSpa: the same at 48 hours. Otherwise "nonrefundable if the
policy is violated". What the system makes of that (``medspa.services.prepayment``): moved or cancelled in
time, the prepayment becomes store credit and the moved visit is no longer prepaid; moved late, cancelled
late or missed, it is forfeited once, by the first violation, and a second violation of the same visit costs
what it costs an unpaid visit.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns.models import sns_backends

from localcloud.clock import utc

pytestmark = pytest.mark.e2e

VISIT = utc(2026, 3, 17, 18)  # Tuesday 14:00 EDT at Bijoux; the local cloud starts on Thursday 5 March
INJECTION = dict(name="Botox forehead", category="injection_laser", minutes=30, price=45000)  # fee $50
VISIT_406 = utc(2026, 3, 10, 17)  # Tuesday 11:00 MDT
FACIAL = dict(name="Hydrafacial", category="esthetics", minutes=60, price=30000)  # fee $75


def sms_texts() -> list[str]:
    return [text for _, (_, text, *_) in sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sms_messages.items()]


def told_of_the_prepayment(site, appointment_id: str) -> list[str]:
    """The notices that say what became of the prepayment: credited, or taken towards a fee."""
    stored = site.stored(appointment_id)
    return [m.kind for m in stored.messages if m.kind == "prepayment_credited" or (
        m.fee_breakdown is not None and any(p.source == "prepayment" for p in m.fee_breakdown.paid_from))]


def test_bijoux_a_prepaid_visit_moved_exactly_24_hours_ahead_is_credited_and_the_moved_visit_is_not_prepaid(
        cloud, site):
    site.client("bijoux", "c-pia")
    site.book("apt-p1", "c-pia", "bijoux", VISIT, **INJECTION, prepaid=45000)
    cloud.run_until(VISIT - timedelta(hours=24))
    site.send("AppointmentRescheduled", "apt-p1", starts_at=(VISIT + timedelta(days=7)).isoformat())
    cloud.run_until(VISIT)

    assert site.ledger("apt-p1") == [("prepayment_credit", "credit", 45000, "succeeded")]
    assert site.store.clients.get("bijoux#c-pia").credit == {"USD": 45000}
    assert site.stored("apt-p1").payment.prepaid is None
    assert told_of_the_prepayment(site, "apt-p1") == ["prepayment_credited"]
    assert ("prepayment_credited", "sent") in [m[:2] for m in site.messages("apt-p1")]
    assert sum("your prepayment of $450.00 is now credit on your account" in t for t in sms_texts()) == 1
    credited = [d for kind, d in site.inbox() if kind == "PrepaymentCredited"]
    assert [(d["appointment_id"], d["credit"]) for d in credited] == [("apt-p1", {"amount": 45000, "currency": "USD"})]
    moved = site.executions("apt-p1")[-1]
    assert "prepayment USD 450.00 credited for future services" in [done for _, done in site.steps_taken(moved["executionArn"])]

    cloud.run_until_idle()  # the moved visit is missed: an unpaid visit's no-show, the credit untouched
    assert site.ledger("apt-p1") == [("no_show_fee", "charge", 5000, "succeeded"),
                                     ("prepayment_credit", "credit", 45000, "succeeded")]
    assert site.store.clients.get("bijoux#c-pia").credit == {"USD": 45000}
    assert cloud.stripe.charges_total() == 5000


def test_bijoux_a_prepaid_visit_moved_late_then_missed_forfeits_the_prepayment_once_with_one_notice(cloud, site):
    site.client("bijoux", "c-quinn")
    site.book("apt-p2", "c-quinn", "bijoux", VISIT, **INJECTION, prepaid=45000)
    cloud.run_until(VISIT - timedelta(hours=12))
    site.send("AppointmentRescheduled", "apt-p2", starts_at=(VISIT + timedelta(days=7)).isoformat())
    cloud.run_until_idle()

    assert site.ledger("apt-p2") == [("late_reschedule_fee_prepayment", "forfeit", 45000, "succeeded"),
                                     ("no_show_fee", "charge", 5000, "succeeded")]
    assert told_of_the_prepayment(site, "apt-p2") == ["fee_applied"]
    [about_the_prepayment] = [t for t in sms_texts() if "prepayment" in t]
    assert "$450.00 from your prepayment" in about_the_prepayment
    assert cloud.stripe.charges_total() == 5000
    client = site.store.clients.get("bijoux#c-quinn")
    assert (client.strike_count, client.credit_in("USD").amount) == (1, 0)


@pytest.mark.parametrize("cloud", [utc(2026, 3, 2, 16)], indirect=True)
def test_406_prepaid_visits_moved_48_hours_ahead_or_cancelled_in_time_become_store_credit(cloud, site):
    site.client("406medicalspa", "c-rae", phone="+14065550121")
    site.client("406medicalspa", "c-sol", phone="+14065550122")
    site.book("apt-r", "c-rae", "406medicalspa", VISIT_406, **FACIAL, prepaid=30000)
    site.book("apt-s", "c-sol", "406medicalspa", VISIT_406, **FACIAL, prepaid=30000)
    cloud.run_until(VISIT_406 - timedelta(hours=48))
    site.send("AppointmentRescheduled", "apt-r", starts_at=(VISIT_406 + timedelta(days=7)).isoformat())
    site.send("AppointmentCancelled", "apt-s", by="client")
    cloud.run_until(VISIT_406)

    for appointment_id, client_id in (("apt-r", "406medicalspa#c-rae"), ("apt-s", "406medicalspa#c-sol")):
        assert site.ledger(appointment_id) == [("prepayment_credit", "credit", 30000, "succeeded")]
        assert site.store.clients.get(client_id).credit == {"USD": 30000}
        assert told_of_the_prepayment(site, appointment_id) == ["prepayment_credited"]
        assert ("prepayment_credited", "sent") in [m[:2] for m in site.messages(appointment_id)]
    assert sorted(d["appointment_id"] for kind, d in site.inbox() if kind == "PrepaymentCredited") == ["apt-r", "apt-s"]
    assert cloud.stripe.charges_total() == 0


@pytest.mark.parametrize("cloud", [utc(2026, 3, 2, 16)], indirect=True)
def test_406_a_prepaid_visit_moved_30_hours_ahead_then_missed_forfeits_once_and_the_miss_costs_the_75_dollar_fee(
        cloud, site):
    """30 hours is in time for an unpaid visit at 406 (24-hour window) but late for a prepaid one: the pack's
    48-hour credit window replaces the window for a prepaid visit being moved."""
    site.client("406medicalspa", "c-tam", phone="+14065550123")
    site.book("apt-t", "c-tam", "406medicalspa", VISIT_406, **FACIAL, prepaid=30000)
    cloud.run_until(VISIT_406 - timedelta(hours=30))
    site.send("AppointmentRescheduled", "apt-t", starts_at=(VISIT_406 + timedelta(days=7)).isoformat())
    site.send("AppointmentConfirmed", "apt-t", channel="sms")
    cloud.run_until_idle()

    assert site.ledger("apt-t") == [("late_reschedule_fee_prepayment", "forfeit", 30000, "succeeded"),
                                    ("no_show_fee", "charge", 7500, "succeeded")]
    assert told_of_the_prepayment(site, "apt-t") == ["fee_applied"]
    assert sum("$300.00 from your prepayment" in t for t in sms_texts()) == 1
    assert cloud.stripe.charges_total() == 7500
    assert site.store.clients.get("406medicalspa#c-tam").credit_in("USD").is_zero
