"""Talking to a person: /agent, the 💬 联系客服 button (main menu, shown with /help), the
hand-off words (人工, 转人工, 客服, agent, human) and every other free text, recorded in the
customer's thread (``bot.desk``).

While a person has the conversation the bot says nothing to free text; commands and menu
buttons are other routers' and keep working. The fallback router hands free text here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aiogram import Router
from aiogram.filters import Command, or_f
from aiogram.types import Message, ReplyKeyboardMarkup

from bot.desk.threads import Desk, Outcome, Sender, Verdict
from bot.desk.wording import handoff_text
from bot.settings import Settings
from bot.sms.keywords import KEYWORDS, normalise
from bot.sms.keywords import Command as Keyword
from bot.telegram import keyboards
from bot.telegram.accounts import Policyholder
from bot.telegram.filters import MenuButton
from bot.telegram.i18n import Translator
from storage.desk_models import HandoffReason
from storage.models import Channel


def _sender(message: Message, customer: Policyholder | None) -> Sender:
    if customer is not None:
        return Sender.of_customer(customer.id)
    user_id = message.from_user.id if message.from_user else message.chat.id
    return Sender.of_telegram_user(user_id)


def _body(message: Message) -> str:
    """What the thread shows of a message: its text or caption, a sticker's emoji, a place."""
    if message.text or message.caption:
        return message.text or message.caption or ""
    if message.sticker is not None:
        return message.sticker.emoji or ""
    if message.location is not None:
        return f"{message.location.latitude:.5f},{message.location.longitude:.5f}"
    return ""


def _kind(message: Message) -> str:
    kind = message.content_type  # a ContentType (a str enum) in aiogram 3
    return str(getattr(kind, "value", kind))


def is_handoff_word(text: str | None) -> bool:
    return text is not None and KEYWORDS.get(normalise(text)) is Keyword.AGENT


def _answer(outcome: Outcome, customer: Policyholder | None, t: Translator,
            settings: Settings) -> tuple[str, ReplyKeyboardMarkup]:
    if customer is None:
        return t("tg_link_first"), keyboards.share_contact(t)
    if outcome.verdict is Verdict.HANDED_OFF:
        key, params = handoff_text(outcome, "tg_desk", t.lang, settings.schedule.timezone)
        return t(key, **params), keyboards.main_menu(t)
    return t("tg_unknown_text"), keyboards.main_menu(t)


async def converse(message: Message, customer: Policyholder | None, t: Translator,
                   desk: Desk, settings: Settings, clock: Callable[[], datetime],
                   handoff: HandoffReason | None = None) -> None:
    """Record the message in the thread and answer it — or not, while a person has it."""
    now = clock()
    if handoff is None and is_handoff_word(message.text):
        handoff = HandoffReason.KEYWORD
    outcome = await desk.inbound(_sender(message, customer), Channel.TELEGRAM, _body(message),
                                 kind=_kind(message), handoff=handoff, now=now)
    if outcome.verdict is Verdict.HELD:
        return
    text, markup = _answer(outcome, customer, t, settings)
    await message.answer(text, reply_markup=markup)
    await desk.bot_said(outcome.conversation_id, Channel.TELEGRAM, text, now=now)


async def ask_for_a_person(message: Message, customer: Policyholder | None, t: Translator,
                           desk: Desk, settings: Settings,
                           clock: Callable[[], datetime]) -> None:
    await converse(message, customer, t, desk, settings, clock, handoff=HandoffReason.BUTTON)


def get_router() -> Router:
    router = Router(name=__name__)
    router.message.register(ask_for_a_person,
                            or_f(Command("agent"), MenuButton("tg_menu_agent")))
    return router
