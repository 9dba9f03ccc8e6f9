"""The 1–5 buttons under a satisfaction survey (``bot.desk.surveys``): the first tap counts,
for the customer's own survey only; a low score is followed up by a person."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime

from aiogram import Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup

from bot.desk.surveys import SCORES, SURVEY_KIND, Answer, answer_button
from bot.telegram.accounts import Policyholder
from bot.telegram.callbacks import SurveyCb
from bot.telegram.context import LINKED
from bot.telegram.i18n import Translator


def survey_keyboard(kind: str, params: dict[str, object]) -> InlineKeyboardMarkup | None:
    """The 1-5 buttons under a satisfaction survey (the outbox row names the survey)."""
    survey = params.get("survey")
    if kind != SURVEY_KIND or not isinstance(survey, int):
        return None
    return InlineKeyboardMarkup(inline_keyboard=[[
        InlineKeyboardButton(text=str(n), callback_data=SurveyCb(survey=survey, score=n).pack())
        for n in SCORES]])


async def scored(query: CallbackQuery, callback_data: SurveyCb, customer: Policyholder,
                 t: Translator, clock: Callable[[], datetime]) -> None:
    if callback_data.score not in SCORES:
        await query.answer(t("tg_button_expired"), show_alert=True)
        return
    recorded = await answer_button(callback_data.survey, customer.id, callback_data.score,
                                   now=clock())
    if recorded.answer is Answer.NONE:
        await query.answer(t("tg_button_expired"), show_alert=True)
        return
    if recorded.answer is Answer.ALREADY:
        await query.answer(t("tg_survey_already"))
        return
    await query.answer()
    if query.message is not None:
        with contextlib.suppress(TelegramBadRequest):  # the buttons may be gone already
            await query.message.edit_reply_markup(reply_markup=None)  # type: ignore[union-attr]
        await query.message.answer(t("tg_survey_thanks_low" if recorded.low
                                     else "tg_survey_thanks"))


def get_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(scored, SurveyCb.filter(), flags=LINKED)
    return router
