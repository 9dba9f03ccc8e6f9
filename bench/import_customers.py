"""Customer CSV import: rows per second and peak memory on SQLite and PostgreSQL.

    python -m bench.import_customers [--rows 1000000] [--backend sqlite|postgres|all]
                                     [--batch-size 20000]
                                     [--pg postgresql://postgres@127.0.0.1:5432/postgres]

Generates a realistic customers file (unique mainland mobile numbers in random order, Chinese
names, birthdays, 10 % lunar, 30 % e-mail, 70 % with a region code, 5 % referred by an
earlier customer), then for each backend runs a child process that, on fresh databases:

1. baseline — reads the same file with ``csv`` and writes the same rows through the
   importer's own bulk INSERT (``unnest`` on PostgreSQL, ``executemany`` on SQLite) with the
   values as they are: no validation, no phone normalisation, no upsert lookup, no regions
   or referral links; transactions of the same batch size, the same SQLite page cache;
2. import — ``storage.importer.import_csv`` into an empty database (every row created);
3. re-import — the same file again (every row read back, compared and left unchanged).

It prints rows/s for each, the CPU time per row of the benchmark process (all threads: SQLite
works in one of its own) and of the PostgreSQL server backends (read from /proc when the server
is local) — a figure that a busy shared machine disturbs less than rows/s —, import ÷ baseline
(how close validation and upsert come to the cost of merely inserting the rows), and the
child's peak RSS. Targets: ≥ 25,000 rows/s on
both backends, peak RSS < 200 MB for 1,000,000 rows. PostgreSQL runs in a temporary database
(dropped afterwards) and is skipped with a message if the server does not answer.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import random
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from secrets import token_hex
from typing import Any

from tortoise import connections
from tortoise.transactions import in_transaction

from bench.common import (
    PG_ADMIN,
    cpu_seconds_of,
    emit_result,
    load_average,
    migrated_database,
    peak_rss_mb,
    postgres_backend_pids,
    postgres_unreachable,
    process_cpu_seconds,
    rate,
    run_child,
    stopwatch,
)
from storage.importer import SQLITE_CACHE_MIB, import_csv
from storage.importing.customers import month_day
from storage.models import Customer, Region
from storage.sql import Statements, sqlite_page_cache

TARGET_ROWS_PER_SECOND = 25_000
REGIONS = 34
_MOBILE_PREFIXES = ("130", "131", "132", "133", "135", "136", "137", "138", "139", "150",
                    "151", "152", "155", "156", "157", "158", "159", "166", "177", "180",
                    "181", "182", "185", "186", "187", "188", "189", "191", "198", "199")
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋"
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国志红玉兰文斌宇浩然欣怡子涵梓萱"


def phone(i: int) -> str:
    """The i-th customer's number: unique, valid, in no particular order."""
    scrambled = (i * 48_271 + 12_345) % 100_000_000  # 48271 is coprime with 10⁸: a bijection
    return _MOBILE_PREFIXES[i % len(_MOBILE_PREFIXES)] + f"{scrambled:08d}"


def generate(path: Path, rows: int, seed: int = 7) -> None:
    rnd = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["phone", "name", "birthday", "lunar_birthday", "language", "timezone",
                         "region", "referred_by", "email"])
        for i in range(rows):
            born = date.fromordinal(rnd.randint(date(1950, 1, 1).toordinal(),
                                                date(2005, 12, 31).toordinal()))
            number = phone(i)
            writer.writerow([
                number if i % 4 else f"+86 {number[:3]} {number[3:7]} {number[7:]}",
                rnd.choice(_SURNAMES) + "".join(rnd.choices(_GIVEN, k=rnd.randint(1, 2))),
                born.isoformat(),
                "是" if rnd.random() < 0.1 else "",
                "en" if rnd.random() < 0.05 else "zh-CN",
                "",
                f"R{rnd.randrange(REGIONS):02d}" if rnd.random() < 0.7 else "",
                phone(rnd.randrange(i)) if i and rnd.random() < 0.05 else "",
                f"user{i}@example.com" if rnd.random() < 0.3 else "",
            ])


async def add_regions() -> None:
    await Region.bulk_create([
        Region(code=f"R{n:02d}", name=f"地区{n}", latitude=31.0, longitude=121.0)
        for n in range(REGIONS)
    ])


async def baseline(path: Path, batch_size: int) -> int:
    """The same rows, as they are, through the importer's own bulk INSERT (``unnest`` on
    PostgreSQL, ``executemany`` on SQLite), a transaction per batch: the floor to compare with.
    Its referral codes are 12 hex digits, so that they never collide and need no retry."""
    columns = ("created_at", "updated_at", "phone", "name", "birthday", "birthday_md",
               "lunar_birthday", "language", "timezone", "email", "referral_code")
    now = datetime.now(UTC)
    count = 0
    batch: list[list[Any]] = []

    async def flush() -> None:
        async with in_transaction() as tx:
            await Statements(tx).insert(Customer, columns, batch)

    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        for cells in reader:
            born = date.fromisoformat(cells[2])
            batch.append([now, now, cells[0], cells[1], born, month_day(born), cells[3] == "是",
                          cells[4], "Asia/Shanghai", cells[8], token_hex(6)])
            if len(batch) >= batch_size:
                await flush()
                count += len(batch)
                batch = []
    if batch:
        await flush()
        count += len(batch)
    return count


