"""Background work never dies silently: every loop of ``engage run`` runs under a supervisor.

A supervised loop is ``async def loop(stop: asyncio.Event, beat: Beat) -> None``: it runs
until ``stop`` is set and calls ``beat()`` after every pass that did its job (a keyword
argument or two describe its state, e.g. ``beat(role="leader")``). The supervisor

* restarts a loop that raised — or returned without being asked to stop — after a back-off
  (1 s, doubling to 60 s while it keeps failing without a single beat in between), logging
  each crash once as an ERROR with its traceback;
* reports each loop for ``/healthz`` and ``/metrics``: running or waiting to restart, its
  last beat (wall clock and age), restarts, its last error. A loop is *unhealthy* while it
  waits to restart, or when its last beat (or its start, before the first) is older than
  its ``stuck_after`` — a loop blocked in a call that never returns is as dead as one that
  raised.

Shutdown: ``begin_shutdown`` sets every loop's ``stop`` at once (SIGTERM reaches them all
together, whatever order the application then closes its parts in); ``Supervised.stop``
sets one and waits for it to end.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

Beat = Callable[..., None]
Loop = Callable[[asyncio.Event, Beat], Awaitable[None]]
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 60.0


def _wall() -> datetime:
    return datetime.now(UTC)


@dataclass
class TaskHealth:
    """What the supervisor knows about one loop."""

    name: str
    stuck_after: float | None
    started: float
    last_beat: float | None = None
    last_beat_at: datetime | None = None
    beats: int = 0
    restarts: int = 0
    running: bool = True
    last_error: str = ""
    detail: dict[str, str] = field(default_factory=dict)

    def age(self, now: float) -> float:
        return now - (self.last_beat if self.last_beat is not None else self.started)

    def problem(self, now: float) -> str | None:
        """Why the loop is unhealthy, or None."""
        if not self.running:
            return "restarting"
        if self.stuck_after is not None and self.age(now) > self.stuck_after:
            return "stuck"
        return None


class Supervised:
    """A handle on one running loop."""

    def __init__(self, health: TaskHealth, stop: asyncio.Event,
                 task: asyncio.Task[None]) -> None:
        self.health = health
        self._stop = stop
        self._task = task

    async def stop(self) -> None:
        self._stop.set()
        await self._task


class Supervisor:
    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], datetime] = _wall,
                 first_backoff: float = FIRST_BACKOFF, max_backoff: float = MAX_BACKOFF) -> None:
        self._monotonic = monotonic
        self._wall = wall
        self._first_backoff = first_backoff
        self._max_backoff = max_backoff
        self._tasks: dict[str, Supervised] = {}

    def spawn(self, name: str, loop: Loop, *, stuck_after: float | None) -> Supervised:
        """Start ``loop`` under supervision; ``stuck_after`` seconds without a beat make it
        unhealthy (None: it beats rarely or never, only crashes count)."""
        if name in self._tasks:
            raise ValueError(f"a task named {name!r} is already supervised")
        health = TaskHealth(name, stuck_after, started=self._monotonic())
        stop = asyncio.Event()
        task = asyncio.create_task(self._keep_running(health, loop, stop), name=name)
        handle = Supervised(health, stop, task)
        self._tasks[name] = handle
        return handle

    def begin_shutdown(self) -> None:
        for handle in self._tasks.values():
            handle._stop.set()

    def __iter__(self) -> Iterator[TaskHealth]:
        return (handle.health for handle in self._tasks.values())

    def _beat_for(self, health: TaskHealth) -> Beat:
        def beat(**detail: str) -> None:
            health.last_beat = self._monotonic()
            health.last_beat_at = self._wall()
            health.beats += 1
            health.detail.update(detail)
        return beat

    async def _keep_running(self, health: TaskHealth, loop: Loop, stop: asyncio.Event) -> None:
        beat = self._beat_for(health)
        delay = self._first_backoff
        while not stop.is_set():
            beats = health.beats
            try:
                await loop(stop, beat)
                if stop.is_set():
                    return
                raise RuntimeError("the loop returned without being asked to stop")
            except Exception as exc:  # reported once, then restarted: the loop never stays dead
                health.running = False
                health.last_error = f"{type(exc).__name__}: {exc}"[:300]
                if health.beats > beats:  # it had been working: start the back-off afresh
                    delay = self._first_backoff
                log.error("background task %s crashed; restarting in %.0f s", health.name,
                          delay, exc_info=exc)
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
                return
            except TimeoutError:
                pass
            delay = min(delay * 2, self._max_backoff)
            health.restarts += 1
            health.running = True
            health.started = self._monotonic()
            log.info("background task %s restarted (restart %d)", health.name, health.restarts)

    # -- reporting ------------------------------------------------------------------------

    def report(self) -> tuple[bool, dict[str, dict[str, object]]]:
        """(every loop healthy, a JSON-ready entry per loop) for /healthz."""
        now = self._monotonic()
        healthy = True
        tasks: dict[str, dict[str, object]] = {}
        for health in self:
            problem = health.problem(now)
            healthy = healthy and problem is None
            entry: dict[str, object] = {
                "status": problem or "ok",
                "last_tick": health.last_beat_at.isoformat() if health.last_beat_at else None,
                "seconds_since_tick": round(health.age(now), 1),
                "restarts": health.restarts,
                **health.detail,
            }
            if health.stuck_after is not None:
                entry["stuck_after_seconds"] = health.stuck_after
            if health.last_error:
                entry["last_error"] = health.last_error
            tasks[health.name] = entry
        return healthy, tasks

    def register_metrics(self, registry: CollectorRegistry) -> None:
        registry.register(_TaskCollector(self))


class _TaskCollector(Collector):
    """Gauges read at scrape time, so ages are current."""

    def __init__(self, supervisor: Supervisor) -> None:
        self._supervisor = supervisor

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        supervisor = self._supervisor
        now = supervisor._monotonic()
        up = GaugeMetricFamily("engage_task_up", "1 while a background task runs and beats "
                               "within its threshold, else 0", labels=["task"])
        age = GaugeMetricFamily("engage_task_seconds_since_tick", "Seconds since a background "
                                "task last completed a pass", labels=["task"])
        last = GaugeMetricFamily("engage_task_last_tick_timestamp_seconds", "Unix time of a "
                                 "background task's last completed pass", labels=["task"])
        restarts = CounterMetricFamily("engage_task_restarts", "Restarts of a background task "
                                       "after it crashed", labels=["task"])
        leader = GaugeMetricFamily("engage_scheduler_leader", "1 when this process leads the "
                                   "scheduler, 0 on standby")
        for health in supervisor:
            up.add_metric([health.name], 0.0 if health.problem(now) else 1.0)
            age.add_metric([health.name], health.age(now))
            if health.last_beat_at is not None:
                last.add_metric([health.name], health.last_beat_at.timestamp())
            restarts.add_metric([health.name], float(health.restarts))
            if "role" in health.detail:
                leader.add_metric([], 1.0 if health.detail["role"] == "leader" else 0.0)
        yield from (up, age, last, restarts, leader)
