"""``engage run`` as a real OS process: it serves /healthz and /metrics, dispatches the outbox
to the (fake) Bot API, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from tortoise import Tortoise

from storage import db as storage_db
from storage.loyalty_models import Reward
from storage.models import Category, Customer, Message, MessageStatus, TelegramAccount
from tests.fakes.telegram import DEFAULT_TOKEN, FakeTelegram


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _until(check: object, *, limit: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not await check():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def _until_healthy(http: aiohttp.ClientSession, base: str) -> None:
    """Until ``engage run`` at ``base`` answers /healthz with 200."""

    async def healthy() -> bool:
        try:
            async with http.get(f"{base}/healthz") as resp:
                return resp.status == 200
        except aiohttp.ClientConnectionError:
            return False

    await _until(healthy)


async def test_engage_run_serves_dispatches_and_stops_on_sigterm(
    tmp_path: Path, fake_telegram: FakeTelegram
) -> None:
    url = f"sqlite://{tmp_path / 'run.sqlite3'}"
    await storage_db.upgrade(url)
    try:
        owner = await Customer.create(name="周杰", phone="+8613912345678", referral_code="RUN1")
        await TelegramAccount.create(telegram_user_id=5150, chat_id=5150, customer=owner,
                                     linked_at=datetime.now(UTC))
        await Message.create(dedup_key="svc:run:1", kind="claim_update",
                             category=Category.SERVICE, customer=owner,
                             template_key="claim_update",
                             params={"claim": "C-RUN-1", "status": "已赔付", "note": ""},
                             not_before=datetime.now(UTC) - timedelta(minutes=1))
    finally:
        await Tortoise.close_connections()

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGE_")}
    env.update({
        "ENGAGE_DATABASE__URL": url,
        "ENGAGE_TELEGRAM__TOKEN": DEFAULT_TOKEN,
        "ENGAGE_TELEGRAM__API_BASE": fake_telegram.base_url,
        "ENGAGE_WEB__PORT": str(port),
        "ENGAGE_DELIVERY__POLL_INTERVAL_SECONDS": "0.2",
        "ENGAGE_WEATHER__API_BASE": "http://127.0.0.1:9",
    })
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "run", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            await _until_healthy(http, base)

            async def delivered() -> bool:
                return any(m.get("chat_id") == 5150 for m in fake_telegram.sent_messages())

            await _until(delivered)
            async with http.get(f"{base}/metrics") as resp:
                metrics = await resp.text()
            assert ('engage_messages_total{channel="telegram",kind="claim_update",'
                    'status="sent"} 1.0') in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0, err.decode()[-3000:]
    assert "Traceback" not in err.decode()
    assert "start-up heap frozen" in err.decode()  # full GC passes skip the start-up objects
    [sent] = fake_telegram.sent_messages()
    assert "C-RUN-1" in sent["text"]
    await Tortoise.init(config=storage_db.tortoise_config(url))
    try:
        msg = await Message.get(dedup_key="svc:run:1")
        assert msg.status == MessageStatus.SENT
        assert await Reward.all().count() > 0  # the configured catalogue was seeded at start
    finally:
        await Tortoise.close_connections()
