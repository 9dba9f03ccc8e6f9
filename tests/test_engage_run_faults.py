"""``engage run`` as a real OS process under faults: SIGTERM mid-batch (exits cleanly, gives
back what it had not sent, sends nothing twice), SIGKILL mid-batch (nothing lost; duplicates
only among the messages sent but not yet recorded, after ``lease_seconds``), and a Bot API
that answers a proxy's HTML 502 for a few seconds (every message still sent once, the
dispatcher alive and healthy afterwards). SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from bot.delivery.dispatcher import Dispatcher
from bot.delivery.senders import AiogramTelegram
from bot.delivery.telegram_session import build_bot
from bot.texts import Texts
from storage.models import Category, Customer, Message, MessageStatus, TelegramAccount
from tests import factories as f
from tests.fakes.telegram import DEFAULT_TOKEN, FakeTelegram

CHAT0 = 70_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _until(check: Callable[[], bool], limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def _queue(n: int) -> None:
    await Customer.bulk_create([Customer(name=f"客户{i}", phone=f"+86137{i:08d}",
                                         referral_code=f"R{i:07d}") for i in range(n)])
    ids = await Customer.all().order_by("id").values_list("id", flat=True)
    await TelegramAccount.bulk_create([
        TelegramAccount(telegram_user_id=CHAT0 + i, chat_id=CHAT0 + i, customer_id=cid,
                        linked_at=f.NOON_SHANGHAI) for i, cid in enumerate(ids)])
    await Message.bulk_create([
        Message(dedup_key=f"svc:{cid}", kind="claim_update", category=Category.SERVICE,
                customer_id=cid, template_key="claim_update",
                params={"claim": f"C{cid}", "status": "已结案", "note": ""},
                not_before=f.NOON_SHANGHAI) for cid in ids])


async def _spawn(db: str, fake: FakeTelegram, tmp_path: Path, port: int,
                 **extra: str) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGE_")}
    env.update({
        "ENGAGE_DATABASE__URL": db, "ENGAGE_TELEGRAM__TOKEN": DEFAULT_TOKEN,
        "ENGAGE_TELEGRAM__API_BASE": fake.base_url, "ENGAGE_WEB__PORT": str(port),
        "ENGAGE_TELEGRAM__RATE_PER_SECOND": "30",
        "ENGAGE_DELIVERY__POLL_INTERVAL_SECONDS": "0.2",
        "ENGAGE_WEATHER__API_BASE": "http://127.0.0.1:9",
    })
    env.update({f"ENGAGE_{key.upper()}": value for key, value in extra.items()})
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "run", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


def _sent_chats(fake: FakeTelegram) -> Counter[int]:
    return Counter(int(m["chat_id"]) for m in fake.sent_messages())


async def _drain(db: str, fake: FakeTelegram) -> None:
    """Another process carries on: dispatch what is due now, on the real clock."""
    settings = f.settings_for(db_url=db, telegram_base=fake.base_url)
    bot = build_bot(DEFAULT_TOKEN, fake.base_url)
    try:
        dispatcher = Dispatcher(settings, Texts.load(), telegram=AiogramTelegram(bot),
                                sms=None, clock=lambda: datetime.now(UTC),
                                skip_locked=not db.startswith("sqlite"))
        await dispatcher.run(asyncio.Event(), until_idle=True)
    finally:
        await bot.session.close()


async def test_sigterm_mid_batch_exits_cleanly_and_gives_the_rest_back(
    db: str, fake_telegram: FakeTelegram, tmp_path: Path
) -> None:
    await _queue(300)
    proc = await _spawn(db, fake_telegram, tmp_path, _free_port())
    await _until(lambda: len(fake_telegram.sent_messages()) >= 40)
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    log = err.decode()
    assert proc.returncode == 0, log[-3000:]
    assert "Traceback" not in log and "shutdown took longer" not in log
    sent = _sent_chats(fake_telegram)
    assert set(sent.values()) == {1}
    assert not await Message.filter(status=MessageStatus.CLAIMED).exists()  # all given back
    assert await Message.filter(status=MessageStatus.SENT).count() == len(sent) < 300

    await _drain(db, fake_telegram)
    sent = _sent_chats(fake_telegram)
    assert len(sent) == 300 and set(sent.values()) == {1}  # nothing lost, nothing twice


async def test_sigkill_mid_batch_loses_nothing_and_repeats_only_unrecorded_sends(
    db: str, fake_telegram: FakeTelegram, tmp_path: Path
) -> None:
    await _queue(200)
    proc = await _spawn(db, fake_telegram, tmp_path, _free_port(),
                        delivery__lease_seconds="5")
    await _until(lambda: len(fake_telegram.sent_messages()) >= 40)
    proc.kill()
    await proc.communicate()
    before = _sent_chats(fake_telegram)
    chats = dict(await TelegramAccount.all().values_list("customer_id", "chat_id"))
    recorded = {int(chats[cid]) for cid in await Message.filter(
        status=MessageStatus.SENT).values_list("customer_id", flat=True)}
    unrecorded = set(before) - recorded  # the documented window: sent, outcome not written
    assert await Message.filter(status=MessageStatus.CLAIMED).exists()  # held by the dead

    await asyncio.sleep(5.5)  # lease_seconds: then anyone may claim them again
    await _drain(db, fake_telegram)
    sent = _sent_chats(fake_telegram)
    assert len(sent) == 200  # nothing lost
    twice = {chat for chat, n in sent.items() if n > 1}
    assert twice <= unrecorded and max(sent.values()) <= 2
    assert await Message.filter(status=MessageStatus.SENT).count() == 200


async def test_html_502_for_three_seconds_is_survived_and_reported_healthy(
    db: str, fake_telegram: FakeTelegram, tmp_path: Path
) -> None:
    await _queue(120)
    port = _free_port()
    proc = await _spawn(db, fake_telegram, tmp_path, port,
                        delivery__backoff_base_seconds="0.5")
    try:
        await _until(lambda: len(fake_telegram.sent_messages()) >= 10)
        fake_telegram.proxy_error(status=502, seconds=3.0)
        await _until(lambda: fake_telegram.proxy_error_answers > 0)
        await _until(lambda: len(_sent_chats(fake_telegram)) == 120)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                health = await resp.json()
                assert resp.status == 200, health
            async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                metrics = await resp.text()
        for name in ("dispatcher-1", "dispatcher-2"):
            assert health["tasks"][name]["status"] == "ok"
            assert health["tasks"][name]["restarts"] == 0  # never crashed: nothing to restart
            assert f'engage_task_up{{task="{name}"}} 1.0' in metrics
        assert 'engage_provider_errors_total{channel="telegram",code="502"}' in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0 and "Traceback" not in err.decode(), err.decode()[-3000:]
    assert set(_sent_chats(fake_telegram).values()) == {1}
    assert await Message.filter(status=MessageStatus.SENT).count() == 120
