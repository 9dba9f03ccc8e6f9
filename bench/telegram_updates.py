"""Telegram webhook updates per second through the real application, against a bare aiogram
echo bot on the same webhook set-up, in the same run.

    python -m bench.telegram_updates [--db postgres|sqlite] [--customers 100000]
                                     [--updates 6000] [--concurrency 32] [--rate 200]

A 100,000-customer database (linked Telegram accounts, policies, payments, claims with
timelines, points, and three days of handled update ids as the prune job keeps them) is built
with bulk inserts and analysed. ``build_app`` then serves the Telegram webhook
(secret checked, each update handled before it is answered, recorded once by update id) and
a bare aiogram echo bot is served by aiogram's ``SimpleRequestHandler`` with
``handle_in_background=False`` and the same secret. Both answer through one fake Bot API
server. The fake Bot API and the load generator each run in their own process, so neither
takes CPU from the process being measured.

The update mix is /policies, /points and free text naming one of the sender's claim numbers.
Printed: (a) closed loop at ``--concurrency``, in ``--rounds`` rounds alternating the two
servers: updates/s, p50 and p99 latency for both, and the ratio (overall and per round);
(b) open loop at ``--rate`` updates/s: p50 and p99 latency.

``--profile FILE`` adds one more closed-loop round to Engage alone under cProfile (after the
measured ones, so the figures above are the profiler-free ones), writes the stats to FILE and
prints the top entries by own time and by cumulative time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import random
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import Message as TgMessage
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web
from tortoise import Tortoise
from tortoise.migrations.api import migrate

from bot.settings import Settings
from bot.telegram.updates import KEEP_PROCESSED
from bot.web.app import Overrides, build_app
from bot.web.heap import freeze_startup_heap
from storage import db as storage_db
from storage.loyalty_models import EntryKind, LedgerEntry, LoyaltyAccount, PointLot
from storage.models import (
    Claim,
    ClaimEvent,
    ClaimStatus,
    Customer,
    Payment,
    Policy,
    PolicyStatus,
    ProcessedUpdate,
    Product,
    TelegramAccount,
)

TOKEN = "123456:TEST-TOKEN"
SECRET = "bench-webhook-secret"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
USER_BASE = 2_000_000
HISTORY_BASE = 1_000_000_000
"""Update ids of the handled history the database starts with (the run's own count from 1)."""
CHUNK = 5000
HOOK = "/telegram/webhook"


# --- the database -----------------------------------------------------------------------------


def _claim_number(i: int) -> str:
    return f"RDAA31{i:08d}"


async def populate(n: int, today: date) -> None:
    now = datetime.now(UTC)
    for start in range(0, n, CHUNK):
        ids = range(start, min(n, start + CHUNK))
        await Customer.bulk_create([
            Customer(id=i + 1, name=f"客户{i}", phone=f"+86139{i:08d}",
                     referral_code=f"B{i:09d}", language="en" if i % 4 == 0 else "zh-CN")
            for i in ids])
        await TelegramAccount.bulk_create([
            TelegramAccount(id=i + 1, telegram_user_id=USER_BASE + i, chat_id=USER_BASE + i,
                            customer_id=i + 1, linked_at=now, language_code="zh-CN")
            for i in ids])
        await Policy.bulk_create([
            Policy(id=i + 1, number=f"P{i:09d}", customer_id=i + 1,
                   product=Product.COMMERCIAL if i % 2 else Product.COMPULSORY,
                   plate=f"沪A{i % 100_000:05d}", vehicle="大众 朗逸",
                   coverage={"third_party_cents": 200_000_000, "vehicle_damage_cents": 12_000_000},
                   start_date=today - timedelta(days=300 - i % 200),
                   end_date=today + timedelta(days=65 - i % 200),
                   premium_cents=350_000, status=PolicyStatus.ACTIVE)
            for i in ids])
        await Payment.bulk_create([
            Payment(id=i + 1, external_id=f"PAY{i:09d}", policy_id=i + 1, customer_id=i + 1,
                    amount_cents=350_000, paid_at=now - timedelta(days=100 + i % 200))
            for i in ids])
        claimants = [i for i in ids if i % 5 == 0]
        await Claim.bulk_create([
            Claim(id=i + 1, number=_claim_number(i), policy_id=i + 1, customer_id=i + 1,
                  status=ClaimStatus.SURVEYED, reported_at=now - timedelta(days=9),
                  description="倒车时刮碰立柱，后保险杠受损",
                  required_documents=["driving_licence", "vehicle_licence", "photos"])
            for i in claimants])
        await ClaimEvent.bulk_create([
            ClaimEvent(claim_id=i + 1, status=status, occurred_at=now - timedelta(days=9 - k),
                       note="")
            for i in claimants
            for k, status in enumerate((ClaimStatus.REPORTED, ClaimStatus.REGISTERED,
                                        ClaimStatus.SURVEYED))])
        members = [i for i in ids if i % 3 == 0]
        await LoyaltyAccount.bulk_create([
            LoyaltyAccount(id=i + 1, customer_id=i + 1, balance=350, tier="standard")
            for i in members])
        await LedgerEntry.bulk_create([
            LedgerEntry(id=3 * i + k + 1, account_id=i + 1, kind=EntryKind.CHECKIN,
                        amount=amount, balance_after=sum((100, 200, 50)[: k + 1]),
                        idempotency_key=f"bench:{i}:{k}", fingerprint="0" * 64,
                        occurred_at=now - timedelta(days=30 - k))
            for i in members for k, amount in enumerate((100, 200, 50))])
        await PointLot.bulk_create([
            PointLot(id=3 * i + k + 1, account_id=i + 1, entry_id=3 * i + k + 1,
                     original=amount, remaining=amount, earned_at=now - timedelta(days=30 - k),
                     expires_on=today + timedelta(days=10 + 400 * k))
            for i in members for k, amount in enumerate((100, 200, 50))])
    # The update feed's record of what it handled, as a live bot has it: the prune job keeps
    # the last KEEP_PROCESSED days (here one update per customer spread over them). Analysed
    # empty, the table would be planned as empty, and a plan kept from then scans it whole
    # for every update as the run fills it (no autovacuum on this machine to plan it again).
    for start in range(0, n, CHUNK):
        await ProcessedUpdate.bulk_create([
            ProcessedUpdate(update_id=HISTORY_BASE + i,
                            processed_at=now - KEEP_PROCESSED * (i / n))
            for i in range(start, min(n, start + CHUNK))])


# --- updates ----------------------------------------------------------------------------------


def make_updates(count: int, customers: int, first_id: int, seed: int) -> list[dict[str, Any]]:
    """The mix: /policies, /points, and a sentence naming one of the sender's claims."""
    rng = random.Random(seed)
    updates = []
    for n in range(count):
        kind = n % 3
        i = rng.randrange(0, customers, 5) if kind == 2 else rng.randrange(customers)
        text = ("/policies", "/points", f"请问案件{_claim_number(i)}现在到哪一步了？")[kind]
        user = {"id": USER_BASE + i, "is_bot": False, "first_name": "客户",
                "language_code": "zh-hans"}
        message: dict[str, Any] = {
            "message_id": first_id + n, "date": int(time.time()), "from": user, "text": text,
            "chat": {"id": USER_BASE + i, "type": "private", "first_name": "客户"}}
        if text.startswith("/"):
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text)}]
        updates.append({"update_id": first_id + n, "message": message})
    return updates


