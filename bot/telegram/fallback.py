"""Whatever no feature took: a pointer to the menu (or, unlinked, to linking)."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import Message

from bot.telegram import keyboards
from bot.telegram.accounts import Policyholder
from bot.telegram.i18n import Translator


async def anything_else(message: Message, customer: Policyholder | None, t: Translator) -> None:
    if customer is None:
        await message.answer(t("tg_link_first"), reply_markup=keyboards.share_contact(t))
    else:
        await message.answer(t("tg_unknown_text"), reply_markup=keyboards.main_menu(t))


def get_router() -> Router:
    router = Router(name=__name__)
    router.message.register(anything_else)
    return router
