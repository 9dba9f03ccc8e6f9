"""The bot inside the aiohttp application from ``build_app``: start-up registration, the
webhook's secret check and handle-then-answer, and long polling that confirms a batch only
after handling it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest
from aiogram.types import Update
from aiohttp.test_utils import TestClient, TestServer

from bot.settings import Settings, TelegramSettings
from bot.telegram.commands import COMMANDS
from bot.telegram.updates import SECRET_HEADER, UpdateFeed, poll
from bot.web.app import Overrides, build_app
from storage.models import ProcessedUpdate
from tests import factories as f
from tests.fakes.telegram import DEFAULT_TOKEN, FakeTelegram
from tests.test_telegram_support import Clock, Rig, User

pytest_plugins = ["tests.test_telegram_support"]

SECRET = "webhook-s3cret"
USER = User(31337, "en")


def _settings(db: str, fake: FakeTelegram, tmp_path: Path, mode: str) -> Settings:
    return f.settings_for(
        db_url=db, uploads={"directory": tmp_path / "uploads"},
        telegram=TelegramSettings(token=DEFAULT_TOKEN, api_base=fake.base_url, mode=mode,
                                  webhook_url=f"{f.PUBLIC_URL}/telegram/webhook",
                                  webhook_secret=SECRET))


@pytest.fixture
async def client(db: str, fake_telegram: FakeTelegram,
                 tmp_path: Path) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    app = build_app(_settings(db, fake_telegram, tmp_path, "webhook"),
                    Overrides(run_dispatcher=False, run_scheduler=False, manage_database=False,
                              clock=Clock()))
    async with TestClient(TestServer(app)) as c:
        yield c


def _update(update_id: int, text: str) -> dict[str, Any]:
    return {"update_id": update_id, "message": {
        "message_id": update_id, "date": 1_795_000_000, "chat": USER.chat(),
        "from": USER.json(), "text": text,
        "entities": [{"type": "bot_command", "offset": 0, "length": len(text)}]}}


async def test_start_up_registers_commands_in_both_languages_and_the_webhook(
    client: TestClient, fake_telegram: FakeTelegram  # type: ignore[type-arg]
) -> None:
    calls = fake_telegram.requests_for("setMyCommands")
    assert [c.params.get("language_code") for c in calls] == ["zh", "en", None]
    for call in calls:
        assert [c["command"] for c in call.params["commands"]] == list(COMMANDS)
    assert calls[0].params["commands"][1]["description"] == "我要报案"
    assert calls[1].params["commands"][2]["description"] == "My policies"
    [hook] = fake_telegram.requests_for("setWebhook")
    assert hook.params["url"] == f"{f.PUBLIC_URL}/telegram/webhook"
    assert hook.params["secret_token"] == SECRET
    assert set(hook.params["allowed_updates"]) == {"message", "callback_query",
                                                   "my_chat_member"}


@pytest.mark.parametrize("headers", [{}, {SECRET_HEADER: "wrong"},
                                     {SECRET_HEADER: SECRET + "x"}],
                         ids=["missing", "wrong", "longer"])
async def test_webhook_without_the_right_secret_is_401_and_handles_nothing(
    client: TestClient, fake_telegram: FakeTelegram,  # type: ignore[type-arg]
    headers: dict[str, str],
) -> None:
    resp = await client.post("/telegram/webhook", json=_update(1, "/help"), headers=headers)
    assert resp.status == 401
    assert fake_telegram.requests_for("sendMessage") == []
    assert await ProcessedUpdate.all().count() == 0


async def test_webhook_with_the_secret_handles_the_update_before_answering(
    client: TestClient, fake_telegram: FakeTelegram  # type: ignore[type-arg]
) -> None:
    resp = await client.post("/telegram/webhook", json=_update(7, "/help"),
                             headers={SECRET_HEADER: SECRET})
    assert resp.status == 200
    # By the time Telegram has its answer the reply is out and the update is recorded.
    [sent] = fake_telegram.requests_for("sendMessage")
    assert sent.params["chat_id"] == USER.id
    assert sent.params["text"].startswith("The Anxing Insurance assistant can:")
    assert await ProcessedUpdate.exists(update_id=7)


async def test_webhook_redelivery_of_one_update_is_answered_once(
    client: TestClient, fake_telegram: FakeTelegram  # type: ignore[type-arg]
) -> None:
    for _ in range(2):
        resp = await client.post("/telegram/webhook", json=_update(8, "/help"),
                                 headers={SECRET_HEADER: SECRET})
        assert resp.status == 200
    assert len(fake_telegram.requests_for("sendMessage")) == 1


async def test_webhook_body_that_is_not_an_update_is_400(
    client: TestClient  # type: ignore[type-arg]
) -> None:
    resp = await client.post("/telegram/webhook", data=b"{not json",
                             headers={SECRET_HEADER: SECRET})
    assert resp.status == 400
    resp = await client.post("/telegram/webhook", json={"message": "no id"},
                             headers={SECRET_HEADER: SECRET})
    assert resp.status == 400


async def test_polling_mode_starts_and_stops_with_the_app(
    db: str, fake_telegram: FakeTelegram, tmp_path: Path
) -> None:
    app = build_app(_settings(db, fake_telegram, tmp_path, "polling"),
                    Overrides(run_dispatcher=False, run_scheduler=False, manage_database=False,
                              clock=Clock()))
    async with TestClient(TestServer(app)):
        assert fake_telegram.requests_for("deleteWebhook")
        assert fake_telegram.requests_for("setWebhook") == []
    # The long poll in flight was abandoned on shutdown; nothing is left running.
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "telegram-polling"]


class StopAfterBatch(UpdateFeed):
    """The real feed, which ends the polling loop once a batch is handled."""

    def __init__(self, rig: Rig, stop: asyncio.Event) -> None:
        super().__init__(rig.dispatcher, rig.bot, rig.clock)
        self.stop = stop

    async def feed_batch(self, updates: Iterable[Update]) -> None:
        await super().feed_batch(updates)
        self.stop.set()


async def _poll_one_batch(tg: Rig) -> None:
    stop = asyncio.Event()
    await poll(StopAfterBatch(tg, stop), stop, allowed_updates=["message"], poll_seconds=0)


async def test_polling_confirms_a_batch_only_after_handling_and_skips_redelivery(
    tg: Rig
) -> None:
    first = tg.fake.push_update(tg.message(USER, "/help"))
    await _poll_one_batch(tg)
    assert len(tg.sent(USER.id)) == 1
    # Handled, but not yet confirmed: were the process to die now, Telegram would send it
    # again - and it would be skipped, as below after a restart.
    assert [u["update_id"] for u in tg.fake.pending_updates] == [first]
    second = tg.fake.push_update(tg.message(USER, "/language"))
    await _poll_one_batch(tg)
    texts = tg.texts_to(USER.id)
    assert len(texts) == 2 and texts[1] == tg.t("en")("tg_language_choose")
    assert await ProcessedUpdate.filter(update_id__in=[first, second]).count() == 2


class Sleeps:
    """The reply's flood-control wait, recorded instead of slept."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


