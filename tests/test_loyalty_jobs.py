"""The daily loyalty jobs: lot expiry, expiry warnings and daily summaries."""

from __future__ import annotations

import io
import itertools
from datetime import UTC, date, datetime
from pathlib import Path

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
from storage.importer import import_csv
from storage.loyalty_models import EntryKind, LedgerEntry, LoyaltyAccount, PointLot
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


# --- a settled payment the core system changes -----------------------------------------------


async def _import_payment(tmp_path: Path, amount: str, kind: str = "premium",
                          number: str = "P-1", external_id: str = "PAY-1") -> None:
    path = tmp_path / "payments.csv"
    path.write_text(f"external_id,policy,amount,paid_at,kind\n"
                    f"{external_id},{number},{amount},2026-03-10T10:00,{kind}\n", encoding="utf-8")
    report = await import_csv("payments", path, out=io.StringIO(), now=NOW)
    assert report.rejected == 0


async def _corrections() -> list[tuple[int, int, int | None]]:
    return await LedgerEntry.filter(kind=EntryKind.PAYMENT_CORRECTION).order_by("id").values_list(
        "amount", "shortfall", "basis_cents")  # type: ignore[return-value]


async def test_reimported_payment_amount_corrects_its_points_once_per_change(
        tmp_path: Path, db: str) -> None:
    owner = await _customer()
    await _policy(owner, "P-1")
    await _import_payment(tmp_path, "1000.00")
    assert await settle_imports(settings=S, now=NOW) == SettleReport(1, 0, 0)
    assert await ledger.get_balance(owner.id) == 1000

    await _import_payment(tmp_path, "1500.00")
    assert await settle_imports(settings=S, now=NOW) == SettleReport(0, 0, 0, 1)
    assert await settle_imports(settings=S, now=NOW) == SettleReport(0, 0, 0, 0)
    assert await ledger.get_balance(owner.id) == 1500

    await _import_payment(tmp_path, "1200.00")
    await _import_payment(tmp_path, "1200.00")  # the same file again changes nothing
    assert await settle_imports(settings=S, now=NOW) == SettleReport(0, 0, 0, 1)
    assert await settle_imports(settings=S, now=NOW) == SettleReport(0, 0, 0, 0)
    assert await ledger.get_balance(owner.id) == 1200
    assert await _corrections() == [(500, 0, 150_000), (-300, 0, 120_000)]

    # Back to an amount it had before: a change like any other, corrected once more.
    await _import_payment(tmp_path, "1500.00")
    assert await settle_imports(settings=S, now=NOW) == SettleReport(0, 0, 0, 1)
    assert await settle_imports(settings=S, now=NOW) == SettleReport(0, 0, 0, 0)
    assert await ledger.get_balance(owner.id) == 1500
    await _sound()


async def test_correction_keeps_the_multiplier_the_payment_earned_at(
        tmp_path: Path, db: str) -> None:
    owner = await _customer()
    await _policy(owner, "P-1")
    await _import_payment(tmp_path, "6000")
    await settle_imports(settings=S, now=NOW)
    assert await ledger.get_balance(owner.id) == 9000  # gold: ×1.5
    # The tier the points were earned at is gone (an annual review); the rate is not.
    await LoyaltyAccount.filter(customer_id=owner.id).update(tier="standard")
    await _import_payment(tmp_path, "4000")
    await settle_imports(settings=S, now=NOW)
    assert await ledger.get_balance(owner.id) == 6000  # 1.5 points per yuan, not 1
    assert await _corrections() == [(-3000, 0, 400_000)]
    await _sound()


async def test_payment_changed_to_a_refund_takes_its_points_back(
        tmp_path: Path, db: str) -> None:
    owner = await _customer()
    await _policy(owner, "P-1")
    await _import_payment(tmp_path, "1000", external_id="PAY-1")
    await _import_payment(tmp_path, "1000", external_id="PAY-2")
    await settle_imports(settings=S, now=NOW)
    assert await ledger.get_balance(owner.id) == 2000

    await _import_payment(tmp_path, "500", kind="refund", external_id="PAY-2")
    assert await settle_imports(settings=S, now=NOW) == SettleReport(0, 0, 0, 1)
    assert await settle_imports(settings=S, now=NOW) == SettleReport(0, 0, 0, 0)
    # PAY-2 earns nothing now, and half of PAY-1's ¥1,000 was refunded: 500 points stay.
    assert await ledger.get_balance(owner.id) == 500
    assert await _corrections() == [(-1500, 0, -50_000)]

    # And back to a premium: it earns again, at the rate it first earned at.
    await _import_payment(tmp_path, "1000", kind="premium", external_id="PAY-2")
    assert await settle_imports(settings=S, now=NOW) == SettleReport(0, 0, 0, 1)
    assert await ledger.get_balance(owner.id) == 2000
    await _sound()


async def test_correction_debit_beyond_the_balance_stops_at_zero_with_a_shortfall(
        tmp_path: Path, db: str) -> None:
    owner = await _customer()
    await _policy(owner, "P-1")
    await _import_payment(tmp_path, "1000")
    await settle_imports(settings=S, now=NOW)
    await _debit(owner, 800, "spent", NOW)

    await _import_payment(tmp_path, "100")
    assert await settle_imports(settings=S, now=NOW) == SettleReport(0, 0, 0, 1)
    assert await ledger.get_balance(owner.id) == 0
    assert await _corrections() == [(-200, 700, 10_000)]
    assert await settle_imports(settings=S, now=NOW) == SettleReport(0, 0, 0, 0)

    # Corrected back up: the customer gets back the 200 points taken, not the 700 spent.
    await _import_payment(tmp_path, "1000")
    assert await settle_imports(settings=S, now=NOW) == SettleReport(0, 0, 0, 1)
    assert await ledger.get_balance(owner.id) == 200
    assert (await _corrections())[1] == (200, 0, 100_000)
    await _sound()


async def test_refund_after_a_correction_takes_back_a_share_of_the_corrected_points(
        tmp_path: Path, db: str) -> None:
    owner = await _customer()
    await _policy(owner, "P-1")
    await _import_payment(tmp_path, "1000")
    await settle_imports(settings=S, now=NOW)
    await _import_payment(tmp_path, "500")
    await settle_imports(settings=S, now=NOW)
    assert await ledger.get_balance(owner.id) == 500
    await _import_payment(tmp_path, "250", kind="refund", external_id="REF-1")
    assert await settle_imports(settings=S, now=NOW) == SettleReport(1, 0, 0)
    assert await ledger.get_balance(owner.id) == 250  # half of ¥500 refunded
    await _sound()
