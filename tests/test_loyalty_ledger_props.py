"""A hypothesis state machine over the ledger: earn, debit, redeem, expire, reverse, replay
and cancel in any order, checking after every step that the balance equals the sum of the
entries and of the lots, never goes negative, that no lot goes negative, and that a replay
changes nothing.

Hypothesis drives synchronous rules, so the machine runs its coroutines on one event loop of
its own, connected to a fresh database from the ``db_url`` fixture (both backends).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from tortoise import Tortoise
from tortoise.backends.base.executor import EXECUTOR_CACHE

from loyalty import ledger
from loyalty.config import LoyaltySettings
from loyalty.errors import (
    InsufficientPoints,
    NotEligible,
    OutOfStock,
    VoucherExpired,
)
from loyalty.jobs import expire_lots
from loyalty.periods import add_months
from loyalty.vouchers import cancel_voucher, expire_vouchers, redeem
from storage import db as storage_db
from storage.loyalty_models import EntryKind, LedgerEntry, PointLot, Reward
from storage.models import Customer

T = TypeVar("T")
S = LoyaltySettings(voucher_valid_days=30, refund_expired_vouchers=True)
_ids = itertools.count(1)


@dataclass
class Done:
    """A posting made by the machine and how to ask for it again."""

    again: Callable[[], Awaitable[ledger.Posted]]
    result: ledger.Posted


def make_machine(loop: asyncio.AbstractEventLoop) -> type[RuleBasedStateMachine]:
    def run(coro: Awaitable[T]) -> T:
        return loop.run_until_complete(coro)

    class LedgerMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            n = next(_ids)
            self.customer = run(Customer.create(name=f"测{n}", phone=f"+86135{n:08d}",
                                                referral_code=f"H{n}"))
            # Rewards (and their stock) belong to this run alone: state shared between
            # examples would make a replayed example take another path.
            self.n = n
            for code, cost, stock in (("h1", 1, None), ("h7", 7, 3), ("h30", 30, None)):
                run(Reward.create(code=f"{code}-{n}", kind="car_wash", name_zh=code,
                                  name_en=code, points_cost=cost, stock=stock))
            self.day = date(2026, 1, 1)
            self.postings: list[Done] = []
            self.vouchers: list[int] = []

        @property
        def now(self) -> datetime:
            return datetime.combine(self.day, time(3, 0), tzinfo=UTC)

        def _key(self) -> str:
            return f"h{next(_ids)}"

        def _balance(self) -> int:
            return run(ledger.get_balance(self.customer.id))

        def _entries(self) -> int:
            return run(LedgerEntry.filter(account__customer_id=self.customer.id).count())

        @rule(points=st.integers(1, 200), months_ago=st.integers(0, 30))
        def earn(self, points: int, months_ago: int) -> None:
            key, customer_id = self._key(), self.customer.id
            earned_at = datetime.combine(add_months(self.day, -months_ago), time(3, 0),
                                         tzinfo=UTC)

            def again() -> Awaitable[ledger.Posted]:
                return ledger.credit(customer_id, points, kind=EntryKind.ADJUSTMENT, key=key,
                                     now=earned_at, settings=S, reason="earn", operator="h")

            self.postings.append(Done(again, run(again())))

        @rule(points=st.integers(1, 150))
        def debit(self, points: int) -> None:
            key, customer_id, now = self._key(), self.customer.id, self.now

            def again() -> Awaitable[ledger.Posted]:
                return ledger.debit(customer_id, points, kind=EntryKind.ADJUSTMENT, key=key,
                                    now=now, reason="debit", operator="h")

            before = (self._balance(), self._entries())
            try:
                self.postings.append(Done(again, run(again())))
            except InsufficientPoints:
                assert before[0] < points
                assert (self._balance(), self._entries()) == before

        @rule(reward=st.sampled_from(["h1", "h7", "h30"]))
        def redeem(self, reward: str) -> None:
            before = (self._balance(), self._entries())
            try:
                done = run(redeem(self.customer.id, f"{reward}-{self.n}", request_key=self._key(),
                                  now=self.now, settings=S))
            except (InsufficientPoints, OutOfStock):
                assert (self._balance(), self._entries()) == before
                return
            self.vouchers.append(done.voucher.id)

        @rule(days=st.integers(1, 400))
        def expire(self, days: int) -> None:
            self.day += timedelta(days=days)
            # The scheduler's order: refunds of expired vouchers into lots past their date
            # must not leave points behind for the next day's run.
            run(expire_lots(self.day, settings=S))
            run(expire_vouchers(self.now, settings=S))
            stale = run(PointLot.filter(account__customer_id=self.customer.id,
                                        expires_on__lt=self.day, remaining__gt=0).count())
            assert stale == 0

        @precondition(lambda self: bool(self.postings))
        @rule(data=st.data())
        def reverse(self, data: st.DataObject) -> None:
            done = data.draw(st.sampled_from(self.postings))
            try:
                posted = run(ledger.reverse_entry(done.result.entry_id, now=self.now,
                                                  settings=S, reason="undo", operator="h"))
            except NotEligible:
                return
            again = run(ledger.reverse_entry(done.result.entry_id, now=self.now, settings=S,
                                             reason="undo", operator="h"))
            assert again.replayed and again.entry_id == posted.entry_id

        @precondition(lambda self: bool(self.postings))
        @rule(data=st.data())
        def replay(self, data: st.DataObject) -> None:
            done = data.draw(st.sampled_from(self.postings))
            before = (self._balance(), self._entries())
            again = run(done.again())
            assert again.replayed and again.entry_id == done.result.entry_id
            assert again.amount == done.result.amount
            assert (self._balance(), self._entries()) == before

        @precondition(lambda self: bool(self.vouchers))
        @rule(data=st.data())
        def cancel(self, data: st.DataObject) -> None:
            voucher_id = data.draw(st.sampled_from(self.vouchers))
            try:
                run(cancel_voucher(self.customer.id, voucher_id, now=self.now, settings=S))
            except VoucherExpired:
                pass

        @invariant()
        def balance_is_the_sum_of_entries_and_lots(self) -> None:
            findings, bad_lots = run(ledger.audit())
            assert findings == [] and bad_lots == 0
            assert self._balance() >= 0

    return LedgerMachine


def test_ledger_state_machine(db_url: str) -> None:
    loop = asyncio.new_event_loop()
    EXECUTOR_CACHE.clear()
    # Each run_until_complete is its own task: the connections must be global, not contextual.
    loop.run_until_complete(Tortoise.init(config=storage_db.tortoise_config(db_url),
                                          _enable_global_fallback=True))
    try:
        machine = make_machine(loop)
        machine.TestCase.settings = settings(
            max_examples=25, stateful_step_count=20, deadline=None,
            suppress_health_check=[HealthCheck.too_slow])
        machine.TestCase().runTest()
    finally:
        loop.run_until_complete(Tortoise.close_connections())
        loop.close()