# --- the two servers --------------------------------------------------------------------------


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}{HOOK}"
    finally:
        await runner.cleanup()


def echo_app(base: str) -> web.Application:
    """The baseline: aiogram's own webhook handler, one handler that echoes the text."""
    bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(base)))
    dp = Dispatcher()

    async def echo(message: TgMessage) -> None:
        await message.answer(message.text or "…")

    dp.message.register(echo)
    app = web.Application()
    SimpleRequestHandler(dp, bot, handle_in_background=False,
                         secret_token=SECRET).register(app, path=HOOK)
    return app


def engage_app(url: str, base: str, uploads: Path) -> web.Application:
    settings = Settings(
        database={"url": url, "pool_max": 20},
        telegram={"token": TOKEN, "api_base": base, "mode": "webhook",
                  "webhook_url": f"https://bench.invalid{HOOK}", "webhook_secret": SECRET},
        uploads={"directory": uploads})
    return build_app(settings, Overrides(run_dispatcher=False, run_scheduler=False,
                                         manage_database=False))


# --- the load generator (its own process) -----------------------------------------------------


async def generate(args: argparse.Namespace, updates: list[dict[str, Any]]) -> None:
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post(update: dict[str, Any]) -> None:
            nonlocal errors
            started = time.perf_counter()
            async with session.post(args.generate, json=update, headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        if args.rate:
            loop = asyncio.get_running_loop()
            origin = loop.time()
            tasks = []
            for n, update in enumerate(updates):
                delay = origin + n / args.rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(post(update)))
            await asyncio.gather(*tasks)
        else:
            queue = iter(updates)

            async def worker() -> None:
                for update in queue:
                    await post(update)

            await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        elapsed = time.perf_counter() - started
    print(json.dumps({"elapsed": elapsed, "errors": errors, "latencies": latencies}))


@dataclass
class Result:
    """Requests answered, how long they all took, and each one's latency (seconds)."""

    elapsed: float = 0.0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)

    def add(self, other: Result) -> None:
        self.elapsed += other.elapsed
        self.errors += other.errors
        self.latencies += other.latencies

    @property
    def per_second(self) -> float:
        return len(self.latencies) / self.elapsed

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def load(url: str, updates: list[dict[str, Any]], *, concurrency: int = 0,
               rate: float = 0.0) -> Result:
    """Post ``updates`` from a load-generator process (the updates go in on its stdin)."""
    command = [sys.executable, "-m", "bench.telegram_updates", "--generate", url,
               "--concurrency", str(concurrency or 1), "--rate", str(rate)]
    process = await asyncio.create_subprocess_exec(*command, stdin=asyncio.subprocess.PIPE,
                                                   stdout=asyncio.subprocess.PIPE)
    body = "\n".join(json.dumps(u, ensure_ascii=False) for u in updates).encode()
    out, _ = await process.communicate(body)
    data = json.loads(out.decode().strip().splitlines()[-1])
    return Result(data["elapsed"], data["errors"], data["latencies"])


