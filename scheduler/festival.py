"""Festival greetings to every customer holding an active policy: one per customer per festival
per year.

Built in: New Year's Day (1/1), Spring Festival (lunar 1/1), Lantern Festival (lunar 1/15),
Dragon Boat Festival (lunar 5/5), Mid-Autumn Festival (lunar 8/15) and National Day (10/1);
``schedule.festivals`` adds fixed solar dates. When festivals coincide (Mid-Autumn fell on
National Day in 2020) the customer gets one greeting naming both, keyed by both codes.

The selection reads active policies by policy id (the primary key: one pass over the table,
no sort) joined to their customer; a customer with two active policies appears twice and the
dedup key ``festival:{code}:{year}:{customer}`` makes the second a no-op. Into the outbox the
greetings go set-based (``OutboxSink.insert_select``: a festival day queues one per insured
customer, two thirds of a million, and building them in Python cost more than writing them);
any other sink gets them built by ``_messages``, the same rows. Greetings belong to their day
and are not sent late when catching up.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from typing import Any, Final

from scheduler.cn_calendar import lunar_to_solar
from scheduler.config import FestivalSettings
from scheduler.context import OutboxSink, PlanContext, Sink, Zones, feed
from scheduler.selection import Selection, fetch, is_postgres
from scheduler.wording import FESTIVAL_NAMES, Localised, localised
from storage.models import Category
from storage.outbox import Outbound

log = logging.getLogger(__name__)

KIND = "festival"
IDS_PER_PAGE: Final = 25
"""Set-based queueing covers this many pages' worth of policy ids per statement (50,000 by
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


def active_customers(day: date) -> Selection:
    """Policies in force on ``day`` with their customer (a customer may appear more than once)."""
    return Selection(
        columns="p.customer_id AS customer_id, c.name, c.timezone",
        source="FROM policy p JOIN customer c ON c.id = p.customer_id "
               "WHERE p.status = 'active' AND p.end_date >= ? AND p.start_date <= ?",
        values=(day, day),
        key="p.id",
    )


def selections(ctx: PlanContext) -> list[Selection]:
    if ctx.catching_up or festival_on(ctx.day, ctx.schedule.festivals) is None:
        return []
    return [active_customers(ctx.day)]


def _messages(ctx: PlanContext, rows: list[dict[str, Any]], *, festival: Festival,
              zones: Zones) -> Iterator[Outbound]:
    year = ctx.day.year
    for row in rows:
        customer = row["customer_id"]
        yield Outbound(
            dedup_key=f"festival:{festival.code}:{year}:{customer}",
            kind=KIND,
            category=Category.CARE,
            customer_id=customer,
            template_key="festival",
            params={"name": row["name"], "festival": festival.name},
            not_before=ctx.not_before,
            stale_after=zones.end_of_day(ctx.day, row["timezone"]),
        )


def _greeting_sql(ctx: PlanContext, festival: Festival, zones: Zones,
                  zone_names: list[str]) -> tuple[str, list[Any]]:
    """The columns of ``_messages`` as SQL over ``active_customers`` (for
    ``OutboxSink.insert_select``), with the same values: the stale time per customer time zone
    is a ``CASE`` over the zones customers have (computed here, as ``Zones`` does), anything
    else getting the care zone's midnight as an unknown zone does."""
    postgres = is_postgres()
    txt, ts = ("::text", "::timestamptz") if postgres else ("", "")

    def stamp(moment: datetime) -> object:
        utc = moment.astimezone(UTC)
        return utc if postgres else utc.isoformat(" ")

    whens = "".join(f"WHEN ?{txt} THEN ?{ts} " for _ in zone_names)
    stale = f"CASE c.timezone {whens}ELSE ?{ts} END" if zone_names else f"?{ts}"
    params = ("jsonb_build_object('name', c.name, 'festival', ?::text::jsonb)" if postgres
              else "json_object('name', c.name, 'festival', json(?))")
    expressions = (f"?{txt} || p.customer_id, ?{txt}, ?{txt}, p.customer_id, ?{txt}, ?{txt}, "
                   f"{params}, ?{ts}, {stale}, NULL")
    values: list[Any] = [f"festival:{festival.code}:{ctx.day.year}:", KIND, Category.CARE.value,
                         "telegram_then_sms", "festival", json.dumps(festival.name),
                         stamp(ctx.not_before)]
    for name in zone_names:
        values += [name, stamp(zones.end_of_day(ctx.day, name))]
    values.append(stamp(zones.end_of_day(ctx.day, None)))
    return expressions, values


async def queue(ctx: PlanContext, sink: Sink) -> int:
    festival = festival_on(ctx.day, ctx.schedule.festivals)
    if festival is None or ctx.catching_up:
        return 0
    zones = Zones(ctx.tz)
    if isinstance(sink, OutboxSink):
        names = [str(row["tz"]) for row in await fetch(
            "SELECT DISTINCT timezone AS tz FROM customer WHERE timezone IS NOT NULL")]
        expressions, values = _greeting_sql(ctx, festival, zones, names)
        created = await sink.insert_select(active_customers(ctx.day), expressions, values,
                                           span=ctx.batch_size * IDS_PER_PAGE)
    else:
        created = await feed(active_customers(ctx.day), ctx.batch_size,
                             partial(_messages, ctx, festival=festival, zones=zones), sink)
    log.info("queued %d %s greetings for %s", created, festival.code, ctx.day)
    return created
