"""Enqueue a 1,000,000-recipient campaign on PostgreSQL, against a raw INSERT … SELECT.

    python -m bench.campaign [--customers 1000000] [--batch-ids 50000]

A temporary database on postgres://postgres@127.0.0.1:5432 is created, migrated, filled with
customers by ``generate_series`` (server side, not measured) and dropped at the end. Then,
in the same run and on the same data:

(a) raw: the very statement the campaign runner issues, over the whole id range at once
    (one ``INSERT INTO message … SELECT … FROM customer … ON CONFLICT DO NOTHING``);
(b) the campaign: ``campaigns.start`` and the real ``CampaignRunner`` ticking until every
    batch of ``--batch-ids`` customer ids is committed with its cursor.

The outbox is emptied (TRUNCATE) between the two. Printed: seconds, rows/s, this process's
peak RSS and its growth during (b), and the ratio (b)/(a). Targets: (b) ≤ 20 s, RSS growth
< 150 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
import uuid
from datetime import UTC, datetime

import asyncpg
from tortoise import Tortoise, connections
from tortoise.migrations.api import migrate

from bot.settings import Settings
from bot.texts import Texts
from bot.web.operators import campaigns
from bot.web.operators.access import Actor, create_operator
from bot.web.operators.runner import CampaignRunner, insert_select
from storage import db as storage_db
from storage.operator_models import Campaign, Role
from storage.sql import execute

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
NOON = datetime(2026, 11, 21, 4, 0, tzinfo=UTC)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * resource.getpagesize() / (1024 * 1024)


async def admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def admin_db(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def seed(customers: int) -> None:
    conn = connections.get("default")
    await conn.execute_script(f"""
        INSERT INTO customer (created_at, updated_at, name, phone, lunar_birthday, language,
                              timezone, referral_code, email)
        SELECT now(), now(), '客户' || g, '+8613' || lpad(g::text, 9, '0'), false,
               CASE WHEN g % 10 = 0 THEN 'en' ELSE 'zh-CN' END, 'Asia/Shanghai',
               'B' || g, ''
        FROM generate_series(1, {customers}) AS g;
        ANALYZE customer;
    """)


def _body() -> campaigns.CampaignIn:
    return campaigns.CampaignIn.model_validate({
        "name": "bench", "category": "care",
        "templates": {"zh-CN": "{name}，{company}提醒您冬季行车注意安全。",
                      "en": "{name}, {company} wishes you safe winter driving."},
    })


async def raw_insert_select(actor: Actor, settings: Settings) -> tuple[float, int]:
    campaign = await campaigns.create_campaign(actor, _body(), now=NOON)
    top = await connections.get("default").execute_query_dict("SELECT max(id) AS m FROM customer")
    sql, params = insert_select(campaign, settings, postgres=True, lo=0,
                                hi=int(top[0]["m"]), now=NOON)
    start = time.perf_counter()
    async with connections.get("default")._in_transaction() as conn:
        rows = await execute(conn, sql, params)
    return time.perf_counter() - start, rows


async def campaign_enqueue(actor: Actor, settings: Settings) -> tuple[float, int, float]:
    created = await campaigns.create_campaign(actor, _body(), now=NOON)
    runner = CampaignRunner(settings, clock=lambda: NOON)
    before = current_rss_mb()
    start = time.perf_counter()
    await campaigns.start(actor, created.id, settings=settings, texts=Texts.load(),
                          now=NOON)
    while await runner.tick():
        pass
    seconds = time.perf_counter() - start
    campaign = await Campaign.get(id=created.id)
    return seconds, int(campaign.enqueued), peak_rss_mb() - before


async def main(customers: int, batch_ids: int) -> None:
    name = f"engage_bench_campaign_{uuid.uuid4().hex[:8]}"
    url = f"postgres://postgres@127.0.0.1:5432/{name}"
    settings = Settings(database={"url": url}, operator={"campaign_batch_ids": batch_ids})
    await admin(f'CREATE DATABASE "{name}"')
    try:
        config = storage_db.tortoise_config(url)
        await migrate(config=config)
        await Tortoise.init(config=config)
        started = time.perf_counter()
        await seed(customers)
        print(f"seeded {customers:,} customers in {time.perf_counter() - started:.1f} s "
              "(not measured)")
        operator, _ = await create_operator("bench", Role.ADMIN)
        actor = Actor(operator, "token")

        raw_s, raw_rows = await raw_insert_select(actor, settings)
        print(f"(a) raw INSERT … SELECT:  {raw_rows:>9,} rows in {raw_s:6.2f} s "
              f"({raw_rows / raw_s:,.0f} rows/s)")
        await connections.get("default").execute_script("TRUNCATE message")
        await admin_db(url, "VACUUM ANALYZE message")

        rss_before = current_rss_mb()
        seconds, rows, growth = await campaign_enqueue(actor, settings)
        print(f"(b) campaign enqueue:      {rows:>9,} rows in {seconds:6.2f} s "
              f"({rows / seconds:,.0f} rows/s), batches of {batch_ids:,} customer ids")
        print(f"    RSS before {rss_before:.0f} MB, peak {peak_rss_mb():.0f} MB, "
              f"growth during (b) {max(growth, 0.0):.1f} MB")
        print(f"    ratio (b)/(a) = {seconds / raw_s:.2f}   "
              f"target: (b) <= 20 s [{'ok' if seconds <= 20 else 'MISSED'}], "
              f"growth < 150 MB [{'ok' if growth < 150 else 'MISSED'}]")
        assert rows == raw_rows == customers, (rows, raw_rows, customers)
    finally:
        await Tortoise.close_connections()
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--batch-ids", type=int, default=50_000)
    args = parser.parse_args()
    asyncio.run(main(args.customers, args.batch_ids))
