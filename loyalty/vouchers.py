"""Redemption and the life of a voucher: issue, cancel (refund), expire.

A redemption is one transaction: eligibility (tier, window, limits), the stock decrement,
the ledger debit and the voucher row succeed together or not at all. Locks are taken in one
order, account then reward, so concurrent redemptions and cancellations cannot deadlock.
The caller's ``request_key`` makes a retried request return the voucher it already got.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from loyalty import codes, notifications
from loyalty.config import LoyaltySettings
from loyalty.errors import (
    IdempotencyConflict,
    InsufficientPoints,
    InvalidRequest,
    OutOfStock,
    UnknownCustomer,
    VoucherAlreadyUsed,
    VoucherExpired,
    VoucherNotFound,
)
from loyalty.ledger import (
    AccountRef,
    EntrySpec,
    Replay,
    fingerprint,
    lock_account,
    post_debit,
    post_reversal,
)
from loyalty.periods import local_day, start_of_day, utc, zone
from loyalty.rewards import check_terms, discount_percent, get_reward
from storage.loyalty_models import EntryKind, LedgerEntry, Reward, Voucher, VoucherStatus
from storage.models import Customer
from storage.sql import execute

log = logging.getLogger(__name__)

_CODE_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class Redemption:
    voucher: Voucher
    replayed: bool


def _same_request(voucher: Voucher, customer_id: int, reward: Reward, entitlement: bool) -> bool:
    return (voucher.customer_id == customer_id and voucher.reward_id == reward.id
            and voucher.entitlement == entitlement)


def voucher_expiry(issued: datetime, timezone: str, valid_days: int) -> datetime:
    """Valid through the customer-local day ``valid_days`` after issue: expires at the next
    local midnight."""
    tz = zone(timezone)
    last_day = local_day(issued, tz) + timedelta(days=valid_days)
    return start_of_day(last_day + timedelta(days=1), tz)


async def redeem(
    customer_id: int,
    reward_code: str,
    *,
    request_key: str,
    now: datetime,
    settings: LoyaltySettings,
    entitlement: bool = False,
    notify: bool = True,
) -> Redemption:
    """Redeem ``reward_code`` for points, or as a free tier benefit when ``entitlement``.

    Raises ``NotEligible``, ``LimitReached``, ``OutOfStock``, ``InsufficientPoints`` (and
    changes nothing); the same ``request_key`` again returns the first voucher.

    ``notify``: queue the ``voucher_issued`` message with the code. A redemption made in the
    customer's own conversation (their Telegram chat) answers there and passes False, so the
    code arrives once; one made for them elsewhere (an operator, SMS) notifies.
    """
    if not request_key.strip() or len(request_key) > 200:
        raise InvalidRequest("a redemption needs a request key of at most 200 characters")
    customer = await Customer.get_or_none(id=customer_id)
    if customer is None:
        raise UnknownCustomer(f"no customer {customer_id}")
    reward = await get_reward(reward_code)
    if (done := await _replay(request_key, customer_id, reward, entitlement)) is not None:
        return done
    try:
        async with in_transaction() as conn:
            account = await lock_account(conn, AccountRef.of_customer(customer_id), settings)
            if (done := await _replay(request_key, customer_id, reward, entitlement)) is not None:
                return done
            tier = settings.tier(account.tier)
            terms = await check_terms(customer, tier, reward, entitlement=entitlement, now=now,
                                      settings=settings)
            if terms.cost > account.balance:
                raise InsufficientPoints(terms.cost, account.balance)
            if reward.stock is not None:
                taken = await execute(
                    conn, "UPDATE loyalty_reward SET stock = stock - 1 "
                          "WHERE id = :reward AND stock > 0", {"reward": reward.id})
                if not taken:
                    raise OutOfStock(f"reward {reward.code} is out of stock")
            debit_entry_id: int | None = None
            if terms.cost:
                digest = hashlib.sha256(request_key.encode()).hexdigest()[:40]
                spec = EntrySpec(
                    EntryKind.REDEMPTION, f"redeem:{digest}",
                    fingerprint({"op": "redeem", "customer": customer_id, "reward": reward.id,
                                 "cost": terms.cost}),
                    reason=reward.code)
                posted = await post_debit(conn, AccountRef.of_account(account.id), terms.cost,
                                          spec, now=now)
                debit_entry_id = posted.entry_id
            voucher = await _issue(
                customer, reward, request_key=request_key, cost=terms.cost,
                entitlement=entitlement, discount=discount_percent(tier, reward.kind),
                debit_entry_id=debit_entry_id, now=now, settings=settings)
            if notify:
                await notifications.voucher_issued(voucher, reward, customer, now=now)
    except IntegrityError:
        # The same request key committed by another process in the meantime.
        if (done := await _replay(request_key, customer_id, reward, entitlement)) is not None:
            return done
        raise
    except Replay as replay:
        raise IdempotencyConflict(f"ledger key {replay.key} already used") from None
    log.info("voucher %d issued: customer %d reward %s cost %d", voucher.id, customer_id,
             reward.code, terms.cost)
    return Redemption(voucher, False)


async def _replay(request_key: str, customer_id: int, reward: Reward,
                  entitlement: bool) -> Redemption | None:
    voucher = await Voucher.get_or_none(request_key=request_key)
    if voucher is None:
        return None
    if not _same_request(voucher, customer_id, reward, entitlement):
        raise IdempotencyConflict(f"request key {request_key!r} was used for another redemption")
    return Redemption(voucher, True)


async def _issue(customer: Customer, reward: Reward, *, request_key: str, cost: int,
                 entitlement: bool, discount: int, debit_entry_id: int | None, now: datetime,
                 settings: LoyaltySettings) -> Voucher:
    for _ in range(_CODE_ATTEMPTS):
        code = codes.new_code()
        try:
            async with in_transaction():  # a savepoint: a code collision retries, not aborts
                return await Voucher.create(
                    code=code, customer_id=customer.id, reward_id=reward.id,
                    reward_kind=reward.kind, points_cost=cost, entitlement=entitlement,
                    discount_percent=discount, status=VoucherStatus.ISSUED,
                    request_key=request_key, issued_at=utc(now),
                    expires_at=voucher_expiry(now, customer.timezone, settings.voucher_valid_days),
                    debit_entry_id=debit_entry_id)
        except IntegrityError:
            if not await Voucher.exists(code=code):
                raise
    raise RuntimeError("could not draw an unused voucher code")  # 50 random bits: never


async def _release(conn: BaseDBAsyncClient, voucher: Voucher, *, refund: bool, now: datetime,
                   settings: LoyaltySettings, reason: str) -> None:
    """Give back what an unused voucher held: its stock, and its points when ``refund``."""
    if refund and voucher.debit_entry_id is not None:
        original = await LedgerEntry.get(id=voucher.debit_entry_id)
        posted = await post_reversal(conn, original, now=now, settings=settings, reason=reason,
                                     operator="")
        await Voucher.filter(id=voucher.id).update(refund_entry_id=posted.entry_id)
    await execute(conn, "UPDATE loyalty_reward SET stock = stock + 1 "
                        "WHERE id = :reward AND stock IS NOT NULL",
                  {"reward": voucher.reward_id})


async def cancel_voucher(
    customer_id: int, voucher_id: int, *, now: datetime, settings: LoyaltySettings
) -> Voucher:
    """Cancel the customer's own unused voucher: points back by reversal, stock restored.

    Cancelling twice returns the cancelled voucher; someone else's voucher is not found.
    """
    voucher = await Voucher.get_or_none(id=voucher_id, customer_id=customer_id)
    if voucher is None:
        raise VoucherNotFound(f"no voucher {voucher_id} for customer {customer_id}")
    try:
        async with in_transaction() as conn:
            await lock_account(conn, AccountRef.of_customer(customer_id), settings)
            changed = await Voucher.filter(
                id=voucher.id, status=VoucherStatus.ISSUED, expires_at__gt=utc(now)
            ).update(status=VoucherStatus.CANCELLED, cancelled_at=utc(now))
            if not changed:
                fresh = await Voucher.get(id=voucher.id)
                if fresh.status == VoucherStatus.CANCELLED:
                    return fresh
                if fresh.status == VoucherStatus.USED:
                    raise VoucherAlreadyUsed(f"voucher {voucher.id} was used")
                raise VoucherExpired(f"voucher {voucher.id} has expired")
            await _release(conn, voucher, refund=True, now=now, settings=settings,
                           reason=f"voucher {voucher.id} cancelled")
    except Replay:
        pass  # the refund was posted by a concurrent cancel: the voucher says so
    return await Voucher.get(id=voucher.id)


async def expire_vouchers(now: datetime, *, settings: LoyaltySettings) -> int:
    """Daily job: mark unused vouchers past their expiry as expired, release their stock and
    refund their points if ``refund_expired_vouchers``. Idempotent; returns how many."""
    due = await Voucher.filter(status=VoucherStatus.ISSUED, expires_at__lte=utc(now)).order_by(
        "id").values_list("id", "customer_id")
    expired = 0
    for voucher_id, customer_id in due:
        try:
            async with in_transaction() as conn:
                await lock_account(conn, AccountRef.of_customer(customer_id), settings)
                changed = await Voucher.filter(
                    id=voucher_id, status=VoucherStatus.ISSUED, expires_at__lte=utc(now)
                ).update(status=VoucherStatus.EXPIRED)
                if not changed:
                    continue
                voucher = await Voucher.get(id=voucher_id)
                await _release(conn, voucher, refund=settings.refund_expired_vouchers, now=now,
                               settings=settings, reason=f"voucher {voucher_id} expired")
        except Replay:
            continue
        expired += 1
    if expired:
        log.info("expired %d vouchers", expired)
    return expired


def effective_status(voucher: Voucher, now: datetime) -> VoucherStatus:
    """The status a person should see: an unused voucher past its time is expired even
    before the nightly job has marked it."""
    status = VoucherStatus(voucher.status)
    if status == VoucherStatus.ISSUED and utc(voucher.expires_at) <= utc(now):
        return VoucherStatus.EXPIRED
    return status


@dataclass(frozen=True, slots=True)
class VoucherView:
    """A voucher as its owner sees it in ``/vouchers``."""

    id: int
    code: str
    reward_code: str
    reward_kind: str
    name_zh: str
    name_en: str
    points_cost: int
    entitlement: bool
    discount_percent: int
    status: VoucherStatus
    valid_until: date
    used_at: datetime | None


async def customer_vouchers(customer_id: int, *, now: datetime, limit: int = 50
                            ) -> list[VoucherView]:
    """The customer's vouchers, newest first (only their own: the filter is the customer)."""
    customer = await Customer.get_or_none(id=customer_id)
    if customer is None:
        raise UnknownCustomer(f"no customer {customer_id}")
    vouchers = await Voucher.filter(customer_id=customer_id).order_by("-issued_at", "-id").limit(
        limit).prefetch_related("reward")
    return [
        VoucherView(v.id, codes.display(v.code), v.reward.code, v.reward_kind, v.reward.name_zh,
                    v.reward.name_en, v.points_cost, v.entitlement, v.discount_percent,
                    effective_status(v, now),
                    notifications.voucher_valid_until(v, customer.timezone), v.used_at)
        for v in vouchers
    ]
