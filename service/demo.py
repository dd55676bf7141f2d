"""The demo workspace `make run` starts with: accounts in several stages and open handoffs.

Everything is created through the same service functions the API uses, so the history
and the handoff tasks are real.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service.accounts import service as accounts_service
from service.lifecycle import transitions
from service.tasks import service as tasks_service
from service.workspaces import service as workspaces_service
from service.workspaces.models import Workspace

DEMO_WORKSPACE = "Demo Co"
ACTOR = "demo"

OWNERS = {
    "marketing": {"user_id": "u-maya", "name": "Maya (Marketing)"},
    "sales": {"user_id": "u-sam", "name": "Sam (Sales)"},
    "professional_services": {"user_id": "u-priya", "name": "Priya (Professional Services)"},
    "csm": {"user_id": "u-chris", "name": "Chris (CSM)"},
}

# (name, domain, segment, ARR, the path of stages it has walked)
ACCOUNTS: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    ("Acme Corp", "acme.example", "high_touch", "120000", ("ACQUIRE", "IMPLEMENT")),
    ("Globex", "globex.example", "mid_touch", "48000", ("ACQUIRE",)),
    ("Initech", "initech.example", "high_touch", "96000", ("ACQUIRE", "IMPLEMENT", "VALUE")),
    ("Umbrella Health", "umbrella.example", "mid_touch", "36000", ()),
    ("Hooli", "hooli.example", "high_touch", "250000", ("ACQUIRE", "IMPLEMENT", "VALUE", "RENEW")),
    (
        "Stark Logistics",
        "stark.example",
        "low_touch",
        "12000",
        ("ACQUIRE", "IMPLEMENT", "VALUE", "EXPAND"),
    ),
)


@dataclass(frozen=True)
class DemoKey:
    workspace_id: str
    api_key: str
    created: bool


async def ensure_demo(session: AsyncSession) -> DemoKey:
    """Create the demo workspace once; issue a fresh admin key on every call."""
    workspace = await session.scalar(
        select(Workspace)
        .where(col(Workspace.name) == DEMO_WORKSPACE)
        .order_by(col(Workspace.id))
        .limit(1)
    )
    created = workspace is None
    if workspace is None:
        workspace = await workspaces_service.create_workspace(session, name=DEMO_WORKSPACE)
        for index, (name, domain, segment, arr, path) in enumerate(ACCOUNTS):
            view = await accounts_service.create_account(
                session,
                workspace_id=workspace.id,
                name=name,
                domain=domain,
                segment=segment,
                arr=Decimal(arr),
                owners=OWNERS,
                external_ids={"hubspot": str(1000 + index)},
                actor=ACTOR,
            )
            previous_handoff = None
            for stage in path:
                if previous_handoff is not None:
                    # Earlier handoffs were taken over and finished; only the latest is open.
                    await tasks_service.accept_handoff(
                        session, workspace_id=workspace.id, task_id=previous_handoff, actor=ACTOR
                    )
                    await tasks_service.update_task(
                        session,
                        workspace_id=workspace.id,
                        task_id=previous_handoff,
                        changes={"status": "done"},
                        actor=ACTOR,
                    )
                result = await transitions.transition_account(
                    session,
                    workspace_id=workspace.id,
                    account_id=view.account.id,
                    to_stage=stage,
                    reason="demo data",
                    actor=ACTOR,
                    handoff_context={"notes": f"{name}: demo handoff notes", "risks": []},
                )
                if result.handoff_task is not None:
                    previous_handoff = result.handoff_task["id"]
    _, raw_key = await workspaces_service.create_api_key(
        session, workspace_id=workspace.id, name="demo admin (serve --demo)", scopes=["admin"]
    )
    return DemoKey(workspace_id=str(workspace.id), api_key=raw_key, created=created)


def curl_examples(base_url: str, api_key: str) -> list[str]:
    auth = f'-H "Authorization: Bearer {api_key}"'
    return [
        f"curl -s {auth} {base_url}/v1/lifecycle",
        f"curl -s {auth} '{base_url}/v1/accounts?stage=IMPLEMENT'",
        f"curl -s {auth} '{base_url}/v1/tasks?status=open&department=professional_services'",
    ]
