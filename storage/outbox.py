"""Putting messages into the outbox: the only way any producer asks for a message to be sent.

The dedup key is unique in the table, so enqueueing is idempotent: a second call with the same
key returns the existing row and changes nothing, whoever makes it (a re-run plan, a restart,
a second process).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from storage.models import Category, Message

ChannelPolicy = Literal["telegram_then_sms", "telegram_only", "sms_only"]


@dataclass(frozen=True, slots=True)
class Outbound:
    """What a producer wants sent: rendered later, in the customer's language, at dispatch."""

    dedup_key: str
    kind: str
    category: Category
    customer_id: int
    template_key: str
    not_before: datetime
    params: dict[str, Any] = field(default_factory=dict)
    stale_after: datetime | None = None
    channel_policy: ChannelPolicy = "telegram_then_sms"
    campaign_id: int | None = None

    def __post_init__(self) -> None:
        if self.not_before.tzinfo is None:
            raise ValueError("not_before must be timezone-aware")
        if self.stale_after is not None and self.stale_after.tzinfo is None:
            raise ValueError("stale_after must be timezone-aware")

    def to_row(self) -> Message:
        return Message(
            dedup_key=self.dedup_key,
            kind=self.kind,
            category=self.category,
            customer_id=self.customer_id,
            template_key=self.template_key,
            params=self.params,
            not_before=self.not_before,
            stale_after=self.stale_after,
            channel_policy=self.channel_policy,
            campaign_id=self.campaign_id,
        )


async def enqueue(item: Outbound) -> tuple[Message, bool]:
    """Queue one message; returns the row and whether this call created it."""
    existing = await Message.get_or_none(dedup_key=item.dedup_key)
    if existing is not None:
        return existing, False
    row = item.to_row()
    try:
        async with in_transaction():
            await row.save()
    except IntegrityError:
        # Lost a race with another producer for the same key: theirs stands.
        return await Message.get(dedup_key=item.dedup_key), False
    return row, True


async def enqueue_many(items: Iterable[Outbound], *, batch_size: int = 1000) -> int:
    """Queue many messages in batches; returns how many were new.

    Memory is bounded by ``batch_size`` whatever the size of ``items`` (pass a generator).
    Keys already in the outbox are left alone (``INSERT … ON CONFLICT DO NOTHING``).
    """
    created = 0
    batch: list[Outbound] = []
    for item in items:
        batch.append(item)
        if len(batch) >= batch_size:
            created += await _insert_batch(batch)
            batch = []
    if batch:
        created += await _insert_batch(batch)
    return created


async def _insert_batch(batch: list[Outbound]) -> int:
    unique = {item.dedup_key: item for item in batch}
    async with in_transaction():
        present: set[str] = {
            str(key)
            for key in await Message.filter(dedup_key__in=list(unique)).values_list(
                "dedup_key", flat=True
            )
        }
        fresh = [item.to_row() for key, item in unique.items() if key not in present]
        if fresh:
            await Message.bulk_create(fresh, ignore_conflicts=True)
    return len(fresh)
