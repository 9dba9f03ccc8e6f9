"""The scheduler's three jobs — daily plan, weather, points — as plain async methods.

Each job reads the date from the injected clock (never ``datetime.now()``), works out which
care-calendar days are due from the run record (``scheduler.runs``), runs them oldest first and
records each day it finished. So the same call serves the daily cron trigger, a misfire, a
restart and start-up catch-up, and calling it twice does nothing the second time.

Plan and points catch up missed days (up to ``schedule.catch_up_days``; a fresh install starts
with today). Weather does not: a past day's forecast warns nobody. The points job does its
state-driven part once per run and its per-day part (summaries, the 1 January tier review) for
each due day; a tier review is also recorded under its own name (``TIER_REVIEW``, keyed by its
1 January) so that a review missed beyond the catch-up window still runs, and only once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from loyalty.config import LoyaltySettings
from scheduler import points_expiry, renewal_escalation, runs, weather
from scheduler.cn_calendar import WorkCalendar
from scheduler.config import (
    CareSettings,
    HolidaySettings,
    RenewalSettings,
    RetentionSettings,
    ScheduleSettings,
    WeatherSettings,
)
from scheduler.context import PlanContext, outbox_sink
from scheduler.forecast import ForecastSource
from scheduler.plan import PlanResult, run_plan
from storage import renewal_rollup, retention

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

PLAN = "plan"
WEATHER = "weather"
POINTS = "points"
TIER_REVIEW = "tier_review"
RETENTION = "retention"
RENEWAL_DESK = "renewal_desk"


@dataclass(frozen=True)
class SchedulerSettings:
    """The settings sections the scheduler reads (passed in; ``bot.settings`` composes them)."""

    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    renewal: RenewalSettings = field(default_factory=RenewalSettings)
    weather: WeatherSettings = field(default_factory=WeatherSettings)
    loyalty: LoyaltySettings = field(default_factory=LoyaltySettings)
    care: CareSettings = field(default_factory=CareSettings)
    holidays: HolidaySettings = field(default_factory=HolidaySettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    uploads: Path = Path("data/uploads")


def retention_cutoffs(now: datetime, keep: RetentionSettings) -> retention.Cutoffs:
    return retention.Cutoffs(
        documents_before=now - timedelta(days=keep.documents_days_after_close),
        inbound_before=now - timedelta(days=keep.inbound_days),
        params_before=now - timedelta(days=keep.message_params_days))


class Jobs:
    def __init__(self, settings: SchedulerSettings, *, clock: Clock, forecast: ForecastSource,
                 calendar: WorkCalendar | None = None,
                 on_retention: Callable[[retention.RetentionReport], None] | None = None,
                 ) -> None:
        """``on_retention``: told each retention pass's report (the /metrics counters)."""
        self.settings = settings
        self._on_retention = on_retention
        self._clock = clock
        self._forecast = forecast
        self._calendar = calendar or settings.holidays.calendar()

    def now_local(self) -> datetime:
        moment = self._clock()
        if moment.tzinfo is None:
            raise ValueError("the clock must return timezone-aware datetimes")
        return moment.astimezone(self.settings.schedule.tz)

    def context(self, day: date, today: date) -> PlanContext:
        return PlanContext(day=day, today=today, schedule=self.settings.schedule,
                           renewal=self.settings.renewal, calendar=self._calendar,
                           care=self.settings.care)

    async def plan(self) -> list[tuple[date, PlanResult]]:
        """Plan every due day (missed ones first, up to ``schedule.catch_up_days``)."""
        schedule = self.settings.schedule
        now = self.now_local()
        days = runs.days_to_run(now_local=now, at=schedule.daily_plan_at,
                                last=await runs.last_day(PLAN),
                                catch_up_days=schedule.catch_up_days)
        done: list[tuple[date, PlanResult]] = []
        for day in days:
            result = await run_plan(self.context(day, now.date()))
            await runs.record(PLAN, day, at=self._clock(), counts=result.counts)
            done.append((day, result))
        return done

    async def retention(self, *, dry_run: bool = False) -> retention.RetentionReport | None:
        """Today's retention pass, once a day from ``retention.run_at`` (bounded: what is left
        over waits for the next day; the day is recorded even so)."""
        keep = self.settings.retention
        today = self.now_local().date()
        if not dry_run and (self.now_local().time() < keep.run_at
                            or await runs.finished(RETENTION, today)):
            return None
        report = await retention.run(retention_cutoffs(self._clock(), keep),
                                     uploads=self.settings.uploads,
                                     batch=keep.batch_size, max_batches=keep.max_batches,
                                     dry_run=dry_run)
        if not dry_run:
            await runs.record(RETENTION, today, at=self._clock(), counts=report.counts())
            if self._on_retention is not None:
                self._on_retention(report)
        return report

    async def weather(self) -> weather.WeatherResult | None:
        """Today's weather notices, unless done already today or not yet time.

        The day is recorded only when every region answered (or the failures were refusals
        that retrying cannot fix), so a provider outage is retried on the next run.
        """
        now = self.now_local()
        today = now.date()
        if now.time() < self.settings.schedule.weather_at or await runs.finished(WEATHER, today):
            return None
        ctx = self.context(today, today)
        result = await weather.queue(ctx, self.settings.weather, self._forecast,
                                     outbox_sink(ctx.batch_size))
        if result.complete or not result.retryable:
            await runs.record(WEATHER, today, at=self._clock(),
                              counts={"queued": result.queued, "failed": len(result.failed)})
        return result

    async def points(self) -> list[tuple[date, dict[str, int]]]:
        """The points job for every due day (missed ones first, up to
        ``schedule.catch_up_days``); returns each day run with its counts.

        Settling, expiry and warnings run once, for the latest due day (see
        ``scheduler.points_expiry``). Then each day gets the summaries of the day before and,
        on 1 January, the tier review as of that day, and is recorded as it finishes, so a
        crash part-way resumes at the first day not recorded. A 1 January missed beyond the
        catch-up window is reviewed before the days that are run.
        """
        schedule = self.settings.schedule
        loyalty = self.settings.loyalty
        now = self.now_local()
        last = await runs.last_day(POINTS)
        days = runs.days_to_run(now_local=now, at=schedule.points_expiry_at, last=last,
                                catch_up_days=schedule.catch_up_days)
        if not days:
            return []
        latest = days[-1]
        warn_at = self.context(latest, now.date()).not_before
        once = await points_expiry.run(latest, now=self._clock(), warn_at=warn_at,
                                       settings=loyalty)
        skipped = points_expiry.skipped_review_day(last, days[0])
        if skipped is not None:
            log.warning("the tier review of %s was missed beyond catch-up: holding it now",
                        skipped)
            await self._tier_review(skipped)
        done: list[tuple[date, dict[str, int]]] = []
        for day in days:
            counts = await points_expiry.run_day(day, warn_at=warn_at, settings=loyalty)
            if points_expiry.is_review_day(day):
                counts |= await self._tier_review(day)
            if day == latest:
                counts = once | counts
            await runs.record(POINTS, day, at=self._clock(), counts=counts)
            done.append((day, counts))
        return done

    async def renewal_desk(self) -> dict[str, int]:
        """Renewal escalation (T-10, T-5, T-2 and overdue call-backs): each prompt once, so
        it runs every ``renewal.escalate_every_minutes`` and at start-up. Then the KPI rollup
        is brought up to date (the days writes marked since), so the page rarely waits."""
        now = self.now_local()
        counts = await renewal_escalation.run(now=self._clock(), today=now.date(),
                                              settings=self.settings.renewal,
                                              send_at=self._clock())
        today = now.date()
        built = await renewal_rollup.refresh(renewal_rollup.window(today), today)
        return {**counts, "kpi_days_built": built} if built else counts

    async def _tier_review(self, day: date) -> dict[str, int]:
        """The annual review as of ``day``, unless already held (its own run record)."""
        if await runs.finished(TIER_REVIEW, day):
            return {}
        counts = await points_expiry.review(day, now=self._clock(),
                                            settings=self.settings.loyalty)
        await runs.record(TIER_REVIEW, day, at=self._clock(), counts=counts)
        return counts
