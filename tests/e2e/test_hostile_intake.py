"""Hostile booking-site events through the real intake: EventBridge bus -> SQS -> ingest Lambda.

A few hundred mutated events (each one the catalogue refuses) and valid bookings at the edges of every
bound are put on the bus together. Every refused event must reach the quarantine with a reason naming
the field the parser names and repeating none of the event's text; every valid one must be in the
store; none may be lost or crash the function. A bug in the ingest is quarantined at once with its
class and place; a transient failure is retried and quarantined with its reason on the last receive.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from localcloud.cloud import LocalCloud
from localcloud.clock import utc
from medspa.adapters.executions import ExecutionsUnavailable
from medspa.adapters.store import StoreUnavailable
from medspa.domain.keys import appointment_key
from medspa.events import InvalidBookingEvent, parse_booking_event
from medspa.events.examples import EXAMPLES
from medspa.services.ingest import IngestService
from tests.support.hostile_events import Tally, dumps_repeating, echoed, mutated_events, valid_events

pytestmark = pytest.mark.e2e

INVALID = int(os.environ.get("MEDSPA_INTAKE_FUZZ_INVALID", "240"))
VALID = int(os.environ.get("MEDSPA_INTAKE_FUZZ_VALID", "40"))
BUS_DETAIL_LIMIT = 200_000  # EventBridge refuses entries over 256 KB itself; such a send fails, loud


@pytest.fixture
def cloud():
    """The deployed template, logging errors only: a few hundred quarantine warnings would bury the figures."""
    with LocalCloud(utc(2026, 3, 5, 15)) as cloud:
        cloud.deploy({"LogLevel": "ERROR"})
        yield cloud


def drawn(strategy: st.SearchStrategy, count: int) -> list[Any]:
    """``count`` examples of ``strategy``, the same on every run (the suite is derandomized)."""
    examples: list[Any] = []

    @settings(max_examples=count, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def keep(example: Any) -> None:
        examples.append(example)

    keep()
    return examples


def as_delivered(detail_type: str, source: str, detail_text: str) -> dict[str, Any]:
    """The event as EventBridge hands it to SQS, for judging it the way the intake will."""
    return {**copy.deepcopy(EXAMPLES["AppointmentBooked"]), "detail-type": detail_type, "source": source,
            "detail": json.loads(detail_text)}


def refused_events(count: int) -> list[tuple[dict[str, Any], InvalidBookingEvent]]:
    """Mutated events a booking site could put on the bus that the catalogue refuses, with the refusal."""
    chosen = []
    for event, repeat in drawn(mutated_events(bus_only=True), count * 3):
        try:
            text = (dumps_repeating(event["detail"], repeat[0][1:], *repeat[1:]) if repeat
                    else json.dumps(event["detail"], allow_nan=False))
            delivered = as_delivered(event["detail-type"], event["source"], text)
        except (TypeError, ValueError, RecursionError):
            continue  # not JSON: PutEvents refuses it at the booking site's end
        if not isinstance(delivered["detail"], dict) or len(text.encode("utf-8", "surrogatepass")) > BUS_DETAIL_LIMIT:
            continue
        try:
            parse_booking_event(delivered)
        except InvalidBookingEvent as refusal:
            chosen.append(({"Source": event["source"], "DetailType": event["detail-type"], "Detail": text},
                           refusal))
        if len(chosen) == count:
            break
    return chosen


def valid_bookings(count: int, cloud) -> list[dict[str, Any]]:
    """Bookings drawn anywhere inside the bounds, at Bijoux (the tenancy checks are not fuzzed here)."""
    bookings = []
    for index, event in enumerate(drawn(valid_events(("AppointmentBooked",)), count)):
        detail = event["detail"]
        detail.update(spa_id="bijoux", location_id="bijoux", occurred_at=cloud.now().isoformat(),
                      appointment_id=f"fz{index}-{detail['appointment_id']}"[:128],
                      event_id=f"fz{index}-{detail['event_id']}"[:128],
                      starts_at=(cloud.now() + timedelta(days=10 + index % 50)).isoformat())
        detail["service"].update(category="injection_laser")
        for money in (detail["service"]["price"], *(m for m in detail["payment"].values() if isinstance(m, dict))):
            money["currency"] = "USD"
        bookings.append({"Source": "booking-site", "DetailType": "AppointmentBooked", "Detail": json.dumps(detail)})
    return bookings


def put(cloud, entries: list[dict[str, Any]]) -> list[str]:
    """EventBridge's id for each entry, in order; every entry must be accepted by the bus."""
    bus, ids = cloud.deployment.outputs["BookingEventsBusName"], []
    for start in range(0, len(entries), 10):
        batch = [{**entry, "EventBusName": bus} for entry in entries[start:start + 10]]
        answer = cloud.client("events").put_events(Entries=batch)
        assert answer["FailedEntryCount"] == 0, answer["Entries"]
        ids += [entry["EventId"] for entry in answer["Entries"]]
    return ids


def quarantined(cloud) -> dict[str, str]:
    """EventBridge event id -> rejection_reason of everything in the intake DLQ (a reason is required)."""
    sqs, url, found = cloud.client("sqs"), cloud.deployment.outputs["IntakeDeadLetterQueueUrl"], {}
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                                       VisibilityTimeout=3600).get("Messages", []):
        for message in batch:
            reason = message.get("MessageAttributes", {}).get("rejection_reason", {}).get("StringValue")
            found[json.loads(message["Body"])["id"]] = reason
    return found


