"""Phone numbers that three or more customers have: flagged, held, released by an operator.

A family may share a phone; three or more policyholders on one number is more often a
salesperson who put their own number on customers' policies (the customer-service rules ask for
exactly this check). Such a number gets a ``shared_phone`` row: care and marketing SMS to it are
held (the dispatcher skips them with reason ``shared_phone``; service messages, such as claim
updates and link codes, still go) until an operator looks into it and releases the number as
really the customers' own. Fixing the numbers in the core system and importing them again
brings the count under three, and the row goes away by itself. A new customer on a released
number flags it again.

Whoever adds customers to a number or moves one to another number calls ``apply_counts`` (the
import, which knows the counts of its batch) or ``recount`` in the same transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.functions import Count

from storage.identity import mask_name
from storage.models import Customer, SharedPhone
from storage.phones import mask_phone
from storage.sql import Statements

SHARED_AT = 3
"""Customers on one number from which it is flagged."""


class UnknownSharedPhone(LookupError):
    """No flagged number with that id."""


async def apply_counts(conn: BaseDBAsyncClient, counts: Mapping[str, tuple[int, int]],
                       now: datetime) -> None:
    """``counts``: phone → (customers before, customers now) for every number whose count
    changed. Only numbers at or over ``SHARED_AT`` before or after need a look."""
    phones = {phone for phone, (before, after) in counts.items()
              if max(before, after) >= SHARED_AT}
    if not phones:
        return
    statements = Statements(conn)
    stamp = statements.stored(now)
    rows = {row[1]: row for row in await statements.select_in(
        SharedPhone, "phone", phones, ("id", "phone", "customers", "released_at"))}
    fresh: list[list[object]] = []
    counted: list[list[object]] = []  # customers, id
    flagged: list[list[object]] = []  # customers, flagged_at, released_at, released_by, id
    gone: list[int] = []
    for phone in phones:
        after = counts[phone][1]
        row = rows.get(phone)
        if after < SHARED_AT:
            if row is not None:
                gone.append(row[0])
        elif row is None:
            fresh.append([phone, after, stamp, ""])
        elif after > row[2] and row[3] is not None:  # someone new on a released number
            flagged.append([after, stamp, None, "", row[0]])
        elif after != row[2]:
            counted.append([after, row[0]])
    await statements.insert(SharedPhone, ("phone", "customers", "flagged_at", "released_by"),
                            fresh)
    await statements.update(SharedPhone, ("customers",), counted)
    await statements.update(
        SharedPhone, ("customers", "flagged_at", "released_at", "released_by"), flagged)
    if gone:
        await SharedPhone.filter(id__in=gone).using_db(conn).delete()


async def recount(phones: Collection[str], now: datetime, *,
                  before: Mapping[str, int] | None = None,
                  conn: BaseDBAsyncClient | None = None) -> None:
    """Count the customers on ``phones`` now and bring their flags up to date (for callers
    that add a customer one at a time). ``before`` defaults to "unknown", which re-reads
    every flag of these numbers."""
    if not phones:
        return
    conn = conn or connections.get("default")
    found = dict(await Customer.filter(phone__in=list(phones)).using_db(conn)
                 .annotate(n=Count("id")).group_by("phone").values_list("phone", "n"))
    await apply_counts(conn, {
        phone: ((before or {}).get(phone, SHARED_AT), int(found.get(phone, 0)))
        for phone in phones}, now)


async def is_held(phone: str) -> bool:
    return await SharedPhone.exists(phone=phone, released_at__isnull=True)


@dataclass(frozen=True, slots=True)
class Flag:
    """A flagged number as the console lists it: masked, with who is on it."""

    id: int
    phone: str  # masked
    customers: list[tuple[int, str]]  # (id, masked name)
    flagged_at: datetime
    released_at: datetime | None
    released_by: str

    @property
    def held(self) -> bool:
        return self.released_at is None


async def describe(rows: Sequence[SharedPhone]) -> list[Flag]:
    """These flagged numbers as an operator sees them, in the same order: masked, with the
    customers on each (one read for all of them)."""
    members: dict[str, list[tuple[int, str]]] = {}
    if rows:
        for cid, phone, name in await Customer.filter(
                phone__in=[r.phone for r in rows]).order_by("id").values_list(
                "id", "phone", "name"):
            members.setdefault(str(phone), []).append((int(cid), mask_name(str(name))))
    return [Flag(r.id, mask_phone(r.phone), members.get(r.phone, []), r.flagged_at,
                 r.released_at, r.released_by) for r in rows]


async def flags() -> list[Flag]:
    """Every flagged number, held ones first, most customers first."""
    listed = await describe(await SharedPhone.all().order_by("-customers", "id"))
    return sorted(listed, key=lambda flag: not flag.held)


async def release(flag_id: int, operator: str, now: datetime) -> SharedPhone:
    """An operator confirmed the number really is these customers' own: care and marketing
    SMS to it go again (until someone new appears on it)."""
    row = await SharedPhone.get_or_none(id=flag_id)
    if row is None:
        raise UnknownSharedPhone(f"no flagged number {flag_id}")
    if row.released_at is None:
        await SharedPhone.filter(id=flag_id, released_at__isnull=True).update(
            released_at=now, released_by=operator[:64])
        await row.refresh_from_db()
    return row
