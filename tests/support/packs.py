"""The bundled location packs, loaded once for the engine's tests."""

from medspa.domain.appointment import Appointment, PaymentContext, Service
from medspa.money import Money
from medspa.policy.loader import load_packs

PACKS = load_packs()
BIJOUX, SPA406, GLOW = PACKS["bijoux"], PACKS["406medicalspa"], PACKS["glow-hk"]
SCOTTSDALE, AUSTIN = PACKS["massageluxe-scottsdale"], PACKS["massageluxe-austin"]


def visit(pack, local_start, *, category="injection_laser", name=None, minutes=60, price="200", party=1, **payment):
    """An appointment at ``pack``'s location starting at a naive local wall time."""
    return Appointment(
        id="appt-1",
        client_id="client-1",
        location_id=pack.location_id,
        policy_version=pack.policy_version,
        service=Service(name=name or category, category=category, duration_minutes=minutes, price=Money.of(price, pack.currency)),
        starts_at=local_start.replace(tzinfo=pack.zone),
        party_size=party,
        payment=PaymentContext(**payment),
    )
