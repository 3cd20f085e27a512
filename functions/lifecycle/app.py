"""Step Functions task of the AppointmentLifecycle: take the step that is due and those due with it, then plan."""

from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from medspa.adapters.factory import adapters_for
from medspa.adapters.settings import LifecycleSettings

if TYPE_CHECKING:
    from medspa.services.lifecycle import LifecycleService

logger = Logger()
settings = LifecycleSettings()


@cache
def service() -> "LifecycleService":
    """Wired on the first invocation, so a cold start pays only for the settings and the logger."""
    from medspa.messages.templates import load_templates
    from medspa.policy.loader import load_packs
    from medspa.services.confirm_link import EmailConfirmation
    from medspa.services.lifecycle import LifecycleService
    from medspa.services.notifications import NotificationService
    from medspa.services.unsubscribe import EmailUnsubscribe

    adapters = adapters_for(settings)
    packs = load_packs()
    store = adapters.store
    return LifecycleService(
        store,
        packs,
        NotificationService(
            None,
            load_templates(),
            packs,
            consent=store.consent,
            unsubscribe=EmailUnsubscribe(store.consent, adapters.signing_key, settings.unsubscribe_url,
                                         {p.spa.id: p.spa.name for p in packs.values()}),
            # The same signing key: the signed text names the link's purpose, so neither link passes for the other.
            confirm_links=EmailConfirmation(store, packs, adapters.signing_key, settings.confirm_url),
            outbox=adapters.outbox,
        ),
        adapters.booking_site,
        adapters.executions,
        adapters.metrics,
    )


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    from medspa.services.lifecycle import StepRequest

    request = StepRequest.model_validate(event)
    logger.append_keys(appointment_id=request.appointment_id, booking_version=request.booking_version,
                       action=request.action)
    now = datetime.now(UTC)
    lifecycle = service()
    result = lifecycle.take(request, now) if request.in_loop else lifecycle.act(request, now)
    return result.model_dump(mode="json")
