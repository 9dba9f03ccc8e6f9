"""/healthz and /metrics report every background task of the real application (dispatcher
pipelines, campaign runner, scheduler role, media sweep, update feed): a task that stops
beating — here the update feed while the Bot API answers a proxy's HTML 502 — turns /healthz
503 and its gauge 0, and both recover once the fault is gone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.supervisor import Supervisor
from bot.web.app import Overrides, build_app
from tests import factories as f
from tests.fakes.telegram import FakeTelegram
from tests.fakes.twilio import SDK_WARNING_FILTERS, FakeTwilio

pytestmark = [pytest.mark.filterwarnings(w) for w in SDK_WARNING_FILTERS]


class Ticker:
    """Monotonic time that a test can move ahead of the real one."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.ahead


@pytest.fixture
async def app_client(db: str, fake_telegram: FakeTelegram, fake_twilio: FakeTwilio,
                     ) -> AsyncIterator[tuple[TestClient, Ticker]]:  # type: ignore[type-arg]
    settings = f.settings_for(db_url=db, telegram_base=fake_telegram.base_url,
                              twilio_base=fake_twilio.base_url,
                              delivery={"poll_interval_seconds": 0.1},
                              operator={"campaign_poll_seconds": 0.1})
    ticker = Ticker()
    app = build_app(settings, Overrides(run_scheduler=False, manage_database=False,
                                        supervisor=Supervisor(monotonic=ticker)))
    async with TestClient(TestServer(app)) as client:
        yield client, ticker


async def _health(client: TestClient) -> tuple[int, dict[str, Any]]:  # type: ignore[type-arg]
    resp = await client.get("/healthz")
    return resp.status, await resp.json()


async def _until(check: Any, limit: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not await check():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


async def test_healthz_goes_503_while_the_update_feed_is_stuck_and_recovers(
    app_client: tuple[TestClient, Ticker], fake_telegram: FakeTelegram,  # type: ignore[type-arg]
) -> None:
    client, ticker = app_client
    status, body = await _health(client)
    assert status == 200
    assert set(body["tasks"]) == {"dispatcher-1", "dispatcher-2", "campaign-runner",
                                  "complaint-clock", "media-sweep", "update-feed",
                                  "telegram-prune", "core-reports", "report-drafts"}

    fake_telegram.proxy_error(status=502)  # every Bot API call: an HTML page
    # End the long poll in flight with an update the bot ignores (a group chat's message).
    fake_telegram.push_update({"update_id": 1, "message": {
        "message_id": 1, "date": int(time.time()), "text": "hi",
        "chat": {"id": -5, "type": "group", "title": "g"},
        "from": {"id": 5, "is_bot": False, "first_name": "G"}}})

    async def refused() -> bool:
        return fake_telegram.proxy_error_answers > 0

    await _until(refused)  # the feed's last beat is behind it: getUpdates now gets HTML
    ticker.ahead = 200.0  # more than the update feed's 180 s without a beat

    async def only_feed_stuck() -> bool:
        status, body = await _health(client)
        stuck = {name for name, task in body["tasks"].items() if task["status"] != "ok"}
        return status == 503 and stuck == {"update-feed"}

    await _until(only_feed_stuck)  # the other loops beat again at once; the feed cannot
    metrics = await (await client.get("/metrics")).text()
    assert 'engage_task_up{task="update-feed"} 0.0' in metrics
    assert 'engage_task_up{task="dispatcher-1"} 1.0' in metrics

    fake_telegram.end_proxy_error()

    async def healthy() -> bool:
        return (await _health(client))[0] == 200

    await _until(healthy)  # the feed retried (after its back-off) and beat again
    _, body = await _health(client)
    assert body["tasks"]["update-feed"]["restarts"] == 0  # survived, never crashed
