"""GraphQL input objects as the plain dicts REST's pydantic request models read, so both
validate through the same models and refuse the same things with the same words."""

from __future__ import annotations

import enum
from typing import Any, TypeVar

import strawberry
from pydantic import BaseModel, ValidationError

from service.graphql.errors import invalid_input

M = TypeVar("M", bound=BaseModel)


def plain(value: Any, *, drop_none: bool = False) -> Any:
    """Inputs become dicts (fields left out, UNSET, are dropped; with `drop_none`, null ones
    too), enums their values, lists element by element."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list):
        return [plain(item, drop_none=drop_none) for item in value]
    if hasattr(value, "__strawberry_definition__"):
        return {
            name: plain(item, drop_none=drop_none)
            for name, item in vars(value).items()
            if item is not strawberry.UNSET and not (drop_none and item is None)
        }
    return value


def parsed(model: type[M], value: Any, *, prefix: str = "input", drop_none: bool = False) -> M:
    """`value` validated by the REST request model `model`; a 422-worded error otherwise."""
    try:
        return model.model_validate(plain(value, drop_none=drop_none))
    except ValidationError as exc:
        raise invalid_input(exc, prefix) from None
