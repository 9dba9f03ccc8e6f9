"""What the loyalty programme tells customers, always through the outbox.

Each producer builds an ``Outbound`` with a dedup key, so a replayed redemption, a re-run
job or a second process never queues a message twice. Params are plain display strings in
the customer's language (the templates live in ``bot/texts/loyalty.toml``); names of tiers
and rewards are picked here because the template cannot choose between them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta

from loyalty.codes import display
from loyalty.config import TierSettings
from loyalty.periods import utc, zone
from storage.loyalty_models import Reward, Voucher
from storage.models import Category, Customer, Language
from storage.outbox import Outbound, enqueue, enqueue_many

VOUCHER_ISSUED = "voucher_issued"
VOUCHER_USED = "voucher_used"
TIER_UPGRADE = "tier_upgrade"
POINTS_SUMMARY = "points_summary"
POINTS_EXPIRING = "points_expiring"


def is_english(language: str) -> bool:
    return language == Language.EN.value


def format_date(day: date, language: str) -> str:
    if is_english(language):
        return day.isoformat()
    return f"{day.year}年{day.month}月{day.day}日"


def format_time(moment: datetime, language: str, timezone: str) -> str:
    local = utc(moment).astimezone(zone(timezone))
    return f"{format_date(local.date(), language)} {local:%H:%M}"


def reward_name(reward: Reward, language: str) -> str:
    return reward.name_en if is_english(language) else reward.name_zh


def tier_name(tier: TierSettings, language: str) -> str:
    return tier.name_en if is_english(language) else tier.name_zh


def voucher_valid_until(voucher: Voucher, timezone: str) -> date:
    """The last local day a voucher may be used (it expires at the next local midnight)."""
    return (utc(voucher.expires_at).astimezone(zone(timezone)) - timedelta(microseconds=1)).date()


async def voucher_issued(voucher: Voucher, reward: Reward, customer: Customer, *,
                         now: datetime) -> None:
    lang = str(customer.language)
    await enqueue(Outbound(
        dedup_key=f"{VOUCHER_ISSUED}:{voucher.id}", kind=VOUCHER_ISSUED,
        category=Category.SERVICE, customer_id=customer.id, template_key=VOUCHER_ISSUED,
        not_before=utc(now),
        params={"reward": reward_name(reward, lang), "code": display(voucher.code),
                "expires": format_date(voucher_valid_until(voucher, customer.timezone), lang)},
    ))


async def voucher_used(voucher: Voucher, reward: Reward, customer: Customer, partner: str, *,
                       now: datetime) -> None:
    lang = str(customer.language)
    await enqueue(Outbound(
        dedup_key=f"{VOUCHER_USED}:{voucher.id}", kind=VOUCHER_USED, category=Category.SERVICE,
        customer_id=customer.id, template_key=VOUCHER_USED, not_before=utc(now),
        params={"reward": reward_name(reward, lang), "code": display(voucher.code),
                "time": format_time(now, lang, customer.timezone), "partner": partner},
    ))


async def tier_upgrade(customer: Customer, tier: TierSettings, *, now: datetime) -> None:
    lang = str(customer.language)
    day = utc(now).astimezone(zone(customer.timezone)).date()
    await enqueue(Outbound(
        dedup_key=f"{TIER_UPGRADE}:{customer.id}:{tier.code}:{day.isoformat()}",
        kind=TIER_UPGRADE, category=Category.SERVICE, customer_id=customer.id,
        template_key=TIER_UPGRADE, not_before=utc(now),
        params={"tier": tier_name(tier, lang), "multiplier": f"{tier.points_multiplier:g}"},
    ))


def points_summary(customer_id: int, language: str, day: date, points: int, balance: int, *,
                   now: datetime) -> Outbound:
    return Outbound(
        dedup_key=f"{POINTS_SUMMARY}:{customer_id}:{day.isoformat()}", kind=POINTS_SUMMARY,
        category=Category.CARE, customer_id=customer_id, template_key=POINTS_SUMMARY,
        not_before=utc(now), stale_after=utc(now) + timedelta(days=2),
        params={"date": format_date(day, language), "points": points, "balance": balance},
    )


def points_expiring(customer_id: int, language: str, expires_on: date, points: int, *,
                    now: datetime, stale_after: datetime) -> Outbound:
    return Outbound(
        dedup_key=f"{POINTS_EXPIRING}:{customer_id}:{expires_on.isoformat()}",
        kind=POINTS_EXPIRING, category=Category.CARE, customer_id=customer_id,
        template_key=POINTS_EXPIRING, not_before=utc(now), stale_after=stale_after,
        params={"points": points, "date": format_date(expires_on, language)},
    )


async def queue(items: Iterable[Outbound]) -> int:
    return await enqueue_many(items)
