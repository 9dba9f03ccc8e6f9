"""The customer's own city for weather notices: /settings → City (or ``/city 深圳``), then a
name to search (Chinese, English or code, as ``storage.regions`` reads them) and a button per
match. The choice is the customer's (``storage.choices``): no import changes it afterwards."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.telegram.accounts import Policyholder
from bot.telegram.callbacks import CityCb, SettingsAction, SettingsCb
from bot.telegram.context import LINKED
from bot.telegram.filters import Magic
from bot.telegram.i18n import Translator
from storage.choices import TELEGRAM, record_choice
from storage.models import Customer, Region
from storage.regions import Named, RegionNames, RegionNotFound

MATCHES = 8  # buttons offered for one search


class CityFlow(StatesGroup):
    name = State()


def _label(t: Translator, region: Named | Region) -> str:
    if t.lang == "en" and region.name_en:
        return str(region.name_en)
    return str(region.full_name or region.name)


async def _ask(bot: Bot, chat_id: int, customer: Policyholder, t: Translator,
               state: FSMContext) -> None:
    current = await Customer.get(id=customer.id).prefetch_related("region")
    city = _label(t, current.region) if current.region is not None else "—"
    await state.set_state(CityFlow.name)
    await bot.send_message(chat_id, t("tg_city_ask", city=city))


async def _search(message: Message, text: str, customer: Policyholder, t: Translator,
                  state: FSMContext, now: datetime) -> None:
    names = await RegionNames.load()
    try:
        await _set(message.bot, message.chat.id, customer, t, state,
                   names.get(names.resolve(text)), now)
        return
    except RegionNotFound:
        pass
    matches = names.search(text, limit=MATCHES) or [r for r in [names.nearest(text)] if r]
    if not matches:
        await message.answer(t("tg_city_none", text=text))
        return
    await message.answer(t("tg_city_choose"), reply_markup=InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=_label(t, r),
                                               callback_data=CityCb(region=r.id).pack())]
                         for r in matches]))


async def _set(bot: Bot | None, chat_id: int, customer: Policyholder, t: Translator,
               state: FSMContext, region: Named | Region, now: datetime) -> None:
    assert bot is not None
    await record_choice(customer.id, source=TELEGRAM, now=now, region_id=region.id)
    await state.clear()
    await bot.send_message(chat_id, t("tg_city_set", city=_label(t, region)))


async def city_command(message: Message, command: CommandObject, customer: Policyholder,
                       t: Translator, state: FSMContext, clock: Callable[[], datetime]) -> None:
    if command.args and command.args.strip():
        await _search(message, command.args.strip(), customer, t, state, clock())
    else:
        assert message.bot is not None
        await _ask(message.bot, message.chat.id, customer, t, state)


async def city_button(query: CallbackQuery, bot: Bot, customer: Policyholder, t: Translator,
                      state: FSMContext) -> None:
    await query.answer()
    await _ask(bot, query.from_user.id, customer, t, state)


async def city_name(message: Message, customer: Policyholder, t: Translator,
                    state: FSMContext, clock: Callable[[], datetime]) -> None:
    await _search(message, (message.text or "").strip()[:40], customer, t, state, clock())


async def choose(query: CallbackQuery, callback_data: CityCb, bot: Bot,
                 customer: Policyholder, t: Translator, state: FSMContext,
                 clock: Callable[[], datetime]) -> None:
    await query.answer()
    region = await Region.get_or_none(id=callback_data.region)
    if region is None:
        await bot.send_message(query.from_user.id, t("tg_not_found"))
        return
    await _set(bot, query.from_user.id, customer, t, state, region, clock())


def get_router() -> Router:
    router = Router(name=__name__)
    router.message.register(city_command, Command("city"), flags=LINKED)
    router.message.register(city_name, StateFilter(CityFlow.name), Magic(F.text),
                            Magic(~F.text.startswith("/")), flags=LINKED)
    router.callback_query.register(
        city_button, SettingsCb.filter(F.action == SettingsAction.CITY), flags=LINKED)
    router.callback_query.register(choose, CityCb.filter(), flags=LINKED)
    return router
