"""The scheduler's jobs with an injected clock: due days, catch-up after missed days, running
twice queueing nothing new, weather outage left for the next run, the points job."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from loyalty.earning import check_in, earn_for_payment
from loyalty.ledger import credit
from scheduler import points_expiry, runs
from scheduler.config import ScheduleSettings
from scheduler.context import PlanContext
from scheduler.forecast import DayForecast, ForecastUnavailable, Place, StaticForecast
from scheduler.jobs import PLAN, POINTS, TIER_REVIEW, WEATHER, Jobs, SchedulerSettings
from scheduler.plan import dry_run, run_plan
from storage.loyalty_models import EntryKind, LoyaltyAccount, TierChange
from storage.models import Customer, Message, Payment, PaymentKind, Region
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


@pytest.mark.parametrize(
    ("last", "first_due", "expected"),
    [
        (None, date(2027, 1, 8), None),  # fresh install: no backfill
        (date(2026, 12, 30), date(2026, 12, 31), None),  # 1 January is still to come
        (date(2026, 12, 30), date(2027, 1, 1), None),  # 1 January is among the days run
        (date(2026, 12, 28), date(2027, 1, 5), date(2027, 1, 1)),  # beyond catch-up
        (date(2027, 1, 1), date(2027, 1, 5), None),  # held on the day
        (date(2024, 6, 1), date(2027, 3, 1), date(2027, 1, 1)),  # only the latest of several
    ],
)
def test_skipped_review_day(last: date | None, first_due: date,
                            expected: date | None) -> None:
    assert points_expiry.skipped_review_day(last, first_due) == expected


# -- on a database -----------------------------------------------------------------------------


async def test_catch_up_after_three_missed_days_sends_what_is_still_useful(db: str) -> None:
    first = date(2026, 11, 17)
    clock = Clock(_at(first, 8, 30))
    jobs = _jobs(clock)
    assert [d for d, _ in await jobs.plan()] == [first]

    missed = first + timedelta(days=2)  # 19 Nov
    birthday_missed = await factories.policyholder(birthday=date(1990, 11, 19),
                                                   birthday_md=1119)
    birthday_today = await factories.policyholder(birthday=date(1990, 11, 21),
                                                  birthday_md=1121)
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
    await factories.policyholder(birthday=date(1990, 11, 21), birthday_md=1121)
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
    [(day, counts)] = await jobs.points()
    assert day == date(2026, 12, 10)
    assert counts == {"payments_settled": 0, "cancellations_settled": 0,
                      "referrals_settled": 0, "payments_corrected": 0, "lots_expired": 0,
                      "vouchers_expired": 0,
                      "warnings_queued": 1, "summaries_queued": 0}
    assert await jobs.points() == []
    warning = await Message.get(kind="points_expiring")
    assert warning.not_before == _at(date(2026, 12, 10), 8, 30)  # with the morning plan
    clock.now = _at(date(2027, 1, 1), 1, 0)
    done = await jobs.points()  # three missed days, then 1 January
    assert [d for d, _ in done] == [date(2026, 12, d) for d in (29, 30, 31)] + [date(2027, 1, 1)]
    counts = done[-1][1]
    assert counts["lots_expired"] == 1
    assert "tiers_downgraded" in counts  # 1 January: the annual tier review ran
    assert await SchedulerRun.filter(job=POINTS).count() == 5


async def test_points_job_settles_imported_payments_into_points(db: str) -> None:
    from loyalty.ledger import get_balance
    from storage.models import Payment

    owner = await factories.customer()
    cover = await factories.policy(owner)
    await Payment.create(external_id="PAY-1", policy=cover, customer=owner,
                         amount_cents=350_000, paid_at=datetime(2026, 12, 9, 2, 0, tzinfo=UTC))
    clock = Clock(_at(date(2026, 12, 10), 1, 0))
    [(_, counts)] = await _jobs(clock).points()
    assert counts["payments_settled"] == 1
    # ¥3,500 reaches Silver (≥ ¥3,000) at once, and the qualifying payment earns at its rate
    silver = SchedulerSettings().loyalty.tiers[1]
    assert silver.min_premium_cents <= 350_000
    assert await get_balance(owner.id) == round(3500 * silver.points_multiplier)
    # The core system corrects the amount and it is imported again: the next run follows.
    await Payment.filter(external_id="PAY-1").update(amount_cents=400_000)
    clock.now = _at(date(2026, 12, 11), 1, 0)
    [(_, counts)] = await _jobs(clock).points()
    assert (counts["payments_settled"], counts["payments_corrected"]) == (0, 1)
    assert await get_balance(owner.id) == round(4000 * silver.points_multiplier)


# -- the points job over New Year ---------------------------------------------------------------

OLD_PAYMENT = datetime(2025, 11, 1, 2, 0, tzinfo=UTC)  # before the 2026 review window


async def _gold(paid_at: datetime = OLD_PAYMENT) -> Customer:
    owner = await factories.customer()
    cover = await factories.policy(owner)
    payment = await Payment.create(external_id=f"GOLD-{owner.id}", policy=cover, customer=owner,
                                   amount_cents=650_000, paid_at=paid_at)
    await earn_for_payment(payment.id, settings=SchedulerSettings().loyalty, now=paid_at)
    assert await _tier(owner) == "gold"
    return owner


async def _import_payment(owner: Customer, cents: int, paid_at: datetime,
                          kind: PaymentKind = PaymentKind.PREMIUM) -> None:
    """A payment the core-system import brought in while the scheduler was down (the points
    job settles it)."""
    cover = await factories.policy(owner)
    await Payment.create(external_id=f"IMP-{owner.id}-{paid_at:%m%d}", policy=cover,
                         customer=owner, kind=kind, amount_cents=cents, paid_at=paid_at)


async def _tier(owner: Customer) -> str:
    return (await LoyaltyAccount.get(customer_id=owner.id)).tier


async def _check_in_daily(owner: Customer, first: date, last: date) -> None:
    day = first
    while day <= last:
        await check_in(owner.id, now=_at(day, 12), settings=SchedulerSettings().loyalty)
        day += timedelta(days=1)


async def _summary_days(owner: Customer) -> list[str]:
    keys = await Message.filter(kind="points_summary", customer_id=owner.id).values_list(
        "dedup_key", flat=True)
    return sorted(str(key).rsplit(":", 1)[1] for key in keys)


async def _points_days() -> list[date]:
    return list(await SchedulerRun.filter(job=POINTS).order_by("day")
                .values_list("day", flat=True))  # type: ignore[arg-type]


class ReviewSpy:
    """Counts the tier reviews the job holds (and still holds them)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.days: list[date] = []
        real = points_expiry.review

        async def review(day: date, **kwargs: Any) -> dict[str, int]:
            self.days.append(day)
            return await real(day, **kwargs)

        monkeypatch.setattr(points_expiry, "review", review)


