"""Outstanding balances end to end (issue 11, item 3): booking-site events on the bus, the intake, the
AppointmentLifecycle state machine, the fake Stripe, all under the virtual clock.

Glow: "Outstanding cancellation/rebooking fees must be paid on the client's next visit to Glow." A fee the
card cannot pay is owed; when the client books or checks in, the booking site is told what is due
(``OutstandingBalanceDue``); the desk's payment (``OutstandingBalancePaid``) is settled once in the ledger,
answered with ``OutstandingBalanceSettled``, and dunning charges nothing more. The same rule holds at Bijoux,
in dollars, where a client without a card owes the no-show fee (``medspa.services.balances``).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from localcloud.clock import utc
from medspa.adapters.store import EntryKind
from tests.e2e.booking_site import quarantined

pytestmark = pytest.mark.e2e

FACIAL = dict(name="HydraFacial", category="facial", minutes=60, price=128000)  # not prepaid: HK$500 fee
INJECTION = dict(name="Botox forehead", category="injection_laser", minutes=30, price=45000)  # fee $50


def desk_payment(site, spa_id: str, client_id: str, amount: int, currency: str, reference: str,
                 event_id: str | None = None) -> None:
    site.sent += 1
    site.publish("OutstandingBalancePaid", {
        "event_id": event_id or f"desk-{site.sent}", "occurred_at": site.cloud.now().isoformat(), "spa_id": spa_id,
        "client_id": client_id, "amount": {"amount": amount, "currency": currency},
        "paid_at": site.cloud.now().isoformat(), "payment_reference": reference, "received_by": "desk-3"})


def desk_ledger(site, key: str) -> list[tuple[str, str, int, int | None, str]]:
    return sorted((e.purpose, e.kind.value, e.amount.amount, e.settles.amount if e.settles else None, e.status.value)
                  for e in site.store.ledger.for_client(key) if e.appointment_id == key)


@pytest.mark.parametrize("cloud", [utc(2026, 3, 2, 2)], indirect=True)  # Monday 10:00 HKT
def test_glow_a_missed_visit_on_a_declining_card_is_owed_told_at_the_next_booking_and_paid_at_the_desk(cloud, site):
    missed, visit = utc(2026, 3, 3, 6), utc(2026, 3, 4, 3)  # Tuesday 14:00, Wednesday 11:00 HKT
    site.client("glow", "c-mei", card="chargeCustomerFail", phone="+85291230001")  # saved fine, declines
    site.book("apt-g1", "c-mei", "glow-hk", missed, **FACIAL)
    cloud.run_until(missed + timedelta(hours=1))  # not checked in 15 minutes after the start: a no-show

    owed = site.stored("apt-g1").fees["no_show"]
    assert (owed.outcome, owed.next_retry_at) == ("outstanding", missed + timedelta(minutes=15, hours=24))
    assert site.store.clients.get("glow#c-mei").outstanding == {"HKD": 50000}

    site.book("apt-g2", "c-mei", "glow-hk", visit, **FACIAL)  # the next visit, before the first retry
    customer = site.clients["c-mei"]["payment"]["stripe_customer_id"]
    good = site.stripe.v1.payment_methods.attach("pm_card_visa", params={"customer": customer}).id
    site.send("CardUpdated", spa_id="glow", client_id="c-mei", stripe_customer_id=customer,
              stripe_payment_method_id=good)  # dunning would charge this card, were the fee still owed
    cloud.run_for(timedelta(minutes=5))
    [(kind, due)] = [(k, d) for k, d in site.inbox() if k == "OutstandingBalanceDue"]
    assert {k: due[k] for k in ("event_id", "spa_id", "appointment_id", "client_id", "trigger", "due", "balance")} == {
        "event_id": "glow#apt-g2:balance-due:booked", "spa_id": "glow", "appointment_id": "apt-g2",
        "client_id": "c-mei", "trigger": "booked", "due": "at_next_visit",
        "balance": [{"amount": 50000, "currency": "HKD"}]}
    assert [(f["appointment_id"], f["reason"]) for f in due["unpaid_fees"]] == [("apt-g1", "no_show")]
    assert due["unpaid_fees"][0]["ledger_entries"] == ["glow#apt-g1#no_show_fee#1"]

    cloud.run_until(visit - timedelta(minutes=5))
    site.send("ClientCheckedIn", "apt-g2", arrived_at=cloud.now().isoformat())
    cloud.run_for(timedelta(minutes=2))
    desk_payment(site, "glow", "c-mei", 50000, "HKD", "TILL1-0001")
    cloud.run_for(timedelta(minutes=5))

    told = site.inbox()
    assert [(d["trigger"], d["balance"]) for k, d in told if k == "OutstandingBalanceDue"] == [
        ("checked_in", [{"amount": 50000, "currency": "HKD"}])]
    [settled] = [d for k, d in told if k == "OutstandingBalanceSettled"]
    assert (settled["event_id"], settled["paid"], settled["settled"], settled["credited"], settled["balance"]) == (
        "glow#c-mei:paid-at-desk:TILL1-0001", {"amount": 50000, "currency": "HKD"},
        {"amount": 50000, "currency": "HKD"}, None, [])
    assert settled["fees_settled"] == [{"appointment_id": "apt-g1", "reason": "no_show"}]
    assert desk_ledger(site, "glow#c-mei") == [("balance_paid_at_desk", "paid_at_desk", 50000, 50000, "succeeded")]
    assert site.store.clients.get("glow#c-mei").outstanding == {"HKD": 0}
    assert site.stored("apt-g1").fees["no_show"].outcome == "settled"

    cloud.run_until_idle()  # past both dunning times (24 h and 72 h after the decline)
    assert cloud.stripe.charges_total() == 0, "dunning never charged the balance the desk took"
    assert site.ledger("apt-g1") == [("no_show_fee", "charge", 50000, "declined")]
    last = site.executions("apt-g1")[-1]
    assert site.states_entered(last["executionArn"])[-1][1] == "Done: nothing left to do"
    assert site.store.clients.get("glow#c-mei").outstanding == {"HKD": 0}
    assert [k for k, _ in site.inbox() if k.startswith("Outstanding")] == []
    assert quarantined(cloud) == []


def test_bijoux_a_client_without_a_card_owes_the_no_show_fee_told_at_check_in_and_an_overpayment_is_credit(
        cloud, site):
    missed, visit = utc(2026, 3, 6, 18), utc(2026, 3, 12, 17)  # Friday 13:00 EST, Thursday 13:00 EDT
    site.client("bijoux", "c-ren", card=None, phone="+14075550177")
    site.book("apt-b2", "c-ren", "bijoux", visit, **INJECTION)  # booked while nothing is owed
    site.book("apt-b1", "c-ren", "bijoux", missed, **INJECTION)
    cloud.run_until(missed + timedelta(hours=1))

    assert site.store.clients.get("bijoux#c-ren").outstanding == {"USD": 5000}
    assert site.stored("apt-b1").fees["no_show"].outcome == "outstanding"
    assert [k for k, _ in site.inbox() if k == "OutstandingBalanceDue"] == []

    # The balance arose after apt-b2 was booked: its lifecycle tells the booking site when it next wakes (the
    # 48-hour reminder), since the visit is now where the balance is due; and again at the check-in.
    cloud.run_until(visit - timedelta(minutes=10))
    [booked] = [d for k, d in site.inbox() if k == "OutstandingBalanceDue"]
    assert (booked["appointment_id"], booked["booking_version"], booked["trigger"], booked["balance"]) == (
        "apt-b2", 1, "booked", [{"amount": 5000, "currency": "USD"}])
    run = site.executions("apt-b2")[0]["executionArn"]
    assert (visit - timedelta(hours=48), "booking site told: USD 50.00 owed, due at this visit") in site.steps_taken(run)
    site.send("ClientCheckedIn", "apt-b2", arrived_at=cloud.now().isoformat())
    cloud.run_for(timedelta(minutes=2))
    [due] = [d for k, d in site.inbox() if k == "OutstandingBalanceDue"]
    assert (due["event_id"], due["booking_version"], due["trigger"], due["balance"]) == (
        "bijoux#apt-b2:balance-due:checked_in", 2, "checked_in", [{"amount": 5000, "currency": "USD"}])
    assert due["unpaid_fees"][0]["ledger_entries"] == ["bijoux#apt-b1#no_show_fee_outstanding_balance#1"]

    desk_payment(site, "bijoux", "c-ren", 6000, "USD", "FD-77", event_id="desk-a")
    cloud.run_for(timedelta(minutes=2))
    desk_payment(site, "bijoux", "c-ren", 6000, "USD", "FD-77", event_id="desk-a")  # redelivered
    desk_payment(site, "bijoux", "c-ren", 6000, "USD", "FD-77", event_id="desk-b")  # the desk submits it again
    desk_payment(site, "bijoux", "c-ren", 7000, "USD", "FD-77")  # another amount under the same reference
    desk_payment(site, "bijoux", "c-ren", 5000, "HKD", "FD-78")  # not a currency Bijoux charges in
    cloud.run_until_idle()

    client = site.store.clients.get("bijoux#c-ren")
    assert (client.outstanding, client.credit) == ({"USD": 0}, {"USD": 1000})
    assert desk_ledger(site, "bijoux#c-ren") == [
        ("balance_paid_at_desk", "paid_at_desk", 6000, 5000, "succeeded"),
        ("balance_paid_at_desk_credit", "credit", 1000, None, "succeeded")]
    assert [e.kind for e in site.store.ledger.for_client("bijoux#c-ren") if e.purpose == "balance_paid_at_desk"] \
        == [EntryKind.PAID_AT_DESK]
    assert site.stored("apt-b1").fees["no_show"].outcome == "settled"
    settled = [d for k, d in site.inbox() if k == "OutstandingBalanceSettled"]
    assert {d["event_id"] for d in settled} == {"bijoux#c-ren:paid-at-desk:FD-77"}
    assert (settled[0]["settled"], settled[0]["credited"]) == ({"amount": 5000, "currency": "USD"},
                                                               {"amount": 1000, "currency": "USD"})
    reasons = sorted(reason for _, reason in quarantined(cloud))
    assert reasons == ["detail.amount.currency: not a currency the spa in detail.spa_id charges in",
                       "detail.payment_reference: already recorded for this client with another amount: one "
                       "payment, one reference"]
    assert cloud.stripe.charges_total() == 0
