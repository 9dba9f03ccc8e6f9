"""/policies: the list (days to expiry, ≤ 30 highlighted), a policy's detail, and the renewal
call-back request that becomes an operator task."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime

from aiogram import Bot, F, Router
from aiogram.filters import Command, or_f
from aiogram.types import CallbackQuery, Message

from bot.settings import Settings
from bot.telegram import keyboards, lookups
from bot.telegram.accounts import Policyholder
from bot.telegram.callbacks import PolicyAction, PolicyCb
from bot.telegram.context import LINKED
from bot.telegram.filters import MenuButton
from bot.telegram.i18n import Translator, format_money
from bot.telegram.lookups import PolicyCard
from bot.telegram.replies import reply
from loyalty.periods import local_day, zone
from storage.models import PolicyStatus, Task, TaskStatus

log = logging.getLogger(__name__)

SOON_DAYS = 30
SHOWN = 10
RENEWAL_TASK = "renewal_callback"


def _today(customer: Policyholder, now: datetime) -> date:
    return local_day(now, zone(customer.timezone))


def policy_line(t: Translator, policy: PolicyCard, today: date) -> str:
    params = {"plate": policy.plate, "product": t(f"tg_product_{policy.product}"),
              "number": policy.number, "status": t(f"tg_policy_status_{policy.status}"),
              "expiry": t.day(policy.end_date)}
    days = (policy.end_date - today).days
    if policy.status != PolicyStatus.ACTIVE or days < 0:
        return t("tg_policy_line_ended", **params)
    key = "tg_policy_line_soon" if days <= SOON_DAYS else "tg_policy_line"
    return t(key, days=days, **params)


async def send_policies(bot: Bot, chat_id: int, customer: Policyholder, t: Translator,
                        settings: Settings, now: datetime) -> None:
    """The customer's current policies, a line and a button each."""
    # Superseded terms (renewed) are history; the current ones come first.
    policies = await lookups.policies(customer.id, limit=SHOWN,
                                      exclude_status=PolicyStatus.RENEWED)
    if not policies:
        await reply(bot, chat_id, t("tg_policies_empty", hotline=settings.company.hotline))
        return
    policies.sort(key=lambda p: (p.status != PolicyStatus.ACTIVE, p.end_date))
    today = _today(customer, now)
    lines = [t("tg_policies_header"), *(policy_line(t, p, today) for p in policies)]
    buttons = [(p.id, t("tg_policy_button", plate=p.plate, product=t(f"tg_product_{p.product}")))
               for p in policies]
    await reply(bot, chat_id, "\n".join(lines), keyboards.policies(buttons))


async def list_policies(message: Message, bot: Bot, customer: Policyholder, t: Translator,
                        settings: Settings, clock: Callable[[], datetime]) -> None:
    await send_policies(bot, message.chat.id, customer, t, settings, clock())


async def back_to_policies(query: CallbackQuery, bot: Bot, customer: Policyholder,
                           t: Translator, settings: Settings,
                           clock: Callable[[], datetime]) -> None:
    await query.answer()
    await send_policies(bot, query.from_user.id, customer, t, settings, clock())


def _coverage(t: Translator, coverage: object) -> str:
    if not isinstance(coverage, dict) or not coverage:
        return t("tg_coverage_none")
    lines = []
    for name, amount in coverage.items():
        item = str(name).removesuffix("_cents")
        label = t(f"tg_cover_{item}") if t.has(f"tg_cover_{item}") else item
        value = format_money(int(amount)) if isinstance(amount, int) else str(amount)
        lines.append(t("tg_coverage_line", item=label, amount=value))
    return "\n".join(lines)


async def _owned(query: CallbackQuery, bot: Bot, customer: Policyholder, t: Translator,
                 policy_id: int) -> PolicyCard | None:
    """The policy if it is this customer's; otherwise "not found" is answered and logged."""
    policy = await lookups.policy(customer.id, policy_id)
    if policy is None:
        log.warning("policy %d asked for by customer %d (telegram user %d): not theirs",
                    policy_id, customer.id, query.from_user.id)
        await query.answer()
        await bot.send_message(query.from_user.id, t("tg_not_found"))
    return policy


async def show_policy(query: CallbackQuery, callback_data: PolicyCb, bot: Bot,
                      customer: Policyholder, t: Translator) -> None:
    policy = await _owned(query, bot, customer, t, callback_data.id)
    if policy is None:
        return
    await query.answer()
    text = t("tg_policy_detail", number=policy.number, product=t(f"tg_product_{policy.product}"),
             plate=policy.plate, vehicle=policy.vehicle or "—",
             status=t(f"tg_policy_status_{policy.status}"), start=t.day(policy.start_date),
             end=t.day(policy.end_date), premium=format_money(policy.premium_cents),
             coverage=_coverage(t, policy.coverage))
    renewable = policy.status in (PolicyStatus.ACTIVE, PolicyStatus.EXPIRED)
    await bot.send_message(query.from_user.id, text,
                           reply_markup=keyboards.policy_detail(t, policy.id,
                                                                renewable=renewable))


async def request_renewal(query: CallbackQuery, callback_data: PolicyCb, bot: Bot,
                          customer: Policyholder, t: Translator) -> None:
    policy = await _owned(query, bot, customer, t, callback_data.id)
    if policy is None:
        return
    await query.answer()
    # One open request per policy: a second tap (or a redelivered update) adds nothing.
    pending = await Task.filter(kind=RENEWAL_TASK, policy_id=policy.id,
                                status__in=[TaskStatus.OPEN, TaskStatus.ASSIGNED]).exists()
    if pending:
        await bot.send_message(query.from_user.id, t("tg_renewal_already", plate=policy.plate))
        return
    task = await Task.create(kind=RENEWAL_TASK, customer_id=customer.id, policy_id=policy.id,
                             source="telegram")
    log.info("renewal call-back task %d for policy %d", task.id, policy.id)
    await bot.send_message(query.from_user.id, t("tg_renewal_requested", plate=policy.plate))


def get_router() -> Router:
    router = Router(name=__name__)
    router.message.register(list_policies,
                            or_f(Command("policies"), MenuButton("tg_menu_policies")),
                            flags=LINKED)
    router.callback_query.register(show_policy, PolicyCb.filter(F.action == PolicyAction.SHOW),
                                   flags=LINKED)
    router.callback_query.register(request_renewal,
                                   PolicyCb.filter(F.action == PolicyAction.RENEWAL), flags=LINKED)
    router.callback_query.register(back_to_policies,
                                   PolicyCb.filter(F.action == PolicyAction.LIST), flags=LINKED)
    return router