@pytest.fixture
async def waiting_client(db: str, fake_telegram: FakeTelegram,
                         tmp_path: Path) -> AsyncIterator[tuple[TestClient, Sleeps]]:  # type: ignore[type-arg]
    sleeps = Sleeps()
    app = build_app(_settings(db, fake_telegram, tmp_path, "webhook"),
                    Overrides(run_dispatcher=False, run_scheduler=False, manage_database=False,
                              clock=Clock(), sleep=sleeps))
    async with TestClient(TestServer(app)) as c:
        yield c, sleeps


async def test_a_reply_waits_out_a_short_flood_control_and_is_sent(
    waiting_client: tuple[TestClient, Sleeps], fake_telegram: FakeTelegram,  # type: ignore[type-arg]
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, sleeps = waiting_client
    fake_telegram.rate_limit_next(retry_after=3)
    with caplog.at_level(logging.INFO):
        resp = await client.post("/telegram/webhook", json=_update(20, "/help"),
                                 headers={SECRET_HEADER: SECRET})
    assert resp.status == 200
    assert sleeps.seconds == [3]
    calls = fake_telegram.requests_for("sendMessage")
    assert [c.status for c in calls] == [429, 200]
    assert calls[1].params["text"].startswith("The Anxing Insurance assistant can:")
    assert await ProcessedUpdate.exists(update_id=20)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_long_flood_wait_leaves_the_update_for_redelivery_without_an_apology(
    waiting_client: tuple[TestClient, Sleeps], fake_telegram: FakeTelegram,  # type: ignore[type-arg]
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, sleeps = waiting_client
    fake_telegram.rate_limit_next(retry_after=30)
    with caplog.at_level(logging.INFO):
        resp = await client.post("/telegram/webhook", json=_update(21, "/help"),
                                 headers={SECRET_HEADER: SECRET})
    assert resp.status == 503 and resp.headers["Retry-After"] == "30"
    assert sleeps.seconds == []
    assert [c.status for c in fake_telegram.requests_for("sendMessage")] == [429]  # no apology
    assert not await ProcessedUpdate.exists(update_id=21)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    # Telegram delivers it again once the wait is over: answered then.
    resp = await client.post("/telegram/webhook", json=_update(21, "/help"),
                             headers={SECRET_HEADER: SECRET})
    assert resp.status == 200 and await ProcessedUpdate.exists(update_id=21)


async def test_outbox_sends_never_wait_inside_the_send(
    waiting_client: tuple[TestClient, Sleeps], fake_telegram: FakeTelegram,  # type: ignore[type-arg]
) -> None:
    """The dispatcher requeues on a 429 and pauses the channel itself."""
    from bot.delivery.errors import RetryAfter
    from bot.delivery.senders import AiogramTelegram
    from bot.web.keys import BOT

    client, sleeps = waiting_client
    fake_telegram.rate_limit_next(retry_after=2)
    with pytest.raises(RetryAfter):
        await AiogramTelegram(client.app[BOT]).send_text(USER.id, "hello")
    assert sleeps.seconds == []


async def test_polling_waits_out_a_long_flood_wait_and_handles_the_batch_again(
    tg: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    update_id = tg.fake.push_update(tg.message(USER, "/help"))
    tg.fake.rate_limit_next(retry_after=30)
    stop = asyncio.Event()
    with caplog.at_level(logging.INFO):
        polling = asyncio.create_task(poll(tg.feed, stop, allowed_updates=["message"],
                                           poll_seconds=0))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not tg.fake.requests_for("sendMessage"):
            assert loop.time() < deadline
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        stop.set()  # ends the 30 s wait early
        await polling
    assert [c.status for c in tg.fake.requests_for("sendMessage")] == [429]  # no apology
    assert not await ProcessedUpdate.exists(update_id=update_id)
    assert [u["update_id"] for u in tg.fake.pending_updates] == [update_id]  # unconfirmed
    assert "flood control for 30 s" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
