"""Lapse rescue: one message ``renewal.lapse_rescue_days`` after a policy expired unrenewed.

The policy may still say ``active`` (the core system has not sent the status change yet) or
``expired``; either way it has no renewal linked, is not cancelled and has no newer policy for
the same plate and product (see ``scheduler.renewal.NOT_RENEWED``). The message is stale
``renewal.lapse_stale_days`` after its send time; catching up, a missed day is still planned
while that window is open. Key: ``lapse:{policy}`` — one rescue per policy, ever.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import date, timedelta
from functools import partial
from typing import Any

from scheduler.context import PlanContext, Sink, feed
from scheduler.renewal import NOT_RENEWED, POLICY_COLUMNS
from scheduler.selection import Selection, as_date
from scheduler.wording import localised_date
from storage.models import Category
from storage.outbox import Outbound

log = logging.getLogger(__name__)

KIND = "lapse_rescue"


# -- decisions (pure) -------------------------------------------------------------------------


def lapsed_on(day: date, rescue_days: int) -> date:
    """The expiry date of the policies rescued on ``day``."""
    return day - timedelta(days=rescue_days)


def still_useful(day: date, today: date, stale_days: int) -> bool:
    """A missed rescue day is still worth planning until the message would be stale."""
    return (today - day).days < stale_days


# -- selection and queueing ----------------------------------------------------------------------


def lapsed(end: date) -> Selection:
    return Selection(
        columns=POLICY_COLUMNS,
        source="FROM policy p JOIN customer c ON c.id = p.customer_id "
               "WHERE p.status IN ('active', 'expired') AND p.end_date = ? "
               f"AND {NOT_RENEWED}",
        values=(end,),
        key="p.id",
    )


def selections(ctx: PlanContext) -> list[Selection]:
    if not still_useful(ctx.day, ctx.today, ctx.renewal.lapse_stale_days):
        return []
    return [lapsed(lapsed_on(ctx.day, ctx.renewal.lapse_rescue_days))]


def _messages(ctx: PlanContext, rows: list[dict[str, Any]]) -> Iterator[Outbound]:
    stale_after = ctx.not_before + timedelta(days=ctx.renewal.lapse_stale_days)
    for row in rows:
        yield Outbound(
            dedup_key=f"lapse:{row['k']}",
            kind=KIND,
            category=Category.REMINDER,
            customer_id=row["customer_id"],
            template_key="lapse_rescue",
            params={
                "name": row["name"],
                "plate": row["plate"],
                "policy": row["number"],
                "expired_on": localised_date(as_date(row["end_date"])),
            },
            not_before=ctx.not_before,
            stale_after=stale_after,
        )


async def queue(ctx: PlanContext, sink: Sink) -> int:
    created = 0
    for selection in selections(ctx):
        created += await feed(selection, ctx.batch_size, partial(_messages, ctx), sink)
    log.info("queued %d lapse rescues for %s", created, ctx.day)
    return created
