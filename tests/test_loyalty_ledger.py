"""The points ledger on a real database (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

import pytest

from loyalty import ledger
from loyalty.config import LoyaltySettings
from loyalty.errors import IdempotencyConflict, InsufficientPoints, NotEligible
from loyalty.periods import lot_expiry
from storage.loyalty_models import EntryKind, LedgerEntry, LotUse, PointLot
from storage.models import Customer

S = LoyaltySettings()
NOW = datetime(2026, 3, 15, 2, 0, tzinfo=UTC)


async def _customer(n: int = 1) -> Customer:
    return await Customer.create(name=f"客户{n}", phone=f"+861380013{n:04d}", referral_code=f"R{n}")


async def _credit(c: Customer, points: int, key: str, now: datetime = NOW) -> ledger.Posted:
    return await ledger.credit(c.id, points, kind=EntryKind.ADJUSTMENT, key=key, now=now,
                               settings=S, reason="test", operator="tester")


async def _lots(c: Customer) -> list[tuple[date, int]]:
    return [(lot.expires_on, lot.remaining) for lot in
            await PointLot.filter(account__customer_id=c.id).order_by("id")]


async def _assert_sound() -> None:
    assert await ledger.audit() == ([], 0)


def test_lot_expires_end_of_month_24_months_later() -> None:
    assert lot_expiry(date(2026, 3, 15), 24) == date(2028, 3, 31)
    assert lot_expiry(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert lot_expiry(date(2026, 12, 1), 2) == date(2027, 2, 28)


async def test_same_key_same_content_returns_the_original_entry(db: str) -> None:
    c = await _customer()
    first = await _credit(c, 100, "k1")
    again = await _credit(c, 100, "k1")
    assert again.replayed and not first.replayed
    assert again.entry_id == first.entry_id
    assert await ledger.get_balance(c.id) == 100
    assert await LedgerEntry.all().count() == 1


async def test_same_key_different_content_is_a_conflict_and_changes_nothing(db: str) -> None:
    c = await _customer()
    await _credit(c, 100, "k1")
    with pytest.raises(IdempotencyConflict):
        await _credit(c, 101, "k1")
    with pytest.raises(IdempotencyConflict):
        await ledger.debit(c.id, 10, kind=EntryKind.REDEMPTION, key="k1", now=NOW)
    assert await ledger.get_balance(c.id) == 100
    await _assert_sound()


async def test_debit_below_zero_is_refused_and_changes_nothing(db: str) -> None:
    c = await _customer()
    await _credit(c, 50, "k1")
    with pytest.raises(InsufficientPoints) as refused:
        await ledger.debit(c.id, 51, kind=EntryKind.REDEMPTION, key="d1", now=NOW)
    assert refused.value.code == "insufficient_points" and refused.value.balance == 50
    assert await ledger.get_balance(c.id) == 50
    assert await LedgerEntry.all().count() == 1
    assert await LotUse.all().count() == 0


async def test_replayed_debit_returns_original_even_when_balance_is_now_too_low(db: str) -> None:
    c = await _customer()
    await _credit(c, 30, "k1")
    first = await ledger.debit(c.id, 30, kind=EntryKind.REDEMPTION, key="d1", now=NOW)
    again = await ledger.debit(c.id, 30, kind=EntryKind.REDEMPTION, key="d1", now=NOW)
    assert again.replayed and again.entry_id == first.entry_id and again.balance_after == 0
    await _assert_sound()


async def test_debits_consume_first_expiring_lot_first(db: str) -> None:
    c = await _customer()
    # Posted in this order, but the January lot expires first (end of Jan 2028).
    await _credit(c, 100, "march", now=datetime(2026, 3, 10, tzinfo=UTC))
    await _credit(c, 40, "january", now=datetime(2026, 1, 20, tzinfo=UTC))
    await _credit(c, 10, "june", now=datetime(2026, 6, 1, tzinfo=UTC))
    await ledger.debit(c.id, 50, kind=EntryKind.REDEMPTION, key="d1", now=NOW)
    assert await _lots(c) == [(date(2028, 3, 31), 90), (date(2028, 1, 31), 0),
                              (date(2028, 6, 30), 10)]
    await ledger.debit(c.id, 95, kind=EntryKind.REDEMPTION, key="d2", now=NOW)
    assert await _lots(c) == [(date(2028, 3, 31), 0), (date(2028, 1, 31), 0),
                              (date(2028, 6, 30), 5)]
    await _assert_sound()


async def test_lots_use_the_programme_time_zone_for_the_earning_day(db: str) -> None:
    c = await _customer()
    # 2026-03-31 17:00 UTC is already April 1st in Shanghai.
    await _credit(c, 10, "k", now=datetime(2026, 3, 31, 17, 0, tzinfo=UTC))
    assert await _lots(c) == [(date(2028, 4, 30), 10)]


async def test_points_expiring_within_days(db: str) -> None:
    c = await _customer()
    await _credit(c, 100, "a", now=datetime(2024, 4, 2, tzinfo=UTC))  # through 2026-04-30
    await _credit(c, 20, "b", now=datetime(2024, 5, 2, tzinfo=UTC))  # through 2026-05-31
    await _credit(c, 5, "c", now=NOW)
    today = date(2026, 4, 10)
    assert await ledger.expiring_points(c.id, today=today, days=30) == [(date(2026, 4, 30), 100)]
    assert await ledger.points_expiring_within(c.id, today=today, days=60) == 120


async def test_reversal_of_a_credit_stops_at_zero_and_records_the_shortfall(db: str) -> None:
    c = await _customer()
    credit = await _credit(c, 100, "gift")
    await ledger.debit(c.id, 70, kind=EntryKind.REDEMPTION, key="spent", now=NOW)
    reversal = await ledger.reverse_entry(credit.entry_id, now=NOW, settings=S,
                                          reason="given by mistake", operator="op1")
    assert (reversal.amount, reversal.shortfall, reversal.balance_after) == (-30, 70, 0)
    again = await ledger.reverse_entry(credit.entry_id, now=NOW, settings=S,
                                       reason="given by mistake", operator="op1")
    assert again.replayed and again.entry_id == reversal.entry_id
    entry = await LedgerEntry.get(id=reversal.entry_id)
    assert entry.reverses_id == credit.entry_id and entry.kind == EntryKind.REVERSAL
    await _assert_sound()


async def test_reversing_a_negative_adjustment_restores_the_same_lots(db: str) -> None:
    c = await _customer()
    await _credit(c, 60, "a", now=datetime(2026, 1, 5, tzinfo=UTC))
    await _credit(c, 60, "b", now=datetime(2026, 2, 5, tzinfo=UTC))
    taken = await ledger.debit(c.id, 80, kind=EntryKind.ADJUSTMENT, key="minus", now=NOW,
                               reason="duplicate import", operator="op1")
    assert await _lots(c) == [(date(2028, 1, 31), 0), (date(2028, 2, 29), 40)]
    await ledger.reverse_entry(taken.entry_id, now=NOW, settings=S, reason="undo", operator="op2")
    assert await _lots(c) == [(date(2028, 1, 31), 60), (date(2028, 2, 29), 60)]
    await _assert_sound()


async def test_expiries_and_redemptions_are_not_reversible_by_operators(db: str) -> None:
    c = await _customer()
    await _credit(c, 10, "a")
    spent = await ledger.debit(c.id, 5, kind=EntryKind.REDEMPTION, key="r", now=NOW)
    with pytest.raises(NotEligible) as refused:
        await ledger.reverse_entry(spent.entry_id, now=NOW, settings=S, reason="x", operator="y")
    assert refused.value.reason == "not_reversible"


async def test_fifty_concurrent_debits_of_ten_against_one_hundred_exactly_ten_succeed(
    db: str,
) -> None:
    c = await _customer()
    for i in range(4):  # several lots, so the debits also race over lot remainders
        await _credit(c, 25, f"lot{i}", now=datetime(2026, 1 + i, 3, tzinfo=UTC))
    results = await asyncio.gather(
        *(ledger.debit(c.id, 10, kind=EntryKind.REDEMPTION, key=f"d{i}", now=NOW)
          for i in range(50)),
        return_exceptions=True,
    )
    ok = [r for r in results if isinstance(r, ledger.Posted)]
    refused = [r for r in results if isinstance(r, InsufficientPoints)]
    assert (len(ok), len(refused)) == (10, 40)
    assert sorted(r.balance_after for r in ok) == list(range(0, 100, 10))
    assert await ledger.get_balance(c.id) == 0
    await _assert_sound()


async def test_concurrent_replays_of_one_key_post_once(db: str) -> None:
    c = await _customer()
    results = await asyncio.gather(*(_credit(c, 10, "same") for _ in range(20)))
    assert len({r.entry_id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert await ledger.get_balance(c.id) == 10
    await _assert_sound()