class Meter:
    """Wall time, and CPU time of this process and (PostgreSQL) of the server's backends."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.wall = self.cpu = 0.0
        self.server_cpu: float | None = None

    async def __aenter__(self) -> Meter:
        self._server = await self._server_cpu()
        self._cpu = process_cpu_seconds()
        self._wall = time.perf_counter()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = process_cpu_seconds() - self._cpu
        after = await self._server_cpu()
        if after:
            self.server_cpu = sum(seconds - self._server.get(pid, 0.0)
                                  for pid, seconds in after.items())

    async def _server_cpu(self) -> dict[int, float]:
        if self.backend != "postgres":
            return {}
        return cpu_seconds_of(await postgres_backend_pids())

    def figures(self, rows: int, name: str) -> dict[str, Any]:
        return {name: rate(rows, self.wall), f"{name}_cpu_us": 1e6 * self.cpu / rows,
                f"{name}_server_cpu_us": None if self.server_cpu is None
                else 1e6 * self.server_cpu / rows}


async def child(backend: str, path: Path, rows: int, batch_size: int, pg: str) -> None:
    result: dict[str, Any] = {"backend": backend, "rows": rows}
    async with migrated_database(backend, pg):
        async with Meter(backend) as meter, \
                sqlite_page_cache(connections.get("default"), SQLITE_CACHE_MIB):
            inserted = await baseline(path, batch_size)
        result.update(meter.figures(inserted, "baseline"))
    async with migrated_database(backend, pg):
        await add_regions()
        out = io.StringIO()
        async with Meter(backend) as meter:
            report = await import_csv("customers", path, out=out, batch_size=batch_size)
        result.update(meter.figures(report.accepted, "import"))
        result["accepted"], result["rejected"] = report.accepted, report.rejected
        async with Meter(backend) as meter:
            again = await import_csv("customers", path, out=io.StringIO(), batch_size=batch_size)
        result.update(meter.figures(again.accepted, "reimport"))
        result["reimport_unchanged"] = again.unchanged
        if report.rejected:
            print(out.getvalue()[-2000:], file=sys.stderr)
    result["peak_rss_mb"] = peak_rss_mb()
    emit_result(result)


def _cpu(r: dict[str, Any], name: str) -> str:
    server = r[f"{name}_server_cpu_us"]
    text = f"{r[f'{name}_cpu_us']:.0f}"
    return text + (f"+{server:.0f}" if server is not None else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "all"], default="all")
    parser.add_argument("--batch-size", type=int, default=20_000)
    parser.add_argument("--pg", default=PG_ADMIN, help="admin DSN of the PostgreSQL server")
    parser.add_argument("--child", choices=["sqlite", "postgres"], help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        asyncio.run(child(args.child, args.csv, args.rows, args.batch_size, args.pg))
        return

    backends = ["sqlite", "postgres"] if args.backend == "all" else [args.backend]
    with tempfile.TemporaryDirectory(prefix="engage-bench-") as directory:
        path = Path(directory) / "customers.csv"
        with stopwatch() as elapsed:
            generate(path, args.rows)
        size = path.stat().st_size / 2**20
        print(f"generated {args.rows:,} customers ({size:,.0f} MB) in {elapsed():.1f}s; "
              f"batch size {args.batch_size:,}; {load_average()}")
        for backend in backends:
            if backend == "postgres":
                problem = asyncio.run(postgres_unreachable(args.pg))
                if problem is not None:
                    print(f"postgres: skipped, server not reachable ({problem})")
                    continue
            r = run_child("bench.import_customers",
                          ["--child", backend, "--csv", str(path), "--rows", str(args.rows),
                           "--batch-size", str(args.batch_size), "--pg", args.pg])
            verdict = "ok" if r["import"] >= TARGET_ROWS_PER_SECOND and \
                r["peak_rss_mb"] < 200 else "BELOW TARGET"
            print(f"{backend}: {r['accepted']:,} accepted, {r['rejected']:,} rejected; "
                  f"re-import: {r['reimport_unchanged']:,} unchanged")
            for name, label in (("import", "import"), ("reimport", "re-import"),
                                ("baseline", "baseline (bare bulk INSERT)")):
                print(f"    {label:<28} {r[name]:>9,.0f} rows/s   "
                      f"CPU µs/row {_cpu(r, name):>9} (this process+server)")
            print(f"    import/baseline {r['import'] / r['baseline']:.2f}   "
                  f"peak RSS {r['peak_rss_mb']:,.0f} MB   {verdict}")
        print(f"after: {load_average()}")


if __name__ == "__main__":
    main()
