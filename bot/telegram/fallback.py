"""Whatever no feature took: a pointer to the menu (or, unlinked, to linking), and for a
button press no handler understood (stale or malformed callback data) a short alert — every
callback query is answered, or the button's spinner keeps turning."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery, Message

from bot.telegram import keyboards
from bot.telegram.accounts import Policyholder
from bot.telegram.i18n import Translator


async def anything_else(message: Message, customer: Policyholder | None, t: Translator) -> None:
    if customer is None:
        await message.answer(t("tg_link_first"), reply_markup=keyboards.share_contact(t))
    else:
        await message.answer(t("tg_unknown_text"), reply_markup=keyboards.main_menu(t))


async def expired_button(query: CallbackQuery, t: Translator) -> None:
    await query.answer(t("tg_button_expired"), show_alert=True)


def get_router() -> Router:
    router = Router(name=__name__)
    router.message.register(anything_else)
    router.callback_query.register(expired_button)
    return router
