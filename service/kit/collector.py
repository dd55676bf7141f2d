"""Garbage-collector settings for a serving process.

A nested GraphQL page keeps tens of thousands of container objects alive until its response
is sent (ORM rows, Strawberry objects, GraphQL results, coroutines and futures), so they
survive the young collections and count towards a full one: with CPython's default
thresholds (700, 10, 10) a full collection runs about every second 100-account page, and it
walks the ~300k objects made at start-up (the schema, SQLAlchemy mappers, pydantic models),
which never become garbage: 70 ms per page on average (bench/graphql.py, 200 accounts).
Freezing what exists once the app has started takes those objects out of every collection
(14 ms left), and collecting the young generation every 10,000 allocations instead of 700
halves what is left (8 ms): the page's objects are then mostly freed by reference counting
before a collection sees them.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000

_tuned = False


def tune_for_serving() -> None:
    """Freeze the start-up heap and collect the young generation less often; once per
    process."""
    global _tuned
    if _tuned:
        return
    _tuned = True
    gc.collect()  # what is garbage now should not be frozen for good
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
