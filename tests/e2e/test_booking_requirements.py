"""What a booking must include, end to end (issue 11, item 2: ``engine.booking_requirements`` in the running system).

MassageLuXe: "Parties of 3 or more people may be required to place a credit card on file" (Scottsdale asks only
them; Austin asks everyone). Bijoux: "All services require a valid credit card or gift certificate to guarantee
the reservation", and after three strikes "prepayment will be required at the time of booking". The booking site
saves the booking first; when it lacks what the policy asks, the system tells it ``BookingRequirementsUnmet``
once per visit time, and the front desk decides. Nothing is cancelled by the system.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from localcloud.clock import utc

pytestmark = pytest.mark.e2e

VISIT = utc(2026, 3, 17, 18)  # Tuesday; the local cloud starts on Thursday 5 March
MASSAGE = dict(name="Swedish massage", category="massage", minutes=60, price=12900)
INJECTION = dict(name="Botox forehead", category="injection_laser", minutes=30, price=45000)


def unmet(site) -> dict[str, list[str]]:
    return {d["appointment_id"]: d["unmet"] for kind, d in site.inbox() if kind == "BookingRequirementsUnmet"}


def test_a_party_of_three_without_a_card_is_flagged_at_scottsdale_and_every_cardless_booking_at_austin(cloud, site):
    site.client("massageluxe", "c-ana", card=None)
    site.book("apt-r1", "c-ana", "massageluxe-scottsdale", VISIT, **MASSAGE, party_size=3)
    site.book("apt-r2", "c-ana", "massageluxe-scottsdale", VISIT + timedelta(days=1), **MASSAGE, party_size=2)
    site.book("apt-r3", "c-ana", "massageluxe-austin", VISIT, **MASSAGE, gift_certificate=5000)
    site.client("massageluxe", "c-bo")
    site.book("apt-r4", "c-bo", "massageluxe-scottsdale", VISIT, **MASSAGE, party_size=4)
    cloud.run_for(timedelta(minutes=5))

    assert unmet(site) == {"apt-r1": ["card_on_file"], "apt-r3": ["card_on_file"]}  # Austin takes no certificates

    site.send("AppointmentRescheduled", "apt-r1", starts_at=(VISIT + timedelta(days=2)).isoformat())
    site.send("AppointmentConfirmed", "apt-r1", channel="sms")
    cloud.run_for(timedelta(minutes=5))
    assert unmet(site) == {"apt-r1": ["card_on_file"]}  # the moved visit is told again; its confirmation is not


def test_bijoux_a_gift_certificate_guarantees_a_booking_and_a_flagged_client_must_prepay_until_staff_clear_it(
        cloud, site):
    site.client("bijoux", "c-cy", card=None)
    site.book("apt-r5", "c-cy", "bijoux", VISIT, **INJECTION, gift_certificate=10000)
    site.client("bijoux", "c-di")
    for n in range(3):  # three late cancels: the third strike flags her to prepay
        site.book(f"apt-s{n}", "c-di", "bijoux", cloud.now() + timedelta(days=1, hours=n), **INJECTION)
        site.send("AppointmentCancelled", f"apt-s{n}", by="client")
    cloud.run_for(timedelta(minutes=10))
    assert site.store.clients.get("bijoux#c-di").prepay_required

    site.book("apt-r6", "c-di", "bijoux", VISIT + timedelta(days=7), **INJECTION)
    site.book("apt-r7", "c-di", "bijoux", VISIT + timedelta(days=8), **INJECTION, prepaid=45000)
    cloud.run_for(timedelta(minutes=5))
    told = [d for kind, d in site.inbox() if kind == "BookingRequirementsUnmet"]
    assert [(d["appointment_id"], d["unmet"]) for d in told] == [("apt-r6", ["prepay_in_full"])]
    assert told[0]["requirements"] == {"prepay_in_full": True, "card_on_file": True,
                                       "gift_certificate_accepted": True, "restricted_booking_times": False}

    site.send("PrepayRequirementCleared", spa_id="bijoux", client_id="c-di", admin_id="admin-maria")
    cloud.run_for(timedelta(minutes=1))
    site.book("apt-r8", "c-di", "bijoux", VISIT + timedelta(days=9), **INJECTION)
    cloud.run_for(timedelta(minutes=5))
    assert unmet(site) == {}
