"""What every rule is given: the day it plans, the real current day, the settings it reads, and
the sink its messages go to.

``day`` is the customer-care calendar day being planned; ``today`` is the care day the plan
actually runs on. They differ only when catching up on days missed while the service was down,
and each rule decides from the pair whether its message is still worth sending.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from scheduler.cn_calendar import WorkCalendar, work_calendar
from scheduler.config import CareSettings, RenewalSettings, ScheduleSettings
from scheduler.selection import Selection
from storage.coverage import care_reaches
from storage.models import Category
from storage.outbox import NewRanges, Outbound, enqueue_bulk
from storage.sql import Fragment, Row, inside_transaction, is_postgres

Sink = Callable[[Iterable[Outbound]], Awaitable[int]]
"""Takes messages (a generator is fine) and returns how many were newly queued."""


async def feed(selection: Selection, size: int,
               build: Callable[[list[Row]], Iterable[Outbound]], sink: Sink) -> int:
    """Read ``selection`` page by page and queue the messages ``build`` makes of each page.

    The next page is read while the previous one is being written (on PostgreSQL these are two
    pool connections working at once); at most two pages are in memory.
    """
    async def write(items: list[Outbound]) -> int:
        return await sink(items)

    created = 0
    writing: asyncio.Task[int] | None = None
    try:
        async for rows in selection.pages(size):
            items = list(build(rows))
            if writing is not None:
                created += await writing
            writing = asyncio.create_task(write(items))
        if writing is not None:
            created += await writing
            writing = None
    finally:
        if writing is not None:
            writing.cancel()
            await asyncio.gather(writing, return_exceptions=True)
    return created


class OutboxSink:
    """The outbox as a sink, which also takes a whole selection set-based.

    ``insert_select`` queues one message per selected row with ``INSERT … SELECT`` over
    successive key ranges, one statement and transaction per range: nothing about the rows
    comes into Python, so a rule whose messages SQL can build on both backends (a festival's
    greetings) costs about what writing the rows costs. Other sinks (a test's list) get the
    messages built in Python instead.
    """

    def __init__(self, batch_size: int) -> None:
        self._batch_size = batch_size

    async def __call__(self, items: Iterable[Outbound]) -> int:
        return await enqueue_bulk(items, batch_size=self._batch_size)

    async def insert_select(self, selection: Selection, columns: Mapping[str, Fragment], *,
                            span: int, writers: int = 1) -> int:
        """Queue the message ``columns`` describe (see ``storage.outbox.insert_select``) for
        every row of ``selection``, whose key must be an integer, ``span`` keys per statement;
        returns how many were new. Ranges are written as new until one meets a key already
        queued (``storage.outbox.NewRanges``).

        On PostgreSQL ``writers`` connections take the ranges in turn, each range its own
        transaction (one backend writes the rows of one statement; a second one nearly halves
        a festival day on two cores). SQLite has one writer, and inside a transaction the
        statements share its connection: one at a time there."""
        bounds = await selection.key_bounds()
        if bounds is None:
            return 0
        inserts = NewRanges(columns, created_at=datetime.now(UTC))  # stamped as enqueue_bulk does
        ranges = _ranges(int(bounds[0]) - 1, int(bounds[1]), span)

        async def write() -> int:
            created = 0
            for low, high in ranges:  # shared: each range is taken by one writer
                created += await inserts.insert(selection.within(low, high).source)
            return created

        if not is_postgres() or writers <= 1 or inside_transaction():
            return await write()
        async with asyncio.TaskGroup() as group:  # one failing cancels the others
            tasks = [group.create_task(write()) for _ in range(writers)]
        return sum(task.result() for task in tasks)


def _ranges(low: int, top: int, span: int) -> Iterator[tuple[int, int]]:
    """``(low, low + span]``, then the next, up to ``top``."""
    while low < top:
        yield low, min(low + span, top)
        low += span


def outbox_sink(batch_size: int) -> OutboxSink:
    return OutboxSink(batch_size)


@dataclass(frozen=True, slots=True)
class PlanContext:
    day: date
    today: date
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    renewal: RenewalSettings = field(default_factory=RenewalSettings)
    calendar: WorkCalendar = field(default_factory=work_calendar)
    care: CareSettings = field(default_factory=CareSettings)

    _send_at: datetime = field(init=False, repr=False, compare=False)
    _zones: Zones = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.day > self.today:
            raise ValueError(f"cannot plan {self.day} before it comes (today is {self.today})")
        object.__setattr__(self, "_send_at", self.at(self.day, self.schedule.daily_plan_at))
        object.__setattr__(self, "_zones", Zones(self.tz))

    @property
    def tz(self) -> ZoneInfo:
        return _zone(self.schedule.timezone)

    @property
    def catching_up(self) -> bool:
        return self.day < self.today

    @property
    def batch_size(self) -> int:
        return self.schedule.batch_size

    def at(self, day: date, moment: time) -> datetime:
        """``day`` at ``moment`` on the care calendar (time zone aware)."""
        return datetime.combine(day, moment, tzinfo=self.tz)

    def start_of(self, day: date) -> datetime:
        return self.at(day, time(0, 0))

    @property
    def not_before(self) -> datetime:
        """The plan's send time on the care calendar: the plan day at
        ``schedule.daily_plan_at`` in ``schedule.timezone``."""
        return self._send_at

    @property
    def zones(self) -> Zones:
        """Customers' time zones (an unknown one reads as the care calendar's)."""
        return self._zones

    def send_at(self, timezone: str | None, moment: time | None = None) -> datetime:
        """When a customer in ``timezone`` gets the plan day's message: the day at ``moment``
        (``schedule.daily_plan_at``) in their own time zone."""
        return self._zones.at(self.day, moment or self.schedule.daily_plan_at, timezone)

    def message(self, row: Row, *, key: str, kind: str, category: Category, template: str,
                params: dict[str, Any], stale_after: Callable[[datetime], datetime],
                moment: time | None = None) -> Outbound:
        """A rule's message to the customer of a selected row (``customer_id``,
        ``timezone``): sent on the plan day at ``moment`` in their time zone (``send_at``),
        stale at ``stale_after(send time)``."""
        sent = self.send_at(row["timezone"], moment)
        return Outbound(dedup_key=key, kind=kind, category=category,
                        customer_id=row["customer_id"], template_key=template, params=params,
                        not_before=sent, stale_after=stale_after(sent))

    def care_reaches(self, customer: str = "c", *,
                     ids: tuple[int, int] | None = None) -> Fragment:
        """SQL: customer care reaches customer ``customer`` on the plan day
        (``storage.coverage``); ``ids`` (``low, high``) narrows it to ``low < id <= high``."""
        return care_reaches(self.day, self.care.lapsed_days, customer, ids=ids)


@lru_cache(maxsize=16)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


class Zones:
    """Customer time zones by name, parsed once; an unknown name falls back to the care zone."""

    def __init__(self, fallback: ZoneInfo) -> None:
        self._fallback = fallback
        self._zones: dict[str, ZoneInfo] = {}
        self._midnights: dict[tuple[date, str | None], datetime] = {}
        self._moments: dict[tuple[date, time, str | None], datetime] = {}

    def get(self, name: str | None) -> ZoneInfo:
        if not name:
            return self._fallback
        zone = self._zones.get(name)
        if zone is None:
            try:
                zone = ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                zone = self._fallback
            self._zones[name] = zone
        return zone

    def at(self, day: date, moment: time, name: str | None) -> datetime:
        """``day`` at ``moment`` in the named zone."""
        key = (day, moment, name)
        found = self._moments.get(key)
        if found is None:
            found = self._moments[key] = datetime.combine(day, moment, tzinfo=self.get(name))
        return found

    def end_of_day(self, day: date, name: str | None) -> datetime:
        """Midnight after ``day`` in the named zone: a greeting for ``day`` is stale then."""
        key = (day, name)
        midnight = self._midnights.get(key)
        if midnight is None:
            midnight = datetime.combine(day + timedelta(days=1), time(0, 0),
                                        tzinfo=self.get(name))
            self._midnights[key] = midnight
        return midnight
