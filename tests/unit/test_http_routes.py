"""The deferred resolver answers every request as a resolver the same routes were declared on directly would,
builds that resolver once, on the first request, and refuses a route declared after it, which would be lost.

That importing an HTTP handler does not import Powertools' event handler is checked per handler, in a fresh
interpreter, by ``tests/integration/test_handler_wiring.py``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import BadRequestError

from medspa.adapters.http_routes import DeferredHttpResolver


class Gone(Exception):
    pass


def declare(app: Any, calls: list[str]) -> None:
    """One set of declarations, as a handler module makes them, for either kind of resolver."""

    @app.get("/items/<item_id>")
    def item(item_id: str) -> Response:
        if item_id == "gone":
            raise Gone(item_id)
        if item_id == "bad":
            raise BadRequestError("not an item")
        return Response(200, "application/json", json.dumps({"item": item_id, "q": app.current_event.get_query_string_value("q")}))

    @app.post("/items")
    def create() -> Response:
        return Response(201, "text/plain", app.current_event.decoded_body or "")

    @app.exception_handler(Gone)
    def gone(error: Gone) -> Response:
        return Response(410, "text/plain", f"{error} is gone")

    def first(resolver: APIGatewayHttpResolver, next_middleware: Any) -> Response:
        calls.append("first")
        if resolver.current_event.headers.get("x-stop"):
            return Response(401, "text/plain", "stopped")
        return next_middleware(resolver)

    def second(resolver: APIGatewayHttpResolver, next_middleware: Any) -> Response:
        calls.append("second")
        return next_middleware(resolver)

    app.use(middlewares=[first, second])


def event(method: str, path: str, query: str = "", body: str | None = None, **headers: str) -> dict[str, Any]:
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
        "headers": {"host": "api.example.com", **headers},
        **({"queryStringParameters": dict(p.split("=") for p in query.split("&"))} if query else {}),
        "requestContext": {"http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
                           "requestId": "r", "routeKey": "$default", "stage": "$default"},
        **({"body": body} if body is not None else {}), "isBase64Encoded": False,
    }


REQUESTS = [
    event("GET", "/items/7", "q=x"),
    event("GET", "/items/gone"),
    event("GET", "/items/bad"),
    event("POST", "/items", body="hello"),
    event("DELETE", "/items"),
    event("GET", "/nowhere"),
    event("GET", "/items/7", **{"x-stop": "1"}),
]


def test_every_request_gets_the_answer_a_directly_declared_resolver_gives() -> None:
    direct_calls: list[str] = []
    deferred_calls: list[str] = []
    direct = APIGatewayHttpResolver()
    deferred = DeferredHttpResolver()
    declare(direct, direct_calls)
    declare(deferred, deferred_calls)
    for request in REQUESTS:
        assert deferred.resolve(request, None) == direct.resolve(request, None), request["rawPath"]  # type: ignore[arg-type]
    assert deferred_calls == direct_calls
    assert direct_calls[:2] == ["first", "second"]


def test_the_resolver_is_built_by_the_first_request_and_only_once() -> None:
    deferred = DeferredHttpResolver()
    declare(deferred, [])
    assert deferred._resolver is None
    deferred.resolve(REQUESTS[0], None)  # type: ignore[arg-type]
    built = deferred.resolver
    deferred.resolve(REQUESTS[3], None)  # type: ignore[arg-type]
    assert deferred.resolver is built
    assert deferred.current_event.raw_path == "/items"


def test_a_route_declared_after_the_first_request_is_refused_not_lost() -> None:
    deferred = DeferredHttpResolver()
    declare(deferred, [])
    deferred.resolve(REQUESTS[0], None)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="before the first request"):
        deferred.get("/late")(lambda: None)
