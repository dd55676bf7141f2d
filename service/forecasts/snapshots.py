"""Forecast history: snapshots, what moved between two of them, and how accurate they were.

A snapshot copies every renewal of its window, with the facts its signals read, into
`forecast_snapshot_rows` in one INSERT … SELECT over the same statement the live forecast
runs, so a snapshot is exactly the forecast of its moment. It also keeps the playbook's
forecast section of the moment: signals and reporting-currency amounts of an old snapshot
are read with the weights and rates it was taken with.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import BigInteger, Uuid, and_, case, func, insert, literal, or_, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.selectable import Subquery
from sqlmodel import col

from service.db import tables
from service.errors import NotFound
from service.forecasts import service as forecast
from service.forecasts.models import ForecastSnapshot, ForecastSnapshotRow
from service.forecasts.settings import ForecastSettings, settings_from
from service.kit.pagination import decode_cursor, encode_cursor
from service.playbooks import service as playbooks_service

FACTS = (
    "account_id",
    "account_name",
    "renewal_date",
    "currency",
    "arr_cents",
    "status",
    "segment",
    "stage",
    "owner_id",
    "owner_name",
    "probability",
    "category",
    "auto_renew",
    "outcomes_achieved",
    "outcomes_missed",
    "plan_health",
    "stuck",
    "overdue_tasks",
    "escalations",
    "renewal_passed",
    "renewal_soon",
    "renewal_opportunity",
    "override",
    "stage_effect",
)
CLOSED = ("renewed", "churned", "expired")
RATIO = Decimal("0.000001")


async def take_snapshot(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    kind: str,
    taken_by: str,
    starts_on: date | None = None,
    ends_on: date | None = None,
) -> ForecastSnapshot:
    """Snapshot the forecast of the window (default: a year from today): one statement."""
    ctx = await forecast._context(session, workspace_id, starts_on, ends_on)
    playbook = await playbooks_service.current_playbook(session, workspace_id=workspace_id)
    snapshot = ForecastSnapshot(
        workspace_id=workspace_id,
        kind=kind,
        taken_by=taken_by,
        as_of=ctx.window.as_of,
        starts_on=ctx.window.starts_on,
        ends_on=ctx.window.ends_on,
        reporting_currency=ctx.settings.reporting_currency,
        settings=dict(playbook.document.get("forecast") or {}),
    )
    session.add(snapshot)
    await session.flush()
    renewals = forecast._renewals(ctx).c
    rows = select(
        literal(snapshot.id, Uuid()).label("snapshot_id"),
        literal(workspace_id, Uuid()).label("workspace_id"),
        renewals.contract_id,
        *(renewals[name] for name in FACTS),
    ).params(forecast._values(ctx))
    await session.execute(
        insert(ForecastSnapshotRow).from_select(
            ["snapshot_id", "workspace_id", "contract_id", *FACTS], rows
        )
    )
    snapshot.renewals = int(
        await session.scalar(
            select(func.count()).where(col(ForecastSnapshotRow.snapshot_id) == snapshot.id)
        )
        or 0
    )
    await session.flush()
    return snapshot


async def get_snapshot(
    session: AsyncSession, *, workspace_id: uuid.UUID, snapshot_id: uuid.UUID
) -> ForecastSnapshot:
    snapshot = await session.scalar(
        select(ForecastSnapshot).where(
            col(ForecastSnapshot.workspace_id) == workspace_id,
            col(ForecastSnapshot.id) == snapshot_id,
        )
    )
    if snapshot is None:
        raise NotFound(
            f"forecast snapshot {snapshot_id} not found; GET /v1/forecasts/renewals/snapshots "
            "lists this workspace's"
        )
    return snapshot


async def list_snapshots(
    session: AsyncSession, *, workspace_id: uuid.UUID, limit: int, cursor: str | None = None
) -> tuple[list[ForecastSnapshot], str | None]:
    """Newest first; ids are time-ordered, so the id is the cursor."""
    statement = select(ForecastSnapshot).where(col(ForecastSnapshot.workspace_id) == workspace_id)
    if cursor:
        statement = statement.where(col(ForecastSnapshot.id) < decode_cursor(cursor))
    rows = list(
        await session.scalars(statement.order_by(col(ForecastSnapshot.id).desc()).limit(limit + 1))
    )
    if len(rows) > limit:
        return rows[:limit], encode_cursor(rows[limit - 1].id)
    return rows, None


# --- what moved -----------------------------------------------------------------------------


def _snapshot_rows(snapshot_id: uuid.UUID, name: str) -> Subquery:
    r = ForecastSnapshotRow
    return (
        select(col(r.contract_id), *(col(getattr(r, fact)) for fact in FACTS))
        .where(col(r.snapshot_id) == snapshot_id)
        .subquery(name)
    )


def _amount(settings: ForecastSettings, currency: str, cents: int) -> Decimal:
    rate = settings.rate(currency)
    if rate is None:
        forecast._check_rates(settings, [currency])  # raises the 422 with the missing rate
    assert rate is not None
    return Decimal(int(cents)).scaleb(-2) * rate


def _side(settings: ForecastSettings, row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "category": row["category"],
        "probability": Decimal(int(row["probability"])).scaleb(-2),
        "arr": _amount(settings, row["currency"], row["arr_cents"]),
    }


def _signal_changes(
    before: list[dict[str, Any]], after: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    old = {signal["signal"]: signal for signal in before}
    new = {signal["signal"]: signal for signal in after}
    changes = []
    for name in [*old, *(name for name in new if name not in old)]:
        was, now = old.get(name), new.get(name)
        if was is not None and now is not None:
            if (was["value"], was["effect"]) == (now["value"], now["effect"]):
                continue
            change = "changed"
        else:
            change = "added" if was is None else "removed"
        changes.append(
            {
                "signal": name,
                "change": change,
                "old_value": was and was["value"],
                "new_value": now and now["value"],
                "old_effect": was and was["effect"],
                "new_effect": now and now["effect"],
            }
        )
    return changes


def _explained(settings: ForecastSettings, facts: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The signals behind a row, the manual override among them."""
    if facts is None:
        return []
    signals = forecast._signals(settings, _Facts(facts))
    if facts["status"] == "active" and facts["override"] is not None:
        signals.append({"signal": "manual_override", "value": facts["override"], "effect": None})
    return signals


