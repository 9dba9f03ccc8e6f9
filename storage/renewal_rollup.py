"""The renewal KPIs from a rollup: the figures of ``storage.renewal_kpis`` for past expiry
days computed once and kept (``renewal_kpi_rollup``), so the KPI page sums a few tens of
thousands of rows instead of counting a year of policies with their contacts.

What is kept, and how it stays exact:

- per expiry day: the totals (expired, renewed, won back, contacted twice) and expired and
  renewed by branch, product and channel of the last contact, and the lapse reasons — each
  computed by the same SQL as the live figures (``renewal_kpis.by_day``,
  ``by_day_and_group``, ``lapse_reasons_by_day``) over a range of days;
- per complete expiry month: expired and renewed by agent (``renewal_kpis.by_group``; a day
  has about as many agents as policies, a month a few thousand). The current month's agents
  are counted live from its policies (no contacts needed: a range of the ``end_date`` index);
- a past day's figures do not depend on the day they are computed, only on the rows; triggers
  on policy, message and task (migration 0023) record every expiry day a write may change in
  ``renewal_kpi_dirty``. ``refresh`` first takes those marks (deleting exactly the days it
  read, before it computes, in one transaction: a mark committed later stays for the next
  refresh), drops the days' rows and their months' agent rows, then builds whatever the
  window lacks. A refresh that collides with another process building the same rows (unique
  key) is rolled back and run again.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from storage import renewal_kpis as kpis
from storage.models import RenewalKpiRollup
from storage.renewal_kpis import DayCount, GroupCount
from storage.sql import Params, Statements, as_date, current, execute, fetch, is_postgres

DAY_DIMENSIONS = ("branch", "product", "channel")
_COLUMNS = ("day", "dimension", "key", "detail", "expired", "renewed", "won_back",
            "contacted_twice")


MONTHS = 12


def window(today: date) -> date:
    """The first expiry day the KPIs count: the 1st of the month 11 months before this one."""
    month = today.year * 12 + today.month - 1 - (MONTHS - 1)
    return date(month // 12, month % 12 + 1, 1)


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(day: date) -> date:
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


def _days(first: date, last: date) -> Iterator[date]:
    day = first
    while day < last:
        yield day
        day += timedelta(days=1)


MERGE_GAP = timedelta(days=14)
"""Days to build this close together are computed in one pass over the span between them (a
pass costs about the same for one day as for a few weeks: the contacts join reads the
messages either way), and only the wanted days' rows are kept."""


def _spans(days: list[date]) -> Iterator[tuple[date, date]]:
    """Sorted days as half-open ranges, neighbours less than ``MERGE_GAP`` apart merged."""
    start = end = None
    for day in sorted(days):
        if end is not None and day - end < MERGE_GAP:
            end = day + timedelta(days=1)
            continue
        if start is not None and end is not None:
            yield start, end
        start, end = day, day + timedelta(days=1)
    if start is not None and end is not None:
        yield start, end


def _in(column: str, days: set[date], params: Params) -> str:
    return f"{column} IN ({', '.join(params.add(day) for day in sorted(days))})"


async def refresh(first: date, today: date) -> int:
    """Bring the rollup of expiry days ``first`` ≤ day < ``today`` up to date; how many days
    it (re)built. The KPI report calls it, and so does the scheduler's renewal desk job, so
    the marks are taken and the rows built between page views."""
    for attempt in (1, 2):
        try:
            async with in_transaction():
                return await _refresh(first, today)
        except IntegrityError:  # another process built the same rows first
            if attempt == 2:
                raise
    return 0


async def _refresh(first: date, today: date) -> int:
    conn = current()
    marked = {as_date(r["day"]) for r in await fetch(
        conn, "SELECT DISTINCT day FROM renewal_kpi_dirty")}
    if marked:
        params = Params()
        await execute(conn, f"DELETE FROM renewal_kpi_dirty WHERE {_in('day', marked, params)}",
                      params)
        params = Params()
        months = {month_start(day) for day in marked}
        await execute(conn, (
            "DELETE FROM renewal_kpi_rollup WHERE (dimension NOT IN ('month', 'agent') "
            f"AND {_in('day', marked, params)}) OR (dimension IN ('month', 'agent') "
            f"AND {_in('day', months, params)})"), params)
    built = {as_date(r["day"]) for r in await fetch(conn, (
        "SELECT day FROM renewal_kpi_rollup WHERE dimension = 'total' AND day >= :first "
        "AND day < :today"), {"first": first, "today": today})}
    wanted = {day for day in _days(first, today) if day not in built}
    for lo, hi in _spans(sorted(wanted)):
        await _build_days(conn, lo, hi, wanted)
    built_months = {as_date(r["day"]) for r in await fetch(conn, (
        "SELECT day FROM renewal_kpi_rollup WHERE dimension = 'month' AND day >= :first "
        "AND day < :today"), {"first": first, "today": today})}
    month = month_start(first)
    while next_month(month) <= today:
        if month >= first and month not in built_months:
            await _build_month(conn, month)
        month = next_month(month)
    return len(wanted)


