"""Plan health and the plan calendar as pure functions: dates are passed in, no clock."""

from datetime import date
from decimal import Decimal

import pytest

from service.plans.calendar import (
    add_months,
    default_ends_on,
    quarter_end,
    quarter_of,
    touchpoint_schedule,
)
from service.plans.health import expected_progress, outcome_health, plan_health, progress

START, END = date(2020, 1, 1), date(2020, 12, 31)


def health(baseline, target, quarter, value, as_of, status="in_progress"):
    return outcome_health(
        starts_on=START,
        ends_on=END,
        baseline=Decimal(baseline),
        target=Decimal(target),
        target_quarter=quarter,
        latest_value=None if value is None else Decimal(value),
        as_of=as_of,
        status=status,
    )


def test_quarters_of_a_calendar_year():
    assert default_ends_on(START) == END
    assert [quarter_end(START, END, q) for q in (1, 2, 3, 4)] == [
        date(2020, 3, 31),
        date(2020, 6, 30),
        date(2020, 9, 30),
        date(2020, 12, 31),
    ]
    assert quarter_of(START, END, date(2020, 4, 1)) == 2
    assert quarter_of(START, END, date(2021, 1, 1)) is None
    with pytest.raises(ValueError):
        quarter_end(START, END, 5)


def test_quarters_of_a_mid_month_contract_and_month_ends():
    start = date(2023, 11, 15)
    end = default_ends_on(start)
    assert end == date(2024, 11, 14)
    assert quarter_end(start, end, 1) == date(2024, 2, 14)
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)  # clamped to the month's end
    # A shorter contract cuts the quarters at its end.
    assert quarter_end(start, date(2024, 1, 31), 2) == date(2024, 1, 31)


def test_touchpoint_schedule_follows_the_cadence():
    schedule = touchpoint_schedule(
        START,
        END,
        [
            {"name": "Business review", "every_quarters": 1, "department": "csm"},
            {"name": "Executive sponsor call", "every_quarters": 2, "department": "sales"},
            {"name": "Renewal review", "every_quarters": 4, "department": "csm"},
        ],
    )
    by_name: dict[str, list[int]] = {}
    for due in schedule:
        by_name.setdefault(due.name, []).append(due.quarter)
    assert by_name == {
        "Business review": [1, 2, 3, 4],
        "Executive sponsor call": [2, 4],
        "Renewal review": [4],
    }
    assert schedule[0].due_on == date(2020, 3, 31)
    assert [due.due_on for due in schedule] == sorted(due.due_on for due in schedule)


def test_progress_runs_from_baseline_to_target_in_either_direction():
    assert progress(Decimal(0), Decimal(100), Decimal(25)) == Decimal("0.25")
    assert progress(Decimal(200), Decimal(100), Decimal(150)) == Decimal("0.5")  # reduce
    assert progress(Decimal(200), Decimal(100), Decimal(250)) == 0  # the wrong way
    assert progress(Decimal(0), Decimal(100), Decimal(130)) == 1  # past the target


def test_expected_progress_is_linear_to_the_end_of_the_target_quarter():
    deadline = date(2020, 6, 30)  # 181 days after the start
    assert expected_progress(START, deadline, START) == 0
    assert expected_progress(START, deadline, date(2019, 12, 1)) == 0
    assert expected_progress(START, deadline, date(2020, 4, 1)) == Decimal(91) / Decimal(181)
    assert expected_progress(START, deadline, deadline) == 1
    assert expected_progress(START, deadline, date(2020, 9, 1)) == 1


def test_without_a_measurement_on_track_only_in_the_first_quarter():
    assert health(0, 100, 4, None, date(2020, 3, 31)).health == "on_track"
    late = health(0, 100, 4, None, date(2020, 4, 1))
    assert late.health == "at_risk"
    assert late.progress is None
    assert "first quarter" in late.reason


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("50", "on_track"),  # 0.50 of the road, 0.4986 expected
        ("45", "on_track"),  # 0.45 >= 0.9 * 0.4986
        ("44", "at_risk"),
        ("30", "at_risk"),  # 0.30 >= 0.6 * 0.4986
        ("29", "off_track"),
        ("-10", "off_track"),  # moved away from the target
    ],
)
def test_measured_progress_against_the_calendar(value, expected):
    # Baseline 0 to 100 by the end of Q4; on 2020-07-01, 182 of 365 days are gone.
    result = health(0, 100, 4, value, date(2020, 7, 1))
    assert result.health == expected
    assert result.expected_progress == Decimal("0.4986")


def test_reduce_target_after_its_deadline_needs_ninety_percent():
    # "Support tickets from 200 down to 100 by the end of Q2", looked at on Q3's first day.
    after = date(2020, 7, 1)
    assert health(200, 100, 2, "110", after).health == "on_track"  # exactly 0.9 of the road
    assert health(200, 100, 2, "110.0001", after).health == "at_risk"
    assert health(200, 100, 2, "140", after).health == "at_risk"
    assert health(200, 100, 2, "140.0001", after).health == "off_track"
    assert health(200, 100, 2, "90", after).progress == 1


def test_target_reached_early_is_on_track():
    result = health(10, 20, 4, "20", date(2020, 1, 10))
    assert (result.health, result.progress, result.reason) == (
        "on_track",
        Decimal("1.0000"),
        "target reached",
    )


def test_on_the_first_day_nothing_is_expected_yet():
    assert health(0, 100, 1, "0", START).health == "on_track"


def test_status_set_by_a_person_wins():
    assert health(0, 100, 1, "0", date(2020, 12, 1), status="achieved").health == "on_track"
    assert health(0, 100, 4, "100", date(2020, 12, 1), status="missed").health == "off_track"


def test_plan_health_is_the_worst_outcome():
    assert plan_health([]) == "on_track"
    assert plan_health(["on_track", "on_track"]) == "on_track"
    assert plan_health(["on_track", "at_risk"]) == "at_risk"
    assert plan_health(["at_risk", "off_track", "on_track"]) == "off_track"
