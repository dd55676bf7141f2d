"""The canonical lifecycle event contract: a valid JSON Schema whose examples validate."""

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator, FormatChecker

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[1] / "schemas" / "lifecycle-event.schema.json").read_text()
)
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=FormatChecker())


def test_schema_is_valid_2020_12():
    Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("example", SCHEMA["examples"], ids=lambda e: e["id"])
def test_examples_validate(example):
    VALIDATOR.validate(example)


@pytest.mark.parametrize(
    "broken",
    [
        {"type": "closed_won", "occurred_at": "2027-01-01T00:00:00Z", "account": {"id": "x"}},
        {"id": "1", "type": "won", "occurred_at": "2027-01-01T00:00:00Z", "account": {"id": "x"}},
        {"id": "1", "type": "closed_won", "occurred_at": "2027-01-01T00:00:00Z", "account": {}},
        {
            "id": "1",
            "type": "stage_changed",
            "occurred_at": "2027-01-01T00:00:00Z",
            "account": {"external_id": "a"},
        },
        {
            "id": "1",
            "type": "closed_won",
            "occurred_at": "2027-01-01T00:00:00Z",
            "account": {"external_id": "a"},
            "opportunity": {"external_id": "o", "amount": 1.5},
        },
    ],
)
def test_broken_events_are_refused(broken):
    assert list(VALIDATOR.iter_errors(broken))
