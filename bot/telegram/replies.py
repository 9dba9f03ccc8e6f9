"""The bot's text replies to an update, on the outbox's lean ``sendMessage`` path.

``reply(bot, chat_id, text, markup)`` puts the same request on the wire as
``bot.send_message(chat_id, text, reply_markup=markup)`` and raises the same exceptions; it
goes through the session's request middlewares like any aiogram call (so a short flood wait
is waited out, ``bot.telegram.flood``). What it skips is reading the answer into a ``Message``
model, which a handler that only answers never looks at: in profiles of the webhook that and
building the request form were a fifth of a reply's CPU. A handler that needs the sent
message (to edit it later) keeps ``bot.send_message``. Without a lean session (a bot with
default properties, a test double) it is ``bot.send_message``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiogram import Bot
from aiogram.methods import SendMessage
from aiogram.types import Message

from bot.delivery.telegram_session import Markup, lean_sends

_SEND_MESSAGE = SendMessage.model_construct(chat_id=0, text="")


async def reply(bot: Bot, chat_id: int, text: str, reply_markup: Markup | None = None) -> None:
    session = lean_sends(bot)
    if session is None:
        await bot.send_message(chat_id, text, reply_markup=reply_markup)
        return

    async def lean(bot: Bot, method: Any) -> int:
        return await session.send_text(bot, chat_id, text, reply_markup)

    # Request middlewares pass the result through untouched (ours only retry on flood
    # waits); the method object is what they are shown and name in their logs.
    send: Callable[[Bot, SendMessage], Awaitable[Any]] = session.middleware.wrap_middlewares(
        cast(Any, lean))
    # Copied from a template without validation: the middlewares only name it, and the
    # request is ``lean``'s. (``model_construct`` would deep-copy aiogram's ``Default``
    # sentinels on every call: ten times the cost of a copy.)
    await send(bot, _SEND_MESSAGE.model_copy(
        update={"chat_id": chat_id, "text": text, "reply_markup": reply_markup}))


async def answer(message: Message, bot: Bot, text: str,
                 reply_markup: Markup | None = None) -> None:
    """``message.answer(text, reply_markup=…)``: a reply in the message's chat, on the lean
    path unless aiogram would add a topic or a business connection to it."""
    if message.is_topic_message or message.business_connection_id is not None:
        await message.answer(text, reply_markup=reply_markup)
        return
    await reply(bot, message.chat.id, text, reply_markup)
