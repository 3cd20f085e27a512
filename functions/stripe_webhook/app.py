"""Stripe's webhook endpoint, ``POST /stripe/webhooks`` on the HTTP API: verify, queue, answer.

Stripe waits only seconds for a 2xx and retries for three days when it gets none, so nothing here calls Stripe or
touches the ledger: the event is checked and a pointer to it queued for ``functions/stripe_events``.

- The ``Stripe-Signature`` must verify with the endpoint's secret (SSM) and its timestamp be within Stripe's
  300-second tolerance (``stripe.Webhook.construct_event``): a forged, altered or stale request gets 400 with
  the reason, and nothing in the answer or the logs repeats what was sent.
- A replay of a signed request within those 300 seconds carries the same event id, and the FIFO queue drops a
  message whose deduplication id (the event id) it has seen in the last five minutes: the same window, so a
  replay never reaches the ledger twice. Stripe's own retries come later with a new signature and are applied
  again, harmlessly: the ledger is reconciled to what Stripe holds, not to the event.
- Events are grouped by PaymentIntent, so one payment's events are applied one at a time, in the order received.
- Types the ledger does not need (a customer updated, a setup intent) are acknowledged and dropped.
"""

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from medspa.adapters.factory import adapters_for
from medspa.adapters.http_routes import DeferredHttpResolver
from medspa.adapters.settings import StripeWebhookSettings

if TYPE_CHECKING:
    import stripe
    from aws_lambda_powertools.event_handler import Response

    from medspa.ports.payments import StripeNotice

logger = Logger()
app = DeferredHttpResolver()
settings = StripeWebhookSettings()
adapters = adapters_for(settings)

TOLERANCE_SECONDS = 300
_PAYMENT_EVENTS = frozenset({"payment_intent.succeeded", "payment_intent.payment_failed", "payment_intent.canceled"})


def _answer(status: int, **body: Any) -> "Response":
    from aws_lambda_powertools.event_handler import Response, content_types

    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


def notice_of(event: "stripe.Event") -> "StripeNotice | None":
    """The pointer the ledger needs, or ``None`` for an event it does not."""
    obj = event["data"]["object"]
    if event.type in _PAYMENT_EVENTS:
        intent, dispute = obj["id"], None
    elif event.type == "charge.refunded":
        intent, dispute = obj["payment_intent"], None
    elif event.type.startswith("charge.dispute."):
        intent, dispute = obj["payment_intent"], obj["id"]
    else:
        return None
    if not intent:  # a charge made without a PaymentIntent is none of this system's
        return None
    from medspa.ports.payments import StripeNotice

    return StripeNotice(event_id=event.id, type=event.type, payment_intent_id=intent, dispute_id=dispute)


@app.post("/stripe/webhooks")
def stripe_webhook() -> "Response":
    import stripe  # here, not at import: only a request pays for it (medspa.adapters.factory)

    request = app.current_event
    try:
        event = stripe.Webhook.construct_event(request.decoded_body, request.headers.get("stripe-signature"),
                                               adapters.stripe_webhook_secret(), tolerance=TOLERANCE_SECONDS)
    except stripe.SignatureVerificationError:
        logger.warning("stripe webhook refused", extra={"reason": "signature"})
        return _answer(400, error="Stripe-Signature does not verify: forged, altered, signed with another "
                                  f"secret, or older than {TOLERANCE_SECONDS} seconds")
    except ValueError:
        logger.warning("stripe webhook refused", extra={"reason": "body"})
        return _answer(400, error="the body is not a Stripe event (JSON)")
    notice = notice_of(event)
    if notice is None:
        logger.info("stripe event ignored", extra={"event_type": event.type})
        return _answer(200, received=True, queued=False)
    adapters.client("sqs").send_message(QueueUrl=settings.stripe_events_queue_url,
                                        MessageBody=notice.model_dump_json(),
                                        MessageGroupId=notice.payment_intent_id,
                                        MessageDeduplicationId=notice.event_id)
    logger.info("stripe event queued", extra={"event_type": event.type, "event_id": event.id})
    return _answer(200, received=True, queued=True)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
