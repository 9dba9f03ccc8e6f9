"""``engage demo``: the embedded, offline demo, run as a list of steps over one plan day.

Each step receives the same ``DemoRun`` (settings, the plan day, the output) and prints its
own part of the summary; later steps (the day's plan, console delivery) are appended to
``STEPS``. The plan day is resolved once, here, from an injectable clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from tortoise.functions import Count

from bot.delivery.dispatcher import Dispatcher
from bot.delivery.senders import ConsoleChannel
from bot.settings import Settings
from bot.texts import Texts
from scheduler import weather
from scheduler.context import PlanContext, outbox_sink
from scheduler.forecast import DayForecast, Place
from scheduler.plan import run_plan
from storage.demo_data import DEFAULT_SEED, DemoDataReport, demo_customer_no, seed_demo_data
from storage.models import (
    Claim,
    ClaimStatus,
    Customer,
    Message,
    MessageStatus,
    Policy,
    PolicyStatus,
    TelegramAccount,
)
from storage.phones import mask_phone

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

SAMPLE_CUSTOMERS = 3
DEMO_CHAT_BASE = 9_000_000_000  # console "Telegram" chats of demo customers
DELIVERY_TIME = time(10, 0)
EXPIRY_WINDOW_DAYS = 60


@dataclass(slots=True)
class DemoRun:
    """What the steps of one demo run share."""

    settings: Settings
    day: date
    customers: int
    out: TextIO
    seed: int = DEFAULT_SEED
    data: DemoDataReport | None = None

    def say(self, line: str = "") -> None:
        print(line, file=self.out)


DemoStep = Callable[[DemoRun], Awaitable[None]]


def resolve_day(day: date | None, tz: ZoneInfo, now: Clock) -> date:
    """The plan day: the one asked for, else today in the care calendar's time zone."""
    if day is not None:
        return day
    current = now()
    if current.tzinfo is None:
        raise ValueError("the demo clock must return timezone-aware datetimes")
    return current.astimezone(tz).date()


async def seed_data(run: DemoRun) -> None:
    """Regions, customers, policies, claims and payments around the plan day."""
    run.data = await seed_demo_data(customers=run.customers, today=run.day, seed=run.seed)
    counts = " · ".join(f"{name} {count.total} ({count.created} new)"
                        for name, count in run.data.entities())
    run.say(f"Demo data (seed {run.seed}): {counts}")


async def summarise_data(run: DemoRun) -> None:
    """A few sample rows and the numbers the day's rules will work from."""
    numbers = [demo_customer_no(i, run.seed)
               for i in range(min(SAMPLE_CUSTOMERS, run.customers))]
    samples = await Customer.filter(customer_no__in=numbers).select_related("region").order_by(
        "id")
    if samples:
        run.say()
        run.say("Sample customers:")
    for customer in samples:
        policies = await Policy.filter(customer_id=customer.id).count()
        region = customer.region
        where = f"{region.name} {region.name_en}" if region is not None else "no region"
        born = customer.birthday.isoformat() if customer.birthday else "birthday unknown"
        lunar = " (lunar)" if customer.lunar_birthday else ""
        run.say(f"  {customer.name} · {mask_phone(customer.phone)} · {customer.language} · "
                f"{where} · born {born}{lunar} · {policies} policies · "
                f"referral {customer.referral_code}")

    birthdays = await Customer.filter(birthday_md=run.day.month * 100 + run.day.day).count()
    horizon = run.day + timedelta(days=EXPIRY_WINDOW_DAYS)
    expiring = await Policy.filter(
        status=PolicyStatus.ACTIVE, end_date__gte=run.day, end_date__lte=horizon
    ).count()
    rows: list[Any] = await (
        Claim.annotate(n=Count("id")).group_by("status").values_list("status", "n")
    )
    per_status = {ClaimStatus(status): n for status, n in rows}
    run.say()
    run.say(f"Birthdays on {run.day.isoformat()}: {birthdays}")
    run.say(f"Active policies expiring in the next {EXPIRY_WINDOW_DAYS} days "
            f"({run.day.isoformat()} to {horizon.isoformat()}): {expiring}")
    run.say("Claims by status: "
            + " · ".join(f"{status.value} {per_status.get(status, 0)}" for status in ClaimStatus))


