"""Ledger postings per second: 32 concurrent clients on each backend.

    python -m bench.ledger [--db sqlite|sqlite-normal|postgres|all] [--postings 10000]
                           [--accounts 1000] [--clients 32]
                           [--pg postgresql://postgres@127.0.0.1:5432/postgres]

Each posting is the real ``loyalty.ledger`` credit or debit (account row update, entry with
its idempotency key, lot insert or first-expiring-first consumption), standalone, so the
process's posting queue commits concurrent postings in groups (``loyalty.group_commit``);
on SQLite the clients share its one connection, as the handlers of one process do.
The mix is three credits to one debit over random accounts. The baseline, measured in the
same run at the same concurrency, is a bare INSERT of the same number of ledger rows with
no transaction, balance or lots. At the end the invariant is checked for every account:
balance = sum of its entries = sum of its lots, no lot negative.

PostgreSQL runs in a temporary database created on the server and dropped afterwards;
SQLite in a temporary file, once with its default durability (an fsync per commit) and once
with ``synchronous=NORMAL`` (WAL: still atomic and consistent, the last commits may be lost
on power failure), which a deployment can choose with ``sqlite://PATH?synchronous=NORMAL``.
Targets: ≥ 5,000 postings/s on PostgreSQL and 1.5 × the baseline, ≥ 2,000 on SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tortoise import Tortoise
from tortoise.transactions import in_transaction

from bench.common import migrated_database
from loyalty import ledger
from loyalty.config import LoyaltySettings
from loyalty.errors import InsufficientPoints
from storage import db as storage_db
from storage.loyalty_models import EntryKind
from storage.models import Customer
from storage.sql import execute, fetch

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
SETTINGS = LoyaltySettings()
START = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def temp_database(kind: str, admin_dsn: str, pool_max: int
                  ) -> AbstractAsyncContextManager[str]:
    """A migrated, empty database, connected; dropped (or deleted) afterwards.
    ``sqlite-normal`` is SQLite in WAL mode without an fsync per commit."""
    return migrated_database("postgres" if kind == "postgres" else "sqlite", admin_dsn,
                             pool_max=pool_max,
                             sqlite_options="?synchronous=NORMAL" if kind == "sqlite-normal"
                             else "")


@dataclass
class Plan:
    """The postings to make, drawn up front so both runs do the same work."""

    customers: list[int]
    ops: list[tuple[int, int]]  # (customer id, signed points)


def draw(customers: list[int], postings: int, seed: int = 7) -> Plan:
    rng = random.Random(seed)
    ops = [(rng.choice(customers), rng.randint(1, 100) if rng.random() < 0.75
            else -rng.randint(1, 60)) for _ in range(postings)]
    return Plan(customers, ops)


async def populate(accounts: int) -> list[int]:
    await Customer.bulk_create([
        Customer(name=f"客户{i}", phone=f"+86139{i:08d}", referral_code=f"B{i:09d}")
        for i in range(accounts)
    ], batch_size=1000)
    ids: list[int] = await Customer.all().order_by("id").values_list(
        "id", flat=True)  # type: ignore[assignment]
    for customer_id in ids:  # open every account with an opening credit, not timed
        await ledger.credit(customer_id, 500, kind=EntryKind.ADJUSTMENT,
                            key=f"open:{customer_id}", now=START, settings=SETTINGS,
                            reason="bench", operator="bench")
    return ids


async def run_clients(clients: int, ops: list[tuple[int, int]],
                      work: Callable[[int, int, int], Awaitable[bool]]) -> tuple[float, int]:
    """Run ``ops`` over ``clients`` concurrent workers; returns (seconds, successes)."""
    queue = iter(enumerate(ops))
    done = 0

    async def worker() -> None:
        nonlocal done
        for index, (customer_id, points) in queue:
            if await work(index, customer_id, points):
                done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return time.perf_counter() - started, done


async def posting(index: int, customer_id: int, points: int) -> bool:
    now = START + timedelta(seconds=index)
    if points > 0:
        await ledger.credit(customer_id, points, kind=EntryKind.ADJUSTMENT, key=f"b:{index}",
                            now=now, settings=SETTINGS)
        return True
    try:
        await ledger.debit(customer_id, -points, kind=EntryKind.REDEMPTION, key=f"b:{index}",
                           now=now)
    except InsufficientPoints:
        return False
    return True


async def bare_insert(index: int, customer_id: int, points: int) -> bool:
    """The baseline: one autocommitted INSERT of a ledger row, nothing else."""
    conn = Tortoise.get_connection("default")
    await execute(
        conn,
        "INSERT INTO loyalty_entry (account_id, kind, amount, balance_after, idempotency_key, "
        "fingerprint, shortfall, reason, operator, occurred_at, created_at) "
        "VALUES ((SELECT id FROM loyalty_account WHERE customer_id = :customer), :kind, "
        ":amount, 0, :key, '', 0, '', '', :start, :start)",
        {"customer": customer_id, "kind": EntryKind.ADJUSTMENT.value, "amount": points,
         "key": f"base:{index}", "start": START},
    )
    return True


async def bench(kind: str, *, postings: int, accounts: int, clients: int, admin: str) -> bool:
    async with temp_database(kind, admin, pool_max=clients) as url:
        customers = await populate(accounts)
        if kind == "postgres":
            # Planner statistics, as a database in service has them (autovacuum analyses
            # tables as they grow; this server runs without it). Without any, PostgreSQL makes
            # the plans it keeps for the group's statements from tables of a few pages. SQLite
            # has none unless asked (and, given some, scans the 1,000 accounts in id order
            # rather than sort the group's few).
            await Tortoise.get_connection("default").execute_script("ANALYZE")
        plan = draw(customers, postings)
        seconds, posted = await run_clients(clients, plan.ops, posting)
        findings, bad_lots = await ledger.audit()
        async with in_transaction() as conn:
            totals = await fetch(
                conn, "SELECT (SELECT SUM(balance) FROM loyalty_account) AS balances, "
                      "(SELECT SUM(amount) FROM loyalty_entry) AS entries")
        sound = not findings and bad_lots == 0
        base_seconds, inserted = await run_clients(clients, plan.ops, bare_insert)
    rate = posted / seconds
    base_rate = inserted / base_seconds
    target = 5000 if kind == "postgres" else 2000
    print(f"[{kind}] {storage_db.describe_url(url)}")
    print(f"  clients {clients}, accounts {accounts}, attempts {len(plan.ops)}, "
          f"postings {posted} ({len(plan.ops) - posted} debits refused for lack of points)")
    print(f"  ledger:   {rate:8.0f} postings/s  ({seconds:.2f} s)  target ≥ {target}: "
          f"{'met' if rate >= target else 'MISSED'}")
    print(f"  baseline: {base_rate:8.0f} bare inserts/s ({base_seconds:.2f} s)")
    print(f"  ratio ledger/baseline: {rate / base_rate:.2f}")
    print(f"  invariant (balance = Σ entries = Σ lots, lots ≥ 0 for {accounts} accounts): "
          f"{'holds' if sound else f'BROKEN {findings[:3]} bad lots {bad_lots}'}; "
          f"Σ balances {int(totals[0]['balances'])} = Σ entries {int(totals[0]['entries'])}")
    print(f"  peak RSS {peak_rss_mb():.0f} MB")
    return sound


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "sqlite-normal", "postgres", "all"],
                        default="all", help="sqlite-normal: PRAGMA synchronous=NORMAL (WAL)")
    parser.add_argument("--postings", type=int, default=10_000)
    parser.add_argument("--accounts", type=int, default=1_000)
    parser.add_argument("--clients", type=int, default=32, help="concurrent postings")
    parser.add_argument("--pg", default=PG_ADMIN, help="admin DSN of the PostgreSQL server")
    args = parser.parse_args(argv)
    kinds = ["sqlite", "sqlite-normal", "postgres"] if args.db == "all" else [args.db]
    ok = True
    for kind in kinds:
        ok &= asyncio.run(bench(kind, postings=args.postings, accounts=args.accounts,
                                clients=args.clients, admin=args.pg))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
