"""Inbound SMS replies from the two-way SMS topic: one service call per SNS record.

SNS invokes this function asynchronously: an exception makes Lambda retry the whole event twice and
then hand it to the function's dead-letter queue. So a message that can never be handled (not
JSON, not an End User Messaging payload) is logged by field name only and skipped, while a failure
that may pass (DynamoDB throttled, SNS refusing the reply) is raised and retried; replaying a handled
message changes nothing and texts nothing twice (see medspa.services.inbound_sms).
"""

from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import SNSEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from medspa.adapters.factory import adapters_for
from medspa.adapters.settings import InboundSmsSettings

if TYPE_CHECKING:
    from medspa.services.inbound_sms import InboundSmsService

logger = Logger()
settings = InboundSmsSettings()


@cache
def service() -> "InboundSmsService":
    """Wired on the first message, not at cold start."""
    from medspa.adapters.messaging import SnsSmsSender
    from medspa.policy.loader import load_packs
    from medspa.services.inbound_sms import InboundSmsService

    adapters = adapters_for(settings)
    return InboundSmsService(adapters.store, load_packs(), replies=SnsSmsSender(adapters.client("sns")),
                             booking_site=adapters.booking_site)


def _received_at(timestamp: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(timestamp).astimezone(UTC) if timestamp else None
    except ValueError:
        return None


@logger.inject_lambda_context(clear_state=True)
@event_source(data_class=SNSEvent)
def lambda_handler(event: SNSEvent, context: LambdaContext) -> dict:
    from medspa.services.inbound_sms import InvalidInboundSms, parse_inbound_message

    handled = skipped = 0
    for record in event.records:
        try:
            message = parse_inbound_message(record.sns.message)
        except InvalidInboundSms as error:
            logger.warning("inbound sms skipped", extra={"reason": str(error), "sns_message_id": record.sns.message_id})
            skipped += 1
            continue
        service().handle(message, now=datetime.now(UTC), delivery_id=record.sns.message_id,
                       received_at=_received_at(record.sns.timestamp))
        handled += 1
    return {"handled": handled, "skipped": skipped}
