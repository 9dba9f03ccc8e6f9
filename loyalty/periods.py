"""Calendar arithmetic of the programme: lot expiry dates, local days, months and years.

Everything takes aware datetimes or plain dates and returns aware UTC datetimes for storage,
so SQLite (which compares datetimes as text) and PostgreSQL order them the same way.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_ZONE = "Asia/Shanghai"
PROGRAMME_TZ = ZoneInfo(DEFAULT_ZONE)
"""The programme's own calendar (the insurer's): the day points are earned, hence the month
their lot expires, the tier review window and the default moment of a daily job. Customers'
own days (check-in, monthly limits, voucher validity) use ``Customer.timezone``."""


def zone(name: str | None) -> ZoneInfo:
    """The customer's zone, falling back to Asia/Shanghai for an empty or unknown name."""
    try:
        return ZoneInfo(name or DEFAULT_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_ZONE)


def utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("datetimes must be timezone-aware")
    return moment.astimezone(UTC)


def local_day(moment: datetime, tz: ZoneInfo) -> date:
    return utc(moment).astimezone(tz).date()


def start_of_day(day: date, tz: ZoneInfo) -> datetime:
    """The UTC instant at which ``day`` begins in ``tz``."""
    return datetime.combine(day, time.min, tzinfo=tz).astimezone(UTC)


def add_months(day: date, months: int) -> date:
    """Same day ``months`` later, clamped to the month's end (Jan 31 + 1 month → Feb 28/29)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def end_of_month(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def lot_expiry(earned_on: date, months: int) -> date:
    """The last day points earned on ``earned_on`` may be used: the end of the month
    ``months`` months later (earned 2026-03-15, 24 months → valid through 2028-03-31)."""
    return end_of_month(add_months(earned_on.replace(day=1), months))


def month_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    first = day.replace(day=1)
    return start_of_day(first, tz), start_of_day(add_months(first, 1), tz)


def year_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    first = date(day.year, 1, 1)
    return start_of_day(first, tz), start_of_day(date(day.year + 1, 1, 1), tz)


def one_year_before(day: date) -> date:
    """``day`` a calendar year earlier (Feb 29 → Feb 28)."""
    return add_months(day, -12)


def next_day(day: date) -> date:
    return day + timedelta(days=1)
