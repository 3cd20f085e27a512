"""Applies the Stripe events the webhook endpoint queued (FIFO, grouped by PaymentIntent) to the ledger:
``medspa.services.reconciliation`` says how, and why each event is only a pointer to what Stripe holds.

A record that cannot be applied yet fails alone and comes back: after the visibility timeout when Stripe is
unreachable, after a jittered while (``medspa.adapters.redelivery``) when the Stripe budget turned it away, so a
burst of webhooks spreads out instead of coming back together; after five receives it goes to the dead-letter
queue, which alarms.
After a failure the rest of that payment's group in the batch is skipped too, so its later events wait for it;
other payments' events go on.
"""

from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from medspa.adapters.factory import adapters_for
from medspa.adapters.settings import StripeEventsSettings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    from medspa.services.reconciliation import StripeReconciliation

logger = Logger()
settings = StripeEventsSettings()


@cache
def processor() -> "SqsFifoPartialProcessor":
    """The batch utility, imported by the first batch, not at cold start."""
    from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor

    return SqsFifoPartialProcessor(skip_group_on_error=True)


@cache
def reconciliation() -> "StripeReconciliation":
    """Wired on first use: the store, ``stripe`` and the packs are imported by the first event."""
    from medspa.policy.loader import load_packs
    from medspa.services.reconciliation import StripeReconciliation
    from medspa.services.settlement import SettlementService

    adapters = adapters_for(settings)
    store, payments = adapters.store, adapters.payments
    settlement = SettlementService(store, payments, load_packs(), adapters.metrics)
    return StripeReconciliation(store, payments, settlement, adapters.metrics, adapters.draft_runs,
                                adapters.paid_fee_runs)


def apply(record: "SQSRecord") -> None:
    from medspa.ports.payments import PaymentProviderThrottled
    from medspa.services.reconciliation import StripeNotice

    notice = StripeNotice.model_validate_json(record.body)
    try:
        result = reconciliation().apply(notice, datetime.now(UTC))
    except PaymentProviderThrottled:
        adapters_for(settings).stripe_events_redelivery.later(record)
        raise
    logger.info("stripe event applied", extra={"event_type": notice.type, **result.model_dump(exclude_none=True)})


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    from aws_lambda_powertools.utilities.batch import process_partial_response

    return process_partial_response(event=event, record_handler=apply, processor=processor(), context=context)
