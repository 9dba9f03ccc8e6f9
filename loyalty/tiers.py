"""VIP tiers by contribution: trailing-12-month paid premium (premiums minus refunds).

A tier goes up at once when a payment qualifies and only ever goes down at the annual review,
never mid-year. Every change is kept in the tier history (``TierChange``) with the premium
that justified it, under a unique key, so re-running a review or replaying a payment changes
nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from loyalty import notifications
from loyalty.config import LoyaltySettings, TierSettings
from loyalty.ledger import Account, AccountRef, lock_account
from loyalty.periods import PROGRAMME_TZ, add_months, start_of_day, utc
from storage.loyalty_models import LoyaltyAccount, TierChange, TierChangeReason
from storage.models import Customer, Payment, PaymentKind
from storage.sql import current, fetch, fetchval

log = logging.getLogger(__name__)


def year_before(moment: datetime) -> datetime:
    """The start (exclusive) of the trailing 12 months that end at ``moment``, in UTC."""
    moment = utc(moment)
    day = add_months(moment.date(), -12)
    return moment.replace(year=day.year, month=day.month, day=day.day)


def trailing_premium(customer: str) -> str:
    """SQL: premium paid minus refunds by customer ``customer`` (an SQL expression for the id)
    after ``:year_before`` up to ``:until`` (inclusive) — the one definition
    ``trailing_premium_cents`` runs alone and ``loyalty.overview`` embeds (values from
    ``trailing_window``)."""
    return ("SELECT COALESCE(SUM(CASE WHEN p.kind = :premium THEN p.amount_cents "
            f"ELSE -p.amount_cents END), 0) FROM payment p WHERE p.customer_id = {customer} "
            "AND p.paid_at > :year_before AND p.paid_at <= :until")


def trailing_window(now: datetime) -> dict[str, object]:
    """The values of ``trailing_premium`` for the 12 months up to ``now``."""
    return {"premium": PaymentKind.PREMIUM.value, "year_before": year_before(now),
            "until": utc(now)}


async def trailing_premium_cents(customer_id: int, *, now: datetime) -> int:
    """Premium paid minus refunds in the 12 months up to ``now`` (inclusive)."""
    return int(await fetchval(current(), f"SELECT ({trailing_premium(':customer')}) AS cents",
                              {"customer": customer_id, **trailing_window(now)}))


async def upgrade_if_qualified(
    conn: BaseDBAsyncClient,
    account: Account,
    *,
    now: datetime,
    settings: LoyaltySettings,
    cause: str,
) -> TierSettings:
    """Inside the caller's transaction, with ``account`` locked: raise the tier if the
    trailing premium now reaches a higher one. Returns the tier in force afterwards."""
    current = settings.tier(account.tier)
    trailing = await trailing_premium_cents(account.customer_id, now=now)
    qualified = settings.tier_for_premium(trailing)
    if settings.tier_rank(qualified.code) <= settings.tier_rank(current.code):
        return current
    await _change_tier(account, current.code, qualified.code, TierChangeReason.UPGRADE, trailing,
                       now=now, key=f"upgrade:{account.id}:{cause}")
    customer = await Customer.get(id=account.customer_id)
    await notifications.tier_upgrade(customer, qualified, now=now)
    log.info("account %d upgraded %s -> %s", account.id, current.code, qualified.code)
    return qualified


async def _change_tier(account: Account, old: str, new: str, reason: TierChangeReason,
                       trailing: int, *, now: datetime, key: str) -> None:
    await LoyaltyAccount.filter(id=account.id).update(tier=new, tier_since=utc(now))
    await TierChange.create(account_id=account.id, from_tier=old, to_tier=new, reason=reason,
                            trailing_premium_cents=trailing, effective_at=utc(now), key=key)


@dataclass(frozen=True, slots=True)
class ReviewReport:
    reviewed: int
    upgraded: int
    downgraded: int


async def annual_tier_review(
    today: date, *, settings: LoyaltySettings, now: datetime | None = None
) -> ReviewReport:
    """Set every account's tier from its premium in the 12 months before ``today``.

    The window is ``[today − 1 year, today)`` in the programme's time zone. This is the only
    place a tier goes down. Idempotent: a second run on the same day finds nothing to change
    (and the history key ``review:{account}:{today}`` forbids a second record).

    The review may run late (``now`` after ``today`` began: the scheduler was down over New
    Year). The window still ends at ``today``, so later payments and refunds do not count in
    it; but a premium paid since would have raised the tier again at once had the review run
    on time, so a late downgrade stops at the best tier such a payment reached (never above
    the tier held now). Changes are recorded at ``now``, when they were made.
    """
    tz = PROGRAMME_TZ
    start, end = start_of_day(add_months(today, -12), tz), start_of_day(today, tz)
    moment = utc(now) if now is not None else end
    async with in_transaction() as conn:
        rows = await fetch(
            conn,
            "SELECT customer_id, kind, SUM(amount_cents) AS total FROM payment "
            "WHERE paid_at >= :start AND paid_at < :end GROUP BY customer_id, kind",
            {"start": start, "end": end},
        )
    trailing: dict[int, int] = {}
    for row in rows:
        sign = 1 if row["kind"] == PaymentKind.PREMIUM.value else -1
        trailing[int(row["customer_id"])] = (trailing.get(int(row["customer_id"]), 0)
                                             + sign * int(row["total"]))
    rank = settings.tier_rank
    reviewed = upgraded = downgraded = 0
    accounts = await LoyaltyAccount.all().order_by("id").values_list("id", "customer_id", "tier")
    for account_id, customer_id, tier in accounts:
        reviewed += 1
        target = settings.tier_for_premium(trailing.get(customer_id, 0))
        if target.code == tier:
            continue
        async with in_transaction() as conn:
            account = await lock_account(conn, AccountRef.of_account(account_id), settings)
            if moment > end and rank(target.code) < rank(account.tier):
                since = await _best_since(customer_id, end, moment, settings)
                if rank(since.code) > rank(target.code):
                    target = min(since, settings.tier(account.tier), key=lambda t: rank(t.code))
            if account.tier == target.code:
                continue
            if await TierChange.exists(key=f"review:{account_id}:{today.isoformat()}"):
                continue
            await _change_tier(account, account.tier, target.code, TierChangeReason.REVIEW,
                               trailing.get(customer_id, 0), now=moment,
                               key=f"review:{account_id}:{today.isoformat()}")
        if rank(target.code) > rank(account.tier):
            upgraded += 1
        else:
            downgraded += 1
    log.info("tier review %s: %d accounts, %d up, %d down", today, reviewed, upgraded,
             downgraded)
    return ReviewReport(reviewed, upgraded, downgraded)


async def _best_since(customer_id: int, start: datetime, end: datetime,
                      settings: LoyaltySettings) -> TierSettings:
    """The highest tier a premium paid in ``[start, end]`` qualified for when it was paid
    (its trailing premium up to that moment): what ``upgrade_if_qualified`` would have given
    after a review held at ``start``. The lowest tier when nothing was paid."""
    best = settings.tiers[0]
    paid: list[datetime] = await Payment.filter(  # type: ignore[assignment]
        customer_id=customer_id, kind=PaymentKind.PREMIUM, amount_cents__gt=0,
        paid_at__gte=start, paid_at__lte=end,
    ).order_by("paid_at").values_list("paid_at", flat=True)
    for paid_at in paid:
        reached = settings.tier_for_premium(
            await trailing_premium_cents(customer_id, now=paid_at))
        if settings.tier_rank(reached.code) > settings.tier_rank(best.code):
            best = reached
    return best


@dataclass(frozen=True, slots=True)
class TierStatus:
    """What ``/points`` shows about the tier: where the customer is and what is next."""

    tier: TierSettings
    trailing_premium_cents: int
    next_tier: TierSettings | None
    missing_cents: int


async def tier_status(customer_id: int, *, now: datetime, settings: LoyaltySettings) -> TierStatus:
    account = await LoyaltyAccount.get_or_none(customer_id=customer_id)
    trailing = await trailing_premium_cents(customer_id, now=now)
    return status_of(account.tier if account else None, trailing, settings)


def tier_of(tier_code: str | None, settings: LoyaltySettings) -> TierSettings:
    """The tier of an account in tier ``tier_code`` (None: no account yet, the first tier)."""
    return settings.tier(tier_code) if tier_code else settings.tiers[0]


def status_of(tier_code: str | None, trailing: int, settings: LoyaltySettings) -> TierStatus:
    """The status of an account in tier ``tier_code`` (None: no account yet, the first tier)
    with ``trailing`` premium."""
    tier = tier_of(tier_code, settings)
    rank = settings.tier_rank(tier.code)
    upcoming = settings.tiers[rank + 1] if rank + 1 < len(settings.tiers) else None
    missing = max(0, upcoming.min_premium_cents - trailing) if upcoming else 0
    return TierStatus(tier, trailing, upcoming, missing)


async def tier_history(customer_id: int) -> list[TierChange]:
    return await TierChange.filter(account__customer_id=customer_id).order_by("effective_at", "id")
