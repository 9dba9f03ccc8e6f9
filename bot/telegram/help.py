"""/help: what the bot can do, and the hotline; the menu keyboard comes with it."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, or_f
from aiogram.types import Message

from bot.settings import Settings
from bot.telegram import keyboards
from bot.telegram.accounts import Policyholder
from bot.telegram.filters import MenuButton
from bot.telegram.i18n import Translator, company_name


async def show_help(message: Message, customer: Policyholder | None, t: Translator,
                    settings: Settings) -> None:
    menu = keyboards.main_menu(t) if customer is not None else keyboards.share_contact(t)
    await message.answer(t("tg_help", company=company_name(settings.company, t.lang),
                           hotline=settings.company.hotline), reply_markup=menu)


def get_router() -> Router:
    router = Router(name=__name__)
    router.message.register(show_help, or_f(Command("help"), MenuButton("tg_menu_help")))
    return router