async def _build_days(conn: Any, lo: date, hi: date, wanted: set[date]) -> None:
    """The rows of the ``wanted`` days between ``lo`` and ``hi``."""
    rows: list[list[Any]] = []
    totals = {count.day: count for count in await kpis.by_day(lo, hi)}
    for day in _days(lo, hi):
        if day in wanted:
            c = totals.get(day, DayCount(day, 0, 0, 0, 0))
            rows.append([day, "total", "", "", c.expired, c.renewed, c.won_back,
                         c.contacted_twice])
    for dimension in DAY_DIMENSIONS:
        rows.extend([day, dimension, g.key, "", g.expired, g.renewed, 0, 0]
                    for day, g in await kpis.by_day_and_group(dimension, lo, hi)
                    if day in wanted)
    rows.extend([day, "lapse", outcome, reason, count, 0, 0, 0]
                for day, outcome, reason, count in await kpis.lapse_reasons_by_day(lo, hi)
                if day in wanted)
    await _insert(conn, rows)


async def _build_month(conn: Any, month: date) -> None:
    rows: list[list[Any]] = [[month, "month", "", "", 0, 0, 0, 0]]
    for g in await kpis.by_group("agent", month, next_month(month)):
        rows.append([month, "agent", g.key, "", g.expired, g.renewed, 0, 0])
    await _insert(conn, rows)


async def _insert(conn: Any, rows: list[list[Any]]) -> None:
    if not is_postgres(conn):  # the SQLite driver stores dates as ISO text
        for row in rows:
            row[0] = row[0].isoformat()
    await Statements(conn).insert(RenewalKpiRollup, _COLUMNS, rows)


# -- the figures, read from the rollup (same shapes and order as ``storage.renewal_kpis``) ------


async def by_day(first: date, today: date) -> list[DayCount]:
    rows = await fetch(current(), (
        "SELECT day, expired, renewed, won_back, contacted_twice FROM renewal_kpi_rollup "
        "WHERE dimension = 'total' AND day >= :first AND day < :today AND expired > 0 "
        "ORDER BY day"), {"first": first, "today": today})
    return [DayCount(as_date(r["day"]), int(r["expired"]), int(r["renewed"]),
                     int(r["won_back"]), int(r["contacted_twice"])) for r in rows]


async def by_group(dimension: str, first: date, today: date) -> list[GroupCount]:
    """Expired and renewed per ``dimension``, most expired first: the days' rows, or for the
    agent the complete months' rows and the current month's policies."""
    params: dict[str, Any] = {"first": first, "dimension": dimension}
    kept = ("SELECT key AS k, expired AS e, renewed AS r FROM renewal_kpi_rollup "
            "WHERE dimension = :dimension AND day >= :first AND day < :upto")
    if dimension in DAY_DIMENSIONS:
        rows_sql, params["upto"] = kept, today
    else:
        tail = max(first, month_start(today))
        params["upto"] = tail
        live = kpis.group_rows(dimension, first=":tail")
        rows_sql = f"{kept} UNION ALL SELECT g.k, 1, g.renewed FROM ({live}) g"
        params["tail"], params["today"] = tail, today
    rows = await fetch(current(), (
        f"SELECT u.k AS k, SUM(u.e) AS expired, SUM(u.r) AS renewed FROM ({rows_sql}) u "
        "GROUP BY u.k HAVING SUM(u.e) > 0 ORDER BY SUM(u.e) DESC, u.k"), params)
    return [GroupCount(str(r["k"] or ""), int(r["expired"]), int(r["renewed"] or 0))
            for r in rows]


async def lapse_reasons(first: date, today: date) -> list[tuple[str, str, int]]:
    rows = await fetch(current(), (
        "SELECT key AS outcome, detail AS reason, SUM(expired) AS n FROM renewal_kpi_rollup "
        "WHERE dimension = 'lapse' AND day >= :first AND day < :today "
        "GROUP BY key, detail ORDER BY SUM(expired) DESC, key, detail"),
        {"first": first, "today": today})
    return [(str(r["outcome"]), str(r["reason"]), int(r["n"])) for r in rows]