class _Facts:
    """A row's facts as the attributes `service._signals` reads."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


async def changes(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    since: uuid.UUID,
    until: uuid.UUID | None = None,
    limit: int,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Each renewal that moved from snapshot `since` to snapshot `until` (default: the live
    forecast over `since`'s window): old → new category, probability and ARR, and the signals
    that were added, removed or changed."""
    first = await get_snapshot(session, workspace_id=workspace_id, snapshot_id=since)
    old_settings = settings_from(first.settings)
    if until is not None:
        second = await get_snapshot(session, workspace_id=workspace_id, snapshot_id=until)
        new_settings = settings_from(second.settings)
        new = _snapshot_rows(second.id, "new")
        until_as_of = second.as_of
        bound: dict[str, Any] = {}  # two snapshots: no live forecast to bind
    else:
        ctx = await forecast._context(session, workspace_id, first.starts_on, first.ends_on)
        new_settings = ctx.settings
        live = forecast._renewals(ctx)
        new = select(live.c.contract_id, *(live.c[fact] for fact in FACTS)).subquery("new")
        until_as_of = ctx.window.as_of
        bound = forecast._values(ctx)
    old = _snapshot_rows(first.id, "old")
    o, n = old.c, new.c
    contract_id = func.coalesce(o.contract_id, n.contract_id)
    moved = or_(
        o.contract_id.is_(None),
        n.contract_id.is_(None),
        o.category != n.category,
        o.probability != n.probability,
        o.arr_cents != n.arr_cents,
        o.currency != n.currency,
    )
    statement = (
        select(
            contract_id.label("contract_id"),
            *(o[fact].label(f"old_{fact}") for fact in FACTS),
            *(n[fact].label(f"new_{fact}") for fact in FACTS),
            o.contract_id.label("old_contract_id"),
            n.contract_id.label("new_contract_id"),
        )
        .select_from(old.join(new, o.contract_id == n.contract_id, full=True))
        .where(moved)
    )
    if cursor:
        statement = statement.where(contract_id > decode_cursor(cursor))
    page = statement.order_by(contract_id).limit(limit + 1)
    rows = (await session.execute(page, bound)).all()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].contract_id)
    items = []
    for row in rows:
        values = row._mapping
        before = (
            {fact: values[f"old_{fact}"] for fact in FACTS}
            if values["old_contract_id"] is not None
            else None
        )
        after = (
            {fact: values[f"new_{fact}"] for fact in FACTS}
            if values["new_contract_id"] is not None
            else None
        )
        either = after or before
        assert either is not None
        old_side, new_side = _side(old_settings, before), _side(new_settings, after)
        items.append(
            {
                "contract_id": row.contract_id,
                "account_id": either["account_id"],
                "account_name": either["account_name"],
                "renewal_date": either["renewal_date"],
                "change": "added" if before is None else "removed" if after is None else "moved",
                "old": old_side,
                "new": new_side,
                "arr_change": (new_side["arr"] if new_side else Decimal("0.00"))
                - (old_side["arr"] if old_side else Decimal("0.00")),
                "signals": _signal_changes(
                    _explained(old_settings, before), _explained(new_settings, after)
                ),
            }
        )
    return {
        "since": first.id,
        "until": until,
        "since_as_of": first.as_of,
        "until_as_of": until_as_of,
        "items": items,
        "next_cursor": next_cursor,
    }


