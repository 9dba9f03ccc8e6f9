"""Office hours: when people (not the bot) answer, for hand-offs, call-backs and response clocks.

Opening hours are set per weekday in the insurer's time zone (``schedule.timezone``). With
``closed_on_holidays`` the official calendar decides: closed on days off (National Day week,
Spring Festival…), open on make-up working days (调休) — a make-up weekend day keeps the hours
of its own weekday when it has any, else those of the first open weekday of the week.

Durations such as "a call-back is due within 4 working hours" count only open time:
``add(moment, timedelta(hours=4))`` on a Friday at 17:00 with 09:00-18:00 hours is the next
working day at 12:00.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from scheduler.cn_calendar import WorkCalendar
from scheduler.config import OfficeHoursSettings

_SEARCH_DAYS = 400  # further than any holiday run; a calendar never open ends the search


@dataclass(frozen=True, slots=True)
class Window:
    """One day's opening, as aware datetimes."""

    start: datetime
    end: datetime


class OfficeHours:
    def __init__(self, settings: OfficeHoursSettings, calendar: WorkCalendar,
                 tz: ZoneInfo) -> None:
        self._settings = settings
        self._calendar = calendar
        self._tz = tz

    def window(self, day: date) -> Window | None:
        """The opening on local ``day``, None when closed all day."""
        hours = self._settings.hours_on(day.weekday())
        if self._settings.closed_on_holidays:
            if not self._calendar.is_working_day(day):
                return None
            if hours is None:  # a make-up working day on a weekend
                hours = next(filter(None, map(self._settings.hours_on, range(5))), None)
        if hours is None:
            return None
        start, end = hours
        return Window(datetime.combine(day, start, tzinfo=self._tz),
                      datetime.combine(day, end, tzinfo=self._tz))

    def _windows_from(self, moment: datetime) -> Iterator[Window]:
        """The openings that end after ``moment``, in order (at most a year ahead)."""
        day = moment.astimezone(self._tz).date()
        for offset in range(_SEARCH_DAYS):
            found = self.window(day + timedelta(days=offset))
            if found is not None and found.end > moment:
                yield found

    def is_open(self, moment: datetime) -> bool:
        found = self.window(moment.astimezone(self._tz).date())
        return found is not None and found.start <= moment < found.end

    def next_open(self, moment: datetime) -> datetime | None:
        """``moment`` itself when open, else when the office next opens (None: never)."""
        for found in self._windows_from(moment):
            return max(found.start, moment)
        return None

    def add(self, moment: datetime, duration: timedelta) -> datetime | None:
        """The moment at which ``duration`` of open time has passed since ``moment``."""
        left = duration
        for found in self._windows_from(moment):
            begin = max(found.start, moment)
            if begin + left <= found.end:
                return begin + left
            left -= found.end - begin
        return None

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Open time from ``start`` to ``end`` (zero when ``end`` is not after ``start``)."""
        total = timedelta()
        if end <= start:
            return total
        for found in self._windows_from(start):
            if found.start >= end:
                break
            total += min(found.end, end) - max(found.start, start)
        return total
