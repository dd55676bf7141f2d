"""Relay-style connections: `first`/`after`, `edges { cursor node }`, `pageInfo`, and
`totalCount` where counting is cheap. Pages hold at most 100 nodes."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import strawberry

from service.errors import InvalidInput
from service.kit.pagination import encode_cursor

T = TypeVar("T")

MAX_FIRST = 100
DEFAULT_FIRST = 50


def page_size(first: int | None) -> int:
    """`first`, checked: 1..100 (50 when not given)."""
    if first is None:
        return DEFAULT_FIRST
    if not 1 <= first <= MAX_FIRST:
        raise InvalidInput(
            f"first must be between 1 and {MAX_FIRST}, not {first}; page with `after` "
            "(pageInfo.endCursor) for more",
            errors=[{"field": "first", "in": "arguments", "message": f"1..{MAX_FIRST}"}],
        )
    return first


def nested_limit(value: int, name: str, maximum: int = MAX_FIRST) -> int:
    """The size argument of a nested list (`transitions(last: 5)`), checked: 1..100."""
    if not 1 <= value <= maximum:
        raise InvalidInput(
            f"{name} must be between 1 and {maximum}, not {value}",
            errors=[{"field": name, "in": "arguments", "message": f"1..{maximum}"}],
        )
    return value


@strawberry.type(description="Where this page stands in the whole list.")
class PageInfo:
    has_next_page: bool = strawberry.field(
        description="True when there is another page: ask again with `after: endCursor`."
    )
    end_cursor: str | None = strawberry.field(
        description="Cursor of the last node on this page; pass it as `after`."
    )


@strawberry.type(description="A node and the cursor to continue after it.")
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type(description="A page of a list, in the list's order.")
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    counter: strawberry.Private[Callable[[], Awaitable[int]] | None] = None

    @strawberry.field(description="The nodes of this page, without cursors.")
    def nodes(self) -> list[T]:
        return [edge.node for edge in self.edges]

    @strawberry.field(
        description="How many nodes the whole list has across pages (one extra query; null "
        "where the list does not offer a count)."
    )
    async def total_count(self) -> int | None:
        return await self.counter() if self.counter is not None else None


def connection(
    nodes: Sequence[T],
    next_cursor: str | None,
    cursor_of: Callable[[T], str],
    counter: Callable[[], Awaitable[int]] | None = None,
) -> Connection[T]:
    edges = [Edge(cursor=cursor_of(node), node=node) for node in nodes]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=next_cursor is not None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        counter=counter,
    )


def id_cursor(node_id: uuid.UUID) -> str:
    return encode_cursor(node_id)
