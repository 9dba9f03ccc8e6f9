"""Telegram flood control (429 ``retry_after``) on the bot's direct replies.

A reply to a customer — an answer to a command, a button, a contact — is waited for: when
Telegram asks us to wait a few seconds, the reply goes out after them, instead of the
update failing into the apology "something went wrong" (which would meet the same 429).
The wait is bounded (``MAX_WAIT_SECONDS`` over all retries of one call): a longer one is
passed on, and the update is left for Telegram to deliver again later.

Only calls made while an update is being handled wait (``replying()``, entered by the update
feed). The outbox sender shares the Bot and must never sleep inside a send: its dispatcher
requeues the message and pauses the whole channel instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods.base import TelegramMethod, TelegramType

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.methods import Response

log = logging.getLogger(__name__)

MAX_WAIT_SECONDS = 5.0

Sleep = Callable[[float], Awaitable[None]]

_replying: ContextVar[bool] = ContextVar("engage_telegram_replying", default=False)


@contextmanager
def replying() -> Iterator[None]:
    """Inside, Bot API calls are direct replies to the update being handled."""
    token = _replying.set(True)
    try:
        yield
    finally:
        _replying.reset(token)


class ShortFloodWaits(BaseRequestMiddleware):
    """A request middleware of the Bot's session (``bot.session.middleware(...)``)."""

    def __init__(self, *, max_wait: float = MAX_WAIT_SECONDS,
                 sleep: Sleep = asyncio.sleep) -> None:
        self._max_wait = max_wait
        self._sleep = sleep

    async def __call__(self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot,
                       method: TelegramMethod[TelegramType]) -> Response[TelegramType]:
        waited = 0.0
        while True:
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                if not _replying.get() or waited + exc.retry_after > self._max_wait:
                    raise
                log.warning("Telegram flood control on %s: replying after %d s",
                            type(method).__name__, exc.retry_after)
                await self._sleep(exc.retry_after)
                waited += exc.retry_after
