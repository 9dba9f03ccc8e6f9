"""Rate limits: the 1-second-window guarantee, fairness, pauses, costs, per-key intervals.

Local limiters run on virtual time (``VirtualClock``): a sleeping task is parked until every
task is parked, then time jumps to the earliest wake-up. Thousands of acquisitions take
milliseconds and every grant time is exact. The Redis limiters run against a real Redis on
the real clock, with small rates, because their time comes from the Redis server.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import aiohttp
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from bot.delivery.dispatcher import _take_slot
from bot.delivery.ratelimit import (
    SYSTEM_CLOCK,
    LocalKeyedInterval,
    LocalRateLimiter,
    RateLimiter,
    WireMargin,
    local_keyed_interval,
    local_rate_limiter,
    redis_keyed_interval,
    redis_rate_limiter,
)

T = TypeVar("T")
START = 1000.0  # like a real monotonic clock: far from 0, so float steps are exact


class VirtualClock:
    """A ``Clock`` whose time moves only when every task it drives is asleep on it."""

    def __init__(self, start: float = START) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = 0
        self._alive = 0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (self.now + seconds, self._seq, future)
        heapq.heappush(self._sleepers, entry)
        self._seq += 1
        try:
            await future
        except asyncio.CancelledError:
            if entry in self._sleepers:
                self._sleepers.remove(entry)
                heapq.heapify(self._sleepers)
            raise

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Start a task that this clock drives (``run`` waits for it)."""
        task = asyncio.ensure_future(coro)
        self._alive += 1
        task.add_done_callback(self._finished)
        return task

    def _finished(self, _: asyncio.Future[Any]) -> None:
        self._alive -= 1

    async def run(self, *coros: Coroutine[Any, Any, T]) -> list[T]:
        """Run ``coros`` and every spawned task to completion on virtual time."""
        tasks = [self.spawn(coro) for coro in coros]
        while True:
            for _ in range(1000):  # let every runnable task run until it parks or ends
                if self._alive == len(self._sleepers):
                    break
                await asyncio.sleep(0)
            else:
                raise RuntimeError("a task is blocked on something other than the clock")
            if not self._sleepers:
                break
            wake_at, _, future = heapq.heappop(self._sleepers)
            if future.cancelled():  # its task is on its way out; let it finish first
                continue
            self.now = max(self.now, wake_at)
            future.set_result(None)
        return [task.result() for task in tasks]


def max_units_in_any_window(grants: list[tuple[float, float]], window: float = 1.0) -> float:
    """The most units granted in any half-open window ``[a, a + window)``.

    The fullest window can always start at a grant, so those are the only ones checked.
    """
    grants = sorted(grants)
    best, total, end = 0.0, 0.0, 0
    for start, units in grants:
        while end < len(grants) and grants[end][0] < start + window:
            total += grants[end][1]
            end += 1
        best = max(best, total)
        total -= units
    return best


def windows_ok(grants: list[tuple[float, float]], rate: float) -> bool:
    return max_units_in_any_window(grants) <= rate


async def worker(
    limiter: RateLimiter, clock: VirtualClock, count: int, grants: list[tuple[float, float]],
    cost: float = 1.0,
) -> None:
    for _ in range(count):
        await limiter.acquire(cost)
        grants.append((clock.monotonic(), cost))


# The local rate limiter ------------------------------------------------------------------


@pytest.mark.parametrize("jitter", [0.0, 0.01])
async def test_5000_grants_at_1000_per_second_stay_within_every_window_and_near_the_limit(
    jitter: float,
) -> None:
    clock = VirtualClock()
    limiter = local_rate_limiter(1000, clock=clock, jitter=jitter)
    grants: list[tuple[float, float]] = []
    await clock.run(*(worker(limiter, clock, 100, grants) for _ in range(50)))

    assert len(grants) == 5000
    assert 990 <= max_units_in_any_window(grants) <= 1000  # never over
    # The schedule itself is saturated for the window it was built for.
    assert max_units_in_any_window(grants, window=1.0 + jitter) == 1000
    times = [t for t, _ in grants]
    span = max(times) - min(times)
    assert 4.99 <= span <= 5.0 * (1 + jitter) + 1e-6
    assert 5000 / (span + 1 / 1000) >= 0.95 * 1000  # achieved rate


