"""The system's HTTP API (API Gateway HTTP API, Powertools event handler): email unsubscribe and the
confirm link of a confirmation request email.

``GET /unsubscribe?token=...`` shows a confirmation page with one button; ``POST /unsubscribe?token=...``
(the button, or a mail provider's one-click ``List-Unsubscribe=One-Click``) records the opt-out. A link
this system did not issue gets 400 with the reason and without the token. Why GET never unsubscribes,
and what the token is: medspa.services.unsubscribe and medspa.domain.consent. Routes are public: the
signed token is the authorisation.

``GET /confirm?token=...`` shows the visit (spa, local time) with a Confirm button; ``POST`` records the
client's confirmation and tells the booking site (medspa.services.confirm_link says why GET never confirms).
"""

from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from medspa.adapters.factory import adapters_for
from medspa.adapters.http_routes import DeferredHttpResolver
from medspa.adapters.settings import HttpApiSettings
from medspa.domain.confirm_link import InvalidConfirmLink
from medspa.domain.consent import InvalidUnsubscribeLink

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import Response

    from medspa.services.confirm_link import EmailConfirmation
    from medspa.services.unsubscribe import EmailUnsubscribe

logger = Logger()
app = DeferredHttpResolver()
settings = HttpApiSettings()
# Links come back with the token the page may not repeat anywhere else: no caching, no referrer, no framing.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
}


@cache
def links() -> "tuple[EmailUnsubscribe, EmailConfirmation]":
    """Wired on the first request, not at cold start: the store, the packs and the pages load then."""
    from medspa.policy.loader import load_packs
    from medspa.services.confirm_link import EmailConfirmation
    from medspa.services.unsubscribe import EmailUnsubscribe

    adapters = adapters_for(settings)
    store, packs = adapters.store, load_packs()
    return (EmailUnsubscribe(store.consent, adapters.signing_key, None, {p.spa.id: p.spa.name for p in packs.values()}),
            EmailConfirmation(store, packs, adapters.signing_key, None, adapters.booking_site))


def _html(status: int, body: str) -> "Response":
    from aws_lambda_powertools.event_handler import Response

    return Response(status_code=status, content_type="text/html; charset=utf-8", body=body, headers=PAGE_HEADERS)


def _refused(error: InvalidUnsubscribeLink) -> "Response":
    from medspa.messages.unsubscribe_page import refused_page

    logger.info("unsubscribe link refused", extra={"reason": str(error)})
    return _html(400, refused_page(str(error)))


@app.get("/unsubscribe")
def unsubscribe_page() -> "Response":
    from medspa.messages.unsubscribe_page import confirm_page

    token = app.current_event.get_query_string_value("token")
    try:
        target = links()[0].read(token)
    except InvalidUnsubscribeLink as error:
        return _refused(error)
    logger.info("unsubscribe page shown", extra={"spa_id": target.spa_id})
    return _html(200, confirm_page(target.spa_name, target.masked_email, token or ""))


@app.post("/unsubscribe")
def unsubscribe_now() -> "Response":
    from medspa.messages.unsubscribe_page import done_page

    try:
        target = links()[0].unsubscribe(app.current_event.get_query_string_value("token"), datetime.now(UTC))
    except InvalidUnsubscribeLink as error:
        return _refused(error)
    logger.info("unsubscribed by link", extra={"spa_id": target.spa_id})
    return _html(200, done_page(target.spa_name, target.masked_email))


def _confirm_refused(error: InvalidConfirmLink) -> "Response":
    from medspa.messages.confirm_page import confirm_refused_page

    logger.info("confirm link refused", extra={"reason": str(error)})
    return _html(400, confirm_refused_page(str(error)))


@app.get("/confirm")
def confirm_visit_form() -> "Response":
    from medspa.messages.confirm_page import confirm_visit_page, visit_closed_page, visit_confirmed_page

    token = app.current_event.get_query_string_value("token")
    try:
        target = links()[1].read(token, datetime.now(UTC))
    except InvalidConfirmLink as error:
        return _confirm_refused(error)
    logger.info("confirm page shown", extra={"spa_id": target.spa_id, "state": target.state})
    if target.state == "closed":
        return _html(200, visit_closed_page(target.spa_name, target.visit_time))
    if target.state == "confirmed":
        return _html(200, visit_confirmed_page(target.spa_name, target.visit_time))
    return _html(200, confirm_visit_page(target.spa_name, target.visit_time, token or ""))


@app.post("/confirm")
def confirm_visit() -> "Response":
    from medspa.messages.confirm_page import visit_closed_page, visit_confirmed_page

    try:
        target = links()[1].confirm(app.current_event.get_query_string_value("token"), datetime.now(UTC))
    except InvalidConfirmLink as error:
        return _confirm_refused(error)
    logger.info("visit confirmed by link", extra={"spa_id": target.spa_id, "state": target.state})
    if target.state == "closed":
        return _html(200, visit_closed_page(target.spa_name, target.visit_time))
    return _html(200, visit_confirmed_page(target.spa_name, target.visit_time))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
