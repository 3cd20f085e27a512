"""MembershipDrafts tasks: find the memberships and prepaid courses with something due today, and take each one's
due step (a membership's draft, a course's expiry notice or expiry). Members and course clients are messaged
(a declined draft, what expires in a week) through the same NotificationService the lifecycle uses.

The finder reads the by_due_day index of one time zone (its daily schedule) or names one membership (a sign-up
or an unfreeze whose dues are due at once). The step drafts the dues ledger first through Stripe, or lets the
calendar end what has lapsed; it is safe to repeat, so the Map may retry or be redriven.
"""

from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Annotated, Literal

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from medspa.adapters.factory import adapters_for
from medspa.adapters.settings import MembershipsSettings

if TYPE_CHECKING:
    from medspa.services.courses import CourseService
    from medspa.services.memberships import MembershipService
    from medspa.services.notifications import NotificationService

logger = Logger()
settings = MembershipsSettings()


@cache
def notifications() -> "NotificationService":
    """Wired on first use, not at cold start: the templates, the packs and the store load then."""
    from medspa.messages.templates import load_templates
    from medspa.policy.loader import load_packs
    from medspa.services.notifications import NotificationService
    from medspa.services.unsubscribe import EmailUnsubscribe

    adapters = adapters_for(settings)
    packs = load_packs()
    return NotificationService(
        None,
        load_templates(),
        packs,
        consent=adapters.store.consent,
        unsubscribe=EmailUnsubscribe(adapters.store.consent, adapters.signing_key, settings.unsubscribe_url,
                                     {p.spa.id: p.spa.name for p in packs.values()}),
        outbox=adapters.outbox,
    )


@cache
def courses() -> "CourseService":
    from medspa.policy.loader import PolicyPacks, load_packs
    from medspa.services.courses import CourseService

    adapters = adapters_for(settings)
    return CourseService(adapters.store, PolicyPacks.of(load_packs()), adapters.booking_site, notifications())


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)


class FindDue(_Request):
    action: Literal["find_due"]
    time_zone: str | None = Field(None, min_length=1)
    membership_id: str | None = Field(None, min_length=3)


class TakeDueStep(_Request):
    action: Literal["take_due_step"]
    membership_id: str = Field(min_length=3)


class TakeCourseSteps(_Request):
    action: Literal["take_course_steps"]
    course_ids: list[str]


Request: TypeAdapter[FindDue | TakeDueStep | TakeCourseSteps] = TypeAdapter(
    Annotated[FindDue | TakeDueStep | TakeCourseSteps, Field(discriminator="action")],
    config=ConfigDict(defer_build=True))  # built by the first task, not at cold start


@cache
def service() -> "MembershipService":
    """Built on first use, so the Stripe key is fetched inside an invocation (and its retry), not at import."""
    from medspa.policy.loader import PolicyPacks, load_packs
    from medspa.services.memberships import MembershipService
    from medspa.services.settlement import SettlementService

    adapters = adapters_for(settings)
    packs = load_packs()
    store = adapters.store
    return MembershipService(store, store.memberships, PolicyPacks.of(packs),
                             SettlementService(store, adapters.payments, packs, adapters.metrics),
                             adapters.booking_site, notifications(), adapters.metrics)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    request = Request.validate_python(event)
    now = datetime.now(UTC)
    if isinstance(request, FindDue):
        if request.membership_id is not None:
            return {"membership_ids": [request.membership_id], "course_ids": [], "anything_due": True}
        if request.time_zone is None:
            raise ValueError("find_due needs time_zone or membership_id")
        due, courses_due = service().due(request.time_zone, now), courses().due(request.time_zone, now)
        logger.info("due today", extra={"time_zone": request.time_zone, "memberships": len(due),
                                        "courses": len(courses_due)})
        return {"membership_ids": due, "course_ids": courses_due, "anything_due": bool(due or courses_due)}
    if isinstance(request, TakeCourseSteps):
        return {"outcomes": {course_id: courses().take_due_step(course_id, now) for course_id in request.course_ids}}
    logger.append_keys(membership_id=request.membership_id)
    return service().take_due_step(request.membership_id, now).model_dump(mode="json")
