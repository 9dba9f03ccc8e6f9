"""``points_overview`` (the /points screen's three plain statements) gives exactly what the
ledger and tier functions give one by one, on a real database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from loyalty import ledger
from loyalty.config import LoyaltySettings
from loyalty.overview import points_overview
from loyalty.tiers import tier_status
from storage.loyalty_models import EntryKind
from storage.models import Customer, Payment, PaymentKind, Policy, Product

S = LoyaltySettings()
NOW = datetime(2026, 11, 21, 4, 0, tzinfo=UTC)
TODAY = date(2026, 11, 21)


async def _customer(n: int) -> Customer:
    return await Customer.create(name=f"客户{n}", phone=f"+861390013{n:04d}", referral_code=f"O{n}")


async def _pay(c: Customer, policy: Policy, key: str, cents: int, at: datetime,
               kind: PaymentKind = PaymentKind.PREMIUM) -> None:
    await Payment.create(external_id=key, policy=policy, customer=c, amount_cents=cents,
                         paid_at=at, kind=kind)


async def _one_by_one(c: Customer, *, days: int, entries: int) -> tuple[object, ...]:
    return (
        await ledger.get_balance(c.id),
        await tier_status(c.id, now=NOW, settings=S),
        await ledger.expiring_points(c.id, today=TODAY, days=days),
        [(e.occurred_at, e.amount, str(e.kind))
         for e in await ledger.recent_entries(c.id, limit=entries)],
    )


async def _overview(c: Customer, *, days: int, entries: int) -> tuple[object, ...]:
    o = await points_overview(c.id, now=NOW, today=TODAY, expiring_days=days, entries=entries,
                              settings=S)
    return o.balance, o.status, o.expiring, [(e.occurred_at, e.amount, e.kind)
                                             for e in o.entries]


async def test_overview_equals_the_ledger_and_tier_functions(db: str) -> None:
    c, other = await _customer(1), await _customer(2)
    policy = await Policy.create(number="OV1", customer=c, product=Product.COMMERCIAL,
                                 plate="沪A1", start_date=date(2026, 1, 1),
                                 end_date=date(2026, 12, 31), premium_cents=900_000)
    # Lots that expire on three month-ends: two this month (both the 30th), one next month.
    for n, at in enumerate([datetime(2024, 11, 3, tzinfo=UTC), datetime(2024, 11, 20, tzinfo=UTC),
                            datetime(2024, 12, 9, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC)]):
        await ledger.credit(c.id, 100 + n, kind=EntryKind.ADJUSTMENT, key=f"c{n}", now=at,
                            settings=S)
    # A debit eats the oldest lot partly; another customer's points must not show.
    await ledger.debit(c.id, 30, kind=EntryKind.ADJUSTMENT, key="d1", now=NOW - timedelta(days=2))
    await ledger.credit(other.id, 999, kind=EntryKind.ADJUSTMENT, key="x", now=NOW, settings=S)
    # Premium inside the trailing year, a refund, and a payment just outside the window.
    await _pay(c, policy, "p1", 800_000, datetime(2026, 3, 1, tzinfo=UTC))
    await _pay(c, policy, "r1", 50_000, datetime(2026, 4, 1, tzinfo=UTC), PaymentKind.REFUND)
    await _pay(c, policy, "old", 700_000, NOW.replace(year=2025) - timedelta(seconds=1))
    for days, entries in [(30, 10), (45, 2), (0, 1)]:
        expected = await _one_by_one(c, days=days, entries=entries)
        assert await _overview(c, days=days, entries=entries) == expected
    o = await points_overview(c.id, now=NOW, today=TODAY, expiring_days=45, entries=10,
                              settings=S)
    assert o.balance == 100 + 101 + 102 + 103 - 30  # the figures compared are not trivial
    assert o.expiring == [(date(2026, 11, 30), 70 + 101), (date(2026, 12, 31), 102)]
    assert o.status.trailing_premium_cents == 800_000 - 50_000
    assert len(o.entries) == 5


async def test_a_customer_without_an_account_sees_the_first_tier_and_nothing_else(
    db: str,
) -> None:
    c = await _customer(3)
    assert await _overview(c, days=30, entries=10) == await _one_by_one(c, days=30, entries=10)
    overview = await points_overview(c.id, now=NOW, today=TODAY, expiring_days=30, entries=10,
                                     settings=S)
    assert (overview.balance, overview.expiring, overview.entries) == (0, [], [])
    assert overview.status.tier == S.tiers[0]
