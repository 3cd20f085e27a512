"""The spa API (HTTP API, Powertools event handler): what a booking site and a front desk ask, and two admin
actions. Every route is under ``/spas/{spa_id}``, and the ``Authorization: Bearer`` token must be that spa's
(``medspa.domain.api_token``): another spa's token gets 403, none or a forged one 401, before any route runs.
What each answer means: ``medspa.services.spa_desk``.

GET  /spas/{spa_id}/clients/{client_id}                              strikes, prepay flag, balances, card on file
GET  /spas/{spa_id}/booking-requirements?location_id=&party_size=&client_id=
GET  /spas/{spa_id}/appointments/{appointment_id}/cancellation-quote?kind=cancel|reschedule
GET  /spas/{spa_id}/appointments/{appointment_id}/timeline
POST /spas/{spa_id}/appointments/{appointment_id}/fees/{purpose}/waive    {"admin_id": ...}
POST /spas/{spa_id}/clients/{client_id}/prepay-requirement/clear         {"admin_id": ...}
"""

from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medspa.adapters.factory import adapters_for
from medspa.adapters.http_routes import DeferredHttpResolver
from medspa.adapters.settings import SpaApiSettings
from medspa.domain.api_token import InvalidApiToken, spa_of_token
from medspa.services.spa_desk_errors import NotFound, NotOpen, NotWaivable

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
    from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

    from medspa.services.spa_desk import SpaDesk

logger = Logger()
app = DeferredHttpResolver()
settings = SpaApiSettings()
adapters = adapters_for(settings)


@cache
def desk() -> "SpaDesk":
    """Wired on the first request, not at cold start: the store, the packs and the desk's models load then."""
    from medspa.policy.loader import load_packs
    from medspa.services.spa_desk import SpaDesk

    return SpaDesk(adapters.store, load_packs(), adapters.executions)


class AdminAction(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    admin_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _json(status: int, body: Any) -> "Response":
    from aws_lambda_powertools.event_handler import Response, content_types

    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body,
                    headers={"Cache-Control": "no-store"})


def _answer(model: BaseModel) -> "Response":
    return _json(200, model.model_dump(mode="json"))


def _admin_action() -> AdminAction:
    from aws_lambda_powertools.event_handler.exceptions import BadRequestError

    try:
        return AdminAction.model_validate_json(app.current_event.decoded_body or "{}")
    except ValidationError as error:
        fields = ", ".join(".".join(map(str, e["loc"])) or "body" for e in error.errors())
        raise BadRequestError(f"the body must be {{\"admin_id\": ...}}: {fields}") from None


@app.get("/spas/<spa_id>/clients/<client_id>")
def client_standing(spa_id: str, client_id: str) -> "Response":
    return _answer(desk().standing(spa_id, client_id))


@app.get("/spas/<spa_id>/booking-requirements")
def booking_requirements(spa_id: str) -> "Response":
    from aws_lambda_powertools.event_handler.exceptions import BadRequestError

    query = app.current_event
    location = query.get_query_string_value("location_id")
    party = query.get_query_string_value("party_size", "1") or "1"
    if not location:
        raise BadRequestError("location_id is required")
    if not party.isdigit() or not 1 <= int(party) <= 50:
        raise BadRequestError("party_size must be a whole number from 1 to 50")
    return _answer(desk().booking_requirements(spa_id, query.get_query_string_value("client_id"), location,
                                             int(party)))


@app.get("/spas/<spa_id>/appointments/<appointment_id>/cancellation-quote")
def cancellation_quote(spa_id: str, appointment_id: str) -> "Response":
    from aws_lambda_powertools.event_handler.exceptions import BadRequestError

    kind = app.current_event.get_query_string_value("kind", "cancel")
    if kind not in ("cancel", "reschedule"):
        raise BadRequestError("kind must be cancel or reschedule")
    chosen: Literal["cancel", "reschedule"] = "cancel" if kind == "cancel" else "reschedule"
    return _answer(desk().cancellation_quote(spa_id, appointment_id, chosen, datetime.now(UTC)))


@app.get("/spas/<spa_id>/appointments/<appointment_id>/timeline")
def timeline(spa_id: str, appointment_id: str) -> "Response":
    return _answer(desk().timeline(spa_id, appointment_id))


@app.post("/spas/<spa_id>/appointments/<appointment_id>/fees/<purpose>/waive")
def waive_fee(spa_id: str, appointment_id: str, purpose: str) -> "Response":
    from aws_lambda_powertools.event_handler.exceptions import BadRequestError

    from medspa.ports.executions import ExecutionNameTaken

    action = _admin_action()
    try:
        started = desk().waive_fee(spa_id, appointment_id, purpose, action.admin_id)
    except NotWaivable as error:
        raise BadRequestError(str(error)) from None
    except ExecutionNameTaken:
        return _json(409, {"message": "this fee's waiver was already started by another admin"})
    logger.info("fee waiver started", extra={"spa_id": spa_id, "purpose": purpose})
    return _json(202, {"waiver": started.name, "already_running": started.already_running})


@app.post("/spas/<spa_id>/clients/<client_id>/prepay-requirement/clear")
def clear_prepay(spa_id: str, client_id: str) -> "Response":
    action = _admin_action()
    standing = desk().clear_prepay(spa_id, client_id, action.admin_id, datetime.now(UTC))
    logger.info("prepay requirement cleared", extra={"spa_id": spa_id})
    return _answer(standing)


@app.exception_handler(NotFound)
def not_found(error: NotFound) -> "Response":
    return _json(404, {"message": str(error)})


@app.exception_handler(NotOpen)
def not_open(error: NotOpen) -> "Response":
    return _json(409, {"message": str(error)})


def authorised(app: "APIGatewayHttpResolver", next_middleware: "NextMiddleware") -> "Response":
    """The token's spa must be the path's, before any route runs."""
    event = app.current_event
    try:
        spa = spa_of_token(adapters.spa_api_key(), event.headers.get("authorization"))
    except InvalidApiToken as error:
        logger.warning("spa api refused", extra={"reason": "token"})
        return _json(401, {"message": str(error)})
    if event.path.split("/")[2:3] != [spa]:
        logger.warning("spa api refused", extra={"reason": "another spa's token", "spa_id": spa})
        return _json(403, {"message": "this token speaks for another spa"})
    return next_middleware(app)


app.use(middlewares=[authorised])


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