async def test_points_job_down_over_new_year_reviews_1_january_once_and_summarises_each_day(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = ReviewSpy(monkeypatch)
    clock = Clock(_at(date(2026, 12, 30), 1, 0))
    jobs = _jobs(clock)
    assert [d for d, _ in await jobs.points()] == [date(2026, 12, 30)]

    lapsed = await _gold()  # nothing paid in 2026
    renewed = await _gold()
    refunded = await _gold(datetime(2026, 6, 1, 2, 0, tzinfo=UTC))
    walker = await factories.customer()
    await _check_in_daily(walker, date(2026, 12, 30), date(2027, 1, 2))
    # imported while down, paid after 1 January: not in the review of 1 January
    await _import_payment(renewed, 350_000, datetime(2027, 1, 2, 2, 0, tzinfo=UTC))
    await _import_payment(refunded, 650_000, datetime(2027, 1, 3, 0, 30, tzinfo=UTC),
                          kind=PaymentKind.REFUND)

    clock.now = _at(date(2027, 1, 3), 9, 0)  # down from 31 December to 3 January
    done = await jobs.points()

    assert [d for d, _ in done] == [date(2026, 12, 31), date(2027, 1, 1), date(2027, 1, 2),
                                    date(2027, 1, 3)]
    assert [c["summaries_queued"] for _, c in done] == [1, 1, 1, 1]
    assert await _summary_days(walker) == ["2026-12-30", "2026-12-31", "2027-01-01",
                                           "2027-01-02"]
    assert spy.days == [date(2027, 1, 1)]
    assert done[1][1]["tiers_downgraded"] == 2
    assert "tiers_reviewed" not in done[0][1] | done[2][1] | done[3][1]
    # the review counts 2026 only: the lapsed customer goes down, the refund of 3 January
    # does not, and the premium of 2 January keeps the tier it raises again (silver)
    assert [await _tier(c) for c in (lapsed, renewed, refunded)] == ["standard", "silver", "gold"]
    assert done[-1][1]["payments_settled"] == 1  # once-per-run parts: once, on the last day
    assert all("payments_settled" not in c for _, c in done[:-1])
    assert await _points_days() == [date(2026, 12, 30), date(2026, 12, 31), date(2027, 1, 1),
                                    date(2027, 1, 2), date(2027, 1, 3)]
    assert await runs.finished(TIER_REVIEW, date(2027, 1, 1))

    changes, messages = await TierChange.all().count(), await Message.all().count()
    assert await jobs.points() == []  # a second run does nothing
    clock.now = _at(date(2027, 1, 3), 23, 0)
    assert await jobs.points() == []
    assert spy.days == [date(2027, 1, 1)]
    assert (await TierChange.all().count(), await Message.all().count()) == (changes, messages)


async def test_points_job_fresh_install_does_not_backfill(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = ReviewSpy(monkeypatch)
    lapsed = await _gold()
    walker = await factories.customer()
    await _check_in_daily(walker, date(2026, 12, 30), date(2027, 1, 2))
    clock = Clock(_at(date(2027, 1, 3), 9, 0))
    [(day, counts)] = await _jobs(clock).points()
    assert day == date(2027, 1, 3) and counts["summaries_queued"] == 1
    assert await _summary_days(walker) == ["2027-01-02"]  # yesterday's only
    assert spy.days == [] and await _tier(lapsed) == "gold"
    assert not await runs.finished(TIER_REVIEW, date(2027, 1, 1))


async def test_points_job_crash_after_the_review_resumes_at_its_day_without_reviewing_again(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = ReviewSpy(monkeypatch)
    clock = Clock(_at(date(2026, 12, 30), 1, 0))
    jobs = _jobs(clock)
    await jobs.points()
    lapsed = await _gold()
    walker = await factories.customer()
    await _check_in_daily(walker, date(2026, 12, 30), date(2027, 1, 2))

    real_record = runs.record

    async def crash_on_1_january(job: str, day: date, **kwargs: Any) -> None:
        if (job, day) == (POINTS, date(2027, 1, 1)):
            raise RuntimeError("process killed")
        await real_record(job, day, **kwargs)

    monkeypatch.setattr(runs, "record", crash_on_1_january)
    clock.now = _at(date(2027, 1, 3), 9, 0)
    with pytest.raises(RuntimeError, match="process killed"):
        await jobs.points()
    assert await _points_days() == [date(2026, 12, 30), date(2026, 12, 31)]
    assert spy.days == [date(2027, 1, 1)] and await _tier(lapsed) == "standard"

    monkeypatch.setattr(runs, "record", real_record)
    done = await jobs.points()

    assert [d for d, _ in done] == [date(2027, 1, 1), date(2027, 1, 2), date(2027, 1, 3)]
    assert spy.days == [date(2027, 1, 1)]  # recorded as held: not held again
    assert "tiers_reviewed" not in done[0][1]
    assert [c["summaries_queued"] for _, c in done] == [0, 1, 1]  # 31 Dec's was queued
    assert await _summary_days(walker) == ["2026-12-30", "2026-12-31", "2027-01-01",
                                           "2027-01-02"]
    assert await _points_days() == [date(2026, 12, 30), date(2026, 12, 31), date(2027, 1, 1),
                                    date(2027, 1, 2), date(2027, 1, 3)]


async def test_points_job_down_over_new_year_beyond_catch_up_still_reviews_once(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = ReviewSpy(monkeypatch)
    clock = Clock(_at(date(2026, 12, 28), 1, 0))
    jobs = _jobs(clock)
    await jobs.points()
    lapsed = await _gold()
    renewed = await _gold()
    await _import_payment(renewed, 350_000, datetime(2027, 1, 4, 2, 0, tzinfo=UTC))

    clock.now = _at(date(2027, 1, 8), 9, 0)  # ten days down, catch_up_days = 3
    done = await jobs.points()

    assert [d for d, _ in done] == [date(2027, 1, d) for d in (5, 6, 7, 8)]
    assert spy.days == [date(2027, 1, 1)]
    assert [await _tier(c) for c in (lapsed, renewed)] == ["standard", "silver"]
    assert await runs.finished(TIER_REVIEW, date(2027, 1, 1))
    assert not await runs.finished(POINTS, date(2027, 1, 1))  # the day itself stays missed

    clock.now = _at(date(2027, 1, 9), 1, 0)
    assert [d for d, _ in await jobs.points()] == [date(2027, 1, 9)]
    # even with the days forgotten (a crash before they were recorded), not held again
    await SchedulerRun.filter(job=POINTS, day__gt=date(2026, 12, 28)).delete()
    assert [d for d, _ in await jobs.points()] == [date(2027, 1, d) for d in (6, 7, 8, 9)]
    assert spy.days == [date(2027, 1, 1)]
    assert await TierChange.filter(reason="review").count() == 2


async def test_dry_run_counts_what_a_real_run_queues_and_writes_nothing(db: str) -> None:
    day = date(2026, 11, 21)
    await factories.policyholder(birthday=date(1990, 11, 21), birthday_md=1121)
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
