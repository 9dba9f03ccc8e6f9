"""Rewards catalogue, redemption and vouchers on a real database."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from loyalty import ledger
from loyalty.config import LoyaltySettings, RewardSeed
from loyalty.errors import (
    IdempotencyConflict,
    InsufficientPoints,
    LimitReached,
    NotEligible,
    OutOfStock,
    VoucherAlreadyUsed,
    VoucherNotFound,
)
from loyalty.partners import create_partner, use_voucher
from loyalty.rewards import offers_for, seed_rewards
from loyalty.vouchers import cancel_voucher, customer_vouchers, expire_vouchers, redeem
from storage.loyalty_models import (
    EntryKind,
    LedgerEntry,
    LoyaltyAccount,
    Reward,
    Voucher,
    VoucherStatus,
)
from storage.models import Customer, Message

S = LoyaltySettings()
NOW = datetime(2026, 3, 15, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
_seq = itertools.count(1)


async def _customer(points: int = 0, tier: str = "standard", language: str = "zh-CN") -> Customer:
    n = next(_seq)
    owner = await Customer.create(name=f"王{n}", phone=f"+86137{n:08d}", referral_code=f"V{n}",
                                  language=language)
    if points:
        await ledger.credit(owner.id, points, kind=EntryKind.ADJUSTMENT, key=f"seed:{owner.id}",
                            now=NOW - timedelta(days=1), settings=S, reason="t", operator="t")
    if tier != "standard":
        await ledger.credit(owner.id, 1, kind=EntryKind.ADJUSTMENT, key=f"open:{owner.id}",
                            now=NOW - timedelta(days=1), settings=S, reason="t", operator="t")
        await LoyaltyAccount.filter(customer_id=owner.id).update(tier=tier)
    return owner


async def _reward(code: str = "wash10", *, cost: int = 10, kind: str = "car_wash",
                  **extra: Any) -> Reward:
    return await Reward.create(code=code, kind=kind, name_zh="洗车", name_en="Car wash",
                               points_cost=cost, **extra)


async def _sound() -> None:
    assert await ledger.audit() == ([], 0)


async def test_seeding_creates_missing_rewards_and_never_overwrites(db: str) -> None:
    assert await seed_rewards(S) == len(S.rewards)
    await Reward.filter(code="car_wash").update(points_cost=999)
    assert await seed_rewards(S) == 0
    assert (await Reward.get(code="car_wash")).points_cost == 999
    extra = S.model_copy(update={"rewards": [*S.rewards, RewardSeed(
        code="gift_mug", kind="gift", name_zh="马克杯", name_en="Mug", points_cost=100)]})
    assert await seed_rewards(extra) == 1


async def test_redemption_debits_issues_a_voucher_and_queues_the_message(db: str) -> None:
    await seed_rewards(S)
    owner = await _customer(points=1000)
    done = await redeem(owner.id, "gift_umbrella", request_key="tg:1", now=NOW, settings=S)
    voucher = done.voucher
    assert not done.replayed and voucher.status == VoucherStatus.ISSUED
    assert (voucher.points_cost, voucher.reward_kind) == (500, "gift")
    assert await ledger.get_balance(owner.id) == 500
    assert (await Reward.get(code="gift_umbrella")).stock == 199
    # Valid through 90 local days after issue, i.e. until midnight after June 13th in Shanghai.
    assert voucher.expires_at == datetime(2026, 6, 13, 16, 0, tzinfo=UTC)
    message = await Message.get(dedup_key=f"voucher_issued:{voucher.id}")
    assert message.category == "service"
    assert message.params == {"reward": "定制晴雨伞", "code": voucher.code[:4] + "-"
                              + voucher.code[4:8] + "-" + voucher.code[8:],
                              "expires": "2026年6月13日"}
    await _sound()


async def test_same_request_key_returns_the_same_voucher_and_debits_once(db: str) -> None:
    await _reward()
    await _reward("other", cost=5)
    owner = await _customer(points=100)
    first = await redeem(owner.id, "wash10", request_key="k", now=NOW, settings=S)
    again = await redeem(owner.id, "wash10", request_key="k", now=NOW, settings=S)
    assert again.replayed and again.voucher.id == first.voucher.id
    with pytest.raises(IdempotencyConflict):
        await redeem(owner.id, "other", request_key="k", now=NOW, settings=S)
    assert await ledger.get_balance(owner.id) == 90
    assert await Voucher.all().count() == 1


async def test_eligibility_tier_window_limits_and_points(db: str) -> None:
    await _reward("gold_only", cost=10, min_tier="gold")
    await _reward("summer", cost=10, active_from=date(2026, 6, 1), active_until=date(2026, 8, 31))
    await _reward("twice", cost=10, monthly_limit=2)
    owner = await _customer(points=25)
    with pytest.raises(NotEligible) as low:
        await redeem(owner.id, "gold_only", request_key="a", now=NOW, settings=S)
    assert (low.value.code, low.value.reason) == ("not_eligible", "tier")
    with pytest.raises(NotEligible) as window:
        await redeem(owner.id, "summer", request_key="b", now=NOW, settings=S)
    assert window.value.reason == "inactive"
    await redeem(owner.id, "twice", request_key="c", now=NOW, settings=S)
    await redeem(owner.id, "twice", request_key="d", now=NOW, settings=S)
    with pytest.raises(InsufficientPoints):
        await redeem(owner.id, "summer", request_key="e", now=datetime(2026, 7, 1, tzinfo=UTC),
                     settings=S)
    await ledger.credit(owner.id, 100, kind=EntryKind.ADJUSTMENT, key="more", now=NOW,
                        settings=S, reason="t", operator="t")
    with pytest.raises(LimitReached) as limit:
        await redeem(owner.id, "twice", request_key="f", now=NOW, settings=S)
    assert (limit.value.period, limit.value.limit) == ("month", 2)
    next_month = datetime(2026, 4, 1, 1, 0, tzinfo=UTC)
    await redeem(owner.id, "twice", request_key="g", now=next_month, settings=S)
    assert await Voucher.all().count() == 3


async def test_tier_entitlements_are_free_and_counted_against_the_monthly_quota(db: str) -> None:
    await _reward("car_wash", cost=300)
    silver = await _customer(tier="silver")
    free = await redeem(silver.id, "car_wash", request_key="w1", now=NOW, settings=S,
                        entitlement=True)
    assert (free.voucher.points_cost, free.voucher.entitlement) == (0, True)
    assert free.voucher.debit_entry_id is None
    with pytest.raises(LimitReached) as used_up:
        await redeem(silver.id, "car_wash", request_key="w2", now=NOW, settings=S,
                     entitlement=True)
    assert (used_up.value.period, used_up.value.limit) == ("month", 1)
    await redeem(silver.id, "car_wash", request_key="w3",
                 now=datetime(2026, 4, 2, tzinfo=UTC), settings=S, entitlement=True)
    standard = await _customer(points=1000)
    with pytest.raises(NotEligible) as none:
        await redeem(standard.id, "car_wash", request_key="w4", now=NOW, settings=S,
                     entitlement=True)
    assert none.value.reason == "no_entitlement"
    assert await ledger.get_balance(silver.id) == 1


async def test_maintenance_vouchers_carry_the_tier_discount(db: str) -> None:
    await _reward("maintenance", cost=10, kind="maintenance")
    gold = await _customer(points=100, tier="gold")
    done = await redeem(gold.id, "maintenance", request_key="m", now=NOW, settings=S)
    assert done.voucher.discount_percent == 5


async def test_fifty_concurrent_redeems_of_ten_against_one_hundred_issue_exactly_ten(
    db: str,
) -> None:
    await _reward(cost=10)
    owner = await _customer(points=100)
    results = await asyncio.gather(
        *(redeem(owner.id, "wash10", request_key=f"r{i}", now=NOW, settings=S)
          for i in range(50)),
        return_exceptions=True,
    )
    unexpected = [r for r in results if isinstance(r, BaseException)
                  and not isinstance(r, InsufficientPoints)]
    assert not unexpected
    assert sum(not isinstance(r, BaseException) for r in results) == 10
    assert await Voucher.all().count() == 10
    assert await ledger.get_balance(owner.id) == 0
    await _sound()


async def test_stock_of_five_with_twenty_concurrent_redeemers_issues_five(db: str) -> None:
    await _reward("limited", cost=10, stock=5)
    owners = [await _customer(points=50) for _ in range(20)]
    results = await asyncio.gather(
        *(redeem(o.id, "limited", request_key=f"s{o.id}", now=NOW, settings=S) for o in owners),
        return_exceptions=True,
    )
    unexpected = [r for r in results if isinstance(r, BaseException)
                  and not isinstance(r, OutOfStock)]
    assert not unexpected
    assert sum(isinstance(r, OutOfStock) for r in results) == 15
    assert await Voucher.all().count() == 5
    assert (await Reward.get(code="limited")).stock == 0
    assert sum([await ledger.get_balance(o.id) for o in owners]) == 20 * 50 - 5 * 10
    await _sound()


async def test_cancelling_an_unused_voucher_refunds_by_reversal_and_restores_stock(
    db: str,
) -> None:
    await _reward("limited", cost=30, stock=1)
    owner = await _customer(points=100)
    other = await _customer(points=100)
    voucher = (await redeem(owner.id, "limited", request_key="c1", now=NOW, settings=S)).voucher
    with pytest.raises(VoucherNotFound):
        await cancel_voucher(other.id, voucher.id, now=NOW, settings=S)
    cancelled = await cancel_voucher(owner.id, voucher.id, now=NOW, settings=S)
    assert cancelled.status == VoucherStatus.CANCELLED and cancelled.refund_entry_id
    refund = await LedgerEntry.get(id=cancelled.refund_entry_id)
    assert (refund.kind, refund.amount, refund.reverses_id) == (
        EntryKind.REVERSAL, 30, voucher.debit_entry_id)
    again = await cancel_voucher(owner.id, voucher.id, now=NOW, settings=S)
    assert again.refund_entry_id == cancelled.refund_entry_id
    assert await ledger.get_balance(owner.id) == 100
    assert (await Reward.get(code="limited")).stock == 1
    await _sound()


async def test_a_used_voucher_cannot_be_cancelled(db: str) -> None:
    await _reward(cost=10)
    owner = await _customer(points=100)
    voucher = (await redeem(owner.id, "wash10", request_key="u", now=NOW, settings=S)).voucher
    partner, _ = await create_partner("洗车行", ["car_wash"])
    await use_voucher(partner, voucher.code, now=NOW)
    with pytest.raises(VoucherAlreadyUsed):
        await cancel_voucher(owner.id, voucher.id, now=NOW, settings=S)
    assert await ledger.get_balance(owner.id) == 90


@pytest.mark.parametrize("refund", [False, True])
async def test_expired_vouchers_refund_according_to_config(db: str, refund: bool) -> None:
    settings = S.model_copy(update={"refund_expired_vouchers": refund, "voucher_valid_days": 1})
    await _reward("limited", cost=40, stock=3)
    owner = await _customer(points=100)
    await redeem(owner.id, "limited", request_key="x", now=NOW, settings=settings)
    assert await expire_vouchers(NOW + timedelta(days=1), settings=settings) == 0
    later = NOW + timedelta(days=2)
    assert await expire_vouchers(later, settings=settings) == 1
    assert await expire_vouchers(later, settings=settings) == 0
    assert await ledger.get_balance(owner.id) == (100 if refund else 60)
    assert (await Reward.get(code="limited")).stock == 3
    [view] = await customer_vouchers(owner.id, now=later)
    assert view.status == VoucherStatus.EXPIRED
    await _sound()


async def test_offers_show_entitlements_first_with_what_blocks_each(db: str) -> None:
    await seed_rewards(S)
    owner = await _customer(points=600, tier="silver", language="en")
    offers = await offers_for(owner.id, now=NOW, settings=S)
    assert (offers[0].reward_code, offers[0].entitlement, offers[0].points_cost,
            offers[0].remaining, offers[0].blocked) == ("car_wash", True, 0, 1, None)
    by_code = {o.reward_code: o for o in offers if not o.entitlement}
    assert by_code["car_wash"].blocked is None
    assert by_code["gift_dashcam"].blocked == "tier"
    assert by_code["annual_inspection"].blocked == "insufficient_points"
    assert by_code["car_wash"].remaining == 4
