"""Choices remembered by phone number: an SMS STOP from a number no customer has yet holds for
whoever has the number later.

A STOP or START by SMS is said by the holder of the number, not by a customer record: it is
written here (``remember_number_choice``) with the MessageSid that carried it, and becomes
the consent of every customer on that number — now, and when a customer with that number is
created later (``apply_number_opt_outs``, called by the CSV import and wherever else a
customer record is made).

The table is append-only; the newest row per (phone, channel, category) wins. A remembered
opt-out is applied as a ``Consent`` row with the opt-out's own time and source, and only
where the customer has no choice of their own for that channel and category made at that
time or later — so it is idempotent, and a customer's later START or Telegram switch still
wins. A row with channel ``*`` for every category (service included) is how a number that
must never get a message again is recorded; the dispatcher does not read this table itself.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from typing import NamedTuple

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient

from storage.models import Category, Consent, Customer, PhoneSuppression
from storage.sql import Statements


class _Remembered(NamedTuple):
    phone: str
    channel: str
    category: Category
    suppressed: bool
    source: str
    created_at: datetime


async def remember_number_choice(
    phone: str, categories: Iterable[str], *, suppressed: bool, channel: str, source: str,
    reference: str, now: datetime, conn: BaseDBAsyncClient | None = None,
) -> None:
    """Record that the holder of ``phone`` (E.164) opted out of (``suppressed``) or back into
    ``categories`` on ``channel``."""
    rows = [
        PhoneSuppression(phone=phone, channel=channel, category=Category(category),
                         suppressed=suppressed, source=source[:64], reference=reference[:64],
                         created_at=now)
        for category in categories
    ]
    if rows:
        await PhoneSuppression.bulk_create(rows, using_db=conn)


async def _in_force(db: BaseDBAsyncClient, phones: Collection[str]) -> list[_Remembered]:
    """The newest row per (phone, channel, category) of these numbers, where it suppresses."""
    rows = await Statements(db).select_in(
        PhoneSuppression, "phone", phones,
        ("phone", "channel", "category", "suppressed", "source", "created_at", "id"))
    newest: dict[tuple[str, str, str], _Remembered] = {}
    for row in sorted(rows, key=lambda r: (r[5], r[6])):
        remembered = _Remembered(str(row[0]), str(row[1]), Category(row[2]), bool(row[3]),
                                 str(row[4]), row[5])
        newest[(remembered.phone, remembered.channel, remembered.category)] = remembered
    return [r for r in newest.values() if r.suppressed]


async def apply_number_opt_outs(phones: Collection[str], *,
                                conn: BaseDBAsyncClient | None = None) -> int:
    """Give every customer on ``phones`` the opt-outs remembered for their number that are
    newer than their own choice for that channel and category. Returns the consents written.

    Call it with the phones of customers just created (in the creating transaction's
    ``conn``): one indexed read when nothing is remembered, which is nearly always.
    """
    db = conn or connections.get("default")
    in_force = await _in_force(db, set(phones))
    if not in_force:
        return 0
    on_number: dict[str, list[int]] = {}
    for cid, phone in await Customer.filter(
        phone__in={r.phone for r in in_force}
    ).using_db(db).values_list("id", "phone"):
        on_number.setdefault(str(phone), []).append(int(cid))
    ids = [cid for owners in on_number.values() for cid in owners]
    own_latest: dict[tuple[int, str, str], datetime] = {}
    for cid, channel, category, created_at in await Consent.filter(
        customer_id__in=ids
    ).using_db(db).values_list("customer_id", "channel", "category", "created_at"):
        key = (int(cid), str(channel), str(category))
        if key not in own_latest or created_at > own_latest[key]:
            own_latest[key] = created_at
    consents = [
        Consent(customer_id=cid, channel=r.channel, category=r.category, granted=False,
                source=r.source, created_at=r.created_at)
        for r in in_force for cid in on_number.get(r.phone, [])
        if (latest := own_latest.get((cid, r.channel, r.category.value))) is None
        or latest < r.created_at
    ]
    if consents:
        await Consent.bulk_create(consents, using_db=db)
    return len(consents)
