"""Step Functions task of the AppointmentLifecycle for money: settle, retry, release or waive a fee, and check
the card on file before a visit.

The only function that moves money through Stripe; it reads the key from SSM Parameter Store (cached five
minutes). The privacy function reads it too, only to delete an erased client's Stripe customer. The card
check is here rather than in a function of its own because it needs that same key and nothing else.
"""

import os
from datetime import UTC, datetime
from typing import Literal

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from medspa.adapters.booking_site import EventBridgeBookingSite
from medspa.adapters.payments import StripePayments
from medspa.adapters.store import Store
from medspa.policy.loader import load_packs
from medspa.services.card_check import CardChecks
from medspa.services.fees import FeeSteps
from medspa.services.lifecycle import LifecycleService
from medspa.services.settlement import SettlementService

logger = Logger()
packs = load_packs()
store = Store.from_env(os.environ)
_steps: FeeSteps | None = None
_cards: CardChecks | None = None


class FeeRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    action: Literal["settle_fee", "retry_fee", "release_fee", "waive_fee", "check_card"]
    appointment_id: str = Field(min_length=1)
    booking_version: int | None = None
    revision: int = 0
    reason: str | None = None
    attempt: int | None = None
    purpose: str | None = None
    admin_id: str | None = None


def steps() -> FeeSteps:
    """Built on first use, so the key is fetched inside an invocation (and its retry), not at import."""
    global _steps, _cards
    if _steps is None:
        api_key = parameters.get_parameter(os.environ["STRIPE_API_KEY_PARAMETER"], decrypt=True, max_age=300)
        payments = StripePayments.from_settings(api_key, os.environ.get("STRIPE_API_BASE") or None)
        lifecycle = LifecycleService(store, packs,
                                     booking_site=EventBridgeBookingSite(boto3.client("events"),
                                                                         os.environ["BOOKING_EVENTS_BUS"]))
        _steps = FeeSteps(store, SettlementService(store, payments, packs), lifecycle)
        _cards = CardChecks(store, payments, packs, lifecycle)
    return _steps


def card_checks() -> CardChecks:
    steps()
    assert _cards is not None
    return _cards


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    request = FeeRequest.model_validate(event)
    logger.append_keys(appointment_id=request.appointment_id, action=request.action, reason=request.reason)
    now = datetime.now(UTC)
    if request.action == "settle_fee":
        result = steps().settle(request.appointment_id, request.reason or "", now)
    elif request.action == "release_fee":
        result = steps().release(request.appointment_id, request.reason or "", now)
    elif request.action == "check_card":
        result = card_checks().check(request.appointment_id, request.booking_version or 0, request.revision, now)
    elif request.action == "retry_fee":
        result = steps().retry(request.appointment_id, request.reason or "", request.attempt or 2, now)
    else:
        result = steps().waive(request.appointment_id, request.purpose or "", request.admin_id or "", now)
    return result.model_dump(mode="json")
