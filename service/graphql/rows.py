"""Building GraphQL objects from rows: the type's fields, copied from the row by name."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from functools import cache
from typing import Any, TypeVar, cast

T = TypeVar("T")


@cache
def _field_names(cls: Any) -> tuple[str, ...]:
    return tuple(field.name for field in dataclasses.fields(cls) if field.init)


def from_row(cls: type[T], row: Any, **extra: Any) -> T:
    """An instance of the Strawberry type `cls` from an ORM row or a dict of columns."""
    values: dict[str, Any] = {}
    names: tuple[str, ...] = _field_names(cast(Any, cls))
    for name in names:
        if name in extra:
            continue
        if isinstance(row, Mapping):
            if name in row:
                values[name] = row[name]
        elif hasattr(row, name):
            values[name] = getattr(row, name)
    return cls(**values, **extra)
