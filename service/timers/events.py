"""The `event` timer kind: a time rule that submits a lifecycle event when it is due.

"120 days before contract end → renewal_window_opened" becomes a timer whose payload is that
event. When it fires, the event takes the path every event takes, `apply_event`, with source
`timer` and the timer's key as its id: it is validated like a submitted event, recorded once
per workspace, source and id (so it applies once, whatever happens to the timer), and the
playbook decides what it does, in the transaction that marks the timer fired.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from service.lifecycle import events as events_service
from service.lifecycle.event_routes import EventIn
from service.timers import service as timers_service
from service.timers.models import Timer

EVENT_KIND = "event"
EVENT_SOURCE = "timer"


async def schedule_event(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    key: str,
    due_at: datetime,
    event: dict[str, Any],
    account_id: uuid.UUID | None = None,
    replace: bool = False,
) -> None:
    """Submit `event` (a canonical lifecycle event) when `due_at` comes.

    The event's `id` defaults to `key` and its `occurred_at` to `due_at`. It is validated now,
    so a broken time rule fails where it is scheduled rather than when it fires.
    """
    event = {"id": key, "occurred_at": due_at, **event}
    try:
        checked = EventIn.model_validate(event).model_dump(mode="json", exclude_none=True)
    except ValidationError as exc:
        raise ValueError(f"timer {key}: not a lifecycle event: {exc}") from None
    account = checked.get("account") or {}
    if account_id is None and not account.get("id") and not account.get("external_id"):
        raise ValueError(f"timer {key}: name the account with account_id or the event's account")
    await timers_service.schedule(
        session,
        workspace_id=workspace_id,
        key=key,
        kind=EVENT_KIND,
        due_at=due_at,
        payload={"event": checked},
        account_id=account_id,
        replace=replace,
    )


async def fire_event(session: AsyncSession, timer: Timer) -> None:
    event = EventIn.model_validate(timer.payload["event"]).model_dump(exclude_none=True)
    await events_service.apply_event(
        session,
        workspace_id=timer.workspace_id,
        source=EVENT_SOURCE,
        event=event,
        account_id=timer.account_id,
        actor=f"timer:{timer.key}"[:200],
    )


timers_service.register(EVENT_KIND, fire_event)