# --- the run ----------------------------------------------------------------------------------


def _line(name: str, r: Result) -> str:
    errors = f", {r.errors} errors" if r.errors else ""
    return (f"{name:<12} {r.per_second:8,.0f} updates/s   p50 {r.percentile_ms(0.5):6.1f} ms   "
            f"p99 {r.percentile_ms(0.99):6.1f} ms   ({len(r.latencies):,} updates{errors})")


async def run(args: argparse.Namespace) -> None:
    fake = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.fake_telegram_server",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert fake.stdout is not None and fake.stdin is not None
    base = (await fake.stdout.readline()).decode().strip()
    pg_name = ""
    workdir = Path(tempfile.mkdtemp(prefix="engage-bench-tg-"))
    if args.db == "postgres":
        pg_name = f"engage_bench_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'CREATE DATABASE "{pg_name}"')
        await admin.close()
        url = f"postgres://postgres@127.0.0.1:5432/{pg_name}"
    else:
        url = f"sqlite://{workdir / 'engage.sqlite3'}"
    config = storage_db.tortoise_config(url, pool_max=20)
    try:
        await migrate(config=config)
        await Tortoise.init(config=config)
        started = time.monotonic()
        await populate(args.customers, datetime.now(UTC).date())
        # Fresh statistics, as a live database has (just after a bulk load PostgreSQL has
        # none and plans joins badly).
        await Tortoise.get_connection("default").execute_script("ANALYZE")
        print(f"{args.customers:,} customers on {args.db} built in "
              f"{time.monotonic() - started:.1f} s")

        next_id = 1

        def batch(count: int, seed: int) -> list[dict[str, Any]]:
            nonlocal next_id  # update ids never repeat within the run
            first, next_id = next_id, next_id + count
            return make_updates(count, args.customers, first, seed)

        async with serve(echo_app(base)) as echo_url, \
                serve(engage_app(url, base, workdir / "uploads")) as engage_url:
            for target in (echo_url, engage_url):  # warm both up (connections, caches)
                await load(target, batch(600, 1), concurrency=args.concurrency)
            freeze_startup_heap()  # as ``engage run`` does once it is serving
            # Rounds alternate the two servers, so a neighbour's load on the machine falls
            # on both alike; the ratio is reported per round too.
            echo, ours, ratios = Result(), Result(), []
            size = args.updates // args.rounds
            for n in range(args.rounds):
                e = await load(echo_url, batch(size, 10 + n), concurrency=args.concurrency)
                o = await load(engage_url, batch(size, 20 + n), concurrency=args.concurrency)
                echo.add(e)
                ours.add(o)
                ratios.append((o.per_second / e.per_second, e.per_second, o.per_second))
            if args.profile:
                # CPU time, not wall time: the machine may be shared
                profiler = cProfile.Profile(time.process_time)
                profiler.enable()
                await load(engage_url, batch(size, 30), concurrency=args.concurrency)
                profiler.disable()
                profiler.dump_stats(args.profile)
            paced = await load(engage_url, batch(int(args.rate * args.seconds), 4),
                               rate=args.rate)
            echo_paced = await load(echo_url, batch(int(args.rate * args.seconds), 5),
                                    rate=args.rate)
        print(f"(a) closed loop, {args.concurrency} concurrent requests, "
              f"mix /policies, /points, claim number:")
        print("   " + _line("echo bot", echo))
        print("   " + _line("engage", ours))
        print(f"   ratio engage / echo: {ours.per_second / echo.per_second:.2f} (target >= 0.5;"
              f" per round {', '.join(f'{r:.2f}' for r, _, _ in ratios)})")
        print("   per round, echo / engage updates/s: "
              + ", ".join(f"{e:,.0f} / {o:,.0f}" for _, e, o in ratios))
        print(f"(b) open loop at {args.rate:.0f} updates/s for {args.seconds:.0f} s:")
        print("   " + _line("engage", paced) + f"   target p99 < 50 ms: "
              f"{'met' if paced.percentile_ms(0.99) < 50 else 'NOT met'}")
        print("   " + _line("echo bot", echo_paced))
        if args.profile:
            print(f"(c) Engage alone under cProfile, {size:,} updates (stats in {args.profile}):")
            for order in ("tottime", "cumulative"):
                pstats.Stats(args.profile).sort_stats(order).print_stats(25)
    finally:
        await Tortoise.close_connections()
        fake.stdin.close()
        await asyncio.wait_for(fake.wait(), timeout=10)
        if pg_name:
            admin = await asyncpg.connect(PG_ADMIN)
            await admin.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
            await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--updates", type=int, default=6000,
                        help="per server in the closed-loop run")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3,
                        help="closed-loop rounds, echo and engage alternating")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--profile", metavar="FILE",
                        help="one more Engage round under cProfile, stats written to FILE")
    parser.add_argument("--generate", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        updates = [json.loads(line) for line in sys.stdin.read().splitlines()]
        asyncio.run(generate(args, updates))
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
