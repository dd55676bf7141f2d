"""What a decision does, spelled out: the handoff, the tasks and the plan it raises.

Used by the event path (which then writes them) and by simulation (which returns them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from service.playbooks.document import RENEWAL_OWNER
from service.playbooks.rules import Decision, Facts, Playbook, TaskTemplate

_PLACEHOLDER = re.compile(r"\{([a-z_.]+)\}")


@dataclass(frozen=True)
class Owner:
    user_id: str
    name: str | None


@dataclass(frozen=True)
class PlannedTask:
    kind: str
    title: str
    department: str
    assignee: Owner | None
    due_in_business_days: int | None
    priority: str
    checklist: tuple[str, ...]
    from_department: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "title": self.title,
            "department": self.department,
            "from_department": self.from_department,
            "assignee_id": self.assignee.user_id if self.assignee else None,
            "assignee_name": self.assignee.name if self.assignee else None,
            "due_in_business_days": self.due_in_business_days,
            "priority": self.priority,
            "checklist": list(self.checklist),
        }


@dataclass(frozen=True)
class Effects:
    decision: Decision
    from_stage: str
    handoff: PlannedTask | None = None
    tasks: tuple[PlannedTask, ...] = field(default_factory=tuple)
    scaffold_plan: bool = False


def render_title(template: str, values: dict[str, str]) -> str:
    """Fill the placeholders the playbook schema allows; nothing else is evaluated."""
    return _PLACEHOLDER.sub(lambda match: values.get(match.group(1), match.group(0)), template)


def plan_effects(
    playbook: Playbook,
    decision: Decision,
    facts: Facts,
    *,
    account: dict[str, Any],
    owners: dict[str, Owner],
    renewal_owner: str,
    department_label: Any = None,
) -> Effects:
    if decision.outcome != "apply":
        return Effects(decision=decision, from_stage=facts.stage)
    label = department_label or (lambda key: playbook.departments.get(key, key))
    values = {
        "account.name": str(account.get("name") or ""),
        "account.domain": str(account.get("domain") or ""),
        "account.segment": str(account.get("segment") or ""),
        "stage": decision.to_stage or facts.stage,
        "previous_stage": facts.stage,
        "event.type": facts.event_type,
        "event.id": facts.event_id,
    }

    def resolve(department: str) -> str:
        return renewal_owner if department == RENEWAL_OWNER else department

    handoff = None
    if decision.to_stage is not None:
        giver = playbook.quarterback(facts.stage, renewal_owner)
        receiver = playbook.quarterback(decision.to_stage, renewal_owner)
        if giver != receiver:
            target = playbook.stages[decision.to_stage]
            handoff = PlannedTask(
                kind="handoff",
                title=f"Handoff: {values['account.name']} from {label(giver)} to {label(receiver)}",
                department=receiver,
                from_department=giver,
                assignee=owners.get(receiver),
                due_in_business_days=target.handoff_due_days,
                priority="high",
                checklist=target.handoff_checklist,
            )

    def task(template: TaskTemplate) -> PlannedTask:
        department = resolve(template.owner_role or template.department or "")
        return PlannedTask(
            kind="task",
            title=render_title(template.title, values),
            department=department,
            assignee=owners.get(department) if template.owner_role else None,
            due_in_business_days=template.due_in_business_days,
            priority=template.priority,
            checklist=template.checklist,
        )

    rule = decision.rule
    return Effects(
        decision=decision,
        from_stage=facts.stage,
        handoff=handoff,
        tasks=tuple(task(template) for template in rule.tasks) if rule else (),
        scaffold_plan=bool(rule and rule.scaffold_plan),
    )
