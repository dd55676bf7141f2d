"""The GraphQL schema, assembled from the domains' types, and its router at `/graphql`.

Safe to expose: queries deeper than 10 levels, with more than 15 aliases or more than 5,000
tokens are refused before they run, pages hold at most 100 nodes, and introspection can be
turned off (QB_GRAPHQL_INTROSPECTION=false). Parsed and validated documents are cached, so a
repeated query costs neither parsing nor validation again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated, Any

import strawberry
from fastapi import Depends
from graphql import GraphQLError
from graphql.validation import ASTValidationRule, NoSchemaIntrospectionCustomRule
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ParserCache,
    ValidationCache,
)
from strawberry.extensions.max_aliases import create_validator as max_aliases_rule
from strawberry.extensions.query_depth_limiter import create_validator as max_depth_rule
from strawberry.fastapi import GraphQLRouter
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext
from strawberry.types.unset import UNSET, UnsetType

from service.accounts import graphql as accounts
from service.alignment import graphql as alignment
from service.config import Settings
from service.forecasts import graphql as forecasts
from service.graphql import graphiql
from service.graphql.context import Context
from service.graphql.errors import process_errors
from service.graphql.subscriptions import Subscription
from service.lifecycle import graphql as lifecycle
from service.plans import graphql as plans
from service.playbooks import graphql as playbooks
from service.tasks import graphql as tasks
from service.webhooks import graphql as webhooks
from service.workspaces import graphql as workspaces

MAX_DEPTH = 10
MAX_ALIASES = 15
MAX_TOKENS = 5_000
CACHE_SIZE = 256

Query = merge_types(
    "Query",
    (
        workspaces.Query,
        lifecycle.Query,
        accounts.Query,
        tasks.Query,
        playbooks.Query,
        webhooks.Query,
        forecasts.Query,
        alignment.Query,
    ),
)
Mutation = merge_types(
    "Mutation",
    (
        accounts.Mutation,
        lifecycle.Mutation,
        tasks.Mutation,
        plans.Mutation,
        playbooks.Mutation,
        alignment.Mutation,
    ),
)

# Rule classes are made once: the validation cache keys on them.
_LIMITS = (max_depth_rule(MAX_DEPTH, None, None), max_aliases_rule(MAX_ALIASES))
_NO_INTROSPECTION = (NoSchemaIntrospectionCustomRule,)


class Schema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Messages and codes for clients; unexpected failures are logged there, not shown.
        process_errors(errors, execution_context)


def build_schema(introspection: bool = True) -> Schema:
    rules: list[type[ASTValidationRule]] = [*_LIMITS]
    if not introspection:
        rules.extend(_NO_INTROSPECTION)
    return Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[
            partial(MaxTokensLimiter, max_token_count=MAX_TOKENS),
            partial(AddValidationRules, rules),
            partial(ParserCache, maxsize=CACHE_SIZE),
            partial(ValidationCache, maxsize=CACHE_SIZE),
        ],
    )


def schema_sdl() -> str:
    """The schema in SDL, as `make schemas` writes it to schemas/schema.graphql."""
    return build_schema().as_str() + "\n"


async def _request_session(connection: HTTPConnection) -> AsyncIterator[AsyncSession | None]:
    """An HTTP request's session, committed with the response, as REST routes get it.

    A websocket gets none: it stays open for hours, and its subscriptions read each notice
    in a short session of their own.
    """
    if connection.scope["type"] == "websocket":
        yield None
        return
    async with connection.state.sessionmaker() as session, session.begin():
        yield session


RequestSession = Annotated[AsyncSession | None, Depends(_request_session, scope="function")]


class _Router(GraphQLRouter[Context, None]):
    @property
    def graphql_ide_html(self) -> str:
        # GraphiQL from this app's own files, so it works offline (service/graphql/graphiql.py).
        return graphiql.page()

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        try:
            return await super().run(request, context, root_value)
        finally:
            # The request has its answer (a websocket: it closed). GraphQL-core's execution
            # context is a reference cycle holding this context: see Context.release.
            if isinstance(context, Context):
                context.release()

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        # Refuses a missing or bad key with 4403 before any subscription starts.
        await context.accept_connection()
        return UNSET


def graphql_router(settings: Settings) -> GraphQLRouter[Any, Any]:
    async def context(connection: HTTPConnection, session: RequestSession) -> Context:
        return Context(
            session,
            settings,
            sessionmaker=connection.state.sessionmaker,
            broadcaster=connection.state.live,
        )

    return _Router(
        build_schema(settings.graphql_introspection),
        path="/graphql",
        context_getter=context,
        graphql_ide="graphiql" if settings.graphql_introspection else None,
        # Subscriptions speak the current protocol only; the legacy `graphql-ws` is off.
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        include_in_schema=False,
    )
