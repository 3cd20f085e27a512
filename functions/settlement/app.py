"""Step Functions task of the AppointmentLifecycle for money: settle, retry, release or waive a fee, and check
the card on file before a visit. A step of the lifecycle's loop answers with the plan that follows it
(``LifecycleService.plan``), so the execution goes straight to its next wait; the waiver's run, outside the
loop, gets the step's result.

The only function that moves money through Stripe; it reads the key from SSM Parameter Store (cached five
minutes). The privacy function reads it too, only to delete an erased client's Stripe customer. The card
check is here rather than in a function of its own because it needs that same key and nothing else.
"""

from datetime import UTC, datetime
from typing import Annotated, Literal

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from medspa.adapters.factory import adapters_for
from medspa.adapters.settings import SettlementSettings
from medspa.policy.loader import load_packs
from medspa.policy.schema import FeeReason
from medspa.services.card_check import CardChecks
from medspa.services.fees import FeeSteps
from medspa.services.lifecycle import LifecycleService, StepRequest
from medspa.services.settlement import SettlementService

logger = Logger()
packs = load_packs()
settings = SettlementSettings()
store = adapters_for(settings).store
_steps: FeeSteps | None = None
_cards: CardChecks | None = None
_lifecycle: LifecycleService | None = None


class _Request(BaseModel):
    """A state-machine payload; a missing or malformed field fails the task with a ``ValidationError`` the
    execution shows, never a default that would charge the wrong fee or attempt."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    appointment_id: str = Field(min_length=1)


class _LoopStep(_Request):
    """A step of the lifecycle's loop: it names the run, so the plan that follows is that run's."""

    booking_version: int = Field(ge=0)
    revision: int = Field(0, ge=0)
    continuation: int = Field(0, ge=0)
    execution_started_at: AwareDatetime | None = None

    def run(self) -> StepRequest:
        return StepRequest(appointment_id=self.appointment_id, booking_version=self.booking_version,
                           revision=self.revision, continuation=self.continuation,
                           execution_started_at=self.execution_started_at)


class SettleFee(_LoopStep):
    action: Literal["settle_fee"]
    reason: FeeReason


class ReleaseFee(_LoopStep):
    action: Literal["release_fee"]
    reason: FeeReason


class RetryFee(_LoopStep):
    action: Literal["retry_fee"]
    reason: FeeReason
    attempt: int = Field(ge=2, description="Attempt 1 is the settlement itself")


class WaiveFee(_Request):
    action: Literal["waive_fee"]
    purpose: str = Field(min_length=1)
    admin_id: str = Field(min_length=1)


class CheckCard(_LoopStep):
    action: Literal["check_card"]


FeeRequest: TypeAdapter[SettleFee | ReleaseFee | RetryFee | WaiveFee | CheckCard] = TypeAdapter(
    Annotated[SettleFee | ReleaseFee | RetryFee | WaiveFee | CheckCard, Field(discriminator="action")],
    config=ConfigDict(defer_build=True))  # built by the first task, not at cold start


def steps() -> FeeSteps:
    """Built on first use, so the key is fetched inside an invocation (and its retry), not at import."""
    global _steps, _cards, _lifecycle
    if _steps is None:
        payments = adapters_for(settings).payments
        _lifecycle = LifecycleService(store, packs, booking_site=adapters_for(settings).booking_site,
                                      metrics=adapters_for(settings).metrics)
        _steps = FeeSteps(store, SettlementService(store, payments, packs, adapters_for(settings).metrics), _lifecycle)
        _cards = CardChecks(store, payments, packs, _lifecycle)
    return _steps


def card_checks() -> CardChecks:
    steps()
    assert _cards is not None
    return _cards


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    request = FeeRequest.validate_python(event)
    logger.append_keys(appointment_id=request.appointment_id, action=request.action,
                       reason=getattr(request, "reason", None))
    now = datetime.now(UTC)
    if isinstance(request, WaiveFee):
        return steps().waive(request.appointment_id, request.purpose, request.admin_id, now).model_dump(mode="json")
    if isinstance(request, SettleFee):
        result = steps().settle(request.appointment_id, request.reason, now)
    elif isinstance(request, ReleaseFee):
        result = steps().release(request.appointment_id, request.reason, now)
    elif isinstance(request, RetryFee):
        result = steps().retry(request.appointment_id, request.reason, request.attempt, now)
    else:
        result = card_checks().check(request.appointment_id, request.booking_version, request.revision, now)
    assert _lifecycle is not None
    plan = _lifecycle.plan(request.run(), now)
    return plan.model_copy(update={"did": [result]}).model_dump(mode="json")
