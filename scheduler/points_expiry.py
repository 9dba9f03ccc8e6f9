"""The daily points job: expire point lots and vouchers past their time, then warn customers
whose points expire within ``loyalty.expiry_warning_days`` (30 by default).

The work itself belongs to ``loyalty.jobs``; this module only decides the moments. Lots are
expired with the job's own run time on their entries. Warnings are queued with the morning
plan time as their not-before, so they arrive with the day's other messages rather than at
01:00 (where quiet hours would hold them anyway). Their category (care) and dedup key
(``points_expiring:{customer}:{date}``) are Loyalty's, so catching up or re-running a day never
warns twice for one expiry date.

Catch-up needs no loop over missed days: ``expire_lots(today)`` expires every lot whose last
day is before today, and the warning window starts at today.
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


async def run(today: date, *, now: datetime, warn_at: datetime,
              settings: LoyaltySettings) -> dict[str, int]:
    """Returns counts: ``lots_expired``, ``vouchers_expired``, ``warnings_queued``, plus the
    settling of imported payments, yesterday's summaries and (on 1 January) the tier review.

    Earning comes first, so the day's expiry and summaries see every point the import earned.
    """
    settled = await settle_imports(settings=settings, now=now)
    lots = await expire_lots(today, settings=settings, now=now)
    vouchers = await expire_vouchers(now, settings=settings)
    warnings = await queue_expiry_warnings(today, settings=settings, now=warn_at)
    summaries = await queue_daily_summaries(today - timedelta(days=1), settings=settings,
                                            now=warn_at)
    counts = {
        "payments_settled": settled.payments, "cancellations_settled": settled.cancellations,
        "referrals_settled": settled.referrals, "lots_expired": lots,
        "vouchers_expired": vouchers, "warnings_queued": warnings, "summaries_queued": summaries,
    }
    if (today.month, today.day) == (1, 1):
        review = await annual_tier_review(today, settings=settings, now=now)
        counts["tiers_downgraded"] = review.downgraded
    log.info("points job for %s: %s", today, counts)
    return counts
