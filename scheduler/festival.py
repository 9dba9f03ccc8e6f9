"""Festival greetings to every customer care reaches (insured today or lapsed within
``care.lapsed_days``, see ``storage.coverage``): one per customer per festival day, in the
morning of the customer's own time zone.

Built in: New Year's Day (1/1), Spring Festival (lunar 1/1), Lantern Festival (lunar 1/15),
Dragon Boat Festival (lunar 5/5), Mid-Autumn Festival (lunar 8/15) and National Day (10/1);
``schedule.festivals`` adds fixed solar dates. When festivals coincide (Mid-Autumn fell on
National Day in 2020) the customer gets one greeting naming both.

The dedup key is ``festival:{date}:{customer}``: one greeting per customer per day, whatever
the set of festivals that day — adding a festival to a day already greeted and planning it
again sends nothing more. The selection reads customers by id with the coverage condition.
Into the outbox the greetings go set-based (``OutboxSink.insert_select``: a festival day
queues one per insured customer, two thirds of a million, and building them in Python cost
more than writing them); any other sink gets them built by ``_messages``, the same rows.
Greetings belong to their day and are not sent late when catching up.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from typing import Final

from scheduler.cn_calendar import lunar_to_solar
from scheduler.config import FestivalSettings
from scheduler.context import OutboxSink, PlanContext, Sink, feed
from scheduler.selection import Selection
from scheduler.wording import FESTIVAL_NAMES, Localised, localised
from storage.models import Category
from storage.outbox import Outbound
from storage.sql import (
    Fragment,
    Params,
    Row,
    current,
    fetch,
    is_postgres,
    json_object,
    json_param,
    typed,
)

log = logging.getLogger(__name__)

KIND = "festival"
IDS_PER_PAGE: Final = 25
"""Set-based queueing covers this many pages' worth of customer ids per statement (50,000 by
default): big enough that a statement's overhead does not count, small enough to keep each
transaction short."""

SOLAR_FESTIVALS: Final[tuple[tuple[str, int, int], ...]] = (
    ("new_year", 1, 1),
    ("national_day", 10, 1),
)
LUNAR_FESTIVALS: Final[tuple[tuple[str, int, int], ...]] = (
    ("spring_festival", 1, 1),
    ("lantern", 1, 15),
    ("dragon_boat", 5, 5),
    ("mid_autumn", 8, 15),
)


@dataclass(frozen=True, slots=True)
class Festival:
    code: str
    name: Localised


# -- decisions (pure) -------------------------------------------------------------------------


def festival_dates(year: int, extra: Sequence[FestivalSettings] = ()) -> dict[str, date]:
    """Every festival's solar date in ``year``, by code."""
    dates = {code: date(year, month, day) for code, month, day in SOLAR_FESTIVALS}
    for code, month, day in LUNAR_FESTIVALS:
        solar = lunar_to_solar(year, month, day)
        if solar is not None:
            dates[code] = solar
    for fest in extra:
        dates[fest.code] = date(year, fest.month, fest.day)
    return dates


def _names(extra: Sequence[FestivalSettings]) -> dict[str, Localised]:
    return {**FESTIVAL_NAMES, **{f.code: localised(f.name_zh, f.name_en) for f in extra}}


def festival_on(day: date, extra: Sequence[FestivalSettings] = ()) -> Festival | None:
    """The festival greeted on ``day`` (coinciding festivals merge into one), or None."""
    names = _names(extra)
    codes = [code for code, when in festival_dates(day.year, extra).items() if when == day]
    if not codes:
        return None
    if len(codes) == 1:
        return Festival(codes[0], names[codes[0]])
    return Festival(
        "+".join(codes),
        {
            "zh-CN": "、".join(names[c]["zh-CN"] for c in codes),
            "en": " and ".join(names[c]["en"] for c in codes),
        },
    )


# -- selection and queueing ----------------------------------------------------------------------


