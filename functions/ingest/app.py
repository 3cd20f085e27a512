"""Booking-site events from the intake queue: quarantine the invalid, converge on the valid.

An invalid event goes to the quarantine (the intake DLQ) at once with the reason naming the field, and
is acknowledged; it would fail the same way on every retry. Any other failure (DynamoDB throttled, an
event that arrived before its booking) is reported as a batch item failure, so SQS redelivers that one
record and, after the queue's maxReceiveCount, moves it to the same DLQ: a valid event is never dropped.
"""

import json
import os
from datetime import UTC, datetime

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from medspa.adapters.executions import LifecycleExecutions
from medspa.adapters.store import ConflictingEvent, Store
from medspa.events import InvalidBookingEvent, parse_booking_event
from medspa.policy.loader import load_packs
from medspa.services.ingest import IngestService

logger = Logger()
processor = BatchProcessor(event_type=EventType.SQS)
sqs = boto3.client("sqs")
service = IngestService(
    Store.from_env(os.environ),
    LifecycleExecutions(boto3.client("stepfunctions"), os.environ["LIFECYCLE_STATE_MACHINE_ARN"]),
    load_packs(),
)
QUARANTINE_URL = os.environ["QUARANTINE_QUEUE_URL"]


def record_handler(record: SQSRecord) -> None:
    try:
        event = parse_booking_event(json.loads(record.body))
        outcome = service.ingest(event, now=datetime.now(UTC))
    except (InvalidBookingEvent, ConflictingEvent, json.JSONDecodeError) as error:
        quarantine(record, str(error)[:1024])
        return
    logger.info("booking event applied", extra=outcome.model_dump())


def quarantine(record: SQSRecord, reason: str) -> None:
    sqs.send_message(QueueUrl=QUARANTINE_URL, MessageBody=record.body, MessageAttributes={
        "rejection_reason": {"DataType": "String", "StringValue": reason},
        "source_message_id": {"DataType": "String", "StringValue": record.message_id},
    })
    logger.warning("booking event quarantined", extra={"reason": reason, "message_id": record.message_id})


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
