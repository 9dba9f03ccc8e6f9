"""/start (with the ``ref_<code>`` deep link), linking by the shared contact, the SMS code for
re-linking, the policy number for a phone several customers share, /switch between the two
customers of a shared phone, and /unlink."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject, CommandStart, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message, ReplyKeyboardRemove

from bot.settings import Settings
from bot.telegram import accounts, keyboards
from bot.telegram.accounts import Account, CodeOutcome, LinkOutcome, Policyholder, Sender
from bot.telegram.callbacks import UnlinkCb
from bot.telegram.context import LINKED
from bot.telegram.filters import Magic
from bot.telegram.i18n import Translator, company_name
from bot.texts import Texts
from loyalty.earning import link_referrer
from loyalty.errors import NotEligible
from storage.models import Customer

log = logging.getLogger(__name__)

REFERRAL_PREFIX = "ref_"


class LinkFlow(StatesGroup):
    code = State()
    policy = State()  # a shared phone: which customer? (the number is in the state data)


def contact_phone(raw: str) -> str:
    """A shared contact's number as international: Telegram always gives the country code,
    though not always the "+" (``85291234567``). Read in the company's default region, that
    Hong Kong number would be no valid mainland one."""
    text = raw.strip()
    return text if text.startswith("+") else f"+{text}"


def _sender(message: Message) -> Sender:
    user = message.from_user
    assert user is not None  # private-chat messages always have a sender
    return Sender(user.id, message.chat.id, user.username or "", user.language_code or "")


async def start(message: Message, command: CommandObject, state: FSMContext,
                customer: Policyholder | None, t: Translator, settings: Settings) -> None:
    company = company_name(settings.company, t.lang)
    if customer is not None:
        await message.answer(t("tg_welcome_back", name=customer.name, company=company),
                             reply_markup=keyboards.main_menu(t))
        return
    payload = command.args or ""
    if payload.startswith(REFERRAL_PREFIX):
        await state.update_data(referral=payload.removeprefix(REFERRAL_PREFIX)[:16])
    await message.answer(t("tg_welcome_unlinked", company=company),
                         reply_markup=keyboards.share_contact(t))


async def _linked(message: Message, state: FSMContext, customer: Customer,
                  texts: Texts, second: Customer | None = None) -> None:
    """After a successful link: the referral from the deep link, then the menu, in the
    customer's own language."""
    t = Translator(texts, str(customer.language))
    referral = (await state.get_data()).get("referral")
    await state.clear()
    text = (t("tg_link_done", name=customer.name) if second is None else
            t("tg_link_done_shared", name=customer.name, other=second.name))
    await message.answer(text, reply_markup=keyboards.main_menu(t))
    if referral:
        try:
            await link_referrer(customer.id, referral)
        except NotEligible as refusal:
            log.info("referral for customer %d not recorded: %s", customer.id, refusal.reason)
        else:
            await message.answer(t("tg_referral_recorded"))


async def contact(message: Message, state: FSMContext, t: Translator, texts: Texts,
                  settings: Settings, clock: Callable[[], datetime]) -> None:
    shared = message.contact
    assert shared is not None  # the F.contact filter
    result = await accounts.link_by_contact(
        _sender(message), contact_user_id=shared.user_id, phone=contact_phone(shared.phone_number),
        default_region=settings.company.default_phone_region, now=clock(),
        attempts_per_hour=settings.telegram.link_attempts_per_hour,
        require_code=settings.telegram.relink_sms_code and settings.twilio.enabled)
    await _answer_link(message, state, result, t, texts, settings)


async def _answer_link(message: Message, state: FSMContext, result: accounts.LinkResult,
                       t: Translator, texts: Texts, settings: Settings) -> None:
    hotline = settings.company.hotline
    match result.outcome:
        case LinkOutcome.LINKED:
            assert result.customer is not None
            await _linked(message, state, result.customer, texts, result.second)
        case LinkOutcome.ASK_POLICY:
            await state.set_state(LinkFlow.policy)
            await state.update_data(phone=result.phone)
            await message.answer(t("tg_link_ask_policy"), reply_markup=ReplyKeyboardRemove())
        case LinkOutcome.WRONG_POLICY:
            await message.answer(t("tg_link_wrong_policy", hotline=hotline))
        case LinkOutcome.ALREADY_LINKED:
            assert result.customer is not None
            await message.answer(t("tg_link_already", name=result.customer.name),
                                 reply_markup=keyboards.main_menu(t))
        case LinkOutcome.CODE_SENT:
            await state.set_state(LinkFlow.code)
            await state.update_data(code_id=result.code_id)
            await message.answer(t("tg_link_code_sent", phone=result.masked_phone),
                                 reply_markup=ReplyKeyboardRemove())
        case LinkOutcome.NOT_OWN_CONTACT:
            await message.answer(t("tg_link_not_own_contact"),
                                 reply_markup=keyboards.share_contact(t))
        case LinkOutcome.INVALID_PHONE:
            await message.answer(t("tg_link_invalid_phone", hotline=hotline))
        case LinkOutcome.NO_MATCH:
            await message.answer(t("tg_link_no_match", hotline=hotline))
        case LinkOutcome.RATE_LIMITED:
            await message.answer(t("tg_link_rate_limited", hotline=hotline))