def reached_customers(ctx: PlanContext) -> Selection:
    """The customers care reaches on the plan day, by id; a range of ids looks up only its
    own customers' policies (``storage.coverage.care_reaches``)."""

    def source(ids: tuple[int, int] | None = None) -> Fragment:
        reach = ctx.care_reaches(ids=ids)
        return Fragment(f"FROM customer c WHERE {reach.sql}", reach.params)

    return Selection(columns="c.id AS customer_id, c.name, c.timezone", source=source(),
                     key="c.id", ranged=lambda low, high: source((int(low), int(high))))


def selections(ctx: PlanContext) -> list[Selection]:
    if ctx.catching_up or festival_on(ctx.day, ctx.schedule.festivals) is None:
        return []
    return [reached_customers(ctx)]


def dedup_prefix(day: date) -> str:
    """One festival greeting per customer per day: the key has the day, not the festivals."""
    return f"festival:{day.isoformat()}:"


def _messages(ctx: PlanContext, rows: list[Row], *,
              festival: Festival) -> Iterator[Outbound]:
    prefix = dedup_prefix(ctx.day)
    for row in rows:
        customer = row["customer_id"]
        yield Outbound(
            dedup_key=f"{prefix}{customer}",
            kind=KIND,
            category=Category.CARE,
            customer_id=customer,
            template_key="festival",
            params={"name": row["name"], "festival": festival.name},
            not_before=ctx.send_at(row["timezone"]),
            stale_after=ctx.zones.end_of_day(ctx.day, row["timezone"]),
        )


def _greeting_columns(ctx: PlanContext, festival: Festival, zone_names: list[str], *,
                      postgres: bool) -> dict[str, Fragment]:
    """The columns of ``_messages`` as SQL over ``reached_customers`` (for
    ``OutboxSink.insert_select``), with the same values: the send and stale times per customer
    time zone are ``CASE``s over the zones customers have (computed here, as ``Zones`` does),
    anything else getting the care zone's times as an unknown zone does."""

    def text(value: str) -> Fragment:
        return Fragment(typed(":value", "text", postgres=postgres), {"value": value})

    def by_zone(moment: Callable[[str | None], datetime]) -> Fragment:
        params = Params()

        def at(name: str | None) -> str:
            return typed(params.add(moment(name).astimezone(UTC)), "timestamptz",
                         postgres=postgres)

        whens = "".join(f"WHEN {typed(params.add(name), 'text', postgres=postgres)} "
                        f"THEN {at(name)} " for name in zone_names)
        other = at(None)
        return Fragment(f"CASE c.timezone {whens}ELSE {other} END" if zone_names else other,
                        params)

    festival_name = json_param(":festival", postgres=postgres)
    return {
        "dedup_key": Fragment(f"{typed(':prefix', 'text', postgres=postgres)} || c.id",
                              {"prefix": dedup_prefix(ctx.day)}),
        "kind": text(KIND),
        "category": text(Category.CARE.value),
        "customer_id": Fragment("c.id"),
        "channel_policy": text("telegram_then_sms"),
        "template_key": text("festival"),
        "params": Fragment(json_object(("'name'", "c.name"), ("'festival'", festival_name),
                                       postgres=postgres),
                           {"festival": json.dumps(festival.name)}),
        "not_before": by_zone(ctx.send_at),
        "stale_after": by_zone(partial(ctx.zones.end_of_day, ctx.day)),
    }


async def queue(ctx: PlanContext, sink: Sink) -> int:
    festival = festival_on(ctx.day, ctx.schedule.festivals)
    if festival is None or ctx.catching_up:
        return 0
    if isinstance(sink, OutboxSink):
        names = [str(row["tz"]) for row in await fetch(
            current(), "SELECT DISTINCT timezone AS tz FROM customer WHERE timezone IS NOT NULL")]
        columns = _greeting_columns(ctx, festival, names, postgres=is_postgres())
        created = await sink.insert_select(reached_customers(ctx), columns,
                                           span=ctx.batch_size * IDS_PER_PAGE,
                                           writers=ctx.schedule.plan_writers)
    else:
        created = await feed(reached_customers(ctx), ctx.batch_size,
                             partial(_messages, ctx, festival=festival), sink)
    log.info("queued %d %s greetings for %s", created, festival.code, ctx.day)
    return created
