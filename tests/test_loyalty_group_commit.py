"""Group commit of standalone postings (``loyalty.group_commit``) on a real database: one
group's postings commit together or not at all, a refusal or a failing posting does not fail
its neighbours, a posting inside the caller's transaction stays there, and a process killed
in the middle of a group leaves none of it behind for a retry to post exactly once — on both
backends (a group is a few set-based statements, ``loyalty.group_postings``)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import timedelta

import pytest
from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from loyalty import ledger
from loyalty.config import LoyaltySettings
from loyalty.entries import EntrySpec
from loyalty.errors import IdempotencyConflict, InsufficientPoints, UnknownCustomer
from loyalty.group_postings import GroupPosting, post_group
from storage.loyalty_models import EntryKind, LedgerEntry, LotUse, PointLot
from storage.models import Customer
from storage.sql import fetch, fetchval
from tests.workers.ledger_worker import NOW, posting

S = LoyaltySettings()
WORKER = [sys.executable, "-m", "tests.workers.ledger_worker"]


async def _customers(n: int) -> list[int]:
    ids = []
    for i in range(n):
        c = await Customer.create(name=f"客户{i}", phone=f"+861380013{i:04d}",
                                  referral_code=f"G{i}")
        await ledger.credit(c.id, 100, kind=EntryKind.ADJUSTMENT, key=f"open:{c.id}", now=NOW,
                            settings=S)
        ids.append(c.id)
    return ids


def _credit(customer_id: int, points: int, key: str) -> asyncio.Future[ledger.Posted]:
    return asyncio.ensure_future(ledger.credit(customer_id, points, kind=EntryKind.ADJUSTMENT,
                                               key=key, now=NOW, settings=S))


def _record_groups() -> list[list[str]]:
    groups: list[list[str]] = []

    async def record(keys: Sequence[str]) -> None:
        groups.append(list(keys))

    ledger.posting_queue().before_commit = record
    return groups


async def _keys(prefix: str) -> set[str]:
    keys: list[str] = await LedgerEntry.filter(idempotency_key__startswith=prefix).values_list(
        "idempotency_key", flat=True)  # type: ignore[assignment]
    return set(keys)


async def test_concurrent_postings_commit_in_groups_each_with_its_own_outcome(db: str) -> None:
    a, b = await _customers(2)
    groups = _record_groups()
    results = await asyncio.gather(
        *(_credit(a if i % 2 else b, i + 1, f"g{i}") for i in range(10)),
        ledger.debit(a, 1_000, kind=EntryKind.REDEMPTION, key="too-much", now=NOW),
        ledger.debit(b, 30, kind=EntryKind.REDEMPTION, key="fits", now=NOW),
        return_exceptions=True)
    assert isinstance(results[10], InsufficientPoints)
    assert all(isinstance(r, ledger.Posted) and not r.replayed
               for i, r in enumerate(results) if i != 10)
    assert max(map(len, groups)) > 1  # grouped, and the refusal decided inside a group:
    assert any("too-much" in group for group in groups)
    assert await ledger.get_balance(a) == 100 + sum(range(2, 11, 2))
    assert await ledger.get_balance(b) == 100 + sum(range(1, 10, 2)) - 30
    assert "too-much" not in await _keys("")
    assert await ledger.audit() == ([], 0)


async def test_a_failing_posting_does_not_fail_its_neighbours(db: str) -> None:
    (a,) = await _customers(1)
    results = await asyncio.gather(
        _credit(a, 5, "before"), _credit(999_999, 5, "nobody"), _credit(a, 7, "after"),
        return_exceptions=True)
    assert isinstance(results[1], UnknownCustomer)
    assert [r.amount for r in results if isinstance(r, ledger.Posted)] == [5, 7]
    assert await ledger.get_balance(a) == 112
    assert await _keys("") == {f"open:{a}", "before", "after"}
    assert await ledger.audit() == ([], 0)


async def test_a_posting_inside_the_callers_transaction_is_not_queued(db: str) -> None:
    (a,) = await _customers(1)
    groups = _record_groups()
    with pytest.raises(RuntimeError):
        async with in_transaction():
            await ledger.credit(a, 50, kind=EntryKind.ADJUSTMENT, key="inside", now=NOW,
                                settings=S)
            raise RuntimeError("the caller's transaction fails after the posting")
    assert groups == [] and await ledger.get_balance(a) == 100
    assert await LedgerEntry.filter(idempotency_key="inside").count() == 0


async def _worker(db: str, first: int, count: int, *flags: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *WORKER, db, str(first), str(count), *flags,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def _finished(proc: asyncio.subprocess.Process) -> str:
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode().strip().splitlines()[-1]


async def test_a_process_killed_in_the_middle_of_a_group_leaves_none_of_it(db: str) -> None:
    customers = await _customers(5)
    assert await _finished(await _worker(db, 0, 40)) == "posted 40 replayed 0 refused 0"
    assert await _keys("crash:") == {f"crash:{i}" for i in range(40)}

    proc = await _worker(db, 40, 40, "--stop-before-commit")
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
    stopped = json.loads(line.removeprefix("applied "))
    assert stopped and set(stopped) <= {f"crash:{i}" for i in range(40, 80)}
    proc.kill()
    await proc.communicate()
    assert await _keys("crash:") == {f"crash:{i}" for i in range(40)}  # all of 1, none of 2
    assert await ledger.audit() == ([], 0)

    assert await _finished(await _worker(db, 0, 80)) == "posted 40 replayed 40 refused 0"
    assert await _keys("crash:") == {f"crash:{i}" for i in range(80)}
    assert await LedgerEntry.filter(idempotency_key__startswith="crash:").count() == 80
    for customer_id in customers:
        expected = 100 + sum(points for i in range(80)
                             for who, points in [posting(i, customers)] if who == customer_id)
        assert await ledger.get_balance(customer_id) == expected
    assert await ledger.audit() == ([], 0)


async def test_one_group_decides_each_posting_in_turn_with_first_expiring_lots(db: str) -> None:
    """One group: a credit whose lot expires first, debits that take from it and from the
    older lot in turn, a debit the running balance no longer covers, a replay and a key reused
    for another request — each caller gets its own answer, as if made one after another."""
    (a,) = await _customers(1)  # 100 points, in a lot expiring in 2 years
    await ledger.debit(a, 10, kind=EntryKind.REDEMPTION, key="earlier", now=NOW)
    groups = _record_groups()
    early = NOW - timedelta(days=700)  # its lot expires long before the opening one
    results = await asyncio.gather(
        ledger.credit(a, 50, kind=EntryKind.ADJUSTMENT, key="early", now=early, settings=S),
        ledger.debit(a, 120, kind=EntryKind.REDEMPTION, key="big", now=NOW),
        ledger.debit(a, 40, kind=EntryKind.REDEMPTION, key="refused", now=NOW),
        ledger.debit(a, 10, kind=EntryKind.REDEMPTION, key="earlier", now=NOW),
        ledger.debit(a, 11, kind=EntryKind.REDEMPTION, key="earlier", now=NOW),
        ledger.debit(a, 20, kind=EntryKind.REDEMPTION, key="last", now=NOW),
        return_exceptions=True)
    early_credit, big, refused, replay, conflict, last = results
    assert groups[0] == ["early", "big", "refused", "earlier", "last"]
    assert isinstance(early_credit, ledger.Posted) and early_credit.balance_after == 140
    assert isinstance(big, ledger.Posted) and (big.amount, big.balance_after) == (-120, 20)
    assert isinstance(refused, InsufficientPoints) and refused.balance == 20
    assert isinstance(replay, ledger.Posted) and replay.replayed
    assert isinstance(conflict, IdempotencyConflict)
    assert isinstance(last, ledger.Posted) and last.balance_after == 0
    uses = await LotUse.filter(entry_id=big.entry_id).order_by("id").values_list(
        "lot_id", "amount")
    new_lot = await PointLot.get(entry_id=early_credit.entry_id)
    opening = await PointLot.get(account_id=big.account_id, id__not=new_lot.id)
    assert uses == [(new_lot.id, 50), (opening.id, 70)]
    assert (new_lot.remaining, opening.remaining) == (0, 0)
    assert await ledger.get_balance(a) == 0
    assert await ledger.audit() == ([], 0)


async def test_a_group_opens_the_accounts_its_credits_need(db: str) -> None:
    fresh = [await Customer.create(name=f"新{i}", phone=f"+861390013{i:04d}",
                                   referral_code=f"N{i}") for i in range(3)]
    results = await asyncio.gather(
        *(_credit(c.id, 5 + i, f"first:{c.id}") for i, c in enumerate(fresh)),
        ledger.debit(fresh[0].id, 1, kind=EntryKind.REDEMPTION, key="d", now=NOW),
        return_exceptions=True)
    assert [r.balance_after for r in results[:3] if isinstance(r, ledger.Posted)] == [5, 6, 7]
    assert isinstance(results[3], ledger.Posted) and results[3].balance_after == 4
    assert await ledger.audit() == ([], 0)


async def test_a_group_that_waited_for_an_account_reads_its_lots_as_left(
        db: str, is_postgres: bool) -> None:
    """A group locks its accounts and reads their lots in one statement. When it had to wait
    for an account (another transaction emptied a lot meanwhile), the lots it read in its
    snapshot are stale: they are read again, and the debit takes from the lot that is left."""
    (a,) = await _customers(1)  # a lot of 100
    await ledger.credit(a, 50, kind=EntryKind.ADJUSTMENT, key="soon", now=NOW - timedelta(
        days=700), settings=S)  # expires first
    holding, release = asyncio.Event(), asyncio.Event()

    async def other_transaction() -> None:
        async with in_transaction() as conn:
            await ledger.post_debit(conn, ledger.AccountRef.of_customer(a), 50, ledger.EntrySpec(
                EntryKind.REDEMPTION, "other", "fp"), now=NOW)  # empties the early lot
            holding.set()
            await release.wait()

    other = asyncio.ensure_future(other_transaction())
    await holding.wait()
    debit = asyncio.ensure_future(
        ledger.debit(a, 30, kind=EntryKind.REDEMPTION, key="grouped", now=NOW))
    if is_postgres:  # until the group's statement waits for the account's lock
        while not await _lock_waits():  # noqa: ASYNC110 - the server has no event to await
            await asyncio.sleep(0.01)
    release.set()
    await other
    posted = await debit
    assert posted.balance_after == 70
    early = await PointLot.get(entry__idempotency_key="soon")
    assert early.remaining == 0
    assert await LotUse.filter(entry_id=posted.entry_id).values_list("lot_id", flat=True) != [
        early.id]
    assert await ledger.audit() == ([], 0)


async def _lock_waits() -> int:
    conn = connections.get("default")
    return int(await fetchval(conn, "SELECT COUNT(*) FROM pg_locks WHERE NOT granted"))


async def test_a_groups_statements_find_their_rows_by_index_in_a_plan_made_for_any_group(
        db: str, is_postgres: bool) -> None:
    """PostgreSQL keeps one plan per prepared statement, made for a group of any size, and a
    process keeps its statements for as long as it runs: were a group's rows found by
    scanning a table, each group would cost more as the ledger grows (issue 21)."""
    if not is_postgres:
        pytest.skip("plans are PostgreSQL's")
    await Customer.bulk_create([Customer(name=f"客户{i}", phone=f"+86137{i:08d}",
                                         referral_code=f"P{i}") for i in range(1_000)])
    customers: list[int] = await Customer.all().order_by("id").values_list(
        "id", flat=True)  # type: ignore[assignment]
    expires = NOW.date() + timedelta(days=400)

    def group(prefix: str, debit: int = 0) -> list[GroupPosting]:
        return [GroupPosting(c, debit or 50, EntrySpec(EntryKind.ADJUSTMENT, f"{prefix}:{c}",
                                                       "fp"), NOW,
                             None if debit else expires, "standard")
                for c in customers[::97 if debit else 1]]

    async with in_transaction() as conn:
        await post_group(conn, group("open"))
    await connections.get("default").execute_script("ANALYZE")
    async with in_transaction() as conn:
        await fetch(conn, "SELECT set_config('plan_cache_mode', 'force_generic_plan', true)")
        before = await _seq_scans(conn)
        outcomes = await post_group(conn, group("earn") + group("spend", debit=30))
        after = await _seq_scans(conn)
    assert all(isinstance(outcome, ledger.Posted) for outcome in outcomes)
    assert {table: after[table] - before[table] for table in after} == {
        "loyalty_account": 0, "loyalty_entry": 0, "loyalty_lot": 0}
    assert await ledger.audit() == ([], 0)


async def _seq_scans(conn: BaseDBAsyncClient) -> dict[str, int]:
    """Whole-table scans of the ledger's tables by this connection, not yet reported."""
    return {row["relname"]: int(row["seq_scan"]) for row in await fetch(
        conn, "SELECT relname, seq_scan FROM pg_stat_xact_user_tables WHERE relname "
              "IN ('loyalty_account', 'loyalty_entry', 'loyalty_lot')")}
