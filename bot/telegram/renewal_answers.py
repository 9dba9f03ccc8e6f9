"""Buttons under renewal reminders and lapse rescues, and what a tap does.

The dispatcher puts :func:`reminder_keyboard` under every ``renewal``, ``renewal_holiday`` and
``lapse_rescue`` message it sends by Telegram. The policy id in a button proves nothing: the
answer is applied only to the linked customer's own policies (``storage.renewal_desk``), and
is written once per reminder message and answer (``bot.renewal_answers``), so a double tap or a
redelivered update has no second effect.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from aiogram import Bot, F, Router
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup

from bot.renewal_answers import Answer, Result, answer, note_insurer
from bot.settings import Settings
from bot.telegram.accounts import Policyholder
from bot.telegram.callbacks import RenewalCb
from bot.telegram.context import LINKED
from bot.telegram.i18n import Translator
from bot.texts import Texts
from storage.renewal_desk import Reason

log = logging.getLogger(__name__)

REMINDER_KINDS = frozenset({"renewal", "renewal_holiday", "lapse_rescue"})
WHY = "why"
INSURER = "ins"
INSURERS = ("picc", "pingan", "cpic", "other")
"""Buttons after 已在其他公司续保: with whom (optional), kept as its Chinese name."""
_FIRST_ROW = (Answer.CALLBACK,)
_SECOND_ROW = (Answer.ELSEWHERE, Answer.NOT_RENEWING, Answer.SOLD)
_REPLIES = {Answer.CALLBACK: "tg_renewal_answer_callback_done",
            Answer.ELSEWHERE: "tg_renewal_answer_elsewhere_done",
            Answer.NOT_RENEWING: "tg_renewal_answer_not_renewing_done",
            Answer.SOLD: "tg_renewal_answer_sold_done"}


def reminder_keyboard(texts: Texts, language: str, kind: str,
                      params: dict[str, object]) -> InlineKeyboardMarkup | None:
    """The answer buttons under a reminder of ``kind``; None for other messages (and for
    rows queued before reminders named their policy)."""
    policy = params.get("policy_id")
    if kind not in REMINDER_KINDS or not isinstance(policy, int):
        return None

    def button(choice: Answer) -> InlineKeyboardButton:
        return InlineKeyboardButton(
            text=texts.render(f"tg_renewal_answer_{choice.name.lower()}", language, {}),
            callback_data=RenewalCb(answer=choice.value, policy=policy).pack())

    return InlineKeyboardMarkup(inline_keyboard=[
        [button(c) for c in _FIRST_ROW], [button(c) for c in _SECOND_ROW[:1]],
        [button(c) for c in _SECOND_ROW[1:]]])


def reasons_keyboard(t: Translator, policy: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[
        [InlineKeyboardButton(text=t(f"tg_renewal_reason_{reason.value}"),
                              callback_data=RenewalCb(answer=WHY, policy=policy,
                                                      reason=reason.value).pack())]
        for reason in Reason])


def insurers_keyboard(t: Translator, policy: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[
        [InlineKeyboardButton(text=t(f"tg_insurer_{code}"),
                              callback_data=RenewalCb(answer=INSURER, policy=policy,
                                                      reason=code).pack())
         for code in INSURERS]])


async def on_insurer(query: CallbackQuery, callback_data: RenewalCb, bot: Bot,
                     customer: Policyholder, t: Translator) -> None:
    await query.answer()
    if callback_data.reason not in INSURERS:
        return
    name = t.texts.render(f"tg_insurer_{callback_data.reason}", "zh-CN", {})
    if await note_insurer(customer.id, callback_data.policy, name):
        await bot.send_message(query.from_user.id, t("tg_renewal_insurer_noted"))


async def on_answer(query: CallbackQuery, callback_data: RenewalCb, bot: Bot,
                    customer: Policyholder, t: Translator, settings: Settings,
                    clock: Callable[[], datetime]) -> None:
    await query.answer()
    chat = query.from_user.id
    if callback_data.answer == Answer.NOT_RENEWING.value:
        await bot.send_message(chat, t("tg_renewal_answer_why"),
                               reply_markup=reasons_keyboard(t, callback_data.policy))
        return
    reason: Reason | None = None
    if callback_data.answer == WHY:
        if callback_data.reason not in {r.value for r in Reason}:
            return
        choice, reason = Answer.NOT_RENEWING, Reason(callback_data.reason)
    elif callback_data.answer in {a.value for a in Answer}:
        choice = Answer(callback_data.answer)
    else:
        return
    message_id = query.message.message_id if query.message else 0
    result = await answer(settings, customer.id, callback_data.policy, choice,
                          source="telegram", key=f"tg:{chat}:{message_id}", now=clock(),
                          reason=reason)
    if result is Result.SETTLED:
        await bot.send_message(chat, t("tg_renewal_answer_settled"))
    elif result is Result.ALREADY:
        await bot.send_message(chat, t("tg_renewal_answer_already"))
    elif choice is Answer.ELSEWHERE:  # with whom, if they care to say
        await bot.send_message(chat, t(_REPLIES[choice], hotline=settings.company.hotline),
                               reply_markup=insurers_keyboard(t, callback_data.policy))
    else:
        await bot.send_message(chat, t(_REPLIES[choice], hotline=settings.company.hotline))


def get_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(on_insurer, RenewalCb.filter(F.answer == INSURER),
                                   flags=LINKED)
    router.callback_query.register(on_answer, RenewalCb.filter(), flags=LINKED)
    return router
