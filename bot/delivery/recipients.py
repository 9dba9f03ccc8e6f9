"""Loading what the dispatcher needs to decide, for a whole batch at once, and recording what
providers told us about a recipient (blocked, chat gone, opted out, invalid number)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from tortoise.expressions import Q

from bot.delivery.policy import CAPPED_CATEGORIES, Recipient
from storage.models import (
    Category,
    Channel,
    Consent,
    Customer,
    MessageStatus,
    TelegramAccount,
)
from storage.sql import Params, as_bool, current, fetch, in_list, is_postgres
from storage.suppressions import remember_number_choice

_COUNTED = (MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.UNKNOWN)


async def load_recipients(customer_ids: Iterable[int], *, now: datetime) -> dict[int, Recipient]:
    """Everything the policy decides on, for a whole batch in four statements (a hot path:
    ``bench.dispatch``)."""
    ids = sorted(set(customer_ids))
    if not ids:
        return {}
    conn = current()
    postgres = is_postgres(conn)

    def among(column: str) -> str:
        return in_list(column, ":ids", postgres=postgres, sql_type="bigint")

    customers = await fetch(
        conn,
        "SELECT c.id, c.phone, c.phone_invalid_at IS NULL AS phone_valid, c.language, "
        "c.timezone, EXISTS (SELECT 1 FROM shared_phone s WHERE s.phone = c.phone "
        "AND s.released_at IS NULL) AS held "
        f"FROM customer c WHERE {among('c.id')}", {"ids": ids})
    chats: dict[int, int] = {}
    for row in await fetch(
        conn,
        "SELECT customer_id, second_customer_id, chat_id FROM telegram_account "
        f"WHERE ({among('customer_id')} OR {among('second_customer_id')}) "
        "AND blocked_at IS NULL AND linked_at IS NOT NULL ORDER BY linked_at", {"ids": ids},
    ):
        # a phone two customers share may link both to one chat
        for linked in (row["customer_id"], row["second_customer_id"]):
            if linked is not None:
                chats[linked] = int(row["chat_id"])
    consents: dict[int, dict[tuple[str, str], bool]] = {}
    for row in await fetch(
        conn,
        "SELECT customer_id, channel, category, granted FROM consent "
        f"WHERE {among('customer_id')} ORDER BY created_at, id", {"ids": ids},
    ):
        consents.setdefault(row["customer_id"], {})[(row["channel"], row["category"])] = (
            as_bool(row["granted"]))
    params = Params(ids=ids, since=now - timedelta(days=7))
    capped = params.add_all(sorted(c.value for c in CAPPED_CATEGORIES))
    counted = params.add_all(s.value for s in _COUNTED)
    recent = {
        row["customer_id"]: int(row["n"])
        for row in await fetch(
            conn,
            "SELECT customer_id, COUNT(*) AS n FROM message "
            f"WHERE {among('customer_id')} AND category IN ({capped}) "
            f"AND status IN ({counted}) AND sent_at >= :since GROUP BY customer_id", params)
    }
    return {
        row["id"]: Recipient(
            customer_id=row["id"],
            phone=row["phone"],
            phone_valid=as_bool(row["phone_valid"]),
            language=row["language"],
            timezone=row["timezone"],
            telegram_chat_id=chats.get(row["id"]),
            sms_held=as_bool(row["held"]),
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