# --- accuracy ------------------------------------------------------------------------------


async def accuracy(
    session: AsyncSession, *, workspace_id: uuid.UUID, snapshot_id: uuid.UUID
) -> dict[str, Any]:
    """For the snapshot's renewals that have closed since: the forecast weighted ARR (ARR x
    probability, as the snapshot had them) against the ARR actually renewed (the next term's
    ARR where the renewal produced one, else the renewed term's own; nothing when churned)."""
    snapshot = await get_snapshot(session, workspace_id=workspace_id, snapshot_id=snapshot_id)
    settings = settings_from(snapshot.settings)
    row = ForecastSnapshotRow
    current = tables.contracts.alias("current_term")
    successor = tables.contracts.alias("next_term")
    renewed = current.c.status == "renewed"
    actual_cents = func.coalesce(
        type_coerce(successor.c.arr, BigInteger), type_coerce(current.c.arr, BigInteger)
    )
    actual_currency = func.coalesce(successor.c.currency, current.c.currency)
    statement: Any = (
        select(
            col(row.currency).label("currency"),
            actual_currency.label("actual_currency"),
            func.count().label("renewals"),
            func.sum(col(row.arr_cents) * col(row.probability)).label("weighted"),
            func.sum(case((renewed, actual_cents), else_=0)).label("actual"),
            func.sum(case((renewed, 1), else_=0)).label("renewed"),
        )
        .select_from(row)
        .join(
            current,
            and_(
                current.c.id == col(row.contract_id),
                current.c.workspace_id == workspace_id,
                current.c.status.in_(CLOSED),
            ),
        )
        .outerjoin(
            successor,
            and_(
                successor.c.previous_contract_id == current.c.id,
                successor.c.workspace_id == workspace_id,
            ),
        )
        .where(col(row.snapshot_id) == snapshot.id, col(row.workspace_id) == workspace_id)
        .group_by(col(row.currency), actual_currency)
    )
    groups = (await session.execute(statement)).all()
    forecast._check_rates(
        settings, sorted({g.currency for g in groups} | {g.actual_currency for g in groups})
    )
    closed = renewed_count = 0
    forecast_arr, actual_arr = Decimal("0.0000"), Decimal("0.00")
    for group in groups:
        closed += int(group.renewals)
        renewed_count += int(group.renewed or 0)
        rate = settings.rate(group.currency)
        actual_rate = settings.rate(group.actual_currency)
        assert rate is not None and actual_rate is not None
        forecast_arr += Decimal(int(group.weighted)).scaleb(-4) * rate
        actual_arr += Decimal(int(group.actual or 0)).scaleb(-2) * actual_rate
    error = actual_arr - forecast_arr
    return {
        "snapshot_id": snapshot.id,
        "as_of": snapshot.as_of,
        "reporting_currency": snapshot.reporting_currency,
        "renewals": snapshot.renewals,
        "closed": closed,
        "renewed": renewed_count,
        "open": snapshot.renewals - closed,
        "forecast_weighted_arr": forecast_arr,
        "actual_renewed_arr": actual_arr,
        "error": error,
        "error_ratio": (error / forecast_arr).quantize(RATIO, rounding=ROUND_HALF_EVEN)
        if forecast_arr
        else None,
    }


def next_snapshot_day(today: date, cadence: str) -> date | None:
    """The next day a scheduled snapshot is due after `today`: tomorrow, next Monday, or the
    1st of next month; None when snapshots are off."""
    if cadence == "daily":
        return today + timedelta(days=1)
    if cadence == "weekly":
        return today + timedelta(days=7 - today.weekday())
    if cadence == "monthly":
        return date(today.year + today.month // 12, today.month % 12 + 1, 1)
    return None


__all__: Sequence[str] = (
    "accuracy",
    "changes",
    "get_snapshot",
    "list_snapshots",
    "next_snapshot_day",
    "take_snapshot",
)
