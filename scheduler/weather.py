"""Weather notices: for every region with customers that care reaches (insured today or lapsed
within ``care.lapsed_days``, see ``storage.coverage``), today's and tomorrow's forecast; one
notice per customer per region, hazard and date, sent at ``schedule.weather_at`` in the
customer's own time zone.

Hazards (thresholds from ``[weather]``): heavy rain (daily precipitation ≥ 25 mm), snow
(snowfall ≥ 1 cm), storm (gusts ≥ 17 m/s, or a thunderstorm weather code 95-99), freeze
(minimum ≤ -5 °C). Each carries car-care advice in both languages (``scheduler.wording``).

Regions are fetched ``regions_per_request`` at a time. A request that fails is logged and its
regions are left for the next run; a request refused outright (4xx) with several regions is
retried region by region so one bad region does not hide the others. The run reports which
regions failed, so the job can record the day as incomplete and try again later. A past day is
never planned (a warning for weather that has happened is no use).

Notices are stale 12 hours into the forecast day in the customer's time zone (or 12 hours after
the send time, if later): tomorrow's warning is still useful tomorrow morning, not tomorrow
night.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import partial
from typing import Final

from scheduler.config import WeatherSettings
from scheduler.context import PlanContext, Sink, feed
from scheduler.forecast import DayForecast, ForecastSource, ForecastUnavailable, Place
from scheduler.selection import Selection
from scheduler.wording import HAZARD_ADVICE, HAZARD_NAMES, localised, localised_date
from storage.models import Category
from storage.outbox import Outbound
from storage.sql import Fragment, Params, Row, current, fetch

log = logging.getLogger(__name__)

KIND = "weather"
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


@dataclass
class WeatherResult:
    queued: int = 0
    regions: int = 0
    alerts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(HAZARDS, 0))
    failed: list[str] = field(default_factory=list)
    retryable: bool = True

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
    """Every forecast that could be had; the regions that could not go into ``result``."""
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


def _notices(ctx: PlanContext, rows: list[Row], *, regions: dict[int, Region],
             alerts: dict[int, list[tuple[date, str]]]) -> Iterator[Outbound]:
    for row in rows:
        zone = row["timezone"]
        region = regions[row["region_id"]]
        for day, hazard in alerts.get(region.id, []):
            yield ctx.message(
                row, key=f"weather:{region.code}:{day.isoformat()}:{hazard}:{row['customer_id']}",
                kind=KIND, category=Category.CARE, template="weather_alert",
                params={"name": row["name"], "region": localised(region.name, region.name_en),
                        "date": localised_date(day), "hazard": HAZARD_NAMES[hazard],
                        "advice": HAZARD_ADVICE[hazard]},
                stale_after=partial(stale_after, ctx, day, timezone=zone),
                moment=ctx.schedule.weather_at)


async def queue(ctx: PlanContext, settings: WeatherSettings, source: ForecastSource,
                sink: Sink) -> WeatherResult:
    result = WeatherResult()
    if ctx.catching_up:
        return result
    regions = await reached_regions(ctx)
    result.regions = len(regions)
    if not regions:
        return result
    start, end = forecast_window(ctx.day)
    alerts: dict[int, list[tuple[date, str]]] = {}
    by_code = {r.code: r for r in regions}
    for day in await forecasts(source, regions, start, end, settings.regions_per_request,
                               result):
        region = by_code.get(day.place)
        if region is None or not start <= day.day <= end:
            continue
        for hazard in hazards(day, settings):
            alerts.setdefault(region.id, []).append((day.day, hazard))
            result.alerts[hazard] += 1
    if alerts:
        by_id = {r.id: r for r in regions}
        result.queued = await feed(reached_in(ctx, sorted(alerts)), ctx.batch_size,
                                   partial(_notices, ctx, regions=by_id, alerts=alerts), sink)
    log.info("weather for %s: %d regions, %d with warnings, %d failed, %d notices queued",
             ctx.day, len(regions), len(alerts), len(result.failed), result.queued)
    return result
