"""Reading and checking playbook documents (YAML or JSON) before anything is published.

Two passes, each error reported with the JSON pointer of the offending value: the JSON
Schema in `schemas/playbook.schema.json` (shape), then references between parts (a rule
moving to a stage that does not exist, a quarterback that is not a department, …).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from service.forecasts.settings import DEFAULT_THRESHOLDS

RENEWAL_OWNER = "renewal_owner"
TEMPLATE_FIELDS = frozenset(
    {
        "account.name",
        "account.domain",
        "account.segment",
        "stage",
        "previous_stage",
        "event.type",
        "event.id",
    }
)
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


class _Yaml12Loader(yaml.SafeLoader):
    """YAML where only true/false are booleans: `on:` is a key, not True (YAML 1.1's trap)."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


@dataclass(frozen=True)
class DocumentError:
    pointer: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"pointer": self.pointer, "message": self.message}


class InvalidPlaybook(ValueError):
    def __init__(self, errors: list[DocumentError]) -> None:
        super().__init__(f"{len(errors)} error(s) in the playbook")
        self.errors = errors


def parse(text: str) -> Any:
    """Parse YAML or JSON text (JSON is YAML); syntax errors become a DocumentError."""
    try:
        return yaml.load(text, Loader=_Yaml12Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InvalidPlaybook([DocumentError("", f"not valid YAML or JSON{where}")]) from None


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    schema_text = _schema_text()
    return Draft202012Validator(json.loads(schema_text))


def _schema_text() -> str:
    # The package holds the schema (so an installed image can validate); `make schemas`
    # copies it to schemas/playbook.schema.json, the contract file people read.
    return resources.files("service.playbooks").joinpath("playbook.schema.json").read_text()


def _pointer(path: Any) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def validate(document: Any) -> list[DocumentError]:
    """Every problem in the document, shape first; an empty list means it can be published."""
    shape = sorted(
        (
            DocumentError(_pointer(e.absolute_path), e.message)
            for e in _validator().iter_errors(document)
        ),
        key=lambda error: error.pointer,
    )
    if shape:
        return shape
    return _check_references(document)


def _check_references(doc: dict[str, Any]) -> list[DocumentError]:
    errors: list[DocumentError] = []
    departments = set(doc["departments"]) | {RENEWAL_OWNER}
    stage_keys = [stage["key"] for stage in doc["stages"]]
    known_stages = set(stage_keys)

    def department(pointer: str, value: str | None) -> None:
        if value is not None and value not in departments:
            errors.append(DocumentError(pointer, f"{value!r} is not a department of this playbook"))

    def stage(pointer: str, value: str | None) -> None:
        if value is not None and value not in known_stages:
            errors.append(DocumentError(pointer, f"{value!r} is not a stage of this playbook"))

    def template(pointer: str, task: dict[str, Any]) -> None:
        department(pointer + "/department", task.get("department"))
        department(pointer + "/owner_role", task.get("owner_role"))
        for field in _PLACEHOLDER.findall(task["title"]):
            if field not in TEMPLATE_FIELDS:
                allowed = ", ".join("{" + f + "}" for f in sorted(TEMPLATE_FIELDS))
                errors.append(
                    DocumentError(
                        pointer + "/title", f"unknown placeholder {{{field}}}; use {allowed}"
                    )
                )

    seen: set[str] = set()
    for index, spec in enumerate(doc["stages"]):
        base = f"/stages/{index}"
        if spec["key"] in seen:
            errors.append(DocumentError(base + "/key", f"stage {spec['key']} is defined twice"))
        seen.add(spec["key"])
        department(base + "/quarterback", spec["quarterback"])
        for position, value in enumerate(spec.get("supporting", [])):
            department(f"{base}/supporting/{position}", value)
        for kind in ("next", "back"):
            for position, value in enumerate(spec.get(kind, [])):
                stage(f"{base}/{kind}/{position}", value)
                if value == spec["key"]:
                    errors.append(
                        DocumentError(f"{base}/{kind}/{position}", "a stage cannot move to itself")
                    )
    for index, rule in enumerate(doc["rules"]):
        base = f"/rules/{index}"
        stage(base + "/move_to", rule.get("move_to"))
        for position, value in enumerate(rule.get("when", {}).get("stage_in", [])):
            stage(f"{base}/when/stage_in/{position}", value)
        when = rule.get("when", {})
        if (
            "arr_min" in when
            and "arr_max" in when
            and Decimal(when["arr_min"]) > Decimal(when["arr_max"])
        ):
            errors.append(DocumentError(base + "/when", "arr_min is larger than arr_max"))
        for position, task in enumerate(rule.get("tasks", [])):
            template(f"{base}/tasks/{position}", task)
    for index, time_rule in enumerate(doc.get("time_rules", [])):
        base = f"/time_rules/{index}"
        stage(base + "/stage", time_rule.get("stage"))
        if "task" in time_rule:
            template(base + "/task", time_rule["task"])
    for index, touchpoint in enumerate(doc.get("success_plan", {}).get("touchpoints", [])):
        department(f"/success_plan/touchpoints/{index}/department", touchpoint["department"])
    forecast = doc.get("forecast", {})
    for key in forecast.get("stage_weights", {}):
        stage(f"/forecast/stage_weights/{key}", key)
    thresholds = {**DEFAULT_THRESHOLDS, **forecast.get("thresholds", {})}
    if not thresholds["commit"] >= thresholds["best_case"] >= thresholds["at_risk"]:
        errors.append(
            DocumentError(
                "/forecast/thresholds",
                "thresholds must satisfy commit ≥ best_case ≥ at_risk; here "
                f"{thresholds['commit']}, {thresholds['best_case']}, {thresholds['at_risk']}",
            )
        )
    return errors


def load(text: str) -> dict[str, Any]:
    """Parse and validate; raise InvalidPlaybook with every error."""
    document = parse(text)
    errors = validate(document)
    if errors:
        raise InvalidPlaybook(errors)
    return document


@lru_cache(maxsize=1)
def default_document_text() -> str:
    return resources.files("service.playbooks").joinpath("default.yaml").read_text()


def default_document() -> dict[str, Any]:
    return load(default_document_text())
