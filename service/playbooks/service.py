"""Playbooks: the published version in force, publishing new versions, simulation."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service.accounts.models import Account
from service.db import tables
from service.db.types import uuid7
from service.errors import Conflict, InvalidInput, NotFound
from service.lifecycle.models import Department, Stage
from service.playbooks import document as playbook_document
from service.playbooks.models import PlaybookVersion
from service.playbooks.rules import Playbook, compile_playbook
from service.workspaces.models import Workspace

# Compiled playbooks by (workspace, version): versions never change once published.
_COMPILED: OrderedDict[tuple[uuid.UUID, int], Playbook] = OrderedDict()
_COMPILED_MAX = 256


class InvalidPlaybookDocument(InvalidInput):
    """The playbook document breaks the schema or refers to things it does not define."""

    code, title = "invalid_playbook", "Invalid playbook"


def check_document(document: Any) -> dict[str, Any]:
    """The document if it can be published, else InvalidPlaybookDocument with every error."""
    errors = playbook_document.validate(document)
    if errors:
        first = errors[0]
        raise InvalidPlaybookDocument(
            f"{len(errors)} error(s); first at {first.pointer or '/'}: {first.message}",
            errors=[error.as_dict() for error in errors],
        )
    assert isinstance(document, dict)
    return document


def parse_text(text: str) -> Any:
    try:
        return playbook_document.parse(text)
    except playbook_document.InvalidPlaybook as exc:
        raise InvalidPlaybookDocument(
            exc.errors[0].message, errors=[error.as_dict() for error in exc.errors]
        ) from None


def _remember(key: tuple[uuid.UUID, int], playbook: Playbook) -> Playbook:
    _COMPILED[key] = playbook
    _COMPILED.move_to_end(key)
    while len(_COMPILED) > _COMPILED_MAX:
        _COMPILED.popitem(last=False)
    return playbook


# Every event reads it: built once, run as Core (no ORM compile state for one integer).
_PLAYBOOK_VERSION = select(tables.workspaces.c.playbook_version).where(
    tables.workspaces.c.id == bindparam("workspace")
)


@lru_cache(maxsize=1)
def _default_playbook() -> Playbook:
    """What a workspace without a published version runs: parsed and compiled once."""
    return compile_playbook(playbook_document.default_document(), 0)


async def current_playbook(session: AsyncSession, *, workspace_id: uuid.UUID) -> Playbook:
    """The playbook in force: one small query when its compiled form is cached."""
    connection = await session.connection()
    version = await connection.scalar(_PLAYBOOK_VERSION, {"workspace": workspace_id})
    return await playbook_in_force(session, workspace_id=workspace_id, version=version)


async def playbook_in_force(
    session: AsyncSession, *, workspace_id: uuid.UUID, version: int | None
) -> Playbook:
    """`current_playbook` for a caller that read the workspace's `playbook_version` itself
    (None: nothing published yet)."""
    if version is None:
        return _default_playbook()
    return await playbook_version(session, workspace_id=workspace_id, version=version)


async def playbook_version(
    session: AsyncSession, *, workspace_id: uuid.UUID, version: int
) -> Playbook:
    key = (workspace_id, version)
    cached = _COMPILED.get(key)
    if cached is not None:
        return cached
    row = await _version_row(session, workspace_id, version)
    return _remember(key, compile_playbook(row.document, version))


async def _version_row(
    session: AsyncSession, workspace_id: uuid.UUID, version: int
) -> PlaybookVersion:
    row = await session.scalar(
        select(PlaybookVersion).where(
            col(PlaybookVersion.workspace_id) == workspace_id,
            col(PlaybookVersion.version) == version,
        )
    )
    if row is None:
        raise NotFound(f"playbook version {version} not found")
    return row


async def current_version_row(session: AsyncSession, *, workspace_id: uuid.UUID) -> PlaybookVersion:
    version = await session.scalar(
        select(col(Workspace.playbook_version)).where(col(Workspace.id) == workspace_id)
    )
    if version is None:
        raise NotFound("this workspace has no published playbook")
    return await _version_row(session, workspace_id, version)


async def get_version(
    session: AsyncSession, *, workspace_id: uuid.UUID, version: int
) -> PlaybookVersion:
    return await _version_row(session, workspace_id, version)


async def list_versions(
    session: AsyncSession, *, workspace_id: uuid.UUID, limit: int, before: int | None
) -> list[PlaybookVersion]:
    statement = select(PlaybookVersion).where(col(PlaybookVersion.workspace_id) == workspace_id)
    if before is not None:
        statement = statement.where(col(PlaybookVersion.version) < before)
    statement = statement.order_by(col(PlaybookVersion.version).desc()).limit(limit)
    return list(await session.scalars(statement))


async def publish(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    document: Any,
    actor: str | None,
    note: str | None = None,
) -> PlaybookVersion:
    """Validate and publish version N+1; the lifecycle tables follow the new stage model."""
    document = check_document(document)
    workspace = await session.scalar(
        select(Workspace).where(col(Workspace.id) == workspace_id).with_for_update()
    )
    if workspace is None:
        raise NotFound(f"workspace {workspace_id} not found")
    latest = await session.scalar(
        select(func.max(PlaybookVersion.version)).where(
            col(PlaybookVersion.workspace_id) == workspace_id
        )
    )
    version = (latest or 0) + 1
    playbook = compile_playbook(document, version)
    await _refuse_orphaned_accounts(session, workspace_id, playbook)
    row = PlaybookVersion(
        workspace_id=workspace_id,
        version=version,
        name=playbook.name,
        document=document,
        published_by=actor,
        note=note,
    )
    session.add(row)
    await _sync_lifecycle_tables(session, workspace, playbook)
    workspace.playbook_version = version
    await session.flush()
    _remember((workspace_id, version), playbook)
    return row


async def _refuse_orphaned_accounts(
    session: AsyncSession, workspace_id: uuid.UUID, playbook: Playbook
) -> None:
    counts = (
        await session.execute(
            select(col(Account.stage), func.count())
            .where(col(Account.workspace_id) == workspace_id)
            .group_by(col(Account.stage))
        )
    ).all()
    orphaned = {stage: count for stage, count in counts if stage not in playbook.stages}
    if orphaned:
        listed = ", ".join(
            f"{stage} ({count} accounts)" for stage, count in sorted(orphaned.items())
        )
        raise Conflict(
            f"the new playbook drops stages that accounts are in: {listed}; keep those stages "
            "or move the accounts first",
            stages_in_use=sorted(orphaned),
        )


async def _sync_lifecycle_tables(
    session: AsyncSession, workspace: Workspace, playbook: Playbook
) -> None:
    await session.execute(delete(Stage).where(col(Stage.workspace_id) == workspace.id))
    await session.execute(delete(Department).where(col(Department.workspace_id) == workspace.id))
    await session.execute(
        insert(Department),
        [
            {"id": uuid7(), "workspace_id": workspace.id, "key": key, "name": name}
            for key, name in playbook.departments.items()
        ],
    )
    await session.execute(
        insert(Stage),
        [
            {
                "id": uuid7(),
                "workspace_id": workspace.id,
                "key": spec.key,
                "name": spec.name,
                "position": spec.position,
                "quarterback": playbook.quarterback(spec.key, workspace.renewal_quarterback),
                "quarterback_role": spec.quarterback,
                "quarterback_name": playbook.departments.get(
                    playbook.quarterback(spec.key, workspace.renewal_quarterback), ""
                ),
                "supporting": [
                    workspace.renewal_quarterback if d == playbook_document.RENEWAL_OWNER else d
                    for d in spec.supporting
                ],
                "next_stages": list(spec.next),
                "backward_stages": list(spec.back),
                "entered_when": spec.entered_when,
                "handoff_checklist": list(spec.handoff_checklist),
                "handoff_due_days": spec.handoff_due_days,
                "accept_within_days": spec.accept_within_days,
                "stuck_rules": [
                    rule.document
                    for rule in playbook.time_rules
                    if rule.kind == "stuck_in_stage" and rule.stage == spec.key
                ],
            }
            for spec in playbook.stages.values()
        ],
    )
