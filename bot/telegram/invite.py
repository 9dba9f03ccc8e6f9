"""/invite: the customer's personal deep link and how many referrals have succeeded."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, or_f
from aiogram.types import Message

from bot.telegram.accounts import Policyholder
from bot.telegram.context import LINKED
from bot.telegram.filters import MenuButton
from bot.telegram.i18n import Translator
from bot.telegram.linking import REFERRAL_PREFIX
from loyalty.earning import referral_count


def invite_link(bot_username: str, referral_code: str) -> str:
    return f"https://t.me/{bot_username}?start={REFERRAL_PREFIX}{referral_code}"


async def invite(message: Message, customer: Policyholder, t: Translator,
                 bot_username: str) -> None:
    count = await referral_count(customer.id)
    await message.answer(t("tg_invite", link=invite_link(bot_username, customer.referral_code),
                           count=count))


def get_router() -> Router:
    router = Router(name=__name__)
    router.message.register(invite, or_f(Command("invite"), MenuButton("tg_menu_invite")),
                            flags=LINKED)
    return router
