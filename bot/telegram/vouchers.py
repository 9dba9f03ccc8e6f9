"""/vouchers: each voucher's status, and cancelling an unused one (the points come back)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from aiogram import Bot, F, Router
from aiogram.filters import Command, or_f
from aiogram.types import CallbackQuery, Message

from bot.settings import Settings
from bot.telegram import keyboards
from bot.telegram.accounts import Policyholder
from bot.telegram.callbacks import VoucherAction, VoucherCb
from bot.telegram.context import LINKED
from bot.telegram.filters import MenuButton
from bot.telegram.i18n import Translator
from loyalty.codes import display
from loyalty.notifications import reward_name
from loyalty.vouchers import cancel_voucher, customer_vouchers
from storage.loyalty_models import Voucher, VoucherStatus

log = logging.getLogger(__name__)


async def list_vouchers(message: Message, customer: Policyholder, t: Translator,
                        clock: Callable[[], datetime]) -> None:
    views = await customer_vouchers(customer.id, now=clock())
    if not views:
        await message.answer(t("tg_vouchers_empty"))
        return
    lines = [t("tg_vouchers_header")]
    buttons = []
    for v in views:
        name = v.name_en if t.lang == "en" else v.name_zh
        lines.append(t("tg_voucher_line", name=name, code=v.code,
                       status=t(f"tg_voucher_status_{v.status}"), until=t.day(v.valid_until)))
        if v.status == VoucherStatus.ISSUED:
            buttons.append((v.id, t("tg_voucher_cancel_button", name=name, code=v.code)))
    await message.answer("\n".join(lines), reply_markup=keyboards.vouchers(buttons))


async def _own(query: CallbackQuery, bot: Bot, customer: Policyholder, t: Translator,
               voucher_id: int) -> Voucher | None:
    voucher = await Voucher.filter(id=voucher_id, customer_id=customer.id).select_related(
        "reward").first()
    if voucher is None:
        log.warning("voucher %d asked for by customer %d (telegram user %d): not theirs",
                    voucher_id, customer.id, query.from_user.id)
        await bot.send_message(query.from_user.id, t("tg_not_found"))
    return voucher


async def ask_cancel(query: CallbackQuery, callback_data: VoucherCb, bot: Bot,
                     customer: Policyholder, t: Translator) -> None:
    await query.answer()
    voucher = await _own(query, bot, customer, t, callback_data.id)
    if voucher is None:
        return
    await bot.send_message(query.from_user.id, t(
        "tg_voucher_cancel_confirm", name=reward_name(voucher.reward, t.lang),
        code=display(voucher.code), points=voucher.points_cost),
        reply_markup=keyboards.confirm_voucher_cancel(t, voucher.id))


async def cancel(query: CallbackQuery, callback_data: VoucherCb, bot: Bot, customer: Policyholder,
                 t: Translator, settings: Settings, clock: Callable[[], datetime]) -> None:
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_reply_markup(reply_markup=None)
    voucher = await _own(query, bot, customer, t, callback_data.id)
    if voucher is None:
        return
    cancelled = await cancel_voucher(customer.id, voucher.id, now=clock(),
                                     settings=settings.loyalty)
    await bot.send_message(query.from_user.id, t(
        "tg_voucher_cancelled", name=reward_name(voucher.reward, t.lang),
        points=cancelled.points_cost))


async def keep(query: CallbackQuery, bot: Bot, t: Translator) -> None:
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_reply_markup(reply_markup=None)
    await bot.send_message(query.from_user.id, t("tg_voucher_kept"))


def get_router() -> Router:
    router = Router(name=__name__)
    router.message.register(list_vouchers,
                            or_f(Command("vouchers"), MenuButton("tg_menu_vouchers")),
                            flags=LINKED)
    router.callback_query.register(ask_cancel, VoucherCb.filter(F.action == VoucherAction.ASK),
                                   flags=LINKED)
    router.callback_query.register(cancel, VoucherCb.filter(F.action == VoucherAction.CANCEL),
                                   flags=LINKED)
    router.callback_query.register(keep, VoucherCb.filter(F.action == VoucherAction.KEEP),
                                   flags=LINKED)
    return router
