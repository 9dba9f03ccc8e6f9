"""Everything the /points screen shows, read in one plain statement.

/points is one of the busiest screens. Through the ORM its six reads (account, balance,
trailing premium, expiring lots, recent entries) cost several times the reads themselves in
building queries (see ``bot.telegram.sql``), and each is a round trip, so here they are one
statement, written out once. The figures are the ones ``get_balance``, ``tier_status``,
``expiring_points`` and ``recent_entries`` give; a test holds them equal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient

from loyalty.config import LoyaltySettings
from loyalty.ledger import fetch, is_postgres
from loyalty.periods import utc
from loyalty.tiers import TierStatus, status_of, year_before
from storage.models import PaymentKind
from storage.sql import as_date, as_moment


def _statement(postgres: bool) -> str:
    """One statement for the whole screen: the account, the trailing premium, and the
    expiring lots and recent entries gathered as JSON arrays (order kept by sorting in the
    aggregate on PostgreSQL, by the ordered subquery on SQLite)."""
    if postgres:
        lots = ("SELECT json_agg(json_build_array(x.expires_on, x.points) "
                "ORDER BY x.expires_on)::text")
        entries = ("SELECT json_agg(json_build_array(y.occurred_at, y.amount, y.kind) "
                   "ORDER BY y.occurred_at DESC, y.id DESC)::text")
    else:
        lots = "SELECT json_group_array(json_array(x.expires_on, x.points))"
        entries = "SELECT json_group_array(json_array(y.occurred_at, y.amount, y.kind))"
    return (
        "SELECT a.balance, a.tier, "
        "(SELECT COALESCE(SUM(CASE WHEN p.kind = ? THEN p.amount_cents ELSE -p.amount_cents "
        "END), 0) FROM payment p WHERE p.customer_id = c.customer_id AND p.paid_at > ? "
        "AND p.paid_at <= ?) AS trailing, "
        f"({lots} FROM (SELECT l.expires_on, SUM(l.remaining) AS points FROM loyalty_lot l "
        "WHERE l.account_id = a.id AND l.remaining > 0 AND l.expires_on >= ? "
        "AND l.expires_on <= ? GROUP BY l.expires_on ORDER BY l.expires_on) x) AS expiring, "
        f"({entries} FROM (SELECT e.id, e.occurred_at, e.amount, e.kind FROM loyalty_entry e "
        "WHERE e.account_id = a.id ORDER BY e.occurred_at DESC, e.id DESC LIMIT ?) y) "
        "AS entries "
        "FROM (SELECT CAST(? AS INTEGER) AS customer_id) c "
        "LEFT JOIN loyalty_account a ON a.customer_id = c.customer_id"
    )


_STATEMENTS = {postgres: _statement(postgres) for postgres in (False, True)}


@dataclass(frozen=True, slots=True)
class EntryLine:
    occurred_at: datetime
    amount: int
    kind: str


@dataclass(frozen=True, slots=True)
class PointsOverview:
    balance: int
    status: TierStatus
    expiring: list[tuple[date, int]]  # per expiry date, soonest first
    entries: list[EntryLine]  # newest first


async def points_overview(customer_id: int, *, now: datetime, today: date, expiring_days: int,
                          entries: int, settings: LoyaltySettings) -> PointsOverview:
    """The balance, tier status (as of ``now``), points expiring from ``today`` through
    ``today + expiring_days``, and the last ``entries`` ledger entries."""
    conn: BaseDBAsyncClient = connections.get("default")
    horizon = today + timedelta(days=expiring_days)
    postgres = is_postgres(conn)
    # SQLite keeps dates as ISO text; PostgreSQL compares date values.
    first, last = (today, horizon) if postgres else (today.isoformat(), horizon.isoformat())
    [row] = await fetch(conn, _STATEMENTS[postgres], [
        PaymentKind.PREMIUM.value, year_before(now), utc(now), first, last, entries,
        customer_id])
    lots = json.loads(row["expiring"] or "[]")
    recent = json.loads(row["entries"] or "[]")
    return PointsOverview(
        balance=int(row["balance"] or 0),
        status=status_of(row["tier"], int(row["trailing"] or 0), settings),
        expiring=[(as_date(expires_on), int(points)) for expires_on, points in lots],
        entries=[EntryLine(as_moment(occurred_at), int(amount), str(kind))
                 for occurred_at, amount, kind in recent],
    )
