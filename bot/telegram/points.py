"""/points (balance, points expiring within 30 days, the last 10 entries, tier, progress to
the next tier and its benefits) and /checkin (once per customer-local day, with the streak)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aiogram import Bot, Router
from aiogram.filters import Command, or_f
from aiogram.types import Message

from bot.settings import Settings
from bot.telegram.accounts import Policyholder
from bot.telegram.context import LINKED
from bot.telegram.filters import MenuButton
from bot.telegram.i18n import Translator, format_money
from bot.telegram.replies import answer
from loyalty.config import TierSettings
from loyalty.earning import check_in
from loyalty.notifications import tier_name
from loyalty.overview import points_overview
from loyalty.periods import local_day, zone

EXPIRY_WINDOW_DAYS = 30
ENTRIES_SHOWN = 10


def benefits(t: Translator, tier: TierSettings) -> list[str]:
    lines = [t("tg_benefit_multiplier", multiplier=f"{tier.points_multiplier:g}")]
    if tier.free_car_washes_per_month:
        lines.append(t("tg_benefit_car_wash", count=tier.free_car_washes_per_month))
    if tier.designated_driving_per_year:
        lines.append(t("tg_benefit_driving", count=tier.designated_driving_per_year))
    if tier.free_annual_inspection:
        lines.append(t("tg_benefit_inspection"))
    if tier.maintenance_discount_percent:
        lines.append(t("tg_benefit_maintenance", percent=tier.maintenance_discount_percent))
    if tier.birthday_bonus:
        lines.append(t("tg_benefit_birthday", points=tier.birthday_bonus))
    return lines


async def show_points(message: Message, bot: Bot, customer: Policyholder, t: Translator,
                      settings: Settings, clock: Callable[[], datetime]) -> None:
    now = clock()
    tz = zone(customer.timezone)
    overview = await points_overview(customer.id, now=now, today=local_day(now, tz),
                                     expiring_days=EXPIRY_WINDOW_DAYS, entries=ENTRIES_SHOWN,
                                     settings=settings.loyalty)
    balance, status = overview.balance, overview.status
    expiring, entries = overview.expiring, overview.entries
    name = tier_name(status.tier, t.lang)
    lines = [t("tg_points_summary", balance=balance, tier=name)]
    lines += [t("tg_points_expiring", points=points, date=t.day(day)) for day, points in expiring]
    if not expiring:
        lines.append(t("tg_points_none_expiring"))
    lines.append(t("tg_points_benefits_header", tier=name))
    lines += benefits(t, status.tier)
    if status.next_tier is None:
        lines.append(t("tg_points_top_tier"))
    else:
        upcoming = tier_name(status.next_tier, t.lang)
        lines.append(t("tg_points_next_tier", tier=upcoming,
                       missing=format_money(status.missing_cents)))
        lines.append(t("tg_points_next_benefits_header", tier=upcoming))
        lines += benefits(t, status.next_tier)
    if entries:
        lines.append(t("tg_points_entries_header"))
        lines += [t("tg_points_entry", date=t.day(e.occurred_at.astimezone(tz).date()),
                    amount=f"{e.amount:+d}", kind=t(f"tg_entry_{e.kind}")) for e in entries]
    else:
        lines.append(t("tg_points_no_entries"))
    await answer(message, bot, "\n".join(lines))


async def checkin(message: Message, customer: Policyholder, t: Translator, settings: Settings,
                  clock: Callable[[], datetime]) -> None:
    result = await check_in(customer.id, now=clock(), settings=settings.loyalty)
    if not result.awarded:
        await message.answer(t("tg_checkin_already", streak=result.streak))
    elif result.bonus:
        await message.answer(t("tg_checkin_bonus", points=result.points, bonus=result.bonus,
                               streak=result.streak))
    else:
        await message.answer(t("tg_checkin_done", points=result.points, streak=result.streak))


def get_router() -> Router:
    router = Router(name=__name__)
    router.message.register(show_points, or_f(Command("points"), MenuButton("tg_menu_points")),
                            flags=LINKED)
    router.message.register(checkin, or_f(Command("checkin"), MenuButton("tg_menu_checkin")),
                            flags=LINKED)
    return router
