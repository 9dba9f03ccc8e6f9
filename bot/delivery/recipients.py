"""Loading what the dispatcher needs to decide, for a whole batch at once, and recording what
providers told us about a recipient (blocked, chat gone, opted out, invalid number)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from tortoise.expressions import Q
from tortoise.functions import Count

from bot.delivery.policy import CAPPED_CATEGORIES, Recipient
from storage import shared_phones
from storage.models import (
    Category,
    Channel,
    Consent,
    Customer,
    Message,
    MessageStatus,
    TelegramAccount,
)
from storage.suppressions import remember_number_choice

_COUNTED = (MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.UNKNOWN)


async def load_recipients(customer_ids: Iterable[int], *, now: datetime) -> dict[int, Recipient]:
    ids = sorted(set(customer_ids))
    if not ids:
        return {}
    customers = await Customer.filter(id__in=ids).values(
        "id", "phone", "phone_invalid_at", "language", "timezone"
    )
    chats: dict[int, int] = {}
    for row in await TelegramAccount.filter(
        Q(customer_id__in=ids) | Q(second_customer_id__in=ids), blocked_at__isnull=True,
        linked_at__isnull=False,
    ).order_by("linked_at").values("customer_id", "second_customer_id", "chat_id"):
        # a phone two customers share may link both to one chat
        for linked in (row["customer_id"], row["second_customer_id"]):
            if linked is not None:
                chats[linked] = row["chat_id"]
    held = await shared_phones.held({row["phone"] for row in customers})
    consents: dict[int, dict[tuple[str, str], bool]] = {}
    for row in await Consent.filter(customer_id__in=ids).order_by("created_at", "id").values(
        "customer_id", "channel", "category", "granted"
    ):
        consents.setdefault(row["customer_id"], {})[(row["channel"], str(row["category"]))] = (
            row["granted"]
        )
    recent: dict[int, int] = {}
    for row in (
        await Message.filter(
            customer_id__in=ids,
            category__in=list(CAPPED_CATEGORIES),
            status__in=list(_COUNTED),
            sent_at__gte=now - timedelta(days=7),
        )
        .annotate(n=Count("id"))
        .group_by("customer_id")
        .values("customer_id", "n")
    ):
        recent[row["customer_id"]] = row["n"]
    return {
        row["id"]: Recipient(
            customer_id=row["id"],
            phone=row["phone"],
            phone_valid=row["phone_invalid_at"] is None,
            language=str(row["language"]),
            timezone=row["timezone"],
            telegram_chat_id=chats.get(row["id"]),
            sms_held=row["phone"] in held,
            consents=consents.get(row["id"], {}),
            recent_capped=recent.get(row["id"], 0),
        )
        for row in customers
    }


def _linked(customer_id: int) -> Q:
    return Q(customer_id=customer_id) | Q(second_customer_id=customer_id)


async def mark_blocked(customer_id: int, chat_id: int, *, now: datetime) -> None:
    await TelegramAccount.filter(_linked(customer_id), chat_id=chat_id).update(blocked_at=now)


async def unlink_chat(customer_id: int, chat_id: int) -> None:
    await TelegramAccount.filter(_linked(customer_id), chat_id=chat_id).update(
        customer_id=None, second_customer_id=None, linked_at=None
    )


async def record_sms_opt_out(
    customer_id: int, categories: Iterable[str], *, source: str, now: datetime,
    reference: str = "",
) -> None:
    await Consent.bulk_create(
        [
            Consent(customer_id=customer_id, channel=Channel.SMS.value, category=Category(c),
                    granted=False, source=source, reference=reference[:64], created_at=now)
            for c in categories
        ]
    )


async def record_number_sms_opt_out(
    customer_id: int, categories: Iterable[str], *, source: str, reference: str, now: datetime
) -> None:
    """Twilio's 21610: the holder of ``customer_id``'s number told our sender STOP. Like an SMS
    STOP (``bot.sms.conversations``) it is the number's choice: remembered for the number
    (whoever gets it later inherits it) and the opt-out of every customer on it now."""
    categories = list(categories)
    customer = await Customer.get_or_none(id=customer_id).only("id", "phone")
    phone = customer.phone if customer is not None else None
    if not phone:
        await record_sms_opt_out(customer_id, categories, source=source, now=now,
                                 reference=reference)
        return
    await remember_number_choice(str(phone), categories, suppressed=True,
                                 channel=Channel.SMS.value, source=source, reference=reference,
                                 now=now)
    for on_number in await Customer.filter(phone=phone).only("id"):
        await record_sms_opt_out(on_number.id, categories, source=source, now=now,
                                 reference=reference)


async def mark_phone_invalid(customer_id: int, *, now: datetime) -> None:
    await Customer.filter(id=customer_id, phone_invalid_at__isnull=True).update(
        phone_invalid_at=now
    )
