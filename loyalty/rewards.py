"""The rewards catalogue and who may redeem what.

The catalogue is seeded from config (``loyalty.rewards``) and owned by operators afterwards.
Tier benefits (free car washes a month, designated-driving rides a year, a free annual
inspection) are zero-cost entitlements to the catalogue's reward of that kind, counted
against the tier's quota for the customer-local month or year.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from loyalty.config import LoyaltySettings, TierSettings
from loyalty.errors import (
    InsufficientPoints,
    LimitReached,
    LoyaltyError,
    NotEligible,
    OutOfStock,
    UnknownCustomer,
    UnknownReward,
)
from loyalty.periods import local_day, month_bounds, year_bounds, zone
from storage.loyalty_models import LoyaltyAccount, Reward, Voucher, VoucherStatus
from storage.models import Customer

Period = Literal["month", "year"]


def entitlement_quota(tier: TierSettings, kind: str) -> tuple[int, Period] | None:
    """How many free vouchers of ``kind`` the tier gives, and per what period."""
    if kind == "car_wash" and tier.free_car_washes_per_month:
        return tier.free_car_washes_per_month, "month"
    if kind == "designated_driving" and tier.designated_driving_per_year:
        return tier.designated_driving_per_year, "year"
    if kind == "annual_inspection" and tier.free_annual_inspection:
        return 1, "year"
    return None


def discount_percent(tier: TierSettings, kind: str) -> int:
    """The tier's maintenance discount, printed on maintenance vouchers for the partner."""
    return tier.maintenance_discount_percent if kind == "maintenance" else 0


async def seed_rewards(settings: LoyaltySettings) -> int:
    """Create the configured rewards whose code is not in the catalogue yet; returns how many.
    Existing rewards are left exactly as operators left them."""
    codes: list[str] = await Reward.all().values_list(
        "code", flat=True)  # type: ignore[assignment]
    present = set(codes)
    created = 0
    for seed in settings.rewards:
        if seed.code in present:
            continue
        await Reward.create(
            code=seed.code, kind=seed.kind, name_zh=seed.name_zh, name_en=seed.name_en,
            points_cost=seed.points_cost, min_tier=seed.min_tier, stock=seed.stock,
            monthly_limit=seed.monthly_limit, yearly_limit=seed.yearly_limit,
            active_from=seed.active_from, active_until=seed.active_until,
        )
        created += 1
    return created


async def get_reward(code: str) -> Reward:
    reward = await Reward.get_or_none(code=code)
    if reward is None:
        raise UnknownReward(f"no reward {code!r}")
    return reward


def is_active(reward: Reward, today: date) -> bool:
    if reward.retired_at is not None:
        return False
    if reward.active_from is not None and today < reward.active_from:
        return False
    return reward.active_until is None or today <= reward.active_until


async def _issued_in(customer_id: int, start: datetime, end: datetime, *,
                     reward_id: int | None = None, kind: str | None = None,
                     entitlement: bool) -> int:
    query = Voucher.filter(customer_id=customer_id, entitlement=entitlement,
                           issued_at__gte=start, issued_at__lt=end).exclude(
        status=VoucherStatus.CANCELLED)
    if reward_id is not None:
        query = query.filter(reward_id=reward_id)
    if kind is not None:
        query = query.filter(reward_kind=kind)
    return await query.count()


@dataclass(frozen=True, slots=True)
class Terms:
    """What one redemption costs and how much of its limit is left after it."""

    cost: int
    entitlement: bool
    remaining_after: int | None


async def check_terms(
    customer: Customer,
    tier: TierSettings,
    reward: Reward,
    *,
    entitlement: bool,
    now: datetime,
    settings: LoyaltySettings,
) -> Terms:
    """Tier, window and limits for one more voucher, or the refusal as a domain error.

    Stock and points are checked by the redemption itself (under its locks); this is the part
    that depends only on the customer's own history, so the caller holds the account lock.
    """
    tz = zone(customer.timezone)
    today = local_day(now, tz)
    if not is_active(reward, today):
        raise NotEligible("inactive", f"reward {reward.code} is not available now")
    if entitlement:
        quota = entitlement_quota(tier, reward.kind)
        if quota is None:
            raise NotEligible("no_entitlement", f"tier {tier.code} has no free {reward.kind}")
        limit, period = quota
        start, end = month_bounds(today, tz) if period == "month" else year_bounds(today, tz)
        used = await _issued_in(customer.id, start, end, kind=reward.kind, entitlement=True)
        if used >= limit:
            raise LimitReached(period, limit)
        return Terms(0, True, limit - used - 1)
    if settings.tier_rank(tier.code) < settings.tier_rank(reward.min_tier):
        raise NotEligible("tier", f"reward {reward.code} needs tier {reward.min_tier}")
    remaining: int | None = None
    for cap, period in ((reward.monthly_limit, "month"), (reward.yearly_limit, "year")):
        if cap is None:
            continue
        start, end = month_bounds(today, tz) if period == "month" else year_bounds(today, tz)
        used = await _issued_in(customer.id, start, end, reward_id=reward.id, entitlement=False)
        if used >= cap:
            raise LimitReached(period, cap)
        left = cap - used - 1
        remaining = left if remaining is None else min(remaining, left)
    return Terms(reward.points_cost, False, remaining)


@dataclass(frozen=True, slots=True)
class Offer:
    """One line of ``/rewards``: a reward, paid or as a free tier benefit, and whether this
    customer can redeem it now (``blocked`` is the error code or eligibility reason if not)."""

    reward_code: str
    kind: str
    name_zh: str
    name_en: str
    points_cost: int
    entitlement: bool
    stock: int | None
    remaining: int | None
    blocked: str | None


async def offers_for(customer_id: int, *, now: datetime, settings: LoyaltySettings) -> list[Offer]:
    """The active catalogue as this customer sees it: entitlements first, then paid rewards."""
    customer = await Customer.get_or_none(id=customer_id)
    if customer is None:
        raise UnknownCustomer(f"no customer {customer_id}")
    account = await LoyaltyAccount.get_or_none(customer_id=customer_id)
    tier = settings.tier(account.tier) if account else settings.tiers[0]
    balance = account.balance if account else 0
    today = local_day(now, zone(customer.timezone))
    rewards = [r for r in await Reward.all().order_by("points_cost", "id") if is_active(r, today)]
    offers: list[Offer] = []
    for entitlement in (True, False):
        for reward in rewards:
            if entitlement and entitlement_quota(tier, reward.kind) is None:
                continue
            blocked: str | None = None
            remaining: int | None = None
            try:
                terms = await check_terms(customer, tier, reward, entitlement=entitlement,
                                          now=now, settings=settings)
                remaining = None if terms.remaining_after is None else terms.remaining_after + 1
                if reward.stock is not None and reward.stock <= 0:
                    raise OutOfStock(reward.code)
                if terms.cost > balance:
                    raise InsufficientPoints(terms.cost, balance)
            except NotEligible as refusal:
                blocked = refusal.reason
            except LimitReached as refusal:
                blocked, remaining = refusal.code, 0
            except LoyaltyError as refusal:
                blocked = refusal.code
            offers.append(Offer(reward.code, reward.kind, reward.name_zh, reward.name_en,
                                0 if entitlement else reward.points_cost, entitlement,
                                reward.stock, remaining, blocked))
    return offers