def ingest_failures(cloud) -> list[str]:
    return [i.error_type or "" for i in cloud.runtime.invocations if i.function == "IngestFunction" and i.errored]


def test_hostile_and_valid_events_are_quarantined_by_field_or_applied_and_none_is_lost(cloud, store):
    refused = refused_events(INVALID)
    bookings = valid_bookings(VALID, cloud)
    ids = put(cloud, [entry for entry, _ in refused] + bookings)
    cloud.run_for(timedelta(minutes=2))

    reasons = quarantined(cloud)
    tally = Tally(tried=len(ids), crashes=len(ingest_failures(cloud)))
    missing = []
    for event_id, (entry, refusal) in zip(ids, refused, strict=False):
        reason = reasons.pop(event_id, None)
        if reason is None:
            missing.append(f"refused event {event_id} is not in the quarantine")
            tally.lost += 1
            continue
        if f"{refusal.field}: " not in reason:
            tally.without_field += 1
            missing.append(f"{reason!r} does not name {refusal.field}")
        if echoed(reason, as_delivered(entry["DetailType"], entry["Source"], entry["Detail"])):
            tally.echoes += 1
            missing.append(f"{reason!r} repeats the event")
    for entry in bookings:
        detail = json.loads(entry["Detail"])
        stored = store.appointments.get(appointment_key("bijoux", detail["appointment_id"]))
        if stored is None or stored.last_event_id != detail["event_id"]:
            tally.lost += 1
            missing.append(f"valid booking {detail['appointment_id']!r} was not applied")
    print(f"\n{tally.line('intake fuzz')} ({len(refused)} refused by the parser, {len(bookings)} valid; "
          f"{len(reasons)} unexpected in the quarantine)")
    assert len(refused) == INVALID
    assert (missing, reasons, tally.crashes) == ([], {}, 0)


def _booking(appointment_id: str) -> dict[str, Any]:
    detail = copy.deepcopy(EXAMPLES["AppointmentBooked"]["detail"])
    detail.update(appointment_id=appointment_id, event_id=f"evt-{appointment_id}",
                  starts_at="2026-03-20T14:30:00-04:00")
    return {"Source": "booking-site", "DetailType": "AppointmentBooked", "Detail": json.dumps(detail)}


def _failing(monkeypatch, failures: dict[str, Callable[[int], Exception | None]]) -> dict[str, int]:
    """Make ``IngestService.ingest`` fail per appointment: ``failures[id](attempt)`` is raised if not None."""
    real, attempts = IngestService.ingest, dict.fromkeys(failures, 0)

    def ingest(self, event, *args, **kwargs):
        if event.appointment_id in failures:
            attempts[event.appointment_id] += 1
            if (error := failures[event.appointment_id](attempts[event.appointment_id])) is not None:
                raise error
        return real(self, event, *args, **kwargs)

    monkeypatch.setattr(IngestService, "ingest", ingest)
    return attempts


def test_a_bug_in_the_ingest_is_quarantined_at_once_with_its_class_and_place(cloud, store, monkeypatch):
    attempts = _failing(monkeypatch, {"apt-bug": lambda _: KeyError("jamie.rivera@example.com")})
    ids = put(cloud, [_booking("apt-bug"), _booking("apt-fine")])
    cloud.run_for(timedelta(minutes=1))  # well inside the 180 s visibility timeout: no redelivery yet

    reason = quarantined(cloud)[ids[0]]
    assert re.fullmatch(r"internal error: KeyError at test_hostile_intake\.py:\d+ in ingest while ingesting "
                        r"AppointmentBooked", reason), reason
    assert attempts == {"apt-bug": 1}
    assert store.appointments.get(appointment_key("bijoux", "apt-fine")) is not None


def test_a_transient_failure_is_retried_and_quarantined_with_its_reason_on_the_last_receive(cloud, store,
                                                                                            monkeypatch):
    receives = int(cloud.function_environment("IngestFunction")["INTAKE_MAX_RECEIVE_COUNT"])
    attempts = _failing(monkeypatch, {
        "apt-throttled": lambda _: StoreUnavailable("DynamoDB ThrottlingException"),
        "apt-recovers": lambda attempt: ExecutionsUnavailable("Step Functions ThrottlingException") if attempt < 3
        else None,
    })
    ids = put(cloud, [_booking("apt-throttled"), _booking("apt-recovers")])
    cloud.run_for(timedelta(hours=1))

    reason = f"StoreUnavailable while ingesting AppointmentBooked; still failing on receive {receives} of {receives}"
    assert quarantined(cloud) == {ids[0]: reason}
    assert attempts == {"apt-throttled": receives, "apt-recovers": 3}
    assert store.appointments.get(appointment_key("bijoux", "apt-recovers")) is not None
    assert store.appointments.get(appointment_key("bijoux", "apt-throttled")) is None


def test_a_second_event_claiming_a_held_version_is_quarantined_without_its_ids(cloud, store):
    first, second = _booking("apt-twice"), _booking("apt-twice")
    second["Detail"] = second["Detail"].replace('"evt-apt-twice"', '"evt-apt-twice-again"')
    ids = put(cloud, [first])
    cloud.run_for(timedelta(minutes=1))
    ids += put(cloud, [second])
    cloud.run_for(timedelta(minutes=1))

    assert quarantined(cloud) == {
        ids[1]: "AppointmentBooked: detail.booking_version: already held by another event of this appointment"}
    assert store.appointments.get(appointment_key("bijoux", "apt-twice")).last_event_id == "evt-apt-twice"
