"""The loyalty programme's daily jobs, as plain async functions for the scheduler to call.

All are idempotent (re-running a day posts and queues nothing new) and take the day they
are about; ``now`` (optional) is the moment recorded on entries and used as the messages'
not-before time, defaulting to the start of that day in the programme's time zone.

* ``expire_lots(today)`` — one expiry entry per lot remainder past its last day.
* ``expire_vouchers(now)`` — unused vouchers past their time (see ``loyalty.vouchers``).
* ``queue_expiry_warnings(today)`` — points expiring within ``expiry_warning_days``.
* ``queue_daily_summaries(day)`` — one message per customer who earned points that day.
* ``annual_tier_review(today)`` — the only tier downgrade (see ``loyalty.tiers``).
* ``settle_imports(now)`` — points for what the core-system import brought: new payments
  and refunds, settled payments whose amount or kind changed since, cancelled policies,
  referred customers whose first policy became active.

The jobs do not depend on each other's order: a refund that hands points back to a lot past
its last day expires them in the same transaction (see ``ledger.post_restoring_credit``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from tortoise.transactions import in_transaction

from loyalty import notifications
from loyalty.config import LoyaltySettings
from loyalty.earning import (
    award_referral_if_due,
    correct_payment,
    earn_for_payment,
    reverse_policy_points,
)
from loyalty.ledger import (
    AccountRef,
    Replay,
    expiry_spec,
    lock_account,
    post_debit,
)
from loyalty.periods import PROGRAMME_TZ, local_day, start_of_day, utc, zone
from loyalty.tiers import annual_tier_review
from loyalty.vouchers import expire_vouchers
from storage.loyalty_models import EARNING_KINDS, EntryKind, LedgerEntry, LoyaltyAccount, PointLot
from storage.models import Customer, PaymentKind
from storage.outbox import Outbound
from storage.sql import fetch, fetchval

__all__ = [
    "SettleReport",
    "annual_tier_review",
    "expire_lots",
    "expire_vouchers",
    "queue_daily_summaries",
    "queue_expiry_warnings",
    "settle_imports",
]

log = logging.getLogger(__name__)

_BATCH = 500


async def expire_lots(today: date, *, settings: LoyaltySettings, now: datetime | None = None
                      ) -> int:
    """Post one ``expiry`` entry (key ``expiry:lot:{id}``) for the remainder of every lot
    whose last day is before ``today``. Returns how many entries it posted."""
    moment = utc(now) if now is not None else start_of_day(today, PROGRAMME_TZ)
    posted = 0
    after = 0
    while True:
        lots = await PointLot.filter(expires_on__lt=today, remaining__gt=0, id__gt=after).order_by(
            "id").limit(_BATCH).values_list("id", "account_id")
        if not lots:
            break
        for lot_id, account_id in lots:
            after = lot_id
            if await _expire_lot(lot_id, account_id, moment, settings):
                posted += 1
    if posted:
        log.info("expired %d point lots before %s", posted, today)
    return posted


async def _expire_lot(lot_id: int, account_id: int, now: datetime,
                      settings: LoyaltySettings) -> bool:
    spec = expiry_spec(lot_id)
    try:
        async with in_transaction() as conn:
            # Lock before reading the remainder: a redemption may be taking from this lot.
            await lock_account(conn, AccountRef.of_account(account_id), settings)
            remaining = int(await fetchval(
                conn, "SELECT remaining FROM loyalty_lot WHERE id = :lot", {"lot": lot_id}))
            if remaining <= 0:
                return False
            await post_debit(conn, AccountRef.of_account(account_id), remaining, spec, now=now,
                             prefer_lots=[lot_id], only_preferred=True)
    except Replay:
        return False
    return True


async def queue_expiry_warnings(today: date, *, settings: LoyaltySettings,
                                now: datetime | None = None) -> int:
    """Queue ``points_expiring`` for points whose last day is within the warning window.

    One message per customer per expiry date (dedup ``points_expiring:{customer}:{date}``),
    so a late run, a catch-up or a re-run never warns twice for the same date.
    """
    moment = utc(now) if now is not None else start_of_day(today, PROGRAMME_TZ)
    horizon = today + timedelta(days=settings.expiry_warning_days)
    rows = await PointLot.filter(
        remaining__gt=0, expires_on__gte=today, expires_on__lte=horizon
    ).values_list("account__customer_id", "expires_on", "remaining")
    totals: dict[tuple[int, date], int] = {}
    for customer_id, expires_on, remaining in rows:
        totals[(customer_id, expires_on)] = totals.get((customer_id, expires_on), 0) + remaining
    languages = await _languages({customer_id for customer_id, _ in totals})

    def items() -> Iterator[Outbound]:
        for (customer_id, expires_on), points in sorted(totals.items()):
            yield notifications.points_expiring(
                customer_id, languages.get(customer_id, "zh-CN"), expires_on, points,
                now=moment, stale_after=start_of_day(expires_on + timedelta(days=1),
                                                     PROGRAMME_TZ))

    queued = await notifications.queue(items())
    log.info("queued %d points-expiry warnings for %s", queued, today)
    return queued


async def queue_daily_summaries(day: date, *, settings: LoyaltySettings,
                                now: datetime | None = None) -> int:
    """Queue one ``points_summary`` per customer who earned points on ``day`` (their own
    local day), instead of a message per entry."""
    moment = utc(now) if now is not None else start_of_day(day + timedelta(days=1), PROGRAMME_TZ)
    # Every zone's version of ``day`` lies within UTC-12 .. UTC+14 of its UTC date.
    start = datetime.combine(day, time.min, tzinfo=UTC) - timedelta(hours=14)
    end = start + timedelta(hours=14 + 24 + 12)
    rows = await LedgerEntry.filter(
        occurred_at__gte=start, occurred_at__lt=end, amount__gt=0, kind__in=list(EARNING_KINDS)
    ).values_list("account_id", "amount", "occurred_at")
    if not rows:
        return 0
    earned: dict[int, int] = {}
    accounts = {a: (c, b) for a, c, b in await LoyaltyAccount.filter(
        id__in={row[0] for row in rows}).values_list("id", "customer_id", "balance")}
    customers = {c: (tz, lang) for c, tz, lang in await Customer.filter(
        id__in={c for c, _ in accounts.values()}).values_list("id", "timezone", "language")}
    for account_id, amount, occurred_at in rows:
        customer_id, _ = accounts[account_id]
        timezone, _ = customers[customer_id]
        if local_day(occurred_at, zone(timezone)) == day:
            earned[account_id] = earned.get(account_id, 0) + amount

    def items() -> Iterator[Outbound]:
        for account_id, points in sorted(earned.items()):
            customer_id, balance = accounts[account_id]
            _, language = customers[customer_id]
            yield notifications.points_summary(customer_id, str(language), day, points, balance,
                                               now=moment)

    queued = await notifications.queue(items())
    log.info("queued %d points summaries for %s", queued, day)
    return queued


async def _languages(customer_ids: set[int]) -> dict[int, str]:
    if not customer_ids:
        return {}
    rows = await Customer.filter(id__in=customer_ids).values_list("id", "language")
    return {customer_id: str(language) for customer_id, language in rows}


@dataclass(frozen=True, slots=True)
class SettleReport:
    payments: int
    cancellations: int
    referrals: int
    corrections: int = 0  # settled payments changed since, each corrected once


async def settle_imports(*, settings: LoyaltySettings, now: datetime,
                         lookback_days: int = 400) -> SettleReport:
    """Apply the earning rules to what the core-system import brought in (storage cannot call
    loyalty, so the import's caller or a job runs this afterwards): every payment or refund
    of the last ``lookback_days`` without a ledger entry, every payment of that window whose
    latest entry settled another amount or kind than it has now (``correct_payment``), every
    cancelled policy whose points were not taken back, every referred customer with an
    active policy and no bonus paid.

    Each step is the idempotent rule itself, so running this twice, or concurrently with
    the rules being called directly, posts nothing twice. Counts are postings made.
    """
    since = utc(now) - timedelta(days=lookback_days)
    async with in_transaction() as conn:
        payments = await fetch(
            conn,
            "SELECT p.id FROM payment p WHERE p.paid_at >= :since AND NOT EXISTS "
            "(SELECT 1 FROM loyalty_entry e WHERE e.payment_id = p.id) ORDER BY p.paid_at, p.id",
            {"since": since})
        # One pass over the payments' latest entries (the (payment_id, id) index).
        changed = await fetch(
            conn,
            "SELECT p.id FROM payment p JOIN (SELECT payment_id, MAX(id) AS last_id "
            "FROM loyalty_entry WHERE payment_id IS NOT NULL GROUP BY payment_id) m "
            "ON m.payment_id = p.id JOIN loyalty_entry e ON e.id = m.last_id "
            "WHERE p.paid_at >= :since AND e.basis_cents IS NOT NULL AND e.basis_cents <> "
            "CASE WHEN p.kind = :refund THEN -p.amount_cents ELSE p.amount_cents END "
            "ORDER BY p.paid_at, p.id",
            {"since": since, "refund": PaymentKind.REFUND.value})
        cancelled = await fetch(
            conn,
            "SELECT DISTINCT e.policy_id FROM loyalty_entry e JOIN policy p ON p.id = e.policy_id "
            "WHERE p.status = :cancelled AND e.kind = :earned AND NOT EXISTS (SELECT 1 FROM "
            "loyalty_entry r WHERE r.idempotency_key = 'policy_cancel:' || p.id)",
            {"cancelled": "cancelled", "earned": EntryKind.EARN_PREMIUM.value})
        referred = await fetch(
            conn,
            "SELECT c.id FROM customer c WHERE c.referred_by_id IS NOT NULL AND EXISTS "
            "(SELECT 1 FROM policy p WHERE p.customer_id = c.id AND p.status = :active) "
            "AND NOT EXISTS (SELECT 1 FROM loyalty_entry e "
            "WHERE e.idempotency_key = 'referral:' || c.id)",
            {"active": "active"})
    made = [0, 0, 0, 0]
    for row in payments:
        posted = await earn_for_payment(int(row["id"]), settings=settings, now=now)
        made[0] += posted is not None and not posted.replayed
    for row in changed:
        posted = await correct_payment(int(row["id"]), settings=settings, now=now)
        made[3] += posted is not None and not posted.replayed
    for row in cancelled:
        posted = await reverse_policy_points(int(row["policy_id"]), settings=settings, now=now)
        made[1] += posted is not None and not posted.replayed
    for row in referred:
        posted = await award_referral_if_due(int(row["id"]), settings=settings, now=now)
        made[2] += posted is not None and not posted.replayed
    report = SettleReport(*made)
    log.info("settled imports: %d payments, %d cancellations, %d referrals, "
             "%d corrections", *made)
    return report
