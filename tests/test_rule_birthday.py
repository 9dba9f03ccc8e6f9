"""Birthday rule: 29 February in leap and common years, lunar birthdays over several years,
one greeting per customer per year, none sent late."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from scheduler import birthday
from scheduler.context import PlanContext
from scheduler.plan import run_plan
from storage.models import Category, Message
from tests import factories


def _ctx(day: date, today: date | None = None) -> PlanContext:
    return PlanContext(day=day, today=today or day)


async def _person(born: date, *, lunar: bool = False, **extra: object) -> int:
    """A customer insured from 2025 to 2029 (care reaches only policyholders)."""
    c = await factories.customer(birthday=born, birthday_md=born.month * 100 + born.day,
                                 lunar_birthday=lunar, **extra)
    await factories.policy(c, start_date=date(2025, 1, 1), end=date(2029, 12, 31))
    return c.id


async def _sink(items: object) -> int:
    from storage.outbox import enqueue_many

    return await enqueue_many(items, batch_size=3)  # type: ignore[arg-type]


# -- pure ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("year", "expected"),
    [(2024, date(2024, 2, 29)), (2025, date(2025, 2, 28)), (2026, date(2026, 2, 28)),
     (2028, date(2028, 2, 29)), (2100, date(2100, 2, 28))],
)
def test_feb_29_birthday_is_greeted_on_feb_28_in_common_years(year: int, expected: date) -> None:
    assert birthday.solar_greeting_day(date(1992, 2, 29), year) == expected


def test_feb_28_in_a_common_year_also_selects_feb_29_births() -> None:
    assert birthday.solar_month_days_on(date(2026, 2, 28)) == [228, 229]
    assert birthday.solar_month_days_on(date(2028, 2, 28)) == [228]
    assert birthday.solar_month_days_on(date(2028, 2, 29)) == [229]


# Born 1990-05-20 = lunar 1990/4/26. Its lunar anniversaries:
LUNAR_BORN = date(1990, 5, 20)


@pytest.mark.parametrize(
    ("lunar_year", "expected"),
    [(2025, date(2025, 5, 23)), (2026, date(2026, 6, 11)), (2027, date(2027, 5, 31)),
     (2028, date(2028, 5, 20))],
)
def test_lunar_birthday_moves_with_the_lunar_calendar(lunar_year: int, expected: date) -> None:
    assert birthday.lunar_greeting_day(LUNAR_BORN, lunar_year) == expected
    assert LUNAR_BORN in birthday.lunar_birth_dates_on(expected)


def test_lunar_day_30_missing_that_year_is_greeted_on_day_29() -> None:
    born = date(2001, 2, 22)  # lunar 2001/1/30
    assert birthday.lunar_greeting_day(born, 2026) == date(2026, 3, 18)  # month 1 has 30 days
    assert birthday.lunar_greeting_day(born, 2024) == date(2024, 3, 9)  # 29 days: day 29
    assert born in birthday.lunar_birth_dates_on(date(2024, 3, 9))
    assert born not in birthday.lunar_birth_dates_on(date(2026, 3, 17))  # 2026's day 29


def test_leap_month_birth_is_greeted_in_the_ordinary_month() -> None:
    born = date(2023, 4, 1)  # lunar 2023 leap 2/11
    assert birthday.lunar_greeting_day(born, 2024) == date(2024, 3, 20)  # lunar 2024/2/11
    assert birthday.lunar_birth_dates_on(date(2023, 4, 1)) == []  # no anniversaries in leap months


# -- on a database -----------------------------------------------------------------------------


async def test_feb_29_customer_is_greeted_once_per_year_across_leap_and_common_years(
    db: str,
) -> None:
    leapling = await _person(date(1992, 2, 29))
    feb28 = await _person(date(1990, 2, 28))
    for day in (date(2026, 2, 27), date(2026, 2, 28), date(2026, 3, 1)):
        await run_plan(_ctx(day))
    for day in (date(2028, 2, 28), date(2028, 2, 29)):
        await run_plan(_ctx(day))
    keys = {m.dedup_key: m.not_before.date() for m in await Message.filter(kind="birthday")}
    assert keys == {
        f"birthday:{leapling}:2026": date(2026, 2, 28),
        f"birthday:{feb28}:2026": date(2026, 2, 28),
        f"birthday:{feb28}:2028": date(2028, 2, 28),
        f"birthday:{leapling}:2028": date(2028, 2, 29),
    }


async def test_lunar_birthday_customers_are_greeted_on_their_lunar_day_each_year(db: str) -> None:
    lunar = await _person(LUNAR_BORN, lunar=True)
    solar = await _person(LUNAR_BORN)
    greeted: dict[date, set[int]] = {}
    for day in (date(2026, 5, 20), date(2026, 6, 11), date(2027, 5, 20), date(2027, 5, 31),
                date(2028, 5, 20)):
        await birthday.queue(_ctx(day), _sink)
        greeted[day] = {m.customer_id for m in await Message.filter(
            kind="birthday", dedup_key__endswith=f":{day.year}")}
    assert greeted[date(2026, 5, 20)] == {solar}
    assert greeted[date(2026, 6, 11)] == {solar, lunar}
    assert greeted[date(2027, 5, 20)] == {solar}
    assert greeted[date(2027, 5, 31)] == {solar, lunar}
    assert greeted[date(2028, 5, 20)] == {solar, lunar}  # 2028: lunar and solar coincide
    assert await Message.filter(customer_id=lunar).count() == 3


async def test_greeting_carries_name_care_category_morning_time_and_end_of_day_staleness(
    db: str,
) -> None:
    who = await _person(date(1985, 11, 21), name="王五", timezone="Europe/London")
    await run_plan(_ctx(date(2026, 11, 21)))
    msg = await Message.get(customer_id=who)
    assert (msg.dedup_key, msg.kind, msg.category, msg.template_key, msg.params) == (
        f"birthday:{who}:2026", "birthday", Category.CARE, "birthday", {"name": "王五"})
    assert msg.not_before == datetime(2026, 11, 21, 8, 30, tzinfo=UTC)  # 08:30 in London
    assert msg.stale_after == datetime(2026, 11, 22, 0, 0, tzinfo=UTC)  # midnight in London


async def test_missed_birthday_is_not_greeted_late_on_catch_up(db: str) -> None:
    await _person(date(1985, 11, 21))
    result = await run_plan(_ctx(date(2026, 11, 21), today=date(2026, 11, 23)))
    assert result.counts["birthday"] == 0
    assert await Message.all().count() == 0
