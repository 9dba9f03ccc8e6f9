"""/rewards: what this customer may redeem now (tier, stock, limits) with the cost, and the
redemption after a confirmation. Refusals by the loyalty services (not enough points, out of
stock, limit reached) are answered by the error router."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aiogram import Bot, F, Router
from aiogram.filters import Command, or_f
from aiogram.types import CallbackQuery, Message

from bot.settings import Settings
from bot.telegram import keyboards
from bot.telegram.accounts import Policyholder
from bot.telegram.callbacks import RewardAction, RewardCb
from bot.telegram.context import LINKED
from bot.telegram.filters import MenuButton
from bot.telegram.i18n import Translator
from loyalty.codes import display
from loyalty.ledger import get_balance
from loyalty.notifications import reward_name, voucher_valid_until
from loyalty.rewards import Offer, get_reward, offers_for
from loyalty.vouchers import redeem

_REASONS = {
    "tier": "tg_reason_tier",
    "insufficient_points": "tg_reason_insufficient_points",
    "out_of_stock": "tg_reason_out_of_stock",
    "limit_reached": "tg_reason_limit_reached",
}


def offer_name(t: Translator, offer: Offer) -> str:
    return offer.name_en if t.lang == "en" else offer.name_zh


def reason(t: Translator, blocked: str) -> str:
    return t(_REASONS.get(blocked, "tg_reason_unavailable"))


def _remaining(offer: Offer) -> int | str:
    return offer.remaining if offer.remaining is not None else "∞"


def _button(t: Translator, offer: Offer) -> str:
    if offer.entitlement:
        return t("tg_reward_button_free", name=offer_name(t, offer), remaining=_remaining(offer))
    return t("tg_reward_button", name=offer_name(t, offer), cost=offer.points_cost)


def _line(t: Translator, offer: Offer) -> str:
    """What a redeemable offer costs, in the screen's text (the buttons only act on it)."""
    if offer.entitlement:
        return t("tg_reward_available_line_free", name=offer_name(t, offer),
                 remaining=_remaining(offer))
    return t("tg_reward_available_line", name=offer_name(t, offer), cost=offer.points_cost)


async def list_rewards(message: Message, customer: Policyholder, t: Translator,
                       settings: Settings, clock: Callable[[], datetime]) -> None:
    offers = await offers_for(customer.id, now=clock(), settings=settings.loyalty)
    balance = await get_balance(customer.id)
    available = [o for o in offers if o.blocked is None]
    blocked = [o for o in offers if o.blocked is not None]
    lines = [t("tg_rewards_header", balance=balance)]
    lines += [_line(t, o) for o in available] or [t("tg_rewards_none_available")]
    if blocked:
        lines.append(t("tg_rewards_unavailable_header"))
        lines += [t("tg_reward_unavailable_line", name=offer_name(t, o),
                    reason=reason(t, o.blocked or "")) for o in blocked]
    if available:
        lines.append(t("tg_rewards_tap"))
    await message.answer("\n".join(lines), reply_markup=keyboards.rewards(
        (o.reward_code, o.entitlement, _button(t, o)) for o in available))


async def ask(query: CallbackQuery, callback_data: RewardCb, bot: Bot, customer: Policyholder,
              t: Translator, settings: Settings, clock: Callable[[], datetime]) -> None:
    await query.answer()
    offers = await offers_for(customer.id, now=clock(), settings=settings.loyalty)
    offer = next((o for o in offers if o.reward_code == callback_data.code
                  and o.entitlement == callback_data.free), None)
    if offer is None:
        await bot.send_message(query.from_user.id, t("tg_not_found"))
        return
    if offer.blocked is not None:
        await bot.send_message(query.from_user.id, t("tg_reward_unavailable_line",
                                                     name=offer_name(t, offer),
                                                     reason=reason(t, offer.blocked)))
        return
    if offer.entitlement:
        text = t("tg_reward_confirm_free", name=offer_name(t, offer))
    else:
        balance = await get_balance(customer.id)
        text = t("tg_reward_confirm", name=offer_name(t, offer), cost=offer.points_cost,
                 balance=balance - offer.points_cost)
    await bot.send_message(query.from_user.id, text, reply_markup=keyboards.confirm_reward(
        t, offer.reward_code, offer.entitlement))


async def confirm(query: CallbackQuery, callback_data: RewardCb, bot: Bot, customer: Policyholder,
                  t: Translator, settings: Settings, clock: Callable[[], datetime]) -> None:
    """The redemption, confirmed here, in the chat, once: no outbox notice follows it, and a
    second tap on the same prompt only gets a short note pointing to /vouchers."""
    # The confirmation message is the request: tapping it twice redeems once.
    prompt = query.message.message_id if isinstance(query.message, Message) else query.id
    redemption = await redeem(customer.id, callback_data.code,
                              request_key=f"telegram:{query.from_user.id}:{prompt}",
                              now=clock(), settings=settings.loyalty,
                              entitlement=callback_data.free, notify=False)
    if redemption.replayed:
        await query.answer(t("tg_reward_already_redeemed"))
        return
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_reply_markup(reply_markup=None)
    voucher = redemption.voucher
    reward = await get_reward(callback_data.code)
    await bot.send_message(query.from_user.id, t(
        "tg_reward_redeemed", name=reward_name(reward, t.lang), code=display(voucher.code),
        expires=t.day(voucher_valid_until(voucher, customer.timezone))))


async def cancel(query: CallbackQuery, bot: Bot, t: Translator) -> None:
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_reply_markup(reply_markup=None)
    await bot.send_message(query.from_user.id, t("tg_reward_cancelled"))


def get_router() -> Router:
    router = Router(name=__name__)
    router.message.register(list_rewards,
                            or_f(Command("rewards"), MenuButton("tg_menu_rewards")), flags=LINKED)
    router.callback_query.register(ask, RewardCb.filter(F.action == RewardAction.ASK),
                                   flags=LINKED)
    router.callback_query.register(confirm, RewardCb.filter(F.action == RewardAction.REDEEM),
                                   flags=LINKED)
    router.callback_query.register(cancel, RewardCb.filter(F.action == RewardAction.CANCEL),
                                   flags=LINKED)
    return router
