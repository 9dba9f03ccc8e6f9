"""Shared phone numbers (three or more customers) for operators: the list, and releasing a
number that really is those customers' own so care and marketing SMS go to it again
(``storage.shared_phones`` has the rules). Phones and names are masked."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tortoise.transactions import in_transaction

from bot.web.operators import audit
from bot.web.operators.access import Actor
from bot.web.operators.errors import Refusal
from bot.web.operators.paging import DEFAULT_LIMIT, Page, page
from bot.web.operators.rows import SharedPhoneJson
from storage import shared_phones
from storage.models import SharedPhone
from storage.phones import mask_phone


class SharedPhoneNotFound(Refusal):
    code = "not_found"
    status = 404


def flag_json(flag: shared_phones.Flag) -> SharedPhoneJson:
    return {"id": flag.id, "phone": flag.phone, "held": flag.held,
            "customers": [{"id": cid, "name": name} for cid, name in flag.customers],
            "flagged_at": flag.flagged_at.isoformat(),
            "released_at": flag.released_at.isoformat() if flag.released_at else None,
            "released_by": flag.released_by}


async def list_flags(held: bool | None = None, *, limit: int = DEFAULT_LIMIT,
                     cursor: str = "") -> tuple[list[SharedPhoneJson], Page[SharedPhone]]:
    """A page of flagged numbers — held ones (still to check), released ones, or both — most
    customers first, as JSON rows and the page itself."""
    query = SharedPhone.all()
    if held is not None:
        query = query.filter(released_at__isnull=held)
    found = await page(query, ("-customers", "id"), limit=limit, cursor=cursor)
    return [flag_json(flag) for flag in await shared_phones.describe(found.rows)], found


def _row_json(row: SharedPhone) -> dict[str, Any]:
    return {"id": row.id, "phone": mask_phone(row.phone), "customers": row.customers,
            "released_at": row.released_at.isoformat() if row.released_at else None,
            "released_by": row.released_by}


async def release(actor: Actor, flag_id: int, *, now: datetime) -> SharedPhoneJson:
    """The operator checked the number: it is really these customers' own. Answers the
    number as the list shows it."""
    async with in_transaction():
        before = await SharedPhone.get_or_none(id=flag_id)
        if before is None:
            raise SharedPhoneNotFound(f"no shared number {flag_id}")
        after = await shared_phones.release(flag_id, actor.name, now)
        await audit.record(actor, "shared_phone.release", "shared_phone", flag_id,
                           before=_row_json(before), after=_row_json(after), now=now)
    [flag] = await shared_phones.describe([after])
    return flag_json(flag)