async def test_without_jitter_grants_are_exactly_one_interval_apart() -> None:
    clock = VirtualClock()
    limiter = local_rate_limiter(8, clock=clock, jitter=0)
    grants: list[tuple[float, float]] = []
    await clock.run(worker(limiter, clock, 17, grants))
    assert [t for t, _ in grants] == [START + i / 8 for i in range(17)]
    assert max_units_in_any_window(grants) == 8  # 0 .. 7/8, then 1.0 opens the next window


async def test_jitter_keeps_windows_within_rate_even_if_every_release_is_late() -> None:
    clock = VirtualClock()
    limiter = local_rate_limiter(50, clock=clock, jitter=0.01)
    grants: list[tuple[float, float]] = []
    await clock.run(*(worker(limiter, clock, 50, grants) for _ in range(4)))
    rng = random.Random(7)
    # Each request reaches the provider up to 10 ms late, by a different amount.
    seen = [(t + rng.uniform(0, 0.01), units) for t, units in grants]
    assert max_units_in_any_window(seen) <= 50


class LateClock(VirtualClock):
    """Wakes every sleeper late by a random 0–100 ms, as a saturated event loop does."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self._rng = random.Random(seed)

    async def sleep(self, seconds: float) -> None:
        await super().sleep(seconds + self._rng.uniform(0.0, 0.1))


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_tasks_woken_late_still_never_exceed_the_rate_when_released(seed: int) -> None:
    clock = LateClock(seed)
    limiter = local_rate_limiter(100, clock=clock)
    grants: list[tuple[float, float]] = []
    await clock.run(*(worker(limiter, clock, 60, grants) for _ in range(10)))
    assert len(grants) == 600
    assert max_units_in_any_window(grants) <= 100


async def test_concurrent_acquirers_each_reserve_a_distinct_slot_and_sleep_once() -> None:
    clock = VirtualClock()
    limiter = local_rate_limiter(100, clock=clock, jitter=0)
    order: list[int] = []
    grant_times: list[float] = []

    async def acquire(i: int) -> None:
        await limiter.acquire()
        order.append(i)
        grant_times.append(clock.monotonic())

    await clock.run(*(acquire(i) for i in range(1000)))
    assert order == list(range(1000))  # first come, first served
    assert len(set(grant_times)) == 1000
    assert all(b - a >= 0.01 - 1e-9 for a, b in itertools.pairwise(grant_times))
    assert len(clock.sleeps) == 999  # one sleep each, no retry storm; the first goes at once


async def test_pause_holds_back_acquirers_that_already_hold_a_slot() -> None:
    clock = VirtualClock()
    limiter = local_rate_limiter(10, clock=clock, jitter=0)
    grants: list[tuple[float, float]] = []
    order: list[int] = []

    async def acquire(i: int) -> None:
        await limiter.acquire()
        grants.append((clock.monotonic(), 1.0))
        order.append(i)

    async def retry_after_at(at: float, seconds: float) -> None:
        await clock.sleep(at)
        await limiter.pause(seconds)

    await clock.run(*(acquire(i) for i in range(30)), retry_after_at(0.55, 2.0))

    times = [t for t, _ in grants]
    assert not [t for t in times if START + 0.55 <= t < START + 2.55 - 1e-9]
    assert sum(t < START + 0.55 for t in times) == 6  # 0.0 .. 0.5 went before the 429
    assert min(t for t in times if t > START + 0.55) == pytest.approx(START + 2.55)
    assert order == list(range(30))  # the waiters kept their order
    assert windows_ok(grants, 10)


async def test_short_pause_mid_stream_keeps_every_window_within_rate() -> None:
    clock = VirtualClock()
    limiter = local_rate_limiter(20, clock=clock, jitter=0)
    grants: list[tuple[float, float]] = []

    async def pause_at(at: float, seconds: float) -> None:
        await clock.sleep(at)
        await limiter.pause(seconds)

    await clock.run(
        *(worker(limiter, clock, 20, grants) for _ in range(3)),
        pause_at(0.33, 0.3), pause_at(1.2, 0.05),
    )
    times = [t for t, _ in grants]
    assert not [t for t in times if START + 0.33 <= t < START + 0.63 - 1e-9]
    assert windows_ok(grants, 20)
    assert len(grants) == 60


async def test_pause_while_idle_delays_the_next_acquire() -> None:
    clock = VirtualClock()
    limiter = local_rate_limiter(25, clock=clock)
    await limiter.pause(1.5)
    grants: list[tuple[float, float]] = []
    await clock.run(worker(limiter, clock, 1, grants))
    assert grants == [(START + 1.5, 1.0)]


async def test_shorter_pause_does_not_cut_a_longer_one() -> None:
    clock = VirtualClock()
    limiter = local_rate_limiter(25, clock=clock)
    await limiter.pause(3.0)
    await limiter.pause(1.0)
    await limiter.pause(0)
    grants: list[tuple[float, float]] = []
    await clock.run(worker(limiter, clock, 1, grants))
    assert grants == [(START + 3.0, 1.0)]


async def test_cost_takes_that_many_slots() -> None:
    clock = VirtualClock()
    limiter = local_rate_limiter(10, clock=clock, jitter=0)
    grants: list[tuple[float, float]] = []

    async def run() -> None:
        for cost in (3, 1, 2):
            await limiter.acquire(cost)
            grants.append((clock.monotonic(), cost))

    await clock.run(run())
    assert grants == [(START, 3), (pytest.approx(START + 0.3), 1), (pytest.approx(START + 0.4), 2)]


async def test_large_cost_late_in_a_window_waits_for_room_in_that_window() -> None:
    # Plain GCRA would grant 5 units at 0.9 s, putting 14 units in [0, 1).
    clock = VirtualClock()
    limiter = local_rate_limiter(10, clock=clock, jitter=0)
    grants: list[tuple[float, float]] = []

    async def run() -> None:
        for cost in [1] * 9 + [5, 1]:
            await limiter.acquire(cost)
            grants.append((clock.monotonic(), cost))

    await clock.run(run())
    # 0.0 .. 0.3 had to leave the window: 9 - 4 + 5 = 10 units in (0.3, 1.3]
    assert grants[9][0] == pytest.approx(START + 1.3)
    assert grants[9][1] == 5
    assert windows_ok(grants, 10)


async def test_mixed_costs_never_exceed_the_rate_in_any_window() -> None:
    clock = VirtualClock()
    limiter = local_rate_limiter(10, clock=clock)
    rng = random.Random(3)
    grants: list[tuple[float, float]] = []

    async def run(costs: list[int]) -> None:
        for cost in costs:
            await limiter.acquire(cost)
            grants.append((clock.monotonic(), cost))

    costs = [[rng.choice([1, 1, 1, 2, 3, 7]) for _ in range(60)] for _ in range(4)]
    await clock.run(*(run(c) for c in costs))
    assert windows_ok(grants, 10)
    total = sum(units for _, units in grants)
    span = max(t for t, _ in grants) - START
    # FIFO with exact windows cannot always pack large costs: a 7 waits for room.
    assert total / (span + 1) >= 0.7 * 10


async def test_cost_above_the_rate_is_granted_alone() -> None:
    clock = VirtualClock()
    limiter = local_rate_limiter(2, clock=clock, jitter=0)
    grants: list[tuple[float, float]] = []

    async def run() -> None:
        for cost in (5, 1, 1):
            await limiter.acquire(cost)
            grants.append((clock.monotonic(), cost))

    await clock.run(run())
    # 5 units at 2/s: the next unit waits 2.5 s (the average holds), and nothing else
    # shares a 1-second window with the oversized grant.
    assert [t for t, _ in grants] == [START, START + 2.5, START + 3.0]


async def test_cost_above_rate_first_waits_for_an_empty_window() -> None:
    clock = VirtualClock()
    limiter = local_rate_limiter(2, clock=clock, jitter=0)
    grants: list[tuple[float, float]] = []

    async def run() -> None:
        await limiter.acquire(1)
        grants.append((clock.monotonic(), 1))
        await limiter.acquire(5)
        grants.append((clock.monotonic(), 5))

    await clock.run(run())
    assert grants == [(START, 1), (START + 1.0, 5)]


@pytest.mark.parametrize("cost", [0, -1, float("nan"), float("inf")])
async def test_cost_must_be_positive(cost: float) -> None:
    with pytest.raises(ValueError, match="cost"):
        await local_rate_limiter(10, clock=VirtualClock()).acquire(cost)


@pytest.mark.parametrize("rate", [0, -5, float("inf")])
def test_rate_must_be_positive(rate: float) -> None:
    with pytest.raises(ValueError, match="rate"):
        local_rate_limiter(rate)


async def test_cancelled_acquirer_leaves_its_slot_unused() -> None:
    clock = VirtualClock()
    limiter = LocalRateLimiter(10, clock=clock, jitter=0)
    grants: list[tuple[float, float]] = []

    async def acquire() -> None:
        await limiter.acquire()
        grants.append((clock.monotonic(), 1))

    async def cancel_then_acquire(task: asyncio.Task[None]) -> None:
        await clock.sleep(0.05)
        task.cancel()
        await acquire()

    clock.spawn(acquire())  # START
    victim = clock.spawn(acquire())  # holds START + 0.1, cancelled before it
    clock.spawn(cancel_then_acquire(victim))
    await clock.run()
    assert victim.cancelled()
    assert grants == [(START, 1), (pytest.approx(START + 0.2), 1)]


# The local keyed interval ---------------------------------------------------------------


async def test_same_key_is_spaced_by_the_interval() -> None:
    clock = VirtualClock()
    chats = local_keyed_interval(1.0, clock=clock)
    passes: list[float] = []

    async def send(key: str) -> None:
        await chats.wait(key)
        passes.append(clock.monotonic())

    await clock.run(*(send("42") for _ in range(4)))
    assert passes == [START, START + 1, START + 2, START + 3]


async def test_different_keys_do_not_delay_each_other() -> None:
    clock = VirtualClock()
    chats = local_keyed_interval(1.0, clock=clock)
    passes: dict[str, float] = {}

    async def send(key: str) -> None:
        await chats.wait(key)
        passes[key] = clock.monotonic()

    await clock.run(*(send(str(chat)) for chat in range(500)))
    assert set(passes.values()) == {START}
    assert clock.sleeps == []


async def test_key_waits_only_for_what_remains_of_its_interval() -> None:
    clock = VirtualClock()
    chats = local_keyed_interval(1.0, clock=clock)
    passes: list[float] = []

    async def run() -> None:
        await chats.wait("a")
        await clock.sleep(0.7)
        await chats.wait("a")
        passes.append(clock.monotonic())
        await clock.sleep(5)
        await chats.wait("a")
        passes.append(clock.monotonic())

    await clock.run(run())
    assert passes == [START + 1.0, START + 6.0]  # the second wait: 0.3 s; the third: none


async def test_keyed_interval_memory_stays_bounded_by_max_keys() -> None:
    clock = VirtualClock()
    chats = LocalKeyedInterval(1.0, clock=clock, max_keys=100)
    sizes: list[int] = []

    async def run() -> None:
        for chat in range(5000):
            await chats.wait(str(chat))
            sizes.append(len(chats))
            await clock.sleep(0.05)  # 20 new chats per second, each busy for 1 s

    await clock.run(run())
    assert max(sizes) <= 101
    assert len(chats) <= 101


async def test_pruning_keeps_keys_that_still_delay_someone() -> None:
    clock = VirtualClock()
    chats = LocalKeyedInterval(10.0, clock=clock, max_keys=3)
    passes: list[float] = []

    async def run() -> None:
        await chats.wait("busy")
        for chat in range(50):  # push far over max_keys while "busy" is still within 10 s
            await chats.wait(f"other-{chat}")
        await chats.wait("busy")
        passes.append(clock.monotonic())

    await clock.run(run())
    assert passes == [START + 10.0]
    assert len(chats) <= 2 * 52


async def test_zero_interval_never_waits() -> None:
    clock = VirtualClock()
    chats = local_keyed_interval(0, clock=clock)
    await clock.run(*(chats.wait("x") for _ in range(10)))
    assert clock.sleeps == []


# Redis ------------------------------------------------------------------------------------

REDIS_URL = os.environ.get("ENGAGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
async def redis_factory() -> AsyncIterator[Callable[[], aioredis.Redis]]:
    """Independent clients of one flushed test database - one per simulated process."""
    clients: list[aioredis.Redis] = []

    def connect() -> aioredis.Redis:
        client = aioredis.Redis.from_url(REDIS_URL)
        clients.append(client)
        return client

    try:
        await connect().flushdb()
    except (RedisConnectionError, OSError) as exc:
        for client in clients:
            await client.aclose()
        pytest.skip(f"Redis not reachable at {REDIS_URL} ({exc}); CI provides one")
    try:
        yield connect
    finally:
        for client in clients:
            await client.aclose()


class RecordingClock:
    """The system clock, remembering every sleep it was asked for."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return SYSTEM_CLOCK.monotonic()

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        await SYSTEM_CLOCK.sleep(seconds)


