"""Privacy requests a spa's admin made on the bus, handed over by the intake once it has checked them.

The only function that holds the exports bucket and the privacy audit table, and the second (after the
settlement function) that may read the Stripe key: to delete an erased client's Stripe customer. The
intake invokes it synchronously; an error it raises goes back to the intake, which retries a passing
failure with its queue and quarantines anything else. What each request does: medspa.services.privacy.
Nothing personal is logged: the request, the spa and the action, never the client's details.

Its services are wired on the first invocation, not at import (a lighter cold start), and its environment is
checked then: a missing variable fails the first invocation with the variable's name, not the cold start.
"""

import json
import os
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict

from medspa.adapters.factory import ClientOnFirstUse, aws_client

if TYPE_CHECKING:
    from medspa.events import PrivacyRequest
    from medspa.services.privacy import PrivacyService

logger = Logger()


def stripe_key() -> str:
    """Fetched only when an erasure deletes a Stripe customer (Powertools parameters, imported here: it imports
    boto3)."""
    from aws_lambda_powertools.utilities import parameters

    return str(parameters.get_parameter(os.environ["STRIPE_API_KEY_PARAMETER"], decrypt=True, max_age=300))


@cache
def service() -> "PrivacyService":
    """Wired on the first request, not at cold start (the store, the events' models and the service load then).
    The environment is checked here too, so a missing variable fails the first invocation, naming it
    (``privacy_adapters_from``), rather than the import."""
    from medspa.adapters.privacy import privacy_adapters_from
    from medspa.services.privacy import PrivacyService

    return PrivacyService(**privacy_adapters_from(os.environ, lambda name: ClientOnFirstUse(aws_client, name),
                                                  stripe_key))


class Handover(BaseModel):
    """What the intake sends: an event it already parsed and authorised."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    detail_type: str
    detail: dict
    received_at: datetime


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    from medspa.events import DETAIL_MODELS

    privacy = service()
    handover = Handover.model_validate(event)
    request: PrivacyRequest = DETAIL_MODELS[handover.detail_type].model_validate_json(
        json.dumps(handover.detail))  # type: ignore[assignment]
    logger.append_keys(spa_id=request.spa_id, request_id=request.request_id, detail_type=request.detail_type)
    done = privacy.handle(request, datetime.now(UTC))
    logger.info("privacy request served", extra={"done": done})
    return {"done": done}
