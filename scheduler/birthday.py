"""Birthday greetings: one per customer per year, on the day, in the morning of the customer's
own time zone, to the customers care reaches (insured today or lapsed within
``care.lapsed_days``, see ``storage.coverage``).

Solar birthdays are selected by the indexed ``customer.birthday_md`` (month * 100 + day).
Customers born on 29 February are greeted on 28 February in common years.

Lunar birthdays (``customer.lunar_birthday``): the stored ``birthday`` is the *solar* date of
birth; its lunar month and day (``LunarDate.from_solar_date``) are the birthday, greeted each
year on the solar date of that lunar month/day. A birth in a leap month is greeted in the
ordinary month of the same number (leap months recur only every few years), and a lunar day 30
that the month lacks in a given year is greeted on day 29.

Selecting lunar customers set-based without a stored lunar column: for the plan day we compute
which lunar (month, day) anniversaries fall on it, then every solar date from 1900 on with that
lunar month/day (one or two per year, ~250 dates). A customer is due if flagged lunar and their
birthday is one of those dates; ``birthday_md IN (…)`` of those dates (a ~30-day band of
month-days) lets the query use the index, so it reads ~1/12 of the customers' index entries
at most and only returns the flagged few. No schema change, bounded work.

The dedup key is ``birthday:{customer}:{year}``, with the *lunar* year for lunar birthdays: a
lunar date can fall twice in one solar year (e.g. early January and late December), and the
lunar year keeps that to one greeting per birthday.

Greetings are for the day itself: when catching up a missed day, they are stale and skipped.
"""

from __future__ import annotations

import calendar
import logging
from collections.abc import Iterator
from datetime import date
from functools import partial

from scheduler.cn_calendar import (
    lunar_anniversary,
    lunar_dates_falling_on,
    solar_dates_with_lunar,
    to_lunar,
)
from scheduler.context import PlanContext, Sink, feed
from scheduler.selection import Selection
from storage.models import Category
from storage.outbox import Outbound
from storage.sql import Fragment, Params, Row

log = logging.getLogger(__name__)

KIND = "birthday"


# -- decisions (pure) -------------------------------------------------------------------------


def month_day(day: date) -> int:
    return day.month * 100 + day.day


def solar_greeting_day(birthday: date, year: int) -> date:
    """The day in ``year`` a solar birthday is greeted (29 Feb → 28 Feb in common years)."""
    if (birthday.month, birthday.day) == (2, 29) and not calendar.isleap(year):
        return date(year, 2, 28)
    return date(year, birthday.month, birthday.day)


def solar_month_days_on(day: date) -> list[int]:
    """The ``birthday_md`` values greeted on ``day``."""
    mds = [month_day(day)]
    if (day.month, day.day) == (2, 28) and not calendar.isleap(day.year):
        mds.append(229)
    return mds


def lunar_greeting_day(birthday: date, lunar_year: int) -> date | None:
    """The solar day on which a lunar-birthday customer born on solar ``birthday`` is greeted
    in ``lunar_year``; None outside the lunar calendar's range."""
    born = to_lunar(birthday)
    if born is None:
        return None
    return lunar_anniversary(lunar_year, born.month, born.day)


def lunar_birth_dates_on(day: date) -> list[date]:
    """Every solar date of birth whose lunar birthday is greeted on ``day``."""
    dates: list[date] = []
    for month, lunar_day in lunar_dates_falling_on(day):
        dates.extend(solar_dates_with_lunar(month, lunar_day, until=day))
    return sorted(set(dates))


def greets_today(ctx: PlanContext) -> bool:
    """A greeting belongs to its day: a missed day's greetings are not sent late."""
    return not ctx.catching_up


# -- selection and queueing ----------------------------------------------------------------------


def solar_selection(ctx: PlanContext) -> Selection:
    params = Params()
    source = (f"FROM customer c WHERE c.birthday_md IN "
              f"({params.add_all(solar_month_days_on(ctx.day))}) "
              f"AND NOT c.lunar_birthday AND {params.take(ctx.care_reaches())}")
    return Selection(columns="c.name, c.timezone", source=Fragment(source, params), key="c.id")


def lunar_selection(ctx: PlanContext) -> Selection | None:
    births = lunar_birth_dates_on(ctx.day)
    if not births:
        return None
    params = Params()
    source = (f"FROM customer c WHERE c.birthday_md IN "
              f"({params.add_all(sorted({month_day(b) for b in births}))}) "
              f"AND c.lunar_birthday AND c.birthday IN ({params.add_all(births)}) "
              f"AND {params.take(ctx.care_reaches())}")
    return Selection(columns="c.name, c.timezone", source=Fragment(source, params), key="c.id")


def selections(ctx: PlanContext) -> list[Selection]:
    if not greets_today(ctx):
        return []
    found = [solar_selection(ctx)]
    if (lunar := lunar_selection(ctx)) is not None:
        found.append(lunar)
    return found


def _messages(ctx: PlanContext, rows: list[Row], *,
              year: int) -> Iterator[Outbound]:
    zones = ctx.zones
    for row in rows:
        yield Outbound(
            dedup_key=f"birthday:{row['k']}:{year}",
            kind=KIND,
            category=Category.CARE,
            customer_id=row["k"],
            template_key="birthday",
            params={"name": row["name"]},
            not_before=ctx.send_at(row["timezone"]),
            stale_after=zones.end_of_day(ctx.day, row["timezone"]),
        )


async def queue(ctx: PlanContext, sink: Sink) -> int:
    if not greets_today(ctx):
        return 0
    created = 0
    targets: list[tuple[Selection, int]] = [(solar_selection(ctx), ctx.day.year)]
    lunar_today = to_lunar(ctx.day)
    if lunar_today is not None and (lunar := lunar_selection(ctx)) is not None:
        targets.append((lunar, lunar_today.year))
    for selection, year in targets:
        created += await feed(selection, ctx.batch_size, partial(_messages, ctx, year=year),
                              sink)
    log.info("queued %d birthday greetings for %s", created, ctx.day)
    return created