def unique(prefix: str) -> str:
    return f"test:{prefix}:{uuid.uuid4().hex[:8]}"


async def timed(coro: Awaitable[None]) -> float:
    await coro
    return time.monotonic()


async def test_two_processes_sharing_a_name_never_exceed_the_rate_together(
    redis_factory: Callable[[], aioredis.Redis],
) -> None:
    # Grants are measured when the callers resume, late by event-loop lag that on a busy CI
    # machine exceeds the default 10 ms; 50 ms of jitter allowance absorbs it.
    name, rate, duration, jitter = unique("shared"), 50, 1.2, 0.05
    processes = [redis_rate_limiter(redis_factory(), name, rate, jitter=jitter) for _ in range(2)]
    grants: list[tuple[float, float]] = []
    deadline = time.monotonic() + duration

    async def worker(limiter: RateLimiter) -> None:
        while time.monotonic() < deadline:
            await limiter.acquire()
            grants.append((time.monotonic(), 1.0))

    await asyncio.gather(*(worker(limiter) for limiter in processes for _ in range(3)))
    assert max_units_in_any_window(grants) <= rate
    # Together, not each: two uncoordinated limiters would have allowed ~2 x 60.
    in_time = [t for t, _ in grants if t < deadline]
    assert 0.8 * rate * duration / (1 + jitter) <= len(in_time) <= rate * duration + 1


