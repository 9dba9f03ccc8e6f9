"""The supervisor: a crashed loop is logged once as an ERROR and restarted with back-off; a
loop that stops beating is reported stuck; /metrics and /healthz read the same state."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from bot.supervisor import Beat, Supervisor


class Ticker:
    """A monotonic clock moved by hand (stuck detection), the wall clock fixed."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _until(check: object, limit: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not check():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


async def test_a_crashing_loop_is_logged_once_per_crash_and_restarted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    supervisor = Supervisor(first_backoff=0.01, max_backoff=0.04)
    runs: list[int] = []

    async def flaky(stop: asyncio.Event, beat: Beat) -> None:
        runs.append(len(runs))
        if len(runs) <= 3:
            raise ValueError(f"boom {len(runs)}")
        while not stop.is_set():
            beat(state="fine")
            await asyncio.sleep(0.005)

    with caplog.at_level(logging.INFO, logger="bot.supervisor"):
        handle = supervisor.spawn("flaky", flaky, stuck_after=None)
        await _until(lambda: handle.health.beats > 0)
        await handle.stop()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.exc_info[1].args[0] for r in errors if r.exc_info] == ["boom 1", "boom 2", "boom 3"]
    assert len(errors) == 3  # one ERROR per crash, each with its traceback
    assert handle.health.restarts == 3 and handle.health.last_error == "ValueError: boom 3"
    assert handle.health.detail == {"state": "fine"}


async def test_a_loop_that_returns_unasked_is_restarted_too() -> None:
    supervisor = Supervisor(first_backoff=0.01)
    starts: list[float] = []

    async def quits(stop: asyncio.Event, beat: Beat) -> None:
        starts.append(1.0)
        if len(starts) > 1:
            await stop.wait()

    handle = supervisor.spawn("quits", quits, stuck_after=None)
    await _until(lambda: len(starts) == 2)
    assert "returned without being asked to stop" in handle.health.last_error
    await handle.stop()


async def test_health_says_restarting_then_stuck_then_ok() -> None:
    ticker = Ticker()
    supervisor = Supervisor(monotonic=ticker, wall=lambda: datetime(2026, 1, 1, tzinfo=UTC),
                            first_backoff=3600)
    release = asyncio.Event()
    beat_now = asyncio.Event()

    async def worker(stop: asyncio.Event, beat: Beat) -> None:
        while not stop.is_set():
            await beat_now.wait()
            beat_now.clear()
            beat()
            if release.is_set():
                raise RuntimeError("gone")

    handle = supervisor.spawn("worker", worker, stuck_after=60)
    healthy, report = supervisor.report()
    assert healthy and report["worker"]["status"] == "ok"  # just started

    ticker.now += 61  # no beat for longer than stuck_after
    healthy, report = supervisor.report()
    assert not healthy and report["worker"]["status"] == "stuck"

    beat_now.set()
    await _until(lambda: handle.health.beats == 1)
    healthy, report = supervisor.report()
    assert healthy and report["worker"]["last_tick"] == "2026-01-01T00:00:00+00:00"

    release.set()
    beat_now.set()
    await _until(lambda: not handle.health.running)
    healthy, report = supervisor.report()
    assert not healthy and report["worker"]["status"] == "restarting"
    assert report["worker"]["last_error"] == "RuntimeError: gone"
    await handle.stop()  # a stop during the back-off ends it at once


async def test_metrics_have_a_gauge_per_task_and_the_scheduler_role() -> None:
    ticker = Ticker()
    supervisor = Supervisor(monotonic=ticker, wall=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    registry = CollectorRegistry()
    supervisor.register_metrics(registry)

    async def leader(stop: asyncio.Event, beat: Beat) -> None:
        beat(role="leader")
        await stop.wait()

    async def silent(stop: asyncio.Event, beat: Beat) -> None:
        await stop.wait()

    handles = [supervisor.spawn("scheduler", leader, stuck_after=100),
               supervisor.spawn("dispatcher-1", silent, stuck_after=100)]
    await _until(lambda: handles[0].health.beats == 1)
    ticker.now += 150
    text = generate_latest(registry).decode()
    assert 'engage_task_up{task="scheduler"} 0.0' in text  # 150 s without a beat
    assert 'engage_task_up{task="dispatcher-1"} 0.0' in text
    assert 'engage_task_seconds_since_tick{task="scheduler"} 150.0' in text
    assert 'engage_task_last_tick_timestamp_seconds{task="scheduler"} 1.7672256e+09' in text
    assert 'engage_task_restarts_total{task="scheduler"} 0.0' in text
    assert "engage_scheduler_leader 1.0" in text
    ticker.now -= 150
    assert 'engage_task_up{task="scheduler"} 1.0' in generate_latest(registry).decode()
    supervisor.begin_shutdown()
    for handle in handles:
        await handle.stop()


def test_two_tasks_of_one_name_are_refused() -> None:
    async def run() -> None:
        supervisor = Supervisor()

        async def idle(stop: asyncio.Event, beat: Beat) -> None:
            await stop.wait()

        handle = supervisor.spawn("x", idle, stuck_after=None)
        with pytest.raises(ValueError, match="already supervised"):
            supervisor.spawn("x", idle, stuck_after=None)
        await handle.stop()

    asyncio.run(run())
