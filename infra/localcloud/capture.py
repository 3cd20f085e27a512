"""Running a scenario in the local cloud, and capturing what the system did there.

:func:`localcloud.simulate.run_scenario` drives the run; this module holds the parts it drives: the Stripe
set-up (:func:`create_stripe_ids`, :func:`fake_stripe`), the delivery of each input through the real path
(EventBridge ``PutEvents`` on the booking bus, or the inbound SMS topic: :func:`deliver`), the clock's idle
hooks that record as the run goes (:class:`SentMessageTap`, :class:`QueueRecorder`, :class:`BookingSiteOutbox`),
and :func:`collect`, which reads back what the run left behind (tables, executions, queues) and has
``localcloud.report`` shape it into the report. It stands apart because it is the only part of the runner that
touches the local cloud: moto's backends, the AWS clients, the virtual clock and the fake Stripe.

Decisions:

* The report accounts for every input from what the run left behind: the quarantine and the intake
  queue hold each event's EventBridge id, so an input is quarantined, still pending, held or applied
  by evidence, not by what the runner expected (``inputs[].outcome``).
* The runner is harness, not product: the rule and queue that capture the system's events to the booking
  site are created at run time, never in ``template.yaml``.
* Every state machine's executions are read back, not only the lifecycle's: the MembershipDrafts runs (daily
  per time zone, or for one membership) are where drafts happen, and a reader tells them apart by
  ``state_machine``.
* What happens during the run is recorded as it happens, by idle hooks of the virtual clock:
  :class:`SentMessageTap` stamps each SMS and email moto records with the virtual instant it appeared, and
  :class:`QueueRecorder` reads the outbox and the intake DLQ before SQS retention (which the virtual
  clock enforces) could drop anything.
"""

from __future__ import annotations

import email
import email.policy
import json
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import stripe

from fakestripe import save_test_card
from localcloud.cloud import LocalCloud
from localcloud.report import (
    REPORT_FORMAT,
    appointment_line,
    client_line,
    iso,
    ledger_and_memberships,
    mask,
    messages_from,
    parse_time,
    quarantined_lines,
    site_id,
    summarize,
)
from localcloud.scenario import Input, Scenario, ScenarioError, StripeIds
from medspa.adapters.store import Store, TableNames
from medspa.domain.keys import spa_of
from medspa.events import MEMBERSHIP_MODELS
from medspa.policy.loader import load_packs


LIFECYCLE = "AppointmentLifecycleStateMachine"
FEE_WAIVER = "FeeWaiverStateMachine"
FEE_PAID_LATER = "FeePaidLaterStateMachine"
OF_AN_APPOINTMENT = (LIFECYCLE, FEE_WAIVER, FEE_PAID_LATER)  # their input names the appointment; listed together
MEMBERSHIP_DRAFTS = "MembershipDraftsStateMachine"
DEFAULT_SMS_DESTINATION = "+10000000000"
OUTBOX_RULE = "medspa-simulate-to-booking-site"


# ====================================================================== Stripe set-up


def create_stripe_ids(client: stripe.StripeClient, scenario: Scenario,
                      pause: Callable[[], None] | None = None) -> StripeIds:
    """A customer per scenario client, with their card; a fresh card for each CardUpdated that names one.

    All at the scenario's start instant, so Stripe's rate limit (which refills with the virtual clock) may
    refuse a large cast: ``pause`` then lets a virtual second pass and the request is made again.
    """
    def call(request: Callable[[], Any]) -> Any:
        for _ in range(60):
            try:
                return request()
            except stripe.RateLimitError:
                if pause is None:
                    raise
                pause()
        return request()

    customers, cards, new_cards = {}, {}, {}
    for c in scenario.clients:
        customers[c.key] = call(lambda: client.v1.customers.create()).id
        cards[c.key] = save_test_card(client, customers[c.key], c.card, call) if c.card else None
    for entry in scenario.entries:
        if entry.get("card"):
            key = f"{entry['detail'].get('spa_id')}#{entry['detail'].get('client_id')}"
            if key not in customers:
                raise ScenarioError(f"events[{entry['index']}]: client {key} is not in the clients section")
            new_cards[entry["index"]] = save_test_card(client, customers[key], entry["card"], call)
    return StripeIds(customers, cards, new_cards)