async def test_redis_pause_in_one_process_holds_another_including_a_waiter(
    redis_factory: Callable[[], aioredis.Redis],
) -> None:
    name = unique("pause")
    first = redis_rate_limiter(redis_factory(), name, 5, jitter=0)
    second = redis_rate_limiter(redis_factory(), name, 5, jitter=0)
    await second.acquire()  # now; the next slot is 0.2 s away

    waiter = asyncio.ensure_future(timed(second.acquire()))
    await asyncio.sleep(0.05)
    paused_at = time.monotonic()
    await first.pause(0.4)  # e.g. a 429 seen by the other process
    granted = await waiter
    assert granted - paused_at >= 0.4 - 0.005

    paused_at = time.monotonic()
    await first.pause(0.15)
    newcomer = await timed(second.acquire())
    assert newcomer - paused_at >= 0.15 - 0.005


async def test_redis_cost_takes_that_many_slots(
    redis_factory: Callable[[], aioredis.Redis],
) -> None:
    limiter = redis_rate_limiter(redis_factory(), unique("cost"), 100, jitter=0)
    started = time.monotonic()
    await limiter.acquire(20)
    await limiter.acquire(1)
    assert time.monotonic() - started >= 0.2 - 0.005


async def test_redis_limiter_keys_expire_when_idle(
    redis_factory: Callable[[], aioredis.Redis],
) -> None:
    client = redis_factory()
    name = unique("ttl")
    limiter = redis_rate_limiter(client, name, 10)
    await limiter.acquire()
    await limiter.pause(0.01)
    keys = await client.keys(f"*{name}*")
    assert sorted(k.decode() if isinstance(k, bytes) else k for k in keys) == sorted(limiter.keys)
    for key in limiter.keys:
        ttl = await client.pttl(key)
        assert 0 < ttl <= 62_000


