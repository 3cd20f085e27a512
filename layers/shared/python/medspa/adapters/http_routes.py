"""Powertools' HTTP API resolver, built by a function's first request instead of at its cold start.

Importing ``aws_lambda_powertools.event_handler`` costs about 65 ms (every resolver, asyncio, the event data
classes): alone, more than the rest of an HTTP handler's cold import, and enough to miss issue 10's target of
1.25x a bare ``import boto3``. A handler declares its routes, exception handlers and middlewares here, at import,
as it would on the resolver; they are recorded and replayed in the same order on a real ``APIGatewayHttpResolver``
by the first ``resolve``, so the handler still reads as decorators plus one call and the resolver behaves as if
they had been declared on it directly. A handler imports Powertools' ``Response`` and its errors inside the
functions that use them, which only run once the resolver exists.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
    from aws_lambda_powertools.utilities.typing import LambdaContext

Handler = TypeVar("Handler", bound=Callable[..., Any])


class DeferredHttpResolver:
    """The declarations of an ``APIGatewayHttpResolver``, applied to one built on first use."""

    def __init__(self) -> None:
        self._declarations: list[Callable[[APIGatewayHttpResolver], object]] = []
        self._resolver: APIGatewayHttpResolver | None = None

    def get(self, rule: str, **options: Any) -> Callable[[Handler], Handler]:
        return self._route("get", rule, options)

    def post(self, rule: str, **options: Any) -> Callable[[Handler], Handler]:
        return self._route("post", rule, options)

    def exception_handler(self, error: type[Exception]) -> Callable[[Handler], Handler]:
        def declare(handler: Handler) -> Handler:
            self._declare(lambda resolver: resolver.exception_handler(error)(handler))
            return handler

        return declare

    def use(self, middlewares: list[Callable[..., Any]]) -> None:
        self._declare(lambda resolver: resolver.use(middlewares=middlewares))

    @property
    def resolver(self) -> APIGatewayHttpResolver:
        if self._resolver is None:
            from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

            resolver = APIGatewayHttpResolver()
            for declaration in self._declarations:
                declaration(resolver)
            self._resolver = resolver
        return self._resolver

    @property
    def current_event(self) -> APIGatewayProxyEventV2:
        return self.resolver.current_event

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        return self.resolver.resolve(event, context)

    def _route(self, method: str, rule: str, options: dict[str, Any]) -> Callable[[Handler], Handler]:
        def declare(handler: Handler) -> Handler:
            self._declare(lambda resolver: getattr(resolver, method)(rule, **options)(handler))
            return handler

        return declare

    def _declare(self, declaration: Callable[[APIGatewayHttpResolver], object]) -> None:
        if self._resolver is not None:  # it would never reach the resolver already built
            raise RuntimeError("routes are declared at import, before the first request")
        self._declarations.append(declaration)
