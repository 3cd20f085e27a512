"""MassageLuXe's special days through the running system, in 2027, where the old dated list had run out.

At each location, two visits on special days (one by a named-day rule, one by the holiday-weekend
rule) and two on ordinary days of the same weekday are cancelled by the client with the same notice:
inside the special-day window, outside the usual one. Only the special days cost the full price.
The booking site's events go through the bus, the ingest fold, the real lifecycle state machine and
the fake Stripe, under the virtual clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from localcloud.clock import utc
from medspa.adapters.store import AppointmentStatus
from tests.support.packs import PACKS

pytestmark = pytest.mark.e2e

START = utc(2027, 5, 1, 15)

# location, phone, service, notice, [(appointment, local start, special?)]: special days first.
LOCATIONS = {
    "massageluxe-scottsdale": (
        "+14805550171", dict(name="Swedish massage", category="massage", minutes=60, price=12900),
        timedelta(hours=36),  # inside Scottsdale's 48 special-day hours, outside its usual 24
        [("az-mothers-day", datetime(2027, 5, 9, 11), True),  # Mother's Day: the second Sunday of May
         ("az-memorial-saturday", datetime(2027, 5, 29, 11), True),  # Saturday before Memorial Day
         ("az-ordinary-sunday", datetime(2027, 5, 16, 11), False),
         ("az-ordinary-saturday", datetime(2027, 5, 22, 11), False)],
    ),
    "massageluxe-austin": (
        "+15125550171", dict(name="Deep tissue massage", category="massage", minutes=90, price=15900),
        timedelta(hours=60),  # inside Austin's 72 (holiday weekends) and 96 (Mother's Day weekend), outside 48
        [("tx-mothers-day", datetime(2027, 5, 9, 11), True),
         ("tx-memorial-sunday", datetime(2027, 5, 30, 11), True),  # Sunday before Memorial Day
         ("tx-ordinary-sunday", datetime(2027, 5, 16, 11), False),
         ("tx-ordinary-sunday-2", datetime(2027, 5, 23, 11), False)],
    ),
}


@pytest.mark.parametrize("cloud", [START], indirect=True)
@pytest.mark.parametrize("location_id", sorted(LOCATIONS))
def test_a_cancel_inside_the_special_day_window_costs_the_full_price_and_the_same_notice_on_an_ordinary_day_nothing(
        cloud, site, location_id):
    phone, service, notice, visits = LOCATIONS[location_id]
    zone = PACKS[location_id].zone
    starts = {appt: local.replace(tzinfo=zone) for appt, local, _ in visits}
    for n, (appt, _, _) in enumerate(visits):
        site.client("massageluxe", f"c-{appt}", phone=phone[:-1] + str(n))
        site.book(appt, f"c-{appt}", location_id, starts[appt], **service)
    told = []  # what the booking site hears back, read before SQS's 4-day retention drops it
    for cancel_at, appt in sorted((starts[appt] - notice, appt) for appt, _, _ in visits):
        cloud.run_until(cancel_at)
        site.send("AppointmentCancelled", appt, by="client")
        cloud.run_for(timedelta(hours=1))
        told += site.inbox()
    cloud.run_until(max(starts.values()) + timedelta(days=1))

    special = [appt for appt, _, is_special in visits if is_special]
    ordinary = [appt for appt, _, is_special in visits if not is_special]
    for appt in special:
        assert site.ledger(appt) == [("late_cancel_fee", "charge", service["price"], "succeeded")], appt
        [violation] = site.stored(appt).facts.violations
        assert (violation.reason, violation.notice_minutes) == ("late_cancel", notice // timedelta(minutes=1))
        assert ("late_cancel_fee_charged", "sent") in [m[:2] for m in site.messages(appt)]
    for appt in ordinary:
        assert site.ledger(appt) == [], appt
        assert site.stored(appt).facts.violations == ()
    assert {site.stored(appt).status for appt in starts} == {AppointmentStatus.CANCELLED}
    assert cloud.stripe.charges_total() == service["price"] * len(special)
    charged = sorted(detail["appointment_id"] for kind, detail in told + site.inbox() if kind == "FeeCharged")
    assert charged == sorted(special)