async def test_redis_keyed_interval_spaces_one_chat_across_processes(
    redis_factory: Callable[[], aioredis.Redis],
) -> None:
    name, clock = unique("chat"), RecordingClock()
    chats = [redis_keyed_interval(redis_factory(), name, 0.1, clock=clock) for _ in range(2)]
    waits = (timed(c.wait("42")) for c in chats for _ in range(4))
    passes = sorted(await asyncio.gather(*waits))
    # A pass is decided in Redis at the moment it happens, so passes are an interval apart
    # whenever their callers woke up (resumptions differ from the decisions by one round trip).
    assert all(b - a >= 0.1 - 0.005 for a, b in itertools.pairwise(passes))

    slept = len(clock.slept)
    await chats[0].wait("43")
    assert len(clock.slept) == slept  # another chat is not held up


async def test_redis_keyed_pass_is_refused_while_another_process_holds_the_chat(
    redis_factory: Callable[[], aioredis.Redis],
) -> None:
    name = unique("chat-pass")
    first, second = (redis_keyed_interval(redis_factory(), name, 0.5) for _ in range(2))
    assert await first.try_pass("9") == 0.0
    wait = await second.try_pass("9")
    assert 0.45 < wait <= 0.5  # refused, and told how long: nothing was recorded for it
    assert 0.4 < await first.try_pass("9") <= 0.5  # the first pass still stands


