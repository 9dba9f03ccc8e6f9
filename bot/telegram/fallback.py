"""Whatever no feature took: a message goes to the sender's conversation (``bot.telegram.desk``:
recorded, then a pointer to the menu — or, unlinked, to linking — a hand-off to a person, or
silence while a person has it); a button press no handler understood (stale or malformed
callback data) gets a short alert — every callback query is answered, or the button's spinner
keeps turning."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aiogram import Router
from aiogram.types import CallbackQuery, Message

from bot.desk.threads import Desk
from bot.settings import Settings
from bot.telegram.accounts import Policyholder
from bot.telegram.desk import converse
from bot.telegram.i18n import Translator


async def anything_else(message: Message, customer: Policyholder | None, t: Translator,
                        desk: Desk, settings: Settings, clock: Callable[[], datetime]) -> None:
    await converse(message, customer, t, desk, settings, clock)


async def expired_button(query: CallbackQuery, t: Translator) -> None:
    await query.answer(t("tg_button_expired"), show_alert=True)


def get_router() -> Router:
    router = Router(name=__name__)
    router.message.register(anything_else)
    router.callback_query.register(expired_button)
    return router
