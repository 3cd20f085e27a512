"""What an appointment's history keeps of a person, checked against the whole catalogue.

``medspa.events.personal`` names the fields an appointment's history drops (contact details and Stripe
ids, always; free text, at erasure). A field added to the catalogue later under a personal-sounding
name must be placed there or in its list of fields kept on purpose, or this test fails.
"""

from __future__ import annotations

import copy
import json
import typing

from pydantic import BaseModel

from medspa.events import DETAIL_MODELS, AppointmentEvent, parse_booking_event
from medspa.events.catalogue import PII_FIELDS
from medspa.events.examples import EXAMPLES
from medspa.events.history import fold
from medspa.events.personal import COPIED_FROM_THE_PROFILE, FREE_TEXT, KEPT_ON_PURPOSE, as_erased, as_kept


def _models_in(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    found: set[tuple[str, ...]] = set()
    for name, info in model.model_fields.items():
        path = (*prefix, name)
        found.add(path)
        for inner in _models_in(info.annotation):
            found |= _paths(inner, path)
    return found


def _personal_sounding(path: tuple[str, ...]) -> bool:
    return path[-1] in PII_FIELDS or path[-1].startswith("stripe_") or path[-1] in {"id", "admin_id", "marked_by"}


def test_every_personal_sounding_field_of_an_appointment_event_is_dropped_or_kept_on_purpose() -> None:
    placed = COPIED_FROM_THE_PROFILE | FREE_TEXT | set(KEPT_ON_PURPOSE)
    kept_in_histories = typing.get_args(AppointmentEvent)  # the only events an appointment keeps
    unplaced = {(model.detail_type, path) for model in kept_in_histories for path in _paths(model)
                if _personal_sounding(path) and path not in placed}
    assert unplaced == set()
    assert ("client", "phone") in {p for m in kept_in_histories for p in _paths(m)}  # the walk reaches inside


def test_the_fold_reads_nothing_the_history_no_longer_keeps() -> None:
    kinds = ("AppointmentBooked", "AppointmentRescheduled", "AppointmentConfirmed", "AppointmentCancelled")
    events = [parse_booking_event(EXAMPLES[kind]) for kind in kinds]
    kept = [DETAIL_MODELS[e.detail_type].model_validate_json(json.dumps(as_kept(e.model_dump(mode="json"))))
            for e in events]
    erased = [DETAIL_MODELS[e.detail_type].model_validate_json(json.dumps(as_erased(e.model_dump(mode="json"))))
              for e in events]
    assert fold(kept) == fold(events) == fold(erased)
    assert kept[0].client.phone is None and kept[0].payment.stripe_customer_id is None
    assert kept[-1].reason == "Work conflict" and erased[-1].reason is None


def test_dropping_a_field_leaves_the_event_otherwise_as_it_was() -> None:
    detail = copy.deepcopy(EXAMPLES["AppointmentBooked"]["detail"])
    kept = as_kept(detail)
    assert detail["client"]["phone"] == "+14075550123"  # the caller's copy is untouched
    assert kept["client"] == {"id": "c-1234", "sms_opt_in": True, "email_opt_in": False}
    assert {k: v for k, v in kept.items() if k not in ("client", "payment")} == {
        k: v for k, v in detail.items() if k not in ("client", "payment")}
    assert as_erased({"by": "client", "reason": "moved away"}) == {"by": "client"}