async def test_redis_keyed_interval_key_expires_after_the_interval(
    redis_factory: Callable[[], aioredis.Redis],
) -> None:
    client = redis_factory()
    chats = redis_keyed_interval(client, unique("chat-ttl"), 0.5)
    await chats.wait("7")
    ttl = await client.pttl(chats.key_for("7"))
    assert 0 < ttl <= 1500


async def test_redis_limiters_sleep_on_the_injected_clock(
    redis_factory: Callable[[], aioredis.Redis],
) -> None:
    clock = RecordingClock()
    limiter = redis_rate_limiter(redis_factory(), unique("clock"), 20, clock=clock, jitter=0)
    for _ in range(3):
        await limiter.acquire()
    assert len(clock.slept) >= 2
    assert all(0 < s <= 0.05 + 1e-6 for s in clock.slept)


# The wire margin and holding both limits --------------------------------------------------


def test_wire_margin_is_cold_until_measured_then_floor_plus_the_slowest_recent_delay() -> None:
    margin = WireMargin(floor=0.01, cap=0.25, samples=4, cold=0.1, warm_up=3)
    assert margin() == 0.1  # nothing measured yet: cautious
    for delay in (0.002, 0.03, 0.001):
        margin.observe(delay)
    assert margin() == pytest.approx(0.04)  # floor + the slowest of the last four
    for delay in (0.001, 0.002, 0.001, 0.001):
        margin.observe(delay)
    assert margin() == pytest.approx(0.012)  # the slow one has left the window
    margin.observe(5.0)
    assert margin() == 0.25  # never more than the cap


async def test_the_trace_measures_from_release_to_the_last_byte_written(
    fake_telegram: Any,
) -> None:
    margin = WireMargin(warm_up=0)
    limiter = local_rate_limiter(100, margin=margin)
    async with aiohttp.ClientSession(trace_configs=[margin.trace()]) as http:
        await limiter.acquire()
        async with http.post(f"{fake_telegram.base_url}/bot1:x/getMe", data={"a": "b"}):
            pass
        assert 0 < margin.slowest < 1.0
        async with http.get(f"{fake_telegram.base_url}/bot1:x/getMe"):
            pass  # not released by a limiter: not measured
    assert margin._seen == 1


async def test_a_send_holds_its_chat_and_its_global_slot_together() -> None:
    """Chat 42's first message waits long for its global slot; its second may not go an
    interval after the first one's *chat* check, only an interval after it really went."""
    clock = VirtualClock()
    limiter = local_rate_limiter(2, clock=clock, jitter=0)
    chats = local_keyed_interval(1.0, clock=clock)
    went: dict[str, list[float]] = {}

    async def send(chat: str) -> None:
        await _take_slot(limiter, chats, chat, 1.0)
        went.setdefault(chat, []).append(clock.monotonic())

    await clock.run(*(send(str(other)) for other in range(4)), send("42"), send("42"))
    assert len(went["42"]) == 2
    first, second = went["42"]
    assert first >= START + 2.0  # behind four others at 2/s
    assert second - first >= 1.0
    every = sorted(t for times in went.values() for t in times)
    assert max_units_in_any_window([(t, 1.0) for t in every]) <= 2


async def test_redis_grants_pass_the_release_time_check_when_callers_wake_late(
    redis_factory: Callable[[], aioredis.Redis],
) -> None:
    """Callers that oversleep their slots by up to 100 ms would bunch up; the script's check
    of actual releases keeps every 1-second window within the rate anyway."""
    name, rate = unique("late"), 20
    rng = random.Random(5)

    class Oversleeping(RecordingClock):
        async def sleep(self, seconds: float) -> None:
            await SYSTEM_CLOCK.sleep(seconds + rng.uniform(0.0, 0.1))

    processes = [redis_rate_limiter(redis_factory(), name, rate, clock=Oversleeping(),
                                    jitter=0.0) for _ in range(2)]
    grants: list[tuple[float, float]] = []
    deadline = time.monotonic() + 1.5

    async def worker(limiter: RateLimiter) -> None:
        while time.monotonic() < deadline:
            await limiter.acquire()
            grants.append((time.monotonic(), 1.0))

    await asyncio.gather(*(worker(limiter) for limiter in processes for _ in range(4)))
    assert len(grants) >= rate  # it did grant, a second's worth at least
    assert max_units_in_any_window(grants, window=0.995) <= rate  # 5 ms for the round trip
