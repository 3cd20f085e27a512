"""Sends what the lifecycle and the memberships queued, each sending identity at its own rate
(``medspa.services.outbox``: paced, once, only while useful; never waiting inside the Lambda).

A record the provider refused fails alone and comes back after the visibility timeout; after five receives it goes
to the outbox's dead-letter queue, which alarms. The recipient and the text are never logged.
"""

from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from medspa.adapters.factory import adapters_for
from medspa.adapters.settings import OutboxSettings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch import BatchProcessor
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    from medspa.services.outbox import OutboxSender

logger = Logger()
settings = OutboxSettings()


@cache
def sender() -> "OutboxSender":
    """Wired on the first message, not at cold start."""
    from medspa.services.outbox import OutboxSender

    adapters = adapters_for(settings)
    return OutboxSender(adapters.messenger, adapters.outbox, adapters.pacer, adapters.send_claims,
                        adapters.store.appointments, adapters.store.consent, adapters.metrics)


@cache
def processor() -> "BatchProcessor":
    """The batch utility, imported by the first batch, not at cold start."""
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType

    return BatchProcessor(event_type=EventType.SQS)


def send(record: "SQSRecord") -> None:
    from medspa.ports import OutgoingMessage

    message = OutgoingMessage.model_validate_json(record.body)
    outcome = sender().handle(message, datetime.now(UTC))
    logger.debug("outbox message handled", extra={"outbox_id": message.id, "outcome": outcome})


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    from aws_lambda_powertools.utilities.batch import process_partial_response

    return process_partial_response(event=event, record_handler=send, processor=processor(), context=context)
