"""Fiscal quarters: labels, date ranges and the workspace's fiscal year start."""

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.errors import InvalidInput
from service.kit.fiscal import FiscalQuarter, parse_quarter

months = st.integers(min_value=1, max_value=12)
days = st.dates(min_value=date(1950, 1, 1), max_value=date(2900, 12, 31))


@pytest.mark.parametrize("text", ["2027-Q1", "FY2027-Q1", "fy2027-q1", " 2027-Q1 "])
def test_both_spellings_parse(text):
    assert FiscalQuarter.parse(text) == FiscalQuarter(2027, 1)


@pytest.mark.parametrize(
    "text", ["2027-Q5", "2027-Q0", "27-Q1", "2027Q1", "Q1-2027", "", "0999-Q1"]
)
def test_bad_labels_are_refused_with_the_expected_form(text):
    with pytest.raises(InvalidInput) as raised:
        parse_quarter(text)
    assert raised.value.status == 422
    assert raised.value.extra["errors"][0]["field"] == "quarter"


def test_calendar_fiscal_year():
    q1 = FiscalQuarter(2027, 1)
    assert (q1.starts_on(1), q1.ends_on(1)) == (date(2027, 1, 1), date(2027, 3, 31))
    q4 = FiscalQuarter(2027, 4)
    assert (q4.starts_on(1), q4.ends_on(1)) == (date(2027, 10, 1), date(2027, 12, 31))
    assert str(q1) == "2027-Q1"


def test_a_fiscal_year_is_named_by_the_year_it_ends_in():
    # February start: FY2027 runs February 2026 to January 2027.
    q1 = FiscalQuarter(2027, 1)
    assert (q1.starts_on(2), q1.ends_on(2)) == (date(2026, 2, 1), date(2026, 4, 30))
    q4 = FiscalQuarter(2027, 4)
    assert (q4.starts_on(2), q4.ends_on(2)) == (date(2026, 11, 1), date(2027, 1, 31))
    assert FiscalQuarter.containing(date(2027, 1, 15), 2) == q4
    assert FiscalQuarter.containing(date(2027, 2, 1), 2) == FiscalQuarter(2028, 1)
    # July start (a common one): FY2027 is July 2026 to June 2027.
    assert FiscalQuarter(2027, 1).starts_on(7) == date(2026, 7, 1)
    assert FiscalQuarter(2027, 3).ends_on(7) == date(2027, 3, 31)


@given(day=days, start_month=months)
def test_every_day_falls_in_the_quarter_that_contains_it(day, start_month):
    quarter = FiscalQuarter.containing(day, start_month)
    assert quarter.starts_on(start_month) <= day <= quarter.ends_on(start_month)
    assert FiscalQuarter.parse(str(quarter)) == quarter


@given(day=days, start_month=months)
def test_quarters_agree_with_the_forecasts_grouping(day, start_month):
    # The formula service/forecasts/service.py groups renewals by, written out in Python.
    shifted = (day.month - start_month + 12) % 12
    fiscal_year = day.year if start_month == 1 else day.year + (day.month >= start_month)
    assert FiscalQuarter.containing(day, start_month) == FiscalQuarter(
        fiscal_year, shifted // 3 + 1
    )


@given(year=st.integers(1901, 2998), quarter=st.integers(1, 4), start_month=months)
def test_quarters_tile_the_calendar_and_labels_sort_in_order(year, quarter, start_month):
    this = FiscalQuarter(year, quarter)
    following = this.next()
    assert following.starts_on(start_month) == this.ends_on(start_month) + timedelta(days=1)
    length = (this.ends_on(start_month) - this.starts_on(start_month)).days + 1
    assert 89 <= length <= 92  # three months
    assert this < following and str(this) < str(following)
