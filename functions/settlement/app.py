"""Step Functions task of the AppointmentLifecycle for money: settle, retry, release or waive a fee, record one
paid later, and check the card on file before a visit. A step of the lifecycle's loop answers with the plan that
follows it (``LifecycleService.plan``), so the execution goes straight to its next wait; the waiver's and the
paid-later runs, outside the loop, get the step's result.

The only function that moves money through Stripe; it reads the key from SSM Parameter Store (cached five
minutes). The privacy function reads it too, only to delete an erased client's Stripe customer. The card
check is here rather than in a function of its own because it needs that same key and nothing else.
"""

from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from medspa.adapters.factory import adapters_for
from medspa.adapters.settings import SettlementSettings

if TYPE_CHECKING:
    from medspa.services.card_check import CardChecks
    from medspa.services.fees import FeeSteps
    from medspa.services.lifecycle import LifecycleService

logger = Logger()
settings = SettlementSettings()


@cache
def services() -> "tuple[FeeSteps, CardChecks, LifecycleService]":
    """Wired on the first task, so the key is fetched inside an invocation (and its retry), not at import,
    and a cold start pays for neither the services nor ``stripe``."""
    from medspa.policy.loader import load_packs
    from medspa.services.card_check import CardChecks
    from medspa.services.fees import FeeSteps
    from medspa.services.lifecycle import LifecycleService
    from medspa.services.settlement import SettlementService

    adapters = adapters_for(settings)
    packs = load_packs()
    store = adapters.store
    payments = adapters.payments
    lifecycle = LifecycleService(store, packs, booking_site=adapters.booking_site, metrics=adapters.metrics)
    steps = FeeSteps(store, SettlementService(store, payments, packs, adapters.metrics), lifecycle)
    return steps, CardChecks(store, payments, packs, lifecycle), lifecycle


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    from medspa.services.fees import FeeRequest, RecordPaidFee, ReleaseFee, RetryFee, SettleFee, WaiveFee

    request = FeeRequest.validate_python(event)
    logger.append_keys(appointment_id=request.appointment_id, action=request.action,
                       reason=getattr(request, "reason", None))
    now = datetime.now(UTC)
    steps, cards, lifecycle = services()
    if isinstance(request, WaiveFee):
        return steps.waive(request.appointment_id, request.purpose, request.admin_id, now).model_dump(mode="json")
    if isinstance(request, RecordPaidFee):
        return steps.record_paid_later(request.appointment_id, request.purpose, request.attempt,
                                       now).model_dump(mode="json")
    if isinstance(request, SettleFee):
        result = steps.settle(request.appointment_id, request.reason, now)
    elif isinstance(request, ReleaseFee):
        result = steps.release(request.appointment_id, request.reason, now)
    elif isinstance(request, RetryFee):
        result = steps.retry(request.appointment_id, request.reason, request.attempt, now)
    else:
        result = cards.check(request.appointment_id, request.booking_version, request.revision, now)
    plan = lifecycle.plan(request.run(), now)
    return plan.model_copy(update={"did": [result]}).model_dump(mode="json")