def fake_stripe(cloud: LocalCloud) -> tuple[Any, bool]:
    """The cloud's own fake Stripe once the deployment wires one; until then one of ours, not wired to the
    functions (so fees cannot reach it), with its rate limit off because virtual time stands still."""
    fake = getattr(cloud, "stripe", None)
    if fake is not None:
        return fake, False
    from fakestripe import FakeStripe

    return FakeStripe(rate_limit_per_second=None).start(), True


# ====================================================================== delivery


def run_inputs(cloud: LocalCloud, inputs: Iterable[Input]) -> Iterable[Input]:
    for item in inputs:
        cloud.run_until(item.at)
        yield item


def deliver(cloud: LocalCloud, scenario: Scenario, item: Input) -> dict[str, Any]:
    """Deliver one input at the current virtual time; return its line in the report's ``inputs``."""
    line: dict[str, Any] = {"index": item.index, "at": iso(item.at), "kind": item.kind}
    assert cloud.deployment is not None
    outputs = cloud.deployment.outputs
    if item.kind == "inbound_sms":
        sms = item.sms or {}
        line |= {"from": mask(sms["from"]), "to": sms.get("to") or DEFAULT_SMS_DESTINATION, "body": sms["body"],
                 "appointment_id": item.appointment_id}
        topic = outputs.get("InboundSmsTopicArn")
        if not topic:
            line["not_delivered"] = "no inbound SMS topic in this deployment"
            return line
        cloud.client("sns").publish(TopicArn=topic, Message=json.dumps(inbound_sms_message(scenario, item)))
        return line
    envelope, detail = item.envelope or {}, item.detail
    line |= {"source": envelope["source"], "detail_type": envelope["detail-type"], "spa_id": detail.get("spa_id"),
             "appointment_id": detail.get("appointment_id"), "event_id": detail.get("event_id"),
             "booking_version": detail.get("booking_version"),
             "facts": {k: _fact(detail[k]) for k in _FACTS if detail.get(k) is not None}}
    if envelope["detail-type"] in MEMBERSHIP_EVENTS:
        line |= {"membership_id": detail.get("membership_id"), "membership_version": detail.get("membership_version")}
    if item.expect_rejected:
        line["expect_rejected"] = True
    response = cloud.client("events").put_events(Entries=[{
        "Source": envelope["source"], "DetailType": envelope["detail-type"], "Detail": json.dumps(detail),
        "EventBusName": outputs["BookingEventsBusName"],
    }])
    if response["FailedEntryCount"]:
        line["not_delivered"] = response["Entries"][0].get("ErrorMessage", "PutEvents failed")
    else:
        line[_BUS_ID] = response["Entries"][0]["EventId"]  # the "id" the intake and its quarantine see
    return line


_BUS_ID = "_event_bus_id"  # kept on an input's line until the report is collected, then removed


# Detail fields shown in the report's inputs and the timeline: what happened, never who (no PII).
_FACTS = ("starts_at", "location_id", "party_size", "service", "payment", "by", "channel", "arrived_at", "marked_by",
          "client_id", "purpose", "ledger_entry_id", "admin_id",
          "plan", "starts_on", "paid_in_full_until", "form_sent_at", "submitted_at", "paper_certificates",
          "redeemed_at", "credits")
MEMBERSHIP_EVENTS = frozenset(model.detail_type for model in MEMBERSHIP_MODELS)


