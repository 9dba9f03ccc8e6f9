"""Filters of our own: a main-menu button, matched in either language, and magic filters
checked on the event loop."""

from __future__ import annotations

from typing import Any

from aiogram.enums import ChatType
from aiogram.filters import Filter
from aiogram.types import CallbackQuery, Message, TelegramObject
from magic_filter import MagicFilter

from bot.telegram.i18n import labels
from bot.texts import Texts


class MenuButton(Filter):
    """The message is the label of the main-menu button ``key`` (in zh-CN or en: the menu a
    user still has on screen may be in the language they used before switching)."""

    def __init__(self, key: str) -> None:
        self.key = key

    async def __call__(self, message: Message, texts: Texts) -> bool:
        return message.text is not None and message.text in labels(texts, self.key)


class PrivateChat(Filter):
    """The update comes from a private chat with the bot (a message, or a button under one).
    A plain attribute check: it runs for every message and button press."""

    async def __call__(self, event: TelegramObject) -> bool:
        if isinstance(event, CallbackQuery):
            event = event.message  # type: ignore[assignment]
        chat = getattr(event, "chat", None)
        return chat is not None and chat.type == ChatType.PRIVATE


class Magic(Filter):
    """A magic filter (``F.text``, ``F.chat.type == …``) evaluated in the event loop.

    aiogram calls a bare magic filter through ``asyncio.to_thread``, because its ``resolve``
    is a plain function: a thread-pool round trip for every check of every update, which
    cost about a tenth of the webhook's CPU. Resolving is a few attribute reads, so here it
    is a plain call. The result means the same as aiogram's: falsy rejects, a dict adds
    handler arguments.
    """

    def __init__(self, magic: MagicFilter) -> None:
        self.magic = magic

    async def __call__(self, event: TelegramObject) -> Any:
        return self.magic.resolve(event)
