"""Everything the /points screen shows, read in three plain statements.

/points is one of the busiest screens. Through the ORM its six reads (account, balance,
trailing premium, expiring lots, recent entries) cost several times the reads themselves in
building queries (see ``bot.telegram.sql``), so here they are written out once. The figures
are the ones ``get_balance``, ``tier_status``, ``expiring_points`` and ``recent_entries``
give; a test holds them equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient

from loyalty.config import LoyaltySettings
from loyalty.ledger import fetch, is_postgres
from loyalty.periods import utc
from loyalty.tiers import TierStatus, status_of, year_before
from storage.models import PaymentKind

_ACCOUNT = (
    "SELECT a.balance, a.tier, (SELECT COALESCE(SUM(CASE WHEN p.kind = ? THEN p.amount_cents "
    "ELSE -p.amount_cents END), 0) FROM payment p WHERE p.customer_id = ? AND p.paid_at > ? "
    "AND p.paid_at <= ?) AS trailing FROM (SELECT CAST(? AS INTEGER) AS customer_id) c "
    "LEFT JOIN loyalty_account a ON a.customer_id = c.customer_id"
)
_EXPIRING = (
    "SELECT l.expires_on, SUM(l.remaining) AS points FROM loyalty_lot l "
    "JOIN loyalty_account a ON a.id = l.account_id WHERE a.customer_id = ? AND l.remaining > 0 "
    "AND l.expires_on >= ? AND l.expires_on <= ? GROUP BY l.expires_on ORDER BY l.expires_on"
)
_ENTRIES = (
    "SELECT e.occurred_at, e.amount, e.kind FROM loyalty_entry e "
    "JOIN loyalty_account a ON a.id = e.account_id WHERE a.customer_id = ? "
    "ORDER BY e.occurred_at DESC, e.id DESC LIMIT ?"
)


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


def _date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _moment(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


async def points_overview(customer_id: int, *, now: datetime, today: date, expiring_days: int,
                          entries: int, settings: LoyaltySettings) -> PointsOverview:
    """The balance, tier status (as of ``now``), points expiring from ``today`` through
    ``today + expiring_days``, and the last ``entries`` ledger entries."""
    conn: BaseDBAsyncClient = connections.get("default")
    horizon = today + timedelta(days=expiring_days)
    # SQLite keeps dates as ISO text; PostgreSQL compares date values.
    first, last = (today, horizon) if is_postgres(conn) else (today.isoformat(),
                                                              horizon.isoformat())
    [account] = await fetch(conn, _ACCOUNT, [PaymentKind.PREMIUM.value, customer_id,
                                             year_before(now), utc(now), customer_id])
    lots = await fetch(conn, _EXPIRING, [customer_id, first, last])
    recent = await fetch(conn, _ENTRIES, [customer_id, entries])
    return PointsOverview(
        balance=int(account["balance"] or 0),
        status=status_of(account["tier"], int(account["trailing"] or 0), settings),
        expiring=[(_date(row["expires_on"]), int(row["points"])) for row in lots],
        entries=[EntryLine(_moment(row["occurred_at"]), int(row["amount"]), str(row["kind"]))
                 for row in recent],
    )
