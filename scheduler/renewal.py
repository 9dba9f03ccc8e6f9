"""Renewal reminders: the configured offsets before expiry, and one extra reminder before a long
holiday that contains the expiry date.

A policy is reminded while it is ``active``, not renewed (``renewed_by`` null), not cancelled,
and no newer policy for the same plate and product is on the books (an import that records the
renewal as a fresh policy without linking it must not trigger reminders for the old one). The
day a renewal or cancellation is recorded, the policy drops out of every later selection.

One message per car, not per policy: a car usually carries a compulsory (交强险) and a
commercial (商业险) policy expiring the same day. A customer's policies with the same plate and
end date that each qualify on their own form a group, and the group gets one message naming
every policy in it (``policy`` parameter: ``交强险 P1、商业险 P2``, compulsory first). Different
end dates are always separate messages. The selection returns one row per group (its lowest
qualifying id), so paging cannot split a group.

Keys: ``renewal:{policy}:T-{k}`` and ``renewal_holiday:{policy}:{holiday}:{year}``, where
``policy`` is the lowest id of *all* the customer's policies on that plate with that end date,
renewed or cancelled ones included. Renewing or cancelling one policy of a pair therefore
never changes the key: the other goes on alone and gets each later reminder exactly once, even
when the same day is planned again after the renewal was recorded. A policy alone on its car,
and a pair's lower id, keep the key they had when reminders were per policy.

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

Wording by offset (``reminder_template``): ``renewal_reminder_early`` from 45 days out (the
gentle two-month notice), ``renewal_reminder_urgent`` at 3 days or fewer, ``renewal_reminder``
(the weekly reminder of the last month) in between. Every reminder names its car's ``policy_id``
(the anchor): the Telegram answer buttons and the SMS replies act on it.

Claims-based pricing hint (``renewal.claims_hint``, off by default): the reminder at its
``offset`` (T-30) reads the number of claims reported in the policy year on the car's policies
(rejected and withdrawn ones aside) and, by the configured bands, says the no-claims discount
continues (``renewal_reminder_ncd_continues``), is lost (``…_ncd_lost``) or what surcharge to
expect (``…_surcharge`` with ``percent``). Wording in bot/texts/messages.toml, for the insurer
to review.

Reminders go at ``schedule.daily_plan_at`` in the customer's own time zone.

Catching up a missed day: a reminder is still sent if the policy has not expired yet, unless a
later reminder for the same policy is also due by today (the later one supersedes it, so a
customer is not sent two at once); ``days_left`` is counted from the day it is actually sent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any, Final

from scheduler.cn_calendar import HolidayPeriod, WorkCalendar
from scheduler.config import ClaimsHintSettings, RenewalSettings
from scheduler.context import PlanContext, Sink, feed
from scheduler.selection import Selection
from scheduler.wording import HOLIDAY_NAMES, Localised, localised_date, policy_list
from storage.models import Category, PolicyStatus, Product
from storage.outbox import Outbound
from storage.sql import Fragment, Row, as_date, is_postgres, json_rows

log = logging.getLogger(__name__)

KIND = "renewal"
HOLIDAY_KIND = "renewal_holiday"
MAX_HOLIDAY_SHIFT: Final = 5
_HOLIDAY_HORIZON: Final = timedelta(days=90)
GENTLE_FROM: Final = 45
URGENT_UNTIL: Final = 3


STOPPED_BY: Final = ("renewed_elsewhere", "not_renewing", "sold_scrapped")
"""Renewal desk outcomes after which no reminder or rescue goes out (the customer told us)."""


def waiting(alias: str) -> str:
    """SQL: policy ``alias`` is still waiting for its renewal: nothing recorded against it (no
    renewal, no cancellation, no answer in ``STOPPED_BY``), no newer policy for the same car
    and product (the plate index serves the NOT EXISTS)."""
    newer = f"{alias}_newer"
    stopped = ", ".join(f"'{outcome}'" for outcome in STOPPED_BY)
    return (
        f"{alias}.renewed_by_id IS NULL AND {alias}.cancelled_at IS NULL "
        f"AND {alias}.outcome NOT IN ({stopped}) AND NOT EXISTS ("
        f"SELECT 1 FROM policy {newer} WHERE {newer}.plate = {alias}.plate "
        f"AND {newer}.product = {alias}.product AND {newer}.id <> {alias}.id "
        f"AND {newer}.end_date > {alias}.end_date AND {newer}.status <> 'cancelled')"
    )


@dataclass(frozen=True, slots=True)
class HolidayReminder:
    day: date
    period: HolidayPeriod


# -- decisions (pure) -------------------------------------------------------------------------


def reminder_template(offset: int) -> str:
    """The wording of the reminder ``offset`` days before expiry: gentle from
    ``GENTLE_FROM`` days (the two-month notice), urgent up to ``URGENT_UNTIL`` days, the
    weekly reminder of the last month in between."""
    if offset >= GENTLE_FROM:
        return "renewal_reminder_early"
    if offset <= URGENT_UNTIL:
        return "renewal_reminder_urgent"
    return "renewal_reminder"


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


def policy_groups(end: date, statuses: Sequence[PolicyStatus], *,
                  claims: bool = False) -> Selection:
    """One row per car with policies ending on ``end`` that are in one of ``statuses`` and
    still waiting for renewal; read it with :func:`car_group`.

    A group is one customer's qualifying policies with the same plate and end date. Only the
    group's lowest qualifying id is selected (the ``NOT EXISTS``; it is also the page key
    ``k``), so a group is one row and a page boundary cannot split it. ``policies`` lists every
    policy of the customer's car with that end date as JSON ``[[id, product, number,
    qualifies], …]``, the renewed and cancelled ones too, which is what keeps the dedup key
    stable. The subqueries are correlated on the policy's plate and customer indexes.
    """
    values = [f"'{status.value}'" for status in statuses]
    in_status = f"= {values[0]}" if len(values) == 1 else f"IN ({', '.join(values)})"

    def qualifies(alias: str) -> str:
        return f"{alias}.status {in_status} AND {waiting(alias)}"

    def same_car(alias: str) -> str:
        return (f"{alias}.plate = p.plate AND {alias}.customer_id = p.customer_id "
                f"AND {alias}.end_date = p.end_date")

    everything = json_rows("g.id", "g.product", "g.number", f"({qualifies('g')})",
                           postgres=is_postgres())
    # claims reported in the policy year on any policy of the car, rejected and withdrawn
    # ones aside (for the claims-based pricing hint)
    counted = (", (SELECT COUNT(*) FROM claim cl JOIN policy h ON h.id = cl.policy_id "
               f"WHERE {same_car('h')} AND cl.status NOT IN ('rejected', 'withdrawn') "
               "AND cl.reported_at >= p.start_date) AS claims") if claims else ""
    return Selection(
        columns="p.plate, p.end_date, p.customer_id, c.name, c.timezone, "
                f"(SELECT {everything} FROM policy g WHERE {same_car('g')}) AS policies"
                f"{counted}",
        source=Fragment("FROM policy p JOIN customer c ON c.id = p.customer_id "
                        f"WHERE p.end_date = :end AND {qualifies('p')} AND NOT EXISTS ("
                        f"SELECT 1 FROM policy r WHERE {same_car('r')} AND r.id < p.id "
                        f"AND {qualifies('r')})", {"end": end}),
        key="p.id",
    )


@dataclass(frozen=True, slots=True)
class CarGroup:
    """What a message needs from a :func:`policy_groups` row."""

    anchor: int
    """The id in the dedup key: the lowest of all the car's policies with that end date."""
    policy: Localised
    """The ``policy`` parameter: the qualifying policies, compulsory first."""


