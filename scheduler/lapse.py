"""Lapse rescue: one message ``renewal.lapse_rescue_days`` after a policy expired unrenewed.

The policy may still say ``active`` (the core system has not sent the status change yet) or
``expired``; either way it has no renewal linked, is not cancelled and has no newer policy for
the same plate and product (see ``scheduler.renewal.waiting``). It goes at
``schedule.daily_plan_at`` in the customer's own time zone and is stale
``renewal.lapse_stale_days`` after that; catching up, a missed day is still planned
while that window is open.

Like the renewal reminders, one message per car: a customer's lapsed policies with the same
plate and end date (compulsory and commercial, typically) get one rescue naming them all. Key:
``lapse:{policy}``, with the same stable id as the reminders (the lowest of the car's policies
with that end date, see ``scheduler.renewal``) — one rescue per car and expiry, ever; a policy
alone on its car keeps its own id.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import date, timedelta
from functools import partial

from scheduler.context import PlanContext, Sink, feed
from scheduler.renewal import car_reminder, policy_groups
from scheduler.selection import Selection
from scheduler.wording import localised_date
from storage.models import PolicyStatus
from storage.outbox import Outbound
from storage.sql import Row, as_date

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
    """Cars whose policies ended on ``end`` unrenewed, one row per car."""
    return policy_groups(end, (PolicyStatus.ACTIVE, PolicyStatus.EXPIRED))


def selections(ctx: PlanContext) -> list[Selection]:
    if not still_useful(ctx.day, ctx.today, ctx.renewal.lapse_stale_days):
        return []
    return [lapsed(lapsed_on(ctx.day, ctx.renewal.lapse_rescue_days))]


def _messages(ctx: PlanContext, rows: list[Row]) -> Iterator[Outbound]:
    stale = timedelta(days=ctx.renewal.lapse_stale_days)
    for row in rows:
        yield car_reminder(
            ctx, row, key="lapse:{anchor}", kind=KIND, template="lapse_rescue",
            params={"expired_on": localised_date(as_date(row["end_date"]))},
            stale_after=lambda sent: sent + stale)


async def queue(ctx: PlanContext, sink: Sink) -> int:
    created = 0
    for selection in selections(ctx):
        created += await feed(selection, ctx.batch_size, partial(_messages, ctx), sink)
    log.info("queued %d lapse rescues for %s", created, ctx.day)
    return created
