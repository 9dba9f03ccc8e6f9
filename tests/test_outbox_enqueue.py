from datetime import UTC, datetime

import pytest

from storage.models import Category, Customer, Message
from storage.outbox import Outbound, enqueue, enqueue_many

NOW = datetime(2026, 11, 21, 0, 30, tzinfo=UTC)


def _item(customer_id: int, key: str, **extra: object) -> Outbound:
    return Outbound(dedup_key=key, kind="birthday", category=Category.CARE,
                    customer_id=customer_id, template_key="birthday", not_before=NOW,
                    params={"name": "张三"}, **extra)  # type: ignore[arg-type]


async def test_second_enqueue_with_same_key_returns_original_and_changes_nothing(db: str) -> None:
    c = await Customer.create(name="张三", phone="+8613800138000", referral_code="A1")
    first, created = await enqueue(_item(c.id, "birthday:1:2026"))
    again, created_again = await enqueue(
        Outbound(dedup_key="birthday:1:2026", kind="other", category=Category.MARKETING,
                 customer_id=c.id, template_key="x", not_before=NOW, params={"a": 1}))
    assert created and not created_again
    assert again.id == first.id
    row = await Message.get(dedup_key="birthday:1:2026")
    assert (row.kind, row.template_key, row.params) == ("birthday", "birthday", {"name": "张三"})


async def test_enqueue_many_skips_existing_and_repeated_keys(db: str) -> None:
    c = await Customer.create(name="李四", phone="+8613800138001", referral_code="A2")
    await enqueue(_item(c.id, "k0"))
    items = (_item(c.id, f"k{i % 7}") for i in range(25))
    created = await enqueue_many(items, batch_size=4)
    assert created == 6
    assert await Message.all().count() == 7


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Outbound(dedup_key="k", kind="k", category=Category.CARE, customer_id=1,
                 template_key="t", not_before=datetime(2026, 1, 1))
