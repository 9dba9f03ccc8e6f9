"""The Chinese calendars the rules need: lunar dates, and the official days off and working days.

Lunar dates come from ``lunardate`` (valid for lunar years 1900-2099). Official days off come
from ``holidays.China``, which lists the public holidays and the substituted days off, and
exposes the make-up working weekends (调休) as ``weekend_workdays``: a working day is a day
that is not a holiday and is either a weekday or a make-up weekend. A *long holiday period* is
a maximal run of consecutive non-working days containing Spring Festival, Labour Day or
National Day (e.g. National Day 2026: 1-7 October, with 20 September and 10 October worked).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import Final, Literal

from holidays.countries.china import China
from lunardate import LunarDate

HolidayCode = Literal["spring_festival", "labour_day", "national_day"]

# Matched against the library's English holiday names (a day may carry several, "; "-joined).
_LONG_HOLIDAY_MARKERS: Final[tuple[tuple[str, HolidayCode], ...]] = (
    ("Chinese New Year", "spring_festival"),
    ("Labor Day", "labour_day"),
    ("National Day", "national_day"),
)
_ONE_DAY: Final = timedelta(days=1)
LUNAR_YEARS: Final = range(1900, 2100)


# -- lunar calendar ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lunar:
    year: int
    month: int
    day: int
    leap: bool


def to_lunar(day: date) -> Lunar | None:
    """The lunar date of a solar date, or None outside the library's range."""
    try:
        value = LunarDate.from_solar_date(day.year, day.month, day.day)
    except (ValueError, IndexError):
        return None
    return Lunar(value.year, value.month, value.day, bool(value.is_leap_month))


def lunar_to_solar(year: int, month: int, day: int, *, leap: bool = False) -> date | None:
    """The solar date of a lunar date, or None if that date does not exist.

    ``lunardate`` silently rolls an impossible day 30 over into the next month, so the result
    is converted back and checked.
    """
    if year not in LUNAR_YEARS:
        return None
    try:
        solar = LunarDate(year, month, day, leap).to_solar_date()
    except (ValueError, IndexError):
        return None
    back = to_lunar(solar)
    if back != Lunar(year, month, day, leap):
        return None
    return date(solar.year, solar.month, solar.day)


def lunar_anniversary(year: int, month: int, day: int) -> date | None:
    """The solar date on which lunar ``month``/``day`` falls in lunar ``year``.

    Anniversaries are kept in the ordinary (non-leap) month, and a day 30 that the month
    lacks that year becomes day 29 — the customary reading.
    """
    solar = lunar_to_solar(year, month, day)
    if solar is None and day == 30:
        solar = lunar_to_solar(year, month, 29)
    return solar


def lunar_dates_falling_on(day: date) -> list[tuple[int, int]]:
    """The lunar (month, day) anniversaries that fall on solar ``day``.

    Nothing in a leap month (anniversaries keep to the ordinary month); on day 29 of a
    29-day month, day 30 is celebrated too.
    """
    lunar = to_lunar(day)
    if lunar is None or lunar.leap:
        return []
    pairs = [(lunar.month, lunar.day)]
    if lunar.day == 29 and lunar_to_solar(lunar.year, lunar.month, 30) is None:
        pairs.append((lunar.month, 30))
    return pairs


def solar_dates_with_lunar(month: int, day: int, *, until: date) -> list[date]:
    """Every solar date up to ``until`` whose lunar date is ``month``/``day`` (leap or not).

    These are the possible solar birthdays of someone born on that lunar date: about two
    hundred dates, one or two a year.
    """
    out: list[date] = []
    for year in range(LUNAR_YEARS.start, min(until.year, LUNAR_YEARS.stop - 1) + 1):
        for leap in (False, True):
            solar = lunar_to_solar(year, month, day, leap=leap)
            if solar is not None and solar <= until:
                out.append(solar)
    return out


