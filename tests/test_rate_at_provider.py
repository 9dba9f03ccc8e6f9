"""Rate limits hold where the provider counts them: 1,500 sends at 30 msg/s through one
dispatcher process, and through two sharing Redis, measured on arrival at a fake Bot API
running in its own process. No 1-second window holds more than 30 sends and no chat gets
two messages less than 1 s apart (500 chats get two each). PostgreSQL (two dispatchers need
SKIP LOCKED) and Redis."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections import defaultdict
from collections.abc import AsyncIterator
from itertools import pairwise

import aiohttp
import pytest
import redis.asyncio as aioredis

from storage.models import Category, Customer, Message, MessageStatus, TelegramAccount
from tests import factories as f

RATE = 30
PER_CHAT = 1.0
CHATS = 1000
TWICE = 500  # chats with two messages: 1,500 sends in all
REDIS_URL = os.environ.get("ENGAGE_TEST_REDIS_URL", "")


def _free_ports(count: int) -> int:
    """A base port with ``count`` free ports from it (the fake world needs four)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        if base + count > 65535:
            continue
        socks = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no free port range")


@pytest.fixture
async def fake_world() -> AsyncIterator[tuple[str, str]]:
    """``python -m tests.fakes serve`` in its own process: (Bot API base, control API)."""
    base = _free_ports(4)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fakes", "serve", "--port", str(base),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    try:
        while b"control API" not in await asyncio.wait_for(proc.stdout.readline(), 60):
            pass
        yield f"http://127.0.0.1:{base}", f"http://127.0.0.1:{base + 3}"
    finally:
        proc.terminate()
        await proc.communicate()


async def _queue() -> None:
    await Customer.bulk_create([Customer(name=f"客户{i}", phone=f"+86136{i:08d}",
                                         referral_code=f"Q{i:07d}") for i in range(CHATS)])
    ids = await Customer.all().order_by("id").values_list("id", flat=True)
    await TelegramAccount.bulk_create([
        TelegramAccount(telegram_user_id=80_000 + i, chat_id=80_000 + i, customer_id=cid,
                        linked_at=f.NOON_SHANGHAI) for i, cid in enumerate(ids)])
    await Message.bulk_create([
        Message(dedup_key=f"svc:{cid}:{k}", kind="claim_update", category=Category.SERVICE,
                customer_id=cid, template_key="claim_update",
                params={"claim": f"C{cid}-{k}", "status": "已结案", "note": ""},
                not_before=f.NOON_SHANGHAI)
        for k in (1, 2) for cid in (ids if k == 1 else ids[:TWICE])])


async def _arrivals(control: str) -> list[tuple[float, int]]:
    async with aiohttp.ClientSession() as http, http.get(
            f"{control}/telegram/requests", params={"method": "sendMessage"}) as resp:
        found = await resp.json()
    return sorted((float(r["time"]), int(r["params"]["chat_id"])) for r in found
                  if r["status"] == 200)


def _fullest_second(times: list[float]) -> int:
    best, end = 0, 0
    for start, at in enumerate(times):
        while end < len(times) and times[end] < at + 1.0:
            end += 1
        best = max(best, end - start)
    return best


@pytest.mark.parametrize("processes", [1, 2])
async def test_no_second_over_the_rate_and_no_chat_gap_under_the_interval(
    db: str, is_postgres: bool, fake_world: tuple[str, str], processes: int
) -> None:
    if not is_postgres or not REDIS_URL:
        pytest.skip("needs PostgreSQL (two dispatchers) and Redis (shared limits)")
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await client.flushdb()
    finally:
        await client.aclose()
    await _queue()
    base, control = fake_world
    workers = [await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.workers.dispatch_worker", db, base, "now",
        "--limited", str(RATE), "--redis", REDIS_URL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        for _ in range(processes)]
    outputs = [await w.communicate() for w in workers]
    assert all(w.returncode == 0 for w in workers), [o[1].decode()[-2000:] for o in outputs]

    arrivals = await _arrivals(control)
    assert len(arrivals) == CHATS + TWICE
    assert await Message.filter(status=MessageStatus.SENT).count() == CHATS + TWICE
    assert _fullest_second([t for t, _ in arrivals]) <= RATE
    by_chat: dict[int, list[float]] = defaultdict(list)
    for at, chat in arrivals:
        by_chat[chat].append(at)
    gaps = [b - a for times in by_chat.values() for a, b in pairwise(times)]
    assert len(gaps) == TWICE and min(gaps) >= PER_CHAT
