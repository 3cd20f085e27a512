"""What AWS does between services on its own, done by the local cloud's driver at virtual times.

- ``SqsEventSourcePoller``: Lambda's SQS poller. moto would invoke the function synchronously inside
  SendMessage with no partial-batch support and never retry; here messages are received in batches,
  ``batchItemFailures`` are honoured, failed messages come back after the visibility timeout (virtual
  time) and reach the DLQ through the queue's redrive policy after ``maxReceiveCount`` receives.
- ``SchedulerHook``: EventBridge Scheduler. moto stores schedules but never fires them; here ``at()``,
  ``rate()`` and ``cron()`` schedules fire in their time zone and start their target.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

from localcloud import patches


@dataclass(frozen=True)
class SqsMapping:
    function_arn: str
    queue_arn: str
    queue_url: str
    batch_size: int
    report_item_failures: bool


class SqsEventSourcePoller:
    def __init__(self, sqs: Any, lam: Any, region: str) -> None:
        self._sqs, self._lam, self._region = sqs, lam, region
        self.mappings: list[SqsMapping] = []
        self.deliveries = 0

    def discover(self) -> None:
        """Take over every SQS event source mapping from moto's synchronous delivery."""
        for page in self._lam.get_paginator("list_event_source_mappings").paginate():
            for esm in page["EventSourceMappings"]:
                if ":sqs:" not in esm["EventSourceArn"] or esm.get("State") == "Disabled":
                    continue
                queue_name = esm["EventSourceArn"].rsplit(":", 1)[1]
                url = self._sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
                patches.detach_sqs_event_sources(self._region, queue_name)
                self.mappings.append(SqsMapping(
                    function_arn=esm["FunctionArn"],
                    queue_arn=esm["EventSourceArn"],
                    queue_url=url,
                    batch_size=min(int(esm.get("BatchSize", 10)), 10),
                    report_item_failures="ReportBatchItemFailures" in esm.get("FunctionResponseTypes", []),
                ))

    def poll(self, now: datetime) -> bool:
        worked = False
        for mapping in self.mappings:
            messages = self._sqs.receive_message(
                QueueUrl=mapping.queue_url,
                MaxNumberOfMessages=mapping.batch_size,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                continue
            worked = True
            self.deliveries += 1
            failed = self._deliver(mapping, messages)
            done = [m for m in messages if m["MessageId"] not in failed]
            if done:
                self._sqs.delete_message_batch(
                    QueueUrl=mapping.queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
                )
        return worked

    def _deliver(self, mapping: SqsMapping, messages: list[dict[str, Any]]) -> set[str]:
        event = {"Records": [self._record(mapping, m) for m in messages]}
        response = self._lam.invoke(FunctionName=mapping.function_arn, Payload=json.dumps(event))
        everything = {m["MessageId"] for m in messages}
        if "FunctionError" in response:
            return everything
        if not mapping.report_item_failures:
            return set()
        try:
            result = json.loads(response["Payload"].read() or b"null") or {}
            return {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
        except (ValueError, TypeError, KeyError, AttributeError):
            return everything  # Lambda treats an unreadable partial-failure response as a failed batch

    def _record(self, mapping: SqsMapping, message: dict[str, Any]) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": message.get("MessageAttributes", {}),
            "md5OfBody": message.get("MD5OfBody", hashlib.md5(message["Body"].encode()).hexdigest()),
            "eventSource": "aws:sqs",
            "eventSourceARN": mapping.queue_arn,
            "awsRegion": self._region,
        }

    def next_due(self, now: datetime) -> datetime | None:
        times = [
            t for m in self.mappings
            if (t := patches.next_visible_at(self._region, m.queue_arn.rsplit(":", 1)[1], now)) is not None
        ]
        return min(times, default=None)


_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")
_CRON = re.compile(r"^cron\((.+)\)$")


def next_fire(expression: str, zone: str, after: datetime, created: datetime) -> datetime | None:
    """The first fire time strictly after ``after``, as EventBridge Scheduler computes it in ``zone``."""
    tz = ZoneInfo(zone or "UTC")
    if match := _AT.match(expression):
        when = datetime.fromisoformat(match.group(1)).replace(tzinfo=tz).astimezone(UTC)
        return when if when > after else None
    if match := _RATE.match(expression):
        amount, unit = int(match.group(1)), match.group(2).rstrip("s")
        period = timedelta(**{f"{unit}s": amount})
        elapsed = max(after - created, timedelta(0))
        return created + period * (elapsed // period + 1)
    if match := _CRON.match(expression):
        minute, hour, day, month, weekday, year = match.group(1).split()
        if year not in ("*", "?"):
            raise ValueError(f"{expression}: only year '*' is supported locally")
        weekday = "*" if weekday == "?" else _aws_weekdays(weekday)
        day = "*" if day == "?" else day
        local = croniter(f"{minute} {hour} {day} {month} {weekday}", after.astimezone(tz)).get_next(datetime)
        return local.astimezone(UTC)
    raise ValueError(f"unsupported schedule expression {expression!r}")


def _aws_weekdays(field_: str) -> str:
    """AWS numbers days 1-7 from Sunday; cron numbers them 0-6."""
    return re.sub(r"\d", lambda d: str(int(d.group()) - 1), field_)


@dataclass
class SchedulerHook:
    scheduler: Any
    sfn: Any
    lam: Any
    sqs: Any
    fired: list[tuple[str, datetime]] = field(default_factory=list)
    _last: dict[str, datetime] = field(default_factory=dict)
    _read: dict[str, dict[str, Any]] = field(default_factory=dict)

    def _schedules(self) -> list[dict[str, Any]]:
        """Every enabled schedule; each is read again only when its summary (state, target, last modification)
        changed: the clock asks whenever it idles, and a full read is a GetSchedule per schedule."""
        out, read = [], {}
        for page in self.scheduler.get_paginator("list_schedules").paginate():
            for summary in page["Schedules"]:
                if summary.get("State", "ENABLED") == "ENABLED":
                    group = summary.get("GroupName", "default")
                    key = json.dumps(summary, sort_keys=True, default=str)
                    read[key] = self._read.get(key) or self.scheduler.get_schedule(Name=summary["Name"],
                                                                                   GroupName=group)
                    out.append(read[key])
        self._read = read
        return out

    def _due(self, schedule: dict[str, Any], now: datetime) -> datetime | None:
        key = f"{schedule.get('GroupName', 'default')}/{schedule['Name']}"
        created = schedule.get("CreationDate", now).astimezone(UTC)
        after = self._last.get(key, created - timedelta(microseconds=1))
        if (start := schedule.get("StartDate")) and start.astimezone(UTC) > after:
            after = start.astimezone(UTC) - timedelta(microseconds=1)
        when = next_fire(schedule["ScheduleExpression"], schedule.get("ScheduleExpressionTimezone", "UTC"),
                         after, created)
        if when and (end := schedule.get("EndDate")) and when > end.astimezone(UTC):
            return None
        return when

    def next_due(self, now: datetime) -> datetime | None:
        return min((d for s in self._schedules() if (d := self._due(s, now))), default=None)

    def next_work(self, now: datetime) -> datetime | None:
        """The next one-time (``at``) fire. A recurring schedule always has a next fire, so it is not work that
        keeps the cloud busy: ``run_until_idle`` fires recurring schedules only on the way to other work."""
        return min((d for s in self._schedules() if s["ScheduleExpression"].startswith("at(")
                    and (d := self._due(s, now))), default=None)

    def poll(self, now: datetime) -> bool:
        worked = False
        for schedule in self._schedules():
            when = self._due(schedule, now)
            if when is None or when > now:
                continue
            key = f"{schedule.get('GroupName', 'default')}/{schedule['Name']}"
            self._last[key] = when
            self._fire(schedule, when)
            self.fired.append((key, when))
            worked = True
        return worked

    def _fire(self, schedule: dict[str, Any], when: datetime) -> None:
        target = schedule["Target"]
        arn, payload = target["Arn"], target.get("Input", "{}")
        if arn == "arn:aws:scheduler:::aws-sdk:sfn:startExecution":  # the universal target: the call as given
            call = json.loads(payload)
            try:
                self.sfn.start_execution(stateMachineArn=call["StateMachineArn"], name=call["Name"],
                                         input=call.get("Input", "{}"))
            except self.sfn.exceptions.ExecutionAlreadyExists:
                pass  # started at once by an intake that found the time passed: the same run
        elif ":states:" in arn:
            name = f"{schedule['Name']}-{when:%Y%m%dT%H%M%SZ}"[:80]
            self.sfn.start_execution(stateMachineArn=arn, name=name, input=payload)
        elif ":lambda:" in arn:
            self.lam.invoke(FunctionName=arn, InvocationType="Event", Payload=payload)
        elif ":sqs:" in arn:
            self.sqs.send_message(QueueUrl=self.sqs.get_queue_url(QueueName=arn.rsplit(":", 1)[1])["QueueUrl"],
                                  MessageBody=payload)
        else:
            raise ValueError(f"schedule target {arn} is not supported by the local cloud")
        if schedule.get("ActionAfterCompletion") == "DELETE" and schedule["ScheduleExpression"].startswith("at("):
            self.scheduler.delete_schedule(Name=schedule["Name"], GroupName=schedule.get("GroupName", "default"))
