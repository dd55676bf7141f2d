"""Date arithmetic that compiles to the same answer on PostgreSQL and SQLite, and ways to
steer PostgreSQL's planner (a fence, an unindexed column, custom plans with more memory).

The forecast reads plan health in SQL, which needs day counts and "a date N months later,
clamped to the month's end" (service.plans.calendar.add_months). PostgreSQL does both
natively; SQLite spells them with julianday() and date() modifiers.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Date, Integer, Select, literal_column, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement


class days_between(FunctionElement[int]):
    """`later - earlier` in whole days (both dates)."""

    type = Integer()
    inherit_cache = True
    name = "days_between"


class add_months(FunctionElement[Any]):
    """`day` plus a literal number of months, clamped to the last day of the month."""

    type = Date()
    inherit_cache = True
    name = "add_months"

    def __init__(self, day: Any, months: int) -> None:
        # A literal column, not an attribute, so the statement cache keys on the number.
        super().__init__(day, literal_column(str(int(months))))


class unindexed(FunctionElement[Any]):
    """A date or number column's value, which the planner cannot match to an index on it."""

    inherit_cache = True
    name = "unindexed"

    def __init__(self, column: Any) -> None:
        super().__init__(column)
        self.type = column.type


@compiles(unindexed)
def _unindexed_default(element: unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"({column} + 0)"  # date + 0 days, or n + 0: the same value


@compiles(unindexed, "sqlite")
def _unindexed_sqlite(element: unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite's unary + returns its operand as it is, text dates included; it is that
    # database's own way of keeping a column away from its indexes.
    (column,) = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"+{column}"


@compiles(days_between)
def _days_between_default(element: days_between, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"(CAST({later} AS DATE) - CAST({earlier} AS DATE))"


@compiles(days_between, "sqlite")
def _days_between_sqlite(element: days_between, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"CAST(round(julianday({later}) - julianday({earlier})) AS INTEGER)"


@compiles(add_months)
def _add_months_default(element: add_months, compiler: SQLCompiler, **kw: Any) -> str:
    day, months = (compiler.process(arg, **kw) for arg in element.clauses)
    # PostgreSQL clamps to the month's end itself: Jan 31 + 1 month = Feb 28/29.
    return f"CAST(CAST({day} AS DATE) + INTERVAL '{months} months' AS DATE)"


@compiles(add_months, "sqlite")
def _add_months_sqlite(element: add_months, compiler: SQLCompiler, **kw: Any) -> str:
    day, text = (compiler.process(arg, **kw) for arg in element.clauses)
    months = int(text)
    # date(d, '+N months') rolls Jan 31 over into March; the month's last day caps it.
    return (
        f"min(date({day}, '+{months} months'), "
        f"date({day}, 'start of month', '+{months + 1} months', '-1 day'))"
    )


def fenced(statement: Select[Any]) -> Select[Any]:
    """`statement` with OFFSET 0, so that PostgreSQL plans it as a subquery of its own.

    Without the fence the planner pulls the subquery up into its parent and pastes each of its
    expressions wherever the parent names the column: a probability read by six category sums
    is then computed six times a row, and the score inside it as often. SQLite reads it as
    `LIMIT -1 OFFSET 0`, which changes nothing there."""
    return statement.offset(literal_column("0"))


# Memory each sort and hash of a forecast's whole-workspace statement may use before it spills
# to disk. PostgreSQL's default of 4 MB spilled four of them at 1M renewals (the plan facts,
# the latest opportunities, the groups, their order): 32 MB took the grouped statement, which
# then computed the facts itself, from 4.98 to 3.41 s there. Only ever raised, never lowered:
# a database configured for more keeps it.
WHOLE_WORKSPACE_WORK_MEM = "32MB"
_FOR_WHOLE_WORKSPACE = text(
    "SELECT set_config('plan_cache_mode', 'force_custom_plan', true), "
    "CASE WHEN pg_size_bytes(current_setting('work_mem')) < pg_size_bytes(:work_mem) "
    "THEN set_config('work_mem', :work_mem, true) END"
)


async def plan_for_these_values(session: AsyncSession) -> None:
    """Have PostgreSQL plan the forecast's whole-workspace statements for their actual values,
    with room to sort and hash them in memory.

    The driver prepares statements, and after five runs PostgreSQL may switch to a generic
    plan that ignores the window and the workspace: for a whole workspace's renewals that can
    be far from the best plan for a narrow window. Planning anew costs a few milliseconds,
    little beside such a statement. Both settings end with the request's transaction (the
    `true` of set_config is SET LOCAL), in one round trip.

    The renewal facts of a whole workspace are computed with it too. A drill-down into one
    owner does not need it: its statement finds the owner's renewals by the owner's index
    (see service.forecasts.service._build_renewals), so the generic plan is the right one,
    and planning would be a third of its cost."""
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        await connection.execute(_FOR_WHOLE_WORKSPACE, {"work_mem": WHOLE_WORKSPACE_WORK_MEM})
