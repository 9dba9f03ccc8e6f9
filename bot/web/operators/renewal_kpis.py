"""The renewal KPIs page, API and CSV: the figures of ``storage.renewal_kpis`` over the last
12 expiry months, and their charts (``bot.web.charts``: SVG rendered on the server).

The figures of past expiry days come from their rollup (``storage.renewal_rollup``, kept
exact by database triggers and brought up to date by each report); the report of a day is
also kept for five minutes (``ReportCache``), so the page and its four charts compute it once.

Reach: renewal messages due (planned) in the window per channel, reached = delivered, or sent
for Telegram (which reports no delivery); skipped ones count under ``none``. Call-back
response time is in working hours (``[office_hours]`` and the holiday calendar), asked to
closed.
"""

from __future__ import annotations

import asyncio
import csv
import io
import statistics
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from bot.settings import Settings
from bot.web import charts
from scheduler.office_hours import OfficeHours
from storage import renewal_kpis as kpis
from storage import renewal_rollup as rollup

MONTHS = rollup.MONTHS
REACHED = {"telegram": ("sent", "delivered"), "sms": ("delivered",),
           "console": ("sent", "delivered")}


def window(today: date) -> date:
    """The first expiry day counted: the 1st of the month 11 months before this one."""
    return rollup.window(today)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


async def report(today: date, settings: Settings, *, live: bool = False) -> dict[str, Any]:
    """Every figure of the page; from the rollup of past expiry days (brought up to date
    first), or ``live`` from the policies themselves (the same figures, slower)."""
    first = window(today)
    if live:
        by_day, by_group, lapse_reasons = kpis.by_day, kpis.by_group, kpis.lapse_reasons
    else:
        await rollup.refresh(first, today)
        by_day, by_group, lapse_reasons = rollup.by_day, rollup.by_group, rollup.lapse_reasons
    since = datetime.combine(first, time(), tzinfo=UTC)
    months: dict[str, dict[str, int]] = {}
    for step in range(MONTHS):
        index = first.year * 12 + first.month - 1 + step
        months[f"{index // 12}-{index % 12 + 1:02d}"] = defaultdict(int)
    for day in await by_day(first, today):
        bucket = months[day.day.strftime("%Y-%m")]
        for name in ("expired", "renewed", "won_back", "contacted_twice"):
            bucket[name] += getattr(day, name)
    rows = [{"month": month, "expired": c["expired"], "renewed": c["renewed"],
             "rate": _rate(c["renewed"], c["expired"]), "won_back": c["won_back"],
             "contacted_twice": c["contacted_twice"]} for month, c in months.items()]
    groups = {dimension: [{"key": g.key, "expired": g.expired, "renewed": g.renewed,
                           "rate": _rate(g.renewed, g.expired)}
                          for g in await by_group(dimension, first, today)]
              for dimension in kpis.DIMENSIONS}
    total = {name: sum(c[name] for c in months.values())
             for name in ("expired", "renewed", "won_back", "contacted_twice")}
    return {
        "as_of": today.isoformat(), "first_expiry": first.isoformat(),
        "totals": {**total, "rate": _rate(total["renewed"], total["expired"])},
        "months": rows,
        **{f"by_{dimension}": items for dimension, items in groups.items()},
        "reach": _reach(await kpis.reach(since)),
        "lapse_reasons": [{"outcome": o, "reason": r, "count": n}
                          for o, r, n in await lapse_reasons(first, today)],
        "callbacks": _callbacks(await kpis.callbacks(since), settings),
    }