def car_group(row: Row) -> CarGroup:
    """Read the ``policies`` column of a :func:`policy_groups` row."""
    order = list(Product)
    anchor = int(row["k"])
    named: list[tuple[Product, str]] = []
    for policy_id, product, number, qualifies in json.loads(row["policies"]):
        anchor = min(anchor, int(policy_id))
        if qualifies:  # true / 1
            named.append((Product(product), str(number)))
    named.sort(key=lambda policy: (order.index(policy[0]), policy[1]))
    return CarGroup(anchor, policy_list(named))


def expiring(end: date, *, claims: bool = False) -> Selection:
    """Cars whose active policies expire on ``end`` and still wait for renewal.

    One selection per expiry date: an equality on the ``(status, end_date)`` index reads just
    that day's policies (an ``IN`` list of dates can tempt the planner into a primary-key scan
    of the whole table to serve ``ORDER BY id LIMIT n``).
    """
    return policy_groups(end, (PolicyStatus.ACTIVE,), claims=claims)


def selections(ctx: PlanContext) -> list[Selection]:
    offsets = offsets_due(ctx.day, ctx.today, ctx.renewal.offsets)
    hint = ctx.renewal.claims_hint
    return [expiring(ctx.day + timedelta(days=k), claims=hint.enabled and k == hint.offset)
            for k in offsets]


