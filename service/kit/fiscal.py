"""Fiscal quarters: `2027-Q1` is the first quarter of fiscal year 2027.

A fiscal year starts in the workspace's `fiscal_year_start_month` and is named by the calendar
year it ends in (the forecasts' convention, which prints `FY2027-Q1`): with a February start,
FY2027 runs from February 2026 to January 2027. The label does not depend on the start month;
its dates do. Labels sort as text in quarter order, so the database compares them directly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from service.errors import InvalidInput

FIRST_YEAR, LAST_YEAR = 1900, 2999
_LABEL = re.compile(r"^(?:FY)?(\d{4})-Q([1-4])$", re.IGNORECASE)


@dataclass(frozen=True, order=True)
class FiscalQuarter:
    year: int
    quarter: int

    @classmethod
    def parse(cls, text: str) -> FiscalQuarter:
        """`2027-Q1` or `FY2027-Q1` (any case); ValueError otherwise."""
        match = _LABEL.match(text.strip())
        if match is None:
            raise ValueError(f"{text!r} is not a fiscal quarter; write it as 2027-Q1")
        year, quarter = int(match[1]), int(match[2])
        if not FIRST_YEAR <= year <= LAST_YEAR:
            raise ValueError(f"fiscal year {year} is outside {FIRST_YEAR}-{LAST_YEAR}")
        return cls(year, quarter)

    @classmethod
    def containing(cls, day: date, start_month: int) -> FiscalQuarter:
        shifted = (day.month - start_month) % 12
        # Months from the start month to December belong to the fiscal year ending next year.
        year = day.year + (1 if start_month != 1 and day.month >= start_month else 0)
        return cls(year, shifted // 3 + 1)

    def __str__(self) -> str:
        return f"{self.year:04d}-Q{self.quarter}"

    def starts_on(self, start_month: int) -> date:
        # Fiscal year Y starts in `start_month` of Y-1, unless it starts in January.
        first_year = self.year - (1 if start_month != 1 else 0)
        month_index = (start_month - 1) + (self.quarter - 1) * 3
        return date(first_year + month_index // 12, month_index % 12 + 1, 1)

    def ends_on(self, start_month: int) -> date:
        return self.next().starts_on(start_month) - timedelta(days=1)

    def next(self) -> FiscalQuarter:
        if self.quarter == 4:
            return FiscalQuarter(self.year + 1, 1)
        return FiscalQuarter(self.year, self.quarter + 1)


def parse_quarter(text: str, field: str = "quarter", place: str = "body") -> FiscalQuarter:
    """The quarter `text` names, or a 422 that says how to write one."""
    try:
        return FiscalQuarter.parse(text)
    except ValueError as exc:
        raise InvalidInput(
            f"{field}: {exc}", errors=[{"field": field, "in": place, "message": str(exc)}]
        ) from None
