"""Rate limits for the senders: local to one process, or shared through Redis.

Contract of a ``RateLimiter`` built for ``rate`` units per second: in any half-open
1-second window at most ``rate`` units are granted, grants are first come first served, and
after ``pause(s)`` nothing is granted before now + s.

The schedule is GCRA (virtual scheduling): a theoretical arrival time ``tat`` moves forward
by ``cost × interval`` per grant, and an acquirer *reserves* its slot ``max(now, tat)``
synchronously (locally: between two awaits; in Redis: inside one Lua script), then sleeps
until it. So a thousand concurrent acquirers get a thousand distinct slots and wake one by
one instead of all retrying at once, and there is no burst: consecutive units are at least
``interval`` apart.

Two refinements make the window guarantee exact rather than approximate:

* GCRA alone lets a window hold ``rate + cost - 1`` units when a large ``cost`` (a long
  SMS) is granted at the end of a window. So every reservation also passes a sliding-window
  check against a log of the last window's grants, ``(slot, units)``: a slot is pushed
  later until the units already in ``(slot - window, slot]`` plus its own fit in ``rate``.
  For unit costs this never delays anything GCRA had not already delayed; it also removes
  any float drift from the boundary case.
* Slots are exact, but a caller proceeds when its sleep ends, which is a little late, and
  the provider sees the request later still, by a varying amount. With grants exactly
  ``1/rate`` apart, any variation would put ``rate + 1`` requests into some 1-second window
  as the provider measures it. So the window the schedule is built for is
  ``1 + jitter`` seconds (``interval = (1 + jitter) / rate``): a release that is late by up
  to ``jitter`` seconds still keeps every 1-second window within ``rate``. The default
  10 ms costs 1 % of throughput; ``jitter=0`` gives the textbook schedule.

A single grant with ``cost > rate`` cannot fit any window; it is granted alone in its window
(counted as ``rate`` in the log) and still advances ``tat`` by its full cost, so the average
rate holds. A cancelled acquirer's slot stays used - never reused, so never over the limit.

The margin is measured, not guessed: ``WireMargin`` records, for every request, how long after
its release its last byte was written (aiohttp's request trace), and the limiters build
their schedule for ``1 + margin`` seconds with margin = the configured floor + the slowest of
the recent release-to-wire delays. An idle process keeps the floor; a loaded one, whose
requests leave tens of milliseconds late by varying amounts, slows down by that much instead
of letting the provider see ``rate + 1`` in a second.

Per chat, a send passes only if the chat is free *at the moment its global slot is released*
(``KeyedInterval.try_pass``); the pass is recorded then, at ``now + interval + margin``. So a
send holds both the global slot and the chat before it starts, and a send that waited long
for its global slot cannot land less than ``interval`` after the chat's previous one. A send
whose chat was taken meanwhile (two messages for one chat in one batch, or another process)
gives its global slot up — it stays counted — and tries again when the chat is free.

Redis: time comes from the Redis server (``TIME``), so processes on different hosts share
one clock for the schedule; each process only sleeps the *duration* the script returns.
State keys get a TTL so an idle limiter leaves nothing behind. Needs Redis >= 5 (a script
that reads ``TIME`` and then writes relies on effects replication, the default since 5).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Protocol

import aiohttp

if TYPE_CHECKING:
    from redis.asyncio import Redis

DEFAULT_JITTER = 0.01


class Clock(Protocol):
    """Monotonic time and sleeping, injected so tests run on virtual time."""

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK: Clock = SystemClock()


class RateLimiter(Protocol):
    async def acquire(self, cost: float = 1.0) -> None:
        """Wait until ``cost`` units may go now."""
        ...

    async def pause(self, seconds: float) -> None:
        """Nobody acquires before now + ``seconds`` (e.g. Telegram's ``retry_after``)."""
        ...


class KeyedInterval(Protocol):
    async def ready(self, key: str) -> None:
        """Wait until ``key`` is free as far as this process knows (nothing is reserved)."""
        ...

    async def try_pass(self, key: str) -> float:
        """Pass ``key`` now if it is free (0.0), else the seconds until it is (no pass)."""
        ...


Margin = Callable[[], float]
"""Seconds added to every window and interval: see ``WireMargin``."""

_RELEASED: ContextVar[float | None] = ContextVar("engage_released_at", default=None)


def _mark_released(at: float) -> None:
    """Note, in the acquiring task, when the limiter let it go (real monotonic time); the HTTP
    client's trace (``WireMargin.trace``) measures from there to the request leaving."""
    _RELEASED.set(at)


class WireMargin:
    """The limiters' safety margin, from measured release-to-wire delays.

    ``margin()`` is ``floor`` plus the slowest delay among the last ``samples`` requests
    (at most ``cap``): a sliding maximum kept in a monotonic deque, O(1) per request. Until
    ``warm_up`` requests were measured it is at least ``cold``: the first requests of a process
    also open their connections, and nothing is known yet about this machine's delays.
    """

    def __init__(self, *, floor: float = 0.01, cap: float = 0.25, samples: int = 256,
                 cold: float = 0.1, warm_up: int = 32) -> None:
        if not (0 <= floor <= cap and math.isfinite(cap)):
            raise ValueError(f"need 0 <= floor <= cap, got {floor!r}, {cap!r}")
        self.floor = float(floor)
        self.cap = float(cap)
        self._cold = cold
        self._warm_up = warm_up
        self._samples = samples
        self._seen = 0
        self._max: deque[tuple[int, float]] = deque()  # (sample number, delay), decreasing

    def observe(self, delay: float) -> None:
        delay = max(0.0, delay)
        self._seen += 1
        window = self._max
        while window and window[-1][1] <= delay:
            window.pop()
        window.append((self._seen, delay))
        while window[0][0] <= self._seen - self._samples:
            window.popleft()

    @property
    def slowest(self) -> float:
        return self._max[0][1] if self._max else 0.0

    def __call__(self) -> float:
        margin = self.floor + self.slowest
        if self._seen < self._warm_up:
            margin = max(margin, self._cold)
        return min(self.cap, margin)

    def trace(self) -> aiohttp.TraceConfig:
        """An aiohttp trace that measures each released request until its last byte is
        written (headers, then every chunk of the body: aiohttp writes the body in a task of
        its own, which a busy event loop can hold back well after the headers)."""
        config = aiohttp.TraceConfig()

        async def written(session: aiohttp.ClientSession, context: SimpleNamespace,
                          params: object) -> None:
            if _RELEASED.get() is not None:
                context.written = time.monotonic()

        async def done(session: aiohttp.ClientSession, context: SimpleNamespace,
                       params: object) -> None:
            released = _RELEASED.get()
            if released is not None and getattr(context, "written", None) is not None:
                _RELEASED.set(None)  # one measurement per release (not a retry or a poll)
                self.observe(context.written - released)

        config.on_request_headers_sent.append(written)
        config.on_request_chunk_sent.append(written)
        config.on_request_end.append(done)
        config.on_request_exception.append(done)
        return config


def _check_rate(rate: float, jitter: float) -> None:
    if not (rate > 0 and math.isfinite(rate)):
        raise ValueError(f"rate must be a positive number, got {rate!r}")
    if not (jitter >= 0 and math.isfinite(jitter)):
        raise ValueError(f"jitter must be >= 0 seconds, got {jitter!r}")


def _check_cost(cost: float) -> float:
    if not (cost > 0 and math.isfinite(cost)):
        raise ValueError(f"cost must be a positive number, got {cost!r}")
    return float(cost)


@dataclass(slots=True, eq=False)
class _Grant:
    at: float
    units: float  # cost as counted against a window: capped at the rate


class LocalRateLimiter:
    """GCRA plus a sliding-window log, for one event loop (see the module docstring).

    Reservation happens without an await in between, which is the lock: asyncio runs one
    task at a time, so no two acquirers can read the same ``tat``.
    """

    def __init__(
        self, rate: float, *, clock: Clock = SYSTEM_CLOCK, jitter: float = DEFAULT_JITTER,
        margin: Margin | None = None,
    ) -> None:
        _check_rate(rate, jitter)
        self.rate = float(rate)
        self._clock = clock
        self._margin: Margin = margin if margin is not None else (lambda: jitter)
        self._limit = self.rate * (1 + 1e-9)  # absorbs float sums of fractional costs
        self._tat = -math.inf
        self._paused_until = -math.inf
        self._grants: deque[_Grant] = deque()  # in slot order; the last window's grants
        self._units = 0.0  # sum of units in _grants
        # Slots not yet taken. Not the same as the log: with a backlog longer than a window,
        # the log has already forgotten the earliest of them.
        self._waiting: set[_Grant] = set()
        self._released: deque[tuple[float, float]] = deque()  # (release time, units)
        self._released_units = 0.0

    @property
    def _window(self) -> float:
        return 1.0 + self._margin()

    async def acquire(self, cost: float = 1.0) -> None:
        grant = self._reserve(_check_cost(cost))
        clock = self._clock
        try:
            # Re-read the slot after every wake: a pause may have moved it.
            while (wait := grant.at - clock.monotonic()) > 0:
                await clock.sleep(wait)
        finally:
            self._waiting.discard(grant)
        await self._release(grant.units)

    async def _release(self, units: float) -> None:
        """Let the caller go only if the units *actually released* in the trailing second
        stay within the rate.

        Slots are spaced correctly, but a busy event loop wakes tasks late and late tasks
        bunch up: measured where the requests leave, a window could then hold more than
        ``rate``. Checking real release times closes that gap; a late task waits for the
        oldest release to age out of the window. The window is the schedule's ``1 + jitter``
        seconds, so a few milliseconds between release and the request leaving still keep
        every 1-second window within the rate.
        """
        clock, released = self._clock, self._released
        while True:
            now = clock.monotonic()
            window = self._window
            while released and released[0][0] <= now - window:
                self._released_units -= released.popleft()[1]
            if not released:
                self._released_units = 0.0
            if self._released_units + units <= self._limit:
                released.append((now, units))
                self._released_units += units
                _mark_released(time.monotonic())
                return
            await clock.sleep(released[0][0] + window - now)

    def _reserve(self, cost: float) -> _Grant:
        start = max(self._clock.monotonic(), self._tat, self._paused_until)
        units = min(cost, self.rate)
        grants, window = self._grants, self._window
        while grants:
            head = grants[0]
            if head.at + window > start:  # head shares a window with ``start``
                if self._units + units <= self._limit:
                    break
                start = head.at + window  # wait for the head to leave the window
            grants.popleft()
            self._units -= head.units
        if not grants:
            self._units = 0.0
        grant = _Grant(start, units)
        grants.append(grant)
        self._waiting.add(grant)
        self._units += units
        self._tat = start + cost * window / self.rate
        return grant

    async def pause(self, seconds: float) -> None:
        """Move every slot not yet taken to ``now + seconds`` or later, keeping their spacing.

        The waiting acquirers are shifted rigidly by one amount, so their order and the
        window guarantee between them hold, and the first of them goes at the pause's end.
        """
        if not seconds > 0:
            return
        until = self._clock.monotonic() + seconds
        if until <= self._paused_until:
            return
        self._paused_until = until
        if self._waiting:
            shift = until - min(grant.at for grant in self._waiting)
            if shift > 0:
                for grant in self._waiting:
                    grant.at += shift
                self._tat += shift
        self._tat = max(self._tat, until)


class LocalKeyedInterval:
    """At most one pass per ``interval`` (+ margin) seconds per key, for one event loop.

    ``try_pass`` decides and records in one synchronous step, so two tasks can never both
    pass one key; ``ready`` only sleeps until the key's next free time (see the module
    docstring for why the two are separate).

    Memory: once more than ``max_keys`` keys are held, keys that no longer delay anyone
    (their next free time has passed) are dropped; the next prune is then due at twice what
    remains, so a burst of genuinely busy keys costs amortised O(1) per call, never a full
    scan per call.
    """

    def __init__(
        self, interval: float, *, clock: Clock = SYSTEM_CLOCK, max_keys: int = 100_000,
        margin: Margin | None = None,
    ) -> None:
        if not (interval >= 0 and math.isfinite(interval)):
            raise ValueError(f"interval must be >= 0 seconds, got {interval!r}")
        if max_keys < 1:
            raise ValueError(f"max_keys must be >= 1, got {max_keys!r}")
        self.interval = float(interval)
        self.max_keys = max_keys
        self._clock = clock
        self._margin: Margin = margin if margin is not None else (lambda: 0.0)
        self._next: dict[str, float] = {}  # key -> earliest time the next pass may go
        self._prune_at = max_keys

    def __len__(self) -> int:
        return len(self._next)

    async def ready(self, key: str) -> None:
        clock = self._clock
        while (wait := self._next.get(key, -math.inf) - clock.monotonic()) > 0:
            await clock.sleep(wait)

    async def try_pass(self, key: str) -> float:
        if self.interval <= 0:
            return 0.0
        now = self._clock.monotonic()
        wait = self._next.get(key, -math.inf) - now
        if wait > 0:
            return wait
        self._next[key] = now + self.interval + self._margin()
        if len(self._next) > self._prune_at:
            self._prune(now)
        return 0.0

    async def wait(self, key: str) -> None:
        """Pass ``key`` as soon as it is free (for callers with no other limit to hold)."""
        await pass_when_free(self, key, self._clock)

    def hold_until(self, key: str, moment: float) -> None:
        """Learnt elsewhere (another process passed ``key``): nobody here passes before."""
        self._next[key] = max(self._next.get(key, -math.inf), moment)

    def _prune(self, now: float) -> None:
        self._next = {key: after for key, after in self._next.items() if after > now}
        self._prune_at = max(self.max_keys, 2 * len(self._next))


async def pass_when_free(keyed: KeyedInterval, key: str, clock: Clock) -> None:
    while True:
        await keyed.ready(key)
        if (wait := await keyed.try_pass(key)) <= 0:
            return
        await clock.sleep(wait)


# Redis -------------------------------------------------------------------------------------
#
# All times in the scripts are integer microseconds of the Redis server's clock, written with
# %.0f: Lua numbers are doubles (exact to 2^53 us, ~285 years) but Redis' own conversion of a
# number argument keeps only 14 significant digits.
#
# State hash KEYS[1]: tat, until (pause end), units (sum over the log), shift (total that
# pauses moved waiting slots by), rel (sum over the release log). Log list KEYS[2]:
# "slot:units", in slot order. Release log KEYS[3]: "time:units" of the grants actually
# handed out, in time order - the same release-time check as the local limiter's.

_ACQUIRE_LUA = """
local rate = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local interval = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local units = tonumber(ARGV[5])
local held_slot = tonumber(ARGV[6])
local held_shift = tonumber(ARGV[7])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local st = redis.call('HMGET', KEYS[1], 'tat', 'until', 'units', 'shift')
local tat = tonumber(st[1]) or 0
local paused = tonumber(st[2]) or 0
local used = tonumber(st[3]) or 0
local shift = tonumber(st[4]) or 0
local limit = rate * (1 + 1e-9)

-- Hand the grant out now only if the units released in the trailing window leave room;
-- otherwise the wait until the oldest release leaves the window (the caller asks again).
local function head(key)
  local entry = redis.call('LINDEX', key, 0)
  if not entry then return nil, nil end
  local sep = string.find(entry, ':', 1, true)
  return tonumber(string.sub(entry, 1, sep - 1)), tonumber(string.sub(entry, sep + 1))
end

-- Hand the grant out now only if the units released in the trailing window leave room;
-- otherwise the wait until the oldest release leaves the window (the caller asks again).
local function release()
  local rel = tonumber(redis.call('HGET', KEYS[1], 'rel')) or 0
  while true do
    local at, n = head(KEYS[3])
    if not at then
      rel = 0
      break
    end
    if at > now - window then
      if rel + units <= limit then break end
      redis.call('HSET', KEYS[1], 'rel', string.format('%.17g', rel))
      return at + window - now
    end
    redis.call('LPOP', KEYS[3])
    rel = rel - n
  end
  redis.call('RPUSH', KEYS[3], string.format('%.0f:%s', now, ARGV[5]))
  redis.call('HSET', KEYS[1], 'rel', string.format('%.17g', rel + units))
  redis.call('PEXPIRE', KEYS[3], math.ceil(window / 1000) + 60000)
  return 0
end

if held_slot then
  -- A caller woke up: its slot, moved by any pause since it reserved, still stands unless
  -- it came due before a pause without being taken - then it is void and reserved anew.
  local moved = shift - held_shift
  if moved < 0 then moved = 0 end
  local slot = held_slot + moved
  if slot >= paused then
    local wait = slot - now
    if wait <= 0 then wait = release() end
    return {wait, held_shift, held_slot}
  end
end

local start = math.max(now, tat, paused)
while true do
  local at, n = head(KEYS[2])
  if not at then
    used = 0
    break
  end
  if at + window > start then
    if used + units <= limit then break end
    start = at + window
  end
  redis.call('LPOP', KEYS[2])
  used = used - n
end

redis.call('RPUSH', KEYS[2], string.format('%.0f:%s', start, ARGV[5]))
used = used + units
tat = start + math.ceil(cost * interval)
redis.call('HSET', KEYS[1], 'tat', string.format('%.0f', tat),
           'units', string.format('%.17g', used))
local ttl = math.ceil((math.max(tat, paused, start + window) - now) / 1000) + 60000
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
local wait = start - now
if wait <= 0 then wait = release() end
return {wait, shift, start}
"""

_PAUSE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local untl = now + tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local st = redis.call('HMGET', KEYS[1], 'tat', 'until', 'shift')
local tat = tonumber(st[1]) or 0
local paused = tonumber(st[2]) or 0
local shift = tonumber(st[3]) or 0
if untl <= paused then return 0 end

-- Waiting slots are the log's entries after now. If even the log's head is in the future,
-- earlier waiting slots may have been trimmed from it: assume the earliest is now.
local entries = redis.call('LRANGE', KEYS[2], 0, -1)
local first, earliest = nil, nil
for i, e in ipairs(entries) do
  local at = tonumber(string.sub(e, 1, string.find(e, ':', 1, true) - 1))
  if at > now then
    first, earliest = i, at
    break
  end
end
local delta = 0
if first then
  if first == 1 then earliest = now end
  delta = untl - earliest
  if delta > 0 then
    for i = first, #entries do
      local e = entries[i]
      local sep = string.find(e, ':', 1, true)
      local at = tonumber(string.sub(e, 1, sep - 1))
      redis.call('LSET', KEYS[2], i - 1,
                 string.format('%.0f:%s', at + delta, string.sub(e, sep + 1)))
    end
    tat = tat + delta
    shift = shift + delta
  else
    delta = 0
  end
end
tat = math.max(tat, untl)
redis.call('HSET', KEYS[1], 'tat', string.format('%.0f', tat),
           'until', string.format('%.0f', untl), 'shift', string.format('%.0f', shift))
local ttl = math.ceil((tat + window - now) / 1000) + 60000
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return delta
"""

_KEYED_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local after = tonumber(redis.call('GET', KEYS[1])) or 0
if after > now then return after - now end
local next_free = now + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%.0f', next_free),
           'PX', string.format('%.0f', math.ceil((next_free - now) / 1000) + 1000))
return 0
"""

class RedisRateLimiter:
    """The same schedule as ``LocalRateLimiter``, kept in Redis and shared by every process
    that uses the same ``name``.

    ``acquire`` costs one script call when the slot is now, two when it has to wait: after
    sleeping, the caller asks again, so a pause that another process set meanwhile still
    holds it back (its slot was moved with the others) - the same re-check the local limiter
    does in memory - and the grant passes the release-time check against every process's
    actual releases. Redis cannot tell a caller that has resumed from one still waking up,
    so a slot that came due just before a pause but was not yet taken is void: its caller
    reserves anew, behind the queue (rare: it needs a pause within one round trip).
    """

    def __init__(
        self,
        redis: Redis,
        name: str,
        rate: float,
        *,
        clock: Clock = SYSTEM_CLOCK,
        jitter: float = DEFAULT_JITTER,
        margin: Margin | None = None,
    ) -> None:
        _check_rate(rate, jitter)
        self.rate = float(rate)
        self.name = name
        self.keys = [f"ratelimit:{{{name}}}", f"ratelimit:{{{name}}}:log",
                     f"ratelimit:{{{name}}}:released"]
        self._clock = clock
        self._margin: Margin = margin if margin is not None else (lambda: jitter)
        self._acquire = redis.register_script(_ACQUIRE_LUA)
        self._pause = redis.register_script(_PAUSE_LUA)

    def _window_us(self) -> int:
        return round((1.0 + self._margin()) * 1_000_000)

    async def acquire(self, cost: float = 1.0) -> None:
        cost = _check_cost(cost)
        window = self._window_us()
        args = [
            repr(self.rate), str(window), repr(window / self.rate),
            repr(cost), repr(min(cost, self.rate)),
        ]
        asked = time.monotonic()
        wait, shift, slot = await self._acquire(keys=self.keys, args=[*args, "", ""])
        while wait > 0:
            await self._clock.sleep(wait / 1_000_000)
            asked = time.monotonic()
            wait, shift, slot = await self._acquire(keys=self.keys, args=[*args, slot, shift])
        # Granted by Redis somewhere in the round trip that began at ``asked``: measure the
        # wire margin from its start, so a slow reply counts as delay too.
        _mark_released(asked)

    async def pause(self, seconds: float) -> None:
        if not seconds > 0:
            return
        await self._pause(keys=self.keys,
                          args=[math.ceil(seconds * 1_000_000), self._window_us()])


class RedisKeyedInterval:
    """One key per ``name`` and ``key`` holding its next free time, with a PX expiry just past
    it, so only keys in use exist. The script passes the key (recording the next free time)
    or returns the wait; this process remembers what it learnt, so ``ready`` waits for its
    own earlier passes without asking Redis."""

    def __init__(
        self, redis: Redis, name: str, interval: float, *, clock: Clock = SYSTEM_CLOCK,
        margin: Margin | None = None,
    ) -> None:
        if not (interval >= 0 and math.isfinite(interval)):
            raise ValueError(f"interval must be >= 0 seconds, got {interval!r}")
        self.interval = float(interval)
        self.name = name
        self._clock = clock
        self._margin: Margin = margin if margin is not None else (lambda: 0.0)
        self._script = redis.register_script(_KEYED_LUA)
        self._known = LocalKeyedInterval(interval, clock=clock, margin=self._margin)

    def key_for(self, key: str) -> str:
        return f"interval:{self.name}:{key}"

    async def ready(self, key: str) -> None:
        await self._known.ready(key)

    async def try_pass(self, key: str) -> float:
        if self.interval <= 0:
            return 0.0
        spacing = math.ceil((self.interval + self._margin()) * 1_000_000)
        wait = float(await self._script(keys=[self.key_for(key)], args=[spacing])) / 1_000_000
        if wait <= 0:
            await self._known.try_pass(key)
        else:
            self._known.hold_until(key, self._clock.monotonic() + wait)
        return wait

    async def wait(self, key: str) -> None:
        """Pass ``key`` as soon as it is free (for callers with no other limit to hold)."""
        await pass_when_free(self, key, self._clock)


def local_rate_limiter(
    rate: float, *, clock: Clock = SYSTEM_CLOCK, jitter: float = DEFAULT_JITTER,
    margin: Margin | None = None,
) -> LocalRateLimiter:
    return LocalRateLimiter(rate, clock=clock, jitter=jitter, margin=margin)


def local_keyed_interval(
    interval: float, *, clock: Clock = SYSTEM_CLOCK, max_keys: int = 100_000,
    margin: Margin | None = None,
) -> LocalKeyedInterval:
    return LocalKeyedInterval(interval, clock=clock, max_keys=max_keys, margin=margin)


def redis_rate_limiter(
    redis: Redis,
    name: str,
    rate: float,
    *,
    clock: Clock = SYSTEM_CLOCK,
    jitter: float = DEFAULT_JITTER,
    margin: Margin | None = None,
) -> RedisRateLimiter:
    return RedisRateLimiter(redis, name, rate, clock=clock, jitter=jitter, margin=margin)


def redis_keyed_interval(
    redis: Redis, name: str, interval: float, *, clock: Clock = SYSTEM_CLOCK,
    margin: Margin | None = None,
) -> RedisKeyedInterval:
    return RedisKeyedInterval(redis, name, interval, clock=clock, margin=margin)
