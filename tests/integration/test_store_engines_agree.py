"""The services give the same answers on the in-memory store as on the pynamodb one: the fakes cannot drift
under the stories the unit tests tell.

Each story is played twice through the real intake, lifecycle loop and fee steps (``tests.support.memory_spa``):
once on ``InMemoryStore``, once on ``Store`` over the template's tables in moto; everything else is the same
in-memory world. What the spa and the client would see must be equal field for field: the appointment, the
client, the ledger, what the booking site was told, the texts sent and the money charged.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time, timedelta
from typing import Any

import pytest

from medspa.adapters.store import Store
from medspa.domain.keys import appointment_key, client_key
from tests.support.memory_spa import MemorySpa
from tests.support.packs import BIJOUX, GLOW

BOTOX = {"name": "Botox forehead", "category": "injection_laser", "duration_minutes": 30,
         "price": {"amount": 42_000, "currency": "USD"}}


def _bijoux(spa: MemorySpa, behaviour: str) -> datetime:
    start = datetime.combine(datetime(2026, 6, 9).date(), time(14), BIJOUX.zone)
    spa.now = start - timedelta(days=10)
    spa.payments.cards["pm_1"] = behaviour  # type: ignore[assignment]
    spa.send("AppointmentBooked", spa.now, spa_id="bijoux", appointment_id="a1", booking_version=1,
             location_id="bijoux", client={"id": "c1", "first_name": "Ada", "phone": "+14075550123",
                                           "sms_opt_in": True},
             service=BOTOX, starts_at=start.isoformat(),
             payment={"card_on_file": True, "stripe_customer_id": "cus_1", "stripe_payment_method_id": "pm_1"})
    return start


def late_cancel(spa: MemorySpa) -> None:
    start = _bijoux(spa, "pays")
    spa.send("AppointmentCancelled", start - timedelta(hours=10), spa_id="bijoux", appointment_id="a1",
             booking_version=3, by="client")  # overtakes the confirmation (v2), which arrives next
    spa.send("AppointmentConfirmed", start - timedelta(hours=9), spa_id="bijoux", appointment_id="a1",
             booking_version=2, channel="sms")
    spa.run_until(appointment_key("bijoux", "a1"), start + timedelta(days=30))


def declined_no_show_then_new_card(spa: MemorySpa) -> None:
    start = _bijoux(spa, "declines")
    spa.run_until(appointment_key("bijoux", "a1"), start + timedelta(hours=3))
    spa.payments.cards["pm_2"] = "pays"
    spa.send("CardUpdated", spa.now, spa_id="bijoux", client_id="c1", stripe_customer_id="cus_1",
             stripe_payment_method_id="pm_2")
    spa.run_until(appointment_key("bijoux", "a1"), start + timedelta(days=30))


def glow_outstanding_paid_at_the_desk(spa: MemorySpa) -> None:
    start = datetime.combine(datetime(2026, 6, 9).date(), time(14), GLOW.zone)
    spa.now = start - timedelta(days=10)
    facial = {"name": "Facial", "category": "facial", "duration_minutes": 60,
              "price": {"amount": 120_000, "currency": "HKD"}}
    client = {"id": "c1", "phone": "+85291234567", "sms_opt_in": True}
    spa.send("AppointmentBooked", spa.now, spa_id="glow", appointment_id="a1", booking_version=1,
             location_id="glow-hk", client=client, service=facial, starts_at=start.isoformat(),
             payment={"card_on_file": False})
    spa.run_until(appointment_key("glow", "a1"), start + timedelta(days=2))
    spa.send("AppointmentBooked", spa.now, spa_id="glow", appointment_id="a2", booking_version=1,
             location_id="glow-hk", client=client, service=facial,
             starts_at=(start + timedelta(days=14)).isoformat(), payment={"card_on_file": False})
    spa.run_until(appointment_key("glow", "a2"), spa.now)
    spa.send("OutstandingBalancePaid", spa.now, spa_id="glow", client_id="c1",
             amount={"amount": 60_000, "currency": "HKD"}, paid_at=spa.now.isoformat(),
             payment_reference="till-1", received_by="desk-1")
    spa.run_until(appointment_key("glow", "a2"), start + timedelta(days=20))


def seen(spa: MemorySpa, spa_id: str) -> dict[str, Any]:
    """What the spa and the client would see, in a form two stores can be compared by."""
    client_id = client_key(spa_id, "c1")
    appointments = [a.model_dump(mode="json", exclude={"record_version"})
                    for a in spa.store.appointments.for_client(client_id)]
    return {
        "appointments": appointments,
        "client": spa.store.clients.get(client_id).model_dump(mode="json"),
        "ledger": sorted((e.model_dump(mode="json") for e in spa.store.ledger.for_client(client_id)),
                         key=lambda e: e["entry_id"]),
        "booking_site": spa.site.received,
        "texts": [(s.phone, s.body) for s in spa.messenger.sms],
        "charged": [c.model_dump(mode="json") for c in spa.payments.charged],
        "steps": spa.steps,
    }


@pytest.mark.parametrize("story, spa_id", [(late_cancel, "bijoux"), (declined_no_show_then_new_card, "bijoux"),
                                           (glow_outstanding_paid_at_the_desk, "glow")],
                         ids=lambda v: getattr(v, "__name__", v))
def test_a_story_ends_the_same_on_either_store(store: Store, story: Callable[[MemorySpa], None],
                                                spa_id: str) -> None:
    in_memory, on_dynamodb = MemorySpa(datetime(2026, 1, 1).astimezone()), MemorySpa(
        datetime(2026, 1, 1).astimezone(), store=store)
    story(in_memory)
    story(on_dynamodb)
    ours, theirs = seen(in_memory, spa_id), seen(on_dynamodb, spa_id)
    assert ours["ledger"] and ours["booking_site"], "the story moved money and told the booking site"
    assert ours == theirs
