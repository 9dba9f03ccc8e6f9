"""``bot.sms.senders``: the senders of messages answered at the same time, read in one
statement (``find_senders``, ``Senders``), are exactly what ``find_sender`` reads for each
alone — every keyword's data, shared and held numbers, unknown numbers, other customers'
claims, time zones — on both backends."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import pytest
from tortoise.transactions import in_transaction

from bot.sms import senders as senders_module
from bot.sms.keywords import Parsed, parse
from bot.sms.senders import Lookup, Senders, find_sender, find_senders
from storage.loyalty_models import LoyaltyAccount
from storage.models import (
    Channel,
    Claim,
    ClaimStatus,
    Document,
    PolicyStatus,
    SharedPhone,
)
from tests import factories as f

NOW = datetime(2026, 11, 21, 4, 0, tzinfo=UTC)
LATE = datetime(2026, 11, 21, 17, 0, tzinfo=UTC)  # the next day in Asia/Shanghai
BODIES = ["保单", "POLICY", "理赔", "CLAIM", "积分", "POINTS", "帮助", "HELP", "STOP", "hello"]


async def world() -> tuple[list[str], list[str]]:
    """Numbers of every kind, and the claim numbers to ask them about."""
    alone = await f.customer(phone="+8613900000001")
    await f.policy(alone, end=date(2027, 3, 1), plate="沪A00001")
    await f.policy(alone, end=date(2026, 11, 21), plate="沪A00002")  # ends "today"
    await f.policy(alone, end=date(2026, 11, 20), plate="沪A00003")  # ended
    await f.policy(alone, end=date(2027, 5, 1), plate="沪A00004",
                   status=PolicyStatus.CANCELLED)
    mine = await Claim.create(number="RDAA3100000001", policy=await f.policy(alone),
                              customer=alone, status=ClaimStatus.SURVEYED,
                              reported_at=NOW - timedelta(days=3))
    await Claim.create(number="RDAA3100000002", policy=await f.policy(alone), customer=alone,
                       status=ClaimStatus.PAID, reported_at=NOW - timedelta(days=9))
    await Document.create(customer=alone, claim=None, channel=Channel.SMS,
                          mime_type="image/jpeg", size=1, sha256="0" * 64, storage_key="k")
    await LoyaltyAccount.create(customer=alone, balance=420, tier="gold")

    abroad = await f.customer(phone="+15005550009", language="en",
                              timezone="America/New_York")
    await f.policy(abroad, end=date(2026, 11, 21), plate="NY-1")
    await f.policy(abroad, end=date(2026, 11, 20), plate="NY-2")  # its today at NOW
    family = [await f.customer(phone="+8613900000002", language=lang)
              for lang in ("en", "zh-CN")]
    await f.policy(family[1], end=date(2027, 1, 1), plate="沪B00001")
    theirs = await Claim.create(number="RDAA3100000003", policy=await f.policy(family[1]),
                                customer=family[1], status=ClaimStatus.REPORTED,
                                reported_at=NOW - timedelta(days=1))
    held = [await f.customer(phone="+8613900000003") for _ in range(3)]
    await SharedPhone.create(phone="+8613900000003", customers=3, flagged_at=NOW)
    await LoyaltyAccount.create(customer=held[0], balance=5, tier="standard")
    released = [await f.customer(phone="+8613900000004") for _ in range(3)]
    await SharedPhone.create(phone="+8613900000004", customers=3, flagged_at=NOW,
                             released_at=NOW)
    await f.policy(released[2], end=date(2027, 2, 2), plate="沪C00001")
    phones = ["+8613900000001", "+15005550009", "+8613900000002", "+8613900000003",
              "+8613900000004", "+8613900000099"]  # the last: nobody's
    return phones, [mine.number, theirs.number, "RDAA3100009999"]


async def test_senders_read_together_are_what_each_reads_alone(db: str) -> None:
    phones, claims = await world()
    bodies = BODIES + [f"理赔 {number}" for number in claims]
    lookups = [Lookup(phone, parse(body), now)
               for phone in phones for body in bodies for now in (NOW, LATE)]
    alone = [await find_sender(lookup.phone, lookup.parsed, now=lookup.now)
             for lookup in lookups]
    assert await find_senders(lookups) == alone
    assert await find_senders(lookups[::-1]) == alone[::-1]
    # as the conversations read them: all at once, grouped while a read is in flight
    senders = Senders()
    together = await asyncio.gather(*(senders.find(lookup.phone, lookup.parsed, now=lookup.now)
                                      for lookup in lookups))
    assert together == alone
    # the world exercises every column: nobody's number, held and shared numbers, each
    # keyword's data, and a day that differs by time zone
    found = [pair for pair in alone if pair is not None]
    assert len(found) < len(alone)
    assert any(s.held for s, _ in found) and any(s.shared and not s.held for s, _ in found)
    assert any(p.policies for _, p in found) and any(p.latest_claim for _, p in found)
    assert any(p.named_claim and p.named_claim.unfiled for _, p in found)
    assert any(p.balance == 420 and p.tier == "gold" for _, p in found)
    assert len({p.policies for _, p in found}) > 3


async def test_a_lookup_inside_a_transaction_is_read_alone_on_its_connection(db: str) -> None:
    phones, _ = await world()
    senders = Senders()
    async with in_transaction():
        found = await senders.find(phones[0], parse("保单"), now=NOW)
    assert found == await find_sender(phones[0], parse("保单"), now=NOW)
    assert senders._grouped._runner is None  # no grouped read was started


async def test_a_group_that_fails_is_read_again_one_by_one_failing_only_its_own(
        db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    phones, _ = await world()
    bad = "+8613900000666"
    real_find_sender = senders_module.find_sender

    async def failing_group(lookups: Sequence[Lookup]) -> list[object]:
        raise RuntimeError("the grouped statement failed")

    async def find_sender(phone: str, parsed: Parsed, *, now: datetime) -> object:
        if phone == bad:
            raise RuntimeError(f"lookup of {phone} failed")
        return await real_find_sender(phone, parsed, now=now)

    monkeypatch.setattr(senders_module, "find_senders", failing_group)
    monkeypatch.setattr(senders_module, "find_sender", find_sender)
    senders = Senders()
    asked = [phones[0], bad, phones[2], phones[5]] * 3
    outcomes = await asyncio.gather(*(senders.find(phone, parse("保单"), now=NOW)
                                      for phone in asked), return_exceptions=True)
    for phone, outcome in zip(asked, outcomes, strict=True):
        if phone == bad:
            assert isinstance(outcome, RuntimeError) and bad in str(outcome)
        else:
            assert outcome == await real_find_sender(phone, parse("保单"), now=NOW)
