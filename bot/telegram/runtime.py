"""Building the aiogram Dispatcher and running it: start-up (getMe, setMyCommands, webhook or
polling) and shutdown. The Bot is not built here: the composition root builds one per process
and shares it with the outbox sender."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage, StateType, StorageKey
from aiogram.fsm.storage.memory import MemoryStorage

from bot.desk.threads import Desk
from bot.documents import UploadLimits
from bot.settings import Settings
from bot.supervisor import Beat, Supervised, Supervisor
from bot.telegram import get_routers, report
from bot.telegram.commands import register_commands
from bot.telegram.context import ConversationContext, LinkedOnly
from bot.telegram.filters import PrivateChat
from bot.telegram.flood import ShortFloodWaits, Sleep
from bot.telegram.routing import flatten_into
from bot.telegram.updates import UpdateFeed, poll, prune_processed
from bot.texts import Texts

log = logging.getLogger(__name__)

PRUNE_EVERY = timedelta(hours=6)
POLL_SECONDS = 25
POLLING_STUCK_AFTER = 180.0
"""A long poll returns within POLL_SECONDS (+10 s timeout); a batch is handled in seconds."""


class KeyedIsolation(BaseEventIsolation):
    """One user's updates are handled one at a time (an album's files, a double tap), other
    users' in parallel. Like aiogram's ``SimpleEventIsolation``, but a key's lock is dropped
    once nobody holds or waits for it, so memory does not grow with every user ever seen."""

    def __init__(self) -> None:
        self._locks: dict[StorageKey, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncGenerator[None, None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield None
        finally:
            _, users = self._locks.get(key, (lock, 1))
            if users <= 1:
                self._locks.pop(key, None)
            else:
                self._locks[key] = (lock, users - 1)

    async def close(self) -> None:
        self._locks.clear()


class ConversationMemory(MemoryStorage):
    """aiogram's ``MemoryStorage`` keeps a record for every user it is ever asked about (its
    reads go through a ``defaultdict``), so memory grows with every customer who writes once.
    This one keeps only conversations that have a state or data."""

    async def get_state(self, key: StorageKey) -> str | None:
        record = self.storage.get(key)
        return record.state if record is not None else None

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        record = self.storage.get(key)
        return record.data.copy() if record is not None else {}

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        await super().set_state(key, state)
        self._forget_if_empty(key)

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        await super().set_data(key, data)
        self._forget_if_empty(key)

    def _forget_if_empty(self, key: StorageKey) -> None:
        record = self.storage.get(key)
        if record is not None and record.state is None and not record.data:
            del self.storage[key]


def fsm_storage(settings: Settings) -> tuple[BaseStorage, BaseEventIsolation]:
    """Conversation state in memory by default; in Redis when ``redis.url`` is set, so that
    several processes share it (and isolate one user's updates across processes)."""
    if settings.redis.url:
        from aiogram.fsm.storage.redis import RedisStorage

        storage = RedisStorage.from_url(settings.redis.url)
        return storage, storage.create_isolation()
    return ConversationMemory(), KeyedIsolation()


def build_dispatcher(
    settings: Settings,
    texts: Texts,
    *,
    clock: Callable[[], datetime],
    storage: BaseStorage | None = None,
    isolation: BaseEventIsolation | None = None,
    bot_username: str = "",
) -> Dispatcher:
    """The dispatcher with every router; app-wide services are its workflow data."""
    dp = Dispatcher(
        storage=storage or ConversationMemory(),
        events_isolation=isolation or KeyedIsolation(),
        settings=settings,
        texts=texts,
        clock=clock,
        uploads=UploadLimits(max_bytes=settings.uploads.max_bytes,
                             max_pixels=settings.uploads.max_pixels,
                             directory=settings.uploads.directory),
        bot_username=bot_username,
        desk=Desk(settings),
    )
    flatten_into(dp, get_routers(), texts)
    # A policyholder's bot: groups it is added to get no answers (and no accounts).
    dp.message.filter(PrivateChat())
    dp.callback_query.filter(PrivateChat())
    dp.update.outer_middleware(ConversationContext())
    dp.message.middleware(LinkedOnly())
    dp.callback_query.middleware(LinkedOnly())
    return dp


@dataclass
class TelegramRuntime:
    """The running bot: the dispatcher, its update feed and background tasks."""

    bot: Bot
    dispatcher: Dispatcher
    feed: UpdateFeed
    tasks: list[Supervised] = field(default_factory=list)

    async def stop(self) -> None:
        for task in self.tasks:
            await task.stop()  # polling finishes the batch in hand (unconfirmed ones come again)
        await self.dispatcher.fsm.close()


async def _prune_periodically(stop: asyncio.Event, beat: Beat,
                              clock: Callable[[], datetime]) -> None:
    while not stop.is_set():
        removed = await prune_processed(clock())
        beat()
        if removed:
            log.info("forgot %d processed Telegram update ids", removed)
        try:
            await asyncio.wait_for(stop.wait(), PRUNE_EVERY.total_seconds())
        except TimeoutError:
            continue


async def start(bot: Bot, settings: Settings, texts: Texts, *,
                clock: Callable[[], datetime], supervisor: Supervisor,
                sleep: Sleep = asyncio.sleep) -> TelegramRuntime:
    """getMe (the username for /invite links), the command menus, then the webhook
    registration or the polling task (``update-feed``, supervised). Replies wait out short
    flood waits (``sleep``)."""
    bot.session.middleware(ShortFloodWaits(sleep=sleep))
    storage, isolation = fsm_storage(settings)
    me = await bot.get_me()
    dp = build_dispatcher(settings, texts, clock=clock, storage=storage, isolation=isolation,
                          bot_username=me.username or "")
    await register_commands(bot, texts, settings.company.default_language)
    if restored := await report.restore(dp, bot):
        log.info("%d accident reports in progress continue where they were", restored)
    runtime = TelegramRuntime(bot, dp, UpdateFeed(dp, bot, clock))
    allowed = dp.resolve_used_update_types()
    tg = settings.telegram
    if tg.mode == "webhook":
        await bot.set_webhook(tg.webhook_url, secret_token=tg.webhook_secret.get_secret_value(),
                              allowed_updates=allowed)
        log.info("telegram webhook set for @%s", me.username)
    else:
        await bot.delete_webhook()
        runtime.tasks.append(supervisor.spawn(
            "update-feed", partial(poll, runtime.feed, allowed_updates=allowed,
                                   poll_seconds=POLL_SECONDS),
            stuck_after=POLLING_STUCK_AFTER))
        log.info("telegram long polling started for @%s", me.username)
    runtime.tasks.append(supervisor.spawn(
        "telegram-prune", partial(_prune_periodically, clock=clock), stuck_after=None))
    return runtime
