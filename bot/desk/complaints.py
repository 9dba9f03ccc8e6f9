"""Complaints (投诉) on the regulator's clock: filing, the reference, the due date.

The 2020 banking and insurance complaint rules: a decision within ``decision_days`` (15)
calendar days of receipt, ``extended_days`` (30) for a complex case, a further
``further_days`` (30) with approval. A due date is the end of that local day in the insurer's
time zone; a complaint closed by then was decided within the deadline.

References read ``TS<local date of receipt>-<number of the day>``: ``TS20261204-0001``. Two
complaints filed at once on one day may both compute the same next number; the unique key
makes one of them take the following one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from bot.desk.wording import EN_MONTHS
from bot.settings import ComplaintSettings
from storage.desk_models import Complaint
from storage.models import Channel, Claim, Policy

CATEGORIES = ("claims", "renewal_pricing", "sales_conduct", "service_attitude", "privacy",
              "other")
_TRIES = 5


class NotTheirs(Exception):
    """The policy or claim named is not the complaining customer's own."""


@dataclass(frozen=True, slots=True)
class Filing:
    customer_id: int
    channel: Channel
    category: str
    description: str = ""
    policy_id: int | None = None
    claim_id: int | None = None
    staff_complained: str = ""
    conversation_id: int | None = None


def due_at(received: datetime, days: int, timezone: str) -> datetime:
    """The last moment of the local day ``days`` calendar days after ``received``."""
    tz = ZoneInfo(timezone)
    day: date = received.astimezone(tz).date() + timedelta(days=days)
    return datetime.combine(day, time(23, 59, 59), tzinfo=tz)


def days_for(extension: int, settings: ComplaintSettings) -> int:
    if extension <= 0:
        return settings.decision_days
    if extension == 1:
        return settings.extended_days
    return settings.extended_days + settings.further_days


async def _check_own(filing: Filing) -> None:
    if filing.policy_id is not None and not await Policy.filter(
            id=filing.policy_id, customer_id=filing.customer_id).exists():
        raise NotTheirs(f"policy {filing.policy_id} is not customer {filing.customer_id}'s")
    if filing.claim_id is not None and not await Claim.filter(
            id=filing.claim_id, customer_id=filing.customer_id).exists():
        raise NotTheirs(f"claim {filing.claim_id} is not customer {filing.customer_id}'s")


async def file_complaint(filing: Filing, *, now: datetime, settings: ComplaintSettings,
                         timezone: str) -> Complaint:
    """Record a complaint received ``now``: its reference and due date are set."""
    if filing.category not in CATEGORIES:
        raise ValueError(f"unknown complaint category {filing.category!r}")
    await _check_own(filing)
    prefix = f"TS{now.astimezone(ZoneInfo(timezone)):%Y%m%d}-"
    for _ in range(_TRIES):
        number = await Complaint.filter(reference__startswith=prefix).count() + 1
        try:
            async with in_transaction():
                return await Complaint.create(
                    reference=f"{prefix}{number:04d}", customer_id=filing.customer_id,
                    conversation_id=filing.conversation_id, channel=filing.channel,
                    category=filing.category, policy_id=filing.policy_id,
                    claim_id=filing.claim_id, description=filing.description[:4000],
                    staff_complained=filing.staff_complained.strip()[:64], received_at=now,
                    due_at=due_at(now, settings.decision_days, timezone))
        except IntegrityError:
            continue  # another complaint took this number: count again
    raise RuntimeError(f"no free complaint reference after {prefix} in {_TRIES} tries")


def due_day(complaint: Complaint, language: str, timezone: str) -> str:
    """``12月19日`` or ``19 Dec``: when the customer will have the decision."""
    local = complaint.due_at.astimezone(ZoneInfo(timezone))
    if language == "en":
        return f"{local.day} {EN_MONTHS[local.month - 1]}"
    return f"{local.month}月{local.day}日"
