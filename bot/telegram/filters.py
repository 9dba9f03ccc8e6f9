"""Filters of our own: a main-menu button, matched in either language."""

from __future__ import annotations

from aiogram.filters import Filter
from aiogram.types import Message

from bot.telegram.i18n import labels
from bot.texts import Texts


class MenuButton(Filter):
    """The message is the label of the main-menu button ``key`` (in zh-CN or en: the menu a
    user still has on screen may be in the language they used before switching)."""

    def __init__(self, key: str) -> None:
        self.key = key

    async def __call__(self, message: Message, texts: Texts) -> bool:
        return message.text is not None and message.text in labels(texts, self.key)
