"""A plan year's calendar: its four quarters and when each touchpoint falls due. Pure dates."""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

QUARTERS = (1, 2, 3, 4)


def add_months(day: date, months: int) -> date:
    """The same day `months` later, clamped to the month's last day (Jan 31 + 1 → Feb 28/29)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def default_ends_on(starts_on: date) -> date:
    """A contract year: one year after the start, minus a day (2020-01-01 → 2020-12-31)."""
    return add_months(starts_on, 12) - timedelta(days=1)


def quarter_end(starts_on: date, ends_on: date, quarter: int) -> date:
    """The last day of the plan's quarter 1-4; quarter 4 ends with the plan."""
    if quarter not in QUARTERS:
        raise ValueError(f"quarter must be 1-4, not {quarter}")
    if quarter == 4:
        return ends_on
    return min(add_months(starts_on, 3 * quarter) - timedelta(days=1), ends_on)


def quarter_of(starts_on: date, ends_on: date, day: date) -> int | None:
    """The plan quarter `day` falls in, or None outside the plan."""
    if day < starts_on or day > ends_on:
        return None
    return next(q for q in QUARTERS if day <= quarter_end(starts_on, ends_on, q))


@dataclass(frozen=True)
class TouchpointDue:
    name: str
    department: str
    quarter: int
    due_on: date


def touchpoint_schedule(
    starts_on: date, ends_on: date, touchpoints: Iterable[Mapping[str, Any]]
) -> list[TouchpointDue]:
    """Every touchpoint of the year, due on the last day of each quarter of its cadence.

    A touchpoint every N quarters falls in quarters N, 2N, …: every quarter → Q1-Q4, every two
    → Q2 and Q4, every four → once, in Q4 before the renewal.
    """
    due = [
        TouchpointDue(
            name=touchpoint["name"],
            department=touchpoint["department"],
            quarter=quarter,
            due_on=quarter_end(starts_on, ends_on, quarter),
        )
        for touchpoint in touchpoints
        for quarter in QUARTERS
        if quarter % int(touchpoint["every_quarters"]) == 0
    ]
    return sorted(due, key=lambda item: (item.due_on, item.name))
