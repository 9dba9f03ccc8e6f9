"""Regions for operators: each region with its customers, the last hazards the forecast gave it
and the weather notices its customers got this week; custom areas imported from a CSV."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from tortoise.functions import Count

from bot.settings import Settings
from scheduler import weather
from scheduler.context import PlanContext
from scheduler.forecast import OpenMeteo
from scheduler.weather import WeatherResult
from storage.models import Message
from storage.regions import RegionImportReport, region_rows
from storage.scheduler_models import WeatherAlert

NOTICE_DAYS = 7


async def region_list(*, used: bool, now: datetime) -> list[dict[str, Any]]:
    rows = await region_rows(used=used)
    last: dict[str, dict[str, Any]] = {}
    for alert in await WeatherAlert.all().select_related("region").order_by("day", "id"):
        entry = last.get(alert.region.code)
        if entry is None or alert.day > entry["day"]:
            last[alert.region.code] = {"day": alert.day, "hazards": [alert.hazard],
                                       "seen_on": alert.last_seen_on}
        elif alert.day == entry["day"]:
            entry["hazards"].append(alert.hazard)
    notices = dict(await Message.filter(
        kind="weather", created_at__gte=now - timedelta(days=NOTICE_DAYS),
        customer__region_id__isnull=False,
    ).annotate(n=Count("id")).group_by("customer__region__code").values_list(
        "customer__region__code", "n"))
    return [{"code": r.code, "name": r.name, "name_en": r.name_en, "latitude": r.latitude,
             "longitude": r.longitude, "timezone": r.timezone, "parent": r.parent,
             "builtin": r.builtin, "customers": r.customers,
             "last_alert": last.get(r.code), "notices_week": int(notices.get(r.code, 0))}
            for r in rows]


async def weather_dry_run(settings: Settings, day: date) -> WeatherResult:
    """The weather job for ``day`` against the real forecast, rolled back (``engage weather
    --dry-run``): regions, hazards and how many notices would go."""
    source = OpenMeteo(settings.weather, timezone=settings.schedule.timezone)
    try:
        ctx = PlanContext(day=day, today=day, schedule=settings.schedule, care=settings.care,
                          calendar=settings.holidays.calendar())
        return await weather.dry_run(ctx, settings.weather, source)
    finally:
        await source.close()


def import_json(report: RegionImportReport) -> dict[str, Any]:
    return {"created": report.created, "updated": report.updated,
            "rejected": len(report.problems), "problems": report.problems,
            "summary": report.summary()}
