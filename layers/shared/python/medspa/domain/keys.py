"""Every record the system keeps is namespaced by spa: ``<spa_id>#<the booking site's id>``.

Two spas' booking sites may both have an appointment "a-123" or a client "c-7", and an event may act only
on its own spa's records. So the spa is part of each key, not a column beside it: a lookup under one
spa's key cannot reach another spa's record, whatever id an event names. Spa ids are slugs (no ``#``, no
``.``), so the first ``#`` always splits a key, and a booking site's own id may contain anything.
"""

from __future__ import annotations

SEPARATOR = "#"


def spa_key(spa_id: str, booking_site_id: str) -> str:
    return f"{spa_id}{SEPARATOR}{booking_site_id}"


def appointment_key(spa_id: str, booking_appointment_id: str) -> str:
    return spa_key(spa_id, booking_appointment_id)


def client_key(spa_id: str, booking_client_id: str) -> str:
    return spa_key(spa_id, booking_client_id)


def split_key(key: str) -> tuple[str, str]:
    """``("bijoux", "a-123")`` for ``"bijoux#a-123"``: the spa and the id its booking site knows."""
    spa_id, separator, local = key.partition(SEPARATOR)
    if not separator or not spa_id or not local:
        raise ValueError("a key must be namespaced as '<spa_id>#<id>'")
    return spa_id, local


def spa_of(key: str) -> str:
    return split_key(key)[0]


def belongs_to(key: str, spa_id: str) -> bool:
    return key.startswith(f"{spa_id}{SEPARATOR}") and len(key) > len(spa_id) + 1
