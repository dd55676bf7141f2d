"""The compiled playbook and the decision it makes for one event.

A published document compiles once into frozen dataclasses; `decide` is a pure function of
the playbook and the facts of one event (no database, no clock), so the same code runs an
event for real and simulates it. Rules are evaluated in document order and the first whose
`on` and `when` match decides.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from service.playbooks.document import RENEWAL_OWNER

Outcome = Literal["apply", "pending", "ignored"]


@dataclass(frozen=True)
class TaskTemplate:
    title: str
    department: str | None
    owner_role: str | None
    due_in_business_days: int | None
    priority: str
    checklist: tuple[str, ...]

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> TaskTemplate:
        return cls(
            title=raw["title"],
            department=raw.get("department"),
            owner_role=raw.get("owner_role"),
            due_in_business_days=raw.get("due_in_business_days"),
            priority=raw.get("priority", "normal"),
            checklist=tuple(raw.get("checklist", ())),
        )


@dataclass(frozen=True)
class Facts:
    """What a rule may look at: the event and the account as it is now."""

    event_type: str
    event_id: str
    source: str
    stage: str
    segment: str
    arr: Decimal
    data: dict[str, Any] = field(default_factory=dict)
    to_stage: str | None = None


@dataclass(frozen=True)
class Condition:
    stage_in: frozenset[str] | None = None
    segment_in: frozenset[str] | None = None
    arr_min: Decimal | None = None
    arr_max: Decimal | None = None
    source_in: frozenset[str] | None = None
    data: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Condition:
        def maybe_set(key: str) -> frozenset[str] | None:
            return frozenset(raw[key]) if key in raw else None

        return cls(
            stage_in=maybe_set("stage_in"),
            segment_in=maybe_set("segment_in"),
            arr_min=Decimal(raw["arr_min"]) if "arr_min" in raw else None,
            arr_max=Decimal(raw["arr_max"]) if "arr_max" in raw else None,
            source_in=maybe_set("source_in"),
            data=tuple(sorted(raw.get("data", {}).items())),
        )

    def mismatch(self, facts: Facts) -> str | None:
        """Why the facts fail this condition, or None when they match."""
        if self.stage_in is not None and facts.stage not in self.stage_in:
            return f"the account is in {facts.stage}, not {', '.join(sorted(self.stage_in))}"
        if self.segment_in is not None and facts.segment not in self.segment_in:
            return f"segment {facts.segment} is not {', '.join(sorted(self.segment_in))}"
        if self.arr_min is not None and facts.arr < self.arr_min:
            return f"ARR {facts.arr} is below {self.arr_min}"
        if self.arr_max is not None and facts.arr > self.arr_max:
            return f"ARR {facts.arr} is above {self.arr_max}"
        if self.source_in is not None and facts.source not in self.source_in:
            return f"source {facts.source} is not {', '.join(sorted(self.source_in))}"
        for key, expected in self.data:
            if facts.data.get(key) != expected:
                return f"data.{key} is not {expected!r}"
        return None


@dataclass(frozen=True)
class Rule:
    name: str
    on: str
    when: Condition
    move_to: str | None
    tasks: tuple[TaskTemplate, ...]
    scaffold_plan: bool

    @classmethod
    def parse(cls, index: int, raw: dict[str, Any]) -> Rule:
        return cls(
            name=raw.get("name") or f"rule {index + 1} ({raw['on']})",
            on=raw["on"],
            when=Condition.parse(raw.get("when", {})),
            move_to=raw.get("move_to"),
            tasks=tuple(TaskTemplate.parse(task) for task in raw.get("tasks", ())),
            scaffold_plan=raw.get("success_plan") == "scaffold",
        )


@dataclass(frozen=True)
class StageSpec:
    key: str
    name: str
    position: int
    quarterback: str  # a department key or RENEWAL_OWNER
    supporting: tuple[str, ...]
    next: tuple[str, ...]
    back: tuple[str, ...]
    entered_when: str
    handoff_checklist: tuple[str, ...]
    handoff_due_days: int
    accept_within_days: int


@dataclass(frozen=True)
class TimeRule:
    name: str
    kind: str
    days: int
    emit: str | None
    stage: str | None
    unless: str | None
    task: TaskTemplate | None
    document: dict[str, Any]


@dataclass(frozen=True)
class Playbook:
    version: int
    name: str
    departments: dict[str, str]
    stages: dict[str, StageSpec]
    rules: tuple[Rule, ...]
    out_of_order: str
    time_rules: tuple[TimeRule, ...]
    success_plan: dict[str, Any]
    document: dict[str, Any]

    @property
    def initial_stage(self) -> str:
        return min(self.stages.values(), key=lambda stage: stage.position).key

    def quarterback(self, stage: str, renewal_owner: str) -> str:
        owner = self.stages[stage].quarterback
        return renewal_owner if owner == RENEWAL_OWNER else owner

    def forward_path(self, start: str, goal: str) -> tuple[str, ...] | None:
        """The stages between `start` and `goal` along forward moves (shortest), or None."""
        previous: dict[str, str] = {}
        queue = deque([start])
        while queue:
            current = queue.popleft()
            for following in self.stages[current].next:
                if following in previous or following == start:
                    continue
                previous[following] = current
                if following == goal:
                    path = []
                    step = previous[goal]
                    while step != start:
                        path.append(step)
                        step = previous[step]
                    return tuple(reversed(path))
                queue.append(following)
        return None


def compile_playbook(document: dict[str, Any], version: int) -> Playbook:
    """Turn a validated document into the structures rules run on."""
    defaults = document.get("handoffs", {})
    stages = {}
    for position, raw in enumerate(document["stages"]):
        handoff = raw.get("handoff", {})
        stages[raw["key"]] = StageSpec(
            key=raw["key"],
            name=raw["name"],
            position=position,
            quarterback=raw["quarterback"],
            supporting=tuple(raw.get("supporting", ())),
            next=tuple(raw.get("next", ())),
            back=tuple(raw.get("back", ())),
            entered_when=raw.get("entered_when", ""),
            handoff_checklist=tuple(handoff.get("checklist", defaults.get("checklist", ()))),
            handoff_due_days=handoff.get(
                "due_in_business_days", defaults.get("due_in_business_days", 2)
            ),
            accept_within_days=handoff.get(
                "accept_within_business_days", defaults.get("accept_within_business_days", 2)
            ),
        )
    return Playbook(
        version=version,
        name=document["name"],
        departments=dict(document["departments"]),
        stages=stages,
        rules=tuple(Rule.parse(index, raw) for index, raw in enumerate(document["rules"])),
        out_of_order=document.get("events", {}).get("out_of_order", "pending"),
        time_rules=tuple(
            TimeRule(
                name=raw.get("name") or raw["kind"],
                kind=raw["kind"],
                days=raw["days"],
                emit=raw.get("emit"),
                stage=raw.get("stage"),
                unless=raw.get("unless"),
                task=TaskTemplate.parse(raw["task"]) if "task" in raw else None,
                document=dict(raw),
            )
            for raw in document.get("time_rules", ())
        ),
        success_plan=dict(document.get("success_plan", {})),
        document=document,
    )


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reason: str | None
    rule: Rule | None = None
    to_stage: str | None = None
    skipped: tuple[str, ...] = ()

    @property
    def moves(self) -> bool:
        return self.outcome == "apply" and self.to_stage is not None


def decide(playbook: Playbook, facts: Facts) -> Decision:
    """What the playbook does with this event for this account."""
    rule, why_not = _matching_rule(playbook, facts)
    if facts.event_type == "stage_changed":
        target = facts.to_stage
    elif rule is None:
        return Decision("ignored", why_not)
    else:
        target = rule.move_to
    if target is None:
        if rule is not None and (rule.tasks or rule.scaffold_plan):
            return Decision("apply", None, rule)
        return Decision("ignored", f"{rule.name if rule else facts.event_type} moves no stage")
    if target not in playbook.stages:
        return Decision(
            "ignored", f"{target} is not a stage of playbook version {playbook.version}"
        )
    if target == facts.stage:
        return Decision("ignored", f"the account is already in {target}", rule)
    current = playbook.stages[facts.stage] if facts.stage in playbook.stages else None
    if current is None:
        return Decision(
            "ignored", f"the account's stage {facts.stage} is not in the playbook", rule
        )
    if target in current.back and not _names_stage(rule, facts):
        # A late or repeated event (closed_won for an account already live) must not drag
        # the account back; a rule moves backward only where it names the stage it leaves.
        return Decision(
            "ignored",
            f"{facts.event_type} would move the account back from {facts.stage} to {target}; "
            f"a rule must list {facts.stage} in when.stage_in to allow that",
            rule,
        )
    if target in current.next or target in current.back:
        return Decision("apply", None, rule, target)
    skipped = playbook.forward_path(facts.stage, target)
    if skipped is None:
        return Decision("ignored", f"an account in {facts.stage} does not move to {target}", rule)
    if playbook.out_of_order == "apply_skipping":
        return Decision("apply", None, rule, target, skipped)
    return Decision(
        "pending",
        f"{facts.event_type} moves to {target}, but the account is in {facts.stage} and must "
        f"pass {', '.join(skipped)} first; it applies when the account gets there",
        rule,
        target,
        skipped,
    )


def _names_stage(rule: Rule | None, facts: Facts) -> bool:
    if facts.event_type == "stage_changed":
        return True  # an explicit move, as if by a person
    return rule is not None and rule.when.stage_in is not None and facts.stage in rule.when.stage_in


def _matching_rule(playbook: Playbook, facts: Facts) -> tuple[Rule | None, str]:
    reasons = []
    for rule in playbook.rules:
        if rule.on != facts.event_type:
            continue
        mismatch = rule.when.mismatch(facts)
        if mismatch is None:
            return rule, ""
        reasons.append(f"{rule.name}: {mismatch}")
    if not reasons:
        return None, f"no rule of playbook version {playbook.version} handles {facts.event_type}"
    return None, "no rule matched (" + "; ".join(reasons) + ")"
