"""Calendar helpers: due dates in business days, in the workspace's time zone."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays


def local_today(now: datetime, timezone: str) -> date:
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return now.astimezone(zone).date()


def add_business_days(start: date, days: int, calendar: str | None = None) -> date:
    """The date `days` working days after `start`: Monday to Friday, minus the public
    holidays of `calendar` (a country code such as "US", or "US-CA" with a subdivision)."""
    current = start
    remaining = days
    while remaining > 0:
        current += timedelta(days=1)
        if current.weekday() < 5 and current not in _holidays(calendar, current.year):
            remaining -= 1
    return current


@lru_cache(maxsize=512)
def _holidays(calendar: str | None, year: int) -> frozenset[date]:
    if not calendar:
        return frozenset()
    country, _, subdivision = calendar.partition("-")
    try:
        days = holidays.country_holidays(country, subdiv=subdivision or None, years=year)
    except NotImplementedError:  # validated on input; an old stored value must not break due dates
        return frozenset()
    return frozenset(days)


def is_valid_calendar(calendar: str) -> bool:
    country, _, subdivision = calendar.partition("-")
    supported = holidays.list_supported_countries()
    if country not in supported:
        return False
    return not subdivision or subdivision in supported[country]


def is_valid_timezone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True
