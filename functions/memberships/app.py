"""MembershipDrafts tasks: find the memberships with something due today, and take each one's due step.

The finder reads the by_due_day index of one time zone (its daily schedule) or names one membership (a sign-up
or an unfreeze whose dues are due at once). The step drafts the dues ledger first through Stripe, or lets the
calendar end what has lapsed; it is safe to repeat, so the Map may retry or be redriven.
"""

from datetime import UTC, datetime
from typing import Annotated, Literal

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from medspa.adapters.factory import adapters_for
from medspa.adapters.payments import StripePayments
from medspa.adapters.settings import MembershipsSettings
from medspa.policy.loader import PolicyPacks, load_packs
from medspa.services.memberships import MembershipService
from medspa.services.settlement import SettlementService

logger = Logger()
packs = load_packs()
settings = MembershipsSettings()
adapters = adapters_for(settings)
_service: MembershipService | None = None


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class FindDue(_Request):
    action: Literal["find_due"]
    time_zone: str | None = Field(None, min_length=1)
    membership_id: str | None = Field(None, min_length=3)


class TakeDueStep(_Request):
    action: Literal["take_due_step"]
    membership_id: str = Field(min_length=3)


Request: TypeAdapter[FindDue | TakeDueStep] = TypeAdapter(
    Annotated[FindDue | TakeDueStep, Field(discriminator="action")])


def service() -> MembershipService:
    """Built on first use, so the Stripe key is fetched inside an invocation (and its retry), not at import."""
    global _service
    if _service is None:
        api_key = parameters.get_parameter(settings.stripe_api_key_parameter, decrypt=True, max_age=300)
        payments = StripePayments.from_settings(api_key, settings.stripe_api_base)
        store = adapters.store
        _service = MembershipService(store, store.memberships, PolicyPacks.of(packs),
                                     SettlementService(store, payments, packs), adapters.booking_site)
    return _service


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    request = Request.validate_python(event)
    now = datetime.now(UTC)
    if isinstance(request, FindDue):
        if request.membership_id is not None:
            return {"membership_ids": [request.membership_id]}
        if request.time_zone is None:
            raise ValueError("find_due needs time_zone or membership_id")
        due = service().due(request.time_zone, now)
        logger.info("memberships due", extra={"time_zone": request.time_zone, "count": len(due)})
        return {"membership_ids": due}
    logger.append_keys(membership_id=request.membership_id)
    return service().take_due_step(request.membership_id, now).model_dump(mode="json")
