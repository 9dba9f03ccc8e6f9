"""Earning rules and VIP tiers on a real database."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from loyalty import ledger
from loyalty.config import LoyaltySettings
from loyalty.earning import (
    adjust_points,
    award_birthday_bonus,
    award_referral_if_due,
    check_in,
    earn_for_payment,
    link_referrer,
    premium_points,
    referral_count,
    reverse_policy_points,
)
from loyalty.errors import InsufficientPoints, InvalidRequest, NotEligible
from loyalty.tiers import ReviewReport, annual_tier_review, tier_history, tier_status
from storage.loyalty_models import EntryKind, LedgerEntry, LoyaltyAccount
from storage.models import (
    Customer,
    Message,
    Payment,
    PaymentKind,
    Policy,
    PolicyStatus,
    Product,
)

S = LoyaltySettings()
NOW = datetime(2026, 3, 15, 2, 0, tzinfo=UTC)
_seq = itertools.count(1)


async def _customer(tz: str = "Asia/Shanghai", **extra: Any) -> Customer:
    n = next(_seq)
    return await Customer.create(name=f"客户{n}", phone=f"+86139{n:08d}", referral_code=f"L{n}",
                                 timezone=tz, **extra)


async def _policy(owner: Customer, *, status: PolicyStatus = PolicyStatus.ACTIVE,
                  premium: int = 300_000) -> Policy:
    n = next(_seq)
    return await Policy.create(number=f"P-{n}", customer=owner, product=Product.COMMERCIAL,
                               plate=f"沪A{n:05d}", start_date=date(2026, 1, 1),
                               end_date=date(2026, 12, 31), premium_cents=premium, status=status)


async def _pay(policy: Policy, cents: int, at: datetime = NOW,
               kind: PaymentKind = PaymentKind.PREMIUM) -> Payment:
    return await Payment.create(external_id=f"X{next(_seq)}", policy=policy,
                                customer_id=policy.customer_id,
                                kind=kind, amount_cents=cents, paid_at=at)


async def _tier(owner: Customer) -> str:
    return (await LoyaltyAccount.get(customer_id=owner.id)).tier


async def _sound() -> None:
    assert await ledger.audit() == ([], 0)


def test_premium_points_round_down_without_float_drift() -> None:
    assert premium_points(123_456, points_per_yuan=1.0, multiplier=1.0) == 1234
    assert premium_points(100_000, points_per_yuan=1.0, multiplier=1.2) == 1200
    assert premium_points(99, points_per_yuan=1.0, multiplier=2.0) == 1
    assert premium_points(10, points_per_yuan=0.1, multiplier=3.0) == 0


# --- premium ---------------------------------------------------------------------------------


async def test_premium_earns_points_per_yuan_once_per_payment(db: str) -> None:
    owner = await _customer()
    payment = await _pay(await _policy(owner), 123_456)
    first = await earn_for_payment(payment.id, settings=S, now=NOW)
    again = await earn_for_payment(payment.id, settings=S, now=NOW + timedelta(days=3))
    assert first is not None and again is not None
    assert (first.amount, again.replayed, again.entry_id) == (1234, True, first.entry_id)
    assert await ledger.get_balance(owner.id) == 1234
    await _sound()


async def test_qualifying_payment_upgrades_at_once_and_earns_at_the_new_multiplier(db: str) -> None:
    owner = await _customer()
    payment = await _pay(await _policy(owner), 600_000)
    posted = await earn_for_payment(payment.id, settings=S, now=NOW)
    assert posted is not None and posted.amount == 9000  # ¥6,000 × 1.5 (gold)
    assert await _tier(owner) == "gold"
    history = await tier_history(owner.id)
    assert [(h.from_tier, h.to_tier, h.reason) for h in history] == [
        ("standard", "gold", "upgrade")]
    message = await Message.get(customer_id=owner.id, kind="tier_upgrade")
    assert message.dedup_key == f"tier_upgrade:{owner.id}:gold:2026-03-15"
    assert message.params == {"tier": "金卡", "multiplier": "1.5"}


async def test_partial_refund_takes_back_its_share_of_the_points(db: str) -> None:
    owner = await _customer()
    policy = await _policy(owner)
    await earn_for_payment((await _pay(policy, 200_000)).id, settings=S, now=NOW)
    refund = await _pay(policy, 50_000, kind=PaymentKind.REFUND)
    posted = await earn_for_payment(refund.id, settings=S, now=NOW)
    assert posted is not None and (posted.amount, posted.shortfall) == (-500, 0)
    assert posted.kind == EntryKind.PREMIUM_REVERSAL
    assert await ledger.get_balance(owner.id) == 1500
    assert (await earn_for_payment(refund.id, settings=S, now=NOW)).replayed  # type: ignore[union-attr]
    await _sound()


async def test_refund_of_spent_points_stops_at_zero_and_records_the_shortfall(db: str) -> None:
    owner = await _customer()
    policy = await _policy(owner)
    await earn_for_payment((await _pay(policy, 100_000)).id, settings=S, now=NOW)
    await ledger.debit(owner.id, 800, kind=EntryKind.REDEMPTION, key="spent", now=NOW)
    posted = await earn_for_payment((await _pay(policy, 100_000, kind=PaymentKind.REFUND)).id,
                                    settings=S, now=NOW)
    assert posted is not None and (posted.amount, posted.shortfall) == (-200, 800)
    assert await ledger.get_balance(owner.id) == 0
    await _sound()


async def test_cancelled_policy_gives_back_the_rest_of_its_points_once(db: str) -> None:
    owner = await _customer()
    policy = await _policy(owner)
    other = await _policy(owner)
    await earn_for_payment((await _pay(policy, 200_000)).id, settings=S, now=NOW)
    await earn_for_payment((await _pay(other, 30_000)).id, settings=S, now=NOW)
    await earn_for_payment((await _pay(policy, 50_000, kind=PaymentKind.REFUND)).id,
                           settings=S, now=NOW)
    posted = await reverse_policy_points(policy.id, settings=S, now=NOW)
    assert posted is not None and posted.amount == -1500
    again = await reverse_policy_points(policy.id, settings=S, now=NOW)
    assert again is not None and again.replayed
    assert await ledger.get_balance(owner.id) == 300  # only the other policy's points
    await _sound()


async def test_refund_does_not_downgrade_mid_year_but_the_annual_review_does(db: str) -> None:
    owner = await _customer()
    policy = await _policy(owner)
    await earn_for_payment((await _pay(policy, 650_000, at=NOW)).id, settings=S, now=NOW)
    assert await _tier(owner) == "gold"
    later = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)
    refund = await _pay(policy, 650_000, at=later, kind=PaymentKind.REFUND)
    await earn_for_payment(refund.id, settings=S, now=later)
    assert await _tier(owner) == "gold"  # never mid-year
    status = await tier_status(owner.id, now=later, settings=S)
    assert (status.tier.code, status.trailing_premium_cents) == ("gold", 0)
    report = await annual_tier_review(date(2027, 1, 1), settings=S)
    assert (report.reviewed, report.downgraded) == (1, 1)
    assert await _tier(owner) == "standard"
    assert [(h.to_tier, h.reason) for h in await tier_history(owner.id)] == [
        ("gold", "upgrade"), ("standard", "review")]


async def test_annual_review_keeps_a_tier_earned_within_the_trailing_year(db: str) -> None:
    owner = await _customer()
    paid_at = datetime(2026, 2, 1, 2, 0, tzinfo=UTC)
    await earn_for_payment((await _pay(await _policy(owner), 350_000, at=paid_at)).id,
                           settings=S, now=paid_at)
    assert await _tier(owner) == "silver"
    assert await annual_tier_review(date(2027, 1, 1), settings=S) == ReviewReport(1, 0, 0)
    assert await _tier(owner) == "silver"
    assert (await annual_tier_review(date(2028, 1, 1), settings=S)).downgraded == 1
    assert await _tier(owner) == "standard"
    assert (await annual_tier_review(date(2028, 1, 1), settings=S)).downgraded == 0
    assert len(await tier_history(owner.id)) == 2


async def test_late_review_counts_only_payments_before_its_day(db: str) -> None:
    """The review of 1 January 2027 held on 3 January (the scheduler was down): a refund of
    2 January does not count in it, a customer with nothing paid in 2026 goes down, and a
    premium paid on 2 January keeps the tier it would have raised again after an on-time
    review (the payment found the account already gold, so nothing upgraded it)."""
    old = datetime(2025, 11, 1, 2, 0, tzinfo=UTC)  # outside the review's 2026 window
    june = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
    jan2 = datetime(2027, 1, 2, 2, 0, tzinfo=UTC)
    late = datetime(2027, 1, 2, 17, 0, tzinfo=UTC)  # 3 January 01:00 in Shanghai

    async def gold_since(paid_at: datetime) -> tuple[Customer, Policy]:
        owner = await _customer()
        policy = await _policy(owner)
        await earn_for_payment((await _pay(policy, 650_000, at=paid_at)).id, settings=S,
                               now=paid_at)
        assert await _tier(owner) == "gold"
        return owner, policy

    lapsed, _ = await gold_since(old)
    refunded, refunded_policy = await gold_since(june)
    renewed, renewed_policy = await gold_since(old)
    part, part_policy = await gold_since(old)
    for payment in (await _pay(refunded_policy, 650_000, at=jan2, kind=PaymentKind.REFUND),
                    await _pay(renewed_policy, 650_000, at=jan2),
                    await _pay(part_policy, 350_000, at=jan2)):
        await earn_for_payment(payment.id, settings=S, now=jan2)
    assert [await _tier(c) for c in (lapsed, refunded, renewed, part)] == ["gold"] * 4

    report = await annual_tier_review(date(2027, 1, 1), settings=S, now=late)

    assert [await _tier(c) for c in (lapsed, refunded, renewed, part)] == [
        "standard", "gold", "gold", "silver"]
    assert report == ReviewReport(4, 0, 2)
    [change] = [h for h in await tier_history(part.id) if h.reason == "review"]
    assert (change.to_tier, change.trailing_premium_cents) == ("silver", 0)
    assert change.effective_at == late
    assert await annual_tier_review(date(2027, 1, 1), settings=S, now=late) == ReviewReport(
        4, 0, 0)


async def test_tier_status_shows_progress_to_the_next_tier(db: str) -> None:
    owner = await _customer()
    await earn_for_payment((await _pay(await _policy(owner), 250_000)).id, settings=S, now=NOW)
    status = await tier_status(owner.id, now=NOW, settings=S)
    assert status.tier.code == "standard" and status.next_tier is not None
    assert (status.next_tier.code, status.missing_cents) == ("silver", 50_000)


# --- check-in --------------------------------------------------------------------------------


async def test_second_checkin_same_day_awards_nothing(db: str) -> None:
    owner = await _customer()
    first = await check_in(owner.id, now=NOW, settings=S)
    second = await check_in(owner.id, now=NOW + timedelta(hours=3), settings=S)
    assert (first.awarded, first.points, first.streak) == (True, 5, 1)
    assert (second.awarded, second.points, second.streak) == (False, 0, 1)
    assert await ledger.get_balance(owner.id) == 5


async def test_streak_bonus_on_every_seventh_consecutive_day_and_a_gap_resets(db: str) -> None:
    owner = await _customer()
    results = [await check_in(owner.id, now=NOW + timedelta(days=d), settings=S)
               for d in range(8)]
    assert [r.streak for r in results] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert [r.bonus for r in results] == [0, 0, 0, 0, 0, 0, 20, 0]
    after_gap = await check_in(owner.id, now=NOW + timedelta(days=10), settings=S)
    assert after_gap.streak == 1
    assert await ledger.get_balance(owner.id) == 9 * 5 + 20


async def test_checkin_days_follow_the_customer_time_zone(db: str) -> None:
    shanghai = await _customer("Asia/Shanghai")
    # 23:30 on March 1st, then 00:30 on March 2nd in Shanghai: same UTC date, two local days.
    a = await check_in(shanghai.id, now=datetime(2026, 3, 1, 15, 30, tzinfo=UTC), settings=S)
    b = await check_in(shanghai.id, now=datetime(2026, 3, 1, 16, 30, tzinfo=UTC), settings=S)
    assert (a.day, b.day) == ("2026-03-01", "2026-03-02")
    assert (b.awarded, b.streak) == (True, 2)

    los_angeles = await _customer("America/Los_Angeles")
    # 12:00 and 23:00 on March 1st in Los Angeles: two UTC dates, one local day.
    c = await check_in(los_angeles.id, now=datetime(2026, 3, 1, 20, 0, tzinfo=UTC), settings=S)
    d = await check_in(los_angeles.id, now=datetime(2026, 3, 2, 7, 0, tzinfo=UTC), settings=S)
    assert (c.awarded, d.awarded, d.day) == (True, False, "2026-03-01")
    e = await check_in(los_angeles.id, now=datetime(2026, 3, 2, 8, 30, tzinfo=UTC), settings=S)
    assert (e.day, e.streak) == ("2026-03-02", 2)


# --- referral, birthday, adjustments --------------------------------------------------------


async def test_referral_bonus_once_when_the_first_policy_becomes_active(db: str) -> None:
    referrer = await _customer()
    newcomer = await _customer()
    assert (await link_referrer(newcomer.id, referrer.referral_code)).id == referrer.id
    assert await award_referral_if_due(newcomer.id, now=NOW, settings=S) is None  # no policy
    await _policy(newcomer, status=PolicyStatus.ACTIVE)
    posted = await award_referral_if_due(newcomer.id, now=NOW, settings=S)
    assert posted is not None and posted.amount == 200
    await _policy(newcomer, status=PolicyStatus.ACTIVE)
    again = await award_referral_if_due(newcomer.id, now=NOW, settings=S)
    assert again is not None and again.replayed
    assert await ledger.get_balance(referrer.id) == 200
    assert await ledger.get_balance(newcomer.id) == 0
    assert await referral_count(referrer.id) == 1


async def test_referral_refusals(db: str) -> None:
    a, b, c = await _customer(), await _customer(), await _customer()
    with pytest.raises(NotEligible) as self_ref:
        await link_referrer(a.id, a.referral_code)
    assert self_ref.value.reason == "self_referral"
    await link_referrer(b.id, a.referral_code)
    await link_referrer(b.id, a.referral_code)  # the same link again is fine
    with pytest.raises(NotEligible) as second:
        await link_referrer(b.id, c.referral_code)
    assert second.value.reason == "already_referred"
    await _policy(c)
    with pytest.raises(NotEligible) as existing:
        await link_referrer(c.id, a.referral_code)
    assert existing.value.reason == "not_new_customer"
    with pytest.raises(NotEligible):
        await link_referrer(a.id, "NOPE")


async def test_birthday_bonus_follows_the_tier_once_a_year(db: str) -> None:
    owner = await _customer()
    await earn_for_payment((await _pay(await _policy(owner), 1_000_000)).id, settings=S, now=NOW)
    assert await _tier(owner) == "diamond"
    first = await award_birthday_bonus(owner.id, year=2026, now=NOW, settings=S)
    again = await award_birthday_bonus(owner.id, year=2026, now=NOW, settings=S)
    assert first is not None and first.amount == 500
    assert again is not None and again.replayed
    plain = await _customer()
    posted = await award_birthday_bonus(plain.id, year=2026, now=NOW, settings=S)
    assert posted is not None and posted.amount == 50


async def test_adjustment_needs_reason_and_operator_and_is_idempotent(db: str) -> None:
    owner = await _customer()
    with pytest.raises(InvalidRequest):
        await adjust_points(owner.id, 10, reason=" ", operator="op", key="r1", now=NOW,
                            settings=S)
    with pytest.raises(InvalidRequest):
        await adjust_points(owner.id, 10, reason="goodwill", operator="", key="r1", now=NOW,
                            settings=S)
    posted = await adjust_points(owner.id, 100, reason="goodwill", operator="op:li", key="r1",
                                 now=NOW, settings=S)
    again = await adjust_points(owner.id, 100, reason="goodwill", operator="op:li", key="r1",
                                now=NOW, settings=S)
    assert again.replayed and again.entry_id == posted.entry_id
    with pytest.raises(InsufficientPoints):
        await adjust_points(owner.id, -101, reason="fix", operator="op:li", key="r2", now=NOW,
                            settings=S)
    await adjust_points(owner.id, -40, reason="fix", operator="op:li", key="r3", now=NOW,
                        settings=S)
    entry = await LedgerEntry.get(id=posted.entry_id)
    assert (entry.reason, entry.operator) == ("goodwill", "op:li")
    assert await ledger.get_balance(owner.id) == 60
    await _sound()