async def code(message: Message, state: FSMContext, t: Translator, texts: Texts,
               clock: Callable[[], datetime]) -> None:
    code_id = (await state.get_data()).get("code_id")
    typed = message.text or ""
    result = await accounts.confirm_code(_sender(message), int(code_id or 0), typed, now=clock())
    match result.outcome:
        case CodeOutcome.LINKED:
            assert result.customer is not None
            await _linked(message, state, result.customer, texts)
        case CodeOutcome.WRONG:
            await message.answer(t("tg_link_code_wrong", tries=result.tries_left))
        case CodeOutcome.EXPIRED:
            await state.set_state(None)
            await message.answer(t("tg_link_code_expired"),
                                 reply_markup=keyboards.share_contact(t))


async def code_prompt(message: Message, t: Translator) -> None:
    await message.answer(t("tg_link_code_prompt"))


async def policy_number(message: Message, state: FSMContext, t: Translator, texts: Texts,
                        settings: Settings, clock: Callable[[], datetime]) -> None:
    """The policy number asked for after sharing a phone several customers have."""
    phone = str((await state.get_data()).get("phone") or "")
    if not phone:
        await state.set_state(None)
        await message.answer(t("tg_welcome_unlinked", company=company_name(settings.company,
                                                                           t.lang)),
                             reply_markup=keyboards.share_contact(t))
        return
    result = await accounts.link_by_policy(
        _sender(message), phone=phone, number=(message.text or "")[:40], now=clock(),
        attempts_per_hour=settings.telegram.link_attempts_per_hour,
        require_code=settings.telegram.relink_sms_code and settings.twilio.enabled)
    if result.outcome is LinkOutcome.RATE_LIMITED:
        await state.set_state(None)
    await _answer_link(message, state, result, t, texts, settings)


async def switch(message: Message, account: Account | None, texts: Texts,
                 t: Translator) -> None:
    """Act for the other customer of a shared phone linked to this chat."""
    other = await accounts.switch(account) if account is not None else None
    if other is None:
        await message.answer(t("tg_switch_single"))
        return
    theirs = Translator(texts, str(other.language))
    await message.answer(theirs("tg_switch_done", name=other.name),
                         reply_markup=keyboards.main_menu(theirs))


async def unlink(message: Message, t: Translator) -> None:
    await message.answer(t("tg_unlink_confirm"), reply_markup=keyboards.confirm_unlink(t))


async def unlink_answer(query: CallbackQuery, callback_data: UnlinkCb, bot: Bot,
                        t: Translator, state: FSMContext) -> None:
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_reply_markup(reply_markup=None)
    if not callback_data.confirm:
        await bot.send_message(query.from_user.id, t("tg_unlink_kept"))
        return
    await accounts.unlink(query.from_user.id)
    await state.clear()
    log.info("telegram user %d unlinked", query.from_user.id)
    await bot.send_message(query.from_user.id, t("tg_unlink_done"),
                           reply_markup=keyboards.share_contact(t))


def get_router() -> Router:
    router = Router(name=__name__)
    router.message.register(start, CommandStart())
    router.message.register(contact, Magic(F.contact))
    router.message.register(code, StateFilter(LinkFlow.code),
                            Magic(F.text.regexp(r"^\s*\d{4,8}\s*$")))
    router.message.register(code_prompt, StateFilter(LinkFlow.code), Magic(F.text),
                            Magic(~F.text.startswith("/")))
    router.message.register(policy_number, StateFilter(LinkFlow.policy), Magic(F.text),
                            Magic(~F.text.startswith("/")))
    router.message.register(switch, Command("switch"), flags=LINKED)
    router.message.register(unlink, Command("unlink"), flags=LINKED)
    router.callback_query.register(unlink_answer, UnlinkCb.filter(), flags=LINKED)
    return router
