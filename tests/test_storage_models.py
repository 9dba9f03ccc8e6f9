from datetime import UTC, date, datetime

import pytest
from tortoise.exceptions import IntegrityError

from storage.models import Category, Customer, Message, Policy, Product


async def _customer(phone: str = "+8613800138000", code: str = "R1") -> Customer:
    return await Customer.create(name="张三", phone=phone, referral_code=code)


async def test_phone_is_unique(db: str) -> None:
    await _customer()
    with pytest.raises(IntegrityError):
        await _customer(code="R2")


async def test_policy_number_is_unique(db: str) -> None:
    owner = await _customer()
    fields = dict(customer=owner, product=Product.COMMERCIAL, plate="沪A12345",
                  start_date=date(2026, 1, 1), end_date=date(2026, 12, 31), premium_cents=350000)
    await Policy.create(number="P-1", **fields)
    with pytest.raises(IntegrityError):
        await Policy.create(number="P-1", **fields)


async def test_outbox_dedup_key_is_unique(db: str) -> None:
    owner = await _customer()
    now = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)
    row = dict(kind="birthday", category=Category.CARE, customer=owner,
               template_key="birthday", not_before=now)
    await Message.create(dedup_key="birthday:1:2026", **row)
    with pytest.raises(IntegrityError):
        await Message.create(dedup_key="birthday:1:2026", **row)
    assert await Message.filter(dedup_key="birthday:1:2026").count() == 1


async def test_timestamps_round_trip_as_aware_utc(db: str) -> None:
    owner = await _customer()
    when = datetime(2026, 11, 21, 23, 59, 30, tzinfo=UTC)
    msg = await Message.create(dedup_key="k", kind="t", category=Category.SERVICE,
                               customer=owner, template_key="t", not_before=when)
    loaded = await Message.get(id=msg.id)
    assert loaded.not_before == when
    assert loaded.not_before.utcoffset() is not None
