"""投诉 / /complaint / the 我要投诉 button: a complaint in three steps — the category, what it is
about (one of the customer's own policies or claims, or nothing in particular), the
description — then the reference and the due date at once (``bot.desk.complaints``).

Ids in the buttons prove nothing: the policy or claim picked is filed only if it is the
customer's own (``NotTheirs`` otherwise, answered like a stale button).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from aiogram import F, Router
from aiogram.filters import Command, StateFilter, or_f
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.desk.complaints import CATEGORIES, Filing, NotTheirs, due_day, file_complaint
from bot.settings import Settings
from bot.sms.keywords import normalise
from bot.telegram import keyboards
from bot.telegram.accounts import Policyholder
from bot.telegram.callbacks import ComplaintAction, ComplaintCb
from bot.telegram.context import LINKED
from bot.telegram.filters import Magic, MenuButton
from bot.telegram.i18n import Translator
from storage.models import Channel, Claim, Policy

log = logging.getLogger(__name__)
_WORDS = frozenset({"投诉", "我要投诉", "COMPLAINT", "COMPLAIN"})
_PICKS = 8  # the newest policies and claims offered


class ComplaintFlow(StatesGroup):
    category = State()
    subject = State()
    description = State()


def _button(text: str, cb: ComplaintCb) -> list[InlineKeyboardButton]:
    return [InlineKeyboardButton(text=text, callback_data=cb.pack())]


async def start(message: Message, t: Translator, state: FSMContext) -> None:
    await state.set_state(ComplaintFlow.category)
    rows = [_button(t(f"tg_complaint_category_{c}"),
                    ComplaintCb(action=ComplaintAction.CATEGORY, value=c)) for c in CATEGORIES]
    rows.append(_button(t("tg_button_cancel"), ComplaintCb(action=ComplaintAction.CANCEL)))
    await message.answer(t("tg_complaint_choose_category"),
                         reply_markup=InlineKeyboardMarkup(inline_keyboard=rows))


async def category_chosen(query: CallbackQuery, callback_data: ComplaintCb,
                          customer: Policyholder, t: Translator, state: FSMContext) -> None:
    if callback_data.value not in CATEGORIES:
        await query.answer(t("tg_button_expired"), show_alert=True)
        return
    await state.update_data(category=callback_data.value)
    await state.set_state(ComplaintFlow.subject)
    policies = await Policy.filter(customer_id=customer.id).order_by("-end_date").limit(_PICKS)
    claims = await Claim.filter(customer_id=customer.id).order_by("-reported_at").limit(_PICKS)
    rows = [_button(t("tg_complaint_about_claim", number=c.number),
                    ComplaintCb(action=ComplaintAction.CLAIM, id=c.id)) for c in claims]
    rows += [_button(t("tg_complaint_about_policy", plate=p.plate, number=p.number),
                     ComplaintCb(action=ComplaintAction.POLICY, id=p.id)) for p in policies]
    rows.append(_button(t("tg_complaint_about_nothing"),
                        ComplaintCb(action=ComplaintAction.NONE)))
    await query.answer()
    if query.message is not None:
        await query.message.answer(t("tg_complaint_choose_subject"),
                                   reply_markup=InlineKeyboardMarkup(inline_keyboard=rows))


async def subject_chosen(query: CallbackQuery, callback_data: ComplaintCb,
                         customer: Policyholder, t: Translator, state: FSMContext) -> None:
    action = callback_data.action
    if action is ComplaintAction.POLICY and not await Policy.filter(
            id=callback_data.id, customer_id=customer.id).exists():
        log.warning("complaint: policy %d is not customer %d's", callback_data.id, customer.id)
        await query.answer(t("tg_button_expired"), show_alert=True)
        return
    if action is ComplaintAction.CLAIM and not await Claim.filter(
            id=callback_data.id, customer_id=customer.id).exists():
        log.warning("complaint: claim %d is not customer %d's", callback_data.id, customer.id)
        await query.answer(t("tg_button_expired"), show_alert=True)
        return
    await state.update_data(
        policy_id=callback_data.id if action is ComplaintAction.POLICY else None,
        claim_id=callback_data.id if action is ComplaintAction.CLAIM else None)
    await state.set_state(ComplaintFlow.description)
    await query.answer()
    if query.message is not None:
        await query.message.answer(t("tg_complaint_describe"))


async def described(message: Message, customer: Policyholder, t: Translator,
                    state: FSMContext, settings: Settings,
                    clock: Callable[[], datetime]) -> None:
    data = await state.get_data()
    tz = settings.schedule.timezone
    try:
        complaint = await file_complaint(Filing(
            customer.id, Channel.TELEGRAM, str(data.get("category", "other")),
            message.text or "", data.get("policy_id"), data.get("claim_id")),
            now=clock(), settings=settings.complaints, timezone=tz)
    except NotTheirs:
        await state.clear()
        await message.answer(t("tg_button_expired"), reply_markup=keyboards.main_menu(t))
        return
    await state.clear()
    await message.answer(t("tg_complaint_received", reference=complaint.reference,
                           due=due_day(complaint, t.lang, tz)),
                         reply_markup=keyboards.main_menu(t))


async def cancel(query: CallbackQuery, t: Translator, state: FSMContext) -> None:
    await state.clear()
    await query.answer()
    if query.message is not None:
        await query.message.answer(t("tg_complaint_cancelled"), reply_markup=keyboards.main_menu(t))


async def _is_word(message: Message) -> bool:
    return message.text is not None and normalise(message.text) in _WORDS


def get_router() -> Router:
    router = Router(name=__name__)
    router.message.register(start, or_f(Command("complaint"), MenuButton("tg_menu_complaint"),
                                        _is_word), flags=LINKED)
    router.callback_query.register(cancel, ComplaintCb.filter(
        F.action == ComplaintAction.CANCEL))
    router.callback_query.register(category_chosen, StateFilter(ComplaintFlow.category),
                                   ComplaintCb.filter(F.action == ComplaintAction.CATEGORY),
                                   flags=LINKED)
    router.callback_query.register(
        subject_chosen, StateFilter(ComplaintFlow.subject),
        ComplaintCb.filter(F.action.in_({ComplaintAction.POLICY, ComplaintAction.CLAIM,
                                         ComplaintAction.NONE})), flags=LINKED)
    router.message.register(described, StateFilter(ComplaintFlow.description), Magic(F.text),
                            flags=LINKED)
    return router
