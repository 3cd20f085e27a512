"""Generated scenarios: many appointments of one location, in the scenario format, from a seed.

The bundled scenarios tell one story each; a benchmark or a backtest needs volume with the same mix a spa
sees. ``generated_scenario(n, seed=...)`` books ``n`` visits, a few a day, and gives each one of the
outcomes below, by weight, with the same events a booking site would send for it. The same ``n`` and
``seed`` always give the same file.

  completed        checked in on time and completed (most visits)
  confirmed        confirmed on the website a day ahead, then checked in and completed
  early_cancel     cancelled three days ahead, outside every seed's window
  late_cancel      cancelled six hours ahead, inside every seed's window: a late-cancel fee
  no_show          marked a no-show by the front desk an hour after the start
  rescheduled      moved a week later two days ahead, then checked in and completed
  declined_card    a no-show on a card that declines every charge: the fee goes to dunning
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

OUTCOMES = {"completed": 45, "confirmed": 15, "early_cancel": 10, "late_cancel": 10, "no_show": 8,
            "rescheduled": 7, "declined_card": 5}
SERVICES = [
    ("Botox - forehead lines", "injection_laser", 30, 42000),
    ("HydraFacial", "esthetician", 60, 22500),
    ("Laser hair removal - full legs", "injection_laser", 60, 35000),
    ("Myers' cocktail IV drip", "wellness", 45, 18900),
]


def generated_scenario(n: int, *, seed: int = 7, spa_id: str = "bijoux", zone: str = "America/New_York",
                       start: str = "2027-01-04T13:00:00Z", per_day: int = 6) -> dict[str, Any]:
    """``n`` appointments at the location ``spa_id`` (a single-location seed spa), booked ``per_day`` a day."""
    rng = random.Random(seed)
    local = ZoneInfo(zone)
    began = datetime.fromisoformat(start)
    clients = [{"spa_id": spa_id, "id": f"g-{c:04d}", "card": "visa", "phone": f"+1212555{c:04d}",
                "sms_opt_in": True} for c in range(max(3, n // 3))]
    declining = {"spa_id": spa_id, "id": "g-declines", "card": "visa_chargeDeclined", "phone": "+12125559999",
                 "sms_opt_in": True}
    events: list[dict[str, Any]] = []
    names, weights = zip(*OUTCOMES.items())
    for i in range(n):
        outcome = rng.choices(names, weights)[0]
        client = declining if outcome == "declined_card" else rng.choice(clients)
        booked_at = began + timedelta(minutes=(24 * 60 // per_day) * i + rng.randrange(0, 60))
        day = (booked_at.astimezone(local) + timedelta(days=rng.randrange(4, 10))).date()
        starts = datetime(day.year, day.month, day.day, rng.randrange(10, 17), 0, tzinfo=local)
        name, category, minutes, price = rng.choice(SERVICES)
        appointment_id = f"gen-{i:05d}"
        version = 1

        def entry(at: datetime, detail_type: str, **detail: Any) -> None:
            nonlocal version
            events.append({"at": _utc(at), "detail_type": detail_type, "detail": {
                "spa_id": spa_id, "appointment_id": appointment_id, "booking_version": version, **detail}})
            version += 1

        entry(booked_at, "AppointmentBooked", location_id=spa_id, client={"id": client["id"]},
              service={"name": name, "category": category, "duration_minutes": minutes,
                       "price": {"amount": price, "currency": "USD"}},
              starts_at=starts.isoformat(), payment={"card_on_file": True})
        if outcome == "confirmed":
            entry(starts - timedelta(hours=26), "AppointmentConfirmed", channel="web")
        if outcome == "rescheduled":
            entry(starts - timedelta(days=2), "AppointmentRescheduled", starts_at=(starts + timedelta(days=7)).isoformat())
            starts += timedelta(days=7)
        if outcome == "early_cancel":
            entry(starts - timedelta(days=3), "AppointmentCancelled", by="client", reason="Plans changed")
        elif outcome == "late_cancel":
            entry(starts - timedelta(hours=6), "AppointmentCancelled", by="client", reason="Feeling unwell")
        elif outcome in ("no_show", "declined_card"):
            entry(starts + timedelta(hours=1), "AppointmentMarkedNoShow", marked_by="staff-frontdesk-01")
        else:
            entry(starts - timedelta(minutes=5), "ClientCheckedIn", arrived_at=(starts - timedelta(minutes=5)).isoformat())
            entry(starts + timedelta(minutes=minutes), "AppointmentCompleted")
    events.sort(key=lambda e: e["at"])
    used = {e["detail"]["client"]["id"] for e in events if e["detail_type"] == "AppointmentBooked"}
    return {
        "name": f"generated-{spa_id}-{n}",
        "description": f"{n} generated appointments at {spa_id} (seed {seed}): " + ", ".join(
            f"{w}% {o.replace('_', ' ')}" for o, w in OUTCOMES.items()) + ".",
        "start": start,
        "clients": [c for c in [*clients, declining] if c["id"] in used],
        "events": events,
    }


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
