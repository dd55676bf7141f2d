"""Where a quarterly goal stands: progress against its target, the linear pace it should
keep through the quarter, and the direction of its recent weekly values."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal

FOUR_PLACES = Decimal("0.0001")
TREND_WEEKS = 6


def tidy(value: Decimal) -> Decimal:
    """Four places at most, without trailing zeros (0.3, not 0.3000; 10, not 1E+1)."""
    value = value.quantize(FOUR_PLACES, ROUND_HALF_EVEN)
    return value.to_integral_value() if value == value.to_integral_value() else value.normalize()


def elapsed(starts_on: date, ends_on: date, as_of: date) -> Decimal:
    """0..1: the share of the quarter's days that have passed by the end of `as_of`."""
    total = (ends_on - starts_on).days + 1
    done = min(max((as_of - starts_on).days + 1, 0), total)
    return tidy(Decimal(done) / Decimal(total))


def past_mid_quarter(starts_on: date, ends_on: date, as_of: date) -> bool:
    return elapsed(starts_on, ends_on, as_of) > Decimal("0.5")


def progress(actual: Decimal | None, target: Decimal) -> Decimal | None:
    """actual / target (1 = reached); None without an actual or with a zero target."""
    if actual is None or target == 0:
        return None
    return tidy(actual / target)


def behind_pace(actual: Decimal | None, target: Decimal, expected: Decimal) -> bool:
    """Below the straight line from zero at the quarter's start to the target at its end."""
    return (actual or Decimal(0)) < target * expected


def direction(values: Sequence[Decimal]) -> str | None:
    """`up`, `down` or `flat` from the last two values (oldest first); None with fewer."""
    if len(values) < 2:
        return None
    last, previous = values[-1], values[-2]
    if last > previous:
        return "up"
    return "down" if last < previous else "flat"
