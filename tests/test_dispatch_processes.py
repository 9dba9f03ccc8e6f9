"""Dispatchers as separate OS processes: a crash between send and acknowledgement loses
nothing, and two processes on PostgreSQL never send one message twice."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from datetime import timedelta

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from bot.delivery.dispatcher import Dispatcher
from bot.delivery.senders import AiogramTelegram
from bot.texts import Texts
from storage.models import Category, Customer, Message, MessageStatus, TelegramAccount
from tests import factories as f
from tests.fakes.telegram import DEFAULT_TOKEN, FakeTelegram

WORKER = [sys.executable, "-m", "tests.workers.dispatch_worker"]


async def _spawn(db: str, base: str, *flags: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *WORKER, db, base, f.NOON_SHANGHAI.isoformat(), *flags,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )


async def _until(predicate: object, *, limit: float = 30.0) -> None:
    """Wait for a condition another process brings about (polling, bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not predicate():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def test_killed_between_send_and_ack_the_message_is_sent_after_lease(
    db: str, fake_telegram: FakeTelegram
) -> None:
    c = await f.customer()
    await f.link_telegram(c, 4242)
    msg = await f.queued(c)
    fake_telegram.delay = 60.0  # the request arrives; the answer never does before the kill
    proc = await _spawn(db, fake_telegram.base_url)
    await _until(lambda: len(fake_telegram.requests_for("sendMessage")) == 1)
    proc.kill()
    await proc.communicate()  # drain and close its pipes, not just reap it
    await msg.refresh_from_db()
    assert msg.status == MessageStatus.CLAIMED  # leased by the dead process

    fake_telegram.delay = 0.0
    settings = f.settings_for(db_url=db, telegram_base=fake_telegram.base_url)
    later = f.NOON_SHANGHAI + timedelta(seconds=settings.delivery.lease_seconds + 1)
    bot = Bot(DEFAULT_TOKEN,
              session=AiohttpSession(api=TelegramAPIServer.from_base(fake_telegram.base_url)))
    try:
        restarted = Dispatcher(settings, Texts.load(), telegram=AiogramTelegram(bot), sms=None,
                               clock=lambda: later, skip_locked=not db.startswith("sqlite"))
        assert await restarted.dispatch_once() == 1
    finally:
        await bot.session.close()
    await msg.refresh_from_db()
    assert msg.status == MessageStatus.SENT
    # Telegram has no idempotency key: the documented at-least-once duplicate.
    assert len(fake_telegram.requests_for("sendMessage")) == 2


async def test_two_dispatcher_processes_on_postgres_never_send_twice(
    db: str, is_postgres: bool, fake_telegram: FakeTelegram
) -> None:
    if not is_postgres:
        pytest.skip("SQLite runs one dispatcher; SKIP LOCKED is PostgreSQL's")
    n = 2000
    await Customer.bulk_create([
        Customer(name=f"客户{i}", phone=f"+86139{i:08d}", referral_code=f"M{i:07d}")
        for i in range(n)
    ])
    ids = await Customer.all().order_by("id").values_list("id", flat=True)
    await TelegramAccount.bulk_create([
        TelegramAccount(telegram_user_id=10_000 + cid, chat_id=10_000 + cid, customer_id=cid,
                        linked_at=f.NOON_SHANGHAI)
        for cid in ids
    ])
    await Message.bulk_create([
        Message(dedup_key=f"svc:{cid}", kind="claim_update", category=Category.SERVICE,
                customer_id=cid, template_key="claim_update",
                params={"claim": f"C{cid}", "status": "已结案", "note": ""},
                not_before=f.NOON_SHANGHAI)
        for cid in ids
    ])
    procs = [await _spawn(db, fake_telegram.base_url, "--until-empty") for _ in range(2)]
    outputs = [await p.communicate() for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1].decode()[-2000:] for o in outputs]
    handled = [int(o[0].decode().strip().splitlines()[-1].split()[-1]) for o in outputs]
    assert sum(handled) == n and all(h > 0 for h in handled)  # both did real work
    per_chat = Counter(int(m["chat_id"]) for m in fake_telegram.sent_messages())
    assert len(per_chat) == n and set(per_chat.values()) == {1}
    assert await Message.filter(status=MessageStatus.SENT).count() == n
