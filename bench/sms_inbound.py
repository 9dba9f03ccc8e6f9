"""Signed inbound SMS webhooks per second, and p99 latency, for keyword queries against a
100,000-customer database — with the ratio against a bare aiohttp handler that only checks
the signature and answers empty TwiML, measured in the same run.

    python -m bench.sms_inbound [--db postgres|sqlite] [--customers 100000]
                                [--requests 5000] [--concurrency 16] [--fk-indexes]
                                [--pg postgresql://postgres@127.0.0.1:5432/postgres]
                                [--rounds 1] [--against CHECKOUT] [--profile FILE]

The database is built with bulk inserts: customers (one in five English-speaking), one or
two active policies each, a claim for one in five, a loyalty account for half. Both
applications run in one server subprocess (one event loop, as in production), each on its
own port: the real ``build_app`` (``/sms/inbound`` with the database, no dispatcher or
scheduler) and the bare handler. This process is the load: ``--concurrency`` connections,
requests signed beforehand with twilio's ``RequestValidator``, each a new MessageSid from a
random customer with a random query keyword (POLICY/保单, CLAIM/理赔 with and without a
number, POINTS/积分, HELP/帮助). Every answer is checked to be 200 TwiML with a message.
Beside requests per second, each server process's CPU time per request is reported (Linux).

``--rounds N`` measures the bare handler and ``/sms/inbound`` N times in turn (the same
customers and keywords each time, fresh MessageSids) and reports medians: on a machine other
work shares, one pass of each can differ by half. ``--against CHECKOUT`` also serves
``/sms/inbound`` from another checkout of Engage (e.g. a worktree of main) on the same
database, measured in the same rounds: a before/after pair under the same load.

``--profile FILE`` runs the server's event loop under cProfile while the last round's
requests to ``/sms/inbound`` are answered (not the bare handler's), writes the stats to FILE
and prints the top entries (that round's throughput is the profiler's, not a figure).

``--fk-indexes`` first creates indexes on ``policy.customer_id`` and ``claim.customer_id``,
which migrations 0001-0005 do not have, to show what they would change.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
from aiohttp import web
from pydantic import SecretStr
from tortoise import Tortoise
from tortoise.migrations.api import migrate
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from bot.settings import Settings, TwilioSettings
from bot.sms.signature import TwilioSignature
from bot.web.app import Overrides, build_app
from storage import db as storage_db
from storage.config import DatabaseSettings
from storage.loyalty_models import LoyaltyAccount
from storage.models import Claim, ClaimStatus, Customer, Language, Policy, Product

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "fedcba9876543210" * 2
PUBLIC_URL = "https://engage.example.com"
INBOUND_URL = f"{PUBLIC_URL}/sms/inbound"
NOW = datetime(2026, 11, 21, 4, 0, tzinfo=UTC)
CHUNK = 5000
KEYWORDS = ["POLICY", "保单", "CLAIM", "理赔", "POINTS", "积分", "HELP", "帮助", "claim #"]
CLAIM_STATUSES = list(ClaimStatus)


def phone(i: int) -> str:
    return f"+86139{i:08d}"


def claim_number(i: int) -> str:
    return f"RDAA31{i:010d}"


def has_claim(i: int) -> bool:
    return i % 5 == 0


# -- the database --------------------------------------------------------------------------


async def populate(n: int) -> None:
    rng = random.Random(20261121)
    policy_id = 0
    for start in range(0, n, CHUNK):
        ids = range(start, min(n, start + CHUNK))
        await Customer.bulk_create([
            Customer(id=i + 1, name=f"客户{i}", phone=phone(i), referral_code=f"S{i:09d}",
                     language=Language.EN if i % 5 == 4 else Language.ZH_CN)
            for i in ids
        ])
        policies: list[Policy] = []
        claims: list[Claim] = []
        for i in ids:
            plate = f"沪A·{i % 100_000:05d}"
            end = date(2027, 1, 1) + timedelta(days=rng.randrange(365))
            for product in (Product.COMPULSORY, Product.COMMERCIAL)[: 1 + (i % 3 == 0)]:
                policy_id += 1
                policies.append(Policy(
                    id=policy_id, number=f"P{policy_id:010d}", customer_id=i + 1,
                    product=product, plate=plate, start_date=end - timedelta(days=365),
                    end_date=end, premium_cents=rng.randrange(100_000, 800_000)))
            if has_claim(i):
                claims.append(Claim(
                    number=claim_number(i), policy_id=policy_id, customer_id=i + 1,
                    status=rng.choice(CLAIM_STATUSES),
                    reported_at=NOW - timedelta(days=rng.randrange(1, 200))))
        await Policy.bulk_create(policies)
        await Claim.bulk_create(claims)
        await LoyaltyAccount.bulk_create([
            LoyaltyAccount(customer_id=i + 1, balance=0, tier="standard")
            for i in ids if i % 2 == 0
        ])


async def fk_indexes() -> None:
    conn = Tortoise.get_connection("default")
    await conn.execute_script(
        "CREATE INDEX bench_policy_customer ON policy (customer_id);"
        "CREATE INDEX bench_claim_customer ON claim (customer_id);")


# -- the servers (subprocess) --------------------------------------------------------------


def bench_settings(url: str) -> Settings:
    return Settings(
        database=DatabaseSettings(url=url, pool_max=10),
        twilio=TwilioSettings(account_sid=ACCOUNT_SID, auth_token=SecretStr(AUTH_TOKEN),
                              from_number="+15005550006", public_base_url=PUBLIC_URL,
                              api_base="http://127.0.0.1:9"),
    )


def bare_app() -> web.Application:
    signature = TwilioSignature(AUTH_TOKEN, PUBLIC_URL)
    empty = str(MessagingResponse())

    async def inbound(request: web.Request) -> web.Response:
        await signature.verified_form(request)
        return web.Response(text=empty, content_type="text/xml")

    app = web.Application()
    app.router.add_post("/sms/inbound", inbound)
    return app


async def serve(url: str, profile: str | None) -> None:
    real = build_app(bench_settings(url), Overrides(
        run_dispatcher=False, run_scheduler=False, clock=lambda: NOW))
    ports = []
    runners = []
    for app in (real, bare_app()):
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        ports.append(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
    print(*ports, flush=True)
    profiler = cProfile.Profile() if profile else None
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    while line := await commands.readline():  # until closed
        if profiler is not None and line.strip() == b"profile":
            profiler.enable()
    if profiler is not None and profile:
        profiler.disable()
        profiler.dump_stats(profile)
    for runner in reversed(runners):
        await runner.cleanup()


# -- the load ------------------------------------------------------------------------------


def signed_requests(count: int, customers: int, seed: int) -> list[tuple[dict[str, str], str]]:
    rng = random.Random(seed)
    validator = RequestValidator(AUTH_TOKEN)
    out = []
    for _ in range(count):
        i = rng.randrange(customers)
        keyword = rng.choice(KEYWORDS)
        if keyword == "claim #":  # a number: the customer's own, or someone else's
            j = i if has_claim(i) and rng.random() < 0.8 else rng.randrange(0, customers, 5)
            keyword = f"理赔 {claim_number(j)}"
        params = {"MessageSid": "SM" + uuid.uuid4().hex, "AccountSid": ACCOUNT_SID,
                  "From": phone(i), "To": "+15005550006", "Body": keyword, "NumMedia": "0"}
        out.append((params, validator.compute_signature(INBOUND_URL, params)))
    return out


async def load(port: int, requests: list[tuple[dict[str, str], str]],
               concurrency: int) -> tuple[float, list[float]]:
    """Requests per second and each request's latency (seconds)."""
    url = f"http://127.0.0.1:{port}/sms/inbound"
    latencies: list[float] = []
    queue = iter(requests)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for params, sig in queue:
                started = time.perf_counter()
                async with session.post(url, data=params,
                                        headers={"X-Twilio-Signature": sig}) as resp:
                    body = await resp.text()
                latencies.append(time.perf_counter() - started)
                if resp.status != 200 or not body.startswith("<?xml"):
                    raise RuntimeError(f"{resp.status}: {body[:200]}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return len(requests) / elapsed, latencies


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process ``pid`` has used so far (Linux ``/proc``; 0.0
    elsewhere): a server's CPU per request, which other work on the machine changes far
    less than its requests per second."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def p(latencies: list[float], q: float) -> float:
    return statistics.quantiles(latencies, n=1000)[int(q * 1000) - 1] * 1000


def report(args: argparse.Namespace, rates: dict[str, list[float]],
           latencies: dict[str, list[float]], cpu: dict[str, list[float]]) -> None:
    """Median rate of the rounds, latencies of all of them, and each server's ratio to the
    bare handler: the median of the rounds' ratios (each round's bare run just before); and
    each server process's median CPU time per request (its own, not PostgreSQL's), with the
    bare handler's over it as the cpu ratio — which other work on the machine moves far less
    than requests per second."""
    bare = rates["bare handler"]
    rounds = f", {args.rounds} rounds (median)" if args.rounds > 1 else ""
    print(f"{args.requests:,} signed keyword queries, {args.concurrency} concurrent{rounds}:")
    for name, rate in rates.items():
        lat = latencies[name]
        line = (f"  {name:<22} {statistics.median(rate):8,.0f} req/s   p50 {p(lat, .5):6.1f} ms"
                f"   p99 {p(lat, .99):6.1f} ms   cpu {statistics.median(cpu[name]):5.0f} µs/req")
        if name != "bare handler":
            ratios = [ours / base for ours, base in zip(rate, bare, strict=True)]
            line += f"   ratio {statistics.median(ratios):.2f}"
            if len(ratios) > 1:
                line += f" ({' '.join(f'{r:.2f}' for r in ratios)})"
            cpu_ratios = [base / ours for ours, base in
                          zip(cpu[name], cpu["bare handler"], strict=True) if ours]
            if cpu_ratios:
                line += f"   cpu ratio {statistics.median(cpu_ratios):.2f}"
        print(line)


async def run(args: argparse.Namespace) -> None:
    pg_name = ""
    sqlite_path: Path | None = None
    if args.db == "postgres":
        pg_name = f"engage_bench_sms_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(args.pg)
        await admin.execute(f'CREATE DATABASE "{pg_name}"')
        await admin.close()
        url = args.pg.replace("postgresql://", "postgres://", 1).rsplit("/", 1)[0] + f"/{pg_name}"
    else:
        sqlite_path = Path(f"/tmp/engage-bench-sms-{uuid.uuid4().hex[:8]}.sqlite3")
        url = f"sqlite://{sqlite_path}"
    server: asyncio.subprocess.Process | None = None
    against: asyncio.subprocess.Process | None = None
    try:
        config = storage_db.tortoise_config(url)
        await migrate(config=config)
        await Tortoise.init(config=config)
        t0 = time.monotonic()
        await populate(args.customers)
        if args.fk_indexes:
            await fk_indexes()
        # Planner statistics, as a database in service has them (autovacuum, or by hand).
        await Tortoise.get_connection("default").execute_script("ANALYZE")
        counts = [await Customer.all().count(), await Policy.all().count(),
                  await Claim.all().count()]
        await Tortoise.close_connections()
        print(f"{args.db}: {counts[0]:,} customers, {counts[1]:,} policies, {counts[2]:,} "
              f"claims built in {time.monotonic() - t0:.1f} s"
              + (" (+ customer_id indexes on policy and claim)" if args.fk_indexes else ""))

        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.sms_inbound", "--serve", url,
            *(["--profile", args.profile] if args.profile else []),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert server.stdout is not None
        real_port, bare_port = map(int, (await server.stdout.readline()).split())
        ports = {"/sms/inbound": real_port, "bare handler": bare_port}
        if args.against:  # its own bench module serves its /sms/inbound (first port printed)
            against = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.sms_inbound", "--serve", url, cwd=args.against,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
            assert against.stdout is not None
            ports[f"against {Path(args.against).name}"] = int(
                (await against.stdout.readline()).split()[0])

        for port in ports.values():  # warm-up: fresh MessageSids for each
            await load(port, signed_requests(500, args.customers, seed=1), args.concurrency)
        rates: dict[str, list[float]] = {name: [] for name in ports}
        latencies: dict[str, list[float]] = {name: [] for name in ports}
        cpu: dict[str, list[float]] = {name: [] for name in ports}
        pids = {name: (against.pid if against is not None and name.startswith("against ")
                       else server.pid) for name in ports}
        servers = [(name, port) for name, port in ports.items() if port != bare_port]
        for round_ in range(args.rounds):  # the same customers and keywords, fresh MessageSids
            turns = servers if round_ % 2 == 0 else servers[::-1]  # neither always goes first
            for name, port in (("bare handler", bare_port), *turns):
                work = signed_requests(args.requests, args.customers, seed=2 + round_)
                if args.profile and port == real_port and round_ == args.rounds - 1:
                    assert server.stdin is not None
                    server.stdin.write(b"profile\n")
                    await server.stdin.drain()
                before = cpu_seconds(pids[name])
                rate, lat = await load(port, work, args.concurrency)
                cpu[name].append((cpu_seconds(pids[name]) - before) / len(work) * 1e6)
                rates[name].append(rate)
                latencies[name].extend(lat)
        report(args, rates, latencies, cpu)
    finally:
        if against is not None and against.stdin is not None:
            against.stdin.close()
            await asyncio.wait_for(against.wait(), timeout=60)
        if server is not None and server.stdin is not None:
            server.stdin.close()
            await asyncio.wait_for(server.wait(), timeout=60)
            if args.profile:
                stats = pstats.Stats(args.profile)
                stats.sort_stats("tottime").print_stats(25)
                stats.sort_stats("cumulative").print_stats(40)
        await Tortoise.close_connections()
        if pg_name:
            admin = await asyncpg.connect(args.pg)
            await admin.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
            await admin.close()
        if sqlite_path is not None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{sqlite_path}{suffix}").unlink(missing_ok=True)  # noqa: ASYNC240


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--fk-indexes", action="store_true")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--profile", metavar="FILE")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--against", metavar="CHECKOUT")
    parser.add_argument("--serve", metavar="DB_URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve, args.profile))
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
