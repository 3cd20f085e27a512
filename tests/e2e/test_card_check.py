"""Cards that will fail (issue 11, item 7), end to end: booking-site events on the bus, the AppointmentLifecycle
state machine planning the check, the settlement function asking the fake Stripe through the real SDK, the
notice in SNS and ``CardUpdateRequested`` on the bus, all under the virtual clock.

Each pack checks the card on file 3 days before a visit whose fee would reach it, at 10:00 local time. A card
that expires before the visit's month ends, was removed, or fails a SetupIntent verification gets the client
one notice and the booking site one event; a good card is checked and nobody hears of it; a visit booked after
the check time is not checked (the booking site has just seen the card).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns.models import sns_backends

from localcloud.clock import utc
from medspa.domain.engine import spread_offset
from medspa.policy import loader
from tests.support.pack_versions import copy_of_the_shipped_packs, publish_bijoux

pytestmark = pytest.mark.e2e

VISIT = utc(2026, 4, 7, 18)  # Tuesday 14:00 EDT at Bijoux; the local cloud starts on Thursday 5 March
CHECK = utc(2026, 4, 4, 14)  # Saturday 10:00 EDT, three days before
INJECTION = dict(name="Botox forehead", category="injection_laser", minutes=30, price=45000)  # fee $50
NOTICE = "could not verify the card on file"


def texts_to(phone: str) -> list[str]:
    return [text for to, text, *_ in sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sms_messages.values() if to == phone]


def card_expiring(site, client: str, month: int, year: int) -> str:
    """Give ``client`` a card on file that expires at the end of ``month``: the card in their wallet,
    good when it was saved."""
    customer = site.stripe.v1.customers.create().id
    made = site.stripe.v1.payment_methods.create(params={"type": "card", "card": {
        "number": "4242424242424242", "exp_month": month, "exp_year": year}})
    card = site.stripe.v1.payment_methods.attach(made.id, params={"customer": customer}).id
    site.clients[client]["payment"] |= {"card_on_file": True, "stripe_customer_id": customer,
                                        "stripe_payment_method_id": card}
    return customer


def states(site, appointment_id: str) -> list[str]:
    return [name for execution in site.executions(appointment_id)
            for _, name in site.states_entered(execution["executionArn"])]


def requested(inbox) -> list[dict]:
    return [detail for kind, detail in inbox if kind == "CardUpdateRequested"]


def test_bijoux_a_card_expiring_before_the_visit_is_caught_three_days_ahead_and_a_new_card_pays_the_fee(
        cloud, site):
    site.client("bijoux", "c-eve", card=None, phone="+14075550131")
    site.client("bijoux", "c-fin", card=None, phone="+14075550132")
    card_expiring(site, "c-eve", 3, 2026)  # good through 31 March; the visit is on 7 April
    fin_customer = card_expiring(site, "c-fin", 3, 2026)
    site.book("apt-eve", "c-eve", "bijoux", VISIT, **INJECTION)
    site.book("apt-fin", "c-fin", "bijoux", VISIT, **INJECTION)
    cloud.run_until(CHECK + timedelta(minutes=5))

    for appointment_id, phone in (("apt-eve", "+14075550131"), ("apt-fin", "+14075550132")):
        stored = site.stored(appointment_id)
        assert (stored.card_check.outcome, stored.card_check.checked_at) == ("expired", CHECK)
        [(status, sent_at)] = [m[1:] for m in site.messages(appointment_id) if m[0] == "card_update_requested"]
        assert status == "sent" and CHECK <= sent_at < CHECK + timedelta(minutes=5)
        [text] = [t for t in texts_to(phone) if NOTICE in t]
        assert "Tue 7 Apr at 2:00 PM EDT" in text and "407-213-GLOW" in text and "4242" not in text
        assert "Check the card on file" in states(site, appointment_id)
    told = requested(site.inbox())
    assert sorted((d["appointment_id"], d["client_id"], d["reason"], d["starts_at"]) for d in told) == [
        ("apt-eve", "c-eve", "expired", "2026-04-07T18:00:00+00:00"),
        ("apt-fin", "c-fin", "expired", "2026-04-07T18:00:00+00:00")]
    assert {d["event_id"] for d in told} == {"bijoux#apt-eve:card_update_requested@2026-04-07T18:00Z",
                                             "bijoux#apt-fin:card_update_requested@2026-04-07T18:00Z"}
    assert cloud.stripe.setup_intents == [], "a card expired by the visit needs no verification"

    eve = site.clients["c-eve"]["payment"]["stripe_customer_id"]
    new_card = site.stripe.v1.payment_methods.attach("pm_card_visa", params={"customer": eve}).id
    site.send("CardUpdated", spa_id="bijoux", client_id="c-eve", stripe_customer_id=eve,
              stripe_payment_method_id=new_card)
    cloud.run_until_idle()  # both miss the visit

    assert site.ledger("apt-eve") == [("no_show_fee", "charge", 5000, "succeeded")]
    assert cloud.stripe.charges_total(customer=eve) == 5000
    declined = [ch for ch in cloud.stripe.charges if ch["customer"] == fin_customer]
    assert declined and {ch["failure_code"] for ch in declined} == {"expired_card"}, "the check was right"
    assert len(requested(site.inbox())) == 0, "told once per visit time, nothing more after the update"
    assert [m[0] for m in site.messages("apt-eve")].count("card_update_requested") == 1


def test_bijoux_a_good_card_is_verified_quietly_and_a_visit_booked_inside_the_window_is_not_checked(cloud, site):
    site.client("bijoux", "c-gil", phone="+14075550133")
    site.book("apt-gil", "c-gil", "bijoux", VISIT, **INJECTION)
    site.client("bijoux", "c-hal", card=None, phone="+14075550134")
    card_expiring(site, "c-hal", 3, 2026)
    cloud.run_until(CHECK + timedelta(hours=1))
    site.book("apt-hal", "c-hal", "bijoux", VISIT, **INJECTION)  # Saturday 11:00: after the check time
    cloud.run_until(VISIT - timedelta(minutes=1))

    gil = site.stored("apt-gil")
    assert (gil.card_check.outcome, gil.card_check.checked_at) == ("usable", CHECK)
    assert "card_update_requested" not in [m[0] for m in site.messages("apt-gil")]
    customer = site.clients["c-gil"]["payment"]["stripe_customer_id"]
    [setup] = [s for s in cloud.stripe.setup_intents if s["customer"] == customer]
    assert (setup["status"], setup["usage"]) == ("succeeded", "off_session")
    assert set(setup["metadata"]) == {"check_ref", "spa_id", "location_id"} and setup["description"] is None
    assert cloud.stripe.charges == []
    assert "Check the card on file" in states(site, "apt-gil")

    assert site.stored("apt-hal").card_check is None
    assert "Check the card on file" not in states(site, "apt-hal")
    assert requested(site.inbox()) == [] and not any(NOTICE in t for t in texts_to("+14075550134"))


def test_406_a_removed_card_and_austin_a_card_that_must_authenticate_are_both_reported(cloud, site):
    visit_406 = utc(2026, 3, 17, 17)  # Tuesday 11:00 MDT; checked Saturday 14 March 10:00 MDT
    visit_austin = utc(2026, 3, 17, 18)  # Tuesday 13:00 CDT; checked Saturday 14 March 10:00 CDT
    removed = site.client("406medicalspa", "c-ida", phone="+14065550135")
    site.book("apt-ida", "c-ida", "406medicalspa", visit_406, name="Hydrafacial", category="esthetics", minutes=60,
              price=20000)
    site.client("massageluxe", "c-jay", card="authenticationRequired", phone="+15125550136")
    site.book("apt-jay", "c-jay", "massageluxe-austin", visit_austin, name="Swedish massage", category="massage",
              minutes=60, price=12000)
    cloud.run_for(timedelta(days=2))
    site.stripe.v1.payment_methods.detach(removed["payment"]["stripe_payment_method_id"])  # removed at Stripe
    cloud.run_until(utc(2026, 3, 14, 17))

    assert (site.stored("apt-ida").card_check.outcome, site.stored("apt-jay").card_check.outcome) == (
        "detached", "verification_failed")
    assert sorted((d["spa_id"], d["appointment_id"], d["reason"]) for d in requested(site.inbox())) == [
        ("406medicalspa", "apt-ida", "detached"), ("massageluxe", "apt-jay", "verification_failed")]
    [ida] = [t for t in texts_to("+14065550135") if NOTICE in t]
    [jay] = [t for t in texts_to("+15125550136") if NOTICE in t]
    assert "406-287-6565" in ida and "Tue 17 Mar at 11:00 AM MDT" in ida
    assert "MassageLuXe Austin" in jay and "Tue 17 Mar at 1:00 PM CDT" in jay
    assert cloud.stripe.charges == []


def test_a_check_stripe_cannot_answer_for_hours_is_given_up_and_the_visit_goes_on(cloud, site):
    """The check's own Retry (60 s doubling, capped at an hour, 8 tries: about 3 hours), then the Catch: the
    visit is recorded unchecked and its reminders, no-show decision and fee go on as planned."""
    site.client("bijoux", "c-kai", phone="+14075550137")
    site.book("apt-kai", "c-kai", "bijoux", VISIT, **INJECTION)
    cloud.run_until(CHECK - timedelta(minutes=1))
    cloud.stripe.fail_next(9, 500, path_prefix="/v1/payment_methods")  # every try of the check fails
    cloud.run_until(CHECK + timedelta(hours=4))

    stored = site.stored("apt-kai")
    assert (stored.card_check.outcome, stored.card_check.code) == ("not_checked", "PaymentProviderUnavailable")
    assert CHECK + timedelta(hours=3) <= stored.card_check.checked_at < CHECK + timedelta(hours=4)
    entered = states(site, "apt-kai")
    assert entered.count("Check the card on file") == 1 and "Carry on without the card check" in entered
    assert requested(site.inbox()) == []

    cloud.run_until_idle()
    assert [m[:2] for m in site.messages("apt-kai")][:2] == [("reminder_48h", "sent"), ("reminder_morning_of", "sent")]
    assert site.ledger("apt-kai") == [("no_show_fee", "charge", 5000, "succeeded")]
    assert [e["status"] for e in site.executions("apt-kai")] == ["SUCCEEDED"]


def test_a_pack_that_spreads_its_card_checks_checks_each_visit_at_its_own_minute_of_the_hour(
        cloud, site, tmp_path, monkeypatch):
    """Bijoux publishes ``[card_check] spread_minutes = 60``: six visits of one day are checked from 10:00 to
    11:00 at the minutes the engine gives them, so a chain's checks reach the Stripe budget a few a second."""
    packs_dir = copy_of_the_shipped_packs(tmp_path)
    monkeypatch.setattr(loader, "PACKS_DIR", packs_dir)
    publish_bijoux(packs_dir, "bijoux-2026-03-05.spread-checks",
                   ("days_before = 3\nat_local_time = 10:00:00\n", "days_before = 3\nat_local_time = 10:00:00\n"
                                                                  "spread_minutes = 60\n"))
    cloud.redeploy_code()
    visits = [f"apt-s{n}" for n in range(1, 7)]
    for n, appointment_id in enumerate(visits, start=1):
        site.client("bijoux", f"c-s{n}", phone=f"+1407555016{n}")
        site.book(appointment_id, f"c-s{n}", "bijoux", VISIT, **INJECTION)
    cloud.run_until(CHECK + timedelta(hours=1))

    checked = {}
    for appointment_id in visits:
        stored = site.stored(appointment_id)
        assert stored.policy_version == "bijoux-2026-03-05.spread-checks"
        assert stored.card_check.outcome == "usable"
        assert stored.card_check.checked_at == CHECK + spread_offset(stored.appointment_id, 60)
        checked[appointment_id] = stored.card_check.checked_at
    assert len(cloud.stripe.setup_intents) == len(visits)
    minutes = sorted((at - CHECK) // timedelta(minutes=1) for at in checked.values())
    assert len(set(minutes)) > 1 and 0 <= minutes[0] and minutes[-1] < 60
