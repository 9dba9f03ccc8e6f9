"""Renewal figures, counted in the database: portable SQL through ``storage.sql``, grouped by
plain columns (expiry day, branch, agent, product, channel) and bucketed in Python.

Definitions (the renewal seed document's, made exact):

- expired: a policy whose ``end_date`` lies in the window and before today, not cancelled;
- renewed: expired, linked to the policy that renewed it (the import's ``renews``), which
  started at most 30 days after the expiry (``renewal_gap_days`` ≤ 30; a link without the gap
  recorded counts as on time); renewal rate = renewed ÷ expired;
- won back: renewed after a lapse, i.e. the renewal started more than a day after the expiry;
- contacted at least twice: renewal messages sent or delivered to the customer during the
  policy year before its expiry day, plus calls, call-backs and answers on the policy's
  tasks before then, count two or more;
- channel of the last contact: that of the newest renewal message sent before the expiry day
  (``none`` without one);
- the agent is the one the business is attributed to for life (``original_agent``, else the
  policy's own agent).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from tortoise import connections

from storage.sql import as_date, as_moment, fetch

MESSAGE_KINDS = "'renewal', 'renewal_holiday', 'lapse_rescue'"
CONTACT_TASKS = "'renewal_call', 'renewal_callback', 'renewal_answer'"
_EXPIRED = ("p.end_date >= :first AND p.end_date < :today AND p.cancelled_at IS NULL "
            "AND p.status <> 'cancelled'")
_RENEWED = ("CASE WHEN p.renewed_by_id IS NOT NULL AND COALESCE(p.renewal_gap_days, 0) <= 30 "
            "THEN 1 ELSE 0 END")
_WON_BACK = ("CASE WHEN p.renewed_by_id IS NOT NULL AND COALESCE(p.renewal_gap_days, 0) > 1 "
             "THEN 1 ELSE 0 END")
_SENT = "m.status IN ('sent', 'delivered')"


def _expired(alias: str) -> str:
    return _EXPIRED.replace("p.", f"{alias}.")


# Per expired policy, joined rather than correlated (a hash join over the window on
# PostgreSQL instead of an index probe per policy): its renewal messages in the policy year
# before the expiry day, and its contact tasks before then.
_MESSAGES = (
    "SELECT q.id AS pid, COUNT(*) AS n FROM policy q JOIN message m "
    f"ON m.customer_id = q.customer_id AND m.kind IN ({MESSAGE_KINDS}) AND {_SENT} "
    f"AND m.created_at >= q.start_date AND m.created_at < q.end_date WHERE {_expired('q')} "
    "GROUP BY q.id"
)
_TASKS = (
    "SELECT t.policy_id AS pid, COUNT(*) AS n FROM task t JOIN policy q ON q.id = t.policy_id "
    f"WHERE t.kind IN ({CONTACT_TASKS}) AND t.created_at < q.end_date AND {_expired('q')} "
    "GROUP BY t.policy_id"
)
_CONTACTS = "COALESCE(mc.n, 0) + COALESCE(tc.n, 0)"
_CONTACT_JOINS = (f"LEFT JOIN ({_MESSAGES}) mc ON mc.pid = p.id "
                  f"LEFT JOIN ({_TASKS}) tc ON tc.pid = p.id")
# the newest renewal message sent before the expiry day, per expired policy
_LAST_JOIN = (
    "LEFT JOIN (SELECT r.pid, r.channel FROM (SELECT q.id AS pid, m.channel AS channel, "
    "ROW_NUMBER() OVER (PARTITION BY q.id ORDER BY m.created_at DESC, m.id DESC) AS rn "
    f"FROM policy q JOIN message m ON m.customer_id = q.customer_id "
    f"AND m.kind IN ({MESSAGE_KINDS}) AND {_SENT} AND m.created_at < q.end_date "
    f"WHERE {_expired('q')}) r WHERE r.rn = 1) lc ON lc.pid = p.id"
)
_LAST_CHANNEL = "lc.channel"
DIMENSIONS = {
    "branch": "p.branch",
    "agent": "CASE WHEN p.original_agent <> '' THEN p.original_agent ELSE p.agent END",
    "product": "p.product",
    "channel": _LAST_CHANNEL,
}


@dataclass(frozen=True, slots=True)
class DayCount:
    day: date
    expired: int
    renewed: int
    won_back: int
    contacted_twice: int


@dataclass(frozen=True, slots=True)
class GroupCount:
    key: str
    expired: int
    renewed: int


@dataclass(frozen=True, slots=True)
class Callback:
    asked_at: datetime
    closed_at: datetime | None
    due_at: datetime | None


def _conn() -> Any:
    return connections.get("default")


async def by_day(first: date, today: date) -> list[DayCount]:
    rows = await fetch(_conn(), (
        f"SELECT p.end_date AS day, COUNT(*) AS expired, SUM({_RENEWED}) AS renewed, "
        f"SUM({_WON_BACK}) AS won_back, "
        f"SUM(CASE WHEN {_CONTACTS} >= 2 THEN 1 ELSE 0 END) AS twice "
        f"FROM policy p {_CONTACT_JOINS} WHERE {_EXPIRED} "
        "GROUP BY p.end_date ORDER BY p.end_date"),
        {"first": first, "today": today})
    return [DayCount(as_date(r["day"]), int(r["expired"]), int(r["renewed"] or 0),
                     int(r["won_back"] or 0), int(r["twice"] or 0)) for r in rows]


async def by_group(dimension: str, first: date, today: date) -> list[GroupCount]:
    """Expired and renewed per ``dimension`` (a key of ``DIMENSIONS``), most expired first."""
    rows = await fetch(_conn(), (
        "SELECT g.k AS k, COUNT(*) AS expired, SUM(g.renewed) AS renewed "
        f"FROM ({group_rows(dimension)}) g GROUP BY g.k ORDER BY COUNT(*) DESC, g.k"),
        {"first": first, "today": today})
    return [GroupCount(str(r["k"] or ""), int(r["expired"]), int(r["renewed"] or 0))
            for r in rows]


def group_rows(dimension: str, first: str = ":first") -> str:
    """One row per expired policy from ``first`` (a placeholder) to ``:today``: its expiry day
    ``d``, its key ``k`` in ``dimension`` and ``renewed`` (0 or 1)."""
    return (f"SELECT p.end_date AS d, COALESCE({DIMENSIONS[dimension]}, '') AS k, "
            f"{_RENEWED} AS renewed FROM policy p "
            f"{_LAST_JOIN if dimension == 'channel' else ''} "
            f"WHERE {_EXPIRED.replace(':first', first)}")


async def by_day_and_group(dimension: str, first: date, today: date
                           ) -> list[tuple[date, GroupCount]]:
    """``by_group`` per expiry day (for the rollup)."""
    rows = await fetch(_conn(), (
        "SELECT g.d AS d, g.k AS k, COUNT(*) AS expired, SUM(g.renewed) AS renewed "
        f"FROM ({group_rows(dimension)}) g GROUP BY g.d, g.k"),
        {"first": first, "today": today})
    return [(as_date(r["d"]), GroupCount(str(r["k"] or ""), int(r["expired"]),
                                         int(r["renewed"] or 0))) for r in rows]


async def reach(since: datetime) -> list[tuple[str, str, int]]:
    """Renewal messages due since ``since``: (channel, status, count)."""
    rows = await fetch(_conn(), (
        f"SELECT m.channel AS channel, m.status AS status, COUNT(*) AS n FROM message m "
        f"WHERE m.kind IN ({MESSAGE_KINDS}) AND m.not_before >= :since "
        "GROUP BY m.channel, m.status"), {"since": since})
    return [(str(r["channel"] or ""), str(r["status"]), int(r["n"])) for r in rows]


LAPSED = f"FROM policy p WHERE {_EXPIRED} AND p.renewed_by_id IS NULL"


async def lapse_reasons(first: date, today: date) -> list[tuple[str, str, int]]:
    """Expired and not renewed: (outcome, reason, count)."""
    rows = await fetch(_conn(), (
        f"SELECT p.outcome AS outcome, p.outcome_reason AS reason, COUNT(*) AS n {LAPSED} "
        "GROUP BY p.outcome, p.outcome_reason "
        "ORDER BY COUNT(*) DESC, p.outcome, p.outcome_reason"),
        {"first": first, "today": today})
    return [(str(r["outcome"]), str(r["reason"]), int(r["n"])) for r in rows]


async def lapse_reasons_by_day(first: date, today: date
                               ) -> list[tuple[date, str, str, int]]:
    """``lapse_reasons`` per expiry day (for the rollup): (day, outcome, reason, count)."""
    rows = await fetch(_conn(), (
        "SELECT p.end_date AS d, p.outcome AS outcome, p.outcome_reason AS reason, "
        f"COUNT(*) AS n {LAPSED} GROUP BY p.end_date, p.outcome, p.outcome_reason"),
        {"first": first, "today": today})
    return [(as_date(r["d"]), str(r["outcome"]), str(r["reason"]), int(r["n"])) for r in rows]


async def callbacks(since: datetime) -> list[Callback]:
    rows = await fetch(_conn(), (
        "SELECT t.created_at AS asked, t.closed_at AS closed, t.due_at AS due FROM task t "
        "WHERE t.kind = 'renewal_callback' AND t.created_at >= :since"), {"since": since})
    return [Callback(as_moment(r["asked"]), as_moment(r["closed"]) if r["closed"] else None,
                     as_moment(r["due"]) if r["due"] else None) for r in rows]
