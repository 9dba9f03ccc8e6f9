"""The daily plan on a large book: 1,000,000 customers and 1,200,000 policies.

    python -m bench.plan [--db sqlite|postgres|both] [--date 2026-09-25] [--customers 1000000]
                         [--policies 1200000] [--pg postgresql://postgres@127.0.0.1:5432/postgres]

Generates the book (COPY on PostgreSQL, ``executemany`` on SQLite — not timed as part of the
plan), then runs the real daily plan (``scheduler.plan.run_plan``: birthday, festival, renewal,
holiday renewal, lapse rescue, messages into the outbox through ``storage.outbox``) for one date
and prints its seconds, the messages queued per kind and the process's peak RSS. The baseline,
measured in the same run, is a raw SQL ``COUNT(*)`` of exactly the selections the rules read
(``scheduler.plan.selections``), so the ratio shows what reading in pages, building messages and
writing them costs over merely finding the rows.

The default date, 25 September 2026, is Mid-Autumn: every customer with a policy in force gets a
greeting, the heaviest kind of plan day there is. ``--date 2026-11-18`` is an ordinary day.

PostgreSQL runs in a temporary database created on the server and dropped afterwards; SQLite in
a temporary file. Targets: ≤ 15 s on PostgreSQL, ≤ 30 s on SQLite, ratio ≤ 3, peak RSS < 300 MB.

The figures measured, with the load they were measured under, are in the README's benchmark
table (festival greetings are queued set-based since 2026-11-22, so older figures here would
mislead).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import sqlite3
import time
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from bench.common import migrated_database
from scheduler.context import PlanContext
from scheduler.plan import run_plan, selections

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
CHUNK = 50_000
REGIONS = [
    ("beijing", "北京", "Beijing", 39.90, 116.41),
    ("shanghai", "上海", "Shanghai", 31.23, 121.47),
    ("guangzhou", "广州", "Guangzhou", 23.13, 113.26),
    ("shenzhen", "深圳", "Shenzhen", 22.54, 114.06),
    ("chengdu", "成都", "Chengdu", 30.57, 104.07),
    ("hangzhou", "杭州", "Hangzhou", 30.27, 120.16),
    ("wuhan", "武汉", "Wuhan", 30.59, 114.31),
    ("xian", "西安", "Xi'an", 34.34, 108.94),
    ("nanjing", "南京", "Nanjing", 32.06, 118.80),
    ("harbin", "哈尔滨", "Harbin", 45.80, 126.53),
]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- the book ------------------------------------------------------------------------------------


def customer_rows(n: int, seed: int) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(seed)
    now = datetime(2025, 1, 1, tzinfo=UTC)
    first, span = date(1950, 1, 1).toordinal(), date(2005, 12, 31).toordinal() - date(
        1950, 1, 1).toordinal()
    for i in range(1, n + 1):
        born = date.fromordinal(first + rng.randrange(span))
        yield (i, now, now, f"客户{i}", f"+86138{i:08d}", born, born.month * 100 + born.day,
               rng.random() < 0.03, "zh-CN" if rng.random() < 0.95 else "en", "Asia/Shanghai",
               f"R{i:09d}", "", 1 + i % len(REGIONS))  # built-in regions (migration 0015)


CUSTOMER_COLUMNS = ("id", "created_at", "updated_at", "name", "phone", "birthday",
                    "birthday_md", "lunar_birthday", "language", "timezone", "referral_code",
                    "email", "region_id")


def policy_rows(customers: int, policies: int, day: date, seed: int
                ) -> Iterator[tuple[Any, ...]]:
    """One commercial policy per customer; the extra ones are compulsory cover for the same
    car, mostly bought together (same expiry)."""
    rng = random.Random(seed)
    now = datetime(2025, 1, 1, tzinfo=UTC)
    ends: dict[int, date] = {}
    for i in range(1, policies + 1):
        if i <= customers:
            owner, product = i, "commercial"
            end = day + timedelta(days=rng.randint(-200, 365))
            if i <= policies - customers:
                ends[owner] = end
        else:
            owner, product = i - customers, "compulsory"
            end = ends.pop(owner)
            if rng.random() < 0.3:
                end = day + timedelta(days=rng.randint(-200, 365))
        draw = rng.random()
        if end >= day:
            status = "cancelled" if draw < 0.02 else "active"
        else:
            status = "expired" if draw < 0.6 else "renewed" if draw < 0.9 else "active"
        yield (i, now, now, f"P{i:010d}", product, f"A{owner:07d}", "", "{}",
               end - timedelta(days=365), end, 350_000, status, owner)


POLICY_COLUMNS = ("id", "created_at", "updated_at", "number", "product", "plate", "vehicle",
                  "coverage", "start_date", "end_date", "premium_cents", "status", "customer_id")


def _chunks(rows: Iterator[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    chunk: list[tuple[Any, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def generate_postgres(dsn: str, customers: int, policies: int, day: date) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for chunk in _chunks(customer_rows(customers, 1)):
            await conn.copy_records_to_table("customer", records=chunk,
                                             columns=CUSTOMER_COLUMNS)
        for chunk in _chunks(policy_rows(customers, policies, day, 2)):
            await conn.copy_records_to_table("policy", records=chunk, columns=POLICY_COLUMNS)
        for table in ("customer", "policy"):
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                               f"(SELECT MAX(id) FROM {table}))")
        # as a live database would be: vacuumed (visibility map set) and analysed, so that no
        # autovacuum of the freshly loaded tables runs during the measurement
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


def generate_sqlite(path: Path, customers: int, policies: int, day: date) -> None:
    def iso(row: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(v.isoformat() if isinstance(v, date) else
                     int(v) if isinstance(v, bool) else v for v in row)

    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.executemany(
                f"INSERT INTO customer ({', '.join(CUSTOMER_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(CUSTOMER_COLUMNS))})",
                (iso(r) for r in customer_rows(customers, 1)))
            conn.executemany(
                f"INSERT INTO policy ({', '.join(POLICY_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(POLICY_COLUMNS))})",
                (iso(r) for r in policy_rows(customers, policies, day, 2)))
        conn.execute("ANALYZE")
    finally:
        conn.close()


def book(kind: str, admin_dsn: str, customers: int, policies: int,
         day: date) -> AbstractAsyncContextManager[str]:
    """A migrated database holding the generated book, Tortoise connected to it."""

    async def fill(url: str) -> None:
        if kind == "postgres":
            await generate_postgres(url.replace("postgres://", "postgresql://", 1),
                                    customers, policies, day)
        else:
            await asyncio.to_thread(generate_sqlite, Path(url.removeprefix("sqlite://")),
                                    customers, policies, day)

    return migrated_database(kind, admin_dsn, fill=fill)


# -- the run ---------------------------------------------------------------------------------------


async def count_selections(ctx: PlanContext) -> tuple[float, dict[str, int]]:
    started = time.perf_counter()
    counts: dict[str, int] = {}
    for kind, found in selections(ctx).items():
        counts[kind] = sum([await s.count() for s in found])
    return time.perf_counter() - started, counts


async def bench(kind: str, args: argparse.Namespace) -> None:
    day: date = args.date
    print(f"\n== {kind}: {args.customers:,} customers, {args.policies:,} policies, plan for {day}")
    started = time.perf_counter()
    async with book(kind, args.pg, args.customers, args.policies, day):
        print(f"   book generated in {time.perf_counter() - started:.1f} s "
              f"(peak RSS so far {peak_rss_mb():.0f} MB)")
        ctx = PlanContext(day=day, today=day)
        await count_selections(ctx)  # warm the cache for both sides alike
        started = time.perf_counter()
        result = await run_plan(ctx)
        plan_seconds = time.perf_counter() - started
        count_seconds, rows = await count_selections(ctx)
        print(f"   plan: {plan_seconds:.2f} s, {result.total:,} messages queued")
        for name, queued in result.counts.items():
            print(f"     {name:<16} {queued:>9,} queued  ({rows[name]:,} rows selected)")
        print(f"   raw SQL COUNT(*) of the same selections: {count_seconds:.2f} s "
              f"-> ratio {plan_seconds / max(count_seconds, 1e-9):.1f}")
        print(f"   peak RSS {peak_rss_mb():.0f} MB; load average {os.getloadavg()[0]:.1f} on "
              f"{os.cpu_count()} CPUs")
        again = time.perf_counter()
        repeat = await run_plan(ctx)
        repeat_seconds = time.perf_counter() - again
        print(f"   second run of the same day: {repeat_seconds:.2f} s, {repeat.total} new "
              f"(ratio {repeat_seconds / max(count_seconds, 1e-9):.1f}: the same reading, "
              f"building and key checks, no rows written)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--date", type=date.fromisoformat, default=date(2026, 9, 25))
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--policies", type=int, default=1_200_000)
    parser.add_argument("--pg", default=PG_ADMIN, help="admin DSN (a temp database is made)")
    args = parser.parse_args()
    if args.policies < args.customers or args.policies > 2 * args.customers:
        parser.error("--policies must be between --customers and twice that")
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    for kind in kinds:
        asyncio.run(bench(kind, args))


if __name__ == "__main__":
    main()
