"""The playbook's `forecast` section with its defaults: signal weights, thresholds, currencies.

Probabilities are whole percentage points (0-100) so that ARR x probability stays an exact
integer product in SQL. Every setting has a default; a playbook changes only what it names.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from service.errors import InvalidInput

CATEGORIES = ("commit", "best_case", "at_risk", "churn_risk")
DECIDED = ("won", "lost")
ALL_CATEGORIES = CATEGORIES + DECIDED

DEFAULT_BASE = 50
DEFAULT_WEIGHTS: dict[str, int] = {
    "auto_renew": 10,
    "outcome_achieved": 5,
    "outcome_missed": -10,
    "stuck_in_stage": -10,
    "overdue_task": -5,
    "open_escalation": -15,
    "renewal_date_passed": -20,
    "renewal_soon": -5,
    "renewal_opportunity_open": 10,
    "renewal_opportunity_won": 40,
    "renewal_opportunity_lost": -60,
    # The latest success plan's health (service.plans.health); no plan, no signal.
    "plan_on_track": 0,
    "plan_at_risk": -5,
    "plan_off_track": -10,
}
DEFAULT_STAGE_WEIGHTS: dict[str, int] = {
    "IMPLEMENT": -10,
    "VALUE": 5,
    "RENEW": 0,
    "EXPAND": 10,
    "CHURNED": -40,
}
DEFAULT_THRESHOLDS: dict[str, int] = {"commit": 80, "best_case": 60, "at_risk": 40}
DEFAULT_REPORTING_CURRENCY = "USD"
DEFAULT_EXPANSION_WEIGHT = 50
DEFAULT_SNAPSHOTS = "weekly"


@dataclass(frozen=True)
class ForecastSettings:
    base: int
    weights: MappingProxyType[str, int]
    stage_weights: MappingProxyType[str, int]
    stuck_after_days: int
    renewal_soon_days: int
    overdue_tasks_counted: int
    thresholds: MappingProxyType[str, int]
    reporting_currency: str
    rates: MappingProxyType[str, Decimal]
    expansion_weight: int = DEFAULT_EXPANSION_WEIGHT
    snapshots: str = DEFAULT_SNAPSHOTS

    def rate(self, currency: str) -> Decimal | None:
        """What one unit of `currency` is worth in the reporting currency, if known."""
        if currency == self.reporting_currency:
            return Decimal(1)
        return self.rates.get(currency)


def settings_from(section: dict[str, Any] | None) -> ForecastSettings:
    """Settings from a validated playbook `forecast` section (None or {} for all defaults)."""
    section = section or {}
    thresholds = {**DEFAULT_THRESHOLDS, **section.get("thresholds", {})}
    if not thresholds["commit"] >= thresholds["best_case"] >= thresholds["at_risk"]:
        raise InvalidInput(
            "the playbook's forecast thresholds must satisfy commit ≥ best_case ≥ at_risk; "
            "publish a playbook that orders them",
            errors=[{"field": "forecast.thresholds", "in": "playbook", "message": "out of order"}],
        )
    return ForecastSettings(
        base=section.get("base_probability", DEFAULT_BASE),
        weights=MappingProxyType({**DEFAULT_WEIGHTS, **section.get("weights", {})}),
        stage_weights=MappingProxyType(section.get("stage_weights", DEFAULT_STAGE_WEIGHTS)),
        stuck_after_days=section.get("stuck_after_days", 90),
        renewal_soon_days=section.get("renewal_soon_days", 30),
        overdue_tasks_counted=section.get("overdue_tasks_counted", 3),
        thresholds=MappingProxyType(thresholds),
        reporting_currency=section.get("reporting_currency", DEFAULT_REPORTING_CURRENCY),
        rates=MappingProxyType(
            {code: Decimal(value) for code, value in section.get("rates", {}).items()}
        ),
        expansion_weight=section.get("expansion_weight", DEFAULT_EXPANSION_WEIGHT),
        snapshots=section.get("snapshots", DEFAULT_SNAPSHOTS),
    )
