"""Which parts of a stored booking-site event are about a person, for the two places that must know.

An appointment keeps every booking-site event it was folded from (``medspa.events.history``), for as
long as the appointment is kept. Two rules follow from that:

* **A reference where a reference will do** (:func:`as_kept`). The client's first name, phone, email
  and Stripe ids arrive in every ``AppointmentBooked``, but they belong to the client profile, which the intake
  updates from the event as it arrives; the fold reads none of them. So the history keeps the
  booking without them: one copy of a contact detail, on the profile, that a correction reaches and
  an erasure removes.
* **Erasure** (:func:`as_erased`) also removes free text (a cancellation ``reason``: whatever the
  client or the desk typed, which may name a condition or a person). What is left is what the
  business keeps about a visit: ids, times, service and price, who at the desk acted, statuses.

A field is named here by its path in the detail. ``tests/unit/test_privacy_fields.py`` walks every
model of the catalogue and fails if a field whose name says personal (``PII_FIELDS``, Stripe ids)
is neither listed here nor deliberately kept, so a new field cannot slip into the histories unnoticed.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

Path = tuple[str, ...]

COPIED_FROM_THE_PROFILE: frozenset[Path] = frozenset({
    ("client", "first_name"),
    ("client", "phone"),
    ("client", "email"),
    ("payment", "stripe_customer_id"),
    ("payment", "stripe_payment_method_id"),
})
"""Kept on the client profile only; the fold of an appointment's history needs none of them."""

FREE_TEXT: frozenset[Path] = frozenset({("reason",)})
"""Typed by a person about a person: kept while the client is, removed when they are erased."""

ABOUT_THE_CLIENT: frozenset[Path] = frozenset({
    ("first_name",), ("phone",), ("email",), ("stripe_customer_id",), ("stripe_payment_method_id",),
})
"""Contact and card fields of the admin events (``CardUpdated``, ``ClientContactCorrected``), never kept in a
history; removed from the quarantined copy of an event refused because its client was erased."""

KEPT_ON_PURPOSE: dict[Path, str] = {
    ("service", "name"): "the treatment booked: the spa's record of the visit and its price, kept with the "
                         "identity removed",
    ("client", "id"): "the booking site's pseudonymous id: the key the ledger and the erasure tombstone use",
    ("marked_by",): "a staff member's id at the booking site, not the client's data",
}
"""Fields whose names look personal but which the business keeps; each with the reason."""


_ATOMS = (str, int, float, bool, type(None))


def _copied(value: Any) -> Any:
    """``copy.deepcopy`` for what an event detail holds (JSON: plain dicts, lists and atoms), at a fraction of its
    cost: every event is copied once as it is kept. Anything else still goes through ``deepcopy``."""
    if type(value) is dict:
        return {key: _copied(item) for key, item in value.items()}
    if type(value) is list:
        return [_copied(item) for item in value]
    return value if isinstance(value, _ATOMS) else copy.deepcopy(value)


def _without(detail: Mapping[str, Any], paths: frozenset[Path]) -> dict[str, Any]:
    kept: dict[str, Any] = _copied(dict(detail))
    for path in paths:
        holder: Any = kept
        for part in path[:-1]:
            holder = holder.get(part) if isinstance(holder, dict) else None
        if isinstance(holder, dict):
            holder.pop(path[-1], None)
    return kept


def as_kept(detail: Mapping[str, Any]) -> dict[str, Any]:
    """The event detail as an appointment's history keeps it: contact details and Stripe ids left out."""
    return _without(detail, COPIED_FROM_THE_PROFILE)


def as_erased(detail: Mapping[str, Any]) -> dict[str, Any]:
    """The event detail once its client is erased: nothing left that names or describes the person."""
    return _without(detail, COPIED_FROM_THE_PROFILE | FREE_TEXT | ABOUT_THE_CLIENT)


def stripe_customers_in(detail: Mapping[str, Any]) -> set[str]:
    """Stripe customer ids an older history may still hold (kept before :func:`as_kept` existed)."""
    payment = detail.get("payment")
    found = payment.get("stripe_customer_id") if isinstance(payment, Mapping) else None
    return {found} if isinstance(found, str) and found else set()
