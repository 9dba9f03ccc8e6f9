"""The renewal desk on a large book: the KPI report and the worklist on PostgreSQL.

    python -m bench.renewal_kpis [--policies 1200000] [--customers 1000000] [--branches 50]
                                 [--agents 2000] [--messages-every 4] [--today 2026-11-21]
                                 [--pg postgresql://postgres@127.0.0.1:5432/postgres]

Generates (COPY, not timed) customers and policies whose expiries spread over 13 months (12
before today and one after), in ``--branches`` branches and ``--agents`` agents, 60 % of the
expired ones renewed (the gap to the renewal 0–44 days), a quarter of the book carrying one
renewal reminder each (SMS or Telegram, sent or delivered). Then measures, each as the best
of three runs:

- the KPI report (``bot.web.operators.renewal_kpis.report``: every figure of the page) from
  the rollup, the first report (which builds the rollup), the live report without it, and the
  report after a day's changes to past expiries (renewals linked, outcomes, late delivery
  failures: the triggers mark their days, the report rebuilds them), each checked equal to the
  live figures; baseline: the bare SQL aggregate of expired and renewed per expiry day over the
  same window;
- a worklist page of 50 rows with every contact (``bot.web.operators.renewals.worklist``),
  the ≤ 30-day tab of all branches (tens of thousands of rows) and of one branch, first page
  and a page 200 rows deep; baseline: the bare SQL of the same page's policies.

Targets (issue 16): KPI page ≤ 1 s, worklist page ≤ 200 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
from tortoise import connections

from bench.common import PG_ADMIN, migrated_database
from bench.plan import CUSTOMER_COLUMNS, REGIONS, _chunks, customer_rows
from bot.settings import Settings
from bot.web.operators import renewal_kpis, renewals
from bot.web.operators.access import Actor
from storage.operator_models import Operator, Role
from storage.sql import fetch

POLICY_COLUMNS = ("id", "created_at", "updated_at", "number", "product", "plate", "vehicle",
                  "coverage", "start_date", "end_date", "premium_cents", "status",
                  "customer_id", "branch", "agent", "original_agent", "renewed_by_id",
                  "renewal_gap_days", "outcome")
MESSAGE_COLUMNS = ("id", "created_at", "updated_at", "dedup_key", "kind", "category",
                   "customer_id", "channel_policy", "channel", "template_key", "params",
                   "not_before", "status", "sent_at", "skip_reason", "attempts", "last_error",
                   "segments")


def policy_rows(customers: int, policies: int, today: date, branches: int, agents: int
                ) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(2)
    now = datetime(2025, 1, 1, tzinfo=UTC)
    span = 365 + 30
    for i in range(1, policies + 1):
        owner = 1 + (i - 1) % customers
        end = today - timedelta(days=365) + timedelta(days=rng.randrange(span))
        renewed = end < today and rng.random() < 0.6
        status = "renewed" if renewed else ("active" if end >= today else "expired")
        agent = f"A{rng.randrange(agents):04d}"
        yield (i, now, now, f"P{i:010d}", "commercial" if i <= customers else "compulsory",
               f"A{owner:07d}", "", "{}", end - timedelta(days=365), end, 350_000, status,
               owner, f"B{rng.randrange(branches):02d}", agent, agent,
               i if renewed else None, rng.randrange(45) if renewed else None,
               "renewed" if renewed else "")


def message_rows(policies: int, customers: int, today: date, every: int
                 ) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(3)
    for n, i in enumerate(range(1, policies + 1, every), start=1):
        owner = 1 + (i - 1) % customers
        sent = datetime.combine(today - timedelta(days=rng.randrange(380)), datetime.min.time(),
                                tzinfo=UTC)
        channel = "sms" if rng.random() < 0.7 else "telegram"
        yield (n, sent, sent, f"renewal:{i}:T-16", "renewal", "reminder", owner,
               "telegram_then_sms", channel, "renewal_reminder", "{}", sent,
               "delivered" if rng.random() < 0.9 else "sent", sent, "", 1, "", 1)


async def fill(url: str, args: argparse.Namespace) -> None:
    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        await conn.executemany(
            "INSERT INTO region (id, code, name, name_en, latitude, longitude, timezone) "
            "VALUES ($1, $2, $3, $4, $5, $6, 'Asia/Shanghai') "
            "ON CONFLICT DO NOTHING",
            [(i, *r) for i, r in enumerate(REGIONS, start=1)])
        for chunk in _chunks(customer_rows(args.customers, 1)):
            await conn.copy_records_to_table("customer", records=chunk, columns=CUSTOMER_COLUMNS)
        for chunk in _chunks(policy_rows(args.customers, args.policies, args.today,
                                         args.branches, args.agents)):
            await conn.copy_records_to_table("policy", records=chunk, columns=POLICY_COLUMNS)
        for chunk in _chunks(message_rows(args.policies, args.customers, args.today,
                                          args.messages_every)):
            await conn.copy_records_to_table("message", records=chunk, columns=MESSAGE_COLUMNS)
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def best_of(runs: int, work: Callable[[], Awaitable[Any]]) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await work()
        times.append(time.perf_counter() - started)
    return min(times)


BARE_KPI = ("SELECT p.end_date, COUNT(*), SUM(CASE WHEN p.renewed_by_id IS NOT NULL "
            "AND COALESCE(p.renewal_gap_days, 0) <= 30 THEN 1 ELSE 0 END) FROM policy p "
            "WHERE p.end_date >= :first AND p.end_date < :today AND p.cancelled_at IS NULL "
            "AND p.status <> 'cancelled' GROUP BY p.end_date")
BARE_PAGE = ("SELECT * FROM policy p WHERE p.status IN ('active', 'expired') "
             "AND p.renewed_by_id IS NULL AND p.cancelled_at IS NULL AND p.end_date >= :first "
             "AND p.end_date <= :last {branch} ORDER BY p.end_date, p.id LIMIT 50 OFFSET :skip")


async def run(args: argparse.Namespace) -> None:
    today: date = args.today
    print(f"== postgres: {args.policies:,} policies over 13 months, {args.branches} branches, "
          f"{args.agents} agents")
    started = time.perf_counter()
    async with migrated_database("postgres", args.pg, fill=lambda url: fill(url, args)):
        print(f"   book generated in {time.perf_counter() - started:.1f} s")
        conn = connections.get("default")
        settings = Settings()
        first = renewal_kpis.window(today)
        bare = await best_of(3, lambda: fetch(conn, BARE_KPI, {"first": first, "today": today}))
        started = time.perf_counter()
        await renewal_kpis.report(today, settings)
        build = time.perf_counter() - started
        kpi = await best_of(3, lambda: renewal_kpis.report(today, settings))
        data = await renewal_kpis.report(today, settings)
        live = await best_of(1, lambda: renewal_kpis.report(today, settings, live=True))
        assert data == await renewal_kpis.report(today, settings, live=True)
        print(f"   KPI report: {kpi * 1000:.0f} ms from the rollup ({data['totals']['expired']:,} "
              f"expired, rate {data['totals']['rate']}); bare aggregate {bare * 1000:.0f} ms "
              f"-> ratio {kpi / max(bare, 1e-9):.1f}; live (no rollup) {live * 1000:.0f} ms "
              f"-> ratio {live / max(bare, 1e-9):.1f}; first report building the rollup "
              f"{build * 1000:.0f} ms")
        changed = await day_of_changes(conn, today)
        started = time.perf_counter()
        data = await renewal_kpis.report(today, settings)
        after = time.perf_counter() - started
        assert data == await renewal_kpis.report(today, settings, live=True)
        print(f"   after a day's changes ({changed}): report {after * 1000:.0f} ms "
              f"(-> ratio {after / max(bare, 1e-9):.1f}), equal to the live figures")
        actor = Actor(Operator(name="bench", role=Role.VIEWER, branch=""), "token")
        for branch in ("*", "B07"):
            await page_figures(conn, actor, branch, today)
        print(f"   load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")


async def day_of_changes(conn: Any, today: date) -> str:
    """What a day brings to past expiries: 500 lapsed policies of the last 45 days renewed
    (the import links them), 500 outcomes recorded, 200 reminders of the last three days whose
    delivery failed late."""
    since = today - timedelta(days=45)
    renewed = await fetch(conn, (
        "UPDATE policy SET renewed_by_id = id, renewal_gap_days = 3, status = 'renewed', "
        "outcome = 'renewed' WHERE id IN (SELECT id FROM policy WHERE end_date >= :since "
        "AND end_date < :today AND renewed_by_id IS NULL ORDER BY id LIMIT 500) RETURNING id"),
        {"since": since, "today": today})
    outcomes = await fetch(conn, (
        "UPDATE policy SET outcome = 'not_renewing', outcome_reason = 'price' WHERE id IN "
        "(SELECT id FROM policy WHERE end_date >= :since AND end_date < :today "
        "AND renewed_by_id IS NULL AND outcome = '' ORDER BY id LIMIT 500) RETURNING id"),
        {"since": since, "today": today})
    failed = await fetch(conn, (
        "UPDATE message SET status = 'failed' WHERE id IN (SELECT id FROM message "
        "WHERE status = 'delivered' AND created_at >= :recent ORDER BY id LIMIT 200) "
        "RETURNING id"), {"recent": datetime.combine(today - timedelta(days=3), datetime.min.time(),
                                                     tzinfo=UTC)})
    return (f"{len(renewed)} renewed, {len(outcomes)} outcomes, {len(failed)} deliveries "
            "failed")


async def page_figures(conn: Any, actor: Actor, branch: str, today: date) -> None:
    q = renewals.WorklistQuery(tab=renewals.Tab.DUE_30, branch=branch)
    rows, found = await renewals.worklist(actor, q, today=today)
    cursor = found.cursor or ""
    for _ in range(3):  # 200 rows deep: four pages on
        deeper = renewals.WorklistQuery(tab=renewals.Tab.DUE_30, branch=branch, cursor=cursor)
        _, more = await renewals.worklist(actor, deeper, today=today)
        cursor = more.cursor or ""
    deep = renewals.WorklistQuery(tab=renewals.Tab.DUE_30, branch=branch, cursor=cursor)
    first_page = await best_of(3, lambda: renewals.worklist(actor, q, today=today))
    deep_page = await best_of(3, lambda: renewals.worklist(actor, deep, today=today))
    params = {"first": today, "last": today + timedelta(days=30), "skip": 0}
    clause = ""
    if branch != "*":
        clause, params["branch"] = "AND p.branch = :branch", branch
    sql = BARE_PAGE.format(branch=clause)
    bare_first = await best_of(3, lambda: fetch(conn, sql, params))
    bare_deep = await best_of(3, lambda: fetch(conn, sql, {**params, "skip": 200}))
    print(f"   worklist ≤30 days, branch {branch}: {found.total:,}{'+' if found.capped else ''} "
          "rows, "
          f"{sum(r['contact_count'] for r in rows)} contacts on page 1; "
          f"page 1 {first_page * 1000:.0f} ms (bare {bare_first * 1000:.1f} ms, ratio "
          f"{first_page / max(bare_first, 1e-9):.1f}); 200 rows deep {deep_page * 1000:.0f} ms "
          f"(bare {bare_deep * 1000:.1f} ms, ratio {deep_page / max(bare_deep, 1e-9):.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policies", type=int, default=1_200_000)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--branches", type=int, default=50)
    parser.add_argument("--agents", type=int, default=2000)
    parser.add_argument("--messages-every", type=int, default=4)
    parser.add_argument("--today", type=date.fromisoformat, default=date(2026, 11, 21))
    parser.add_argument("--pg", default=PG_ADMIN, help="admin DSN (a temp database is made)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