class ReportCache:
    """The report of one day, kept for ``REPORT_TTL``: a KPI page and its four chart images
    (and the CSV) are one computation, not six. Computed by one request at a time."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime]) -> None:
        self._settings = settings
        self._clock = clock
        self._lock = asyncio.Lock()
        self._kept: tuple[date, datetime, dict[str, Any]] | None = None

    def _fresh(self, today: date) -> dict[str, Any] | None:
        kept = self._kept
        if kept is not None and kept[0] == today and self._clock() - kept[1] < REPORT_TTL:
            return kept[2]
        return None

    async def get(self, today: date) -> dict[str, Any]:
        if (data := self._fresh(today)) is not None:
            return data
        async with self._lock:
            if (data := self._fresh(today)) is not None:
                return data
            data = await report(today, self._settings)
            self._kept = (today, self._clock(), data)
            return data


REPORT_TTL = timedelta(minutes=5)
REPORTS = web.AppKey("renewal_kpi_reports", ReportCache)


def _reach(rows: list[tuple[str, str, int]]) -> list[dict[str, Any]]:
    due: dict[str, int] = defaultdict(int)
    reached: dict[str, int] = defaultdict(int)
    for channel, status, count in rows:
        key = channel or "none"
        due[key] += count
        if status in REACHED.get(channel, ()):
            reached[key] += count
    return [{"channel": key, "due": due[key], "reached": reached[key],
             "rate": _rate(reached[key], due[key])} for key in sorted(due)]


def _callbacks(rows: list[kpis.Callback], settings: Settings) -> dict[str, Any]:
    office = OfficeHours(settings.office_hours, settings.holidays.calendar(),
                         ZoneInfo(settings.schedule.timezone))
    hours = [office.between(r.asked_at, r.closed_at) / timedelta(hours=1)
             for r in rows if r.closed_at is not None]
    on_time = sum(1 for r in rows if r.closed_at is not None
                  and (r.due_at is None or r.closed_at <= r.due_at))
    return {"asked": len(rows), "answered": len(hours), "on_time": on_time,
            "median_working_hours": round(statistics.median(hours), 2) if hours else None}


def to_csv(data: dict[str, Any]) -> str:
    """Every figure as one table: section, key, count, part, rate."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["section", "key", "count", "part", "rate"])
    for row in data["months"]:
        writer.writerow(["renewal_rate_by_month", row["month"], row["expired"], row["renewed"],
                         _cell(row["rate"])])
        writer.writerow(["won_back_by_month", row["month"], row["expired"], row["won_back"], ""])
        writer.writerow(["contacted_twice_by_month", row["month"], row["expired"],
                         row["contacted_twice"], _cell(_rate(row["contacted_twice"],
                                                             row["expired"]))])
    for dimension in kpis.DIMENSIONS:
        for row in data[f"by_{dimension}"]:
            writer.writerow([f"renewal_rate_by_{dimension}", row["key"], row["expired"],
                             row["renewed"], _cell(row["rate"])])
    for row in data["reach"]:
        writer.writerow(["reach_by_channel", row["channel"], row["due"], row["reached"],
                         _cell(row["rate"])])
    for row in data["lapse_reasons"]:
        key = f"{row['outcome'] or 'no_outcome'}:{row['reason']}".rstrip(":")
        writer.writerow(["lapse_reasons", key, row["count"], "", ""])
    cb = data["callbacks"]
    writer.writerow(["callbacks", "answered", cb["asked"], cb["answered"], ""])
    writer.writerow(["callbacks", "on_time", cb["asked"], cb["on_time"], ""])
    writer.writerow(["callbacks", "median_working_hours", "", "",
                     _cell(cb["median_working_hours"])])
    return out.getvalue()


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


CHARTS = ("months", "branch", "reach", "reasons")


def chart(name: str, data: dict[str, Any], words: dict[str, str]) -> bytes:
    """One of ``CHARTS`` as SVG; ``words`` holds the titles and labels in the page's
    language (``title_<name>``, ``series_rate``, ``series_reached``, ``reason_<code>``)."""
    if name == "months":
        return charts.line(words["title_months"], [r["month"] for r in data["months"]],
                           {words["series_rate"]: [r["rate"] for r in data["months"]]},
                           percent=True)
    if name == "branch":
        rows = data["by_branch"][:20]
        return charts.bar(words["title_branch"], [r["key"] or "—" for r in rows],
                          {words["series_rate"]: [r["rate"] for r in rows]}, percent=True)
    if name == "reach":
        return charts.bar(words["title_reach"], [words.get(f"channel_{r['channel']}",
                                                           r["channel"]) for r in data["reach"]],
                          {words["series_reached"]: [r["rate"] for r in data["reach"]]},
                          percent=True)
    rows = data["lapse_reasons"][:10]
    labels = [words.get(f"reason_{r['reason'] or r['outcome'] or 'none'}",
                        r["reason"] or r["outcome"]) for r in rows]
    return charts.bar(words["title_reasons"], labels,
                      {words["series_count"]: [r["count"] for r in rows]})
