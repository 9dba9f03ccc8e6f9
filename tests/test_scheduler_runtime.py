"""The scheduler runtime: APScheduler wiring, start-up catch-up, weather retry, and one leader
among several processes on PostgreSQL (advisory lock), with a standby taking over."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

import asyncpg
import pytest

from scheduler.config import ScheduleSettings
from scheduler.forecast import DayForecast
from scheduler.jobs import PLAN, POINTS, RENEWAL_DESK, RETENTION, WEATHER, SchedulerSettings
from scheduler.leader import AdvisoryLock, SingleProcess, asyncpg_dsn
from scheduler.runtime import SchedulerRuntime
from storage.models import Message, Region
from storage.scheduler_models import SchedulerRun
from tests import factories
from tests.test_scheduler_jobs import SHANGHAI, Clock, ScriptedForecast, _at

DAY = date(2026, 11, 21)


async def _never(seconds: float) -> None:
    """The leadership watcher's sleep: tests poll by hand instead."""
    await asyncio.Event().wait()


def _runtime(clock: Clock, leadership: object, forecast: ScriptedForecast | None = None,
             ) -> SchedulerRuntime:
    return SchedulerRuntime(SchedulerSettings(schedule=ScheduleSettings()), clock=clock,
                            leadership=leadership,  # type: ignore[arg-type]
                            forecast=forecast or ScriptedForecast(), sleep=_never)


async def _plan_day_data() -> None:
    await factories.policyholder(birthday=date(1990, 11, 21), birthday_md=1121)
    owner = await factories.customer()
    await factories.policy(owner, end=DAY + timedelta(days=30))


async def test_leader_wires_three_coalesced_cron_jobs_and_catches_up_at_start(db: str) -> None:
    await _plan_day_data()
    runtime = _runtime(Clock(_at(DAY, 9, 0)), SingleProcess())
    await runtime.start()
    try:
        await runtime.idle()
        assert runtime.is_leader
        scheduler = runtime.scheduler
        assert scheduler is not None
        jobs = {job.id: job for job in scheduler.get_jobs()}
        assert set(jobs) == {PLAN, WEATHER, POINTS, RETENTION, RENEWAL_DESK}
        assert jobs[RENEWAL_DESK].trigger.interval == timedelta(minutes=15)
        for job_id, (hour, minute) in {PLAN: (8, 30), WEATHER: (7, 0), POINTS: (1, 0),
                                       RETENTION: (3, 0)}.items():
            job = jobs[job_id]
            assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, 3600)
            fire = job.next_run_time.astimezone(SHANGHAI)
            assert (fire.hour, fire.minute) == (hour, minute)
        assert str(scheduler.timezone) == "Asia/Shanghai"
        # catch-up at start-up ran every job for today
        assert set(await SchedulerRun.filter(day=DAY).values_list("job", flat=True)) == {
            PLAN, WEATHER, POINTS, RETENTION}
        assert await Message.all().count() == 2
    finally:
        await runtime.stop()
    assert not runtime.is_leader


async def test_incomplete_weather_run_is_retried_later_the_same_morning(db: str) -> None:
    region = await Region.create(code="shanghai", name="上海", latitude=31.23, longitude=121.47)
    owner = await factories.customer(region=region)
    await factories.policy(owner, end=DAY + timedelta(days=60))
    forecast = ScriptedForecast([DayForecast("shanghai", DAY, snowfall_cm=4.0)])
    forecast.down = True
    clock = Clock(_at(DAY, 7, 0))
    runtime = _runtime(clock, SingleProcess(), forecast)
    await runtime.start()
    try:
        await runtime.idle()
        assert "weather-retry" in runtime.next_runs()
        forecast.down = False
        clock.now = _at(DAY, 7, 30)
        await runtime.run_job(WEATHER)
        assert await Message.filter(kind="weather").count() == 1
    finally:
        await runtime.stop()


async def test_two_processes_on_postgres_plan_once_and_a_standby_takes_over(
    db: str, is_postgres: bool
) -> None:
    if not is_postgres:
        pytest.skip("advisory locks are PostgreSQL's")
    await _plan_day_data()
    dsn = asyncpg_dsn(db)
    clock = Clock(_at(DAY, 9, 0))
    first = _runtime(clock, AdvisoryLock(dsn))
    second = _runtime(clock, AdvisoryLock(dsn))
    await first.start()
    await second.start()
    try:
        await first.idle()
        await second.idle()
        assert first.is_leader and not second.is_leader
        assert await second.poll() is False  # still held by the first
        assert await SchedulerRun.filter(job=PLAN).count() == 1
        assert await Message.all().count() == 2

        # the leader goes away: its session ends, the lock is free, the standby takes over
        await first.stop()
        assert await second.poll() is True and second.is_leader
        await second.idle()
        assert await Message.all().count() == 2  # the day was planned already: nothing new
    finally:
        await first.stop()
        await second.stop()


async def test_leader_whose_lock_connection_dies_steps_down(db: str, is_postgres: bool) -> None:
    if not is_postgres:
        pytest.skip("advisory locks are PostgreSQL's")
    dsn = asyncpg_dsn(db)
    clock = Clock(_at(DAY, 0, 30))  # before every job time: nothing to catch up
    first = _runtime(clock, AdvisoryLock(dsn))
    second = _runtime(clock, AdvisoryLock(dsn))
    await first.start()
    await second.start()
    try:
        assert first.is_leader and not second.is_leader
        admin = await asyncpg.connect(dsn)
        try:
            # the timeout makes it wait until the backend is gone (PostgreSQL 14+)
            ended = await admin.fetchval(
                "SELECT bool_and(pg_terminate_backend(pid, 5000)) FROM pg_locks "
                "WHERE locktype = 'advisory' "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
            assert ended
        finally:
            await admin.close()
        assert await first.poll() is False and not first.is_leader
        assert await second.poll() is True
        assert await first.poll() is False  # reconnects, finds the lock taken
    finally:
        await first.stop()
        await second.stop()