def _fact(value: Any) -> Any:
    if isinstance(value, dict) and "name" in value and "price" in value:  # a service
        return {"name": value["name"], "category": value.get("category"),
                "duration_minutes": value.get("duration_minutes"), "price": value["price"]}
    if isinstance(value, dict):  # the payment: what was put up, not the Stripe ids
        return {k: v for k, v in value.items() if not k.startswith("stripe_")}
    return value


def inbound_sms_message(scenario: Scenario, item: Input) -> dict[str, str]:
    """The AWS End User Messaging two-way SMS payload an SNS subscriber receives."""
    sms = item.sms or {}
    return {
        "originationNumber": sms["from"],
        "destinationNumber": sms.get("to") or DEFAULT_SMS_DESTINATION,
        "messageKeyword": "KEYWORD",
        "messageBody": sms["body"],
        "inboundMessageId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"medspa-simulate/{scenario.name}/{item.index}")),
    }


# ====================================================================== recorded as the run goes


class SentMessageTap:
    """An idle hook of the clock: stamps each SMS and email moto records with the virtual time it appeared.

    moto keeps no send time. The clock polls idle hooks whenever every execution is blocked and before
    time moves, so whatever appeared since the last poll was sent at the current virtual instant.
    """

    def __init__(self, region: str) -> None:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.ses.models import ses_backends
        from moto.sns.models import sns_backends

        self._sns = sns_backends[DEFAULT_ACCOUNT_ID][region]
        self._ses = ses_backends[DEFAULT_ACCOUNT_ID][region]
        self._seen_sms = len(self._sns.sms_messages)
        self._seen_email = len(self._ses.sent_messages)
        self.sent: list[dict[str, Any]] = []

    def poll(self, now: datetime) -> bool:
        sms = list(self._sns.sms_messages.items())
        for message_id, (phone, text) in sms[self._seen_sms:]:
            self.sent.append({"at": now, "channel": "sms", "message_id": message_id, "to": phone,
                              "subject": None, "text": text})
        emails = self._ses.sent_messages
        for message in emails[self._seen_email:]:
            to = (getattr(message, "destinations", None) or {})
            to = to.get("ToAddresses", [None])[0] if isinstance(to, dict) else (to or [None])[0]
            subject, text = getattr(message, "subject", None), getattr(message, "body", None)
            raw = getattr(message, "raw_data", None)
            if raw is not None:  # the system sends MIME (List-Unsubscribe headers): read it as a mail client would
                mime = email.message_from_string(raw, policy=email.policy.default)
                part = mime.get_body(("plain",))
                to, subject, text = mime["To"] or to, mime["Subject"], part.get_content() if part else raw
            self.sent.append({"at": now, "channel": "email", "message_id": message.id, "to": to,
                              "subject": subject, "text": text})
        self._seen_sms, self._seen_email = len(sms), len(emails)
        return False

    def next_due(self, now: datetime) -> datetime | None:
        return None


class QueueRecorder:
    """An idle hook of the clock: records each message of an SQS queue soon after it arrives.

    Read at the end only, a long scenario would lose messages: SQS drops a message after its retention
    period (4 days by default, 14 at most), and the virtual clock makes that happen. ``consume`` deletes
    what it read (a queue of the runner's own). Otherwise (the intake DLQ, which is the system's) what it
    read is hidden for :data:`WATCH_HIDDEN_FOR`, the longest SQS allows, and never deleted: so a read
    receives only the messages not read yet, whether one arrived alone or dozens at the same instant,
    and every 12 virtual hours the old ones show again and are read once more (kept once, by MessageId),
    so only their receive count changes.

    Whether to read at all is decided by the queue's newest message and its length (:func:`_arrivals`),
    not by a count of visible messages: that count falls when a read hides messages and rises when they
    show again, so it once matched by chance and a second quarantine at the same instant went unread.
    """

    def __init__(self, sqs: Any, url: str, *, consume: bool) -> None:
        self._sqs, self.url, self._consume = sqs, url, consume
        self._read_at: tuple[int, str | None] | None = None  # _arrivals() when last read to the end
        self.messages: dict[str, dict[str, Any]] = {}  # MessageId -> message, in arrival order

    def poll(self, now: datetime) -> bool:
        arrivals = _arrivals(self._sqs, self.url)
        if arrivals == self._read_at or arrivals[0] == 0:
            return False
        read = _receive_all(self._sqs, self.url, hidden_for=None if self._consume else WATCH_HIDDEN_FOR)
        for message in read:
            self.messages.setdefault(message["MessageId"], message)
        if self._consume:
            handles = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(read)]
            for batch in (handles[i:i + 10] for i in range(0, len(handles), 10)):
                self._sqs.delete_message_batch(QueueUrl=self.url, Entries=batch)
        self._read_at = _arrivals(self._sqs, self.url)
        return False

    def next_due(self, now: datetime) -> datetime | None:
        return None


