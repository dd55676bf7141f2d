"""Dry runs: what an event would do to an account under a playbook, writing nothing."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service.accounts import service as accounts_service
from service.accounts.models import AccountExternalId
from service.errors import InvalidInput
from service.playbooks import service as playbooks_service
from service.playbooks.effects import Owner, plan_effects
from service.playbooks.rules import Facts, compile_playbook, decide
from service.workspaces.models import Workspace


async def simulate(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    event: dict[str, Any],
    source: str,
    account_id: uuid.UUID | None,
    account: dict[str, Any] | None,
    draft: dict[str, Any] | None,
) -> dict[str, Any]:
    """The decision, stage move, handoff and tasks the event would produce."""
    if draft is not None:
        playbook = compile_playbook(playbooks_service.check_document(draft), version=0)
    else:
        playbook = await playbooks_service.current_playbook(session, workspace_id=workspace_id)
    subject = await _subject(session, workspace_id, source, event, account_id, account, playbook)
    facts = Facts(
        event_type=event["type"],
        event_id=event["id"],
        source=source,
        stage=subject["stage"],
        segment=subject["segment"],
        arr=subject["arr"],
        data=dict(event.get("data") or {}),
        to_stage=event.get("to_stage"),
    )
    renewal_owner = (
        await session.scalar(
            select(col(Workspace.renewal_quarterback)).where(col(Workspace.id) == workspace_id)
        )
    ) or "csm"
    decision = decide(playbook, facts)
    effects = plan_effects(
        playbook,
        decision,
        facts,
        account=subject,
        owners=subject["owners"],
        renewal_owner=renewal_owner,
    )
    return {
        "playbook_version": playbook.version or None,
        "draft": draft is not None,
        "outcome": "applied" if decision.outcome == "apply" else decision.outcome,
        "reason": decision.reason,
        "rule": decision.rule.name if decision.rule else None,
        "account_id": subject.get("id"),
        "from_stage": facts.stage,
        "to_stage": decision.to_stage if decision.outcome == "apply" else None,
        "skipped_stages": list(decision.skipped) if decision.outcome == "apply" else [],
        "handoff": effects.handoff.as_dict() if effects.handoff else None,
        "tasks": [task.as_dict() for task in effects.tasks],
        "success_plan_scaffold": effects.scaffold_plan,
    }


async def _subject(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    source: str,
    event: dict[str, Any],
    account_id: uuid.UUID | None,
    account: dict[str, Any] | None,
    playbook: Any,
) -> dict[str, Any]:
    """The account as the event would find it: a real one, or one described in the request."""
    if account_id is None and account is None:
        external_id = (event.get("account") or {}).get("external_id")
        if external_id:
            account_id = await session.scalar(
                select(col(AccountExternalId.account_id)).where(
                    col(AccountExternalId.workspace_id) == workspace_id,
                    col(AccountExternalId.source) == source,
                    col(AccountExternalId.external_id) == external_id,
                )
            )
    if account_id is not None:
        view = await accounts_service.get_account(
            session, workspace_id=workspace_id, account_id=account_id
        )
        return {
            "id": str(view.account.id),
            "name": view.account.name,
            "domain": view.account.domain,
            "segment": view.account.segment,
            "arr": view.account.arr,
            "stage": view.account.stage,
            "owners": {d: Owner(o["user_id"], o.get("name")) for d, o in view.owners.items()},
        }
    described = dict(account or {})
    stage = described.get("stage") or playbook.initial_stage
    if stage not in playbook.stages:
        raise InvalidInput(
            f"account.stage {stage!r} is not a stage of the playbook",
            errors=[{"field": "account.stage", "in": "body", "message": "unknown stage"}],
        )
    return {
        "id": None,
        "name": described.get("name") or (event.get("account") or {}).get("name") or "",
        "domain": described.get("domain"),
        "segment": described.get("segment") or "mid_touch",
        "arr": Decimal(str(described.get("arr") or "0")),
        "stage": stage,
        "owners": {
            department: Owner(owner["user_id"], owner.get("name"))
            for department, owner in (described.get("owners") or {}).items()
        },
    }
