"""``storage.outbox.enqueue_bulk`` (the plan's fast path) keeps ``enqueue_many``'s contract and
writes rows indistinguishable from the ORM's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from tortoise import connections

from storage.models import Category, Message, MessageStatus
from storage.outbox import Outbound, enqueue, enqueue_bulk
from tests import factories

NOT_BEFORE = datetime(2026, 11, 21, 8, 30, tzinfo=ZoneInfo("Asia/Shanghai"))


def _item(customer_id: int, key: str, **extra: object) -> Outbound:
    return Outbound(
        dedup_key=key, kind="festival", category=Category.CARE, customer_id=customer_id,
        template_key="festival", not_before=NOT_BEFORE,
        params={"name": "张三", "festival": {"zh-CN": "中秋节", "en": "Mid-Autumn Festival"}},
        stale_after=NOT_BEFORE + timedelta(hours=15), **extra,  # type: ignore[arg-type]
    )


_COMPARED = [name for name in Message._meta.fields_db_projection
             if name not in {"id", "dedup_key", "created_at", "updated_at"}]


async def test_bulk_rows_equal_orm_rows(db: str) -> None:
    owner = await factories.customer()
    await enqueue(_item(owner.id, "orm", campaign_id=7, channel_policy="sms_only"))
    assert await enqueue_bulk([_item(owner.id, "bulk", campaign_id=7,
                                     channel_policy="sms_only")]) == 1
    orm = await Message.get(dedup_key="orm").values(*_COMPARED)
    bulk = await Message.get(dedup_key="bulk").values(*_COMPARED)
    assert bulk == orm
    # and stored alike, down to the text SQLite compares ("not_before <= ?" is a string test)
    raw = await connections.get("default").execute_query_dict(
        "SELECT dedup_key, CAST(not_before AS TEXT) AS nb, CAST(stale_after AS TEXT) AS sa, "
        "CAST(params AS TEXT) AS p, CAST(created_at AS TEXT) AS c FROM message "
        "ORDER BY dedup_key")
    assert [(r["nb"], r["sa"], r["p"]) for r in raw[:1]] == [
        (r["nb"], r["sa"], r["p"]) for r in raw[1:]]
    assert raw[0]["c"][10] == raw[1]["c"][10]  # same date-time separator
    row = await Message.get(dedup_key="bulk")
    assert row.status == MessageStatus.PENDING and row.not_before == NOT_BEFORE.astimezone(UTC)
    assert abs(row.created_at - datetime.now(UTC)) < timedelta(minutes=1)
    # the dispatcher's query finds it like any other due message
    due = await Message.filter(status=MessageStatus.PENDING,
                               not_before__lte=NOT_BEFORE + timedelta(seconds=1)).count()
    assert due == 2


async def test_bulk_skips_existing_and_repeated_keys_and_counts_only_new(db: str) -> None:
    owner = await factories.customer()
    await enqueue(_item(owner.id, "k0"))
    items = (_item(owner.id, f"k{i % 7}") for i in range(25))
    assert await enqueue_bulk(items, batch_size=4) == 6
    assert await Message.all().count() == 7
    assert await enqueue_bulk(_item(owner.id, f"k{i}") for i in range(7)) == 0
