"""Due dates count business days in the workspace's time zone and holiday calendar."""

import uuid
from datetime import UTC, date, datetime

import pytest

from service.kit.dates import add_business_days, is_valid_calendar, local_today
from service.lifecycle.transitions import transition_account
from tests import factories


@pytest.mark.parametrize(
    ("start", "days", "calendar", "expected"),
    [
        (date(2027, 7, 1), 2, None, date(2027, 7, 5)),  # Thu + 2 → Mon
        (date(2027, 7, 1), 2, "US", date(2027, 7, 6)),  # Mon 5 July: Independence Day observed
        (date(2027, 12, 23), 2, "GB", date(2027, 12, 29)),  # Christmas and Boxing Day observed
        (date(2027, 12, 23), 2, None, date(2027, 12, 27)),
        (date(2027, 5, 7), 1, "DE", date(2027, 5, 10)),
        (date(2027, 5, 5), 1, "DE", date(2027, 5, 7)),  # Ascension Day, Thu 6 May
        (date(2027, 3, 30), 1, "US-MA", date(2027, 3, 31)),
        (date(2027, 4, 16), 1, "US-MA", date(2027, 4, 20)),  # Patriots' Day in Massachusetts
        (date(2027, 4, 16), 1, "US", date(2027, 4, 19)),
        (date(2027, 7, 2), 0, "US", date(2027, 7, 2)),
    ],
)
def test_add_business_days(start, days, calendar, expected):
    assert add_business_days(start, days, calendar) == expected


def test_calendars_are_validated():
    assert is_valid_calendar("US") and is_valid_calendar("US-CA") and is_valid_calendar("DE")
    assert not is_valid_calendar("XX") and not is_valid_calendar("US-ZZ")


def test_local_today_uses_the_time_zone():
    late_evening_utc = datetime(2027, 7, 1, 23, 30, tzinfo=UTC)
    assert local_today(late_evening_utc, "UTC") == date(2027, 7, 1)
    assert local_today(late_evening_utc, "Asia/Tokyo") == date(2027, 7, 2)
    assert local_today(late_evening_utc, "America/Los_Angeles") == date(2027, 7, 1)


async def test_handoff_due_date_uses_workspace_calendar_and_zone(client, db, workspace):
    response = await client.patch(
        "/v1/workspace",
        json={"holiday_calendar": "US", "timezone": "America/New_York"},
        headers=workspace.headers,
    )
    assert response.status_code == 200 and response.json()["holiday_calendar"] == "US"
    account = await factories.create_account(client, workspace, stage="ACQUIRE")
    # Thursday 1 July 2027, 23:30 UTC is still Thursday evening in New York.
    now = datetime(2027, 7, 1, 23, 30, tzinfo=UTC)
    async with db.sessionmaker() as session, session.begin():
        result = await transition_account(
            session,
            workspace_id=workspace.id,
            account_id=uuid.UUID(account["id"]),
            to_stage="IMPLEMENT",
            now=now,
        )
    # +2 business days from Thursday, skipping Monday 5 July (observed holiday).
    assert result.handoff_task["due_on"] == date(2027, 7, 6)


async def test_bad_calendar_is_422_and_null_clears(client, workspace):
    bad = await client.patch(
        "/v1/workspace", json={"holiday_calendar": "Narnia"}, headers=workspace.headers
    )
    assert bad.status_code == 422
    await client.patch("/v1/workspace", json={"holiday_calendar": "DE"}, headers=workspace.headers)
    cleared = await client.patch(
        "/v1/workspace", json={"holiday_calendar": None}, headers=workspace.headers
    )
    assert cleared.json()["holiday_calendar"] is None
