"""Erasure and retention on a large PostgreSQL database: customers erased per second, messages
cleared per second by the retention pass, peak RSS.

    python -m bench.erasure [--customers 1000000] [--messages 2000000] [--erase 10000]
                            [--pg postgresql://postgres@127.0.0.1:5432/postgres]

A throw-away database is filled server side (``generate_series``, not measured): customers,
one policy, one inbound SMS and ``messages / customers`` sent messages each, all older than
every retention horizon. Then:

* ``storage.privacy.erase_customer`` for ``--erase`` customers, one after another (each its own
  transaction: pseudonym, inbound rows, message parameters, unsent messages, links, the
  phone's suppression rows, the audit row). Baseline, in the same run: a bare ``UPDATE
  customer SET name = …`` per customer in its own transaction — what renaming alone costs.
* one ``storage.retention.run`` (batches of ``retention.batch_size``, no batch limit) over all
  messages and inbound bodies. Baseline: one bare ``UPDATE message SET params = '{}'`` over
  the same rows (a single statement, no batching, no cursor).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

from tortoise import connections

from bench.common import PG_ADMIN, load_average, migrated_database, peak_rss_mb, rate
from scheduler.config import RetentionSettings
from scheduler.jobs import retention_cutoffs
from storage import privacy, retention
from storage.models import Message
from storage.sql import execute

NOW = datetime(2027, 6, 1, 2, 0, tzinfo=UTC)


async def fill(url: str, customers: int, messages: int) -> None:
    import asyncpg

    per = max(1, messages // customers)
    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        await conn.execute(f"""
            INSERT INTO customer (created_at, updated_at, name, phone, lunar_birthday, language,
                                  timezone, referral_code, email, customer_no)
            SELECT now(), now(), '客户' || g, '+8613' || lpad(g::text, 9, '0'), false, 'zh-CN',
                   'Asia/Shanghai', 'B' || g, 'c' || g || '@example.com', 'C' || g
            FROM generate_series(1, {customers}) AS g;
            INSERT INTO policy (created_at, updated_at, number, customer_id, product, plate,
                                vehicle, coverage, start_date, end_date, premium_cents, status)
            SELECT now(), now(), 'P' || g, g, 'commercial', '沪A' || lpad(g::text, 6, '0'), '',
                   '{{}}', DATE '2025-07-01', DATE '2026-06-30', 350000, 'active'
            FROM generate_series(1, {customers}) AS g;
            INSERT INTO sms_inbound (message_sid, from_phone, customer_id, body, keyword, reply,
                                     num_media, created_at)
            SELECT 'SM' || g, '+8613' || lpad(g::text, 9, '0'), g, '保单', 'policy', '…', 0,
                   TIMESTAMPTZ '2025-01-01 00:00+00'
            FROM generate_series(1, {customers}) AS g;
            INSERT INTO message (created_at, updated_at, dedup_key, kind, category, customer_id,
                                 channel_policy, channel, template_key, params, not_before,
                                 status, skip_reason, attempts, last_error, segments, sent_at)
            SELECT TIMESTAMPTZ '2026-01-01 00:00+00', now(), 'b:' || g, 'birthday', 'care',
                   (g % {customers}) + 1, 'telegram_then_sms', 'sms', 'birthday',
                   jsonb_build_object('name', '客户' || g, 'plate', '沪A12345'),
                   TIMESTAMPTZ '2026-01-01 00:00+00', 'delivered', '', 1, '', 1,
                   TIMESTAMPTZ '2026-01-01 00:00+00'
            FROM generate_series(1, {customers * per}) AS g;
            ANALYZE;
        """)
    finally:
        await conn.close()


async def bare_renames(ids: range) -> float:
    conn = connections.get("default")
    start = time.perf_counter()
    for customer_id in ids:
        async with conn._in_transaction() as tx:
            await execute(tx, "UPDATE customer SET name = :name WHERE id = :id",
                          {"name": f"X{customer_id}", "id": customer_id})
    return time.perf_counter() - start


async def erasures(ids: range, uploads: Path) -> float:
    by = privacy.Requester("bench")
    start = time.perf_counter()
    for customer_id in ids:
        await privacy.erase_customer(customer_id, by=by, now=NOW, uploads=uploads)
    return time.perf_counter() - start


async def main(customers: int, messages: int, erase: int, admin: str) -> None:
    keep = RetentionSettings()
    print(f"bench.erasure: {customers:,} customers, {messages:,} messages, erase {erase:,}; "
          f"load average {load_average()}")
    uploads = Path("/nonexistent-uploads")

    async def filled(url: str) -> None:
        await fill(url, customers, messages)

    async with migrated_database("postgres", admin, fill=filled):
        total = await Message.all().count()
        base = await bare_renames(range(customers - erase + 1, customers + 1))
        took = await erasures(range(1, erase + 1), uploads)
        print(f"  erasure      {rate(erase, took):>10,.0f} customers/s  ({took:.1f} s)")
        print(f"  bare rename  {rate(erase, base):>10,.0f} customers/s  ({base:.1f} s)")
        print(f"  ratio        {took / base:>10.1f}x the bare rename")
        print(f"  peak RSS     {peak_rss_mb():>10.0f} MB")
        start = time.perf_counter()
        report = await retention.run(retention_cutoffs(NOW, keep), uploads=uploads,
                                     batch=keep.batch_size, max_batches=10**9)
        took = time.perf_counter() - start
        cleared = report.message_params + report.inbound_bodies
        print(f"  retention    {rate(cleared, took):>10,.0f} rows/s  ({report.message_params:,}"
              f" message params of {total:,}, {report.inbound_bodies:,} inbound bodies, "
              f"{report.batches:,} batches, {took:.1f} s)")
        conn = connections.get("default")
        await execute(conn, "UPDATE message SET params = jsonb_build_object('n', id)")
        start = time.perf_counter()
        await execute(conn, "UPDATE message SET params = '{}'::jsonb")
        bare = time.perf_counter() - start
        print(f"  bare UPDATE  {rate(total, bare):>10,.0f} rows/s  ({bare:.1f} s, one statement)")
        print(f"  ratio        {took / bare:>10.1f}x the bare UPDATE")
        print(f"  peak RSS     {peak_rss_mb():>10.0f} MB")
        print(f"  load average {load_average()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--messages", type=int, default=2_000_000)
    parser.add_argument("--erase", type=int, default=10_000)
    parser.add_argument("--pg", default=PG_ADMIN)
    args = parser.parse_args()
    asyncio.run(main(args.customers, args.messages, args.erase, args.pg))
