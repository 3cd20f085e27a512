"""A booking site for end-to-end tests: it publishes catalogue events to the deployed bus, like a real one.

Clients get a real Stripe customer and card in the local cloud's fake Stripe (through the ``stripe``
SDK), and every appointment's ``booking_version`` goes up by one per event, as the catalogue requires.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime
from typing import Any


from fakestripe import client_for, save_test_card
from localcloud.cloud import LocalCloud
from medspa.adapters.store import Appointment, Store, TableNames
from medspa.domain.keys import appointment_key
from medspa.policy.loader import load_packs

PACKS = load_packs()


class BookingSite:
    def __init__(self, cloud: LocalCloud) -> None:
        self.cloud = cloud
        self.store = Store(TableNames.from_env(cloud.function_environment("LifecycleFunction")), region=cloud.region)
        self.stripe = client_for(cloud.stripe)
        self.versions: dict[str, int] = defaultdict(int)
        self.clients: dict[str, dict[str, Any]] = {}
        self.appointment_spa: dict[str, str] = {}  # appointment id -> the spa whose booking site named it
        self.sent = 0
        self._inbox = self._subscribe_to_the_system()

    def client(self, spa_id: str, client_id: str, card: str | None = "visa", phone: str | None = "+14075550101",
               email: str | None = None, sms_opt_in: bool | None = None,
               first_name: str | None = None) -> dict[str, Any]:
        """A client with a customer in Stripe; ``card`` is a test card name (``chargeDeclined``...)."""
        payment: dict[str, Any] = {"card_on_file": card is not None}
        if card is not None:
            customer = self.stripe.v1.customers.create().id
            method = save_test_card(self.stripe, customer, card)
            payment |= {"stripe_customer_id": customer, "stripe_payment_method_id": method}
        self.clients[client_id] = {"spa_id": spa_id, "payment": payment,
                                   "client": {"id": client_id, "first_name": first_name, "phone": phone, "email": email,
                                              "sms_opt_in": phone is not None if sms_opt_in is None else sms_opt_in, "email_opt_in": email is not None}}
        return self.clients[client_id]

    def book(self, appointment_id: str, client_id: str, location_id: str, starts_at: datetime, *, name: str,
             category: str, minutes: int, price: int, party_size: int = 1, **payment: Any) -> None:
        known = self.clients[client_id]
        currency = PACKS[location_id].currency
        money = {k: {"amount": v, "currency": currency} if isinstance(v, int) and not isinstance(v, bool) else v
                 for k, v in payment.items()}
        self.send("AppointmentBooked", appointment_id, spa_id=known["spa_id"], client={
            k: v for k, v in known["client"].items() if v is not None}, location_id=location_id,
            starts_at=starts_at.isoformat(), party_size=party_size,
            service={"name": name, "category": category, "duration_minutes": minutes,
                     "price": {"amount": price, "currency": currency}},
            payment={**known["payment"], **money})

    def send(self, detail_type: str, appointment_id: str | None = None, *, spa_id: str | None = None,
             **detail: Any) -> None:
        """Publish one event now; ``occurred_at`` defaults to the virtual now."""
        self.sent += 1
        body: dict[str, Any] = {"event_id": f"evt-{self.sent}", "occurred_at": self.cloud.now().isoformat(),
                                "spa_id": spa_id or self._spa_of(appointment_id), **detail}
        if appointment_id is not None:
            body["appointment_id"] = appointment_id
            self.appointment_spa.setdefault(appointment_id, body["spa_id"])
            if detail_type not in ("FeeWaived",):
                self.versions[appointment_id] += 1
                body["booking_version"] = self.versions[appointment_id]
        self.publish(detail_type, body)

    def publish(self, detail_type: str, body: dict[str, Any], source: str = "booking-site") -> None:
        bus = self.cloud.deployment.outputs["BookingEventsBusName"]
        entry = {"Source": source, "DetailType": detail_type, "Detail": json.dumps(body), "EventBusName": bus}
        assert self.cloud.client("events").put_events(Entries=[entry])["FailedEntryCount"] == 0

    def _spa_of(self, appointment_id: str | None) -> str:
        return self.appointment_spa.get(appointment_id) or next(iter(self.clients.values()))["spa_id"]

    def key(self, appointment_id: str) -> str:
        """The stored key of a visit this site booked: ``<spa>#<appointment>``."""
        return appointment_key(self._spa_of(appointment_id), appointment_id)

    def stored(self, appointment_id: str) -> Appointment | None:
        return self.store.appointments.get(self.key(appointment_id))

    def _subscribe_to_the_system(self) -> str:
        """What a real booking site does to hear back: a rule on ``source: medspa.*`` to its own queue."""
        sqs, events = self.cloud.client("sqs"), self.cloud.client("events")
        url = sqs.create_queue(QueueName="booking-site-inbox")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        bus = self.cloud.deployment.outputs["BookingEventsBusName"]
        events.put_rule(Name="booking-site-inbox", EventBusName=bus,
                        EventPattern=json.dumps({"source": [{"prefix": "medspa"}]}))
        events.put_targets(Rule="booking-site-inbox", EventBusName=bus, Targets=[{"Id": "inbox", "Arn": arn}])
        return url

    def inbox(self) -> list[tuple[str, dict[str, Any]]]:
        """(detail-type, detail) of every event the system sent back, oldest first."""
        sqs, received = self.cloud.client("sqs"), []
        while batch := sqs.receive_message(QueueUrl=self._inbox, MaxNumberOfMessages=10).get("Messages", []):
            for message in batch:
                event = json.loads(message["Body"])
                received.append((event["detail-type"], event["detail"]))
                sqs.delete_message(QueueUrl=self._inbox, ReceiptHandle=message["ReceiptHandle"])
        return received

    # ------------------------------------------------------------------ what happened
    def executions(self, appointment_id: str) -> list[dict[str, Any]]:
        """The appointment's lifecycle runs, its waivers' and its fees' paid later, by start."""
        sfn = self.cloud.client("stepfunctions")
        listed = [e for machine in ("AppointmentLifecycleStateMachine", "FeeWaiverStateMachine",
                                    "FeePaidLaterStateMachine")
                  for e in sfn.list_executions(stateMachineArn=self.cloud.state_machine_arn(machine))["executions"]]
        prefix = f"{self._spa_of(appointment_id)}.{appointment_id}-"
        return sorted((e for e in listed if e["name"].startswith(prefix)), key=lambda e: e["startDate"])

    def states_entered(self, execution_arn: str) -> list[tuple[datetime, str]]:
        events = self.cloud.client("stepfunctions").get_execution_history(executionArn=execution_arn)["events"]
        return [(e["timestamp"], e["stateEnteredEventDetails"]["name"]) for e in events
                if "stateEnteredEventDetails" in e]

    def steps_taken(self, execution_arn: str) -> list[tuple[datetime, str]]:
        """What each of the run's tasks did, in order, as its output lists it (``plan.did``): a task takes the
        step it woke for and the lifecycle's steps due with it, so one state can stand for several steps."""
        events = self.cloud.client("stepfunctions").get_execution_history(executionArn=execution_arn)["events"]
        return [(e["timestamp"], step["done"]) for e in events if e["type"] == "TaskStateExited"
                for step in ((json.loads(e["stateExitedEventDetails"]["output"]).get("plan") or {}).get("did") or [])]

    def messages(self, appointment_id: str) -> list[tuple[str, str, datetime | None]]:
        stored = self.stored(appointment_id)
        return [(m.kind, m.status, m.sent_at) for m in stored.messages]

    def ledger(self, appointment_id: str) -> list[tuple[str, str, int, str]]:
        return [(e.purpose, e.kind.value, e.amount.amount, e.status.value)
                for e in sorted(self.store.ledger.for_appointment(self.key(appointment_id)), key=lambda e: e.entry_id)]

    # ------------------------------------------------------------------ events built now, delivered later
    # (tests/e2e/test_fault_injection.py: a test decides when, how often and in which order each event
    # reaches the bus; the booking site's own clock, ``occurred_at``, is when the client acted.)
    def booked_event(self, appointment_id: str, client_id: str, location_id: str, starts_at: datetime,
                     occurred_at: datetime, *, name: str, category: str, minutes: int, price: int,
                     party_size: int = 1, **payment: Any) -> tuple[str, dict[str, Any]]:
        """``AppointmentBooked`` as ``book`` would send it, with the next version, not yet published."""
        known = self.clients[client_id]
        currency = PACKS[location_id].currency
        money = {k: {"amount": v, "currency": currency} if isinstance(v, int) and not isinstance(v, bool) else v
                 for k, v in payment.items()}
        return self.next_event("AppointmentBooked", appointment_id, occurred_at, spa_id=known["spa_id"],
                               client={k: v for k, v in known["client"].items() if v is not None},
                               location_id=location_id, starts_at=starts_at.isoformat(), party_size=party_size,
                               service={"name": name, "category": category, "duration_minutes": minutes,
                                        "price": {"amount": price, "currency": currency}},
                               payment={**known["payment"], **money})

    def next_event(self, detail_type: str, appointment_id: str, occurred_at: datetime, *, spa_id: str,
                   **detail: Any) -> tuple[str, dict[str, Any]]:
        """An appointment event with the next ``booking_version`` and an explicit ``occurred_at``."""
        self.sent += 1
        self.versions[appointment_id] += 1
        self.appointment_spa.setdefault(appointment_id, spa_id)
        return detail_type, {"event_id": f"evt-{self.sent}", "occurred_at": occurred_at.isoformat(),
                             "spa_id": spa_id, **detail, "appointment_id": appointment_id,
                             "booking_version": self.versions[appointment_id]}

    def publish_all(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        """Publish (detail-type, detail) pairs in this order, ten per PutEvents call as EventBridge allows."""
        bus = self.cloud.deployment.outputs["BookingEventsBusName"]
        for start in range(0, len(events), 10):
            entries = [{"Source": "booking-site", "DetailType": kind, "Detail": json.dumps(body), "EventBusName": bus}
                       for kind, body in events[start:start + 10]]
            assert self.cloud.client("events").put_events(Entries=entries)["FailedEntryCount"] == 0


def run_starts(cloud: LocalCloud) -> list[str]:
    """The lifecycle runs still waiting for their schedule (the pack's run_start before the first step), by
    execution name."""
    listed = cloud.client("scheduler").list_schedules(NamePrefix="medspa-dev-run-")["Schedules"]
    return sorted(s["Name"].removeprefix("medspa-dev-run-") for s in listed)


def quarantined(cloud: LocalCloud) -> list[tuple[dict[str, Any], str]]:
    """(event, rejection_reason) of everything in the intake DLQ, which it empties."""
    sqs, url = cloud.client("sqs"), cloud.deployment.outputs["IntakeDeadLetterQueueUrl"]
    found = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                                       VisibilityTimeout=0).get("Messages", []):
        for message in batch:
            found.append((json.loads(message["Body"]), message["MessageAttributes"]["rejection_reason"]["StringValue"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found
