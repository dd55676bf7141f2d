"""The GraphQL schema, assembled from the domains' types, and its router at `/graphql`.

Safe to expose: queries deeper than 10 levels, with more than 15 aliases or more than 5,000
tokens are refused before they run, pages hold at most 100 nodes, and introspection can be
turned off (QB_GRAPHQL_INTROSPECTION=false). Parsed and validated documents are cached, so a
repeated query costs neither parsing nor validation again.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import strawberry
from fastapi import Request
from graphql import GraphQLError
from graphql.validation import ASTValidationRule, NoSchemaIntrospectionCustomRule
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ParserCache,
    ValidationCache,
)
from strawberry.extensions.max_aliases import create_validator as max_aliases_rule
from strawberry.extensions.query_depth_limiter import create_validator as max_depth_rule
from strawberry.fastapi import GraphQLRouter
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from service.accounts import graphql as accounts
from service.config import Settings
from service.graphql.context import Context
from service.graphql.errors import process_errors
from service.lifecycle import graphql as lifecycle
from service.plans import graphql as plans
from service.playbooks import graphql as playbooks
from service.tasks import graphql as tasks
from service.webhooks import graphql as webhooks
from service.workspaces import graphql as workspaces
from service.workspaces.auth import SessionDep

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
    ),
)
Mutation = merge_types(
    "Mutation",
    (accounts.Mutation, lifecycle.Mutation, tasks.Mutation, plans.Mutation, playbooks.Mutation),
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


def graphql_router(settings: Settings) -> GraphQLRouter[Any, Any]:
    async def context(request: Request, session: SessionDep) -> Context:
        return Context(session, settings)

    return GraphQLRouter(
        build_schema(settings.graphql_introspection),
        path="/graphql",
        context_getter=context,
        graphql_ide="graphiql" if settings.graphql_introspection else None,
        subscription_protocols=(),
        include_in_schema=False,
    )
