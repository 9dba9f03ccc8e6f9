"""Weather notices on a large book: customers over every built-in city, hazards in some.

    python -m bench.weather [--db sqlite|postgres|both] [--customers 1000000]
                            [--hazard-cities 30] [--pg postgresql://postgres@127.0.0.1:5432/postgres]

Generates the book with ``bench.plan`` (one or two policies per customer, ~80 % insured on the
day), spreads the customers over all prefecture-level cities and municipalities (not timed),
serves a forecast with heavy rain and gusts in ``--hazard-cities`` cities from the loopback fake
Open-Meteo server (``tests.fakes.weather``), then times the real weather job
(``scheduler.weather.queue``: reached regions, batched forecast requests, hazards, one combined
notice per customer into the outbox). The baseline, in the same run on the same rows, is one
bare ``INSERT … SELECT`` of a message per reached customer of the hazard cities.

Target: ≤ 10 s on PostgreSQL for 1,000,000 customers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from datetime import UTC, date, datetime

from bench.common import peak_rss_mb
from bench.plan import PG_ADMIN, book
from scheduler import weather
from scheduler.config import WeatherSettings
from scheduler.context import PlanContext, outbox_sink
from scheduler.forecast import OpenMeteo
from storage.models import Region
from storage.sql import Params, current, execute
from tests.fakes.weather import FakeWeather

DAY = date(2026, 7, 1)


async def spread(cities: list[int]) -> None:
    """Customer ``i`` lives in city ``i mod n``: one statement through a small mapping table."""
    conn = current()
    await conn.execute_script(
        "CREATE TABLE bench_city (k INTEGER PRIMARY KEY, region_id INTEGER)")
    params = Params()
    rows = ", ".join(f"({params.add(k)}, {params.add(rid)})" for k, rid in enumerate(cities))
    await execute(conn, f"INSERT INTO bench_city (k, region_id) VALUES {rows}", params)
    await execute(conn, "UPDATE customer SET region_id = (SELECT b.region_id FROM bench_city b "
                  "WHERE b.k = customer.id % :n)", {"n": len(cities)})
    await conn.execute_script("DROP TABLE bench_city")
    await conn.execute_script("ANALYZE")


async def baseline(ctx: PlanContext, hazard_ids: list[int]) -> tuple[float, int]:
    params = Params(now=datetime(2026, 6, 30, 23, 0, tzinfo=UTC))
    sql = ("INSERT INTO message (created_at, updated_at, dedup_key, kind, category, "
           "customer_id, channel_policy, template_key, params, not_before, status, skip_reason, "
           "attempts, last_error, segments) SELECT :now, :now, 'bench:' || c.id, 'bench', "
           "'alert', c.id, 'telegram_then_sms', 'weather_notice', '{}', :now, 'pending', '', "
           f"0, '', 0 FROM customer c WHERE c.region_id IN ({params.add_all(hazard_ids)}) "
           f"AND {params.take(ctx.care_reaches())}")
    started = time.perf_counter()
    rows = await execute(current(), sql, params)
    seconds = time.perf_counter() - started
    await execute(current(), "DELETE FROM message WHERE kind = 'bench'")
    return seconds, rows


async def bench(kind: str, args: argparse.Namespace) -> None:
    print(f"\n== {kind}: {args.customers:,} customers, hazards in {args.hazard_cities} cities")
    started = time.perf_counter()
    async with book(kind, args.pg, args.customers, args.customers + args.customers // 5, DAY):
        cities = [r for r in await Region.filter(builtin=True).order_by("id")
                  if r.parent or r.code[:2] in ("11", "12", "31", "50", "81", "82")]
        await spread([r.id for r in cities])
        print(f"   book generated in {time.perf_counter() - started:.1f} s over "
              f"{len(cities)} cities")
        hazardous = cities[:: max(1, len(cities) // args.hazard_cities)][:args.hazard_cities]
        fake = FakeWeather(today=DAY)
        await fake.start()
        try:
            for r in hazardous:
                fake.set_forecast(r.latitude, r.longitude, [
                    {"date": "2026-07-02", "precipitation_sum": 60.0,
                     "wind_gusts_10m_max": 22.0}])
            settings = WeatherSettings(api_base=fake.base_url)  # type: ignore[arg-type]
            source = OpenMeteo(settings, timezone="Asia/Shanghai")
            ctx = PlanContext(day=DAY, today=DAY)
            base_seconds, base_rows = await baseline(ctx, [r.id for r in hazardous])
            started = time.perf_counter()
            result = await weather.queue(ctx, settings, source, outbox_sink(ctx.batch_size))
            seconds = time.perf_counter() - started
            await source.close()
        finally:
            await fake.close()
        print(f"   weather job: {seconds:.2f} s, {result.regions} regions fetched in "
              f"{len(fake.requests)} requests, {result.queued:,} notices queued")
        print(f"   bare INSERT … SELECT of the same rows: {base_seconds:.2f} s "
              f"({base_rows:,} rows) -> ratio {seconds / max(base_seconds, 1e-9):.1f}")
        print(f"   peak RSS {peak_rss_mb():.0f} MB; load average {os.getloadavg()[0]:.1f} on "
              f"{os.cpu_count()} CPUs")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--hazard-cities", type=int, default=30)
    parser.add_argument("--pg", default=PG_ADMIN, help="admin DSN (a temp database is made)")
    args = parser.parse_args()
    for kind in (["sqlite", "postgres"] if args.db == "both" else [args.db]):
        asyncio.run(bench(kind, args))


if __name__ == "__main__":
    main()