def _arrivals(sqs: Any, url: str) -> tuple[int, str | None]:
    """How many messages the queue holds, visible or not, and the newest one's id: any arrival changes it.

    Read from moto's queue: through the API every call costs moto a pass over every message for each
    attribute (25 ms at 150 messages), and the recorders are polled at every idle moment of the clock.
    """
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sqs.models import sqs_backends

    held = sqs_backends[DEFAULT_ACCOUNT_ID][sqs.meta.region_name].get_queue(url.rsplit("/", 1)[1])._messages
    return len(held), (held[-1].id if held else None)


WATCH_HIDDEN_FOR = 43200  # seconds: SQS's maximum visibility timeout (12 hours)


class BookingSiteOutbox(QueueRecorder):
    """The events the system sends back to the booking site (``source`` ``medspa...`` on the same bus),
    captured by a rule and a queue the runner creates; harness infrastructure, not in template.yaml."""

    def __init__(self, cloud: LocalCloud, bus: str) -> None:
        sqs = cloud.client("sqs")
        url = sqs.create_queue(QueueName="medspa-simulate-booking-site-outbox",
                               Attributes={"MessageRetentionPeriod": "1209600"})["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events = cloud.client("events")
        events.put_rule(Name=OUTBOX_RULE, EventBusName=bus, EventPattern=json.dumps({"source": [{"prefix": "medspa"}]}))
        events.put_targets(Rule=OUTBOX_RULE, EventBusName=bus, Targets=[{"Id": "outbox", "Arn": arn}])
        super().__init__(sqs, url, consume=True)

    def events(self) -> list[dict[str, Any]]:
        out = []
        for message in self.messages.values():
            event = json.loads(message["Body"])
            detail = event.get("detail") or {}
            out.append({"at": iso(parse_time(event.get("time"))), "source": event.get("source"),
                        "detail_type": event.get("detail-type"), "appointment_id": detail.get("appointment_id"),
                        "membership_id": detail.get("membership_id"), "detail": detail})
        return sorted(out, key=lambda e: e["at"] or "")


def _visible(sqs: Any, url: str) -> int:
    return int(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
               ["Attributes"]["ApproximateNumberOfMessages"])


def _receive_all(sqs: Any, url: str, hidden_for: int | None = None) -> list[dict[str, Any]]:
    """Everything visible now, ten at a time (SQS's most per receive). A received message stays invisible
    for the visibility timeout, which on the virtual clock does not pass while we read, so the loop ends.

    ``hidden_for`` (seconds) hides what was read for that long, without ChangeMessageVisibility: SQS
    refuses that on a message sent more than 12 hours ago, and a quarantine may hold a message for days.
    An empty answer while messages are still visible is moto meeting a message past its retention
    period (it stops the receive there, and hides that message): reading on gets the ones behind it.
    """
    out: list[dict[str, Any]] = []
    timeout = {} if hidden_for is None else {"VisibilityTimeout": hidden_for}
    left = None
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                                    AttributeNames=["SentTimestamp"], **timeout).get("Messages", [])
        out += batch
        if batch:
            continue
        visible = _visible(sqs, url)
        if visible == 0 or visible == left:
            return out
        left = visible