class ScriptedForecast:
    """The demo's offline weather: a rainstorm over Shanghai, snow in Harbin, a hard frost in
    Ürümqi, fair skies elsewhere. Same shape as the Open-Meteo client, no network."""

    FAIR = DayForecast(place="", day=date.min, weather_code=1, precipitation_mm=0.0,
                       snowfall_cm=0.0, gust_ms=6.0, temp_min_c=8.0)
    SCRIPT: dict[str, DayForecast] = {  # by region code (the built-in regions')
        "310000": replace(FAIR, weather_code=65, precipitation_mm=48.0),
        "230100": replace(FAIR, weather_code=75, snowfall_cm=6.5, temp_min_c=-14.0),
        "650100": replace(FAIR, weather_code=3, temp_min_c=-11.0),
    }

    async def daily(self, places: Sequence[Place], start: date,
                    end: date) -> list[DayForecast]:
        days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
        return [
            replace(self.SCRIPT.get(place.code, self.FAIR) if day == start else self.FAIR,
                    place=place.code, day=day)
            for place in places for day in days
        ]


def _plan_context(run: DemoRun) -> PlanContext:
    return PlanContext(day=run.day, today=run.day, schedule=run.settings.schedule,
                       renewal=run.settings.renewal, care=run.settings.care,
                       calendar=run.settings.holidays.calendar())


async def link_console_chats(run: DemoRun) -> None:
    """Every third demo customer "uses Telegram", so both channels appear in the demo."""
    numbers = [demo_customer_no(i, run.seed) for i in range(0, run.customers, 3)]
    ids = [c.id for c in await Customer.filter(customer_no__in=numbers).only("id")]
    linked_at = datetime.combine(run.day, time(0), tzinfo=run.settings.schedule.tz)
    await TelegramAccount.bulk_create(
        [TelegramAccount(telegram_user_id=DEMO_CHAT_BASE + cid, chat_id=DEMO_CHAT_BASE + cid,
                         customer_id=cid, linked_at=linked_at) for cid in ids],
        ignore_conflicts=True,
    )


async def plan_day(run: DemoRun) -> None:
    """The day's birthday, festival, renewal and lapse rules, then the scripted weather."""
    ctx = _plan_context(run)
    result = await run_plan(ctx)
    forecast = await weather.queue(ctx, run.settings.weather, ScriptedForecast(),
                                   outbox_sink(ctx.batch_size))
    run.say()
    run.say(f"Plan for {run.day.isoformat()}: {result.describe()}, "
            f"weather {forecast.queued} (offline forecast)")


async def deliver(run: DemoRun) -> None:
    """Dispatch everything due at 10:00 on the plan day through the console channel."""
    console = ConsoleChannel(run.out)
    at = datetime.combine(run.day, DELIVERY_TIME, tzinfo=run.settings.schedule.tz)
    dispatcher = Dispatcher(run.settings, Texts.load(), telegram=console, sms=console,
                            clock=lambda: at.astimezone(UTC),
                            skip_locked=run.settings.database.is_postgres)
    run.say()
    run.say(f"Delivering at {DELIVERY_TIME:%H:%M} ({run.settings.schedule.timezone}) "
            "through the console channel:")
    await dispatcher.run(asyncio.Event(), until_idle=True)
    for msg in await Message.filter(status=MessageStatus.SKIPPED,
                                    updated_at__gte=at - timedelta(days=1)).order_by("id"):
        run.say(f"[skipped: {msg.skip_reason}] {msg.kind} for customer {msg.customer_id}")


async def summarise_delivery(run: DemoRun) -> None:
    """Per kind, per status, for the messages of the plan day."""
    start = datetime.combine(run.day, time(0), tzinfo=run.settings.schedule.tz)
    rows: list[Any] = await (
        Message.filter(not_before__gte=start - timedelta(days=1))
        .annotate(n=Count("id")).group_by("kind", "status").values_list("kind", "status", "n")
    )
    table: dict[str, dict[str, int]] = {}
    for kind, status, n in rows:
        table.setdefault(kind, {})[str(MessageStatus(status).value)] = n
    run.say()
    run.say("Summary by kind and status:")
    if not table:
        run.say("  (nothing queued for this day)")
    for kind in sorted(table):
        cells = " · ".join(f"{status} {n}" for status, n in sorted(table[kind].items()))
        run.say(f"  {kind:<16} {cells}")


STEPS: tuple[DemoStep, ...] = (
    seed_data, summarise_data, link_console_chats, plan_day, deliver, summarise_delivery,
)


async def run_demo(
    settings: Settings,
    *,
    customers: int,
    day: date | None,
    out: TextIO,
    now: Clock | None = None,
    steps: Sequence[DemoStep] = STEPS,
) -> None:
    """Run the demo's steps for ``day`` (default: today in ``settings.schedule.tz``)."""
    tz = settings.schedule.tz
    clock = now if now is not None else lambda: datetime.now(tz)
    run = DemoRun(settings=settings, day=resolve_day(day, tz, clock), customers=customers,
                  out=out)
    run.say(f"Engage demo · plan day {run.day.isoformat()} ({settings.schedule.timezone})")
    for step in steps:
        await step(run)
    log.info("demo finished for %s", run.day)
