"""The daily points job: settle imported payments, expire point lots and vouchers past their
time, warn customers whose points expire within ``loyalty.expiry_warning_days`` (30 by
default), queue each day's points summaries and, on 1 January, hold the annual tier review.

The work itself belongs to ``loyalty.jobs``; this module only decides the days and moments.
Lots are expired with the job's own run time on their entries. Messages are queued with the
morning plan time as their not-before, so they arrive with the day's other messages rather
than at 01:00 (where quiet hours would hold them anyway). Their category (care) and dedup
keys (``points_expiring:{customer}:{date}``, ``points_summary:{customer}:{date}``) are
Loyalty's, so catching up or re-running a day never sends twice.

Catch-up (``scheduler.jobs.Jobs.points``) splits the work in two:

* ``run`` is done once per run, for the latest due day: settling, expiry and warnings look at
  the state of the ledger, not at a day, so one run makes up for any number of missed days
  (``expire_lots(today)`` expires every lot whose last day is before today, the warning
  window starts at today).
* ``run_day`` is done for every due day, oldest first, missed ones included (up to
  ``schedule.catch_up_days``): the summaries of the day before, and on 1 January the tier
  review as of that 1 January (its window is the 12 months before it, so a late review does
  not count later payments; see ``loyalty.tiers.annual_tier_review``). Summaries of a missed
  day go out with the latest day's messages; the text names its day.

A 1 January older than the catch-up window still gets its review (``skipped_review_day``):
tiers only ever go down there, so skipping it would keep a year's lapsed tiers for another
year. The job records each review under its own name, so it never runs twice.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from loyalty.config import LoyaltySettings
from loyalty.jobs import (
    expire_lots,
    expire_vouchers,
    queue_daily_summaries,
    queue_expiry_warnings,
    settle_imports,
)
from loyalty.tiers import annual_tier_review

log = logging.getLogger(__name__)

KIND = "points_expiry"


def is_review_day(day: date) -> bool:
    return (day.month, day.day) == (1, 1)


def skipped_review_day(last: date | None, first_due: date) -> date | None:
    """The latest 1 January after ``last`` (the last day the job finished) and before
    ``first_due`` (the oldest day it will run now): a review missed beyond the catch-up
    window. None for a fresh install (``last`` is None) or when no 1 January was skipped.
    Older 1 Januaries than that one need no review: the latest sets every tier anew."""
    if last is None:
        return None
    day = date(first_due.year, 1, 1)
    if day >= first_due:
        day = date(first_due.year - 1, 1, 1)
    return day if day > last else None


async def run(today: date, *, now: datetime, warn_at: datetime,
              settings: LoyaltySettings) -> dict[str, int]:
    """The once-per-run part. Returns counts: ``payments_settled``,
    ``cancellations_settled``, ``referrals_settled``, ``payments_corrected`` (settled payments
    re-imported with another amount), ``lots_expired``, ``vouchers_expired``,
    ``warnings_queued``.

    Earning comes first, so the day's expiry and summaries see every point the import earned.
    """
    settled = await settle_imports(settings=settings, now=now)
    lots = await expire_lots(today, settings=settings, now=now)
    vouchers = await expire_vouchers(now, settings=settings)
    warnings = await queue_expiry_warnings(today, settings=settings, now=warn_at)
    counts = {
        "payments_settled": settled.payments, "cancellations_settled": settled.cancellations,
        "referrals_settled": settled.referrals, "payments_corrected": settled.corrections,
        "lots_expired": lots,
        "vouchers_expired": vouchers, "warnings_queued": warnings,
    }
    log.info("points job for %s: %s", today, counts)
    return counts


async def run_day(day: date, *, warn_at: datetime, settings: LoyaltySettings) -> dict[str, int]:
    """The part owed to each day: the summaries of the day before. Counts:
    ``summaries_queued``."""
    summaries = await queue_daily_summaries(day - timedelta(days=1), settings=settings,
                                            now=warn_at)
    return {"summaries_queued": summaries}


async def review(day: date, *, now: datetime, settings: LoyaltySettings) -> dict[str, int]:
    """The annual tier review as of ``day`` (a 1 January), run at ``now``. Counts:
    ``tiers_reviewed``, ``tiers_upgraded``, ``tiers_downgraded``."""
    report = await annual_tier_review(day, settings=settings, now=now)
    return {"tiers_reviewed": report.reviewed, "tiers_upgraded": report.upgraded,
            "tiers_downgraded": report.downgraded}
