"""Weather notices: for every region with customers that care reaches (insured today or lapsed
within ``care.lapsed_days``, see ``storage.coverage``), today's and tomorrow's forecast; one
notice per customer per day, sent at ``schedule.weather_at`` in the customer's own time zone,
naming every hazard of both days in one sentence ("深圳明天有暴雨和雷暴大风").

Hazards (thresholds from ``[weather]``): heavy rain (daily precipitation ≥ 25 mm), snow
(snowfall ≥ 1 cm), storm (gusts ≥ 17 m/s, or a thunderstorm weather code 95-99), freeze
(minimum ≤ -5 °C). The notice carries car-care advice for each (``scheduler.wording``); by SMS
only the most dangerous hazard's short tip, so a Chinese notice fits one segment.

Weather is a safety notice: category ``alert``, which the weekly cap of greetings and campaigns
does not count and the customer can switch off on its own. Its limit is its dedup key,
``weather:{day}:{customer}``: one notice per customer per plan day, whatever the region.

Regions are fetched ``regions_per_request`` at a time (Open-Meteo takes many coordinates per
call), and only regions with customers care reaches. A request that fails is logged and its
regions are left for the next run; a request refused outright (4xx) with several regions is
retried region by region so one bad region does not hide the others. The run reports which
regions failed, so the job can record the day as incomplete and try again later. A past day is
never planned (a warning for weather that has happened is no use).

Notices are stale 12 hours into the first forecast day they name in the customer's time zone
(or 12 hours after the send time, if later): tomorrow's warning is still useful tomorrow
morning, not tomorrow night.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from functools import partial
from typing import Final

from tortoise.transactions import in_transaction

from scheduler.config import WeatherSettings
from scheduler.context import PlanContext, Sink, feed, outbox_sink
from scheduler.forecast import DayForecast, ForecastSource, ForecastUnavailable, Place
from scheduler.selection import Selection
from scheduler.wording import hazard_advice, hazard_forecast, hazard_tip, localised
from storage.models import Category
from storage.outbox import Outbound
from storage.scheduler_models import WeatherAlert
from storage.sql import Fragment, Params, Row, current, fetch

log = logging.getLogger(__name__)

KIND = "weather"
TEMPLATE = "weather_notice"
HAZARDS: Final = ("heavy_rain", "snow", "storm", "freeze")
THUNDERSTORM_CODES: Final = range(95, 100)
FORECAST_DAYS: Final = 2
STALE_AFTER: Final = timedelta(hours=12)


@dataclass(frozen=True, slots=True)
class Region:
    id: int
    code: str
    name: str
    name_en: str
    latitude: float
    longitude: float

    @property
    def place(self) -> Place:
        return Place(self.code, self.latitude, self.longitude)


# A region's hazards: per forecast day that has any, in date order.
Alerts = list[tuple[date, list[str]]]


@dataclass
class WeatherResult:
    queued: int = 0
    regions: int = 0
    alerts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(HAZARDS, 0))
    failed: list[str] = field(default_factory=list)
    retryable: bool = True
    by_region: dict[str, Alerts] = field(default_factory=dict)  # region code → its hazards

    @property
    def complete(self) -> bool:
        return not self.failed


# -- decisions (pure) -------------------------------------------------------------------------


def hazards(day: DayForecast, settings: WeatherSettings) -> list[str]:
    """The hazards a day's forecast calls for, in a fixed order."""
    found: list[str] = []
    if day.precipitation_mm is not None and day.precipitation_mm >= settings.heavy_rain_mm:
        found.append("heavy_rain")
    if day.snowfall_cm is not None and day.snowfall_cm >= settings.snow_cm:
        found.append("snow")
    if (day.gust_ms is not None and day.gust_ms >= settings.gust_ms) or (
        day.weather_code is not None and day.weather_code in THUNDERSTORM_CODES
    ):
        found.append("storm")
    if day.temp_min_c is not None and day.temp_min_c <= settings.freeze_c:
        found.append("freeze")
    return found


def forecast_window(day: date) -> tuple[date, date]:
    return day, day + timedelta(days=FORECAST_DAYS - 1)


