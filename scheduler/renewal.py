"""Renewal reminders: the configured offsets before expiry, and one extra reminder before a long
holiday that contains the expiry date.

A policy is reminded while it is ``active``, not renewed (``renewed_by`` null), not cancelled,
and no newer policy for the same plate and product is on the books (an import that records the
renewal as a fresh policy without linking it must not trigger reminders for the old one). The
day a renewal or cancellation is recorded, the policy drops out of every later selection.

Cadence (defaults): T-60, then weekly T-30, T-23, T-16 (the insurer's 15-day push), T-9, T-2.
Offsets are validated to be at least two days apart, so one policy never gets reminders on
consecutive days.

Holiday-aware extra reminder: if the expiry date lies in a long holiday period (Spring
Festival, Labour Day or National Day, including substituted days off — see
``scheduler.cn_calendar``), one ``renewal_holiday`` message goes out
``renewal.holiday_lead_working_days`` working days before the period's first day. If that day
is a regular reminder day or next to one, it moves earlier, one working day at a time (at most
``MAX_HOLIDAY_SHIFT`` times), to the latest working day at least two days away from every
regular reminder: moving earlier keeps the "renew before the holiday" advice true and gives
more lead time, where skipping would lose the one message that mentions the holiday. It is
stale once the holiday starts.

Catching up a missed day: a reminder is still sent if the policy has not expired yet, unless a
later reminder for the same policy is also due by today (the later one supersedes it, so a
customer is not sent two at once); ``days_left`` is counted from the day it is actually sent.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import partial
from typing import Any, Final

from scheduler.cn_calendar import HolidayPeriod, WorkCalendar
from scheduler.config import RenewalSettings
from scheduler.context import PlanContext, Sink, feed
from scheduler.selection import Selection, as_date
from scheduler.wording import HOLIDAY_NAMES, localised_date
from storage.models import Category
from storage.outbox import Outbound

log = logging.getLogger(__name__)

KIND = "renewal"
HOLIDAY_KIND = "renewal_holiday"
MAX_HOLIDAY_SHIFT: Final = 5
_HOLIDAY_HORIZON: Final = timedelta(days=90)

POLICY_COLUMNS: Final = "p.number, p.plate, p.end_date, p.customer_id, c.name"
# A policy still waiting for its renewal: nothing recorded against it, no newer policy for
# the same car and product (the plate index serves the NOT EXISTS).
NOT_RENEWED: Final = (
    "p.renewed_by_id IS NULL AND p.cancelled_at IS NULL AND NOT EXISTS ("
    "SELECT 1 FROM policy q WHERE q.plate = p.plate AND q.product = p.product "
    "AND q.id <> p.id AND q.end_date > p.end_date AND q.status <> 'cancelled')"
)


@dataclass(frozen=True, slots=True)
class HolidayReminder:
    day: date
    period: HolidayPeriod


# -- decisions (pure) -------------------------------------------------------------------------


def regular_days(end: date, offsets: Sequence[int]) -> list[date]:
    return [end - timedelta(days=k) for k in offsets]


def offsets_due(day: date, today: date, offsets: Sequence[int]) -> list[int]:
    """The offsets whose reminder falls on ``day`` and is still to be sent on ``today``.

    On the day itself that is every offset. Catching up, a reminder is dropped once the policy
    has expired, or when a later reminder of the same policy is also due by today.
    """
    due: list[int] = []
    for k in offsets:
        end = day + timedelta(days=k)
        if end < today:
            continue
        if any(k2 < k and end - timedelta(days=k2) <= today for k2 in offsets):
            continue
        due.append(k)
    return due


def holiday_reminder(end: date, settings: RenewalSettings,
                     calendar: WorkCalendar) -> HolidayReminder | None:
    """When the extra holiday reminder for a policy expiring on ``end`` goes out, if any."""
    period = calendar.period_containing(end)
    if period is None:
        return None
    regular = regular_days(end, settings.offsets)
    candidate = calendar.working_days_before(period.first, settings.holiday_lead_working_days)
    for _ in range(MAX_HOLIDAY_SHIFT + 1):
        if all(abs((candidate - r).days) > 1 for r in regular):
            return HolidayReminder(candidate, period)
        candidate = calendar.previous_working_day(candidate)
    return None


def holiday_expiries_due(day: date, today: date, settings: RenewalSettings,
                         calendar: WorkCalendar) -> list[tuple[date, HolidayPeriod]]:
    """The expiry dates whose holiday reminder falls on ``day`` and is still to be sent today.

    Catching up, it is dropped once the holiday has begun, or when a regular reminder of the
    same policy goes out between the missed day and tomorrow.
    """
    due: list[tuple[date, HolidayPeriod]] = []
    for period in calendar.long_holidays_starting(day, day + _HOLIDAY_HORIZON):
        for end in period.days():
            reminder = holiday_reminder(end, settings, calendar)
            if reminder is None or reminder.day != day:
                continue
            if today >= period.first:
                continue
            tomorrow = today + timedelta(days=1)
            if any(day < r <= tomorrow for r in regular_days(end, settings.offsets)):
                continue
            due.append((end, period))
    return due


def schedule_for(end: date, settings: RenewalSettings,
                 calendar: WorkCalendar) -> dict[date, str]:
    """Every reminder one policy expiring on ``end`` gets, by day (dedup-key suffix as value).

    A summary of the rules above for people and tests; planning itself goes day by day.
    """
    days = {end - timedelta(days=k): f"T-{k}" for k in settings.offsets}
    extra = holiday_reminder(end, settings, calendar)
    if extra is not None:
        days[extra.day] = f"{extra.period.code}:{extra.period.first.year}"
    return dict(sorted(days.items()))


# -- selection and queueing ----------------------------------------------------------------------


def expiring(end: date) -> Selection:
    """Policies still waiting for renewal that expire on ``end``.

    One selection per expiry date: an equality on the ``(status, end_date)`` index reads just
    that day's policies (an ``IN`` list of dates can tempt the planner into a primary-key scan
    of the whole table to serve ``ORDER BY id LIMIT n``).
    """
    return Selection(
        columns=POLICY_COLUMNS,
        source="FROM policy p JOIN customer c ON c.id = p.customer_id "
               f"WHERE p.status = 'active' AND p.end_date = ? AND {NOT_RENEWED}",
        values=(end,),
        key="p.id",
    )


def selections(ctx: PlanContext) -> list[Selection]:
    offsets = offsets_due(ctx.day, ctx.today, ctx.renewal.offsets)
    return [expiring(ctx.day + timedelta(days=k)) for k in offsets]


def holiday_selections(ctx: PlanContext) -> list[Selection]:
    due = holiday_expiries_due(ctx.day, ctx.today, ctx.renewal, ctx.calendar)
    return [expiring(end) for end, _ in due]


def _reminders(ctx: PlanContext, rows: list[dict[str, Any]]) -> Iterator[Outbound]:
    for row in rows:
        end = as_date(row["end_date"])
        yield Outbound(
            dedup_key=f"renewal:{row['k']}:T-{(end - ctx.day).days}",
            kind=KIND,
            category=Category.REMINDER,
            customer_id=row["customer_id"],
            template_key="renewal_reminder",
            params={
                "name": row["name"],
                "plate": row["plate"],
                "expiry": localised_date(end),
                "days_left": (end - ctx.today).days,
                "policy": row["number"],
            },
            not_before=ctx.not_before,
            stale_after=ctx.start_of(end + timedelta(days=1)),
        )


def _holiday_reminders(ctx: PlanContext, rows: list[dict[str, Any]], *,
                       periods: dict[date, HolidayPeriod]) -> Iterator[Outbound]:
    for row in rows:
        end = as_date(row["end_date"])
        period = periods[end]
        yield Outbound(
            dedup_key=f"renewal_holiday:{row['k']}:{period.code}:{period.first.year}",
            kind=HOLIDAY_KIND,
            category=Category.REMINDER,
            customer_id=row["customer_id"],
            template_key="renewal_holiday",
            params={
                "name": row["name"],
                "plate": row["plate"],
                "expiry": localised_date(end),
                "holiday": HOLIDAY_NAMES[period.code],
                "policy": row["number"],
            },
            not_before=ctx.not_before,
            stale_after=ctx.start_of(period.first),
        )


async def queue(ctx: PlanContext, sink: Sink) -> int:
    created = 0
    for selection in selections(ctx):
        created += await feed(selection, ctx.batch_size, partial(_reminders, ctx), sink)
    log.info("queued %d renewal reminders for %s", created, ctx.day)
    return created


async def queue_holiday(ctx: PlanContext, sink: Sink) -> int:
    due = holiday_expiries_due(ctx.day, ctx.today, ctx.renewal, ctx.calendar)
    periods = dict(due)
    created = 0
    for end in periods:
        created += await feed(expiring(end), ctx.batch_size,
                              partial(_holiday_reminders, ctx, periods=periods), sink)
    if periods:
        log.info("queued %d holiday renewal reminders for %s", created, ctx.day)
    return created