# -- official holidays and working days -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HolidayPeriod:
    """A run of consecutive official days off containing one of the long holidays."""

    code: HolidayCode
    first: date
    last: date

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.first <= day <= self.last

    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]


class WorkCalendar:
    """Mainland China's working days and long holiday periods, per the ``holidays`` library,
    corrected by the operator's overrides.

    The State Council publishes each year's schedule late in the year before, and the library
    can lag behind it: ``days_off`` are official days off the library misses, ``working_days``
    make-up working days (调休) it misses or days it wrongly lists as off. An override wins
    over the library for that day; a day off added next to a long holiday lengthens it.
    """

    def __init__(self, *, days_off: Iterable[date] = (),
                 working_days: Iterable[date] = ()) -> None:
        self._cal = China(language="en_US")  # type: ignore[no-untyped-call]
        self._periods: dict[int, tuple[HolidayPeriod, ...]] = {}
        self._days_off = frozenset(days_off)
        self._working_days = frozenset(working_days)
        if clash := self._days_off & self._working_days:
            raise ValueError(f"{min(clash)} cannot be both a day off and a working day")

    def is_working_day(self, day: date) -> bool:
        if day in self._working_days:
            return True
        if day in self._days_off:
            return False
        return bool(self._cal.is_working_day(day))

    def next_working_day(self, day: date) -> date:
        day += _ONE_DAY
        while not self.is_working_day(day):
            day += _ONE_DAY
        return day

    def previous_working_day(self, day: date) -> date:
        day -= _ONE_DAY
        while not self.is_working_day(day):
            day -= _ONE_DAY
        return day

    def working_days_before(self, day: date, count: int) -> date:
        """The ``count``-th working day before ``day`` (1 = the last working day before it)."""
        for _ in range(count):
            day = self.previous_working_day(day)
        return day

    def _code(self, day: date) -> HolidayCode | None:
        name = self._cal.get(day)
        if not name:
            return None
        for marker, code in _LONG_HOLIDAY_MARKERS:
            if marker in name:
                return code
        return None

    def long_holidays(self, year: int) -> list[HolidayPeriod]:
        """The long holiday periods that start in ``year``, in date order."""
        if year not in self._periods:
            self._periods[year] = _find_periods(self, year)
        return list(self._periods[year])

    def long_holidays_starting(self, after: date, until: date) -> list[HolidayPeriod]:
        """The long holiday periods whose first day is in (after, until]."""
        found: list[HolidayPeriod] = []
        for year in range(after.year, until.year + 1):
            found.extend(p for p in self.long_holidays(year) if after < p.first <= until)
        return found

    def period_containing(self, day: date) -> HolidayPeriod | None:
        for year in (day.year - 1, day.year):
            for period in self.long_holidays(year):
                if day in period:
                    return period
        return None


def _find_periods(calendar: WorkCalendar, year: int) -> tuple[HolidayPeriod, ...]:
    periods: list[HolidayPeriod] = []
    day = date(year, 1, 1)
    # A period starting on 1 January may have begun in the previous year: step back first.
    while not calendar.is_working_day(day - _ONE_DAY):
        day -= _ONE_DAY
    end = date(year, 12, 31)
    while day <= end:
        if calendar.is_working_day(day):
            day += _ONE_DAY
            continue
        first = day
        codes: list[HolidayCode] = []
        while not calendar.is_working_day(day):
            if (code := calendar._code(day)) is not None and code not in codes:
                codes.append(code)
            day += _ONE_DAY
        if codes and first.year == year:
            periods.append(HolidayPeriod(codes[0], first, day - _ONE_DAY))
    return tuple(periods)


@lru_cache(maxsize=8)
def work_calendar(days_off: tuple[date, ...] = (),
                  working_days: tuple[date, ...] = ()) -> WorkCalendar:
    """The shared calendar for one set of overrides (building ``holidays.China`` per call
    would be wasteful)."""
    return WorkCalendar(days_off=days_off, working_days=working_days)
