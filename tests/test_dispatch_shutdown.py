"""Shutdown within a deadline: when the dispatcher is told to stop, claimed messages not yet
handed to a provider return to the queue at once (also those waiting out a flood wait),
sends on the wire finish — or are cut off at ``delivery.shutdown_seconds`` and recorded as
``unknown`` — and nothing is left claimed. Real aiogram against the fake Bot API, on SQLite
and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from bot.delivery.dispatcher import Dispatcher, Limits
from bot.delivery.ratelimit import local_rate_limiter
from bot.delivery.senders import AiogramTelegram
from bot.delivery.telegram_session import build_bot
from bot.settings import Settings
from bot.texts import Texts
from storage.models import Category, Message, MessageStatus
from tests import factories as f
from tests.fakes.telegram import DEFAULT_TOKEN, FakeTelegram


@dataclass
class Rig:
    settings: Settings
    telegram: FakeTelegram
    make: Callable[..., Dispatcher]


@pytest.fixture
async def rig(db: str, fake_telegram: FakeTelegram) -> AsyncIterator[Rig]:
    settings = f.settings_for(db_url=db, telegram_base=fake_telegram.base_url,
                              delivery={"shutdown_seconds": 2.0})
    bot = build_bot(DEFAULT_TOKEN, fake_telegram.base_url)

    def make(rate: float = 2.0) -> Dispatcher:
        return Dispatcher(settings, Texts.load(), telegram=AiogramTelegram(bot), sms=None,
                          clock=lambda: f.NOON_SHANGHAI, skip_locked=not db.startswith("sqlite"),
                          limits=Limits(telegram=local_rate_limiter(rate)))

    try:
        yield Rig(settings, fake_telegram, make)
    finally:
        await bot.session.close()


async def _queue(n: int) -> None:
    for i in range(n):
        person = await f.customer()
        await f.link_telegram(person, 60_000 + i)
        await f.queued(person, key=f"svc:{i}", kind="claim_update", category=Category.SERVICE,
                       template="claim_update",
                       params={"claim": f"C{i}", "status": "已结案", "note": ""})


async def _until(check: Callable[[], bool], limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def _counts() -> dict[str, int]:
    rows = await Message.all().values_list("status", flat=True)
    return {status.value: list(rows).count(status) for status in MessageStatus
            if status in rows}


async def test_stop_gives_unsent_back_at_once_and_lets_the_wire_finish(rig: Rig) -> None:
    await _queue(30)
    rig.settings.delivery.shutdown_seconds = 20.0
    rig.telegram.delay = 5.0  # each send stays on the wire a while
    stop = asyncio.Event()
    task = asyncio.ensure_future(rig.make(rate=2.0).pipeline(stop))  # 30 would take 15 s
    await _until(lambda: len(rig.telegram.requests_for("sendMessage")) >= 2)
    stop.set()
    on_wire = len(rig.telegram.requests_for("sendMessage"))
    # Before the sends on the wire are answered, the rest is already back in the queue.
    deadline = time.monotonic() + 30
    while (await _counts()).get("pending", 0) < 30 - on_wire - 1:  # one may just have left
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    assert not task.done()  # still waiting for the answers of the sends on the wire
    await asyncio.wait_for(task, timeout=30)
    counts = await _counts()
    sent = rig.telegram.sent_messages()
    assert counts == {"sent": len(sent), "pending": 30 - len(sent)}  # none claimed, none lost
    assert len(sent) == len({m["chat_id"] for m in sent})


async def test_a_send_still_on_the_wire_at_the_deadline_is_cut_off_as_unknown(
    rig: Rig,
) -> None:
    await _queue(3)
    rig.telegram.delay = 60.0  # the answer never comes in time
    stop = asyncio.Event()
    task = asyncio.ensure_future(rig.make(rate=100.0).pipeline(stop))
    await _until(lambda: len(rig.telegram.requests_for("sendMessage")) == 3)
    stop.set()
    await asyncio.wait_for(task, timeout=30)  # within shutdown_seconds, not the 60 s answer
    messages = await Message.all()
    assert {m.status for m in messages} == {MessageStatus.UNKNOWN}  # may have been delivered
    assert {m.last_error for m in messages} == {
        "shutdown: the request was cut off before its answer"}


async def test_messages_waiting_out_a_flood_wait_go_back_at_once(rig: Rig) -> None:
    await _queue(10)
    rig.telegram.rate_limit_next(retry_after=20)
    stop = asyncio.Event()
    task = asyncio.ensure_future(rig.make(rate=100.0).pipeline(stop))
    await _until(lambda: len(rig.telegram.requests_for("sendMessage")) == 1)
    await asyncio.sleep(0.2)  # the others now wait for the limiter's 20 s pause
    stop.set()
    await asyncio.wait_for(task, timeout=30)  # not after the 20 s
    counts = await _counts()
    assert counts == {"pending": 10}
    assert rig.telegram.sent_messages() == []


async def test_the_next_batch_is_claimed_while_the_current_one_sends_its_last(rig: Rig) -> None:
    """One loop, batches of 4 at 1 message a second: once two of the first batch are settled
    the next four are claimed, before the first batch's last two have gone — so the limiter
    never waits for a claim. Then all eight go, once each, and the loop ends cleanly."""
    await _queue(8)
    rig.settings.delivery.batch_size = 4
    rig.settings.delivery.pipelines = 1
    stop = asyncio.Event()
    task = asyncio.ensure_future(rig.make(rate=1.0).pipeline(stop, until_idle=True))
    overlapped = False
    while not task.done():
        pending = await Message.filter(status=MessageStatus.PENDING).count()
        sent = len(rig.telegram.sent_messages())  # read after: sends only grow
        if pending == 0 and sent < 4:
            overlapped = True
            break
        await asyncio.sleep(0.02)
    assert overlapped, "the second batch was not claimed before the first one finished"
    await asyncio.wait_for(task, timeout=60)
    assert await _counts() == {"sent": 8}
    chats = [int(m["chat_id"]) for m in rig.telegram.sent_messages()]
    assert sorted(chats) == list(range(60_000, 60_008))
