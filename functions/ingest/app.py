"""Booking-site events from the intake queue: quarantine the invalid, converge on the valid.

An invalid event goes to the quarantine (the intake DLQ) at once with the reason naming the field, and
is acknowledged; it would fail the same way on every retry. A failure that may pass (DynamoDB or Step
Functions throttled, an event naming a record its booking has not created yet) is reported as a batch
item failure, so SQS redelivers that one record; on the queue's last receive (``maxReceiveCount``, the
template's one number) it is quarantined with its reason rather than moved to the DLQ by SQS without
one. Anything else is a bug, which a retry would only repeat: quarantined at once, with the exception's
class and where it was raised, never its message, which may quote the event. A valid event is never
dropped, and nothing reaches the DLQ without a reason.
"""

import json
import traceback
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from medspa.adapters.factory import adapters_for
from medspa.adapters.settings import IngestSettings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch import BatchProcessor
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    from medspa.services.ingest import IngestService

logger = Logger()
settings = IngestSettings()
adapters = adapters_for(settings)
QUARANTINE_URL = settings.quarantine_queue_url
MAX_RECEIVES = settings.intake_max_receive_count


@cache
def processor() -> "BatchProcessor":
    """The batch utility, imported by the first batch, not at cold start."""
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType

    return BatchProcessor(event_type=EventType.SQS)


@cache
def service() -> "IngestService":
    """Wired on the first event, not at cold start: the store, the packs, the tenants and the services load then."""
    from medspa.adapters.privacy import InvokedPrivacyDesk
    from medspa.policy.loader import PolicyPacks, load_packs
    from medspa.policy.tenants import load_tenants
    from medspa.services.courses import CourseService
    from medspa.services.ingest import IngestService
    from medspa.services.memberships import MembershipService

    packs = load_packs()
    return IngestService(
        adapters.store,
        adapters.executions,
        packs,
        load_tenants(packs),
        privacy=InvokedPrivacyDesk(adapters.client("lambda"), settings.privacy_function_name),
        booking_site=adapters.booking_site,
        memberships=MembershipService(adapters.store, adapters.store.memberships, PolicyPacks.of(packs),
                                      booking_site=adapters.booking_site),
        draft_runs=adapters.draft_runs,
        courses=CourseService(adapters.store, PolicyPacks.of(packs), adapters.booking_site),
    )


@cache
def retried() -> tuple[type[Exception], ...]:
    """What may pass: the record goes back to the queue until its last receive."""
    from medspa.adapters.booking_site import BookingSiteUnavailable
    from medspa.adapters.executions import ExecutionsUnavailable
    from medspa.adapters.privacy import PrivacyDeskUnavailable
    from medspa.adapters.store import StoreUnavailable
    from medspa.services.ingest import NotKnownHere

    return StoreUnavailable, ExecutionsUnavailable, PrivacyDeskUnavailable, BookingSiteUnavailable, NotKnownHere


def record_handler(record: "SQSRecord") -> None:
    from medspa.adapters.store import ConflictingEvent
    from medspa.events import InvalidBookingEvent, parse_booking_envelope
    from medspa.services.ingest import ErasedClientRefused, EventRefused, NotKnownHere

    ingest = service()  # wiring that fails fails the invocation, never quarantines the event
    detail_type = "an unparsed event"
    try:
        envelope = parse_booking_envelope(record.body)
        detail_type = envelope.detail.detail_type
        outcome = ingest.ingest(envelope.detail, source=envelope.source, now=datetime.now(UTC))
    except ErasedClientRefused as error:
        quarantine(record, str(error), body=erased_body(record.body))
    except (InvalidBookingEvent, EventRefused) as error:
        quarantine(record, str(error))
    except ConflictingEvent:
        quarantine(record, f"{detail_type}: detail.booking_version: already held by another event of this appointment")
    except retried() as error:
        reason = (error.reason if isinstance(error, NotKnownHere)
                  else f"{type(error).__name__} while ingesting {detail_type}")
        receives = int(record.attributes.approximate_receive_count)
        if receives < MAX_RECEIVES:
            logger.warning("booking event will be retried", extra={"reason": reason, "receives": receives,
                                                                   "message_id": record.message_id})
            raise
        quarantine(record, f"{reason}; still failing on receive {receives} of {MAX_RECEIVES}")
    except Exception as error:  # a bug: retrying would repeat it, and str(error) may quote the event
        frame = traceback.extract_tb(error.__traceback__)[-1]
        quarantine(record, f"internal error: {type(error).__name__} at {Path(frame.filename).name}:{frame.lineno} "
                           f"in {frame.name} while ingesting {detail_type}")
    else:
        logger.info("booking event applied", extra=outcome.model_dump())


def erased_body(body: str) -> str:
    """The quarantined copy of an event about an erased client keeps its ids, not what it says about them."""
    from medspa.events.personal import as_erased

    event = json.loads(body)
    return json.dumps({**event, "detail": as_erased(event.get("detail") or {})})


def quarantine(record: "SQSRecord", reason: str, body: str | None = None) -> None:
    from medspa.ports import Counted

    reason = reason[:1024]
    adapters.client("sqs").send_message(QueueUrl=QUARANTINE_URL, MessageBody=body or record.body, MessageAttributes={
        "rejection_reason": {"DataType": "String", "StringValue": reason},
        "source_message_id": {"DataType": "String", "StringValue": record.message_id},
    })
    logger.warning("booking event quarantined", extra={"reason": reason, "message_id": record.message_id})
    adapters.metrics.count(Counted.EVENT_QUARANTINED, spa_id=None)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    from aws_lambda_powertools.utilities.batch import process_partial_response

    return process_partial_response(event=event, record_handler=record_handler, processor=processor(),
                                    context=context)
