"""Which days each job has finished: the record that start-up catch-up reads.

A job's day is recorded only when it finished (for weather: every region answered), so a crash
or an outage leaves the day to be run again; running it again is harmless, since every message
has a dedup key. Deriving this from the outbox instead would not work: a quiet day queues
nothing and would look missed forever.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time, timedelta

from tortoise.exceptions import IntegrityError

from storage.scheduler_models import SchedulerRun


def days_to_run(*, now_local: datetime, at: time, last: date | None,
                catch_up_days: int) -> list[date]:
    """The care days a job should run for now, oldest first.

    ``now_local`` is the current moment on the care calendar. Today counts once the job's
    time has passed. After a gap, up to ``catch_up_days`` missed days before today are run
    too; a job that never ran starts with today (no backfill of a fresh install).
    """
    today = now_local.date()
    latest = today if now_local.time() >= at else today - timedelta(days=1)
    if last is None:
        first = today
    else:
        first = max(last + timedelta(days=1), today - timedelta(days=catch_up_days))
    days: list[date] = []
    day = first
    while day <= latest:
        days.append(day)
        day += timedelta(days=1)
    return days


async def last_day(job: str) -> date | None:
    row = await SchedulerRun.filter(job=job).order_by("-day").first()
    return row.day if row is not None else None


async def finished(job: str, day: date) -> bool:
    return await SchedulerRun.filter(job=job, day=day).exists()


async def record(job: str, day: date, *, at: datetime, counts: Mapping[str, int]) -> None:
    """Mark ``job`` done for ``day`` (a second record for the same day is a no-op)."""
    if await finished(job, day):
        return
    try:
        await SchedulerRun.create(job=job, day=day, finished_at=at, counts=dict(counts))
    except IntegrityError:
        pass  # another process recorded it first
