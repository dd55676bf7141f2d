"""The net retention view of the forecast: expansion pipeline beside the renewals.

For the renewals of a window:
- expected renewed ARR = Σ ARR x probability (never more than the ARR up for renewal, since
  a probability is at most 100%);
- expansion pipeline = Σ amount of the expansion opportunities closing in the window, open
  ones x the playbook's `forecast.expansion_weight` %, won ones in full, lost ones not at all;
- GRR (gross revenue retention) = expected renewed / ARR up for renewal;
- NRR (net revenue retention) = (expected renewed + expansion pipeline) / ARR up for renewal.

Sums are exact Decimals; the two ratios are rounded half-even to six decimal places (they are
quotients) and null where no ARR is up for renewal.
"""

from __future__ import annotations

import uuid
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import BigInteger, String, and_, case, literal, null, select, type_coerce
from sqlalchemy.sql.selectable import Subquery
from sqlmodel import col

from service.accounts.models import Account, AccountOwner
from service.deals.models import Opportunity

RATIO = Decimal("0.000001")
EXPANSION_STATUSES = ("open", "won")


def expansion_pipeline(
    *,
    workspace_id: uuid.UUID,
    starts_on: date,
    ends_on: date,
    renewal_owner: str,
    owner: str | None,
    weight: int,
) -> Subquery:
    """One row per expansion opportunity closing in the window, shaped like the renewals
    (close date as `renewal_date`, no category) so it groups by the same dimensions."""
    ws = workspace_id
    owner_join = and_(
        col(AccountOwner.workspace_id) == ws,
        col(AccountOwner.account_id) == col(Opportunity.account_id),
        col(AccountOwner.department) == renewal_owner,
    )
    where = [
        col(Opportunity.workspace_id) == ws,
        col(Opportunity.kind) == "expansion",
        col(Opportunity.status).in_(EXPANSION_STATUSES),
        col(Opportunity.amount).is_not(None),
        col(Opportunity.close_date) >= starts_on,
        col(Opportunity.close_date) <= ends_on,
    ]
    if owner is not None:
        where.append(col(AccountOwner.user_id) == owner)
    return (
        select(
            col(Opportunity.close_date).label("renewal_date"),
            col(Opportunity.currency).label("currency"),
            col(Account.segment).label("segment"),
            col(Account.stage).label("stage"),
            col(AccountOwner.user_id).label("owner_id"),
            col(AccountOwner.user_name).label("owner_name"),
            type_coerce(null(), String).label("category"),
            type_coerce(col(Opportunity.amount), BigInteger).label("amount_cents"),
            case((col(Opportunity.status) == "won", 100), else_=literal(weight)).label("weight"),
        )
        .select_from(Opportunity)
        .join(
            Account,
            and_(col(Account.id) == col(Opportunity.account_id), col(Account.workspace_id) == ws),
        )
        .join(AccountOwner, owner_join, isouter=owner is None)
        .where(*where)
        .subquery("expansion")
    )


def ratio(numerator: Decimal, denominator: Decimal) -> Decimal | None:
    if not denominator:
        return None
    return (numerator / denominator).quantize(RATIO, rounding=ROUND_HALF_EVEN)


def retention_fields(sums: dict[str, Any]) -> dict[str, Any]:
    """Expected renewed ARR, GRR and NRR of a row or the totals (which carry the pipeline)."""
    renewed = sums["weighted_arr"]
    return {
        "expected_renewed_arr": renewed,
        "grr": ratio(renewed, sums["arr"]),
        "nrr": ratio(renewed + sums["expansion_pipeline"], sums["arr"]),
    }
