"""``bot.sms.records``: the grouped INSERT of answered queries' rows — each caller learns
whether its own row went in, a MessageSid given twice in one group is written once, and a row
the database refuses fails only its own caller — on both backends."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from tortoise.exceptions import IntegrityError

from bot.sms import records
from storage.models import InboundSms
from tests import factories as f

NOW = datetime(2026, 11, 21, 4, 0, tzinfo=UTC)


def row(sid: str, customer_id: int | None, reply: str = "ok") -> dict[str, object]:
    return {"message_sid": sid, "from_phone": "+8613900000001", "customer_id": customer_id,
            "body": "保单", "keyword": "policy", "reply": reply, "num_media": 0,
            "created_at": NOW}


async def test_rows_answered_together_are_written_together_each_told_its_own_outcome(
        db: str) -> None:
    customer = await f.customer()
    await records.insert(row("SM-old", customer.id, "earlier"))
    answered = records.Answered()
    outcomes = await asyncio.gather(
        answered.store(row("SM-a", customer.id)),
        answered.store(row("SM-old", customer.id)),  # taken before
        answered.store(row("SM-b", None)),
        answered.store(row("SM-a", customer.id, "second delivery")),  # twice in one group
        return_exceptions=True)
    assert outcomes == [True, False, True, False]
    stored = dict(await InboundSms.all().values_list("message_sid", "reply"))
    assert stored == {"SM-old": "earlier", "SM-a": "ok", "SM-b": "ok"}
    assert await records.reply_of("SM-a") == "ok"
    assert await records.reply_of("SM-none") is None


async def test_a_row_the_database_refuses_fails_only_its_own_caller(db: str) -> None:
    customer = await f.customer()
    answered = records.Answered()
    outcomes = await asyncio.gather(
        answered.store(row("SM-1", customer.id)),
        answered.store(row("SM-2", 999_999)),  # no such customer: the foreign key refuses it
        answered.store(row("SM-3", customer.id)),
        return_exceptions=True)
    assert outcomes[0] is True and outcomes[2] is True
    assert isinstance(outcomes[1], IntegrityError)
    assert set(await InboundSms.all().values_list("message_sid", flat=True)) == {"SM-1", "SM-3"}


async def test_a_taken_message_sid_is_an_integrity_error_for_the_single_insert(
        db: str) -> None:
    await records.insert(row("SM-x", None))
    with pytest.raises(IntegrityError):
        await records.insert(row("SM-x", None, "again"))
