"""The scheduler's jobs with an injected clock: due days, catch-up after missed days, running
twice queueing nothing new, weather outage left for the next run, the points job."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from loyalty.ledger import credit
from scheduler import runs
from scheduler.config import ScheduleSettings
from scheduler.context import PlanContext
from scheduler.forecast import DayForecast, ForecastUnavailable, Place, StaticForecast
from scheduler.jobs import PLAN, POINTS, WEATHER, Jobs, SchedulerSettings
from scheduler.plan import dry_run, run_plan
from storage.loyalty_models import EntryKind
from storage.models import Message, Region
from storage.scheduler_models import SchedulerRun
from tests import factories

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class ScriptedForecast(StaticForecast):
    """The static forecast, or a provider outage while ``down``."""

    def __init__(self, days: Sequence[DayForecast] = ()) -> None:
        super().__init__(days)
        self.down = False
        self.calls = 0

    async def daily(self, places: Sequence[Place], start: date, end: date) -> list[DayForecast]:
        self.calls += 1
        if self.down:
            raise ForecastUnavailable("HTTP 503: down", retryable=True)
        return await super().daily(places, start, end)


def _jobs(clock: Clock, forecast: ScriptedForecast | None = None,
          **schedule: object) -> Jobs:
    settings = SchedulerSettings(schedule=ScheduleSettings(**schedule))  # type: ignore[arg-type]
    return Jobs(settings, clock=clock, forecast=forecast or ScriptedForecast())


# -- pure ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "last", "expected"),
    [
        # first run ever: today only, once its time has come
        (_at(date(2026, 11, 21), 8, 29), None, []),
        (_at(date(2026, 11, 21), 8, 30), None, [date(2026, 11, 21)]),
        # yesterday done: today when due
        (_at(date(2026, 11, 21), 7, 0), date(2026, 11, 20), []),
        (_at(date(2026, 11, 21), 9, 0), date(2026, 11, 20), [date(2026, 11, 21)]),
        # already done today
        (_at(date(2026, 11, 21), 23, 0), date(2026, 11, 21), []),
        # down for three days: the three missed days, then today
        (_at(date(2026, 11, 21), 9, 0), date(2026, 11, 17),
         [date(2026, 11, 18), date(2026, 11, 19), date(2026, 11, 20), date(2026, 11, 21)]),
        # started before the plan time: missed days only
        (_at(date(2026, 11, 21), 6, 0), date(2026, 11, 17),
         [date(2026, 11, 18), date(2026, 11, 19), date(2026, 11, 20)]),
        # down for ten days: at most catch_up_days (3) missed days
        (_at(date(2026, 11, 21), 9, 0), date(2026, 11, 10),
         [date(2026, 11, 18), date(2026, 11, 19), date(2026, 11, 20), date(2026, 11, 21)]),
    ],
)
def test_days_to_run(now: datetime, last: date | None, expected: list[date]) -> None:
    assert runs.days_to_run(now_local=now, at=time(8, 30), last=last,
                            catch_up_days=3) == expected


# -- on a database -----------------------------------------------------------------------------


async def test_catch_up_after_three_missed_days_sends_what_is_still_useful(db: str) -> None:
    first = date(2026, 11, 17)
    clock = Clock(_at(first, 8, 30))
    jobs = _jobs(clock)
    assert [d for d, _ in await jobs.plan()] == [first]

    missed = first + timedelta(days=2)  # 19 Nov
    birthday_missed = await factories.customer(birthday=date(1990, 11, 19), birthday_md=1119)
    birthday_today = await factories.customer(birthday=date(1990, 11, 21), birthday_md=1121)
    owner = await factories.customer()
    expiring = await factories.policy(owner, end=missed + timedelta(days=16))

    clock.now = _at(date(2026, 11, 21), 10, 0)  # back after three days down (18, 19, 20)
    done = await jobs.plan()

    assert [d for d, _ in done] == [date(2026, 11, d) for d in (18, 19, 20, 21)]
    keys = set(await Message.all().values_list("dedup_key", flat=True))
    assert keys == {f"renewal:{expiring.id}:T-16", f"birthday:{birthday_today.id}:2026"}
    assert f"birthday:{birthday_missed.id}:2026" not in keys  # three days late: not sent
    reminder = await Message.get(dedup_key=f"renewal:{expiring.id}:T-16")
    assert reminder.params["days_left"] == 14  # counted from the day it goes out
    recorded = await SchedulerRun.filter(job=PLAN).order_by("day").values_list("day", flat=True)
    assert recorded == [date(2026, 11, d) for d in (17, 18, 19, 20, 21)]


async def test_running_the_plan_twice_queues_nothing_new(db: str) -> None:
    day = date(2026, 11, 21)
    await factories.customer(birthday=date(1990, 11, 21), birthday_md=1121)
    owner = await factories.customer()
    await factories.policy(owner, end=day + timedelta(days=30))
    clock = Clock(_at(day, 8, 30))
    [(_, result)] = await _jobs(clock).plan()
    assert result.total == 2
    assert await _jobs(clock).plan() == []  # recorded: the job does not run the day again
    # and even forced to run it again, the dedup keys hold
    await SchedulerRun.all().delete()
    [(_, again)] = await _jobs(clock).plan()
    assert again.total == 0 and await Message.all().count() == 2


async def test_weather_outage_leaves_the_day_for_the_next_run(db: str) -> None:
    day = date(2026, 7, 1)
    region = await Region.create(code="shanghai", name="上海", latitude=31.23, longitude=121.47)
    owner = await factories.customer(region=region)
    await factories.policy(owner, end=date(2026, 12, 31))
    forecast = ScriptedForecast([DayForecast("shanghai", day, precipitation_mm=40.0)])
    forecast.down = True
    clock = Clock(_at(day, 6, 59))
    jobs = _jobs(clock, forecast)
    assert await jobs.weather() is None  # not yet 07:00
    clock.now = _at(day, 7, 0)
    result = await jobs.weather()
    assert result is not None and result.failed == ["shanghai"]
    assert not await runs.finished(WEATHER, day)
    forecast.down = False
    clock.now = _at(day, 7, 30)
    result = await jobs.weather()
    assert result is not None and result.queued == 1
    assert await runs.finished(WEATHER, day)
    assert await jobs.weather() is None and forecast.calls == 2


async def test_points_job_warns_before_expiry_and_expires_lots_after(db: str) -> None:
    owner = await factories.customer()
    settings = SchedulerSettings()
    await credit(owner.id, 120, kind=EntryKind.ADJUSTMENT, key="test:grant",
                 now=datetime(2024, 12, 15, 4, 0, tzinfo=UTC), settings=settings.loyalty,
                 reason="test")
    clock = Clock(_at(date(2026, 12, 10), 1, 0))  # the lot's last day is 31 Dec 2026
    jobs = _jobs(clock)
    counts = await jobs.points()
    assert counts == {"payments_settled": 0, "cancellations_settled": 0,
                      "referrals_settled": 0, "lots_expired": 0, "vouchers_expired": 0,
                      "warnings_queued": 1, "summaries_queued": 0}
    assert await jobs.points() is None
    warning = await Message.get(kind="points_expiring")
    assert warning.not_before == _at(date(2026, 12, 10), 8, 30)  # with the morning plan
    clock.now = _at(date(2027, 1, 1), 1, 0)
    counts = await jobs.points()
    assert counts is not None and counts["lots_expired"] == 1
    assert "tiers_downgraded" in counts  # 1 January: the annual tier review ran
    assert await SchedulerRun.filter(job=POINTS).count() == 2


async def test_points_job_settles_imported_payments_into_points(db: str) -> None:
    from loyalty.ledger import get_balance
    from storage.models import Payment

    owner = await factories.customer()
    cover = await factories.policy(owner)
    await Payment.create(external_id="PAY-1", policy=cover, customer=owner,
                         amount_cents=350_000, paid_at=datetime(2026, 12, 9, 2, 0, tzinfo=UTC))
    clock = Clock(_at(date(2026, 12, 10), 1, 0))
    counts = await _jobs(clock).points()
    assert counts is not None and counts["payments_settled"] == 1
    # ¥3,500 reaches Silver (≥ ¥3,000) at once, and the qualifying payment earns at its rate
    silver = SchedulerSettings().loyalty.tiers[1]
    assert silver.min_premium_cents <= 350_000
    assert await get_balance(owner.id) == round(3500 * silver.points_multiplier)


async def test_dry_run_counts_what_a_real_run_queues_and_writes_nothing(db: str) -> None:
    day = date(2026, 11, 21)
    await factories.customer(birthday=date(1990, 11, 21), birthday_md=1121)
    owner = await factories.customer()
    await factories.policy(owner, end=day + timedelta(days=9))
    await factories.policy(owner, end=day - timedelta(days=3))
    ctx = PlanContext(day=day, today=day)
    dry = await dry_run(ctx)
    assert await Message.all().count() == 0
    assert dry.counts == {"birthday": 1, "festival": 0, "renewal": 1, "renewal_holiday": 0,
                          "lapse_rescue": 1}
    assert [s.template_key for s in dry.samples["renewal"]] == ["renewal_reminder"]
    real = await run_plan(ctx)
    assert real.counts == dry.counts
    assert await Message.all().count() == 3
