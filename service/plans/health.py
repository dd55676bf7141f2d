"""Plan health from measurements, targets and the calendar. Pure: the date is passed in.

An outcome is expected to move linearly from its baseline (on the plan's first day) to its
target (on the last day of its target quarter). Its actual progress is where the latest
measurement stands on that road. On track at 90% or more of the expected progress (or with
the target reached), at risk from 60%, else off track. Without a measurement an outcome is on
track during the plan's first quarter and at risk after it. Targets below the baseline
("reduce tickets") work the same way: progress is measured in the direction of the target.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Literal

from service.plans.calendar import quarter_end

Health = Literal["on_track", "at_risk", "off_track"]
HEALTH_ORDER: tuple[Health, ...] = ("on_track", "at_risk", "off_track")
ON_TRACK_SHARE = Decimal("0.9")
AT_RISK_SHARE = Decimal("0.6")
ZERO, ONE = Decimal(0), Decimal(1)
SHOWN = Decimal("0.0001")


@dataclass(frozen=True)
class OutcomeHealth:
    health: Health
    progress: Decimal | None  # 0..1, None without a measurement
    expected_progress: Decimal  # 0..1
    reason: str


def _clamp(value: Decimal) -> Decimal:
    return max(ZERO, min(ONE, value))


def progress(baseline: Decimal, target: Decimal, value: Decimal) -> Decimal:
    """How far `value` has come from baseline to target, 0..1 (moving away counts as 0)."""
    if target == baseline:
        return ONE if value == target else ZERO
    return _clamp((value - baseline) / (target - baseline))


def expected_progress(starts_on: date, deadline: date, as_of: date) -> Decimal:
    """The share of the road to target that should be behind on `as_of`, 0..1."""
    total = (deadline - starts_on).days
    if total <= 0:
        return ONE if as_of >= deadline else ZERO
    return _clamp(Decimal((as_of - starts_on).days) / Decimal(total))


def _percent(share: Decimal) -> str:
    return f"{(share * 100).quantize(ONE)}%"


def outcome_health(
    *,
    starts_on: date,
    ends_on: date,
    baseline: Decimal,
    target: Decimal,
    target_quarter: int,
    latest_value: Decimal | None,
    as_of: date,
    status: str = "in_progress",
) -> OutcomeHealth:
    deadline = quarter_end(starts_on, ends_on, target_quarter)
    expected = expected_progress(starts_on, deadline, as_of)
    actual = None if latest_value is None else progress(baseline, target, latest_value)

    def result(health: Health, reason: str) -> OutcomeHealth:
        shown = None if actual is None else actual.quantize(SHOWN)
        return OutcomeHealth(health, shown, expected.quantize(SHOWN), reason)

    if status == "achieved":
        return result("on_track", "marked achieved")
    if status == "missed":
        return result("off_track", "marked missed")
    if actual is None:
        first_quarter_end = quarter_end(starts_on, ends_on, 1)
        if as_of <= first_quarter_end:
            return result("on_track", "no measurement yet; still in the plan's first quarter")
        return result(
            "at_risk", f"no measurement since the first quarter ended {first_quarter_end}"
        )
    stands = f"{_percent(actual)} of the way to target, {_percent(expected)} expected by {as_of}"
    if actual >= ONE:
        return result("on_track", "target reached")
    if actual >= ON_TRACK_SHARE * expected:
        return result("on_track", stands)
    if actual >= AT_RISK_SHARE * expected:
        return result("at_risk", stands)
    return result("off_track", stands)


def plan_health(healths: Iterable[Health]) -> Health:
    """The worst of the outcomes' health; a plan without outcomes is on track."""
    return max(healths, key=HEALTH_ORDER.index, default="on_track")
