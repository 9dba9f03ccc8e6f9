"""What every rule is given: the day it plans, the real current day, the settings it reads, and
the sink its messages go to.

``day`` is the customer-care calendar day being planned; ``today`` is the care day the plan
actually runs on. They differ only when catching up on days missed while the service was down,
and each rule decides from the pair whether its message is still worth sending.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from scheduler.cn_calendar import WorkCalendar, work_calendar
from scheduler.config import RenewalSettings, ScheduleSettings
from storage.outbox import Outbound, enqueue_many

Sink = Callable[[Iterable[Outbound]], Awaitable[int]]
"""Takes messages (a generator is fine) and returns how many were newly queued."""


def outbox_sink(batch_size: int) -> Sink:
    async def sink(items: Iterable[Outbound]) -> int:
        return await enqueue_many(items, batch_size=batch_size)

    return sink


@dataclass(frozen=True, slots=True)
class PlanContext:
    day: date
    today: date
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    renewal: RenewalSettings = field(default_factory=RenewalSettings)
    calendar: WorkCalendar = field(default_factory=work_calendar)

    def __post_init__(self) -> None:
        if self.day > self.today:
            raise ValueError(f"cannot plan {self.day} before it comes (today is {self.today})")

    @property
    def tz(self) -> ZoneInfo:
        return self.schedule.tz

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
        """The plan's send time: the plan day at ``schedule.daily_plan_at``."""
        return self.at(self.day, self.schedule.daily_plan_at)


class Zones:
    """Customer time zones by name, parsed once; an unknown name falls back to the care zone."""

    def __init__(self, fallback: ZoneInfo) -> None:
        self._fallback = fallback
        self._zones: dict[str, ZoneInfo] = {}

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

    def end_of_day(self, day: date, name: str | None) -> datetime:
        """Midnight after ``day`` in the named zone: a greeting for ``day`` is stale then."""
        return datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=self.get(name))
