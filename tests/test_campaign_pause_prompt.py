"""Pause stops sending promptly with the shipped batch size: a dispatcher sending a claimed
batch of a campaign through the fake Bot API at its rate limit stops handing that campaign's
messages to the provider once the pause is committed (within the gate's refresh age, plus
what was already waiting for its slot), holds the rest, and the campaign page's counts add
up. Resume then sends every held message exactly once. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.delivery.campaign_gate import CampaignGate
from bot.delivery.dispatcher import Dispatcher, Limits
from bot.delivery.ratelimit import local_rate_limiter
from bot.delivery.senders import AiogramTelegram
from bot.delivery.telegram_session import build_bot
from bot.texts import Texts
from bot.web.app import Overrides, build_app
from bot.web.operators.access import create_operator
from bot.web.operators.runner import CampaignRunner
from storage.models import Message, MessageStatus, TelegramAccount
from storage.operator_models import HOLD_UNTIL, Role
from tests import factories as f
from tests.fakes.telegram import DEFAULT_TOKEN, FakeTelegram

RATE = 20.0
CONCURRENCY = 8
GATE_AGE = 0.25
AUDIENCE = 300


def moving_clock() -> Callable[[], datetime]:
    """Noon in Shanghai (no quiet hours), moving with real time."""
    started = time.monotonic()
    return lambda: f.NOON_SHANGHAI + timedelta(seconds=time.monotonic() - started)


@pytest.fixture
async def api(db: str) -> AsyncIterator[tuple[TestClient, str, Callable[[], datetime]]]:  # type: ignore[type-arg]
    settings = f.settings_for(db_url=db)
    clock = moving_clock()
    app = build_app(settings, Overrides(run_dispatcher=False, run_scheduler=False,
                                        run_campaigns=False, manage_database=False, clock=clock))
    _, token = await create_operator("admin", Role.ADMIN)
    async with TestClient(TestServer(app)) as client:
        yield client, token, clock


async def _until(check: Callable[[], bool], limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def _call(client: TestClient, token: str, method: str, path: str,  # type: ignore[type-arg]
                **kw: Any) -> Any:
    resp = await client.request(method, path, headers={"Authorization": f"Bearer {token}"},
                                **kw)
    assert resp.status in (200, 201), await resp.text()
    return await resp.json()


async def test_pause_stops_a_claimed_batch_within_the_gate_age_and_counts_add_up(
    db: str, api: tuple[TestClient, str, Callable[[], datetime]],  # type: ignore[type-arg]
    fake_telegram: FakeTelegram,
) -> None:
    client, token, clock = api
    people = [await f.customer(name=f"客户{n}") for n in range(AUDIENCE)]
    await TelegramAccount.bulk_create([
        TelegramAccount(telegram_user_id=50_000 + p.id, chat_id=50_000 + p.id, customer=p,
                        linked_at=f.NOON_SHANGHAI) for p in people])
    created = await _call(client, token, "POST", "/api/v1/campaigns", json={
        "name": "冬季关怀", "category": "care",
        "templates": {"zh-CN": "{name}，冬季行车注意安全。", "en": "{name}, drive safely."}})
    campaign = int(created["id"])
    await _call(client, token, "POST", f"/api/v1/campaigns/{campaign}/start")
    settings = f.settings_for(db_url=db, telegram_base=fake_telegram.base_url)
    runner = CampaignRunner(settings, clock=clock)
    while await runner.tick():
        pass

    bot = build_bot(DEFAULT_TOKEN, fake_telegram.base_url)
    try:
        dispatcher = Dispatcher(
            settings, Texts.load(), telegram=AiogramTelegram(bot), sms=None, clock=clock,
            limits=Limits(telegram=local_rate_limiter(RATE), telegram_concurrency=CONCURRENCY),
            gate=CampaignGate(max_age=GATE_AGE), skip_locked=not db.startswith("sqlite"))
        assert settings.delivery.batch_size == 200  # the shipped setting: one claim is 10 s
        stop = asyncio.Event()
        sending = asyncio.ensure_future(dispatcher.pipeline(stop))
        try:
            await _until(lambda: len(fake_telegram.sent_messages()) >= 40)
            asked = time.monotonic()
            await _call(client, token, "POST", f"/api/v1/campaigns/{campaign}/pause")
            committed = time.monotonic()
            await asyncio.sleep(2.0)
            late = [r for r in fake_telegram.requests_for("sendMessage") if r.time > committed]
            # What was waiting for its slot (CONCURRENCY) and what the gate let through before
            # it read the pause: never the rest of the claimed batch (160 were left in it).
            assert len(late) <= CONCURRENCY + RATE * GATE_AGE + 1
            before = len(fake_telegram.sent_messages())
            await asyncio.sleep(1.0)
            assert len(fake_telegram.sent_messages()) == before  # stopped for good
        finally:
            stop.set()
            await sending

        stats = await _call(client, token, "GET", f"/api/v1/campaigns/{campaign}/stats")
        sent = len(fake_telegram.sent_messages())
        assert stats["sent"] == sent and stats["held"] == AUDIENCE - sent
        assert stats["queued"] == 0  # nothing both waiting and held
        assert stats["enqueued"] == stats["queued"] + stats["held"] + stats["sent"] == AUDIENCE
        # Counted by sent_at (written when the provider's answer is read) against paused_at: at
        # least what reached the provider after the pause answered, at most what reached it since
        # the pause was asked plus the requests that were on the wire then.
        since_asked = [r for r in fake_telegram.requests_for("sendMessage") if r.time > asked]
        assert len(late) <= stats["in_flight_at_pause"] <= len(since_asked) + CONCURRENCY
        assert not await Message.filter(status=MessageStatus.CLAIMED).exists()
        held = await Message.filter(campaign_id=campaign, status=MessageStatus.PENDING)
        assert {m.not_before for m in held} == {HOLD_UNTIL}

        await _call(client, token, "POST", f"/api/v1/campaigns/{campaign}/resume")
        dispatcher = Dispatcher(settings, Texts.load(), telegram=AiogramTelegram(bot), sms=None,
                                clock=clock, skip_locked=not db.startswith("sqlite"))
        await dispatcher.run(asyncio.Event(), until_idle=True)
        per_chat = Counter(int(m["chat_id"]) for m in fake_telegram.sent_messages())
        assert len(per_chat) == AUDIENCE and set(per_chat.values()) == {1}
    finally:
        await bot.session.close()  # also when an assertion fails: no leak into the next test
