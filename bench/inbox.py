"""The conversations inbox under load: the waiting-queue page and one thread page over
100,000 conversations with 2,000,000 messages on PostgreSQL — p95 of ``--requests`` requests
each through the real app (``GET /api/v1/conversations?view=waiting`` and
``GET /api/v1/conversations/{id}``), with the ratio against the bare query each page is built
on, timed in the same run. The inbox counts (``/conversations/counts``, polled by open inbox
pages) are timed too.

    python -m bench.inbox [--conversations 100000] [--messages 2000000] [--requests 200]
                          [--pg postgresql://postgres@127.0.0.1:5432/postgres]

Seeded set-based (``generate_series``, not measured): one customer per conversation, one
conversation in twenty waiting and one in twenty held by the operator, messages spread
evenly over the conversations. Requests run one after another (latency, not throughput).
Target: p95 <= 100 ms for each page.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from tortoise import connections

from bench.common import PG_ADMIN, load_average, migrated_database, peak_rss_mb
from bot.settings import Settings
from bot.web.app import Overrides, build_app
from bot.web.operators.access import create_operator
from storage import sql
from storage.operator_models import Role

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


async def seed(conversations: int, messages: int, operator_id: int) -> None:
    conn = connections.get("default")
    await conn.execute_script(f"""
        INSERT INTO customer (created_at, updated_at, name, phone, lunar_birthday, language,
                              timezone, referral_code, email, language_set_by,
                              timezone_set_by, region_set_by)
        SELECT now(), now(), '客户' || g, '+8613' || lpad(g::text, 9, '0'), false, 'zh-CN',
               'Asia/Shanghai', 'B' || g, '', '', '', ''
        FROM generate_series(1, {conversations}) AS g;
        INSERT INTO conversation (key, customer_id, phone, status, handoff_reason, assignee_id,
                                  last_channel, waiting_since, unread, misunderstood,
                                  last_inbound_at, last_message_at, created_at)
        SELECT 'c:' || g, g, '',
               CASE g % 20 WHEN 0 THEN 'waiting' WHEN 1 THEN 'held' ELSE 'bot' END,
               CASE WHEN g % 20 < 2 THEN 'keyword' ELSE '' END,
               CASE WHEN g % 20 = 1 THEN {operator_id} END,
               CASE WHEN g % 3 = 0 THEN 'sms' ELSE 'telegram' END,
               CASE WHEN g % 20 < 2 THEN TIMESTAMPTZ '{NOW.isoformat()}' - g * INTERVAL '7 s'
               END,
               g % 4, 0, TIMESTAMPTZ '{NOW.isoformat()}' - g * INTERVAL '5 s',
               TIMESTAMPTZ '{NOW.isoformat()}' - g * INTERVAL '5 s',
               TIMESTAMPTZ '{NOW.isoformat()}' - g * INTERVAL '9 s'
        FROM generate_series(1, {conversations}) AS g;
        INSERT INTO conversation_message (conversation_id, direction, author, channel, kind,
                                          body, created_at)
        SELECT g % {conversations} + 1, CASE WHEN g % 2 = 0 THEN 'in' ELSE 'out' END,
               CASE WHEN g % 2 = 0 THEN 'customer' ELSE 'bot' END, 'telegram', 'text',
               '您好，我想问一下理赔进度，案件号 RDAA' || g,
               TIMESTAMPTZ '{NOW.isoformat()}' - ({messages} - g) * INTERVAL '1 s'
        FROM generate_series(1, {messages}) AS g;
        ANALYZE customer; ANALYZE conversation; ANALYZE conversation_message;
    """)


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1] * 1000


async def timed_get(client: TestClient, path: str, token: str,  # type: ignore[type-arg]
                    **params: Any) -> float:
    started = time.perf_counter()
    resp = await client.get(path, params=params, headers={"Authorization": f"Bearer {token}"})
    body = await resp.json()
    elapsed = time.perf_counter() - started
    assert resp.status == 200, body
    return elapsed


async def bare(statement: str, params: dict[str, Any]) -> float:
    conn = connections.get("default")
    started = time.perf_counter()
    await sql.fetch(conn, statement, params)
    return time.perf_counter() - started


async def main(conversations: int, messages: int, requests: int, admin: str) -> None:
    async with migrated_database("postgres", admin) as url:
        operator, token = await create_operator("bench", Role.AGENT)
        started = time.perf_counter()
        await seed(conversations, messages, operator.id)
        print(f"seeded {conversations:,} conversations, {messages:,} messages in "
              f"{time.perf_counter() - started:.1f} s (not measured); load {load_average()}")
        settings = Settings(database={"url": url})
        app = build_app(settings, Overrides(run_dispatcher=False, run_scheduler=False,
                                            run_campaigns=False, manage_database=False,
                                            run_media_sweep=False, clock=lambda: NOW))
        rng = random.Random(17)
        async with TestClient(TestServer(app)) as client:
            await timed_get(client, "/api/v1/conversations", token, view="waiting")  # warm
            figures = {}
            queue = [await timed_get(client, "/api/v1/conversations", token, view="waiting")
                     for _ in range(requests)]
            queue_bare = [await bare(
                "SELECT * FROM conversation WHERE status = :status "
                "ORDER BY waiting_since, id LIMIT 51", {"status": "waiting"})
                for _ in range(requests)]
            ids = [rng.randint(1, conversations) for _ in range(requests)]
            thread = [await timed_get(client, f"/api/v1/conversations/{i}", token)
                      for i in ids]
            thread_bare = [await bare(
                "SELECT * FROM conversation_message WHERE conversation_id = :conversation "
                "ORDER BY id DESC LIMIT 200", {"conversation": i}) for i in ids]
            counts = [await timed_get(client, "/api/v1/conversations/counts", token)
                      for _ in range(max(10, requests // 10))]
            figures = {"queue": (p95(queue), p95(queue_bare)),
                       "thread": (p95(thread), p95(thread_bare))}
        for name, (page, query) in figures.items():
            verdict = "ok" if page <= 100 else "MISSED"
            print(f"{name:>6} page p95 {page:7.1f} ms   bare query p95 {query:6.2f} ms   "
                  f"ratio {page / query:6.1f}   target <= 100 ms [{verdict}]")
        print(f"counts  p95 {p95(counts):7.1f} ms (every open inbox page polls it)")
        print(f"load {load_average()}, peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=2_000_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--pg", default=PG_ADMIN)
    args = parser.parse_args()
    asyncio.run(main(args.conversations, args.messages, args.requests, args.pg))
