"""Renewal cadence walked day by day, reminders stopping at renewal or cancellation, the
holiday-aware extra reminder, lapse rescue, and catch-up staleness."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

import pytest

from scheduler import renewal
from scheduler.cn_calendar import work_calendar
from scheduler.config import RenewalSettings
from scheduler.context import PlanContext
from scheduler.plan import run_plan
from storage.models import Category, Message, PolicyStatus, Product
from tests import factories

END = date(2026, 12, 1)  # a Tuesday, no holiday near it
NATIONAL_DAY_END = date(2026, 10, 5)  # inside National Day 2026 (1-7 October)
POLICY_KINDS = ["renewal", "renewal_holiday", "lapse_rescue"]


def _ctx(day: date, today: date | None = None, **renewal_settings: object) -> PlanContext:
    return PlanContext(day=day, today=today or day,
                       renewal=RenewalSettings(**renewal_settings))  # type: ignore[arg-type]


async def _walk(first: date, last: date) -> dict[date, list[str]]:
    """Plan every day in [first, last]; the keys each day queued."""
    seen = set(await Message.filter(kind__in=POLICY_KINDS).values_list("dedup_key", flat=True))
    by_day: dict[date, list[str]] = {}
    day = first
    while day <= last:
        await run_plan(_ctx(day))
        keys = set(await Message.filter(kind__in=POLICY_KINDS).values_list("dedup_key",
                                                                             flat=True))
        if new := keys - seen:
            by_day[day] = sorted(new)
        seen = keys
        day += timedelta(days=1)
    return by_day


# -- pure ------------------------------------------------------------------------------------


def test_offsets_must_be_two_days_apart() -> None:
    with pytest.raises(ValueError, match="at least 2 days apart"):
        RenewalSettings(offsets=[30, 10, 9])


def test_a_missed_reminder_is_superseded_by_a_later_one_due_by_today() -> None:
    offsets = [60, 30, 23, 16, 9, 2]
    assert renewal.offsets_due(date(2026, 11, 1), date(2026, 11, 1), offsets) == offsets
    # catching up 1 Nov on 3 Nov: T-2 (end 3 Nov) still in force, nothing later is due
    assert 2 in renewal.offsets_due(date(2026, 11, 1), date(2026, 11, 3), offsets)
    # catching up 1 Nov on 4 Nov: the policy ending 3 Nov has expired
    assert 2 not in renewal.offsets_due(date(2026, 11, 1), date(2026, 11, 4), offsets)
    # T-9 with gap 7: catching up 8 days late, T-2 of the same policy is due too
    assert 9 not in renewal.offsets_due(date(2026, 11, 1), date(2026, 11, 8), offsets)
    assert 9 in renewal.offsets_due(date(2026, 11, 1), date(2026, 11, 7), offsets)


def test_holiday_reminder_goes_three_working_days_before_national_day() -> None:
    settings, calendar = RenewalSettings(), work_calendar()
    period = calendar.period_containing(NATIONAL_DAY_END)
    assert period is not None
    assert (period.code, period.first, period.last) == (
        "national_day", date(2026, 10, 1), date(2026, 10, 7))
    # 30 Sep, 29 Sep, 28 Sep are the three working days before 1 October
    reminder = renewal.holiday_reminder(NATIONAL_DAY_END, settings, calendar)
    assert reminder is not None and reminder.day == date(2026, 9, 28)


def test_holiday_reminder_moves_earlier_off_a_regular_reminder_and_its_neighbours() -> None:
    settings, calendar = RenewalSettings(), work_calendar()
    # expiry 7 Oct: T-9 is 28 Sep; 25 Sep is Mid-Autumn (a day off), 24 Sep is free
    reminder = renewal.holiday_reminder(date(2026, 10, 7), settings, calendar)
    assert reminder is not None and reminder.day == date(2026, 9, 24)
    # expiry 1 Oct: T-2 is 29 Sep, next to 28 Sep
    reminder = renewal.holiday_reminder(date(2026, 10, 1), settings, calendar)
    assert reminder is not None and reminder.day == date(2026, 9, 24)
    for end in (date(2026, 10, d) for d in range(1, 8)):
        days = sorted(renewal.schedule_for(end, settings, calendar))
        assert all((b - a).days >= 2 for a, b in pairwise(days)), end


def test_expiry_outside_long_holidays_gets_no_extra_reminder() -> None:
    calendar = work_calendar()
    for end in (date(2026, 10, 8), date(2026, 9, 25), END, date(2026, 4, 5)):
        assert renewal.holiday_reminder(end, RenewalSettings(), calendar) is None


def test_spring_festival_and_labour_day_periods_include_substituted_days() -> None:
    calendar = work_calendar()
    assert [(p.code, p.first, p.last) for p in calendar.long_holidays(2026)] == [
        ("spring_festival", date(2026, 2, 15), date(2026, 2, 23)),
        ("labour_day", date(2026, 5, 1), date(2026, 5, 5)),
        ("national_day", date(2026, 10, 1), date(2026, 10, 7)),
    ]
    assert calendar.is_working_day(date(2026, 9, 20))  # a make-up Sunday
    assert not calendar.is_working_day(date(2026, 10, 6))  # substituted day off


# -- on a database -----------------------------------------------------------------------------


async def test_cadence_for_one_policy_walked_day_by_day_from_t_minus_61_to_t_plus_4(
    db: str,
) -> None:
    owner = await factories.customer()
    p = await factories.policy(owner, end=END)
    queued = await _walk(END - timedelta(days=61), END + timedelta(days=4))
    assert queued == {
        date(2026, 10, 2): [f"renewal:{p.id}:T-60"],
        date(2026, 11, 1): [f"renewal:{p.id}:T-30"],
        date(2026, 11, 8): [f"renewal:{p.id}:T-23"],
        date(2026, 11, 15): [f"renewal:{p.id}:T-16"],
        date(2026, 11, 22): [f"renewal:{p.id}:T-9"],
        date(2026, 11, 29): [f"renewal:{p.id}:T-2"],
        date(2026, 12, 4): [f"lapse:{p.id}"],
    }
    t16 = await Message.get(dedup_key=f"renewal:{p.id}:T-16")
    assert (t16.kind, t16.category, t16.template_key) == (
        "renewal", Category.REMINDER, "renewal_reminder")
    assert t16.params == {"name": owner.name, "plate": p.plate, "policy": p.number,
                          "days_left": 16, "expiry": {"zh-CN": "2026年12月1日",
                                                      "en": "1 Dec 2026"}}
    assert t16.not_before == datetime(2026, 11, 15, 0, 30, tzinfo=UTC)
    assert t16.stale_after == datetime(2026, 12, 1, 16, 0, tzinfo=UTC)  # 2 Dec 00:00 Shanghai
    lapse = await Message.get(dedup_key=f"lapse:{p.id}")
    assert (lapse.template_key, lapse.params["expired_on"]["en"]) == ("lapse_rescue",
                                                                       "1 Dec 2026")
    assert lapse.stale_after == lapse.not_before + timedelta(days=7)


async def test_holiday_extra_reminder_for_expiry_inside_national_day_2026(db: str) -> None:
    owner = await factories.customer()
    p = await factories.policy(owner, end=NATIONAL_DAY_END)
    queued = await _walk(date(2026, 9, 1), date(2026, 10, 9))
    assert queued == {
        date(2026, 9, 5): [f"renewal:{p.id}:T-30"],
        date(2026, 9, 12): [f"renewal:{p.id}:T-23"],
        date(2026, 9, 19): [f"renewal:{p.id}:T-16"],
        date(2026, 9, 26): [f"renewal:{p.id}:T-9"],
        date(2026, 9, 28): [f"renewal_holiday:{p.id}:national_day:2026"],
        date(2026, 10, 3): [f"renewal:{p.id}:T-2"],
        date(2026, 10, 8): [f"lapse:{p.id}"],
    }
    extra = await Message.get(dedup_key=f"renewal_holiday:{p.id}:national_day:2026")
    assert extra.template_key == "renewal_holiday"
    assert extra.params["holiday"] == {"zh-CN": "国庆", "en": "National Day"}
    assert extra.params["expiry"] == {"zh-CN": "2026年10月5日", "en": "5 Oct 2026"}
    assert extra.stale_after == datetime(2026, 9, 30, 16, 0, tzinfo=UTC)  # the holiday starts


async def test_reminders_stop_after_a_renewal_is_recorded(db: str) -> None:
    owner = await factories.customer()
    old = await factories.policy(owner, end=END)
    await _walk(date(2026, 11, 1), date(2026, 11, 10))
    # the import records the renewal: successor linked, old policy marked renewed
    new = await factories.policy(owner, end=date(2027, 12, 1), plate=old.plate,
                                 start_date=date(2026, 12, 2))
    old.renewed_by = new
    old.status = PolicyStatus.RENEWED
    old.renewed_at = datetime(2026, 11, 10, 3, 0, tzinfo=UTC)
    await old.save()
    later = await _walk(date(2026, 11, 11), END + timedelta(days=7))
    assert later == {}
    assert sorted(await Message.filter(kind__in=POLICY_KINDS).values_list(
        "dedup_key", flat=True)) == [f"renewal:{old.id}:T-23", f"renewal:{old.id}:T-30"]


async def test_a_newer_policy_for_the_same_car_stops_reminders_even_unlinked(db: str) -> None:
    owner = await factories.customer()
    old = await factories.policy(owner, end=END)
    other_product = await factories.policy(owner, end=END, plate=old.plate,
                                           product=Product.COMPULSORY)
    await factories.policy(owner, end=date(2027, 12, 1), plate=old.plate)
    await run_plan(_ctx(END - timedelta(days=16)))
    await run_plan(_ctx(END + timedelta(days=3)))
    assert sorted(await Message.all().values_list("dedup_key", flat=True)) == [
        f"lapse:{other_product.id}", f"renewal:{other_product.id}:T-16"]


async def test_cancelled_policy_gets_neither_reminders_nor_rescue(db: str) -> None:
    owner = await factories.customer()
    p = await factories.policy(owner, end=END)
    await run_plan(_ctx(END - timedelta(days=30)))
    p.status = PolicyStatus.CANCELLED
    p.cancelled_at = datetime(2026, 11, 5, tzinfo=UTC)
    await p.save()
    await _walk(END - timedelta(days=23), END + timedelta(days=4))
    assert await Message.all().values_list("dedup_key", flat=True) == [f"renewal:{p.id}:T-30"]


async def test_expired_status_policy_still_gets_its_rescue(db: str) -> None:
    owner = await factories.customer()
    p = await factories.policy(owner, end=END, status=PolicyStatus.EXPIRED)
    result = await run_plan(_ctx(END + timedelta(days=3)))
    assert result.counts["lapse_rescue"] == 1
    assert await Message.filter(dedup_key=f"lapse:{p.id}").exists()


async def test_catch_up_sends_a_still_useful_reminder_with_days_left_from_today(db: str) -> None:
    owner = await factories.customer()
    p = await factories.policy(owner, end=END)
    missed = END - timedelta(days=9)
    result = await run_plan(_ctx(missed, today=missed + timedelta(days=3)))
    assert result.counts["renewal"] == 1
    msg = await Message.get(dedup_key=f"renewal:{p.id}:T-9")
    assert msg.params["days_left"] == 6
    # a lapse rescue is useful for a week; eight days late it is not planned
    assert (await run_plan(_ctx(END + timedelta(days=3), today=END + timedelta(days=11)))
            ).counts["lapse_rescue"] == 0
    assert (await run_plan(_ctx(END + timedelta(days=3), today=END + timedelta(days=9)))
            ).counts["lapse_rescue"] == 1
