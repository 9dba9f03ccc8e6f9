"""The daily loyalty jobs: lot expiry, expiry warnings and daily summaries."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime

from loyalty import ledger
from loyalty.config import LoyaltySettings
from loyalty.earning import check_in, link_referrer
from loyalty.jobs import (
    SettleReport,
    expire_lots,
    queue_daily_summaries,
    queue_expiry_warnings,
    settle_imports,
)
from storage.loyalty_models import EntryKind, LedgerEntry, PointLot
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


async def _customer(language: str = "zh-CN", tz: str = "Asia/Shanghai") -> Customer:
    n = next(_seq)
    return await Customer.create(name=f"赵{n}", phone=f"+86136{n:08d}", referral_code=f"J{n}",
                                 language=language, timezone=tz)


async def _credit(c: Customer, points: int, key: str, now: datetime) -> ledger.Posted:
    return await ledger.credit(c.id, points, kind=EntryKind.ADJUSTMENT, key=key, now=now,
                               settings=S, reason="test", operator="tester")


async def _debit(c: Customer, points: int, key: str, now: datetime,
                 kind: EntryKind = EntryKind.REDEMPTION) -> ledger.Posted:
    return await ledger.debit(c.id, points, kind=kind, key=key, now=now, reason="test",
                              operator="tester")


async def _expiries() -> list[int]:
    return await LedgerEntry.filter(kind=EntryKind.EXPIRY).order_by("id").values_list(
        "amount", flat=True)  # type: ignore[return-value]


async def _sound() -> None:
    assert await ledger.audit() == ([], 0)


async def test_expiry_posts_one_entry_per_lot_remainder_once(db: str) -> None:
    c = await _customer()
    await _credit(c, 100, "a", datetime(2024, 1, 10, tzinfo=UTC))  # valid through 2026-01-31
    await _credit(c, 30, "b", datetime(2024, 2, 10, tzinfo=UTC))  # through 2026-02-28
    await _credit(c, 7, "c", NOW)  # through 2028-03-31
    await _debit(c, 20, "d1", datetime(2026, 1, 20, tzinfo=UTC))
    assert await expire_lots(date(2026, 1, 31), settings=S) == 0  # its last day: still valid
    assert await expire_lots(date(2026, 2, 1), settings=S) == 1
    assert await expire_lots(date(2026, 2, 1), settings=S) == 0
    await _debit(c, 25, "d2", datetime(2026, 2, 10, tzinfo=UTC))
    assert await expire_lots(date(2026, 3, 1), settings=S) == 1
    assert await expire_lots(date(2027, 1, 1), settings=S) == 0
    assert await _expiries() == [-80, -5]
    entry = await LedgerEntry.get(idempotency_key__startswith="expiry:lot:", amount=-80)
    assert entry.occurred_at == datetime(2026, 1, 31, 16, 0, tzinfo=UTC)  # Feb 1st, Shanghai
    assert await ledger.get_balance(c.id) == 7
    await _sound()


async def test_points_refunded_into_a_closed_lot_expire_at_once(db: str) -> None:
    c = await _customer()
    await _credit(c, 50, "a", datetime(2024, 1, 10, tzinfo=UTC))  # through 2026-01-31
    taken = await _debit(c, 30, "fix", datetime(2026, 1, 10, tzinfo=UTC), EntryKind.ADJUSTMENT)
    assert await expire_lots(date(2026, 2, 1), settings=S) == 1  # the other 20
    refund = await ledger.reverse_entry(taken.entry_id, now=datetime(2026, 2, 5, tzinfo=UTC),
                                        settings=S, reason="undo", operator="op")
    assert (refund.amount, refund.balance_after) == (30, 30)
    assert await _expiries() == [-20, -30]  # the revived 30 went at once, in a new lot
    lots = await PointLot.filter(account__customer_id=c.id).order_by("id").values_list(
        "expires_on", "original", "remaining")
    assert lots == [(date(2026, 1, 31), 50, 0), (date(2026, 1, 31), 30, 0)]
    assert await expire_lots(date(2026, 2, 6), settings=S) == 0
    assert await ledger.get_balance(c.id) == 0
    await _sound()


async def test_points_refunded_into_a_lot_past_its_date_expire_at_once(db: str) -> None:
    c = await _customer()
    await _credit(c, 50, "a", datetime(2024, 1, 10, tzinfo=UTC))  # through 2026-01-31
    await _credit(c, 5, "b", NOW)
    taken = await _debit(c, 30, "fix", datetime(2026, 1, 10, tzinfo=UTC), EntryKind.ADJUSTMENT)
    # The expiry job has not run since the lot's last day.
    await ledger.reverse_entry(taken.entry_id, now=datetime(2026, 2, 5, tzinfo=UTC),
                               settings=S, reason="undo", operator="op")
    assert await _expiries() == [-50]
    assert await expire_lots(date(2026, 2, 6), settings=S) == 0
    assert await ledger.get_balance(c.id) == 5
    await _sound()


async def test_expiry_warning_once_per_customer_and_expiry_date(db: str) -> None:
    zh, en = await _customer(), await _customer(language="en")
    await _credit(zh, 60, "a1", datetime(2024, 4, 2, tzinfo=UTC))  # through 2026-04-30
    await _credit(zh, 40, "a2", datetime(2024, 4, 20, tzinfo=UTC))  # through 2026-04-30
    await _credit(zh, 20, "b", datetime(2024, 5, 2, tzinfo=UTC))  # through 2026-05-31
    await _credit(en, 15, "c", datetime(2024, 4, 9, tzinfo=UTC))  # through 2026-04-30
    await _debit(en, 5, "d", datetime(2026, 3, 1, tzinfo=UTC))
    assert await queue_expiry_warnings(date(2026, 3, 30), settings=S) == 0
    assert await queue_expiry_warnings(date(2026, 4, 10), settings=S) == 2
    assert await queue_expiry_warnings(date(2026, 4, 10), settings=S) == 0
    assert await queue_expiry_warnings(date(2026, 4, 11), settings=S) == 0
    first = await Message.get(dedup_key=f"points_expiring:{zh.id}:2026-04-30")
    assert (first.category, first.params) == ("care", {"points": 100, "date": "2026年4月30日"})
    english = await Message.get(dedup_key=f"points_expiring:{en.id}:2026-04-30")
    assert english.params == {"points": 10, "date": "2026-04-30"}
    assert await queue_expiry_warnings(date(2026, 5, 5), settings=S) == 1
    assert await Message.filter(kind="points_expiring").count() == 3


async def test_daily_summary_counts_earnings_of_the_customer_local_day(db: str) -> None:
    c = await _customer()
    other = await _customer(tz="Europe/London")
    await check_in(c.id, now=datetime(2026, 3, 14, 17, 0, tzinfo=UTC), settings=S)  # 3/15 01:00
    await _credit(c, 100, "gift", datetime(2026, 3, 15, 10, 0, tzinfo=UTC))  # 3/15 18:00
    await _debit(c, 30, "spent", datetime(2026, 3, 15, 11, 0, tzinfo=UTC))  # not an earning
    await _credit(c, 1000, "next", datetime(2026, 3, 15, 16, 30, tzinfo=UTC))  # 3/16 00:30
    await _credit(other, 8, "late", datetime(2026, 3, 15, 23, 30, tzinfo=UTC))  # London 3/15
    assert await queue_daily_summaries(date(2026, 3, 15), settings=S) == 2
    assert await queue_daily_summaries(date(2026, 3, 15), settings=S) == 0
    summary = await Message.get(dedup_key=f"points_summary:{c.id}:2026-03-15")
    assert summary.category == "care"
    assert summary.params == {"date": "2026年3月15日", "points": 105, "balance": 1075}
    late = await Message.get(dedup_key=f"points_summary:{other.id}:2026-03-15")
    assert late.params["points"] == 8
    assert await queue_daily_summaries(date(2026, 3, 13), settings=S) == 0


async def _policy(owner: Customer, number: str) -> Policy:
    return await Policy.create(number=number, customer=owner, product=Product.COMMERCIAL,
                               plate="沪A12345", start_date=date(2026, 1, 1),
                               end_date=date(2026, 12, 31), premium_cents=100_000)


async def test_settling_imports_applies_each_rule_once(db: str) -> None:
    referrer, newcomer = await _customer(), await _customer()
    await link_referrer(newcomer.id, referrer.referral_code)
    kept = await _policy(newcomer, "P-1")
    dropped = await _policy(newcomer, "P-2")
    for n, (policy, cents, kind) in enumerate([
        (kept, 100_000, PaymentKind.PREMIUM), (dropped, 50_000, PaymentKind.PREMIUM),
        (kept, 20_000, PaymentKind.REFUND),
    ]):
        await Payment.create(external_id=f"E{n}", policy=policy, customer=newcomer, kind=kind,
                             amount_cents=cents, paid_at=NOW)
    assert await settle_imports(settings=S, now=NOW) == SettleReport(3, 0, 1)
    await Policy.filter(id=dropped.id).update(status=PolicyStatus.CANCELLED)
    assert await settle_imports(settings=S, now=NOW) == SettleReport(0, 1, 0)
    assert await settle_imports(settings=S, now=NOW) == SettleReport(0, 0, 0)
    assert await ledger.get_balance(newcomer.id) == 1000 - 200
    assert await ledger.get_balance(referrer.id) == S.referral_bonus
    await _sound()
