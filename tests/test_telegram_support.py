"""The Telegram test rig (no tests in here): the real aiogram Dispatcher and Bot against the
fake Bot API server, real ``Update`` objects built from the JSON Telegram would send, and
helpers to read what reached the fake.

Test modules import the ``tg`` fixture from here.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import Update

from bot.settings import Settings
from bot.telegram.i18n import Translator
from bot.telegram.runtime import build_dispatcher
from bot.telegram.updates import UpdateFeed
from bot.texts import Texts
from storage.models import Customer, TelegramAccount
from tests import factories as f
from tests.fakes.telegram import DEFAULT_TOKEN, FakeTelegram

BOT_USERNAME = "engage_test_bot"
BOT_USER = {"id": 123456, "is_bot": True, "first_name": "Engage", "username": BOT_USERNAME}


class Clock:
    def __init__(self, now: datetime = f.NOON_SHANGHAI) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass(frozen=True)
class User:
    """A Telegram user in a private chat with the bot (chat id = user id)."""

    id: int
    language_code: str = "zh-hans"
    first_name: str = "客户"

    def json(self) -> dict[str, Any]:
        return {"id": self.id, "is_bot": False, "first_name": self.first_name,
                "language_code": self.language_code}

    def chat(self) -> dict[str, Any]:
        return {"id": self.id, "type": "private", "first_name": self.first_name}


@dataclass
class Rig:
    fake: FakeTelegram
    bot: Bot
    dispatcher: Dispatcher
    feed: UpdateFeed
    clock: Clock
    settings: Settings
    texts: Texts
    _update_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _message_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(10_000))

    # -- building updates ----------------------------------------------------------------

    def update(self, payload: dict[str, Any], update_id: int | None = None) -> Update:
        data = {"update_id": update_id if update_id is not None else next(self._update_ids),
                **payload}
        return Update.model_validate(data, context={"bot": self.bot})

    def message(self, user: User, text: str | None = None, **fields: Any) -> dict[str, Any]:
        message: dict[str, Any] = {"message_id": next(self._message_ids),
                                   "date": int(self.clock().timestamp()), "chat": user.chat(),
                                   "from": user.json(), **fields}
        if text is not None:
            message["text"] = text
            if text.startswith("/"):
                command = text.split()[0]
                message["entities"] = [{"type": "bot_command", "offset": 0,
                                        "length": len(command)}]
        return {"message": message}

    def callback(self, user: User, data: str, *, message_id: int = 1) -> dict[str, Any]:
        return {"callback_query": {
            "id": f"cb{next(self._message_ids)}", "from": user.json(), "chat_instance": "ci",
            "data": data,
            "message": {"message_id": message_id, "date": int(self.clock().timestamp()),
                        "chat": user.chat(), "from": BOT_USER, "text": "…"}}}

    def member(self, user: User, old: str, new: str) -> dict[str, Any]:
        def member(status: str) -> dict[str, Any]:
            extra = {"until_date": 0} if status == "kicked" else {}
            return {"status": status, "user": BOT_USER, **extra}

        return {"my_chat_member": {
            "chat": user.chat(), "from": user.json(), "date": int(self.clock().timestamp()),
            "old_chat_member": member(old), "new_chat_member": member(new)}}

    # -- feeding -------------------------------------------------------------------------

    async def send(self, user: User, text: str | None = None, **fields: Any) -> Update:
        update = self.update(self.message(user, text, **fields))
        await self.feed.feed(update)
        return update

    async def press(self, user: User, data: str, *, message_id: int = 1) -> Update:
        update = self.update(self.callback(user, data, message_id=message_id))
        await self.feed.feed(update)
        return update

    async def contact(self, user: User, phone: str, *, owner: int | None = None) -> Update:
        contact = {"phone_number": phone, "first_name": user.first_name,
                   "user_id": user.id if owner is None else owner}
        return await self.send(user, contact=contact)

    # -- reading the fake ----------------------------------------------------------------

    def sent(self, chat_id: int | None = None, method: str = "sendMessage"
             ) -> list[dict[str, Any]]:
        return [r.params for r in self.fake.requests_for(method)
                if r.status == 200 and (chat_id is None or r.params.get("chat_id") == chat_id)]

    def texts_to(self, chat_id: int) -> list[str]:
        return [str(p["text"]) for p in self.sent(chat_id)]

    def last(self, chat_id: int) -> dict[str, Any]:
        sent = self.sent(chat_id)
        assert sent, f"nothing was sent to {chat_id}"
        return sent[-1]

    def last_text(self, chat_id: int) -> str:
        return str(self.last(chat_id)["text"])

    def t(self, lang: str) -> Translator:
        return Translator(self.texts, lang)

    # -- data ----------------------------------------------------------------------------

    async def linked(self, *, language: str = "zh-CN", user_id: int | None = None,
                     **extra: Any) -> tuple[Customer, User]:
        """A customer linked to a Telegram user that speaks their language."""
        owner = await f.customer(language=language, **extra)
        uid = user_id or 500_000 + owner.id
        await TelegramAccount.create(telegram_user_id=uid, chat_id=uid, customer=owner,
                                     linked_at=self.clock(), language_code=language)
        return owner, User(uid, "en" if language == "en" else "zh-hans")


def inline_buttons(params: dict[str, Any]) -> list[dict[str, Any]]:
    markup = params.get("reply_markup") or {}
    return [button for row in markup.get("inline_keyboard", []) for button in row]


def button_data(params: dict[str, Any]) -> list[str]:
    return [str(b["callback_data"]) for b in inline_buttons(params)]


@pytest.fixture
async def tg(db: str, fake_telegram: FakeTelegram, tmp_path: Path) -> AsyncIterator[Rig]:
    settings = f.settings_for(db_url=db, telegram_base=fake_telegram.base_url,
                              twilio_base="http://127.0.0.1:9",
                              uploads={"directory": tmp_path / "uploads"})
    bot = Bot(DEFAULT_TOKEN,
              session=AiohttpSession(api=TelegramAPIServer.from_base(fake_telegram.base_url)))
    clock = Clock()
    texts = Texts.load()
    dispatcher = build_dispatcher(settings, texts, clock=clock, bot_username=BOT_USERNAME)
    try:
        yield Rig(fake_telegram, bot, dispatcher, UpdateFeed(dispatcher, bot, clock), clock,
                  settings, texts)
    finally:
        await bot.session.close()