def stale_after(ctx: PlanContext, forecast_day: date, sent: datetime,
                timezone: str | None = None) -> datetime:
    start = ctx.zones.at(forecast_day, time(0, 0), timezone)
    return max(start + STALE_AFTER, sent + STALE_AFTER)


def batches(items: Sequence[Region], size: int) -> Iterator[Sequence[Region]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


# -- selection, forecasts and queueing -----------------------------------------------------------


def reached_in(ctx: PlanContext, region_ids: Sequence[int]) -> Selection:
    """The customers of these regions care reaches on the plan day."""
    params = Params()
    source = (f"FROM customer c WHERE c.region_id IN ({params.add_all(region_ids)}) "
              f"AND {params.take(ctx.care_reaches())}")
    return Selection(columns="c.id AS customer_id, c.name, c.region_id, c.timezone",
                     source=Fragment(source, params), key="c.id")


async def reached_regions(ctx: PlanContext) -> list[Region]:
    """Regions with at least one customer care reaches on the plan day."""
    reach = ctx.care_reaches()
    rows = await fetch(
        current(),
        "SELECT r.id, r.code, r.name, r.name_en, r.latitude, r.longitude FROM region r "
        "WHERE EXISTS (SELECT 1 FROM customer c WHERE c.region_id = r.id "
        f"AND {reach.sql}) ORDER BY r.id",
        reach.params,
    )
    return [Region(int(r["id"]), str(r["code"]), str(r["name"]), str(r["name_en"] or ""),
                   float(r["latitude"]), float(r["longitude"])) for r in rows]


async def forecasts(source: ForecastSource, regions: Sequence[Region], start: date, end: date,
                    per_request: int, result: WeatherResult) -> list[DayForecast]:
    """Every forecast that could be had; the regions that could not go into ``result``.
    Regions at one coordinate (a custom area placed at its city's centre) are asked for once."""
    groups: dict[tuple[float, float], list[Region]] = {}
    for region in regions:
        groups.setdefault((round(region.latitude, 4), round(region.longitude, 4)),
                          []).append(region)
    places = [group[0] for group in groups.values()]
    failed = len(result.failed)
    out = await _fetched(source, places, start, end, per_request, result)
    shared = {group[0].code: group[1:] for group in groups.values() if len(group) > 1}
    if shared:
        out += [replace(day, place=other.code) for day in out
                for other in shared.get(day.place, ())]
        result.failed += [other.code for code in result.failed[failed:]
                          for other in shared.get(code, ())]
    return out


async def _fetched(source: ForecastSource, regions: Sequence[Region], start: date, end: date,
                   per_request: int, result: WeatherResult) -> list[DayForecast]:
    out: list[DayForecast] = []
    for batch in batches(regions, per_request):
        try:
            out.extend(await source.daily([r.place for r in batch], start, end))
            continue
        except ForecastUnavailable as exc:
            if exc.retryable or len(batch) == 1:
                log.warning("weather forecast unavailable for %d regions (%s): %s",
                            len(batch), ",".join(r.code for r in batch), exc)
                result.failed.extend(r.code for r in batch)
                continue
        for region in batch:  # refused as a whole: find the region(s) at fault
            try:
                out.extend(await source.daily([region.place], start, end))
            except ForecastUnavailable as exc:
                log.warning("weather forecast refused for region %s: %s", region.code, exc)
                result.failed.append(region.code)
                result.retryable = result.retryable and exc.retryable
    return out


def notice(ctx: PlanContext, row: Row, region: Region, alerts: Alerts) -> Outbound:
    """The one notice of a customer's day, about every hazard ``alerts`` lists."""
    hazards = [h for _, found in alerts for h in found]
    return ctx.message(
        row, key=f"weather:{ctx.day.isoformat()}:{row['customer_id']}", kind=KIND,
        category=Category.ALERT, template=TEMPLATE,
        params={"name": row["name"], "region": localised(region.name, region.name_en),
                "forecast": hazard_forecast([((day - ctx.day).days, found)
                                             for day, found in alerts]),
                "advice": hazard_advice(hazards), "tip": hazard_tip(hazards)},
        stale_after=partial(stale_after, ctx, alerts[0][0], timezone=row["timezone"]),
        moment=ctx.schedule.weather_at)


def _notices(ctx: PlanContext, rows: list[Row], *, regions: dict[int, Region],
             alerts: dict[int, Alerts]) -> Iterator[Outbound]:
    for row in rows:
        region = regions[row["region_id"]]
        yield notice(ctx, row, region, alerts[region.id])


async def hazards_by_region(ctx: PlanContext, settings: WeatherSettings,
                            source: ForecastSource, regions: Sequence[Region],
                            result: WeatherResult) -> dict[int, Alerts]:
    """Each region's hazards on the days of the forecast window, from ``source``."""
    start, end = forecast_window(ctx.day)
    found: dict[int, dict[date, list[str]]] = {}
    by_code = {r.code: r for r in regions}
    for day in await forecasts(source, regions, start, end, settings.regions_per_request,
                               result):
        region = by_code.get(day.place)
        if region is None or not start <= day.day <= end:
            continue
        for hazard in hazards(day, settings):
            found.setdefault(region.id, {}).setdefault(day.day, []).append(hazard)
            result.alerts[hazard] += 1
    alerts = {rid: sorted(days.items()) for rid, days in found.items()}
    by_id = {r.id: r for r in regions}
    result.by_region = {by_id[rid].code: days for rid, days in sorted(alerts.items())}
    return alerts


async def unannounced(ctx: PlanContext, alerts: dict[int, Alerts], *,
                      record: bool = True) -> dict[int, Alerts]:
    """The hazards no earlier plan day saw (those were announced then); with ``record``, this
    day's sightings are written down for the next run."""
    if not alerts:
        return {}
    start, end = forecast_window(ctx.day)
    rows = await WeatherAlert.filter(region_id__in=list(alerts), day__gte=start, day__lte=end)
    seen = {(a.region_id, a.day, a.hazard): a.first_seen_on for a in rows}
    fresh: dict[int, Alerts] = {}
    for region_id, days in alerts.items():
        for day, found in days:
            new = [h for h in found if seen.get((region_id, day, h), ctx.day) >= ctx.day]
            if new:
                fresh.setdefault(region_id, []).append((day, new))
    if record:
        await WeatherAlert.bulk_create(
            [WeatherAlert(region_id=region_id, day=day, hazard=h, first_seen_on=ctx.day,
                          last_seen_on=ctx.day)
             for region_id, days in alerts.items() for day, found in days for h in found
             if (region_id, day, h) not in seen], ignore_conflicts=True)
        sighted = {(region_id, day, h) for region_id, days in alerts.items()
                   for day, found in days for h in found}
        again = [a.id for a in rows
                 if (a.region_id, a.day, a.hazard) in sighted and a.last_seen_on < ctx.day]
        if again:
            await WeatherAlert.filter(id__in=again).update(last_seen_on=ctx.day)
    return fresh


async def queue(ctx: PlanContext, settings: WeatherSettings, source: ForecastSource,
                sink: Sink) -> WeatherResult:
    result = WeatherResult()
    if ctx.catching_up:
        return result
    regions = await reached_regions(ctx)
    result.regions = len(regions)
    if not regions:
        return result
    alerts = await unannounced(
        ctx, await hazards_by_region(ctx, settings, source, regions, result))
    if alerts:
        by_id = {r.id: r for r in regions}
        result.queued = await feed(reached_in(ctx, sorted(alerts)), ctx.batch_size,
                                   partial(_notices, ctx, regions=by_id, alerts=alerts), sink)
    log.info("weather for %s: %d regions, %d with warnings, %d failed, %d notices queued",
             ctx.day, len(regions), len(alerts), len(result.failed), result.queued)
    return result


class _RollBack(Exception):
    pass


async def dry_run(ctx: PlanContext, settings: WeatherSettings,
                  source: ForecastSource) -> WeatherResult:
    """What ``queue`` would do — regions fetched, hazards, notices that would go — computed in
    a transaction that is then rolled back: nothing is written (dedup is exact all the same)."""
    result = WeatherResult()
    try:
        async with in_transaction():
            result = await queue(ctx, settings, source, outbox_sink(ctx.batch_size))
            raise _RollBack
    except _RollBack:
        pass
    return result
