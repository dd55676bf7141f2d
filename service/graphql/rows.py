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
    names: tuple[str, ...] = _field_names(cast(Any, cls))
    row = getattr(row, "_mapping", row)  # a Core result row reads as its mapping
    if isinstance(row, Mapping):
        values = {name: row[name] for name in names if name not in extra and name in row}
        return cls(**values, **extra)
    # An ORM row keeps its loaded columns in __dict__: reading them there skips a descriptor
    # call per field, which adds up over the thousands of objects of a nested page.
    loaded = getattr(row, "__dict__", {})
    values = {}
    for name in names:
        if name in extra:
            continue
        if name in loaded:
            values[name] = loaded[name]
        elif hasattr(row, name):
            values[name] = getattr(row, name)
    return cls(**values, **extra)
