"""``engage demo``: the embedded, offline demo, run as a list of steps over one plan day.

Each step receives the same ``DemoRun`` (settings, the plan day, the output) and prints its
own part of the summary; later steps (the day's plan, console delivery) are appended to
``STEPS``. The plan day is resolved once, here, from an injectable clock.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from tortoise.functions import Count

from bot.settings import Settings
from storage.demo_data import DEFAULT_SEED, DemoDataReport, demo_phone, seed_demo_data
from storage.models import Claim, ClaimStatus, Customer, Policy, PolicyStatus
from storage.phones import mask_phone

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

SAMPLE_CUSTOMERS = 3
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
    phones = [demo_phone(i, run.seed) for i in range(min(SAMPLE_CUSTOMERS, run.customers))]
    samples = await Customer.filter(phone__in=phones).select_related("region").order_by("id")
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


STEPS: tuple[DemoStep, ...] = (seed_data, summarise_data)


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
