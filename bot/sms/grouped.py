"""Calls made while one is in flight, sent together: the inbound SMS path's reads and writes
of messages answered at the same time (``senders.Senders``, ``records.Answered``).

A call with nothing in flight goes out at once; calls that arrive meanwhile wait, and go out
in the next single ``many`` call (at most ``max_group`` at a time) — one round trip for many
messages. Each caller awaits its own result. A ``many`` that fails is retried call by call
with ``one``, so a failure is only its own caller's. A caller that is cancelled does not
stop its group; a cancelled group cancels its callers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

I = TypeVar("I")  # noqa: E741 - the item, as in the module text
R = TypeVar("R")


class Grouped(Generic[I, R]):
    def __init__(self, many: Callable[[Sequence[I]], Awaitable[Sequence[R]]],
                 one: Callable[[I], Awaitable[R]], *, max_group: int) -> None:
        self._many = many
        self._one = one
        self._max_group = max_group
        self._waiting: list[tuple[I, asyncio.Future[R]]] = []
        self._runner: asyncio.Task[None] | None = None

    async def __call__(self, item: I) -> R:
        result: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, result))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run_all())
        return await result

    async def _run_all(self) -> None:
        while self._waiting:
            group = self._waiting[:self._max_group]
            self._waiting = self._waiting[self._max_group:]
            try:
                results = await self._many([item for item, _ in group])
                if len(results) != len(group):  # never leave a caller waiting for nothing
                    raise RuntimeError(f"{len(results)} results for {len(group)} calls")
            except asyncio.CancelledError:
                for _, result in group:
                    result.cancel()
                raise
            except Exception:  # each alone: only a failing call fails its caller
                await self._one_by_one(group)
                continue
            for (_, result), value in zip(group, results, strict=True):
                if not result.done():  # done: its caller was cancelled
                    result.set_result(value)

    async def _one_by_one(self, group: Sequence[tuple[I, asyncio.Future[R]]]) -> None:
        for item, result in group:
            try:
                value = await self._one(item)
            except Exception as exc:  # handed to the one waiting for this call
                if not result.done():
                    result.set_exception(exc)
            else:
                if not result.done():
                    result.set_result(value)