# ====================================================================== what the run left behind


@dataclass
class Recorders:
    """What the run records as it goes (idle hooks of the clock), read once more at the end."""

    tap: SentMessageTap
    outbox: BookingSiteOutbox
    dlq: QueueRecorder | None

    def hooks(self) -> list[Any]:
        return [hook for hook in (self.tap, self.outbox, self.dlq) if hook is not None]


def collect(cloud: LocalCloud, scenario: Scenario, inputs: list[dict[str, Any]], recorders: Recorders,
             ids: StripeIds) -> dict[str, Any]:
    tables = TableNames.from_env(cloud.function_environment("LifecycleFunction"))
    store = Store(tables, region=cloud.region)
    dynamodb = cloud.client("dynamodb")
    stored = [store.appointments.get(i) for i in _scan_keys(dynamodb, tables.appointments, "appointment_id")]
    stored = [a for a in stored if a is not None]
    for hook in recorders.hooks():
        hook.poll(cloud.now())
    packs = load_packs()
    every_execution = _executions(cloud)
    executions = _by_appointment(every_execution)
    appointments = [appointment_line(a, packs, executions.pop(a.appointment_id, [])) for a in stored]
    appointments.sort(key=lambda a: (a["starts_at"], a["spa_id"], a["appointment_id"]))
    records = [store.memberships.read(k) for k in _scan_keys(dynamodb, tables.memberships, "membership_id")]
    ledger = [store.ledger.get(i) for i in _scan_keys(dynamodb, tables.ledger, "entry_id")]
    money = ledger_and_memberships([e for e in ledger if e is not None], records, packs, every_execution)
    clients = [store.clients.get(i) for i in _scan_keys(dynamodb, tables.clients, "client_id")]
    cards = {c.key: c.card for c in scenario.clients}
    client_lines = [client_line(c, cards, ids, store.consent) for c in clients if c is not None]
    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "scenario": {"name": scenario.name, "description": scenario.description, "file": scenario.file},
        "started_at": iso(scenario.start),
        "ended_at": iso(cloud.now()),
        "inputs": inputs,
        "messages": messages_from(stored, recorders.tap.sent, [c for c in clients if c is not None]),
        "ledger": money["ledger"],
        "appointments": appointments,
        "executions": [{k: v for k, v in e.items() if not k.startswith("_")} for e in every_execution],
        "clients": client_lines,
        "memberships": money["memberships"],
        "drafts": money["drafts"],
        "expiries": money["expiries"],
        "events_to_booking_site": recorders.outbox.events(),
        "quarantined": quarantined_lines(recorders.dlq, {line[_BUS_ID]: line["index"] for line in inputs
                                                     if line.get(_BUS_ID)}),
    }
    booked = {(a["spa_id"], a["appointment_id"]) for a in appointments}
    booked |= {("membership", m["spa_id"], m["membership_id"]) for m in money["memberships"]}
    backlog = _intake_backlog(cloud, recorders.dlq.url) if recorders.dlq else set()
    for line in inputs:
        line["outcome"] = _outcome(line, report["quarantined"], backlog, booked)
        line.pop(_BUS_ID, None)
    if executions:  # executions whose appointment is not in the table (should not happen): keep them visible
        report["appointments"] += [{"appointment_id": site_id(k), "spa_id": spa_of(k), "status": None, "executions": v}
                                   for k, v in executions.items()]
    report["summary"] = summarize(report)
    return report


