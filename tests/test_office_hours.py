"""Holiday overrides and office hours: pure calendar arithmetic, no I/O."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from bot.settings import ConfigError, load_settings
from scheduler.cn_calendar import WorkCalendar
from scheduler.config import HolidaySettings, OfficeHoursSettings
from scheduler.office_hours import OfficeHours

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI)


def office(calendar: WorkCalendar | None = None, **hours: object) -> OfficeHours:
    return OfficeHours(OfficeHoursSettings.model_validate(hours), calendar or WorkCalendar(),
                       SHANGHAI)


def test_days_off_in_the_config_lengthen_a_long_holiday_the_package_lists_shorter() -> None:
    plain = WorkCalendar()
    national_day = [p for p in plain.long_holidays(2027) if p.code == "national_day"]
    assert national_day and national_day[0].last < date(2027, 10, 7)
    extended = WorkCalendar(days_off=[date(2027, 10, d) for d in range(1, 8)])
    period = extended.period_containing(date(2027, 10, 7))
    assert period is not None
    assert (period.code, period.first, period.last) == (
        "national_day", date(2027, 10, 1), date(2027, 10, 7))


def test_a_configured_working_day_wins_over_the_package() -> None:
    saturday = date(2027, 9, 25)
    assert not WorkCalendar().is_working_day(saturday)
    assert WorkCalendar(working_days=[saturday]).is_working_day(saturday)
    holiday = date(2026, 10, 2)
    assert WorkCalendar(working_days=[holiday]).is_working_day(holiday)


def test_one_day_cannot_be_both_off_and_working() -> None:
    with pytest.raises(ValidationError, match="both a day off and a working day"):
        HolidaySettings(days_off=[date(2027, 10, 6)], working_days=[date(2027, 10, 6)])


def test_holiday_overrides_come_from_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ENGAGE_CONFIG", raising=False)
    path = tmp_path / "config.toml"
    path.write_text('[holidays]\ndays_off = ["2027-10-06", "2027-10-07"]\n', encoding="utf-8")
    settings = load_settings(path)
    assert not settings.holidays.calendar().is_working_day(date(2027, 10, 6))
    path.write_text('[office_hours]\nmonday = "18:00-09:00"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"office_hours\.monday"):
        load_settings(path)


def test_open_within_the_weekday_hours_only() -> None:
    hours = office()
    monday = date(2026, 12, 7)
    assert not hours.is_open(at(monday, 8, 59))
    assert hours.is_open(at(monday, 9, 0))
    assert hours.is_open(at(monday, 17, 59))
    assert not hours.is_open(at(monday, 18, 0))
    assert not hours.is_open(at(date(2026, 12, 5), 10))  # Saturday


def test_next_open_skips_the_night_the_weekend_and_national_day() -> None:
    hours = office()
    assert hours.next_open(at(date(2026, 12, 4), 19)) == at(date(2026, 12, 7), 9)
    # 30 September 2026 evening: National Day runs 1-7 October, 10 October (Saturday) is worked
    assert hours.next_open(at(date(2026, 9, 30), 18, 30)) == at(date(2026, 10, 8), 9)
    assert hours.next_open(at(date(2026, 10, 9), 18, 30)) == at(date(2026, 10, 10), 9)
    assert hours.next_open(at(date(2026, 12, 7), 10)) == at(date(2026, 12, 7), 10)


def test_hours_open_every_day_when_holidays_are_not_closed() -> None:
    hours = office(closed_on_holidays=False, saturday="10:00-16:00")
    national_day = date(2026, 10, 1)  # a Thursday
    assert hours.is_open(at(national_day, 10))
    assert hours.next_open(at(date(2026, 10, 2), 19)) == at(date(2026, 10, 3), 10)


def test_adding_working_hours_counts_only_open_time() -> None:
    hours = office()
    friday = date(2026, 12, 4)
    assert hours.add(at(friday, 17), timedelta(hours=4)) == at(date(2026, 12, 7), 12)
    assert hours.add(at(friday, 10), timedelta(hours=4)) == at(friday, 14)
    assert hours.add(at(friday, 20), timedelta(hours=1)) == at(date(2026, 12, 7), 10)
    assert hours.add(at(date(2026, 9, 30), 16), timedelta(hours=4)) == at(date(2026, 10, 8), 11)


def test_open_time_between_two_moments() -> None:
    hours = office()
    friday = date(2026, 12, 4)
    assert hours.between(at(friday, 17), at(date(2026, 12, 7), 10)) == timedelta(hours=2)
    assert hours.between(at(friday, 19), at(date(2026, 12, 6), 23)) == timedelta()
    assert hours.between(at(friday, 12), at(friday, 11)) == timedelta()


def test_a_make_up_weekend_day_keeps_weekday_hours() -> None:
    hours = office(monday="08:30-17:30")
    sunday_worked = date(2026, 9, 20)  # make-up working day before National Day
    found = hours.window(sunday_worked)
    assert found is not None
    assert (found.start, found.end) == (at(sunday_worked, 8, 30), at(sunday_worked, 17, 30))


def test_an_office_never_open_has_no_next_opening() -> None:
    closed = dict.fromkeys(("monday", "tuesday", "wednesday", "thursday", "friday"), "")
    hours = office(**closed)
    assert hours.next_open(at(date(2026, 12, 7), 10)) is None
    assert hours.add(at(date(2026, 12, 7), 10), timedelta(hours=1)) is None
