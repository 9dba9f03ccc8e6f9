"""Per-update context: who is writing (their account and linked customer) and in which
language to answer. App-wide services are workflow data on the Dispatcher, not in here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.dispatcher.flags import get_flag
from aiogram.types import CallbackQuery, Chat, Message, TelegramObject, User

from bot.settings import Settings
from bot.telegram import keyboards
from bot.telegram.accounts import Conversation, Sender, conversation
from bot.telegram.i18n import Translator, guess_language
from bot.texts import Texts

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class ConversationContext(BaseMiddleware):
    """Outer middleware on ``dp.update``: puts ``account``, ``customer`` (or None), ``lang``
    and ``t`` into the handler data. The update feed usually read the account already
    (``conversation`` in the data, with the processed check); otherwise it is read here.

    An account row is created on a user's first update in a private chat; other chats
    (groups) get no account and no customer.
    """

    async def __call__(self, handler: Handler, event: TelegramObject,
                       data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        chat: Chat | None = data.get("event_chat")
        settings: Settings = data["settings"]
        texts: Texts = data["texts"]
        account = customer = None
        if user is not None and not user.is_bot and chat is not None and chat.type == "private":
            known: Conversation | None = data.get("conversation")  # read by the update feed
            if known is not None and known[0].telegram_user_id == user.id:
                account, customer = known
            else:
                account, customer = await conversation(Sender(
                    user.id, chat.id, user.username or "", user.language_code or ""))
        if customer is not None:
            lang = str(customer.language)
        else:
            code = account.language_code if account is not None else (
                user.language_code if user is not None else None)
            lang = guess_language(code, settings.company.default_language)
        data["account"] = account
        data["customer"] = customer
        data["lang"] = lang
        data["t"] = Translator(texts, lang)
        return await handler(event, data)


LINKED = {"linked": True}
"""Handler flag: the feature needs a linked customer (``router.message(..., flags=LINKED)``)."""


class LinkedOnly(BaseMiddleware):
    """Inner middleware on ``dp.message`` and ``dp.callback_query`` (so every router's
    handlers): a handler flagged ``LINKED`` runs only for a linked customer; anyone else is
    asked to link first, with the share-contact button."""

    async def __call__(self, handler: Handler, event: TelegramObject,
                       data: dict[str, Any]) -> Any:
        if not get_flag(data, "linked") or data.get("customer") is not None:
            return await handler(event, data)
        t: Translator = data["t"]
        bot: Bot = data["bot"]
        if isinstance(event, CallbackQuery):
            await event.answer()
            chat_id = event.from_user.id
        elif isinstance(event, Message):
            chat_id = event.chat.id
        else:
            return None
        await bot.send_message(chat_id, t("tg_link_first"), reply_markup=keyboards.share_contact(t))
        return None
