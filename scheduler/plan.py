"""One day's plan: every date-driven rule (birthday, festival, renewal, holiday renewal, lapse
rescue) run for one care-calendar day, messages into the outbox.

Re-running a day queues nothing new (every dedup key carries its target date). A dry run
executes the same plan inside a transaction that is rolled back, so its counts are exactly what
a real run would queue and nothing is written.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from tortoise.transactions import in_transaction

from scheduler import birthday, festival, lapse, renewal
from scheduler.context import PlanContext, Sink, outbox_sink
from scheduler.selection import Selection
from storage.models import Message

log = logging.getLogger(__name__)

Rule = Callable[[PlanContext, Sink], Awaitable[int]]

RULES: Final[tuple[tuple[str, Rule], ...]] = (
    (birthday.KIND, birthday.queue),
    (festival.KIND, festival.queue),
    (renewal.KIND, renewal.queue),
    (renewal.HOLIDAY_KIND, renewal.queue_holiday),
    (lapse.KIND, lapse.queue),
)
KINDS: Final = tuple(kind for kind, _ in RULES)


@dataclass(frozen=True, slots=True)
class Sample:
    """One message a dry run would queue (shown to the operator)."""

    dedup_key: str
    customer_id: int
    template_key: str
    not_before: datetime


@dataclass
class PlanResult:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    samples: dict[str, list[Sample]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def describe(self) -> str:
        return ", ".join(f"{kind} {n}" for kind, n in self.counts.items())


async def run_plan(ctx: PlanContext, sink: Sink | None = None) -> PlanResult:
    """Queue the day's messages; returns how many were new, per kind."""
    target = sink or outbox_sink(ctx.batch_size)
    result = PlanResult()
    for kind, rule in RULES:
        result.counts[kind] = await rule(ctx, target)
    log.info("plan for %s%s: %s", ctx.day, " (catch-up)" if ctx.catching_up else "",
             result.describe())
    return result


class _RollBack(Exception):
    pass


async def dry_run(ctx: PlanContext, *, samples: int = 3) -> PlanResult:
    """What ``run_plan`` would queue, computed in a transaction that is then rolled back.

    Running the real plan (rather than counting) keeps the numbers exact, dedup included;
    the rollback guarantees nothing is written. ``samples`` messages per kind are kept to show.
    """
    result = PlanResult()
    try:
        async with in_transaction():
            last = await Message.all().order_by("-id").first()
            result = await run_plan(ctx)
            for kind in KINDS:
                rows = await Message.filter(kind=kind, id__gt=last.id if last else 0).order_by(
                    "id").limit(samples)
                result.samples[kind] = [
                    Sample(m.dedup_key, m.customer_id, m.template_key, m.not_before) for m in rows
                ]
            raise _RollBack
    except _RollBack:
        pass
    return result


def selections(ctx: PlanContext) -> dict[str, list[Selection]]:
    """The rows each rule reads for ``ctx`` (for counting them in SQL, as the benchmark does)."""
    return {
        birthday.KIND: birthday.selections(ctx),
        festival.KIND: festival.selections(ctx),
        renewal.KIND: renewal.selections(ctx),
        renewal.HOLIDAY_KIND: renewal.holiday_selections(ctx),
        lapse.KIND: lapse.selections(ctx),
    }