def claims_template(offset: int, claims: int | None,
                    settings: ClaimsHintSettings) -> tuple[str, dict[str, int]] | None:
    """The reminder with the claims-based pricing hint, and its extra parameter, when the
    hint is on for this offset and a band covers the car's claims count."""
    if not settings.enabled or offset != settings.offset or claims is None:
        return None
    band = settings.band(claims)
    if band is None:
        return None
    return f"renewal_reminder_{band.hint}", {"percent": band.percent}


def holiday_selections(ctx: PlanContext) -> list[Selection]:
    due = holiday_expiries_due(ctx.day, ctx.today, ctx.renewal, ctx.calendar)
    return [expiring(end) for end, _ in due]


def car_reminder(ctx: PlanContext, row: Row, *, key: str, kind: str, template: str,
                 params: dict[str, Any], stale_after: Callable[[datetime], datetime]) -> Outbound:
    """A reminder about the car of a :func:`policy_groups` row: ``key`` is the dedup key with
    ``{anchor}`` where the group's anchor goes, and ``params`` are added to the name, plate
    and policy every such reminder has — and the anchor as ``policy_id``, which the answer
    buttons and SMS replies act on."""
    group = car_group(row)
    return ctx.message(row, key=key.format(anchor=group.anchor), kind=kind,
                       category=Category.REMINDER, template=template,
                       params={"name": row["name"], "plate": row["plate"],
                               "policy": group.policy, "policy_id": group.anchor, **params},
                       stale_after=stale_after)


def _fixed(moment: datetime) -> Callable[[datetime], datetime]:
    """A staleness moment that does not depend on the send time."""
    return lambda _sent: moment


def _reminders(ctx: PlanContext, rows: list[Row]) -> Iterator[Outbound]:
    for row in rows:
        end = as_date(row["end_date"])
        offset = (end - ctx.day).days
        claims = row.get("claims")
        hinted = claims_template(offset, None if claims is None else int(claims),
                                 ctx.renewal.claims_hint)
        template, extra = hinted or (reminder_template(offset), {})
        yield car_reminder(
            ctx, row, key=f"renewal:{{anchor}}:T-{offset}", kind=KIND, template=template,
            params={"expiry": localised_date(end), "days_left": (end - ctx.today).days,
                    **extra},
            stale_after=_fixed(ctx.start_of(end + timedelta(days=1))))


def _holiday_reminders(ctx: PlanContext, rows: list[Row], *,
                       periods: dict[date, HolidayPeriod]) -> Iterator[Outbound]:
    for row in rows:
        end = as_date(row["end_date"])
        period = periods[end]
        yield car_reminder(
            ctx, row, key=f"renewal_holiday:{{anchor}}:{period.code}:{period.first.year}",
            kind=HOLIDAY_KIND, template="renewal_holiday",
            params={"expiry": localised_date(end), "holiday": HOLIDAY_NAMES[period.code]},
            stale_after=_fixed(ctx.start_of(period.first)))


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