def _outcome(line: Mapping[str, Any], quarantined: list[dict[str, Any]], backlog: set[str],
             booked: set[tuple[Any, Any]]) -> str:
    """What became of one input, from what the run left behind rather than from what the runner expected.

    An event reaches the intake by its EventBridge id, which the quarantined copy and the intake queue's
    message keep: so it is ``quarantined`` if the quarantine holds it, ``pending`` if the intake still
    holds it (a retry the run's ``until`` cut short), and otherwise the intake took it: ``applied``, or
    ``held`` for an appointment event whose booking never arrived, or a membership event whose
    ``MembershipStarted`` never did (the intake keeps either for the fold).
    An inbound SMS goes to its own function, which quarantines nothing: ``delivered``.
    """
    if line.get("not_delivered"):
        return "not_delivered"
    if line["kind"] == "inbound_sms":
        return "delivered"
    if any(q.get("input_index") == line["index"] for q in quarantined):
        return "quarantined"
    if line.get(_BUS_ID) in backlog:
        return "pending"
    if line.get("membership_version") is not None:
        known = ("membership", line.get("spa_id"), line.get("membership_id")) in booked
        return "applied" if known else "held"
    if line.get("booking_version") is not None and (line.get("spa_id"), line.get("appointment_id")) not in booked:
        return "held"
    return "applied"


def _intake_backlog(cloud: LocalCloud, dlq_url: str) -> set[str]:
    """The EventBridge ids of the events still in the intake queue (the queue whose dead letters go to the
    quarantine). SQS shows nobody the body of a message in flight, so this harness reads moto's queue."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sqs.models import sqs_backends

    dlq_arn = cloud.client("sqs").get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"]
    ids: set[str] = set()
    for queue in sqs_backends[DEFAULT_ACCOUNT_ID][cloud.region].queues.values():
        if (queue.redrive_policy or {}).get("deadLetterTargetArn") != dlq_arn:
            continue
        for message in queue._messages:
            try:
                ids.add(json.loads(message.body)["id"])
            except (ValueError, KeyError, TypeError):
                continue
    return ids


def _scan_keys(dynamodb: Any, table: str, key: str) -> list[str]:
    """Every item's key: the report reads each item back through the store's public get()."""
    keys: list[str] = []
    for page in dynamodb.get_paginator("scan").paginate(
            TableName=table, ProjectionExpression="#k", ExpressionAttributeNames={"#k": key}):
        keys += [item[key]["S"] for item in page["Items"]]
    return sorted(keys)


def _executions(cloud: LocalCloud) -> list[dict[str, Any]]:
    """Every execution of every state machine of the deployment, by start time, as ``executions[]`` lines.

    Each keeps its appointment's stored key under ``_appointment`` (the lifecycle's input names it) until
    :func:`_by_appointment` files it under its appointment."""
    sfn = cloud.client("stepfunctions")
    assert cloud.deployment is not None
    machines = cloud.deployment.state_machines
    lines: list[dict[str, Any]] = []
    for logical_id in sorted(machines, key=lambda m: (m != LIFECYCLE, m)):
        machine = logical_id.removesuffix("StateMachine")
        for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=machines[logical_id]):
            for listed in page["executions"]:
                described = sfn.describe_execution(executionArn=listed["executionArn"])
                payload = _json_object(described.get("input"))
                history = _history(sfn, cloud.region, listed["executionArn"])
                states = [{"at": iso(e["timestamp"]), "name": e["stateEnteredEventDetails"]["name"],
                           "type": e["type"].removesuffix("StateEntered")}
                          for e in history if e["type"].endswith("StateEntered")]
                ended = next((e for e in reversed(history) if e["type"] in _END_DETAILS), None)
                details = ended.get(_END_DETAILS[ended["type"]], {}) if ended else {}
                member = payload.get("membership_id") if logical_id == MEMBERSHIP_DRAFTS else None
                appointment = payload.get("appointment_id") if logical_id in OF_AN_APPOINTMENT else None
                lines.append({
                    "state_machine": machine,
                    "name": listed["name"],
                    "appointment_id": site_id(appointment) if isinstance(appointment, str) else None,
                    "booking_version": payload.get("booking_version"),
                    "membership_id": site_id(member) if isinstance(member, str) else None,
                    "time_zone": payload.get("time_zone"),
                    "status": described["status"],
                    "started_at": iso(described["startDate"]),
                    "stopped_at": iso(described.get("stopDate")),
                    "error": details.get("error") or described.get("error"),
                    "cause": details.get("cause") or described.get("cause"),
                    "state_transitions": len(states),
                    "states": states,
                    "steps": _draft_steps(payload, described, cloud) if logical_id == MEMBERSHIP_DRAFTS else None,
                    "_appointment": appointment,
                })
    lines.sort(key=lambda e: (e["started_at"] or "", e["state_machine"], e["name"]))
    return lines


def _history(sfn: Any, region: str, arn: str) -> list[dict[str, Any]]:
    """An execution's history events. Read from moto's Step Functions backend when it holds the execution:
    through the API, moto serialises the whole history on every page (about 50 ms an execution), and the
    daily MembershipDrafts runs put a hundred executions or more in a few months' scenario."""
    try:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        execution = stepfunctions_parser_backends[DEFAULT_ACCOUNT_ID][region].describe_execution(execution_arn=arn)
        return [{**e, "type": getattr(e["type"], "value", e["type"])}  # an enum there, a string from the API
                for e in execution.to_history_output()["events"]]
    except Exception:  # noqa: BLE001 - any other backend: the API, which always answers
        return [e for p in sfn.get_paginator("get_execution_history").paginate(executionArn=arn) for e in p["events"]]


