"""The scheduler at run time: leadership, APScheduler wiring, start-up catch-up, shutdown.

One ``AsyncIOScheduler`` in the care time zone with three cron jobs — the daily plan
(``schedule.daily_plan_at``), weather (``schedule.weather_at``) and points
(``schedule.points_expiry_at``) — coalesced, with ``misfire_grace_time`` and one instance at a
time. The job store is in memory and private to the leader: APScheduler's own FAQ warns that a
store shared by several processes runs jobs twice, hence the leader (``scheduler.leader``).

When a process becomes leader it starts the cron jobs and immediately runs every job once:
each job works out its own due days from the run record, so that single call is the catch-up
of days missed while no leader ran. A weather run that a provider outage left incomplete is
tried again ``weather.retry_every_minutes`` later, until ``weather.retry_until``.

``cleanup_context`` gives the aiohttp application a cleanup context that starts this at
start-up and stops it, in-flight jobs cancelled (they are idempotent), at shutdown. Given
``catch_up_after`` (``engage run``: until the web app answers), the catch-up waits for it, so a
long catch-up — a points run over many accounts — starts after /healthz and the webhooks are
served and runs beside them, never ahead of them. Given a
supervisor (``engage run``'s), the leadership watch runs under it: restarted if a poll fails
(the database went away), and reported with its role (leader or standby) and last poll.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from scheduler.forecast import ForecastSource, OpenMeteo
from scheduler.jobs import (
    PLAN,
    POINTS,
    RENEWAL_DESK,
    RETENTION,
    WEATHER,
    Clock,
    Jobs,
    SchedulerSettings,
)
from scheduler.leader import AdvisoryLock, Leadership, SingleProcess, asyncpg_dsn
from storage.config import DatabaseSettings
from storage.retention import RetentionReport

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
Beat = Callable[..., None]


class Stoppable(Protocol):
    async def stop(self) -> None: ...


class Spawner(Protocol):
    """What the scheduler needs of a supervisor (``bot.supervisor.Supervisor``)."""

    def spawn(self, name: str, loop: Callable[[asyncio.Event, Beat], Awaitable[None]], *,
              stuck_after: float | None) -> Stoppable: ...


def _no_beat(**detail: str) -> None:
    return None


class _Unsupervised:
    """The watch as a plain task (tests, and callers without a supervisor)."""

    def __init__(self, loop: Callable[[asyncio.Event, Beat], Awaitable[None]]) -> None:
        self._stop = asyncio.Event()
        self._task = asyncio.ensure_future(loop(self._stop, _no_beat))

    async def stop(self) -> None:
        self._stop.set()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def leadership_for(database: DatabaseSettings) -> Leadership:
    if database.is_postgres:
        return AdvisoryLock(asyncpg_dsn(database.url))
    return SingleProcess()


class SchedulerRuntime:
    def __init__(self, settings: SchedulerSettings, *, clock: Clock, leadership: Leadership,
                 forecast: ForecastSource | None = None, sleep: Sleep = asyncio.sleep,
                 on_retention: Callable[[RetentionReport], None] | None = None,
                 catch_up_after: Callable[[], Awaitable[object]] | None = None,
                 jobs: type[Jobs] = Jobs) -> None:
        """``catch_up_after``: awaited before the start-up catch-up runs (the cron jobs are
        not held); ``jobs``: the job class (a seam for tests)."""
        self.settings = settings
        self._clock = clock
        self._leadership = leadership
        self._own_forecast: OpenMeteo | None = None
        if forecast is None:
            self._own_forecast = OpenMeteo(settings.weather, timezone=settings.schedule.timezone)
            forecast = self._own_forecast
        self.jobs = jobs(settings, clock=clock, forecast=forecast, on_retention=on_retention)
        self._catch_up_after = catch_up_after
        self._sleep = sleep
        self._scheduler: AsyncIOScheduler | None = None
        self._watch: Stoppable | None = None
        self._running: set[asyncio.Task[Any]] = set()
        self._locks = {name: asyncio.Lock() for name in (PLAN, WEATHER, POINTS, RETENTION,
                                                         RENEWAL_DESK)}

    @property
    def is_leader(self) -> bool:
        return self._scheduler is not None

    @property
    def scheduler(self) -> AsyncIOScheduler | None:
        return self._scheduler

    async def start(self, supervisor: Spawner | None = None) -> None:
        """Try to lead now, and keep trying in the background (under ``supervisor``)."""
        await self.poll()
        if supervisor is None:
            self._watch = _Unsupervised(self.watch)
            return
        retry = self.settings.schedule.leader_retry_seconds
        self._watch = supervisor.spawn("scheduler", self.watch, stuck_after=3.0 * retry + 30)

    async def stop(self) -> None:
        if self._watch is not None:
            await self._watch.stop()
            self._watch = None
        await self._step_down()
        await self._leadership.release()
        if self._own_forecast is not None:
            await self._own_forecast.close()

    async def poll(self) -> bool:
        """One leadership check: start leading, keep leading, or step down."""
        leading = await self._leadership.try_acquire()
        if leading and self._scheduler is None:
            self._become_leader()
        elif not leading and self._scheduler is not None:
            await self._step_down()
        return leading

    async def idle(self) -> None:
        """Wait for every job run in flight (tests; catch-up runs in the background)."""
        while self._running:
            await asyncio.gather(*list(self._running), return_exceptions=True)

    @property
    def role(self) -> str:
        return "leader" if self.is_leader else "standby"

    async def watch(self, stop: asyncio.Event, beat: Beat) -> None:
        """Check the leadership every ``schedule.leader_retry_seconds`` until ``stop``."""
        retry = self.settings.schedule.leader_retry_seconds
        while True:
            beat(role=self.role)
            sleeping = asyncio.ensure_future(self._sleep(retry))
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait({sleeping, stopped}, return_when=asyncio.FIRST_COMPLETED)
            sleeping.cancel()
            stopped.cancel()
            if stop.is_set():
                return
            await self.poll()

    def _become_leader(self) -> None:
        schedule = self.settings.schedule
        scheduler = AsyncIOScheduler(
            timezone=schedule.tz,
            job_defaults={"coalesce": True, "max_instances": 1,
                          "misfire_grace_time": schedule.misfire_grace_seconds},
        )
        for name, at in ((PLAN, schedule.daily_plan_at), (WEATHER, schedule.weather_at),
                         (POINTS, schedule.points_expiry_at),
                         (RETENTION, self.settings.retention.run_at)):
            scheduler.add_job(self.run_job, CronTrigger(hour=at.hour, minute=at.minute,
                                                        second=at.second, timezone=schedule.tz),
                              args=[name], id=name, name=f"engage {name}")
        scheduler.add_job(self.run_job, "interval",
                          minutes=self.settings.renewal.escalate_every_minutes,
                          args=[RENEWAL_DESK], id=RENEWAL_DESK, name=f"engage {RENEWAL_DESK}")
        scheduler.start()
        self._scheduler = scheduler
        log.info("this process leads the scheduler: plan %s, weather %s, points %s (%s)",
                 schedule.daily_plan_at, schedule.weather_at, schedule.points_expiry_at,
                 schedule.timezone)
        # catch-up: each knows its due days
        for name in (POINTS, WEATHER, PLAN, RETENTION, RENEWAL_DESK):
            task = asyncio.create_task(self._catch_up(name), name=f"scheduler-catch-up-{name}")
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            task.add_done_callback(_report_failure)

    async def _step_down(self) -> None:
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is None:
            return
        scheduler.shutdown(wait=False)
        await asyncio.sleep(0)  # AsyncIOScheduler shuts down in a loop callback: let it run
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*list(self._running), return_exceptions=True)
        log.info("scheduler stopped in this process")

    async def _catch_up(self, name: str) -> None:
        if self._catch_up_after is not None:
            await self._catch_up_after()
        await self.run_job(name)

    async def run_job(self, name: str) -> None:
        """Run one job now (what the cron triggers and catch-up call)."""
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            async with self._locks[name]:
                if name == PLAN:
                    await self.jobs.plan()
                elif name == WEATHER:
                    result = await self.jobs.weather()
                    if result is not None and not result.complete and result.retryable:
                        self._schedule_weather_retry()
                elif name == POINTS:
                    await self.jobs.points()
                elif name == RETENTION:
                    await self.jobs.retention()
                elif name == RENEWAL_DESK:
                    await self.jobs.renewal_desk()
                else:
                    raise ValueError(f"unknown scheduler job {name!r}")
        finally:
            if task is not None:
                self._running.discard(task)

    def _schedule_weather_retry(self) -> None:
        scheduler = self._scheduler
        if scheduler is None:
            return
        weather = self.settings.weather
        delay = timedelta(minutes=weather.retry_every_minutes)
        now = self.jobs.now_local()
        at = now + delay
        if at.date() != now.date() or at.time() > weather.retry_until:
            log.warning("weather run incomplete; no retry after %s, next try tomorrow",
                        weather.retry_until)
            return
        # APScheduler fires on the wall clock: hand it the delay, not the injected clock's time.
        run_date = datetime.now(self.settings.schedule.tz) + delay
        scheduler.add_job(self.run_job, "date", run_date=run_date, args=[WEATHER],
                          id="weather-retry", replace_existing=True)
        log.info("weather run incomplete; trying again in %d minutes",
                 weather.retry_every_minutes)

    def next_runs(self) -> dict[str, datetime | None]:
        if self._scheduler is None:
            return {}
        return {job.id: job.next_run_time for job in self._scheduler.get_jobs()}


def _report_failure(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("scheduler catch-up %s failed; its next run tries again", task.get_name(),
                  exc_info=exc)


def cleanup_context(settings: SchedulerSettings, database: DatabaseSettings, *, clock: Clock,
                    forecast: ForecastSource | None = None, supervisor: Spawner | None = None,
                    on_retention: Callable[[RetentionReport], None] | None = None,
                    catch_up_after: Callable[[], Awaitable[object]] | None = None,
                    jobs: type[Jobs] = Jobs,
                    ) -> Callable[[web.Application], AsyncIterator[None]]:
    """An aiohttp cleanup context running the scheduler for the application's lifetime."""

    async def run_scheduler(app: web.Application) -> AsyncIterator[None]:
        runtime = SchedulerRuntime(settings, clock=clock, leadership=leadership_for(database),
                                   forecast=forecast, on_retention=on_retention,
                                   catch_up_after=catch_up_after, jobs=jobs)
        await runtime.start(supervisor)
        yield
        await runtime.stop()

    return run_scheduler
