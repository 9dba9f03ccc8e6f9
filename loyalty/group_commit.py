"""Group commit: many standalone postings of one process in one transaction.

A posting in a transaction of its own pays for a commit (an fsync on SQLite, a WAL flush and
a round trip on PostgreSQL), for its statements one by one and, on SQLite, waits for the one
connection in turn. The queue collects the postings that callers make concurrently and hands
them as one group, in one transaction, to ``apply_group``, which makes them all with a few
set-based statements (``loyalty.group_postings``), so a commit and each statement are paid
once per group:

* each posting keeps its own idempotency key, balance check and lots, and each caller awaits
  its own outcome;
* a refusal (not enough points, an unknown customer) is an outcome ``apply_group`` returns
  for that posting, having written nothing for it: only that caller sees it;
* a key already used (by an earlier group, another process, or a second request in this
  group) is not applied in the group: that caller answers it on its own (``Job.alone``,
  the replay path), after the group;
* anything else — an integrity error, a deadlock, a lost connection, a broken invariant —
  rolls the whole group back, and every caller of the group then makes its posting on its
  own, in a transaction of its own, exactly as without the queue. A failing posting thus
  fails alone, and a group is committed entirely or not at all; a caller that retries after
  a crash with the same key gets its posting exactly once.

Postings of a group are in account order (``Job.order``, then as submitted), the order in
which ``apply_group`` locks their accounts, so groups in flight together (a queue with
``groups`` > 1 runs that many at once, on a pool) cannot deadlock over accounts; a group
never holds two postings with the same key.

A caller cancelled while its posting is in a group does not stop it: it commits with the
group (as a transaction cancelled during its commit may), and a retry with the key replays.

Only postings made outside any transaction come here: a caller inside its own transaction
(a redemption atomic with its voucher) posts in that transaction, never through the queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

log = logging.getLogger(__name__)

P = TypeVar("P")
T = TypeVar("T")


class Alone(Exception):
    """The outcome ``apply_group`` gives a posting that its caller must make on its own
    after the group (its key is used already: the replay path); nothing was written for it."""


@dataclass(frozen=True, slots=True)
class Job(Generic[P, T]):
    """One posting: its key, its place in the group's lock order, what to post (``posting``,
    for ``apply_group``) and how to make it in a transaction of its own (``alone``)."""

    key: str
    order: tuple[Any, ...]
    posting: P
    alone: Callable[[], Awaitable[T]]


_ALONE: Any = object()  # the outcome telling a caller to make its posting on its own

ApplyGroup = Callable[[BaseDBAsyncClient, Sequence[P]], Awaitable[Sequence[T | Exception]]]
BeforeCommit = Callable[[Sequence[str]], Awaitable[None]]


class GroupCommit(Generic[P, T]):
    """A per-process posting queue (one per event loop): ``submit`` a job, await its result.

    ``apply_group`` makes a group's postings in its transaction and returns, for each, its
    result, the exception its caller meets (a refusal: nothing written for it) or ``Alone``.
    ``before_commit`` is awaited with the group's keys once
    all its postings are applied, before the commit (the crash test stops a process there).
    """

    def __init__(self, apply_group: ApplyGroup[P, T], *, groups: int = 1,
                 max_group: int = 128) -> None:
        self.apply_group = apply_group
        self.groups = groups
        self.max_group = max_group
        self.before_commit: BeforeCommit | None = None
        self._pending: list[tuple[Job[P, T], asyncio.Future[Any]]] = []
        self._in_flight: set[str] = set()
        self._flushers = 0
        self._tasks: set[asyncio.Task[None]] = set()  # a reference, so none is collected

    async def submit(self, job: Job[P, T]) -> T:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((job, future))
        if self._flushers < self.groups:
            self._flushers += 1
            task = asyncio.create_task(self._flush())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        outcome = await future
        if outcome is _ALONE:
            return await job.alone()
        result: T = outcome
        return result

    def _next_group(self) -> list[tuple[Job[P, T], asyncio.Future[Any]]]:
        """The pending jobs to run now: callers still waiting, keys not in flight, an equal
        share of them for each flusher (at most ``max_group``), in lock order; the rest stay
        pending for the next group."""
        waiting = [(job, future) for job, future in self._pending
                   if not future.done()]  # a cancelled caller's posting is dropped
        size = min(self.max_group, -(-len(waiting) // self.groups))  # a share per flusher
        group: list[tuple[Job[P, T], asyncio.Future[Any]]] = []
        keys: set[str] = set()
        rest: list[tuple[Job[P, T], asyncio.Future[Any]]] = []
        for job, future in waiting:
            if len(group) >= size or job.key in keys or job.key in self._in_flight:
                rest.append((job, future))
                continue
            keys.add(job.key)
            group.append((job, future))
        self._pending = rest
        self._in_flight |= keys
        group.sort(key=lambda item: item[0].order)
        return group

    async def _flush(self) -> None:
        """Run groups until nothing is pending. The count of flushers drops in the same step
        as the last empty look, so a job submitted afterwards always starts a new one."""
        group: list[tuple[Job[P, T], asyncio.Future[Any]]] = []
        try:
            while group := self._next_group():
                try:
                    outcomes = await self._run(group)
                except Exception as exc:  # each caller meets its own error, if any, alone
                    log.info("a group of %d postings rolled back (%s); each is made on its own",
                             len(group), type(exc).__name__)
                    outcomes = [_ALONE] * len(group)
                self._answer(group, outcomes)
                # let the callers just answered run first: those posting again join the
                # next group instead of leaving it to the few that came meanwhile
                await asyncio.sleep(0)
        except asyncio.CancelledError:  # the loop is closing: callers fall back on their own
            self._answer(group + self._pending, [_ALONE] * (len(group) + len(self._pending)))
            self._pending = []
            raise
        finally:
            self._flushers -= 1

    def _answer(self, group: list[tuple[Job[P, T], asyncio.Future[Any]]],
                outcomes: list[Any]) -> None:
        self._in_flight.difference_update(job.key for job, _ in group)
        for (_, future), outcome in zip(group, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    async def _run(self, group: list[tuple[Job[P, T], asyncio.Future[Any]]]) -> list[Any]:
        """Apply the group in one transaction; the outcome for each job (a result, a refusal
        or ``_ALONE``). An exception raised rolls the whole group back."""
        async with in_transaction() as conn:
            made = await self.apply_group(conn, [job.posting for job, _ in group])
            outcomes = [_ALONE if isinstance(outcome, Alone) else outcome for outcome in made]
            if len(outcomes) != len(group):
                raise RuntimeError(f"{len(outcomes)} outcomes for a group of {len(group)}")
            if self.before_commit is not None:
                await self.before_commit([job.key for job, _ in group])
        return outcomes