# The fields an appointment's own ``executions`` list has always had (docs/simulate.md, appointments[]).
_APPOINTMENT_EXECUTION = ("name", "booking_version", "status", "started_at", "stopped_at", "error", "cause",
                          "state_transitions", "states")


def _by_appointment(lines: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The lifecycle's, the waivers' and the paid-later executions by the appointment their input names (an input without one:
    by name), in start order."""
    by_appointment: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in lines:
        if line["state_machine"] + "StateMachine" in OF_AN_APPOINTMENT:
            key = line["_appointment"] if isinstance(line["_appointment"], str) else line["name"]
            by_appointment[key].append({k: line[k] for k in _APPOINTMENT_EXECUTION})
    return dict(by_appointment)


def _draft_steps(payload: Mapping[str, Any], described: Mapping[str, Any],
                 cloud: LocalCloud) -> list[dict[str, Any]] | None:
    """What a MembershipDrafts run did for each membership it found due: the Map's results, which its
    ``ResultWriter`` put in S3 (the manifest names the files; each record's name is its item's position in the
    local cloud), in the order of the memberships the finder returned. None while it runs."""
    output = _json_object(described.get("output"))
    due = (output.get("due") or {}).get("membership_ids") or []
    drafts = output.get("drafts")
    written = drafts.get("ResultWriterDetails") if isinstance(drafts, dict) else None
    if not written:
        return None
    s3 = cloud.client("s3")
    manifest = json.loads(s3.get_object(Bucket=written["Bucket"], Key=written["Key"])["Body"].read())
    records = sorted((record for status in ("SUCCEEDED", "FAILED") for file in manifest["ResultFiles"][status]
                      for record in json.loads(s3.get_object(Bucket=written["Bucket"], Key=file["Key"])["Body"].read())),
                     key=lambda record: record["Name"])
    results = [json.loads(record["Output"]) if record.get("Output") else None for record in records]
    steps = []
    for membership, result in zip(due, results, strict=False):
        result = result if isinstance(result, Mapping) else {}
        steps.append({"membership_id": site_id(membership) if isinstance(membership, str) else None,
                      "outcome": result.get("outcome"), "due_on": result.get("due_on"),
                      "ledger_entry_id": result.get("ledger_entry_id"), "error": result.get("error")})
    return steps


def _json_object(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


_END_DETAILS = {"ExecutionAborted": "executionAbortedEventDetails", "ExecutionFailed": "executionFailedEventDetails",
                "ExecutionTimedOut": "executionTimedOutEventDetails"}
