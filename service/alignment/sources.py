"""Goal sources: a goal's actual value read from the lifecycle data Quarterback received.

`opportunities_created`, `closed_won`, `go_lives` … count the lifecycle events of one type that
occurred in a window; `stage_entries:<STAGE>` counts the accounts' moves into a stage. Failed
events (refused by the event path) count for nothing; pending and ignored ones still record
that the change happened at the CRM.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service.accounts.models import StageTransition
from service.errors import InvalidInput
from service.lifecycle.models import LifecycleEvent

# Source name -> the canonical event type it counts (schemas/lifecycle-event.schema.json).
EVENT_SOURCES = {
    "opportunities_created": "opportunity_created",
    "closed_won": "closed_won",
    "closed_lost": "closed_lost",
    "go_lives": "go_live",
    "renewal_windows_opened": "renewal_window_opened",
    "renewals_won": "renewal_won",
    "renewals_lost": "renewal_lost",
    "expansion_opportunities_created": "expansion_opportunity_created",
    "churned": "churned",
}
STAGE_ENTRIES = "stage_entries:"


@dataclass(frozen=True)
class Window:
    """[starts_at, ends_at): a quarter, or the part of it up to a day, in UTC."""

    starts_at: datetime
    ends_at: datetime


def check_source(source: str, stage_keys: Iterable[str], field: str = "source") -> str:
    """The source, if Quarterback can read it; a 422 listing the choices otherwise."""
    if source in EVENT_SOURCES:
        return source
    stages = list(stage_keys)
    if source.startswith(STAGE_ENTRIES):
        stage = source.removeprefix(STAGE_ENTRIES)
        if stage in stages:
            return source
        message = f"unknown stage {stage!r} in {source!r}; one of {', '.join(stages)}"
    else:
        message = (
            f"unknown source {source!r}; one of {', '.join(EVENT_SOURCES)}, or "
            f"{STAGE_ENTRIES}<STAGE> with a stage of {', '.join(stages)}"
        )
    raise InvalidInput(
        f"{field}: {message}", errors=[{"field": field, "in": "body", "message": message}]
    )


def _count(source: str, workspace_id: uuid.UUID, window: Window) -> object:
    if source.startswith(STAGE_ENTRIES):
        occurred = col(StageTransition.occurred_at)
        return (
            select(func.count())
            .where(
                col(StageTransition.workspace_id) == workspace_id,
                col(StageTransition.to_stage) == source.removeprefix(STAGE_ENTRIES),
                occurred >= window.starts_at,
                occurred < window.ends_at,
            )
            .scalar_subquery()
        )
    occurred = col(LifecycleEvent.occurred_at)
    return (
        select(func.count())
        .where(
            col(LifecycleEvent.workspace_id) == workspace_id,
            col(LifecycleEvent.type) == EVENT_SOURCES[source],
            col(LifecycleEvent.outcome) != "failed",
            occurred >= window.starts_at,
            occurred < window.ends_at,
        )
        .scalar_subquery()
    )


async def actuals(
    session: AsyncSession, workspace_id: uuid.UUID, wanted: Iterable[tuple[str, Window]]
) -> dict[tuple[str, Window], Decimal]:
    """The value of each (source, window): one statement, one count per distinct pair."""
    keys = list(dict.fromkeys(wanted))
    if not keys:
        return {}
    columns = [_count(source, workspace_id, window) for source, window in keys]
    row = (await session.execute(select(*columns))).one()  # type: ignore[call-overload]
    return {key: Decimal(int(value or 0)) for key, value in zip(keys, row, strict=True)}
