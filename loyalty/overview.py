"""Everything the /points screen shows, read in one plain statement.

/points is one of the busiest screens. Through the ORM its six reads (account, balance,
trailing premium, expiring lots, recent entries) cost several times the reads themselves in
building queries, and each is a round trip, so here they are one statement. It is composed of
the definitions ``tier_status``, ``expiring_points`` and ``recent_entries`` run on their own
(``loyalty.tiers.trailing_premium``, ``loyalty.ledger.expiring_by_date`` and
``latest_entries``), so each figure is computed one way only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from loyalty.config import LoyaltySettings
from loyalty.ledger import expiring_by_date, latest_entries
from loyalty.tiers import TierStatus, status_of, trailing_premium, trailing_window
from storage.sql import as_date, as_json, as_moment, current, fetchrow, is_postgres, json_rows


def _statement(postgres: bool) -> str:
    """One statement for the whole screen: the account, the trailing premium, and the
    expiring lots and recent entries gathered as JSON arrays (in the order of their
    subqueries)."""
    lots = json_rows("x.expires_on", "x.points", postgres=postgres, order_by="x.expires_on")
    entries = json_rows("y.occurred_at", "y.amount", "y.kind", postgres=postgres,
                        order_by="y.occurred_at DESC, y.id DESC")
    return (
        f"SELECT a.balance, a.tier, ({trailing_premium('c.customer_id')}) AS trailing, "
        f"(SELECT {lots} FROM ({expiring_by_date('a.id')}) x) AS expiring, "
        f"(SELECT {entries} FROM ({latest_entries('a.id')}) y) AS entries "
        "FROM (SELECT CAST(:customer AS INTEGER) AS customer_id) c "
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
    row = await fetchrow(current(), _STATEMENTS[is_postgres()], {
        "customer": customer_id, "first": today, "last": today + timedelta(days=expiring_days),
        "entries": entries, **trailing_window(now)})
    assert row is not None  # one row whether or not the customer has an account
    return PointsOverview(
        balance=int(row["balance"] or 0),
        status=status_of(row["tier"], int(row["trailing"] or 0), settings),
        expiring=[(as_date(expires_on), int(points))
                  for expires_on, points in as_json(row["expiring"], [])],
        entries=[EntryLine(as_moment(occurred_at), int(amount), str(kind))
                 for occurred_at, amount, kind in as_json(row["entries"], [])],
    )
